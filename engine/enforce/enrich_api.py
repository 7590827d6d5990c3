"""The ``enrich_api`` transform: columns looked up by key from an HTTP API.

For each batch, the distinct values of the ``on`` columns are found (Arrow's group-by); those the
process-wide cache does not hold are requested, ``batch_size`` keys a request (``protocol:
batch``) or one request each (``per_key``), ``concurrency`` requests in flight
(:mod:`engine.enforce.api_client` sends them, retries them and counts). Each answer is checked
against ``columns`` (every field present, of its type: a mismatch is a
:class:`~engine.errors.SchemaError` naming the field) and cached, with the keys the API did not
return. The answers of the batch's distinct keys form a small table, joined back to the rows in
their order. Nothing loops over rows in Python: only over distinct keys, and only once per key and
cache period.

A key the API does not return, or a null key (never sent): ``on_missing: null`` leaves the added
columns null, ``reject`` rejects the row (its record number travels through the steps in the
column :data:`RECORD_COLUMN`, which :class:`~engine.enforce.transforms.Transformer` adds and
removes), ``fail`` fails the file with :class:`~engine.errors.ValidationError`.

Memory: the cache, per process so that warm Lambda invocations reuse it, holds at most
``cache.max_keys`` answers for ``cache.ttl_s`` seconds; :attr:`EnrichApi.nbytes` estimates it for
the report's ``state_bytes``. A batch adds the distinct keys' table and one answer per request in
flight (each at most :data:`~engine.enforce.api_client.MAX_RESPONSE_BYTES`).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.enforce.api_client import ApiClient, ApiStats
from engine.enforce.keys import as_array
from engine.errors import ContractError, SchemaError, ValidationError
from engine.readers.base import Reject

__all__ = ["RECORD_COLUMN", "EnrichApi", "clear_api_cache"]

#: The column carrying each row's record number through the steps, for ``on_missing: reject``.
RECORD_COLUMN = "__chunkwise_record__"

#: Replaced by tests to move time (the cache's TTL).
_now = time.monotonic

#: Cache entries' fixed cost beyond their values: the OrderedDict node, the tuples, the expiry.
_ENTRY_OVERHEAD = 200


class _Absent:
    """Not in the cache (as opposed to cached as unknown to the API, ``None``)."""


_ABSENT = _Absent()


class _KeyCache:
    """Answers by key, each for ``ttl`` seconds, the ``max_keys`` most recently used."""

    def __init__(self, ttl: float, max_keys: int) -> None:
        self.ttl, self.max_keys = ttl, max_keys
        self.entries: OrderedDict[tuple[Any, ...], tuple[float, tuple[Any, ...] | None, int]] = (
            OrderedDict())
        self.nbytes = 0
        self.lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> tuple[Any, ...] | None | _Absent:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                return _ABSENT
            if entry[0] <= _now():
                self._drop(key)
                return _ABSENT
            self.entries.move_to_end(key)
            return entry[1]

    def put(self, key: tuple[Any, ...], value: tuple[Any, ...] | None) -> None:
        size = _ENTRY_OVERHEAD + _size(key) + (_size(value) if value is not None else 0)
        with self.lock:
            if key in self.entries:
                self._drop(key)
            self.entries[key] = (_now() + self.ttl, value, size)
            self.nbytes += size
            while len(self.entries) > self.max_keys:
                self._drop(next(iter(self.entries)))

    def _drop(self, key: tuple[Any, ...]) -> None:
        self.nbytes -= self.entries.pop(key)[2]


def _size(values: tuple[Any, ...]) -> int:
    return sys.getsizeof(values) + sum(sys.getsizeof(v) for v in values)


#: The caches by what makes an answer the same: URL, protocol, path, keys, fields, secret, limits.
_CACHES: dict[tuple[Any, ...], _KeyCache] = {}
_CACHES_LOCK = threading.Lock()


def clear_api_cache() -> None:
    """Forget every cached answer, and Powertools' cached secrets (tests; a forced reload)."""
    with _CACHES_LOCK:
        _CACHES.clear()
    if "aws_lambda_powertools.utilities.parameters" in sys.modules:
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()


