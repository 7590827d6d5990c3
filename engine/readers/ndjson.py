r"""NDJSON (JSON Lines) through pyarrow's JSON parser, in line-aligned chunks with a fixed schema.

A raw line break cannot occur inside a JSON string, so every ``\\n`` is a record boundary. Before
pyarrow sees a piece, one vectorised pass (:func:`engine.readers.scan.scan_lines`) finds the
lines nested too deep and tells whether every line starts with a bracket; if not, the lines that
are not objects (``null``, numbers, strings, booleans) are found and rejected, and left out of
what pyarrow parses: it would read a ``null`` line as a row of nulls, and crash on one that
starts its input. A chunk that pyarrow rejects is bisected on line boundaries until the bad
lines are isolated, so a few unparseable lines cost O(log n) extra parses of their chunk, never
a per-line Python loop over the good ones. The parsing it shares with the JSON array reader is
:mod:`engine.readers.json_common`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from typing import BinaryIO, ClassVar

import numpy as np
import pyarrow as pa

from engine.config import MAX_COLUMNS, MAX_JSON_DEPTH, ReadOptions
from engine.errors import InputFormatError, SchemaError
from engine.readers.base import Chunk, Reject, Sample, SchemaWidening, Widening
from engine.readers.json_common import (
    TooManyKeys,
    json_failure,
    new_fields,
    nonfinite_reason,
    not_an_object,
    nothing_found,
    object_schema,
    parse_json_objects,
    python_parse,
    sort_out,
    strict_misfit,
)
from engine.readers.json_split import WHITESPACE
from engine.readers.scan import LineScan, scan_lines
from engine.readers.schema import (
    check_rows_have_columns,
    check_width,
    nonfinite_rows,
    storable,
    unify_schemas,
    widen_by,
)
from engine.readers.streams import aligned_pieces, first_invalid_utf8

__all__ = ["NdjsonReader"]


#: A byte that is not JSON whitespace.
_NOT_BLANK = re.compile(rb"[^ \t\r\n]")

#: Below this many lines a failing group is sorted out line by line (see ``_leaf``).
_LEAF_LINES = 64

_LBRACE = ord("{")

#: A line refused before parsing: its index among the piece's records, its span, its reject.
_Refused = tuple[int, int, int, Reject]


class NdjsonReader:
    """Reads one JSON object per line; blank lines are skipped, bad lines rejected."""

    format: ClassVar[str] = "ndjson"

    def __init__(self, uri: str, options: ReadOptions) -> None:
        self.uri = uri
        self.options = options
        self.widened: list[Widening] = []
        #: inference's parse of the whole input (its text, the scan of its lines, the table of
        #: its objects with the schema), for the conversion to take instead of parsing the same
        #: bytes again
        self._whole: tuple[bytes, LineScan, pa.Table] | None = None

    @staticmethod
    def _cut(buf: bytes | bytearray, end: int | None = None) -> int:
        return buf.rfind(b"\n", 0, len(buf) if end is None else end) + 1

    def infer_schema(self, samples: list[Sample]) -> pa.Schema:
        """Infer one schema from the head and ranged samples (whole lines only).

        Lines nested deeper than ``MAX_JSON_DEPTH`` and lines that are not objects are left out
        (``read`` rejects them). A head that holds no complete line (a first record longer
        than the sample) gives an empty schema: ``read`` then widens from its first chunk.

        Raises:
            SchemaError: the sampled records are objects, but none gives a column (``{}``, or
                every object a reject); the message says what was found.
            InputFormatError: no sampled record is a JSON object.
        """
        schema: pa.Schema | None = None
        truncated = False
        whole = None
        for sample in samples:
            data = sample.whole_records(self._cut)
            if sample.at_start:
                if not data and sample.data.strip() and not sample.at_end:
                    truncated = True  # the first record is longer than the sample
                    continue
                self._check_utf8(data, 0, 1)
            elif first_invalid_utf8(data) is not None:
                continue  # read() reports it, with its record number
            text = data
            found = scan_lines(np.frombuffer(data, np.uint8), MAX_JSON_DEPTH)
            if not found.plain or found.deep:
                _, refused = _refused_lines(data, 0, 1, found.deep)
                data = _without(data, [(start, end) for _, start, end, _ in refused])
            if not _NOT_BLANK.search(data):  # (strip() copied the sample)
                continue
            entire = sample.at_start and sample.at_end
            schemas, table = self._infer(data, entire=entire)
            if entire and table is not None:
                whole = (text, found, table)
            for seen in schemas:
                schema = seen if schema is None else unify_schemas(schema, seen, store=False)
        if truncated and (schema is None or not schema.names):
            return pa.schema([])
        if schema is None or not schema.names:
            raise self._nothing_found(samples)
        schema = check_width(_nulls_as_string(schema), self.uri)
        # The sample was the whole input, parsed with the schema as the conversion parses it
        if whole is not None and whole[2].schema.equals(schema):
            self._whole = whole
        return schema

    def _nothing_found(self, samples: list[Sample]) -> InputFormatError | SchemaError:
        """The error for samples that give no column, saying what their records are."""
        texts: list[bytes] = []
        for sample in samples:
            data = sample.whole_records(self._cut)
            starts, ends, _ = _split_lines(data)
            texts += [data[s:e] for s, e in zip(starts.tolist()[:10_000], ends.tolist(),
                                                 strict=False)]
        nul = any(b"\x00" in s.data for s in samples)
        return nothing_found(texts[:10_000], self.uri, nul=nul)

    @staticmethod
    def _infer(data: bytes, *, entire: bool = False) -> tuple[list[pa.Schema], pa.Table | None]:
        """Schemas of the objects in ``data``, parsed in groups of at most ``MAX_COLUMNS`` keys.

        Typical records repeat one set of keys: the first group's schema is then tried on the
        rest in one parse that can add no column (``fields="error"``), which also checks that
        every value fits its inferred type. Anything else (a new key, a wider value, a bad
        line) fails that parse, and the rest is inferred group by group.

        With ``entire`` (``data`` is the whole input), the first group's table and that
        parse's together are returned with the schemas (else ``None``): they are the
        conversion's parse of the input when the first group's schema is the schema. (The
        first group's table, inferred, is what a parse with its schema gives: its dates are
        dates either way, and it is kept only when no value in it was refused.)
        """
        end = _first_key_group_end(data)  # the rest is cut (copied) only when it is parsed
        first = data if end < 0 else data[:end]
        rest_at = len(data) if end < 0 else end + 1
        found, head = NdjsonReader._infer_group(first)
        if rest_at < len(data) and found and found[0].names:
            if entire and head is not None:
                try:
                    rest = parse_json_objects(memoryview(data)[rest_at:], found[0],
                                              fields="error")
                    if rest.schema.equals(found[0]):
                        return found, pa.concat_tables([head, rest])
                except pa.ArrowInvalid:
                    pass  # as below, for the same schemas whatever the first group holds
            try:
                if parse_json_objects(data[rest_at:], found[0],
                                      fields="error").schema.equals(found[0]):
                    return found, None
            except pa.ArrowInvalid:
                pass
        elif entire and rest_at >= len(data):
            return found, head  # the first group is all of it (None: it did not parse whole)
        rest = data[rest_at:]
        return found + NdjsonReader._infer_groups(_key_groups(rest) if rest else []), None

    @staticmethod
    def _infer_groups(groups: list[bytes]) -> list[pa.Schema]:
        found = []
        for group in groups:
            found += NdjsonReader._infer_group(group)[0]
        return found

    @staticmethod
    def _infer_group(group: bytes) -> tuple[list[pa.Schema], pa.Table | None]:
        """The schemas of one group's objects, and its table when it parsed whole (else ``None``).

        One schema when the group parses in one go; otherwise its good lines are inferred
        without the bad ones, line by line if need be.
        """
        starts, ends, _ = _split_lines(group)
        try:
            table = parse_json_objects(group, None, records=starts.size)
        except pa.ArrowInvalid:  # a bad line must not spoil inference: take the good ones
            table = None
        nonfinite = None
        if table is not None and table.num_rows == starts.size:
            nonfinite = nonfinite_rows(table, nan=True)
            if nonfinite is None:
                return [table.schema], table
        # the lines, cut only when the group did not parse whole
        lines = [group[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
        if nonfinite is not None:
            # NaN is no JSON: its record is a reject, so it must not type the column
            lines = [line for line, no in zip(lines, nonfinite.tolist(), strict=True)
                     if not no]
            return (NdjsonReader._infer_groups([b"\n".join(lines)]) if lines else []), None
        found = []
        for line in lines:
            try:
                found.append(object_schema(line))
            except ValueError:  # TooManyKeys too: a reject in read()
                continue
        return found, None

    def read(
        self, stream: BinaryIO, schema: pa.Schema, *, widen: str = "restart",
        strict: frozenset[str] = frozenset(),
    ) -> Iterator[Chunk]:
        """Parse the stream in chunks; see :class:`engine.readers.base.Reader`.

        A line nested deeper than ``MAX_JSON_DEPTH`` or that is not a JSON object is rejected
        before any parser sees it; a number beyond float64 (``1e400``, which pyarrow reads as
        infinity) or a ``NaN`` or ``Infinity`` (not JSON, but read by pyarrow) rejects its
        record.
        """
        next_record = 1
        pieces = aligned_pieces(stream, self._cut, block_size=self.options.block_size,
                                max_record_bytes=self.options.max_record_bytes, uri=self.uri,
                                first_record=lambda: next_record)
        for offset, piece, _last in pieces:
            whole = self._inferred_parse(piece)
            parsed = None
            if whole is not None:  # its UTF-8 was checked, its lines scanned, by inference
                found, parsed = whole
            else:
                self._check_utf8(piece, offset, next_record)
                found = scan_lines(np.frombuffer(piece, np.uint8), MAX_JSON_DEPTH)
            if found.plain and not found.deep:
                records, refused = found.lines, []
            else:
                records, refused = _refused_lines(bytes(piece), offset, next_record,
                                                  found.deep)
            if records:
                table, rejects, schema = self._parse_chunk(
                    piece, schema, offset, next_record, records, refused, widen, strict,
                    parsed)
                table, rejects = self._drop_nonfinite(table, rejects, piece, offset,
                                                      next_record, records)
                # For a contract's rejects (``strict``), a copy: the buffer behind ``piece``
                # is reused, maybe before validation. The starts are found for a reject only.
                yield Chunk(table, next_record, records, offset, rejects,
                            partial(_line_starts, bytes(piece)) if strict else None,
                            kept=len(piece) if strict else 0)
            next_record += records

    def _inferred_parse(self, piece: memoryview) -> tuple[LineScan, pa.Table] | None:
        """Inference's scan and parse of ``piece``, if it made them of these bytes (once)."""
        whole, self._whole = self._whole, None
        if whole is None:
            return None
        data, found, table = whole
        if len(data) != len(piece) or not pa.py_buffer(piece).equals(pa.py_buffer(data)):
            return None  # (a memcmp, no copy)
        return found, table

    def _check_utf8(self, piece: memoryview | bytes, offset: int, first: int) -> None:
        bad = first_invalid_utf8(piece)  # pyarrow's JSON parser copies invalid UTF-8 as is
        if bad is not None:
            before = bytes(piece[: bad[0]])
            records = len(_split_lines(before[: before.rfind(b"\n") + 1])[0])
            raise InputFormatError(
                f"bytes are not valid UTF-8 ({bad[1]}); use --encoding for other encodings",
                uri=self.uri, record=first + records, offset=offset + bad[0])

    @staticmethod
    def _drop_nonfinite(table: pa.Table, rejects: list[Reject], piece: memoryview | bytes,
                        offset: int, first: int,
                        records: int) -> tuple[pa.Table, list[Reject]]:
        """Reject the records holding a non-finite number: not JSON, or beyond float64.

        pyarrow reads ``NaN``, ``Infinity`` and ``Inf`` (none of which is JSON) and reads
        ``1e400`` as infinity; the records' own text says which (:func:`loads`).
        """
        bad = nonfinite_rows(table, nan=True)
        if bad is None:
            return table, rejects
        numbers = Chunk(table, first, records, offset, rejects).row_records()[bad]
        text = bytes(piece)
        starts, ends, _ = _split_lines(text)
        for record in numbers.tolist():
            start, end = int(starts[record - first]), int(ends[record - first])
            rejects.append(Reject.make(record, offset + start, nonfinite_reason(
                text[start:end]), text[start:end], check="json"))
        rejects.sort(key=lambda r: r.record)
        return table.filter(pa.array(~bad)), rejects

    def _parse_chunk(
        self, piece: memoryview | bytes, schema: pa.Schema, offset: int, first: int,
        records: int, refused: list[_Refused], widen: str, strict: frozenset[str] = frozenset(),
        parsed: pa.Table | None = None,
    ) -> tuple[pa.Table, list[Reject], pa.Schema]:
        """Parse the ``records`` records of ``piece`` but the ``refused`` ones (rejected).

        ``parsed``: inference's parse of those records, taken when it has ``schema``.
        """
        error = ""
        table = None
        data = _without(bytes(piece), [(s, e) for _, s, e, _ in refused]) if refused else piece
        expected = records - len(refused)
        refusals = [reject for *_, reject in refused]
        if not expected:
            return schema.empty_table(), refusals, schema
        if parsed is not None and parsed.schema.equals(schema):
            table = parsed
        elif schema.names:  # the fast path: no new column can appear, so none can be too many
            try:
                table = parse_json_objects(data, schema, fields="error")
            except pa.ArrowInvalid as exc:
                error = str(exc)
        if table is not None and table.num_rows == expected and table.schema.equals(schema):
            return table, refusals, schema
        # Slow path: isolate bad lines, widen on values that do not fit.
        piece = bytes(piece)
        starts, ends, _ = _split_lines(piece)
        skip = {index for index, *_ in refused}
        keep = [i for i in range(starts.size) if i not in skip]
        lines = [piece[int(starts[i]):int(ends[i])] for i in keep]
        at = [offset + int(starts[i]) for i in keep]
        numbers = [first + i for i in keep]
        if "changed from string to" in error and not strict:
            # Mixed JSON types in a column already widened to string: pyarrow cannot put a
            # number into a string column; json.loads can (as its JSON text), ~4x slower.
            tables, rejects, seen = self._leaf(lines, at, numbers, schema, strict)
        else:
            tables, rejects, seen = self._bisect(lines, at, numbers, schema, strict)
        wider, changes = widen_by(schema, seen, strict)
        if changes:
            check_width(wider, self.uri, record=changes[0].record)
            if widen == "restart":
                raise SchemaWidening(wider, changes)
            self.widened.extend(changes)
            return self._parse_chunk(piece, wider, offset, first, records, refused, widen,
                                     strict)
        check_rows_have_columns(tables, self.uri, first)
        parts = [t.select(schema.names) for t in tables if t.num_rows]
        table = pa.concat_tables(parts) if parts else schema.empty_table()
        return table, sorted(rejects + refusals, key=lambda r: r.record), schema

    def _bisect(
        self, lines: list[bytes], starts: list[int], records: list[int], schema: pa.Schema,
        strict: frozenset[str] = frozenset(),
    ) -> tuple[list[pa.Table], list[Reject], list[tuple[pa.Schema, int]]]:
        """Parse ``lines`` (record ``records[i]`` at byte ``starts[i]``), halving on failure.

        Returns the good tables, the rejects and any wider schemas seen, each with the record
        that needs it.
        """
        if len(lines) <= _LEAF_LINES:
            return self._leaf(lines, starts, records, schema, strict)
        try:
            table = parse_json_objects(b"\n".join(lines), schema, records=len(lines))
        except pa.ArrowInvalid:
            table = None
        if table is not None and table.num_rows == len(lines):  # else: two values on a line
            if table.schema.equals(schema):
                return [table], [], []
            return [], [], new_fields(table, schema, records)
        mid = len(lines) // 2
        a = self._bisect(lines[:mid], starts[:mid], records[:mid], schema, strict)
        b = self._bisect(lines[mid:], starts[mid:], records[mid:], schema, strict)
        return a[0] + b[0], a[1] + b[1], a[2] + b[2]

    def _leaf(
        self, lines: list[bytes], starts: list[int], records: list[int], schema: pa.Schema,
        strict: frozenset[str],
    ) -> tuple[list[pa.Table], list[Reject], list[tuple[pa.Schema, int]]]:
        def single(text: bytes, start: int, record: int, exc: Exception) -> tuple:
            tables, rejects, seen = self._single(text, start, schema, record, exc, strict)
            return tables, rejects, [(w, record) for w in seen]

        return sort_out(lines, starts, records, schema, strict, single)

    def _single(
        self, line: bytes, start: int, schema: pa.Schema, record: int, exc: Exception,
        strict: frozenset[str] = frozenset(),
    ) -> tuple[list[pa.Table], list[Reject], list[pa.Schema]]:
        try:
            inferred = object_schema(line)
        except TooManyKeys as inner:
            return [], [Reject.make(record, start, json_failure(line, inner), line,
                                    check="json")], []
        except ValueError as inner:
            return [], [Reject.make(record, start, str(inner), line, check="json")], []
        if not unify_schemas(schema, inferred, strict).equals(schema):
            return [], [], [inferred]  # unified with the others in widen_by()
        misfit = strict_misfit(schema, inferred, strict, record, start, line)
        if misfit is not None:
            return [], [misfit], []
        try:  # the value fits only as JSON text in a string column
            return [python_parse([line], schema)], [], []
        except (ValueError, TypeError, pa.ArrowException):
            return [], [Reject.make(record, start, json_failure(line, exc), line,
                                    check="json")], []


