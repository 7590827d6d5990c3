"""One schema for the whole output: widening types, what Parquet can store, width limits.

A value that does not fit its column widens it: null → int → float → string; bool → string;
date → timestamp; timestamp → finer unit → string; structs and lists field by field, and a
column whose nested values differ in kind (a number and a string in one list) → string, each
value its JSON text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from engine import kernels
from engine.config import MAX_COLUMNS
from engine.errors import SchemaError
from engine.readers.base import Widening

__all__ = [
    "LEADING_ZERO",
    "Inference",
    "check_rows_have_columns",
    "check_width",
    "column_count",
    "leading_zero_values",
    "nonfinite_rows",
    "storable",
    "unify_schemas",
    "unify_types",
    "widen_by",
    "widenings",
]

#: A number written with a zero before another digit: ``007``, ``-0123``, ``00``, ``01.5`` (but
#: not ``0``, ``-0``, ``0.5`` or ``0e3``). JSON's grammar has no such number; in text it is an
#: identifier (a ZIP code, an account number) whose zeros a numeric type would drop.
LEADING_ZERO = r"^\s*[+-]?0[0-9]"


@dataclass(frozen=True)
class Inference:
    """A type inference chose for a column other than the one its values parse as, and why."""

    column: str
    type: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """As reported in the RunReport's ``inference``."""
        return {"column": self.column, "type": self.type, "reason": self.reason}


def leading_zero_values(text: pa.Table) -> dict[str, str]:
    """The columns of ``text`` (text as read) holding a :data:`LEADING_ZERO` number.

    Returns:
        Column name → its first such value.

    Example:
        >>> leading_zero_values(pa.table({"zip": ["8123", "00501"], "n": ["0", "-0.5"]}))
        {'zip': '00501'}

    """
    import pyarrow.compute as pc  # only when a numeric column may hold leading zeros

    found: dict[str, str] = {}
    for name, column in zip(text.column_names, text.columns, strict=True):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        hits = pc.match_substring_regex(column, LEADING_ZERO)
        if pc.any(hits).as_py():
            first = pc.index(hits, True).as_py()
            found[name] = column[first].as_py()
    return found

_TS_UNITS = ("s", "ms", "us", "ns")


