"""Documents for the fuzz targets, each drawn with what it holds, computed without the engine.

A strategy here draws typed columns of values, renders them as CSV, NDJSON or a JSON array (or
the array at a path), and keeps, beside the bytes: the rows the engine must write (column ->
the Python value pyarrow returns for it), the kind each column must be read as, which records
must be rejects, the id token of every record and each record's byte span. The expected values
come from the drawn values alone, so a record the engine drops, invents or changes is visible
even when its own report agrees with its own files.

:func:`mutate` changes a document's bytes a little (flip, insert, cut) and keeps the ids of the
records no edit touched: a run that succeeds on it must still have each of those somewhere in
its output or its rejects.

Record ids are tokens ``K<n>Z`` in a column ``id``, unique and never a prefix of one another.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

#: Bytes that matter to the parsers, and some that should not be there.
SPECIAL = b'{}[],:"\\\n\r\t ;|0123456789.eE+-truefalsnl\x00\xff\xc3\xa9\xed\xa0\x80'

#: The Arrow types each column kind must be read as.
KIND_TYPES: dict[str, Callable[[pa.DataType], bool]] = {
    "id": pa.types.is_string,
    "int": lambda t: t == pa.int64(),
    "float": lambda t: t == pa.float64(),
    "text": pa.types.is_string,
    "bool": pa.types.is_boolean,
    "date": lambda t: t == pa.date32(),
    "timestamp": pa.types.is_timestamp,
    "date-or-timestamp": pa.types.is_timestamp,  # a column mixing both widens to timestamp
    "zeros": pa.types.is_string,  # integers with leading zeros keep their text
    "int-list": lambda t: pa.types.is_list(t) and t.value_type == pa.int64(),
    "mixed-list": pa.types.is_string,  # a value Arrow cannot type is its JSON text
    "struct": pa.types.is_struct,
}

#: Kinds whose output is JSON text, compared parsed.
JSON_TEXT_KINDS = frozenset({"mixed-list"})


@dataclass
class Doc:
    """A generated input and what the engine must make of it."""

    data: bytes
    fmt: str  # csv | ndjson | json | json-path
    options: dict[str, Any]  # the read options the document is written for
    kinds: dict[str, str]  # column -> kind (KIND_TYPES)
    rows: list[dict[str, Any]]  # the rows to write, in input order
    records: int  # records written: rows plus rejects
    rejects: list[int]  # 1-based numbers of the records that must be rejects
    ids: list[str]  # the id of each record, in order
    spans: list[tuple[int, int]]  # each record's bytes [start, end), terminator included
    exact: bool = True  # False once mutated: only ``untouched`` is promised
    untouched: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Values


def record_id(n: int) -> str:
    return f"K{n}Z"


_TEXT_CHARS = list("ab1.-, ;|\t'\"\né€😀日\u2028")
dates = st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31))
timestamps = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 12, 31)).map(
    lambda t: t.replace(microsecond=0))
#: Text that no reader may take for a number, a boolean, a date or a null marker.
texts = st.text(st.sampled_from(_TEXT_CHARS), max_size=8).map(lambda s: "s-" + s)
json_texts = st.text(max_size=8).map(lambda s: "s-" + s)  # any character, astral ones too


@st.composite
def zero_padded(draw: st.DrawFn) -> str:
    return "0" * draw(st.integers(1, 3)) + str(draw(st.integers(1, 99_999)))


@st.composite
def mixed_list(draw: st.DrawFn) -> list[Any]:
    """A JSON list whose elements are not all of one type."""
    items = draw(st.lists(st.one_of(st.integers(-99, 99), texts, st.booleans(), st.none()),
                          max_size=4))
    return [draw(st.integers(0, 9)), draw(texts), *items]


#: kind -> the Python values a CSV column of that kind holds (rendered by :func:`csv_text`).
CSV_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "text": texts | st.just(""),
    "bool": st.booleans(),
    "date": dates,
    "timestamp": timestamps,
    "date-or-timestamp": dates | timestamps,
    "zeros": zero_padded() | st.integers(0, 999).map(str),
}
#: kind -> the Python values a JSON column of that kind holds (as :func:`json_value` writes).
JSON_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "text": json_texts,
    "bool": st.booleans(),
    "date": dates,
    "timestamp": timestamps,
    "date-or-timestamp": dates | timestamps,
    "zeros": zero_padded(),
    "int-list": st.lists(st.integers(-(2**63), 2**63 - 1) | st.none(), max_size=3),
    "mixed-list": mixed_list(),
    "struct": st.fixed_dictionaries({"k": st.integers(-99, 99), "t": json_texts}),
}
#: A value each column kind must hold at least once (so that its type is decided by it); a
#: column mixing dates and timestamps holds a timestamp, and a date when it has two rows.
WITNESS: dict[str, Callable[[Any], bool]] = {
    "text": lambda v: v != "",
    "zeros": lambda v: v.startswith("0") and v != "0",
    "date-or-timestamp": lambda v: isinstance(v, dt.datetime),
    "int-list": lambda v: any(x is not None for x in v),
}


def csv_text(kind: str, value: Any) -> str:
    """A value as a CSV field's text (unquoted)."""
    if value is None:
        return ""
    if kind == "bool":
        return "true" if value else "false"
    if kind == "float":
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def json_value(kind: str, value: Any) -> Any:
    """A value as it is written in JSON (dates and timestamps as ISO strings)."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def read_back(kind: str, value: Any) -> Any:
    """The Python value pyarrow returns for ``value`` read as ``kind``."""
    if value is None:
        return None
    if kind == "date-or-timestamp" and not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day)
    return value


# ---------------------------------------------------------------------------------------------
# Tables of values


@st.composite
def columns(draw: st.DrawFn, kinds: list[str], names: list[str],
            required: str | None = None) -> dict[str, str]:
    """Column name -> kind: ``id`` first, then one to three drawn columns (one ``required``)."""
    count = draw(st.integers(1, 3))
    chosen = draw(st.lists(st.sampled_from(names), min_size=count, max_size=count, unique=True))
    table = {"id": "id", **{name: draw(st.sampled_from(kinds)) for name in chosen}}
    if required is not None:
        table[draw(st.sampled_from(chosen))] = required
    return table


@st.composite
def values(draw: st.DrawFn, table: dict[str, str], rows: int,
           pool: dict[str, st.SearchStrategy[Any]], nulls: bool) -> list[dict[str, Any]]:
    """``rows`` records of drawn values; each column holds its kind's witness at least once."""
    out: list[dict[str, Any]] = [{"id": record_id(i)} for i in range(rows)]
    for name, kind in table.items():
        if kind == "id":
            continue
        strategy = pool[kind]
        if nulls and kind not in ("text", "zeros"):  # "" is a text; a null would be ambiguous
            strategy = strategy | st.none()
        column = draw(st.lists(strategy, min_size=rows, max_size=rows))
        witness = WITNESS.get(kind, lambda v: v is not None)
        if not any(v is not None and witness(v) for v in column):
            column[draw(st.integers(0, rows - 1))] = draw(pool[kind].filter(witness))
        if kind == "date-or-timestamp" and rows > 1 and not any(
                v is not None and not isinstance(v, dt.datetime) for v in column):
            # Every value a timestamp (or null): one, not the only timestamp, becomes a date.
            stamps = [i for i, v in enumerate(column) if isinstance(v, dt.datetime)]
            spare = [i for i in range(rows) if i not in stamps] or stamps[1:]
            column[draw(st.sampled_from(spare))] = draw(dates)
        for row, value in zip(out, column, strict=True):
            row[name] = value
    return out