def _line_starts(piece: bytes) -> np.ndarray:
    """Where each record (each line that is not blank) of ``piece`` starts."""
    return _split_lines(piece)[0]


def _split_lines(piece: bytes) -> tuple[np.ndarray, np.ndarray, list[int]]:
    r"""Where the records of ``piece`` lie: the start and end of each line that is not blank.

    Blank means JSON whitespace only. Also returns the indices (among those lines) of the
    lines whose first byte after whitespace is not ``{``: lines that are not objects. Found
    with numpy, whitespace before a record included, so a file of indented lines costs a few
    passes, not a Python loop.

    >>> starts, ends, odd = _split_lines(b'{"a": 1}\n\n  null\r\n {}\n\t\r')
    >>> starts.tolist(), ends.tolist(), odd
    ([0, 10, 18], [8, 17, 21], [1])
    """
    a = np.frombuffer(piece, np.uint8)
    breaks = np.flatnonzero(a == 10)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [a.size]))
    first = starts.copy()  # each line's first byte that is not a space, tab or CR
    todo = np.flatnonzero(first < ends)
    for _ in range(_WHITESPACE_STEPS):
        todo = todo[_SPACE.take(a.take(first.take(todo)))]
        if not todo.size:
            break
        first[todo] += 1
        todo = todo[first.take(todo) < ends.take(todo)]
    for i in todo.tolist():  # more leading whitespace than that: rare, done in Python
        line = piece[int(first[i]):int(ends[i])]
        first[i] += len(line) - len(line.lstrip(WHITESPACE))
    filled = first < ends
    heads = np.full(starts.size, _LBRACE, np.uint8)
    heads[filled] = a.take(first[filled])
    rank = np.cumsum(filled) - 1
    odd = np.flatnonzero(filled & (heads != _LBRACE))
    return starts[filled], ends[filled], rank.take(odd).tolist()


