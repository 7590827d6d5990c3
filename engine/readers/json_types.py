"""Dates in JSON: what pyarrow's JSON parser gets wrong about them, set right around it.

pyarrow's JSON inference reads a date-only string (``"1970-01-01"``) as ``timestamp[s]``, where
its CSV reader and DuckDB give ``date32``; and with an explicit ``date32`` field it expects a
JSON *number* (days since the epoch) and refuses the string. So the JSON readers
(:func:`engine.readers.json_common.parse_json_objects`) parse date fields as text and cast the
text (:func:`dates_as_text`, :func:`restore_dates`; a string that is not a date fails the
cast), and turn an inferred timestamp column into ``date32`` when every value of it was written
as a date alone (:func:`midnight_columns`, :func:`as_dates`). A column mixing dates and
timestamps stays a timestamp: the widening ``date32`` → timestamp (:mod:`engine.readers.schema`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["as_dates", "date_only", "dates_as_text", "midnight_columns", "restore_dates",
           "timestamps_as_text"]

#: A leaf's place in a nested type: field names, and ``[]`` for a list's values.
Path = tuple[str, ...]

#: The length of a date written alone, ``YYYY-MM-DD``: the only date-only form pyarrow's JSON
#: inference takes for a timestamp.
_DATE_CHARS = 10


def _is_list(typ: pa.DataType) -> bool:
    return pa.types.is_list(typ) or pa.types.is_large_list(typ)


def _leaves(typ: pa.DataType, path: Path = ()) -> Iterator[tuple[Path, pa.DataType]]:
    """Every leaf type of ``typ`` with its path."""
    if pa.types.is_struct(typ):
        for i in range(typ.num_fields):
            yield from _leaves(typ.field(i).type, (*path, typ.field(i).name))
    elif _is_list(typ):
        yield from _leaves(typ.value_type, (*path, "[]"))
    else:
        yield path, typ


def _retype(typ: pa.DataType, change: Callable[[Path, pa.DataType], pa.DataType | None],
            path: Path = ()) -> pa.DataType:
    """``typ`` with each leaf for which ``change(path, leaf)`` gives a type replaced by it."""
    if pa.types.is_struct(typ):
        return pa.struct([typ.field(i).with_type(_retype(typ.field(i).type, change,
                                                         (*path, typ.field(i).name)))
                          for i in range(typ.num_fields)])
    if _is_list(typ):
        return pa.list_(_retype(typ.value_type, change, (*path, "[]")))
    return change(path, typ) or typ


def _values(column: pa.ChunkedArray, path: Path) -> Iterator[pa.Array]:
    """The values at ``path`` inside ``column``, chunk by chunk (nulls of parents included)."""
    for chunk in column.chunks:
        arrays = [chunk]
        for step in path:
            if step == "[]":
                arrays = [a.flatten() for a in arrays]
            else:
                arrays = [a.flatten()[a.type.get_field_index(step)] for a in arrays]
        yield from arrays


def _is_date(typ: pa.DataType) -> bool:
    return pa.types.is_date(typ)


@lru_cache(maxsize=64)
def dates_as_text(schema: pa.Schema) -> pa.Schema | None:
    """``schema`` with every date leaf read as a string, or ``None`` if it has no date.

    >>> dates_as_text(pa.schema([("d", pa.date32()), ("n", pa.int64())]))
    d: string
    n: int64
    """
    if not any(_is_date(leaf) for f in schema for _, leaf in _leaves(f.type)):
        return None
    return pa.schema([f.with_type(_retype(f.type, lambda _, t: pa.string() if _is_date(t)
                                          else None)) for f in schema])


def restore_dates(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table``, read with :func:`dates_as_text` of ``schema``, with its dates cast back.

    Raises ``pyarrow.ArrowInvalid`` naming the column for a string that is not a date.
    """
    for f in schema:
        i = table.schema.get_field_index(f.name)
        if i < 0 or table.schema.field(i).type.equals(f.type):
            continue
        try:
            column = table.column(i).cast(f.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise pa.ArrowInvalid(f"Column(/{f.name}) holds a value that is not "
                                  f"{f.type}: {exc}") from None
        table = table.set_column(i, f.with_type(f.type), column)
    return table


def _midnight_leaves(column: pa.ChunkedArray) -> list[Path]:
    """The paths of the naive ``timestamp[s]`` leaves of ``column`` whose values are midnights."""
    found = []
    for path, leaf in _leaves(column.type):
        if not (pa.types.is_timestamp(leaf) and leaf.tz is None and leaf.unit == "s"):
            continue
        if all(_may_be_midnights(values)
               and pc.all(pc.equal(values, pc.floor_temporal(values, unit="day"))).as_py()
               is not False for values in _values(column, path)):
            found.append(path)
    return found


def _may_be_midnights(values: pa.Array) -> bool:
    """False when the first value is set and is not a midnight: a column of times, told at once.

    (The whole check, which floors every value to its day, is ~0.1 ms of a warm 1 MB run.)
    """
    return not (len(values) and values[0].is_valid and values[0].value % 86_400)


def midnight_columns(table: pa.Table, known: pa.Schema | None) -> dict[str, list[Path]]:
    """Inferred columns of ``table`` (not in ``known``) whose timestamps may be dates alone.

    Returns each column's timestamp leaves whose every value is a midnight: only a look at the
    text (:func:`date_only`) can tell ``"1970-01-01"`` from ``"1970-01-01 00:00"``.
    """
    found = {}
    for f, column in zip(table.schema, table.columns, strict=True):
        if known is not None and known.get_field_index(f.name) >= 0:
            continue
        paths = _midnight_leaves(column)
        if paths:
            found[f.name] = paths
    return found


def timestamps_as_text(table: pa.Table, columns: dict[str, list[Path]]) -> pa.Schema:
    """The schema that reads the leaves ``columns`` names (in ``table``) as text."""
    return pa.schema([
        pa.field(name, _retype(table.schema.field(name).type,
                               lambda path, _, paths=paths: pa.string() if path in paths
                               else None))
        for name, paths in columns.items()])


def date_only(text: pa.Table, columns: dict[str, list[Path]]) -> dict[str, list[Path]]:
    """The leaves of ``columns`` whose every value in ``text`` is written as a date alone."""
    found = {}
    for name, paths in columns.items():
        dates = [path for path in paths
                 if all(pc.all(pc.equal(pc.utf8_length(values), _DATE_CHARS)).as_py()
                        is not False for values in _values(text.column(name), path))]
        if dates:
            found[name] = dates
    return found


def as_dates(table: pa.Table, columns: dict[str, list[Path]]) -> pa.Table:
    """``table`` with the timestamp leaves ``columns`` names cast to ``date32`` (exact: midnights).

    >>> import datetime
    >>> t = pa.table({"d": pa.array([datetime.datetime(1970, 1, 2)], pa.timestamp("s"))})
    >>> as_dates(t, {"d": [()]}).column("d").to_pylist()
    [datetime.date(1970, 1, 2)]
    """
    for name, paths in columns.items():
        i = table.schema.get_field_index(name)
        typ = _retype(table.schema.field(i).type,
                      lambda path, _, paths=paths: pa.date32() if path in paths else None)
        table = table.set_column(i, table.schema.field(i).with_type(typ),
                                 table.column(i).cast(typ))
    return table
