"""The ``aggregate`` part of a dataset contract: group-by metrics over a stream of batches.

Each batch is reduced on its own to *partial aggregates*, one row per group it touches
(``pa.Table.group_by(by).aggregate(...)``), and those partials are merged into a running state that
is itself an Arrow table with one row per group. Merging is vectorised: the running state and the
pending partials are concatenated and aggregated again (sum of counts, sum of sums, min of mins,
max of maxes; a mean is kept as its sum and count). A merge runs when the pending partials hold at
least as many rows as the state, so each merge costs O(groups) and the total merge work is
proportional to the partial rows produced, never to the input rows.

Memory grows with the number of groups, not rows, and ``max_groups`` caps it: one group more raises
:class:`~engine.errors.ValidationError`. ``count_distinct`` needs more than one row per group:

* exact (``approximate: false``): the distinct ``(group, value)`` pairs are kept, so memory grows
  with the number of distinct values per group, which ``max_groups`` does not bound.
* approximate (``approximate: true``): a HyperLogLog sketch per group with 2^p registers
  (p = :data:`HLL_PRECISION`), held in numpy, not in the Arrow state (:class:`_Sketches`): a
  group is numbered by the 64-bit hash of its key tuple; while it has few set registers, each
  is one ``uint64`` (group, register, rank) in one sorted array, merged by maximum rank; past
  2^p / 8 of them the group moves to a dense row of 2^p ``uint8`` ranks. Many groups with few
  values each (the common case) cost 8 bytes per value, and no group costs more than 2^p bytes
  (4 KiB at p = 12) however many values it has. The standard error is about
  ``1.04 / sqrt(2^p)`` (1.6 % at p = 12) over the whole range of cardinalities, using Ertl's
  improved estimator (no bias tables, no switch to linear counting). Values are hashed to 64
  bits, vectorised with numpy, by the engine's one hash (:func:`engine.enforce.keys.hash64`).

:attr:`Aggregator.state_bytes` reports what the state holds, for the run report.

Semantics, per group:

* ``count: col`` counts the rows whose ``col`` is not null (SQL ``COUNT(col)``).
* ``sum``, ``min``, ``max``, ``mean`` and ``count_distinct`` ignore nulls; ``sum``/``min``/``max``/
  ``mean`` of a group with no non-null value are null; ``count_distinct`` of it is 0.
* ``mean`` is float64 (``sum / count``, decimals included); ``count`` and ``count_distinct`` are
  int64; ``sum`` has Arrow's sum type (int64, uint64, float64, decimal128(38, s)); ``min``/``max``
  the column's type.
* Null group keys form their own group. Dictionary-encoded columns are aggregated on their values;
  dictionary keys come back dictionary-encoded.

The result is sorted by the ``by`` columns (nulls last), so it is deterministic for an input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.enforce.keys import cheap_to_hash, hash64, row_keys
from engine.errors import SchemaError, ValidationError

__all__ = ["FUNCTIONS", "HLL_PRECISION", "Aggregator", "hll_estimate"]

#: The metric functions a contract may name.
FUNCTIONS = ("count", "sum", "min", "max", "mean", "count_distinct")

#: HyperLogLog precision: 2^12 registers, standard error ~1.04 / 64 = 1.6 %.
HLL_PRECISION = 12

_U64 = np.uint64


@dataclass(frozen=True)
class _Metric:
    name: str
    func: str
    column: str
    approximate: bool


def _field(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _parse_metric(name: str, metric: Any) -> _Metric:
    """One metric from the contract model or a plain mapping: exactly one function key."""
    for attr in ("function", "func"):  # a model that exposes the function directly
        func = _field(metric, attr)
        if isinstance(func, str) and func in FUNCTIONS:
            column = _field(metric, "column")
            return _Metric(name, func, column, bool(_field(metric, "approximate", False)))
    if not isinstance(metric, Mapping) and hasattr(metric, "model_dump"):
        metric = metric.model_dump(exclude_none=True)
    named = [(f, _field(metric, f)) for f in FUNCTIONS if _field(metric, f) is not None]
    if len(named) != 1 or not isinstance(named[0][1], str):
        raise ValueError(f"aggregate metric {name!r}: name exactly one of {', '.join(FUNCTIONS)} "
                         f"with a column")
    func, column = named[0]
    return _Metric(name, func, column, bool(_field(metric, "approximate", False)))


def _decode(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dictionary columns as their values: Arrow cannot group chunks with differing dictionaries."""
    if pa.types.is_dictionary(col.type):
        return col.cast(col.type.value_type)
    return col


