"""What the two JSON readers share: strict parsing, and sorting out the records pyarrow refuses.

The NDJSON reader (:mod:`engine.readers.ndjson`) and the JSON array reader
(:mod:`engine.readers.json_array`) both hand runs of objects to pyarrow's JSON parser
(:func:`parse_json_objects`, which refuses to infer more than ``MAX_COLUMNS`` keys at once) and
sort out the few records it refuses with ``json.loads`` (:func:`sort_out`). That fallback,
:func:`loads`, is as strict as pyarrow (no duplicate keys, no ``NaN``, no overflow to infinity),
so a record gets the same verdict on the slow path as on the fast one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from engine.config import MAX_COLUMNS
from engine.readers.base import Reject
from engine.readers.scan import keys_outside_strings
from engine.readers.schema import unify_types

__all__ = ["Single", "TooManyKeys", "json_failure", "loads", "new_fields", "parse_json_objects",
           "python_parse", "sort_out", "strict_misfit"]


class TooManyKeys(pa.ArrowInvalid):
    """More keys than ``MAX_COLUMNS`` in one parse that may add columns.

    pyarrow's inference holds a builder per column for every row: 20,000 distinct keys over
    2,000 short records took 650 MiB. Callers that bisect on ``ArrowInvalid`` split the data
    until each part is small enough; a single record with that many keys is rejected.
    """


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key {duplicate!r}")
    return obj


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text} is beyond the range of float64")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: bytes | str) -> Any:
    """``json.loads`` as strict as pyarrow's parser: no duplicate keys, NaN or overflow to inf.

    Python's parser keeps the last of two equal keys, accepts ``NaN``/``Infinity`` and reads
    ``1e400`` as ``inf``; letting those through the slow paths would keep records the fast path
    rejects, or change their values silently. Raises ``ValueError`` (``RecursionError`` is not
    reached: records nested deeper than ``MAX_JSON_DEPTH`` are rejected before parsing).
    """
    return json.loads(text, object_pairs_hook=_unique_keys, parse_float=_finite,
                      parse_constant=_no_constant)


def parse_json_objects(
    data: bytes | memoryview | bytearray, schema: pa.Schema | None, *, multiline: bool = False,
    fields: str = "infer", records: int | None = None,
) -> pa.Table:
    """Parse whitespace-separated JSON objects with pyarrow, as one block on one thread.

    With ``schema``, its fields are read with those types. With ``fields="infer"`` fields outside
    it are inferred and appended (the caller widens on them); with ``"error"`` they make the
    parse fail, so it cannot grow a column per key. Raises ``pyarrow.ArrowInvalid`` on bad
    input, and :class:`TooManyKeys` (one) when inferring over more than ``MAX_COLUMNS`` keys:
    ``records`` (how many objects ``data`` holds, if known) saves counting keys in strings.
    """
    if fields == "infer":
        _check_keys(data, multiline, records)
    if schema is not None and not schema.names:
        schema = None
    if not len(data) or data[-1] != 10:  # pyarrow wants the last object terminated
        data = bytes(data) + b"\n"
    parse = pajson.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior=fields, newlines_in_values=multiline
    )
    read = pajson.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20))
    return pajson.read_json(pa.py_buffer(data), read_options=read, parse_options=parse)


def _check_keys(data: bytes | memoryview | bytearray, multiline: bool,
                records: int | None) -> None:
    """Raise :class:`TooManyKeys` if ``data`` may hold more than ``MAX_COLUMNS`` keys."""
    a = np.frombuffer(data, np.uint8)
    if np.count_nonzero(a == 58) <= MAX_COLUMNS:  # every key is followed by a colon
        return
    several = records > 1 if records is not None else (
        not multiline and a[: a.size - 1].__contains__(10))
    if several or keys_outside_strings(a) > MAX_COLUMNS:
        raise TooManyKeys(f"more than {MAX_COLUMNS} keys (MAX_COLUMNS) in one parse")


def python_parse(texts: list[bytes], schema: pa.Schema) -> pa.Table:
    """Slow general path: ``json.loads`` each text and build the table with ``schema``.

    Used only for chunks pyarrow cannot take with the schema, e.g. an object in a column widened to
    string (which gets the object's JSON text). Raises ``ValueError`` on any unparseable text.
    """
    string_cols = {f.name for f in schema if pa.types.is_string(f.type)}
    names = set(schema.names)
    other_cols = [(f.name, f.type) for f in schema if f.name not in string_cols]
    rows = []
    for text in texts:
        obj = loads(text)
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, found {type(obj).__name__}")
        for key in string_cols & obj.keys():
            value = obj[key]
            if value is not None and not isinstance(value, str):
                obj[key] = json.dumps(value, ensure_ascii=False)
        for key, typ in other_cols:  # from_pylist would truncate 1.5 into an int64 silently
            if not _fits(obj.get(key), typ):
                raise ValueError(f"{key}: {obj.get(key)!r} does not fit {typ}")
        if not names.issuperset(obj):  # from_pylist would drop them silently
            raise ValueError(f"fields outside the schema: {sorted(set(obj) - names)}")
        rows.append(obj)
    return pa.Table.from_pylist(rows, schema=schema)



def _fits(value: object, typ: pa.DataType) -> bool:
    """Whether a ``json.loads`` value can be read into a column of ``typ`` by pyarrow."""
    if value is None:
        return True
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if pa.types.is_boolean(typ):
        return isinstance(value, bool)
    if pa.types.is_integer(typ):
        return isinstance(value, int) and not isinstance(value, bool)
    if pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_temporal(typ):
        return isinstance(value, str)
    if pa.types.is_struct(typ):
        return isinstance(value, dict)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return isinstance(value, list)
    return True


#: Decides one text that a group could not take: ``(text, start, record, error)`` to tables,
#: rejects and wider schemas seen (each with its record), as :func:`sort_out` returns them.
Single = Callable[[bytes, int, int, Exception],
                  tuple[list[pa.Table], list[Reject], list[tuple[pa.Schema, int]]]]


def sort_out(
    texts: list[bytes], starts: list[int], records: list[int], schema: pa.Schema,
    strict: frozenset[str], single: Single, *, multiline: bool = False,
) -> tuple[list[pa.Table], list[Reject], list[tuple[pa.Schema, int]]]:
    """Sort out a few JSON objects with ``json.loads`` (~4 us each; a pyarrow call is ~100 us).

    Invalid JSON, non-objects and (for contract columns in ``strict``) values of the wrong JSON
    type are rejected here; the rest are parsed with pyarrow at once. If that still fails, a
    column widened to string may hold numbers (kept as their JSON text by :func:`python_parse`);
    failing that, ``single`` decides each text. Returns tables in input order, rejects, and
    wider schemas seen with the record that needs them.
    """
    good: list[int] = []
    rejects: list[Reject] = []
    checks = [(name, schema.field(name).type) for name in strict if name in schema.names]
    for i, text in enumerate(texts):
        try:
            obj = loads(text)
        except ValueError as exc:
            rejects.append(Reject.make(records[i], starts[i], f"invalid JSON: {exc}", text,
                                       check="json"))
            continue
        if not isinstance(obj, dict):
            rejects.append(Reject.make(records[i], starts[i], "expected a JSON object, found "
                                       f"{type(obj).__name__}", text, check="json"))
            continue
        misfit = next(((name, typ) for name, typ in checks if not _fits(obj.get(name), typ)),
                      None)
        if misfit is not None:
            name, typ = misfit
            rejects.append(Reject.make(records[i], starts[i],
                                       f"{name}: {obj.get(name)!r} is not {typ}",
                                       json.dumps(obj.get(name)), column=name, check="type"))
            continue
        good.append(i)
    if not good:
        return [], rejects, []
    try:
        table = parse_json_objects(b"\n".join(texts[i] for i in good), schema,
                                   multiline=multiline, records=len(good))
    except pa.ArrowInvalid as exc:
        if not strict:
            try:
                return [python_parse([texts[i] for i in good], schema)], rejects, []
            except (ValueError, TypeError, pa.ArrowException):
                pass
        tables: list[pa.Table] = []
        seen: list[tuple[pa.Schema, int]] = []
        for i in good:
            # A value the group could not take (1.234 in a decimal(p, 2)) must not reject
            # the other records of the group: each that parses alone with the schema is kept.
            try:
                alone = parse_json_objects(texts[i], schema, multiline=multiline, records=1)
            except pa.ArrowInvalid:
                alone = None
            if alone is not None and alone.num_rows == 1 and alone.schema.equals(schema):
                tables.append(alone)
                continue
            t, r, w = single(texts[i], starts[i], records[i], exc)
            tables += t
            rejects += r
            seen += w
        rejects.sort(key=lambda r: r.record)
        return tables, rejects, seen
    if table.num_rows != len(good):
        raise ValueError("pyarrow found a different number of objects than json.loads")
    if table.schema.equals(schema):
        return [table], rejects, []
    return [], rejects, new_fields(table, schema, [records[i] for i in good])


def new_fields(table: pa.Table, schema: pa.Schema,
               records: list[int]) -> list[tuple[pa.Schema, int]]:
    """Fields of ``table`` not in ``schema``, with the first record holding a value for each.

    ``records`` has the record number of each row of ``table``.
    """
    out = []
    for f in table.schema:
        if schema.get_field_index(f.name) < 0:
            at = pc.index(table.column(f.name).is_valid(), True).as_py()
            out.append((pa.schema([f]), records[max(at, 0)]))
    return out or [(table.schema, records[0])]


def strict_misfit(schema: pa.Schema, inferred: pa.Schema, strict: frozenset[str], record: int,
                  start: int, text: bytes) -> Reject | None:
    """A type reject if a column in ``strict`` was inferred wider than ``schema`` has it.

    ``inferred`` is the schema pyarrow infers for ``text`` (record ``record``, at byte
    ``start``) alone; the columns of a contract (``strict``) keep their type rather than widen.
    """
    for name in strict & set(inferred.names):
        expected = schema.field(name).type
        found = inferred.field(name).type
        if not unify_types(expected, found).equals(expected):
            return Reject.make(record, start, f"{name}: a {found} value is not {expected}", text,
                               column=name, check="type")
    return None


def json_failure(text: bytes, exc: Exception) -> str:
    """Why pyarrow refused ``text``.

    Either invalid JSON, or valid JSON that Arrow cannot type (a list mixing numbers and strings).
    """
    try:
        loads(text)
    except ValueError:
        return f"invalid JSON: {_reason(exc)}"
    return f"JSON that Arrow cannot type: {_reason(exc)}"


def _reason(exc: Exception) -> str:
    return str(exc).removeprefix("JSON parse error: ").split(" in row ")[0]