def unify_types(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The narrowest type both ``a`` and ``b`` values fit in (string as the last resort).

    At the top level a string column can hold any value, as its text (a JSON value as its
    JSON text). Inside a list or struct it holds strings only: values of different kinds there
    (a number and a string, a list and an object) make the whole top-level column a string.

    >>> unify_types(pa.list_(pa.int64()), pa.list_(pa.float64()))
    ListType(list<item: double>)
    >>> unify_types(pa.list_(pa.int64()), pa.list_(pa.string()))
    DataType(string)
    """
    unified = _unify(a, b)
    return pa.string() if unified is None else unified


def _text_like(typ: pa.DataType) -> bool:
    """Types read from strings: a nested string field can hold their values as they were."""
    return (pa.types.is_string(typ) or pa.types.is_large_string(typ)
            or pa.types.is_timestamp(typ) or pa.types.is_date(typ))


def _unify(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """:func:`unify_types`, or ``None`` where only a top-level string holds both."""
    if a.equals(b):
        return a
    if pa.types.is_null(a):
        return b
    if pa.types.is_null(b):
        return a
    if pa.types.is_integer(a) and pa.types.is_integer(b):
        return pa.int64()
    if (pa.types.is_integer(a) or pa.types.is_floating(a)) and (
        pa.types.is_integer(b) or pa.types.is_floating(b)
    ):
        return pa.float64()
    if pa.types.is_timestamp(a) and pa.types.is_timestamp(b) and a.tz == b.tz:
        unit = max(a.unit, b.unit, key=_TS_UNITS.index)
        return pa.timestamp(unit, a.tz)
    if pa.types.is_date(a) and pa.types.is_timestamp(b):
        return b
    if pa.types.is_timestamp(a) and pa.types.is_date(b):
        return a
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        fields = _unify_fields(list(a), list(b))
        return None if fields is None else pa.struct(fields)
    if pa.types.is_list(a) and pa.types.is_list(b):
        inner = _unify(a.value_type, b.value_type)
        return None if inner is None else pa.list_(inner)
    if _text_like(a) and _text_like(b):
        return pa.string()
    return None


def _unify_fields(a: list[pa.Field], b: list[pa.Field]) -> list[pa.Field] | None:
    """The fields of two structs unified (``None``: a field's kinds differ)."""
    by_name = {f.name: f for f in b}
    out = []
    for f in a:
        other = by_name.pop(f.name, None)
        if other is None:
            out.append(f)
            continue
        typ = _unify(f.type, other.type)
        if typ is None:
            return None
        out.append(pa.field(f.name, typ))
    out.extend(by_name.values())
    return out


def _unify_columns(a: list[pa.Field], b: list[pa.Field]) -> list[pa.Field]:
    """Top-level columns unified: a column whose values differ in kind becomes a string."""
    by_name = {f.name: f for f in b}
    out = []
    for f in a:
        other = by_name.pop(f.name, None)
        out.append(f if other is None else pa.field(f.name, unify_types(f.type, other.type)))
    out.extend(by_name.values())
    return out


def unify_schemas(
    current: pa.Schema, seen: pa.Schema, strict: frozenset[str] = frozenset(), *,
    store: bool = True,
) -> pa.Schema:
    """``current`` widened so that values of ``seen`` fit; new columns are appended.

    Columns in ``strict`` (typed by a contract) keep their type: their misfits are rejects.
    With ``store=False`` the result is not yet :func:`storable`: a null inside a list or struct
    stays null, so that the next schema unified into it types it (``[]`` then ``[1]``:
    ``list<int64>``). Apply :func:`storable` once the schemas at hand are unified.
    """
    unified = pa.schema(_unify_columns(list(current), list(seen)))
    if store:
        unified = storable(unified)
    if not strict:
        return unified
    return pa.schema([current.field(f.name) if f.name in strict and f.name in current.names
                      else f for f in unified])


def _storable_type(typ: pa.DataType, top: bool = True) -> pa.DataType | None:
    """``typ`` as Parquet can hold it; ``None`` when only text can (a struct without fields)."""
    if pa.types.is_null(typ):
        return typ if top else pa.string()
    if pa.types.is_struct(typ):
        if typ.num_fields == 0:
            return None
        fields = []
        for i in range(typ.num_fields):
            child = typ.field(i)
            inner = _storable_type(child.type, False)
            if inner is None:
                return None
            fields.append(child.with_type(inner))
        return pa.struct(fields)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        inner = _storable_type(typ.value_type, False)
        return None if inner is None else pa.list_(inner)
    return typ


def storable(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the types Parquet (or pyarrow's JSON reader) cannot hold replaced.

    Parquet has no struct without fields: a column holding ``{}`` anywhere (``{"a": {}}``,
    ``{"a": [{}]}``) is read as text, as a column mixing JSON types is. A null nested in a list
    or struct (``{"a": [null]}``) becomes a string: pyarrow's JSON reader builds invalid
    ``list<null>`` arrays that the Parquet writer refuses. (A top-level null column stays null
    until a value widens it.)
    """
    out = []
    changed = False
    for f in schema:
        typ = _storable_type(f.type)
        typ = pa.string() if typ is None else typ
        changed |= not typ.equals(f.type)
        out.append(f.with_type(typ))
    return pa.schema(out) if changed else schema


def check_rows_have_columns(tables: list[pa.Table], uri: str, record: int) -> None:
    """Raise SchemaError for rows without a column: no Parquet file can hold them.

    (Nor can ``pa.concat_tables``: it makes zero rows of tables without columns.)
    """
    if any(t.num_rows and not t.num_columns for t in tables):
        raise SchemaError("the records have no fields (every object is {}): a Parquet file "
                          "needs at least one column", uri=uri, record=record)


def column_count(schema: pa.Schema) -> int:
    """Leaf columns of ``schema``: each struct field counts, each list its values."""
    count = 0
    todo = [f.type for f in schema]
    while todo:
        typ = todo.pop()
        if pa.types.is_struct(typ):
            todo.extend(typ.field(i).type for i in range(typ.num_fields))
        elif pa.types.is_list(typ) or pa.types.is_large_list(typ):
            todo.append(typ.value_type)
        else:
            count += 1
    return count


def check_width(schema: pa.Schema, uri: str, record: int | None = None) -> pa.Schema:
    """``schema``, unless it has more than ``MAX_COLUMNS`` columns: then a SchemaError."""
    count = column_count(schema)
    if count > MAX_COLUMNS:
        raise SchemaError(f"the input has {count} columns, more than MAX_COLUMNS "
                          f"({MAX_COLUMNS}) that fit the memory budget", uri=uri, record=record)
    return schema


def nonfinite_rows(table: pa.Table, *, nan: bool = False) -> np.ndarray | None:
    """Rows holding ±infinity in a floating-point column (nested ones too), or ``None``.

    With ``nan``, rows holding a NaN too (pyarrow's JSON parser reads ``NaN``, ``-NaN``,
    ``Infinity`` and ``Inf``, none of which is JSON).
    """
    bad: np.ndarray | None = None
    test = _not_finite if nan else kernels.is_inf
    for column in table.columns:
        if not _may_hold_floats(column.type):
            continue
        offset = 0
        for chunk in column.chunks:
            rows = _inf_rows(chunk, test)
            if rows is not None and rows.size:
                if bad is None:
                    bad = np.zeros(table.num_rows, np.bool_)
                bad[offset + rows] = True
            offset += len(chunk)
    return bad


def _may_hold_floats(typ: pa.DataType) -> bool:
    if pa.types.is_floating(typ):
        return True
    if pa.types.is_struct(typ):
        return any(_may_hold_floats(typ.field(i).type) for i in range(typ.num_fields))
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return _may_hold_floats(typ.value_type)
    return False


def _not_finite(array: pa.Array) -> pa.Array:
    return kernels.invert(kernels.is_finite(array))


def _all_finite(array: pa.Array) -> bool:
    """Whether ``array``'s sum is finite, so that none of its values is ±infinity or NaN.

    One kernel call where the test and the look for a flag are three: an infinity or a NaN
    makes the sum infinite or NaN. A finite sum says no for certain; an infinite one may be
    an overflow of finite values, so the caller then tests each value.
    """
    total = kernels.sum_of(array)
    return total is None or math.isfinite(total)


def _inf_rows(array: pa.Array, test: Any = kernels.is_inf) -> np.ndarray | None:
    """Indices of the elements of ``array`` holding a value ``test`` flags somewhere inside."""
    typ = array.type
    if pa.types.is_floating(typ):
        if typ.bit_width > 16 and _all_finite(array):
            return None
        flags = test(array)
        if not kernels.any_true(flags):
            return None
        return np.flatnonzero(kernels.fill_false(flags).to_numpy(zero_copy_only=False))
    if pa.types.is_struct(typ):
        found = [r for i in range(typ.num_fields) if _may_hold_floats(typ.field(i).type)
                 and (r := _inf_rows(array.field(i), test)) is not None]
        return np.unique(np.concatenate(found)) if found else None
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        inner = _inf_rows(array.flatten(), test)
        if inner is None:
            return None
        parents = kernels.list_parent_indices(array).to_numpy()
        return np.unique(parents[inner])
    return None


def widen_by(schema: pa.Schema, seen: list[tuple[pa.Schema, int]],
          strict: frozenset[str] = frozenset()) -> tuple[pa.Schema, list[Widening]]:
    """``schema`` widened by the schemas ``seen`` (each with the record that needs it).

    The schemas are unified in record order before :func:`storable`, so a record whose list
    is empty does not make its column text before the record typing it is seen. Each change
    names the first record that needed it.
    """
    wider, first = schema, {}
    for other, record in sorted(seen, key=lambda s: s[1]):
        step = unify_schemas(wider, other, strict, store=False)
        for f in step:
            i = wider.get_field_index(f.name)
            if i < 0 or not wider.field(i).type.equals(f.type):
                first.setdefault(f.name, record)
        wider = step
    wider = storable(wider)
    return wider, [Widening(c.column, c.from_type, c.to_type, first.get(c.column, c.record))
                   for c in widenings(schema, wider, min(first.values(), default=0))]


def widenings(old: pa.Schema, new: pa.Schema, record: int) -> list[Widening]:
    """The columns whose type differs between ``old`` and ``new`` (new columns included)."""
    changes = []
    for f in new:
        idx = old.get_field_index(f.name)
        before = old.field(idx).type if idx >= 0 else None
        if before is None or not before.equals(f.type):
            changes.append(Widening(f.name, str(before) if before else "absent", str(f.type),
                                    record))
    return changes