def _group(table: pa.Table, keys: list[str], aggs: list[tuple[Any, str, str]]) -> pa.Table:
    """``table.group_by(keys).aggregate``, columns renamed: keys first, then each agg's name.

    On the calling thread (``use_threads=False``): Acero's thread pool gives each of its threads
    a heap of its own that stays resident, +77 MiB of peak RSS on the orders contract (200 MB,
    one engine thread) for partials of a few thousand rows, which gain nothing from threads.
    """
    out = table.group_by(keys, use_threads=False).aggregate(
        [(col, func) for col, func, _ in aggs])
    cols = [out.column(k) for k in keys]
    cols += [out.column(f"{col}_{func}" if col != [] else func) for col, func, _ in aggs]
    return pa.table(cols, names=keys + [name for _, _, name in aggs])


class _Running:
    """A running aggregate: an Arrow state (one row per key) plus pending partials to merge in.

    Args:
        keys: the grouping columns of the state.
        merge: (column, function) pairs re-aggregating a column of the state with itself.
    """

    def __init__(self, keys: list[str], merge: list[tuple[str, str]]) -> None:
        self.keys = keys
        self.merge_aggs = [(col, func, col) for col, func in merge]
        self.state: pa.Table | None = None
        self.pending: list[pa.Table] = []
        self.pending_rows = 0

    @property
    def nbytes(self) -> int:
        held = [self.state] if self.state is not None else []
        return sum(t.nbytes for t in held + self.pending)

    def add(self, partial: pa.Table) -> bool:
        """Queue ``partial``; merge when the queue is as large as the state. True if merged."""
        self.pending.append(partial)
        self.pending_rows += partial.num_rows
        if self.pending_rows >= (self.state.num_rows if self.state is not None else 0):
            self.flush()
            return True
        return False

    def flush(self) -> None:
        """Merge the pending partials into the state."""
        if not self.pending:
            return
        parts = ([self.state] if self.state is not None else []) + self.pending
        both = pa.concat_tables(parts, promote_options="permissive")
        self.state = _group(both, self.keys, self.merge_aggs)
        self.pending = []
        self.pending_rows = 0