#: Bytes JSON allows before a record on its line (the line break ends the line).
_SPACE = np.zeros(256, np.bool_)
_SPACE[[ord(" "), ord("\t"), ord("\r")]] = True

#: Leading whitespace looked through with numpy, byte by byte, before Python takes over.
_WHITESPACE_STEPS = 64


def _refused_lines(piece: bytes, offset: int, first: int,
                   deep: list[tuple[int, int]]) -> tuple[int, list[_Refused]]:
    """The records of ``piece`` (from record ``first``) and those no parser may see.

    Those are the lines at the spans ``deep`` (nested too deep) and the lines that are not
    JSON objects, each with its reject.
    """
    starts, ends, odd = _split_lines(piece)
    refused: dict[int, _Refused] = {}
    for start, end in deep:
        i = int(np.searchsorted(starts, start))
        refused[i] = (i, start, end, Reject.make(
            first + i, offset + start, f"JSON nested deeper than {MAX_JSON_DEPTH} levels "
            "(MAX_JSON_DEPTH)", piece[start:end], check="json"))
    for i in odd:
        if i not in refused:
            start, end = int(starts[i]), int(ends[i])
            refused[i] = (i, start, end, Reject.make(
                first + i, offset + start, not_an_object(piece[start:end].strip(WHITESPACE)),
                piece[start:end], check="json"))
    return int(starts.size), [refused[i] for i in sorted(refused)]


