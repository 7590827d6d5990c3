"""One schema for the whole output: widening types, what Parquet can store, width limits.

A value that does not fit its column widens it: null → int → float → string; bool → string;
date → timestamp; timestamp → finer unit → string; structs and lists field by field.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.config import MAX_COLUMNS
from engine.errors import SchemaError
from engine.readers.base import Widening

__all__ = [
    "check_rows_have_columns",
    "check_width",
    "column_count",
    "nonfinite_rows",
    "storable",
    "unify_schemas",
    "unify_types",
    "widenings",
]

_TS_UNITS = ("s", "ms", "us", "ns")


def unify_types(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The narrowest type both ``a`` and ``b`` values fit in (string as the last resort)."""
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
        return pa.struct(_unify_fields(list(a), list(b)))
    if pa.types.is_list(a) and pa.types.is_list(b):
        return pa.list_(unify_types(a.value_type, b.value_type))
    return pa.string()


def _unify_fields(a: list[pa.Field], b: list[pa.Field]) -> list[pa.Field]:
    by_name = {f.name: f for f in b}
    out = []
    for f in a:
        other = by_name.pop(f.name, None)
        out.append(f if other is None else pa.field(f.name, unify_types(f.type, other.type)))
    out.extend(by_name.values())
    return out


def unify_schemas(
    current: pa.Schema, seen: pa.Schema, strict: frozenset[str] = frozenset()
) -> pa.Schema:
    """``current`` widened so that values of ``seen`` fit; new columns are appended.

    Columns in ``strict`` (typed by a contract) keep their type: their misfits are rejects.
    """
    unified = storable(pa.schema(_unify_fields(list(current), list(seen))))
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


def nonfinite_rows(table: pa.Table) -> np.ndarray | None:
    """Rows holding ±infinity in a floating-point column (nested ones too), or ``None``."""
    bad: np.ndarray | None = None
    for column in table.columns:
        if not _may_hold_floats(column.type):
            continue
        offset = 0
        for chunk in column.chunks:
            rows = _inf_rows(chunk)
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


def _inf_rows(array: pa.Array) -> np.ndarray | None:
    """Indices of the elements of ``array`` holding an infinity somewhere inside."""
    typ = array.type
    if pa.types.is_floating(typ):
        if not pc.any(pc.is_inf(array)).as_py():
            return None
        return np.flatnonzero(pc.fill_null(pc.is_inf(array), False).to_numpy(
            zero_copy_only=False))
    if pa.types.is_struct(typ):
        found = [r for i in range(typ.num_fields) if _may_hold_floats(typ.field(i).type)
                 and (r := _inf_rows(array.field(i))) is not None]
        return np.unique(np.concatenate(found)) if found else None
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        inner = _inf_rows(array.flatten())
        if inner is None:
            return None
        parents = pc.list_parent_indices(array).to_numpy()
        return np.unique(parents[inner])
    return None


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


