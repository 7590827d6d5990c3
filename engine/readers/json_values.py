r"""Array elements that are not objects (numbers, strings, lists...): rows ``{"value": item}``.

The JSON array reader (:mod:`engine.readers.json_array`) reads an array whose first element is
not an object as an array of values: every element, whatever it is, is parsed here with ijson's
C backend, as strictly as pyarrow parses objects: a duplicate key in a nested object or a number
beyond float64 rejects the element. yajl decodes surrogate escapes wrongly (``"\uD888\u1234"``
as U+32234, a lone ``"\uD800"`` as ``?``), so text holding one is parsed by
:func:`engine.readers.json_common.loads` instead: a pair is its character, a lone surrogate a
reject, as on every other path.
"""

from __future__ import annotations

import json
import math
from typing import Any

import ijson
import pyarrow as pa

from engine.readers.base import Reject
from engine.readers.json_common import loads, surrogate_escapes
from engine.readers.schema import unify_schemas

__all__ = ["VALUE_COLUMN", "parse_values", "value_schema"]

#: Column that holds an array element that is not an object (a number, string, list...).
VALUE_COLUMN = "value"

try:
    _IJSON: Any = ijson.get_backend("yajl2_c")
except ImportError:  # pragma: no cover - the C backend is missing on this platform
    _IJSON = ijson


class _Keys(dict):  # type: ignore[type-arg]
    """The ``map_type`` given to ijson: it notes a key set twice.

    ijson's C backend cannot take an exception raised here (a SystemError), so the check is
    made on the result, by :func:`_check_value`.
    """

    duplicate: Any = None

    def __setitem__(self, key: Any, value: Any) -> None:
        if key in self:
            self.duplicate = key
        super().__setitem__(key, value)


def _check_value(value: Any) -> None:
    """Raise ``ValueError`` for a duplicate key, or a float beyond float64 (ijson reads inf)."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, float) and math.isinf(item):
            raise ValueError("a number is beyond the range of float64")
        if isinstance(item, dict):
            if getattr(item, "duplicate", None) is not None:
                raise ValueError(f"duplicate key {item.duplicate!r}")
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)


def _items(text: bytes, prefix: str) -> list[Any]:
    """The values at ``prefix``: no duplicate keys, no number beyond float64, no NaN.

    ``prefix`` is ``""`` (``text`` is one value) or ``"item"`` (the elements of the array
    ``text``). ijson reads them, unless the text holds a surrogate escape (which yajl decodes
    wrongly); where ijson refuses the text, the strict Python parser decides (yajl also refuses
    valid integers at and beyond int64's ends). Raises ``ValueError`` with the reason for a
    reject.
    """
    if not surrogate_escapes(text):
        try:
            values = list(_IJSON.items(text, prefix, use_float=True, map_type=_Keys))
        except (ijson.JSONError, ValueError):  # UnicodeDecodeError too
            pass
        else:
            for value in values:
                _check_value(value)
            return values
    try:
        value = _arrow_numbers(loads(text))
    except ValueError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    return value if prefix else [value]


_INT64 = range(-(2**63), 2**63)


def _arrow_numbers(value: Any) -> Any:
    """``value`` with its integers beyond int64 as floats, as pyarrow's JSON parser reads them."""
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        return float(value)
    if isinstance(value, list):
        return [_arrow_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: _arrow_numbers(item) for key, item in value.items()}
    return value


def _python_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows built in Python as a table of ``schema``; non-strings in string columns as JSON text."""
    for name in (f.name for f in schema if pa.types.is_string(f.type)):
        for row in rows:
            value = row.get(name)
            if value is not None and not isinstance(value, str):
                row[name] = json.dumps(value, ensure_ascii=False)
    return pa.Table.from_pylist(rows, schema=schema)


def _schema_of(values: list[Any]) -> pa.Schema:
    """Infer the schema of the rows ``{"value": v}`` with Arrow (string if the types mix)."""
    try:
        return pa.Table.from_pylist([{VALUE_COLUMN: v} for v in values]).schema
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.schema([(VALUE_COLUMN, pa.string())])


def value_schema(texts: list[bytes]) -> pa.Schema | None:
    """The schema of the rows ``{"value": v}`` of the ``texts`` that parse (``None``: none do).

    Each text is one element; those that are not valid JSON are left out (the reader rejects
    them). Values of mixed types make a string column.

    >>> value_schema([b"1", b"2.5", b"oops"])
    value: double
    >>> value_schema([b"1", b'"a"'])
    value: string
    """
    values: list[Any] = []
    for text in texts:
        try:
            values.extend(_items(text, ""))
        except ValueError:
            continue
    return _schema_of(values) if values else None


def parse_values(run: list[tuple[int, bytes]], schema: pa.Schema, first: int
                 ) -> tuple[list[pa.Table], list[Reject], list[tuple[pa.Schema, int]]]:
    """Parse elements that are not objects with ijson, as rows ``{"value": item}``.

    Args:
        run: ``(offset, text)`` of each element, records ``first ...``.
        schema: the schema in force.
        first: the record number of the first element.

    Returns:
        The table of the good elements (none if the values need a wider schema), a reject per
        bad element, and the wider schema needed, with ``first``, if any.

    >>> tables, rejects, seen = parse_values([(1, b"1"), (3, b"2")],
    ...                                      pa.schema([("value", pa.int64())]), 1)
    >>> tables[0].column("value").to_pylist(), rejects, seen
    ([1, 2], [], [])
    """
    rejects: list[Reject] = []
    try:
        values = _items(b"[" + b",".join(t for _, t in run) + b"]", "item")
    except ValueError:
        values = []
    if len(values) != len(run):  # find the bad ones, one element at a time
        values, rejects = [], []
        for k, (start, text) in enumerate(run):
            if not text:
                reason = "empty array element (two commas in a row, or a trailing comma?)"
            else:
                try:
                    value = _items(text, "")
                except ValueError as exc:
                    reason = str(exc)
                else:
                    values += value  # exactly one: a text is a single value between commas
                    continue
            rejects.append(Reject.make(first + k, start, reason, text))
    if not values:
        return [], rejects, []
    wider = unify_schemas(schema, _schema_of(values))
    if not wider.equals(schema):
        return [], rejects, [(wider, first)]
    rows = [{VALUE_COLUMN: v} for v in values]
    try:
        table = _python_table(rows, schema)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        string = pa.field(VALUE_COLUMN, pa.string())
        return [], rejects, [(pa.schema([string]), first)]
    return [table], rejects, []
