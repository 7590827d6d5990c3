"""What the two JSON readers share: strict parsing, and sorting out the records pyarrow refuses.

The NDJSON reader (:mod:`engine.readers.ndjson`) and the JSON array reader
(:mod:`engine.readers.json_array`) both hand runs of objects to pyarrow's JSON parser
(:func:`parse_json_objects`, which refuses to infer more than ``MAX_COLUMNS`` keys at once) and
sort out the few records it refuses with ``json.loads`` (:func:`sort_out`). That fallback,
:func:`loads`, is stricter than pyarrow: no duplicate keys, no ``NaN`` or ``Infinity`` (which
pyarrow reads; the readers reject the rows holding them), no overflow to infinity and no lone
surrogate, so a record gets the same verdict on the slow path as on the fast one.

What pyarrow must never see: input that does not start with an object. Its parser (pyarrow
26) dies with a segmentation fault when the first value it reads is ``null``, and reads a
``null`` after an object as a row of nulls; :func:`parse_json_objects` refuses such input and
the readers reject every record that is not an object (:func:`not_an_object`) before parsing.
A value pyarrow cannot type (a list mixing numbers and strings) makes its column JSON text
(:func:`object_schema`); dates are parsed as :mod:`engine.readers.json_types` says.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from engine.config import MAX_COLUMNS, MAX_JSON_DEPTH
from engine.errors import InputFormatError, SchemaError
from engine.readers.base import Reject
from engine.readers.json_types import (
    as_dates,
    date_only,
    dates_as_text,
    midnight_columns,
    restore_dates,
    timestamps_as_text,
)
from engine.readers.scan import keys_outside_strings, nesting_depth
from engine.readers.schema import nonfinite_rows, unify_types

__all__ = ["NotAnObject", "Single", "TooManyKeys", "json_failure", "loads", "new_fields",
           "nonfinite_reason", "not_an_object", "nothing_found", "object_schema",
           "parse_json_objects",
           "python_parse", "sort_out", "strict_misfit", "surrogate_escapes"]


class TooManyKeys(pa.ArrowInvalid):
    """More keys than ``MAX_COLUMNS`` in one parse that may add columns.

    pyarrow's inference holds a builder per column for every row: 20,000 distinct keys over
    2,000 short records took 650 MiB. Callers that bisect on ``ArrowInvalid`` split the data
    until each part is small enough; a single record with that many keys is rejected.
    """


class NotAnObject(pa.ArrowInvalid):
    """The input of a parse does not start with a JSON object: pyarrow must not see it.

    pyarrow's parser crashes the process (SIGSEGV) when the first value it reads is ``null``;
    a reader that bisects on ``ArrowInvalid`` splits such input until the record is alone, and
    rejects it with :func:`not_an_object`.
    """


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key {duplicate!r}")
    return obj


def _beyond(text: str) -> ValueError:
    shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"
    return ValueError(f"number {shown} is beyond the range of float64")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _beyond(text)
    return value


def _integer(text: str) -> int:
    # pyarrow reads an integer beyond int64 as a double: one beyond float64 is no number it
    # can hold (nor can Python convert more than 4,300 digits). The others stay exact.
    if len(text) > 309 and math.isinf(float(text)):
        raise _beyond(text)
    return int(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


#: A ``\u`` escape of a UTF-16 surrogate (``\uD800``-``\uDFFF``): only a valid pair of them
#: stands for a character.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def surrogate_escapes(text: bytes | str) -> bool:
    r"""Whether ``text`` may hold a ``\u`` escape of a surrogate (a cheap search, no parse)."""
    raw = text if isinstance(text, str) else bytes(text).decode("utf-8", "surrogateescape")
    return _SURROGATE_ESCAPE.search(raw) is not None


def _lone_surrogate(value: Any) -> str | None:
    """The first lone surrogate in the strings (keys too) of a ``json.loads`` value, if any."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                return found.group()
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return None


def loads(text: bytes | str) -> Any:
    r"""``json.loads`` made strict: no duplicate keys, NaN, Infinity, overflow or lone surrogate.

    Python's parser keeps the last of two equal keys, accepts ``NaN``/``Infinity``, reads
    ``1e400`` as ``inf`` and decodes a lone ``\uD800`` to a surrogate no UTF-8 can hold;
    letting those through the slow paths would keep records the fast path rejects, or change
    their values silently. (A valid surrogate pair is its character, as in pyarrow.) Raises
    ``ValueError`` (``RecursionError`` is not reached: records nested deeper than
    ``MAX_JSON_DEPTH`` are rejected before parsing).

    >>> loads(b'"\\ud83d\\ude00"') == "\U0001F600"
    True
    >>> loads(b'"\\ud800"')
    Traceback (most recent call last):
    ...
    ValueError: a lone surrogate \ud800 is not a character (no UTF-8 holds it)
    """
    if not isinstance(text, str):  # as UTF-8, not utf-8-sig: a BOM is no whitespace
        text = bytes(text).decode("utf-8")
    value = json.loads(text, object_pairs_hook=_unique_keys, parse_float=_finite,
                       parse_int=_integer, parse_constant=_no_constant)
    if surrogate_escapes(text):
        lone = _lone_surrogate(value)
        if lone is not None:
            raise ValueError(f"a lone surrogate {lone.encode('unicode_escape').decode()} is not "
                             "a character (no UTF-8 holds it)")
    return value


