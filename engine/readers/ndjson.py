r"""NDJSON (JSON Lines) through pyarrow's JSON parser, in line-aligned chunks with a fixed schema.

A raw line break cannot occur inside a JSON string, so every ``\\n`` is a record boundary. A chunk
that pyarrow rejects is bisected on line boundaries until the bad lines are isolated, so a few
unparseable lines cost O(log n) extra parses of their chunk, never a per-line Python loop over the
good ones. The parsing it shares with the JSON array reader is :mod:`engine.readers.json_common`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, ClassVar

import numpy as np
import pyarrow as pa

from engine.config import MAX_COLUMNS, MAX_JSON_DEPTH, ReadOptions
from engine.errors import InputFormatError
from engine.readers.base import Chunk, Reject, Sample, SchemaWidening, Widening
from engine.readers.json_common import (
    json_failure,
    parse_json_objects,
    python_parse,
    sort_out,
    strict_misfit,
)
from engine.readers.scan import deep_lines
from engine.readers.schema import (
    check_rows_have_columns,
    check_width,
    nonfinite_rows,
    storable,
    unify_schemas,
    widenings,
)
from engine.readers.streams import aligned_pieces, first_invalid_utf8

__all__ = ["NdjsonReader"]


#: Below this many lines a failing group is sorted out line by line (see ``_leaf``).
_LEAF_LINES = 64


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
        """Infer one schema from the head and ranged samples (whole lines only).

        Lines nested deeper than ``MAX_JSON_DEPTH`` are left out (``read`` rejects them). A head
        that holds no complete line (a first record longer than the sample) gives an empty
        schema: ``read`` then widens from its first chunk.
        """
        schema: pa.Schema | None = None
        truncated = False
        for sample in samples:
            data = sample.whole_records(self._cut)
            if sample.at_start:
                if not data and sample.data.strip() and not sample.at_end:
                    truncated = True  # the first record is longer than the sample
                    continue
                self._check_utf8(data, 0, 1)
            elif first_invalid_utf8(data) is not None:
                continue  # read() reports it, with its record number
            deep = deep_lines(np.frombuffer(data, np.uint8), MAX_JSON_DEPTH)
            if deep:
                data = _without(data, deep)
            if not data.strip():
                continue
            for seen in self._infer(data):
                schema = seen if schema is None else unify_schemas(schema, seen)
        if truncated and (schema is None or not schema.names):
            return pa.schema([])
        if schema is None or not schema.names:
            hint = " (NUL bytes: UTF-16? pass --encoding)" if any(
                b"\x00" in s.data for s in samples) else ""
            raise InputFormatError(f"no JSON object found in the input{hint}", uri=self.uri,
                                   offset=0)
        return check_width(_nulls_as_string(schema), self.uri)

    @staticmethod
    def _infer(data: bytes) -> list[pa.Schema]:
        """Schemas of the objects in ``data``, parsed in groups of at most ``MAX_COLUMNS`` keys.

        Typical records repeat one set of keys: the first group's schema is then tried on the
        rest in one parse that can add no column (``fields="error"``), which also checks that
        every value fits its inferred type. Anything else (a new key, a wider value, a bad
        line) fails that parse, and the rest is inferred group by group.
        """
        first, rest = _first_key_group(data)
        found = NdjsonReader._infer_groups([first])
        if rest and found and found[0].names:
            try:
                if parse_json_objects(rest, found[0], fields="error").schema.equals(found[0]):
                    return found
            except pa.ArrowInvalid:
                pass
        return found + NdjsonReader._infer_groups(_key_groups(rest) if rest else [])

    @staticmethod
    def _infer_groups(groups: list[bytes]) -> list[pa.Schema]:
        found = []
        for group in groups:
            try:
                found.append(parse_json_objects(group, None).schema)
            except pa.ArrowInvalid:  # a bad line must not spoil inference: take the good ones
                for line in group.split(b"\n"):
                    if not line.strip():
                        continue
                    try:
                        found.append(parse_json_objects(line, None, records=1).schema)
                    except pa.ArrowInvalid:
                        continue
        return found

    def read(
        self, stream: BinaryIO, schema: pa.Schema, *, widen: str = "restart",
        strict: frozenset[str] = frozenset(),
    ) -> Iterator[Chunk]:
        """Parse the stream in chunks; see :class:`engine.readers.base.Reader`.

        A line nested deeper than ``MAX_JSON_DEPTH`` is rejected before any parser sees it; a
        number beyond float64 (``1e400``, which pyarrow reads as infinity) rejects its record.
        """
        next_record = 1
        pieces = aligned_pieces(stream, self._cut, block_size=self.options.block_size,
                                max_record_bytes=self.options.max_record_bytes, uri=self.uri,
                                first_record=lambda: next_record)
        for offset, piece, _last in pieces:
            self._check_utf8(piece, offset, next_record)
            deep = deep_lines(np.frombuffer(piece, np.uint8), MAX_JSON_DEPTH)
            for start, end, too_deep in _segments(len(piece), deep):
                part = piece[start:end]
                if too_deep:
                    reject = Reject.make(next_record, offset + start,
                                         f"JSON nested deeper than {MAX_JSON_DEPTH} levels "
                                         "(MAX_JSON_DEPTH)", part, check="json")
                    yield Chunk(schema.empty_table(), next_record, 1, offset + start, [reject])
                    next_record += 1
                    continue
                table, rejects, records, schema = self._parse_chunk(
                    part, schema, offset + start, next_record, widen, strict)
                if records:
                    table, rejects = self._drop_nonfinite(table, rejects, part, offset + start,
                                                          next_record, records)
                    yield Chunk(table, next_record, records, offset + start, rejects)
                next_record += records

    def _check_utf8(self, piece: memoryview | bytes, offset: int, first: int) -> None:
        bad = first_invalid_utf8(piece)  # pyarrow's JSON parser copies invalid UTF-8 as is
        if bad is not None:
            before = bytes(piece[: bad[0]])
            records = sum(1 for ln in before[: before.rfind(b"\n") + 1].split(b"\n")
                          if ln.strip())
            raise InputFormatError(
                f"bytes are not valid UTF-8 ({bad[1]}); use --encoding for other encodings",
                uri=self.uri, record=first + records, offset=offset + bad[0])

    @staticmethod
    def _drop_nonfinite(table: pa.Table, rejects: list[Reject], piece: memoryview | bytes,
                        offset: int, first: int,
                        records: int) -> tuple[pa.Table, list[Reject]]:
        """Reject the records holding a number beyond float64: pyarrow reads 1e400 as inf."""
        bad = nonfinite_rows(table)
        if bad is None:
            return table, rejects
        numbers = Chunk(table, first, records, offset, rejects).row_records()[bad]
        text = bytes(piece)
        lines = [ln for ln in text.split(b"\n") if ln.strip()]
        starts = _line_offsets(text, offset)
        for record in numbers.tolist():
            rejects.append(Reject.make(record, starts[record - first], "a number is beyond the "
                                       "range of float64", lines[record - first], check="json"))
        rejects.sort(key=lambda r: r.record)
        return table.filter(pa.array(~bad)), rejects

    def _parse_chunk(
        self, piece: memoryview | bytes, schema: pa.Schema, offset: int, first: int, widen: str,
        strict: frozenset[str] = frozenset(),
    ) -> tuple[pa.Table, list[Reject], int, pa.Schema]:
        error = ""
        table = None
        if schema.names:  # the fast path: no new column can appear, so none can be too many
            try:
                table = parse_json_objects(piece, schema, fields="error")
            except pa.ArrowInvalid as exc:
                error = str(exc)
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
            check_width(wider, self.uri, record=first)
            changes = widenings(schema, wider, first)
            if widen == "restart":
                raise SchemaWidening(wider, changes)
            self.widened.extend(changes)
            return self._parse_chunk(piece, wider, offset, first, widen, strict)[:3] + (wider,)
        check_rows_have_columns(tables, self.uri, first)
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
            table = parse_json_objects(b"\n".join(lines), schema, records=len(lines))
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
            inferred = parse_json_objects(line, None, records=1).schema
        except pa.ArrowInvalid as inner:
            return [], [Reject.make(record, start, json_failure(line, inner), line,
                                    check="json")], []
        wider = unify_schemas(schema, inferred, strict)
        if not wider.equals(schema):
            return [], [], [wider]
        misfit = strict_misfit(schema, inferred, strict, record, start, line)
        if misfit is not None:
            return [], [misfit], []
        try:  # the value fits only as JSON text in a string column
            return [python_parse([line], schema)], [], []
        except (ValueError, TypeError, pa.ArrowException):
            return [], [Reject.make(record, start, json_failure(line, exc), line,
                                    check="json")], []


def _segments(size: int, deep: list[tuple[int, int]]) -> Iterator[tuple[int, int, bool]]:
    """``(start, end, too_deep)``: a piece of ``size`` bytes cut around its ``deep`` lines."""
    pos = 0
    for start, end in deep:
        if start > pos:
            yield pos, start, False
        yield start, end, True
        pos = end
    if pos < size:
        yield pos, size, False


def _without(data: bytes, spans: list[tuple[int, int]]) -> bytes:
    """``data`` without the lines at ``spans``."""
    keep, pos = [], 0
    for start, end in spans:
        keep.append(data[pos:start])
        pos = end
    keep.append(data[pos:])
    return b"".join(keep)


def _first_key_group(data: bytes) -> tuple[bytes, bytes]:
    """The first group :func:`_key_groups` would cut from ``data``, and the bytes after it."""
    colons = np.flatnonzero(np.frombuffer(data, np.uint8) == 58)
    if colons.size <= MAX_COLUMNS:
        return data, b""
    end = data.rfind(b"\n", 0, int(colons[MAX_COLUMNS]))  # the lines before the colon too many
    if end < 0:  # the first line alone has too many: it is a group of its own
        end = data.find(b"\n")
        if end < 0:
            return data, b""
    return data[:end], data[end + 1:]


def _key_groups(data: bytes) -> list[bytes]:
    """``data`` cut at line breaks into groups of at most ``MAX_COLUMNS`` colons (or one line)."""
    if data.count(b":") <= MAX_COLUMNS:
        return [data]
    groups: list[bytes] = []
    lines: list[bytes] = []
    keys = 0
    for line in data.split(b"\n"):
        count = line.count(b":")
        if lines and keys + count > MAX_COLUMNS:
            groups.append(b"\n".join(lines))
            lines, keys = [], 0
        lines.append(line)
        keys += count
    if lines:
        groups.append(b"\n".join(lines))
    return groups


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
    return storable(pa.schema([
        pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type)
        for f in schema]))