# ---------------------------------------------------------------------------------------------
# CSV


CSV_NAMES = ["n", "é", "a b", "x,y", 'q"t', "日付"]


def csv_cell(text: str, delimiter: str, quote_all: bool) -> str:
    if quote_all or any(c in text for c in f'"{delimiter}\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


@st.composite
def csv_docs(draw: st.DrawFn, kinds: list[str], required: str | None = None,
             max_rows: int = 12) -> Doc:
    """A CSV document with a header, typed columns, and what it must convert to."""
    table = draw(columns(kinds, CSV_NAMES, required))
    rows = draw(values(table, draw(st.integers(1, max_rows)), CSV_VALUES, nulls=True))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    quote_all = draw(st.booleans())
    final_newline = draw(st.booleans())
    lines = [delimiter.join(csv_cell(name, delimiter, quote_all) for name in table)]
    for row in rows:
        lines.append(delimiter.join(csv_cell(csv_text(table[k], row[k]), delimiter, quote_all)
                                    for k in table))
    data, spans = join_records(lines, newline, final_newline)
    expected = [{k: (row[k] if table[k] in ("id", "text", "zeros") else
                     read_back(table[k], row[k])) for k in table} for row in rows]
    return Doc(data, "csv", {"delimiter": delimiter, "header": True}, table, expected,
               len(rows), [], [r["id"] for r in rows], spans[1:])


def join_records(lines: list[str], newline: str, final: bool,
                 ) -> tuple[bytes, list[tuple[int, int]]]:
    """The lines as bytes, and each line's span (with its line break)."""
    out = bytearray()
    spans = []
    for i, line in enumerate(lines):
        start = len(out)
        out += line.encode()
        if i < len(lines) - 1 or final:
            out += newline.encode()
        spans.append((start, len(out)))
    return bytes(out), spans


# ---------------------------------------------------------------------------------------------
# JSON


JSON_NAMES = ["n", "é", "a b", "x.y", 'q"t', "日付"]

#: Bad records: JSON text that must be a reject whatever surrounds it, by class.
NON_OBJECTS = ["null", "true", "false", "1", "-2.5", '"x"', "[1]", "[]", '[{"id":"x"}]']
#: ``$F`` stands for the name of a float column: there the number would fit, were it JSON.
NAN_SPELLINGS = ['{"id":"x",$F:NaN}', '{"id":"x",$F:-NaN}', '{$F:Infinity,"id":"x"}',
                 '{"id":"x",$F:-Infinity}', '{"id":NaN}', '{"id":["a",-Infinity]}']
#: Records that are not JSON, their brackets balanced (so an array's elements stay apart).
INVALID_JSON = ['{"id":"x",}', '{"id" "x"}', "{id:1}", '{"id":"x" "y"}', '{"id":tru}']
#: Escapes that decode to text without a UTF-8 form: lone or mismatched surrogates.
BAD_SURROGATES = ['{"id":"\\ud800"}', '{"id":"\\udc00x"}', '{"id":"\\ud800\\ud800"}',
                  '{"id":"\\ud888\\u1234"}', '{"id":"a\\udfff"}']


@st.composite
def json_records(draw: st.DrawFn, kinds: list[str], bad: list[str] | None = None,
                 required: str | None = None, max_rows: int = 10,
                 ) -> tuple[dict[str, str], list[str], list[dict[str, Any]], list[int], list[str]]:
    """Typed records as JSON texts, with ``bad`` texts put among them as rejects.

    Returns the columns, each record's text, the rows to write, the 1-based numbers of the bad
    records, and every record's id.
    """
    table = draw(columns(kinds, JSON_NAMES, required))
    rows = draw(values(table, draw(st.integers(1, max_rows)), JSON_VALUES, nulls=True))
    ascii_only = draw(st.booleans())  # \\u escapes, astral characters as surrogate pairs
    texts_out = []
    for row in rows:
        obj = {}
        for k, v in row.items():
            if v is None and draw(st.booleans()):
                continue  # a missing key is a null too
            obj[k] = json_value(table[k], v)
        texts_out.append(json.dumps(obj, ensure_ascii=ascii_only))
    ids = [r["id"] for r in rows]
    rejects: list[int] = []
    if bad:
        floats = [json.dumps(k) for k, kind in table.items() if kind == "float"]
        for text in draw(st.lists(st.sampled_from(bad), min_size=1, max_size=3)):
            if "$F" in text:
                text = text.replace("$F", floats[0] if floats else '"f"')
            at = draw(st.integers(0, len(texts_out)))
            texts_out.insert(at, text)
            ids.insert(at, "")
        rejects = [i + 1 for i, record_id_ in enumerate(ids) if not record_id_]
    expected = [{k: read_back(table[k], row.get(k)) for k in table} for row in rows]
    return table, texts_out, expected, rejects, ids


@st.composite
def ndjson_docs(draw: st.DrawFn, kinds: list[str], bad: list[str] | None = None,
                required: str | None = None) -> Doc:
    """NDJSON lines of typed records (line breaks LF or CRLF, the last one optional)."""
    table, lines, expected, rejects, ids = draw(json_records(kinds, bad, required))
    data, spans = join_records(lines, draw(st.sampled_from(["\n", "\r\n"])), draw(st.booleans()))
    return Doc(data, "ndjson", {}, table, expected, len(lines), rejects, ids, spans)


@st.composite
def array_docs(draw: st.DrawFn, kinds: list[str], bad: list[str] | None = None,
               required: str | None = None, at_path: bool = False) -> Doc:
    """A JSON array of typed records, or the array at ``data`` in a document (``at_path``)."""
    table, elements, expected, rejects, ids = draw(json_records(kinds, bad, required))
    separator = draw(st.sampled_from([",", ", ", ",\n", "\n,\n  "]))
    head = b'{"meta":{"x":[1,"]"]},"data":[' if at_path else b"["
    data, spans = bytearray(head), []
    for i, text in enumerate(elements):
        if i:
            data += separator.encode()
        spans.append((len(data), len(data) + len(text.encode())))
        data += text.encode()
    data += b"]}" if at_path else b"]"
    options = {"json_path": "data.item"} if at_path else {}
    return Doc(bytes(data), "json-path" if at_path else "json", options, table, expected,
               len(elements), rejects, ids, spans)


@st.composite
def value_array_docs(draw: st.DrawFn) -> Doc:
    """A JSON array of strings or of integers (no objects): rows ``{"value": element}``.

    Strings carry escapes, surrogate pairs among them; lone and mismatched surrogates, ``NaN``
    and ``Infinity`` are put among them. An element whose decoded text has no UTF-8 form (a
    lone surrogate) or that is not JSON must be a reject; the others must read back equal to
    Python's ``json.loads`` of them.
    """
    kind = draw(st.sampled_from(["text", "int"]))
    good = draw(st.lists(JSON_VALUES[kind], min_size=1, max_size=8))
    bad = ["NaN", "-Infinity", "Infinity", '"\\ud800"', '"\\udc00x"', '"\\ud800\\ud800"',
           '"\\ud888\\u1234"']
    elements = [json.dumps(v, ensure_ascii=True) for v in good]
    pairs = ['"\\ud83d\\ude00"', '"\\uD83D\\uDE00x"', '"\\u00e9\\u2028"']
    extra = draw(st.lists(st.sampled_from(bad + pairs if kind == "text" else bad), max_size=3))
    for text in extra:
        elements.insert(draw(st.integers(0, len(elements))), text)
    rows, rejects = [], []
    for i, text in enumerate(elements):
        if text in bad:
            rejects.append(i + 1)
        else:
            rows.append({"value": json.loads(text)})
    data = ("[" + ",".join(elements) + "]").encode()
    return Doc(data, "json", {}, {"value": kind}, rows, len(elements), rejects, [], [])


# ---------------------------------------------------------------------------------------------
# Mutations


@st.composite
def mutate(draw: st.DrawFn, doc: Doc) -> Doc:
    """``doc`` with one to four bytes flipped, inserted or cut; the untouched records' ids kept.

    Edits are drawn at positions of the original bytes and applied from the last to the first,
    so that each one's position in the original is known; a record is touched when an edit falls
    inside its span (an insertion also touches the record before it).
    """
    data = bytearray(doc.data)
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "cut"])) if data else "insert"
        at = draw(st.integers(0, max(len(data) - (op != "insert"), 0)))
        payload = b""
        if op == "insert":
            payload = draw(st.binary(min_size=1, max_size=4) | st.sampled_from(
                [SPECIAL[i:i + 1] for i in range(len(SPECIAL))]))
        size = draw(st.integers(1, 8)) if op == "cut" else 1
        edits.append((at, op, payload, size))
    touched: list[tuple[int, int]] = []
    # last position first; at one position a flip before a cut (which may take that byte) before
    # an insertion (in front of it), so every edit lands on the original byte it was drawn for
    rank = {"flip": 2, "cut": 1, "insert": 0}
    for at, op, payload, size in sorted(edits, key=lambda e: (e[0], rank[e[1]]), reverse=True):
        if op == "insert":
            data[at:at] = payload
            touched.append((at - 1, at))
        elif op == "flip":
            data[at] ^= draw(st.integers(1, 255))
            touched.append((at, at))
        else:
            del data[at:at + size]
            touched.append((at, at + size - 1))
    untouched = [record for record, (start, end) in zip(doc.ids, doc.spans, strict=True)
                 if record and not any(a < end and b >= start for a, b in touched)]
    return replace(doc, data=bytes(data), exact=False, untouched=untouched)


def noise() -> st.SearchStrategy[bytes]:
    """Bytes with no document in them: random, or the parsers' special bytes."""
    return st.binary(max_size=300) | st.lists(
        st.sampled_from([SPECIAL[i:i + 1] for i in range(len(SPECIAL))]), max_size=200
    ).map(b"".join)