def _without(data: bytes, spans: list[tuple[int, int]]) -> bytes:
    """``data`` without the lines at ``spans`` (their line breaks stay: blank lines)."""
    keep, pos = [], 0
    for start, end in spans:
        keep.append(data[pos:start])
        pos = end
    keep.append(data[pos:])
    return b"".join(keep)


def _first_key_group(data: bytes) -> tuple[bytes, bytes]:
    """The first group :func:`_key_groups` would cut from ``data``, and the bytes after it."""
    end = _first_key_group_end(data)
    return (data, b"") if end < 0 else (data[:end], data[end + 1:])


def _first_key_group_end(data: bytes) -> int:
    """Where the line break after :func:`_first_key_group`'s group is; -1: it is all of it."""
    a = np.frombuffer(data, np.uint8)
    size = 1 << 16  # a prefix holds the first colons: locating all of them took ~0.6 ms per MB
    while (colons := np.flatnonzero(a[:size] == 58)).size <= MAX_COLUMNS:
        if size >= a.size:
            return -1
        size *= 4
    end = data.rfind(b"\n", 0, int(colons[MAX_COLUMNS]))  # the lines before the colon too many
    if end < 0:  # the first line alone has too many: it is a group of its own
        end = data.find(b"\n")
    return end


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


def _nulls_as_string(schema: pa.Schema) -> pa.Schema:
    return storable(pa.schema([
        pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type)
        for f in schema]))
