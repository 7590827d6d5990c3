r"""NDJSON (JSON Lines) through pyarrow's JSON parser, in line-aligned chunks with a fixed schema.

A raw line break cannot occur inside a JSON string, so every ``\\n`` is a record boundary. A chunk
that pyarrow rejects is bisected on line boundaries until the bad lines are isolated, so a few
unparseable lines cost O(log n) extra parses of their chunk, never a per-line Python loop over the
good ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import BinaryIO, ClassVar

import pyarrow as pa
import pyarrow.json as pajson

from engine.config import ReadOptions
from engine.errors import InputFormatError
from engine.readers.base import (
    Chunk,
    Reject,
    Sample,
    SchemaWidening,
    Widening,
    aligned_pieces,
    first_invalid_utf8,
    unify_schemas,
    unify_types,
    widenings,
)

__all__ = ["NdjsonReader", "parse_json_objects", "python_parse", "sort_out"]


def parse_json_objects(
    data: bytes | memoryview, schema: pa.Schema | None, *, multiline: bool = False
) -> pa.Table:
    """Parse whitespace-separated JSON objects with pyarrow, as one block on one thread.

    With ``schema``, its fields are read with those types and fields outside it are inferred and
    appended (the caller widens on them). Raises ``pyarrow.ArrowInvalid`` on bad input.
    """
    if not len(data) or data[-1] != 10:  # pyarrow wants the last object terminated
        data = bytes(data) + b"\n"
    parse = pajson.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior="infer", newlines_in_values=multiline
    )
    read = pajson.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20))
    return pajson.read_json(pa.py_buffer(data), read_options=read, parse_options=parse)


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
        obj = json.loads(text)
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


#: Below this many lines a failing group is sorted out line by line (see ``_leaf``).
_LEAF_LINES = 64


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
            obj = json.loads(text)
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
                                   multiline=multiline)
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
                alone = parse_json_objects(texts[i], schema, multiline=multiline)
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
    return [], rejects, [(table.schema, records[good[0]])]


def json_failure(text: bytes, exc: Exception) -> str:
    """Why pyarrow refused ``text``.

    Either invalid JSON, or valid JSON that Arrow cannot type (a list mixing numbers and strings).
    """
    try:
        json.loads(text)
    except ValueError:
        return f"invalid JSON: {_reason(exc)}"
    return f"JSON that Arrow cannot type: {_reason(exc)}"


def _reason(exc: Exception) -> str:
    return str(exc).removeprefix("JSON parse error: ").split(" in row ")[0]


class NdjsonReader:
    """Reads one JSON object per line; blank lines are skipped, bad lines rejected."""

    format: ClassVar[str] = "ndjson"

    def __init__(self, uri: str, options: ReadOptions) -> None:
        self.uri = uri
        self.options = options
        self.widened: list[Widening] = []

    @staticmethod
    def _cut(buf: bytes | bytearray, end: int | None = None) -> int:
        return buf.rfind(b"\n", 0, len(buf) if end is None else end) + 1

    def infer_schema(self, samples: list[Sample]) -> pa.Schema:
        """Infer one schema from the head and ranged samples (whole lines only)."""
        schema: pa.Schema | None = None
        for sample in samples:
            data = sample.whole_records(self._cut)
            if not data.strip():
                continue
            try:
                found = [parse_json_objects(data, None).schema]
            except pa.ArrowInvalid:  # a bad line must not spoil inference: take the good ones
                found = []
                for line in data.split(b"\n"):
                    if not line.strip():
                        continue
                    try:
                        found.append(parse_json_objects(line, None).schema)
                    except pa.ArrowInvalid:
                        continue
            for seen in found:
                schema = seen if schema is None else unify_schemas(schema, seen)
        if schema is None or not schema.names:
            raise InputFormatError("no JSON object found in the input", uri=self.uri, offset=0)
        return _nulls_as_string(schema)

    def read(
        self, stream: BinaryIO, schema: pa.Schema, *, widen: str = "restart",
        strict: frozenset[str] = frozenset(),
    ) -> Iterator[Chunk]:
        """Parse the stream in chunks; see :class:`engine.readers.base.Reader`."""
        next_record = 1
        pieces = aligned_pieces(stream, self._cut, block_size=self.options.block_size,
                                max_record_bytes=self.options.max_record_bytes, uri=self.uri,
                                first_record=lambda: next_record)
        for offset, piece, _last in pieces:
            table, rejects, records, schema = self._parse_chunk(piece, schema, offset,
                                                                next_record, widen, strict)
            if records:
                yield Chunk(table, next_record, records, offset, rejects)
            next_record += records

    def _parse_chunk(
        self, piece: memoryview | bytes, schema: pa.Schema, offset: int, first: int, widen: str,
        strict: frozenset[str] = frozenset(),
    ) -> tuple[pa.Table, list[Reject], int, pa.Schema]:
        bad = first_invalid_utf8(piece)  # pyarrow's JSON parser copies invalid UTF-8 as is
        if bad is not None:
            before = bytes(piece[: bad[0]])
            records = sum(1 for ln in before[: before.rfind(b"\n") + 1].split(b"\n")
                          if ln.strip())
            raise InputFormatError(
                f"bytes are not valid UTF-8 ({bad[1]}); use --encoding for other encodings",
                uri=self.uri, record=first + records, offset=offset + bad[0])
        try:
            table = parse_json_objects(piece, schema)
            error = ""
        except pa.ArrowInvalid as exc:
            table, error = None, str(exc)
        if table is not None and table.schema.equals(schema):
            records = table.num_rows
            return table, [], records, schema
        # Slow path: isolate bad lines, widen on values that do not fit.
        piece = bytes(piece)
        lines = [ln for ln in piece.split(b"\n") if ln.strip()]
        starts = _line_offsets(piece, offset)
        if "changed from string to" in error and not strict:
            # Mixed JSON types in a column already widened to string: pyarrow cannot put a
            # number into a string column; json.loads can (as its JSON text), ~4x slower.
            tables, rejects, seen = self._leaf(lines, starts, 0, schema, first, strict)
        else:
            tables, rejects, seen = self._bisect(lines, starts, 0, schema, first, strict)
        wider = schema
        for s in seen:
            wider = unify_schemas(wider, s, strict)
        if not wider.equals(schema):
            changes = widenings(schema, wider, first)
            if widen == "restart":
                raise SchemaWidening(wider, changes)
            self.widened.extend(changes)
            return self._parse_chunk(piece, wider, offset, first, widen, strict)[:3] + (wider,)
        parts = [t.select(schema.names) for t in tables if t.num_rows]
        table = pa.concat_tables(parts) if parts else schema.empty_table()
        return table, rejects, len(lines), schema

    def _bisect(
        self, lines: list[bytes], starts: list[int], base: int, schema: pa.Schema, first: int,
        strict: frozenset[str] = frozenset(),
    ) -> tuple[list[pa.Table], list[Reject], list[pa.Schema]]:
        """Parse ``lines`` (records ``first + base ...``), halving until failures are single lines.

        Returns the good tables, the rejects and any wider schemas seen.
        """
        if len(lines) <= _LEAF_LINES:
            return self._leaf(lines, starts, base, schema, first, strict)
        try:
            table = parse_json_objects(b"\n".join(lines), schema)
            if table.schema.equals(schema):
                return [table], [], []
            return [], [], [table.schema]
        except pa.ArrowInvalid as exc:
            if len(lines) > 1:
                mid = len(lines) // 2
                a = self._bisect(lines[:mid], starts, base, schema, first, strict)
                b = self._bisect(lines[mid:], starts, base + mid, schema, first, strict)
                return a[0] + b[0], a[1] + b[1], a[2] + b[2]
            return self._single(lines[0], starts[base], schema, first + base, exc, strict)

    def _leaf(
        self, lines: list[bytes], starts: list[int], base: int, schema: pa.Schema, first: int,
        strict: frozenset[str],
    ) -> tuple[list[pa.Table], list[Reject], list[pa.Schema]]:
        def single(text: bytes, start: int, record: int, exc: Exception) -> tuple:
            tables, rejects, seen = self._single(text, start, schema, record, exc, strict)
            return tables, rejects, [(w, record) for w in seen]

        n = len(lines)
        tables, rejects, seen = sort_out(lines, starts[base:base + n],
                                         list(range(first + base, first + base + n)), schema,
                                         strict, single)
        return tables, rejects, [w for w, _ in seen]

    def _single(
        self, line: bytes, start: int, schema: pa.Schema, record: int, exc: Exception,
        strict: frozenset[str] = frozenset(),
    ) -> tuple[list[pa.Table], list[Reject], list[pa.Schema]]:
        try:
            inferred = parse_json_objects(line, None).schema
        except pa.ArrowInvalid as inner:
            return [], [Reject.make(record, start, json_failure(line, inner), line,
                                    check="json")], []
        wider = unify_schemas(schema, inferred, strict)
        if not wider.equals(schema):
            return [], [], [wider]
        for name in strict & set(inferred.names):
            expected = schema.field(name).type
            found = inferred.field(name).type
            if not unify_types(expected, found).equals(expected):
                return [], [Reject.make(record, start, f"{name}: a {found} value is not "
                                        f"{expected}", line, column=name, check="type")], []
        try:  # the value fits only as JSON text in a string column
            return [python_parse([line], schema)], [], []
        except (ValueError, TypeError, pa.ArrowException):
            return [], [Reject.make(record, start, json_failure(line, exc), line,
                                    check="json")], []


def _line_offsets(piece: bytes, offset: int) -> list[int]:
    """Byte offsets of the non-blank lines of ``piece`` (only computed on the slow path)."""
    out = []
    pos = 0
    for line in piece.split(b"\n"):
        if line.strip():
            out.append(offset + pos)
        pos += len(line) + 1
    return out


def _nulls_as_string(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type)
                      for f in schema])