def _cache_for(spec: Any) -> _KeyCache:
    identity = (spec.url, spec.protocol, spec.path, tuple(spec.on), tuple(spec.columns.items()),
                spec.secret, spec.cache.ttl_s, spec.cache.max_keys)
    with _CACHES_LOCK:
        if identity not in _CACHES:
            _CACHES[identity] = _KeyCache(spec.cache.ttl_s, spec.cache.max_keys)
        return _CACHES[identity]


class EnrichApi:
    """Adds the fields an HTTP API returns for each row's key, keeping the rows' order.

    Args:
        spec: the step's :class:`~engine.contract.EnrichApiSpec`.

    Attributes:
        stats: requests, keys requested, cache hits, retries and seconds waiting, this file.
        rejects: rows rejected by ``on_missing: reject`` since :meth:`take_rejects`.
    """

    def __init__(self, spec: Any) -> None:
        import jmespath  # ships with botocore

        self.spec = spec
        self.on = list(spec.on)
        self.types = spec.arrow_types
        self.stats = ApiStats()
        self.cache = _cache_for(spec)
        self.search = jmespath.compile(spec.path)
        self.rejects: list[Reject] = []
        self._client: ApiClient | None = None

    @property
    def wants_records(self) -> bool:
        """Whether rows need their record numbers (``on_missing: reject``)."""
        return self.spec.on_missing == "reject"

    @property
    def nbytes(self) -> int:
        """Estimated bytes of the cache this step shares with the process."""
        return self.cache.nbytes

    def take_rejects(self) -> list[Reject]:
        """The rows rejected since the last call, and forget them."""
        out, self.rejects = self.rejects, []
        return out

    def __call__(self, table: pa.Table) -> pa.Table:
        """``table`` with the API's fields added (rows without an answer per ``on_missing``).

        Raises:
            ContractError: a key column missing, or an added column already in the data.
            ValidationError: a key without an answer, with ``on_missing: fail``.
            SchemaError: an answer that does not fit ``columns``.
            TransientError: the API did not answer within ``max_attempts``.
            PermanentError: the API refused the request (4xx other than 429).
        """
        missing = [k for k in self.on if k not in table.column_names]
        if missing:
            raise ContractError(f"no column {', '.join(map(repr, missing))}; columns here: "
                                f"{', '.join(table.column_names)}")
        clash = [c for c in self.types if c in table.column_names]
        if clash:
            raise ContractError(f"the column(s) {clash} already exist in the data; rename "
                                "them first or add the fields under other names")
        keys = [_plain(as_array(table.column(k))) for k in self.on]
        if table.num_rows == 0:
            added = {n: pa.nulls(0, t) for n, t in self.types.items()}
            return _append(table, added)
        distinct = pa.table(keys, names=self.on).group_by(self.on, use_threads=False
                                                          ).aggregate([])
        answers = self._answers(list(zip(*(distinct.column(k).to_pylist() for k in self.on),
                                         strict=True)))
        found = pa.array([a is not None for a in answers], pa.bool_())
        columns = {name: pa.array([None if a is None else a[j] for a in answers], t)
                   for j, (name, t) in enumerate(self.types.items())}
        index = self._rows_to_distinct(keys, distinct)
        row_found = pc.fill_null(found.take(index), False)
        added = {name: column.take(index) for name, column in columns.items()}
        out = _append(table, added)
        if self.spec.on_missing == "null" or pc.all(row_found).as_py():
            return out
        lost = np.flatnonzero(~np.asarray(row_found.to_numpy(zero_copy_only=False), dtype=bool))
        if self.spec.on_missing == "fail":
            raise ValidationError(f"{self.spec.host} has no answer for the key "
                                  f"({_shown(self.on, keys, int(lost[0]))}) "
                                  "(on_missing: fail)")
        self._reject(table, keys, lost)
        return out.filter(row_found)

    # -- answers ---------------------------------------------------------------------------

    def _answers(self, distinct: list[tuple[Any, ...]]) -> list[tuple[Any, ...] | None]:
        """The answer for each distinct key: from the cache, else asked of the API."""
        answers: list[tuple[Any, ...] | None | _Absent] = []
        needed: list[tuple[Any, ...]] = []
        for key in distinct:
            if any(v is None for v in key):
                answers.append(None)  # a null key is never sent: it has no answer
                continue
            cached = self.cache.get(key)
            answers.append(cached)
            if cached is _ABSENT:
                needed.append(key)
        self.stats.add(cache_hits=len(distinct) - len(needed)
                       - sum(1 for k in distinct if any(v is None for v in k)))
        if needed:
            fetched = self._fetch(needed)
            answers = [fetched[key] if a is _ABSENT else a
                       for key, a in zip(distinct, answers, strict=True)]
        return answers  # type: ignore[return-value]

    def _fetch(self, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...] | None]:
        """Ask the API for ``keys``; cache and return every answer (``None``: unknown)."""
        if self._client is None:
            self._client = ApiClient(self.spec, self.stats)
        size = self.spec.batch_size if self.spec.protocol == "batch" else 1
        groups = [keys[i:i + size] for i in range(0, len(keys), size)]
        ask = self._ask_batch if self.spec.protocol == "batch" else self._ask_one
        started = time.monotonic()
        try:
            if len(groups) == 1 or self.spec.concurrency == 1:
                results = [ask(group) for group in groups]
            else:
                with ThreadPoolExecutor(max_workers=self.spec.concurrency,
                                        thread_name_prefix="enrich-api") as pool:
                    futures = [pool.submit(ask, group) for group in groups]
                    try:
                        results = [future.result() for future in futures]
                    except BaseException:
                        for future in futures:  # the file fails: ask nothing more
                            future.cancel()
                        raise
        finally:
            self.stats.add(wait_seconds=time.monotonic() - started,
                           keys_requested=len(keys))
        out: dict[tuple[Any, ...], tuple[Any, ...] | None] = {}
        for group, result in zip(groups, results, strict=True):
            for key in group:
                out[key] = result.get(key)
                self.cache.put(key, out[key])
        return out

    def _ask_batch(self, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        body = {"keys": [dict(zip(self.on, key, strict=True)) for key in keys]}
        data = self._client.post(body)  # type: ignore[union-attr]
        results = self.search.search(data) if data is not None else None
        if not isinstance(results, list):
            raise self._malformed(f"results_path {self.spec.path!r} is not a list of results")
        wanted = _KeyMatcher(keys)
        by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
        for result in results:
            if not isinstance(result, dict):
                raise self._malformed(f"a result is not an object: {_short(result)}")
            absent = [k for k in self.on if k not in result]
            if absent:
                raise self._malformed(f"a result has no key field {absent[0]!r}")
            key = wanted.match(tuple(result[k] for k in self.on))
            if key is not None:
                by_key[key] = result
        return dict(zip(by_key, self._typed(list(by_key.values())), strict=True))

    def _ask_one(self, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        (key,) = keys
        data = self._client.get(dict(zip(self.on, key, strict=True)))  # type: ignore[union-attr]
        result = self.search.search(data) if data is not None else None
        if result is None:
            return {}
        if not isinstance(result, dict):
            raise self._malformed(f"the result is not an object: {_short(result)}")
        return {key: self._typed([result])[0]}

    def _typed(self, results: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Each result's fields in ``columns`` order, checked against their types."""
        columns = []
        for name, arrow_type in self.types.items():
            values = []
            for result in results:
                if name not in result:
                    raise self._malformed(f"a result has no field {name!r}")
                try:
                    values.append(_normalise(result[name], arrow_type))
                except ValueError as exc:
                    raise self._malformed(f"field {name!r}: {exc}") from None
            try:
                if pa.types.is_temporal(arrow_type):
                    column = pc.cast(pa.array(values, pa.string()), arrow_type)
                else:
                    column = pa.array(values, arrow_type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                bad = next(v for v in values if not _fits(v, arrow_type))
                raise self._malformed(f"field {name!r}: {_short(bad)} does not fit "
                                      f"{arrow_type}") from None
            columns.append(column.to_pylist())
        return list(zip(*columns, strict=True)) if columns else [() for _ in results]

    def _malformed(self, why: str) -> SchemaError:
        return SchemaError(f"{self.spec.host}: the response does not match the step's "
                           f"columns: {why}")

    # -- rows ------------------------------------------------------------------------------

    def _rows_to_distinct(self, keys: list[pa.Array], distinct: pa.Table) -> pa.Array:
        """For each row, the index of its key among ``distinct``."""
        if len(keys) == 1:
            return pc.index_in(keys[0], value_set=distinct.column(0))
        rows = pa.table([*keys, pa.array(np.arange(len(keys[0]), dtype=np.int64))],
                        names=[*self.on, "__row"])
        numbered = distinct.append_column(
            "__index", pa.array(np.arange(distinct.num_rows, dtype=np.int64)))
        joined = rows.join(numbered, keys=self.on, join_type="left outer", use_threads=False)
        joined = joined.sort_by("__row")
        return joined.column("__index").combine_chunks()

    def _reject(self, table: pa.Table, keys: list[pa.Array], lost: np.ndarray) -> None:
        if RECORD_COLUMN not in table.column_names:
            raise ContractError("the record numbers of the rows were lost before this step "
                                "(a python step must keep the columns it is given)")
        records = table.column(RECORD_COLUMN)
        for i in lost:
            shown = _shown(self.on, keys, int(i))
            self.rejects.append(Reject.make(
                int(records[int(i)].as_py()), None,
                f"{', '.join(self.on)}: {self.spec.host} has no answer for ({shown})", shown,
                column=",".join(self.on), check="enrich_api"))


def _plain(array: pa.Array) -> pa.Array:
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def _append(table: pa.Table, added: dict[str, pa.Array]) -> pa.Table:
    for name, column in added.items():
        table = table.append_column(name, column)
    return table


class _KeyMatcher:
    """Finds the requested key a result's key fields stand for.

    JSON says some key values otherwise than Arrow does (a decimal as a number or text, a date or
    timestamp as ISO 8601 text), so a result's key is compared as sent, then as text.
    """

    def __init__(self, keys: list[tuple[Any, ...]]) -> None:
        self.keys = set(keys)
        self.by_text = {tuple(_key_text(v) for v in key): key for key in keys}

    def match(self, key: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The requested key ``key`` stands for, or ``None`` (not one that was asked)."""
        if key in self.keys:
            return key
        return self.by_text.get(tuple(_key_text(v) for v in key))


def _key_text(value: Any) -> str:
    """A key value as the text the request said it with (``_json_default``'s forms)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _normalise(value: Any, arrow_type: pa.DataType) -> Any:
    """A JSON value as the Python value Arrow takes for ``arrow_type``; ValueError if it is not."""
    if value is None:
        return None
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_temporal(t):
        if not isinstance(value, str):
            raise ValueError(f"{_short(value)} is not a string (the column is {t})")
        return value
    if pa.types.is_boolean(t):
        if not isinstance(value, bool):
            raise ValueError(f"{_short(value)} is not a boolean")
        return value
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            raise ValueError(f"{_short(value)} is not a number (the column is {t})")
        return value
    if pa.types.is_integer(t):
        if value != int(value):
            raise ValueError(f"{_short(value)} is not an integer (the column is {t})")
        return int(value)
    if pa.types.is_floating(t):
        return float(value)
    return value


def _fits(value: Any, arrow_type: pa.DataType) -> bool:
    try:
        if pa.types.is_temporal(arrow_type):
            pc.cast(pa.array([value], pa.string()), arrow_type)
        else:
            pa.array([value], arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return False
    return True


def _shown(on: list[str], keys: list[pa.Array], row: int) -> str:
    return ", ".join(f"{k}={_short(c[row].as_py())}" for k, c in zip(on, keys, strict=True))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
