"""The ``enrich`` transform: columns of a reference table joined to each row by key.

A reference table (CSV or Parquet, local or on S3) is read whole once per process and cached
with the version it was read at (size and ETag on S3, size and mtime locally), so warm Lambda
invocations reuse it and a changed table is read again. For each set of key columns and data key
types it is indexed once: its keys reduced to 64-bit keys (:mod:`engine.enforce.keys`) and
sorted. Each batch is then a ``searchsorted`` (O(rows · log reference rows)), hashed matches
confirmed by comparing the key values, so a hash collision never joins the wrong row.

Memory: the reference table plus 16 bytes per reference row (the sorted keys and their rows),
plus the key columns cast to the data's types; :attr:`Lookup.nbytes` reports the index.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.enforce.keys import as_array, is_exact, row_keys, value_keys
from engine.errors import ContractError, InputFormatError, ValidationError
from engine.io import is_s3, object_size, one_line, open_input, s3_client

__all__ = ["Enrich", "Lookup", "clear_reference_cache"]


def _need(table: pa.Table, names: Sequence[str]) -> None:
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise ContractError(f"no column {', '.join(map(repr, missing))}; columns here: "
                            f"{', '.join(table.column_names)}")


@dataclass
class _Reference:
    """A reference table as read, and the version it was read at."""

    version: tuple[Any, ...]
    table: pa.Table


@dataclass
class Lookup:
    """A reference table ready for joins on some key columns.

    ``sorted_keys[i]`` is the 64-bit key of reference row ``order[i]``; rows with a null key are
    left out (they match nothing). ``key_columns`` are the reference key columns cast to the
    data's key types, compared with the data's values to confirm a hashed match.
    """

    table: pa.Table
    key_columns: list[pa.Array]
    sorted_keys: np.ndarray
    order: np.ndarray
    exact: bool
    as_string: bool
    #: the most reference rows sharing one 64-bit key: 1, but after a hash collision
    longest_run: int

    @property
    def nbytes(self) -> int:
        """Bytes of the index: sorted keys, their rows, and the cast key columns."""
        return int(self.sorted_keys.nbytes + self.order.nbytes
                   + sum(c.nbytes for c in self.key_columns))


#: Reference tables by (uri, format), with the version (size, mtime or ETag) they were read at.
_TABLES: dict[tuple[str, str], _Reference] = {}
#: Prepared lookups by (uri, format, version, keys, the data's key types).
_LOOKUPS: dict[tuple[Any, ...], Lookup] = {}


def clear_reference_cache() -> None:
    """Forget every cached reference table (tests; a long-lived process that must reload)."""
    _TABLES.clear()
    _LOOKUPS.clear()


def _version(uri: str) -> tuple[Any, ...]:
    """What identifies the stored bytes: (size, ETag) on S3, (size, mtime) locally."""
    if is_s3(uri):
        from engine.io.s3 import head_object  # boto3 loads only for a file on S3

        head = head_object(s3_client(), uri)
        return int(head["ContentLength"]), head.get("ETag")
    size = object_size(uri)
    path = uri[7:] if uri.startswith("file://") else uri
    return size, os.stat(path).st_mtime_ns


def _read_reference(uri: str, fmt: str) -> pa.Table:
    """Read a whole reference table (the bytes stream through :func:`engine.io.open_input`)."""
    with open_input(uri) as stream:
        try:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                # Parquet needs random access: the stored bytes are held while decoding.
                return pq.read_table(pa.BufferReader(stream.read()))
            import pyarrow.csv as pacsv

            return pacsv.read_csv(stream)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputFormatError(f"cannot read the reference table as {fmt}: "
                                   f"{one_line(exc)}", uri=uri) from None


def _reference(uri: str, fmt: str) -> tuple[tuple[Any, ...], pa.Table]:
    """The reference table, from the cache when the stored version has not changed."""
    version = _version(uri)
    cached = _TABLES.get((uri, fmt))
    if cached is None or cached.version != version:
        for key in [k for k in _LOOKUPS if k[:2] == (uri, fmt)]:
            del _LOOKUPS[key]  # an older version: let it go
        _TABLES.pop((uri, fmt), None)
        cached = _TABLES[(uri, fmt)] = _Reference(version, _read_reference(uri, fmt))
    return cached.version, cached.table


class Enrich:
    """Adds reference columns to each row by key, keeping the rows' order.

    The reference keys are reduced to 64-bit keys and sorted once; each batch is a
    ``searchsorted`` (O(rows · log reference rows), where ``pc.index_in`` would rebuild a hash
    table of the whole reference for every batch), and hashed matches are confirmed by comparing
    the key values themselves.

    Args:
        uri: the reference table.
        fmt: its format, ``csv`` or ``parquet``.
        on: the key columns, named alike in the data and the reference.
        columns: the reference columns to add (``None``: all but the keys).
        how: ``left`` keeps the rows without a match (nulls added), ``inner`` drops them.

    Attributes:
        lookup: the reference's index, prepared at the first batch (shared through the cache).
        added: the columns added, known from the first batch.

    """

    def __init__(self, uri: str, fmt: str, on: list[str], columns: list[str] | None,
                 how: str) -> None:
        self.uri, self.fmt, self.on, self.columns, self.how = uri, fmt, on, columns, how
        self.lookup: Lookup | None = None
        self.added: list[str] = []

    def __call__(self, table: pa.Table) -> pa.Table:
        """``table`` with the reference columns added (rows without a match dropped if inner).

        Raises:
            ContractError: a key column missing, or a reference column already in the data.
            ValidationError: the reference table repeats a key.
        """
        _need(table, self.on)
        if self.lookup is None:
            self.lookup = self._prepare(table.schema)
        lookup = self.lookup
        left = [as_array(table.column(k)) for k in self.on]
        left = [pc.cast(c, pa.string()) if lookup.as_string else
                c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in left]
        index = self._match(left, lookup)
        added = lookup.table.select(self.added).take(index)
        out = table
        for name in self.added:
            out = out.append_column(name, added.column(name))
        if self.how == "inner":
            out = out.filter(index.is_valid())
        return out

    def _match(self, left: list[pa.Array], lookup: Lookup) -> pa.Array:
        """The reference row of each data row (null: no match)."""
        n = len(left[0])
        valid = np.ones(n, dtype=bool)
        for column in left:
            valid &= np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        keys = value_keys(left[0])[0] if lookup.exact else row_keys(left)
        found = np.zeros(n, dtype=bool)
        rows = np.zeros(n, dtype=np.int64)
        size = len(lookup.sorted_keys)
        start = np.searchsorted(lookup.sorted_keys, keys)
        for step in range(lookup.longest_run if size else 0):
            pos = start + step
            inside = pos < size
            pos[~inside] = 0
            hit = valid & ~found & inside & (lookup.sorted_keys[pos] == keys)
            if not hit.any():
                break
            candidate = lookup.order[pos]
            if not lookup.exact:  # equal hashes: confirm that the values are equal
                taken = pa.array(candidate, mask=~hit)
                for mine, theirs in zip(left, lookup.key_columns, strict=True):
                    same = pc.fill_null(pc.equal(mine, theirs.take(taken)), False)
                    hit &= np.asarray(same.to_numpy(zero_copy_only=False), dtype=bool)
            rows[hit] = candidate[hit]
            found |= hit
        return pa.array(rows, mask=~found)

    def _prepare(self, schema: pa.Schema) -> Lookup:
        version, reference = _reference(self.uri, self.fmt)
        missing = [k for k in self.on if k not in reference.column_names]
        if missing:
            raise ContractError(f"the reference table has no key column {missing}; it has "
                                f"{', '.join(reference.column_names)}", uri=self.uri)
        if self.columns is None:
            self.added = [c for c in reference.column_names if c not in self.on]
        else:
            _need(reference, self.columns)
            self.added = list(self.columns)
        clash = [c for c in self.added if c in schema.names]
        if clash:
            raise ContractError(f"the reference column(s) {clash} already exist in the data; "
                                "rename them first or list the columns to add")
        left_types = tuple(str(schema.field(k).type) for k in self.on)
        cache_key = (self.uri, self.fmt, version, tuple(self.on), left_types)
        if cache_key not in _LOOKUPS:
            _LOOKUPS[cache_key] = self._index(reference, schema)
        return _LOOKUPS[cache_key]

    def _index(self, reference: pa.Table, schema: pa.Schema) -> Lookup:
        keys, as_string = _aligned_keys([reference.column(k) for k in self.on],
                                        [schema.field(k).type for k in self.on])
        exact = len(keys) == 1 and is_exact(keys[0].type)
        reference_keys = value_keys(keys[0])[0] if exact else row_keys(keys)
        valid = np.ones(reference.num_rows, dtype=bool)
        for column in keys:
            valid &= np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        rows = np.flatnonzero(valid)  # a null key matches nothing
        order = rows[np.argsort(reference_keys[rows], kind="stable")]
        sorted_keys = reference_keys[order]
        starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
        runs = np.diff(np.append(starts, len(sorted_keys)))
        for first, length in zip(starts[runs > 1], runs[runs > 1], strict=True):
            # Equal 64-bit keys: equal values are a repeated key; otherwise a hash collision
            # (about 1e-7 for 2 million keys), which _match resolves by comparing values.
            members = [int(r) for r in order[first:first + length]]
            for i, a in enumerate(members):
                for b in members[i + 1:]:
                    if all(c[a] == c[b] for c in keys):
                        shown = ", ".join(f"{k}={c[a].as_py()!r}"
                                          for k, c in zip(self.on, keys, strict=True))
                        raise ValidationError(f"the reference table repeats the key ({shown}); "
                                              "a lookup key must be unique", uri=self.uri)
        longest = int(runs.max()) if len(runs) else 1
        return Lookup(reference, keys, sorted_keys, order, exact, as_string, longest)


def _aligned_keys(columns: list[pa.ChunkedArray], types: list[pa.DataType]
                  ) -> tuple[list[pa.Array], bool]:
    """Reference key columns in the data's key types; as strings (both sides) if that fails."""
    out = []
    try:
        for column, target in zip(columns, types, strict=True):
            plain = target.value_type if pa.types.is_dictionary(target) else target
            out.append(as_array(column).cast(plain))
        return out, False
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return [as_array(column).cast(pa.string()) for column in columns], True