_KINDS = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string",
          list: "array"}

#: Records longer than this are not parsed in Python to say what they are (a reject anyway).
_DESCRIBED_BYTES = 1 << 20


def not_an_object(text: bytes) -> str:
    """Why a record that is not a JSON object is rejected: what it holds at its top level.

    ``text`` is the record, whitespace stripped. One reason for NDJSON lines and array
    elements alike, whichever path found it.

    >>> not_an_object(b"null"), not_an_object(b"[1, 2]")
    ('not a JSON object: a top-level null', 'not a JSON object: a top-level array')
    >>> not_an_object(b"nul")
    'invalid JSON: Expecting value: line 1 column 1 (char 0)'
    """
    if len(text) > _DESCRIBED_BYTES:  # a long array or string: said by its first byte
        kind = {ord("["): "array", ord('"'): "string"}.get(text[0]) if text else None
        return f"not a JSON object: a top-level {kind}" if kind else "invalid JSON"
    try:
        value = loads(text)
    except ValueError as exc:
        return f"invalid JSON: {exc}"
    if isinstance(value, dict):
        return "invalid JSON: more than one JSON value"
    return f"not a JSON object: a top-level {_KINDS[type(value)]}"


def _verdict(text: bytes) -> str | None:
    """Why the record ``text`` gives no column: ``None`` for ``{}``, else its reject reason."""
    if nesting_depth(np.frombuffer(text, np.uint8), MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return f"JSON nested deeper than {MAX_JSON_DEPTH} levels (MAX_JSON_DEPTH)"
    if not text.startswith(b"{"):
        return not_an_object(text)
    try:
        value = loads(text)
    except ValueError as exc:
        return f"invalid JSON: {exc}"
    if not isinstance(value, dict):
        return not_an_object(text)
    if not value:
        return None
    if len(value) > MAX_COLUMNS:
        return f"more than {MAX_COLUMNS} keys (MAX_COLUMNS)"
    return "JSON that gives no column"


def nothing_found(texts: list[bytes], uri: str, *,
                  nul: bool = False) -> InputFormatError | SchemaError:
    """The error for sampled records (``texts``) that give no column: what they are.

    A ``SchemaError`` when they are objects (``{}``, or each a reject: a duplicate key...),
    an ``InputFormatError`` when none is an object or there is none; ``nul``: the sample held
    NUL bytes (UTF-16?).

    >>> nothing_found([b"{}"], "x.ndjson")
    SchemaError('x.ndjson: the records have no fields: the 1 record sampled is {}; a Parquet file needs at least one column')
    """  # noqa: E501
    hint = " (NUL bytes: UTF-16? pass --encoding)" if nul else ""
    texts = [t.strip(b" \t\r\n") for t in texts]
    texts = [t for t in texts if t]
    if not texts:
        return InputFormatError(f"no JSON object found in the input{hint}", uri=uri, offset=0)
    verdicts = [_verdict(t) for t in texts]
    first = next(((n, v) for n, v in enumerate(verdicts, 1) if v is not None), None)
    records, empty = len(texts), verdicts.count(None)
    plural = "s" if records > 1 else ""
    example = f" (record {first[0]}: {first[1]})" if first is not None else ""
    if empty:
        which = (f"the {records} record{plural} sampled {'are' if records > 1 else 'is'} {{}}"
                 if empty == records else
                 f"{empty} of the {records} records sampled are {{}}, the others rejects"
                 f"{example}")
        return SchemaError(f"the records have no fields: {which}; a Parquet file needs at "
                           "least one column", uri=uri)
    if any(t.startswith(b"{") for t in texts):
        return SchemaError("no JSON object in the sample can be read, so there is no column: "
                           f"{records} record{plural} sampled, each a reject{example}", uri=uri)
    return InputFormatError(f"no JSON object found in the input{hint}: {records} "
                            f"record{plural} sampled, none a JSON object{example}", uri=uri,
                            offset=0)


def nonfinite_reason(text: bytes) -> str:
    """Why a record pyarrow read a non-finite number from is a reject: its own text says.

    >>> nonfinite_reason(b'{"a": NaN}')
    'invalid JSON: NaN is not JSON (RFC 8259 has no NaN or Infinity)'
    """
    try:
        loads(text)
    except ValueError as exc:
        return f"invalid JSON: {exc}"
    return "a number is beyond the range of float64"


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
    :class:`NotAnObject` when ``data`` does not start with an object (pyarrow would crash on
    a ``null``; the caller must reject the records that are not objects before the others).

    Dates are read as :mod:`engine.readers.json_types` says: a ``date32`` field of ``schema``
    from its ``YYYY-MM-DD`` text, and an inferred column whose values are all dates alone as
    ``date32``, not ``timestamp[s]``.
    """
    lead = _LEADING_WS.match(data)
    if lead is not None and lead.end() < len(data) and data[lead.end()] != _LBRACE:
        raise NotAnObject("not a JSON object")
    if fields == "infer":
        _check_keys(data, multiline, records)
    if schema is not None and not schema.names:
        schema = None
    if not len(data) or data[-1] != 10:  # pyarrow wants the last object terminated
        data = bytes(data) + b"\n"
    text = dates_as_text(schema) if schema is not None else None
    table = _read(data, text or schema, fields, multiline)
    if text is not None:
        table = restore_dates(table, schema)  # type: ignore[arg-type]
    if fields == "infer":
        table = _inferred_dates(table, data, schema, multiline)
    return table


_LEADING_WS = re.compile(rb"[ \t\r\n]*")
_LBRACE = ord("{")


def _read(data: bytes | memoryview | bytearray, schema: pa.Schema | None, fields: str,
          multiline: bool) -> pa.Table:
    parse = pajson.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior=fields, newlines_in_values=multiline
    )
    read = pajson.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20))
    return pajson.read_json(pa.py_buffer(data), read_options=read, parse_options=parse)


def _inferred_dates(table: pa.Table, data: bytes | memoryview | bytearray,
                    schema: pa.Schema | None, multiline: bool) -> pa.Table:
    """``table`` with its inferred columns of dates written alone typed ``date32``.

    Costs a second parse of ``data``, of those columns only, when an inferred timestamp
    column holds nothing but midnights.
    """
    candidates = midnight_columns(table, schema)
    if not candidates:
        return table
    text = _read(data, timestamps_as_text(table, candidates), "ignore", multiline)
    dates = date_only(text, candidates)
    return as_dates(table, dates) if dates else table


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
    """Slow general path: ``json.loads`` each text, then let pyarrow build the rows.

    Used only for chunks pyarrow cannot take with the schema as they are: a value in a column
    widened to string that is not a string (a number, a list, an object) becomes its JSON text
    there, and the objects, written again as JSON, are parsed with ``schema`` (so types convert
    exactly as on the fast path). Raises ``ValueError`` on any unparseable text, and
    ``pyarrow.ArrowInvalid`` when a value still does not fit.
    """
    string_cols = {f.name for f in schema if pa.types.is_string(f.type)}
    names = set(schema.names)
    rows = []
    for text in texts:
        obj = loads(text)
        if not isinstance(obj, dict):
            raise ValueError(not_an_object(text.strip()))
        for key in string_cols & obj.keys():
            value = obj[key]
            if value is not None and not isinstance(value, str):
                obj[key] = json.dumps(value, ensure_ascii=False)
        if not names.issuperset(obj):
            raise ValueError(f"fields outside the schema: {sorted(set(obj) - names)}")
        rows.append(json.dumps(obj, ensure_ascii=False).encode())
    if not rows:
        return schema.empty_table()
    table = parse_json_objects(b"\n".join(rows), schema, fields="error", records=len(rows))
    if table.num_rows != len(rows):
        raise ValueError("pyarrow found a different number of objects than json.loads")
    return table


def _fits(value: object, typ: pa.DataType) -> bool:
    """Whether a ``json.loads`` value is of the JSON kind a column of ``typ`` reads."""
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


def object_schema(text: bytes, *, multiline: bool = False) -> pa.Schema:
    """The schema of one JSON object: pyarrow's inference, a column it cannot type as text.

    A value Arrow cannot type (a list mixing numbers and strings, ``[1, "x"]``, or a struct
    whose field does) is valid JSON: its top-level column is a string column, holding the JSON
    text, as a column whose values differ in type across records becomes (README: a value that
    does not fit widens its column and never fails the run).

    Raises:
        TooManyKeys: the object has more than ``MAX_COLUMNS`` keys.
        ValueError: ``text`` is not one valid JSON object (``NaN`` included, which pyarrow
            reads); the message is the reject's reason.

    >>> object_schema(b'{"n": 1, "v": [1, "x"]}')
    n: int64
    v: string
    """
    try:
        table = parse_json_objects(text, None, multiline=multiline, records=1)
    except TooManyKeys:
        raise
    except pa.ArrowInvalid:
        pass
    else:
        if table.num_rows == 1 and nonfinite_rows(table, nan=True) is None:
            return table.schema
    try:
        value = loads(text)
    except ValueError as exc:  # invalid JSON, or more than one value
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(not_an_object(text.strip()))
    as_text = {key for key, item in value.items()
               if isinstance(item, list | dict) and not _arrow_types({key: item})}
    rest = {key: item for key, item in value.items() if key not in as_text}
    typed = parse_json_objects(json.dumps(rest).encode(), None, records=1).schema if rest \
        else pa.schema([])
    return pa.schema([pa.field(key, pa.string()) if key in as_text else typed.field(key)
                      for key in value])


def _arrow_types(value: dict[str, Any]) -> bool:
    """Whether pyarrow's JSON parser can type the object ``value``."""
    try:
        parse_json_objects(json.dumps(value).encode(), None, records=1)
    except pa.ArrowInvalid:
        return False
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
            rejects.append(Reject.make(records[i], starts[i], not_an_object(text.strip()), text,
                                       check="json"))
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