class _Sketches:
    """Approximate ``count_distinct``: a HyperLogLog sketch per group, in numpy.

    A group is known by the 64-bit hash of its key tuple (:func:`_group_hashes`), numbered in
    order of appearance. Its registers start *sparse*: one ``uint64`` per register that is set,
    ``group << (p + 6) | register << 6 | rank``, in one sorted array with the highest rank per
    register (new entries are queued and merged in when the queue is as long as the array, as
    :class:`_Running` does). A group with more than ``2**p / 8`` set registers, where the sparse
    form would cost more than the dense one, moves to a dense row of ``2**p`` ``uint8`` ranks.
    So a group costs 8 bytes per distinct value while it has few, and never more than ``2**p``
    bytes (4 KiB at p = 12) however many it has; the transient of a merge is the sparse array
    and its queue, no more.

    Two groups whose key hashes collide (probability ~n² / 2⁶⁵ for n groups) would share a
    sketch; :meth:`estimates` detects that exactly, against the main state's groups, and fails
    rather than report it.
    """

    def __init__(self, precision: int) -> None:
        self.p = precision
        self.q = 64 - precision
        self.m = 1 << precision
        self._group_shift = _U64(precision + 6)
        self.hashes = np.zeros(0, dtype=_U64)  # group key hashes, sorted
        self.ids = np.zeros(0, dtype=np.int64)  # the group number of each of ``hashes``
        self.groups = 0
        self.dense_row = np.zeros(0, dtype=np.int64)  # per group: its dense row, or -1
        self.dense = np.zeros((0, self.m), dtype=np.uint8)
        self.dense_rows = 0
        self.sparse = np.zeros(0, dtype=_U64)
        self.pending: list[np.ndarray] = []
        self.pending_len = 0

    @property
    def nbytes(self) -> int:
        return (self.hashes.nbytes + self.ids.nbytes + self.dense_row.nbytes
                + self.dense.nbytes + self.sparse.nbytes
                + sum(a.nbytes for a in self.pending))

    def _group_ids(self, hashes: np.ndarray) -> np.ndarray:
        """The group number of each row's key hash, numbering new groups."""
        distinct, inverse = np.unique(hashes, return_inverse=True)
        pos = np.searchsorted(self.hashes, distinct)
        pos[pos == len(self.hashes)] = 0
        known = (self.hashes[pos] == distinct) if len(self.hashes) else np.zeros(
            len(distinct), dtype=bool)
        ids = np.where(known, self.ids[pos] if len(self.ids) else 0, -1)
        new = np.flatnonzero(~known)
        if len(new):
            ids[new] = self.groups + np.arange(len(new))
            self.groups += len(new)
            hashes_all = np.concatenate([self.hashes, distinct[new]])
            ids_all = np.concatenate([self.ids, ids[new]])
            order = np.argsort(hashes_all, kind="stable")
            self.hashes, self.ids = hashes_all[order], ids_all[order]
            self.dense_row = np.concatenate(
                [self.dense_row, np.full(len(new), -1, dtype=np.int64)])
        return ids[inverse]

    def add(self, group_hashes: np.ndarray, value_hashes: np.ndarray) -> None:
        """Fold one batch: each row's group key hash and value hash."""
        if not len(value_hashes):
            return
        gid = self._group_ids(group_hashes)
        reg, rank = _registers(value_hashes, self.p)
        row = self.dense_row[gid]
        dense = row >= 0
        if dense.any():
            flat = row[dense] * self.m + reg[dense].astype(np.int64)
            np.maximum.at(self.dense.reshape(-1), flat, rank[dense])
        if not dense.all():
            sparse = ~dense
            codes = ((gid[sparse].astype(_U64) << self._group_shift)
                     | (reg[sparse].astype(_U64) << _U64(6)) | rank[sparse].astype(_U64))
            codes = self._reduce(codes)
            self.pending.append(codes)
            self.pending_len += len(codes)
            if self.pending_len >= len(self.sparse):
                self.flush()

    @staticmethod
    def _reduce(codes: np.ndarray) -> np.ndarray:
        """Sorted, one code per (group, register): the highest rank (in the low 6 bits)."""
        codes.sort()
        if len(codes) < 2:
            return codes
        last = np.ones(len(codes), dtype=bool)
        last[:-1] = (codes[1:] >> _U64(6)) != (codes[:-1] >> _U64(6))
        return codes[last]

    def flush(self) -> None:
        """Merge the queue into the sparse array; move groups that outgrew it to dense rows."""
        if not self.pending:
            return
        parts = [self.sparse, *self.pending]
        self.sparse = self.pending = None  # type: ignore[assignment]  # freed as they are merged
        merged = np.concatenate(parts)
        del parts
        self.sparse = self._reduce(merged)
        del merged
        self.pending, self.pending_len = [], 0
        gid = (self.sparse >> self._group_shift).astype(np.int64)
        counts = np.bincount(gid, minlength=self.groups)
        grown = np.flatnonzero(counts > self.m // 8)
        if not len(grown):
            return
        need = self.dense_rows + len(grown)
        if need > len(self.dense):
            dense = np.zeros((max(need, 2 * len(self.dense)), self.m), dtype=np.uint8)
            dense[:self.dense_rows] = self.dense[:self.dense_rows]
            self.dense = dense
        self.dense_row[grown] = self.dense_rows + np.arange(len(grown))
        self.dense_rows = need
        moving = self.dense_row[gid] >= 0
        picked = self.sparse[moving]
        reg = ((picked >> _U64(6)) & _U64(self.m - 1)).astype(np.int64)
        rows = self.dense_row[gid[moving]]
        self.dense[rows, reg] = (picked & _U64(63)).astype(np.uint8)  # one entry per register
        self.sparse = self.sparse[~moving]

    def estimates(self, group_hashes: np.ndarray) -> np.ndarray:
        """The estimate for each group of the main state, by its key hash (0: no value seen).

        Raises:
            ValidationError: two of the groups share a key hash (a collision, ~n² / 2⁶⁵).
        """
        self.flush()
        if len(np.unique(group_hashes)) != len(group_hashes):
            raise ValidationError("aggregate: two groups share a 64-bit key hash, so their "
                                  "approximate count_distinct sketches would be mixed; use "
                                  "approximate: false")
        registers_set = np.zeros(self.groups, dtype=np.float64)
        weight = np.zeros(self.groups, dtype=np.float64)
        top = np.zeros(self.groups, dtype=np.float64)
        # 2 ** -rank for the ranks that count in the weight (1..q), 0 for unset and top ranks
        table = np.zeros(64, dtype=np.float64)
        table[1:self.q + 1] = np.ldexp(1.0, -np.arange(1, self.q + 1))
        gid = (self.sparse >> self._group_shift).astype(np.int64)
        rank = (self.sparse & _U64(63)).astype(np.int64)
        registers_set += np.bincount(gid, minlength=self.groups)
        weight += np.bincount(gid, weights=table[rank], minlength=self.groups)
        top += np.bincount(gid, weights=(rank == self.q + 1), minlength=self.groups)
        owners = np.flatnonzero(self.dense_row >= 0)
        rows = self.dense_row[owners]
        for lo in range(0, len(owners), 256):  # bounded temporaries
            block = self.dense[rows[lo:lo + 256]]
            registers_set[owners[lo:lo + 256]] = (block > 0).sum(axis=1)
            weight[owners[lo:lo + 256]] = table[block].sum(axis=1)
            top[owners[lo:lo + 256]] = (block == self.q + 1).sum(axis=1)
        est = hll_estimate(registers_set, weight, top, self.p) if self.groups else np.zeros(0)
        pos = np.searchsorted(self.hashes, group_hashes)
        pos[pos == len(self.hashes)] = 0
        found = (self.hashes[pos] == group_hashes) if len(self.hashes) else np.zeros(
            len(group_hashes), dtype=bool)
        return np.where(found, est[self.ids[pos]] if len(self.ids) else 0.0, 0.0)


def _group_hashes(columns: list[pa.ChunkedArray], rows: int) -> np.ndarray:
    """One uint64 per row for its key tuple (:func:`~engine.enforce.keys.row_keys`).

    Columns that are costly to hash are dictionary-encoded first, so that each distinct key
    value is hashed once, not once per row. No columns: one group, hash 0.
    """
    if not columns:
        return np.zeros(rows, dtype=_U64)
    columns = [_float_bits(c) for c in columns]
    cols = [pa.nulls(rows, pa.int8()) if pa.types.is_null(c.type)
            else c if cheap_to_hash(c.type) or pa.types.is_dictionary(c.type)
            else pc.dictionary_encode(c) for c in columns]
    return row_keys(cols)


def _float_bits(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A float key column as the integers of its bits; any other column as it is.

    Arrow's ``group_by`` tells floats apart by their bits (``0.0`` from ``-0.0``, each NaN
    payload from the others), while :func:`~engine.enforce.keys.hash64` hashes equal values
    alike; grouped by one and hashed by the other, two groups would share a hash and a valid
    run would fail. Hashing the bits gives each of Arrow's groups its own hash.
    """
    t = column.type
    if pa.types.is_dictionary(t) and pa.types.is_floating(t.value_type):
        column, t = column.cast(t.value_type), t.value_type
    if not pa.types.is_floating(t):
        return column
    ints = {16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[t.bit_width]
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    return pa.chunked_array([chunk.view(ints) for chunk in chunks], type=ints)


# -- HyperLogLog ---------------------------------------------------------------------------------


def _bit_length(w: np.ndarray) -> np.ndarray:
    """Bit length of each uint64 (0 for 0), exact: each 32-bit half fits a float64 mantissa."""
    hi = (w >> _U64(32)).astype(np.float64)
    lo = (w & _U64(0xFFFFFFFF)).astype(np.float64)
    return np.where(hi > 0, 32 + np.frexp(hi)[1], np.frexp(lo)[1])


def _registers(h: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Register index (top p bits) and rank (leading zeros of the other 64 - p bits, + 1)."""
    q = 64 - p
    idx = (h >> _U64(q)).astype(np.uint16 if p <= 16 else np.uint32)
    rest = h & ((_U64(1) << _U64(q)) - _U64(1))
    rank = (q + 1 - _bit_length(rest)).astype(np.uint8)
    return idx, rank


def _sigma(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        y, z = np.ones_like(x), x.copy()
        for _ in range(64):
            x = x * x
            z = z + x * y
            y = y + y
    return np.where(x >= 1.0, np.inf, z)  # x stays 1 only where it started at 1


def _tau(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    edge = (x <= 0.0) | (x >= 1.0)
    y, z = np.ones_like(x), 1.0 - x
    for _ in range(64):
        x = np.sqrt(x)
        y = y * 0.5
        z = z - (1.0 - x) ** 2 * y
    return np.where(edge, 0.0, z / 3.0)


def hll_estimate(registers_set: np.ndarray, weight: np.ndarray, top: np.ndarray,
                 p: int = HLL_PRECISION) -> np.ndarray:
    """Cardinality estimates for sketches summarised per group, vectorised over groups.

    Ertl's improved raw estimator (O. Ertl, *New cardinality estimation algorithms for
    HyperLogLog sketches*, 2017, algorithm 6), with the register histogram folded into three sums.

    Args:
        registers_set: registers with a rank (the others are 0).
        weight: sum of ``2 ** -rank`` over the registers with rank ``<= 64 - p``.
        top: registers at the maximum rank ``64 - p + 1``.
        p: the precision.
    """
    m = float(1 << p)
    q = 64 - p
    c0 = m - registers_set.astype(np.float64)
    empty = c0 >= m
    z = m * _tau(1.0 - top / m) * 2.0**-q + weight + m * _sigma(np.where(empty, 0.0, c0 / m))
    estimate = m * m / (2.0 * math.log(2.0)) / np.where(empty, 1.0, z)
    return np.where(empty, 0.0, estimate)


# -- the aggregator ------------------------------------------------------------------------------


class Aggregator:
    """Group-by metrics over batches, merged into one result table.

    Args:
        spec: the contract's ``aggregate`` (an ``AggregateSpec`` or a plain mapping): ``by``,
            ``metrics`` (name -> one of ``count/sum/min/max/mean/count_distinct: column``, with
            ``approximate`` for ``count_distinct``) and ``max_groups``.
        uri: the input, for error messages.
        precision: the HyperLogLog precision p for approximate ``count_distinct`` (4..18).
    """

    def __init__(self, spec: Any, *, uri: str, precision: int = HLL_PRECISION) -> None:
        if not 4 <= precision <= 18:
            raise ValueError(f"HyperLogLog precision must be 4..18, not {precision}")
        self.uri = uri
        self.precision = precision
        self.by: list[str] = list(_field(spec, "by") or [])
        metrics = _field(spec, "metrics") or {}
        self.metrics = [_parse_metric(name, m) for name, m in dict(metrics).items()]
        limit = _field(spec, "max_groups")
        self.max_groups: int | None = int(limit) if limit is not None else None
        self._keys = [f"k{i}" for i in range(len(self.by))]
        self._key_types: list[pa.DataType] | None = None
        self._values: dict[str, str] = {}  # input column -> internal name
        for m in self.metrics:
            self._values.setdefault(m.column, f"v{len(self._values)}")
        # main state: one row per group, the partial columns of count/sum/min/max/mean
        self._batch_aggs: list[tuple[Any, str, str]] = [([], "count_all", "rows")]
        merge = [("rows", "sum")]
        self._partial: dict[tuple[str, str], str] = {}  # (internal column, function) -> state col
        for m in self.metrics:
            needs = {"mean": ("sum", "count"), "count_distinct": ()}.get(m.func, (m.func,))
            for func in needs:
                key = (self._values[m.column], func)
                if key not in self._partial:
                    name = f"s{len(self._partial)}"
                    self._partial[key] = name
                    self._batch_aggs.append((key[0], func, name))
                    merge.append((name, {"count": "sum"}.get(func, func)))
        self._main = _Running(self._keys, merge)
        # count_distinct: one running table of pairs or sparse registers per metric
        self._distinct: dict[int, _Running] = {}
        self._sketches: dict[int, _Sketches] = {}
        for i, m in enumerate(self.metrics):
            if m.func != "count_distinct":
                continue
            if m.approximate:
                self._sketches[i] = _Sketches(precision)
            else:
                self._distinct[i] = _Running(self._keys + [f"d{i}"], [])

    # -- properties ------------------------------------------------------------------------------

    @property
    def groups(self) -> int:
        """Groups seen so far (merges the pending partials)."""
        self._main.flush()
        self._check(self._main.state)
        return self._main.state.num_rows if self._main.state is not None else 0

    @property
    def state_bytes(self) -> int:
        """Bytes held by the running state and pending partials (grows with groups, not rows)."""
        return (self._main.nbytes + sum(r.nbytes for r in self._distinct.values())
                + sum(s.nbytes for s in self._sketches.values()))

    # -- work ------------------------------------------------------------------------------------

    def update(self, table: pa.Table | pa.RecordBatch) -> None:
        """Fold one batch into the running state.

        Raises:
            SchemaError: a ``by`` or metric column is not in the batch.
            ValidationError: more than ``max_groups`` groups.
        """
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        try:
            self._update(table)
        except pa.ArrowNotImplementedError as exc:  # e.g. min or count_distinct of a list column
            raise SchemaError(f"aggregate: {exc}", uri=self.uri) from exc

    def _update(self, table: pa.Table) -> None:
        missing = [c for c in dict.fromkeys(self.by + list(self._values))
                   if c not in table.column_names]
        if missing:
            raise SchemaError(f"aggregate: column(s) {missing} not in the data; found "
                              f"{table.column_names}", uri=self.uri)
        if self._key_types is None:
            self._key_types = [table.schema.field(name).type for name in self.by]
        cols = [_decode(table.column(name)) for name in self.by]
        cols += [_decode(table.column(name)) for name in self._values]
        t = pa.table(cols, names=self._keys + list(self._values.values()))

        partial = _group(t, self._keys, self._batch_aggs)
        self._check(partial)
        if self._main.add(partial):
            self._check(self._main.state)

        for i, m in enumerate(self.metrics):
            if m.func != "count_distinct":
                continue
            v = self._values[m.column]
            sub = t.select(self._keys + [v]).filter(pc.is_valid(t.column(v)))
            if not m.approximate:
                pairs = _group(sub, self._keys + [v], [])
                self._distinct[i].add(pairs.rename_columns(self._keys + [f"d{i}"]))
                continue
            if not cheap_to_hash(sub.column(v).type):  # hash each distinct pair once, not each row
                sub = _group(sub, self._keys + [v], [])
            self._sketches[i].add(_group_hashes(sub.columns[:-1], sub.num_rows),
                                  hash64(sub.column(v)))

    def result(self) -> pa.Table:
        """One row per group: the ``by`` columns, then one column per metric, sorted by ``by``."""
        self._main.flush()
        self._check(self._main.state)
        main = self._main.state
        if main is None:  # no batch at all: an empty table of the right names
            return self._empty()
        parts = [main]
        final: list[tuple[Any, str, str]] = [(c, f, c) for c, f, _ in self._main.merge_aggs]
        for i, running in self._distinct.items():
            running.flush()
            parts.append(running.state)
            final.append((f"d{i}", "count_distinct", f"d{i}"))
        union = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else main
        g = _group(union, self._keys, final)
        if self._keys:
            g = g.sort_by([(k, "ascending") for k in self._keys])

        columns: list[pa.ChunkedArray | pa.Array] = []
        for k, typ in zip(self._keys, self._key_types or [], strict=True):
            col = g.column(k)
            columns.append(pc.dictionary_encode(col) if pa.types.is_dictionary(typ) else col)
        for i, m in enumerate(self.metrics):
            v = self._values[m.column]
            if m.func == "count_distinct" and m.approximate:
                hashes = _group_hashes([g.column(k) for k in self._keys], g.num_rows)
                est = self._sketches[i].estimates(hashes)
                columns.append(pa.array(np.rint(est).astype(np.int64)))
            elif m.func == "count_distinct":
                columns.append(g.column(f"d{i}").cast(pa.int64()))
            elif m.func == "mean":
                total = g.column(self._partial[(v, "sum")]).cast(pa.float64())
                count = g.column(self._partial[(v, "count")]).cast(pa.float64())
                mean = pc.divide(total, pc.if_else(pc.equal(count, 0.0), None, count))
                columns.append(mean)
            else:
                columns.append(g.column(self._partial[(v, m.func)]))
        return pa.table(columns, names=self.by + [m.name for m in self.metrics])

    # -- helpers ---------------------------------------------------------------------------------

    def _check(self, table: pa.Table | None) -> None:
        if table is not None and self.max_groups is not None and table.num_rows > self.max_groups:
            raise ValidationError(f"aggregate: more than {self.max_groups} groups (by "
                                  f"{', '.join(self.by)}); raise aggregate.max_groups or change "
                                  f"the keys", uri=self.uri)

    def _empty(self) -> pa.Table:
        types = {"count": pa.int64(), "count_distinct": pa.int64(), "mean": pa.float64()}
        fields = [pa.field(name, pa.null()) for name in self.by]
        fields += [pa.field(m.name, types.get(m.func, pa.null())) for m in self.metrics]
        return pa.schema(fields).empty_table()
