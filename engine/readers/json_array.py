r"""JSON documents holding an array: elements found with numpy, parsed by pyarrow in one call.

The document is read in blocks. Each block is split at the commas between the array's elements
(:mod:`engine.readers.json_split`, vectorised with numpy) and cut after its last separator (the
rest is carried into the next block), so every piece starts outside strings at the array's depth
and no other state crosses a block boundary. When every element of a piece is one object, the
separators are overwritten with line breaks and the piece goes to pyarrow's JSON parser in one
call; otherwise (a bad element, a scalar, a nested array) the piece's elements are parsed one
run at a time: objects by bisecting with pyarrow as :mod:`engine.readers.ndjson` does (the
parsing both share is :mod:`engine.readers.json_common`); an element that is not an object is
a reject, never given to pyarrow (which crashes on a leading ``null``).

The array's first element decides what the array is: an array of objects (records) unless the
first element is something else, and the schema is empty or the one column ``value``; then it
is an array of values, each element a row ``{"value": element}``, objects included, parsed with
ijson (:mod:`engine.readers.json_values`).

Arrays of objects usually need less than the full scan: the separators of a run of objects can
be guessed in one sparse pass (:func:`~engine.readers.json_split.guess_elements`). A guess is
used only once pyarrow has parsed its piece into one row per guessed element, which a wrong guess
cannot produce; otherwise the piece is split exactly. On a 200 MB array of flat orders with
4 MiB blocks that takes the splitter from about a fifth of the CPU time to about a tenth;
pyarrow's parse is the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.config import MAX_COLUMNS, MAX_JSON_DEPTH, ReadOptions
from engine.errors import InputFormatError
from engine.readers.base import Chunk, Reject, Sample, SchemaWidening, Widening
from engine.readers.json_common import (
    TooManyKeys,
    json_failure,
    nonfinite_reason,
    not_an_object,
    nothing_found,
    object_schema,
    parse_json_objects,
    python_parse,
    sort_out,
    strict_misfit,
)
from engine.readers.json_split import (
    Elements,
    Guesses,
    check_after_array,
    element_texts,
    element_too_long,
    find_elements,
    locate_array,
    open_array,
    path_keys,
    read_element,
)
from engine.readers.json_values import VALUE_COLUMN, parse_values, value_schema
from engine.readers.scan import Scratch, deep_records
from engine.readers.schema import (
    check_rows_have_columns,
    check_width,
    nonfinite_rows,
    storable,
    unify_schemas,
    widen_by,
)
from engine.readers.streams import first_invalid_utf8

__all__ = ["JsonArrayReader"]

#: Below this many elements a failing run is sorted out one by one with json.loads.
_LEAF_ELEMENTS = 64


def _one_line(buf: bytes, seps: np.ndarray) -> bytearray:
    """Copy the elements before ``seps``, separators turned into line breaks (for pyarrow)."""
    piece = bytearray(memoryview(buf)[: int(seps[-1]) + 1])
    np.frombuffer(piece, np.uint8)[seps] = ord("\n")
    return piece


def _new_fields(table: pa.Table, schema: pa.Schema, first: int) -> list[tuple[pa.Schema, int]]:
    """Fields of ``table`` (records ``first ...``) not in ``schema``, with their first record."""
    out = []
    for f in table.schema:
        if schema.get_field_index(f.name) < 0:
            at = pc.index(table.column(f.name).is_valid(), True).as_py()
            out.append((pa.schema([f]), first + max(at, 0)))
    return out


#: A parsed chunk: its rows, its rejects, and the schema in force after it.
_Result = tuple[pa.Table, list[Reject], pa.Schema]


@dataclass
class _Parsed:
    """What parsing a run of elements produced: tables in order, rejects, wider schemas seen.

    Each schema seen comes with the record that first needed it.
    """

    tables: list[pa.Table]
    rejects: list[Reject]
    seen: list[tuple[pa.Schema, int]]

    def __iadd__(self, other: _Parsed) -> _Parsed:
        self.tables += other.tables
        self.rejects += other.rejects
        self.seen += other.seen
        return self


class JsonArrayReader:
    """Reads the objects of a JSON array: the top-level value, or the one at ``json_path``.

    In an array of objects, an element that is not an object is a reject ("not a JSON object:
    a top-level null"); an array whose first element is not an object is read as values, one
    column ``value``. A bad element is rejected; a document that is not a JSON array, or that
    is cut short, is an error.
    """

    format: ClassVar[str] = "json"

    _strict: frozenset[str] = frozenset()
    #: Whether the array being read is an array of values (``None``: not decided yet).
    _values: bool | None = None

    def __init__(self, uri: str, options: ReadOptions) -> None:
        self.uri = uri
        self.options = options
        self.widened: list[Widening] = []
        self._path = options.json_path or "item"
        self._where = f"the array at {self._path!r}" if options.json_path else "the array"
        try:
            self._keys = path_keys(options.json_path)
        except ValueError as exc:
            raise InputFormatError(str(exc), uri=uri) from None

    # -- schema inference ------------------------------------------------------------------

    def infer_schema(self, samples: list[Sample]) -> pa.Schema:
        """Infer the schema from the complete elements of the head sample.

        Samples from the middle of the input are skipped: without the document's start there is
        no telling whether a ``},{`` lies inside a string. All-null columns become strings.

        Raises:
            SchemaError: the sampled elements are objects, but none gives a column (``{}``, or
                every object a reject); the message says what was found.
            InputFormatError: no sampled element can be read.
        """
        head = next((s for s in samples if s.at_start), None)
        if head is None:
            raise InputFormatError("schema inference needs the start of the document", uri=self.uri)
        start = locate_array(head.data, self._keys, self.uri, self._path, head.at_end)
        if start is None:
            if head.at_end:
                raise InputFormatError(f"json_path {self._path!r} not found in the document",
                                       uri=self.uri)
            return pa.schema([])  # the array starts past the sample: read() widens from empty
        buf = head.data[start + 1:]
        try:
            found = find_elements(np.frombuffer(buf, np.uint8))
        except ValueError as exc:
            raise InputFormatError(f"malformed JSON document: {exc}", uri=self.uri) from None
        schema = pa.schema([])
        if found.seps.size and not found.empty_array(buf):
            for seen in self._infer(buf, found, start + 1):
                schema = unify_schemas(schema, seen, store=False)
            if not schema.names:
                texts = [text for _, text in element_texts(buf, found.seps)]
                raise nothing_found(texts[:10_000], self.uri)
        return check_width(storable(pa.schema([
            pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type)
            for f in schema])), self.uri)

    def _infer(self, buf: bytes, found: Elements, base: int) -> list[pa.Schema]:
        """Schemas of the complete elements of ``buf``; too deep or bad elements are skipped.

        Objects are parsed in groups of at most ``MAX_COLUMNS`` keys; an array of values (its
        first element not an object) with ijson. Elements that are neither (a scalar among
        objects) are rejects: left out.
        """
        end = int(found.seps[-1]) + 1
        bad = first_invalid_utf8(memoryview(buf)[:end])
        if bad is not None:  # pyarrow would take the bytes into a field name
            raise InputFormatError(
                f"bytes are not valid UTF-8 ({bad[1]}); use --encoding for other encodings",
                uri=self.uri, record=1 + int(np.searchsorted(found.seps, bad[0])),
                offset=base + bad[0])
        deep = set(deep_records(np.frombuffer(buf, np.uint8), found.seps, MAX_JSON_DEPTH))
        segments = element_texts(buf, found.seps)
        if _of_values(segments[0][1], pa.schema([])):
            values = value_schema([text for i, (_, text) in enumerate(segments)
                                   if i not in deep])
            return [] if values is None else [values]
        if found.objects and not deep and buf.count(b":", 0, end) <= MAX_COLUMNS:
            try:
                table = parse_json_objects(_one_line(buf, found.seps), None, multiline=True,
                                           records=int(found.seps.size))
                if table.num_rows == found.seps.size and nonfinite_rows(
                        table, nan=True) is None:
                    return [table.schema]
            except pa.ArrowInvalid:
                pass
        out, group, keys = [], [], 0
        texts = [text for i, (_, text) in enumerate(segments)
                 if i not in deep and text[:1] == b"{"]
        for text in texts + [b""]:
            count = text.count(b":")
            if group and (not text or keys + count > MAX_COLUMNS):
                out += self._infer_objects(group)
                group, keys = [], 0
            if text:
                group.append(text)
                keys += count
        return out

    @staticmethod
    def _infer_objects(texts: list[bytes]) -> list[pa.Schema]:
        try:
            table = parse_json_objects(b"\n".join(texts), None, multiline=True,
                                       records=len(texts))
            if table.num_rows == len(texts) and nonfinite_rows(table, nan=True) is None:
                return [table.schema]
        except pa.ArrowInvalid:
            pass
        out = []
        for text in texts:  # a bad element must not spoil inference
            try:
                out.append(object_schema(text, multiline=True))
            except ValueError:  # TooManyKeys too: a reject in read()
                continue
        return out

    # -- reading ----------------------------------------------------------------------------

    def read(
        self, stream: BinaryIO, schema: pa.Schema, *, widen: str = "restart",
        strict: frozenset[str] = frozenset(),
    ) -> Iterator[Chunk]:
        """Parse the array's elements in chunks; see :class:`engine.readers.base.Reader`."""
        self._strict = strict
        self._values = None
        buf, base = open_array(stream, self._keys, uri=self.uri, path=self._path,
                               block_size=self.options.block_size,
                               max_record_bytes=self.options.max_record_bytes)
        record = 1
        scratch, guesses = Scratch(), Guesses()
        while True:
            found, result, guessed = self._next_piece(buf, schema, base, record, widen, scratch,
                                                      guesses)
            if found.seps.size:
                if result is not None:
                    table, rejects, schema = result
                    result = None
                    yield Chunk(table, record, int(found.seps.size), base, rejects,
                                _element_starts(buf, found.seps) if strict else None,
                                kept=len(buf) if strict else 0)
                    del table, rejects  # the consumer holds the chunk, not the next parse
                    record += int(found.seps.size)
                cut = int(found.seps[-1]) + 1
                if found.closed:
                    check_after_array(stream, buf[cut:], base + cut, len(self._keys),
                                      uri=self.uri, block_size=self.options.block_size)
                    return
                buf, base = buf[cut:], base + cut
                if guessed:
                    continue  # the rest may hold the array's end: split it exactly first
                size = self.options.block_size
            elif len(buf) < self.options.block_size // 2:
                size = self.options.block_size  # the tail of a piece: read the next block
            else:  # an element of half a block or more: scan on from where the split stopped
                found, buf, depth = read_element(
                    stream, buf, base=base, record=record, uri=self.uri, where=self._where,
                    block_size=self.options.block_size,
                    max_record_bytes=self.options.max_record_bytes)
                deep = [0] if depth > MAX_JSON_DEPTH else []
                result = self._parse_chunk(buf, found, schema, base, record, widen, deep=deep)
                assert result is not None  # only a guessed split is refused
                table, rejects, schema = result
                result = None
                yield Chunk(table, record, 1, base, rejects,
                            _element_starts(buf, found.seps) if strict else None,
                            kept=len(buf) if strict else 0)
                del table, rejects
                record += 1
                cut = int(found.seps[-1]) + 1
                if found.closed:
                    check_after_array(stream, buf[cut:], base + cut, len(self._keys),
                                      uri=self.uri, block_size=self.options.block_size)
                    return
                buf, base = buf[cut:], base + cut
                continue
            data = stream.read(size)
            if not data:
                raise InputFormatError(
                    f"unterminated JSON document: {self._where} has no closing ']'",
                    uri=self.uri, record=record, offset=base,
                )
            buf = buf + data if buf else data
            del data  # held until the next read otherwise: a block of memory for nothing

    def _next_piece(
        self,
        buf: bytes,
        schema: pa.Schema,
        base: int,
        record: int,
        widen: str,
        scratch: Scratch,
        guesses: Guesses,
    ) -> tuple[Elements, _Result | None, bool]:
        """Split ``buf`` and parse its complete elements: by guessed separators, else exactly.

        Returns the separators, the parsed chunk (``None`` if there is none: no complete
        element, or ``[ ]``) and whether the separators were guessed.
        """
        a = np.frombuffer(buf, np.uint8)
        found = guesses.guess(a, scratch)
        # A wrong guess may make an element look too long: only the exact split can tell.
        if found is not None and self._oversize(found.seps) is None:
            result = self._parse_chunk(buf, found, schema, base, record, widen, guessed=True)
            if result is not None:
                return found, result, True
            guesses.failed()
        try:
            found = find_elements(a, scratch)
        except ValueError as exc:
            raise InputFormatError(f"malformed JSON document: {exc}", uri=self.uri,
                                   record=record, offset=base) from None
        if not found.seps.size:
            return found, None, False
        self._check_sizes(found.seps, base, record)
        if record == 1 and found.empty_array(buf):
            return found, None, False  # "[ ]"
        return found, self._parse_chunk(buf, found, schema, base, record, widen), False

    def _oversize(self, seps: np.ndarray) -> tuple[int, int] | None:
        """Index and start of the first element longer than max_record_bytes, if any."""
        starts = np.empty_like(seps)
        starts[0] = 0
        starts[1:] = seps[:-1] + 1
        sizes = seps - starts
        longest = int(np.argmax(sizes))
        if sizes[longest] > self.options.max_record_bytes:
            return longest, int(starts[longest])
        return None

    def _check_sizes(self, seps: np.ndarray, base: int, record: int) -> None:
        oversize = self._oversize(seps)
        if oversize is not None:
            raise element_too_long(self.options.max_record_bytes, self.uri,
                                   record + oversize[0], base + oversize[1])

    # -- parsing a piece --------------------------------------------------------------------

    def _parse_chunk(
        self,
        buf: bytes,
        found: Elements,
        schema: pa.Schema,
        offset: int,
        first: int,
        widen: str,
        *,
        guessed: bool = False,
        deep: list[int] | None = None,
    ) -> _Result | None:
        """Parse the elements before ``found.seps``: rows, rejects and the schema now in force.

        With ``guessed`` (separators from :func:`~engine.readers.json_split.guess_elements`),
        returns ``None`` unless pyarrow parses the piece into exactly one row per element, which
        proves the guess right.
        """
        bad = first_invalid_utf8(memoryview(buf)[: int(found.seps[-1]) + 1])
        if bad is not None:  # pyarrow's JSON parser copies invalid UTF-8 as is
            raise InputFormatError(
                f"bytes are not valid UTF-8 ({bad[1]}); use --encoding for other encodings",
                uri=self.uri, record=first + int(np.searchsorted(found.seps, bad[0])),
                offset=offset + bad[0])
        count = int(found.seps.size)
        if self._values is None:  # the array's first element
            self._values = _of_values(element_texts(buf, found.seps[:1])[0][1], schema)
        if deep is None:
            deep = deep_records(np.frombuffer(buf, np.uint8), found.seps, MAX_JSON_DEPTH)
        if deep and guessed:
            return None  # only the exact split can tell where the deep elements are
        if found.objects and not deep and not self._values:
            table = None
            if schema.names:  # fields="error": no new column can appear, so none too many
                try:
                    table = parse_json_objects(_one_line(buf, found.seps), schema,
                                               multiline=True, fields="error")
                except pa.ArrowInvalid:
                    pass
            if table is not None and table.num_rows == count and table.schema.equals(schema):
                return self._drop_nonfinite(table, [], schema, buf, found, offset, first)
            if guessed:
                return None
        parsed = self._parse_runs(element_texts(buf, found.seps), schema, offset, first,
                                  frozenset(deep))
        wider, changes = widen_by(schema, parsed.seen, self._strict)
        if changes:
            check_width(wider, self.uri, record=changes[0].record)
            if widen == "restart":
                raise SchemaWidening(wider, changes)
            self.widened.extend(changes)
            result = self._parse_chunk(buf, found, wider, offset, first, widen, deep=deep)
            assert result is not None
            return result
        check_rows_have_columns(parsed.tables, self.uri, first)
        parts = [t.select(schema.names) for t in parsed.tables if t.num_rows]
        table = pa.concat_tables(parts) if parts else schema.empty_table()
        return self._drop_nonfinite(table, parsed.rejects, schema, buf, found, offset, first)

    def _drop_nonfinite(self, table: pa.Table, rejects: list[Reject], schema: pa.Schema,
                        buf: bytes, found: Elements, offset: int, first: int) -> _Result:
        """Reject the elements holding a non-finite number: not JSON, or beyond float64.

        pyarrow reads ``NaN``, ``Infinity`` and ``Inf`` (none of which is JSON) and reads
        ``1e400`` as infinity; the element's own text says which.
        """
        bad = nonfinite_rows(table, nan=True)
        if bad is None:
            return table, rejects, schema
        chunk = Chunk(table, first, int(found.seps.size), offset, rejects)
        segments = element_texts(buf, found.seps)
        for record in chunk.row_records()[bad].tolist():
            start, text = segments[record - first]
            rejects.append(Reject.make(record, offset + start, nonfinite_reason(text), text,
                                       check="json"))
        rejects.sort(key=lambda r: r.record)
        return table.filter(pa.array(~bad)), rejects, schema

    def _parse_runs(
        self, segments: list[tuple[int, bytes]], schema: pa.Schema, offset: int, first: int,
        deep: frozenset[int] = frozenset(),
    ) -> _Parsed:
        """Parse elements in runs, in order: objects with pyarrow, values with ijson.

        In an array of objects, an element that is not one is a reject; in an array of values
        every element is a value. The elements at the indices in ``deep`` are nested too deep
        to parse: rejected.
        """
        parsed = _Parsed([], [], [])
        i = 0
        while i < len(segments):
            start, text = segments[i]
            if i in deep:
                parsed.rejects.append(Reject.make(
                    first + i, offset + start,
                    f"JSON nested deeper than {MAX_JSON_DEPTH} levels (MAX_JSON_DEPTH)", text,
                    check="json"))
                i += 1
                continue
            if not self._values and text[:1] != b"{":
                parsed.rejects.append(Reject.make(first + i, offset + start,
                                                  _element_reason(text), text, check="json"))
                i += 1
                continue
            j = i + 1
            while j < len(segments) and j not in deep and (
                    self._values or segments[j][1][:1] == b"{"):
                j += 1
            run = [(offset + start, text) for start, text in segments[i:j]]
            if self._values:
                parsed += _Parsed(*parse_values(run, schema, first + i))
            else:
                parsed += self._bisect(run, schema, first + i)
            i = j
        return parsed

    def _bisect(self, run: list[tuple[int, bytes]], schema: pa.Schema, first: int) -> _Parsed:
        """Parse object elements (records ``first ...``), halving until failures are single."""
        if len(run) <= _LEAF_ELEMENTS:
            return self._sort_out(run, schema, first)
        try:
            table = parse_json_objects(b"\n".join(t for _, t in run), schema,
                                       multiline=True, records=len(run))
        except pa.ArrowInvalid as exc:
            table, error = None, exc
        else:
            error = pa.ArrowInvalid("more than one JSON value between two commas")
        if table is not None and table.num_rows == len(run):
            if table.schema.equals(schema):
                return _Parsed([table], [], [])
            return _Parsed([], [], _new_fields(table, schema, first))
        if len(run) > 1:
            mid = len(run) // 2
            parsed = self._bisect(run[:mid], schema, first)
            parsed += self._bisect(run[mid:], schema, first + mid)
            return parsed
        start, text = run[0]
        return self._bisect_one(start, text, schema, first, error)

    def _bisect_one(self, start: int, text: bytes, schema: pa.Schema, first: int,
                    error: Exception) -> _Parsed:
        """One element pyarrow would not parse with ``schema``: widen, keep as text, or reject."""
        try:
            inferred = object_schema(text, multiline=True)
        except TooManyKeys as inner:
            return _Parsed([], [Reject.make(first, start, json_failure(text, inner), text,
                                            check="json")], [])
        except ValueError as inner:
            return _Parsed([], [Reject.make(first, start, str(inner), text, check="json")], [])
        if not unify_schemas(schema, inferred, self._strict).equals(schema):
            return _Parsed([], [], [(inferred, first)])  # unified with the others in widen_by()
        misfit = strict_misfit(schema, inferred, self._strict, first, start, text)
        if misfit is not None:
            return _Parsed([], [misfit], [])
        try:  # the value fits only as JSON text in a string column
            return _Parsed([python_parse([text], schema)], [], [])
        except (ValueError, TypeError, pa.ArrowException):
            pass
        reject = Reject.make(first, start, json_failure(text, error), text, check="json")
        return _Parsed([], [reject], [])

    def _sort_out(self, run: list[tuple[int, bytes]], schema: pa.Schema, first: int) -> _Parsed:
        """A few elements: json.loads sorts them out (see :func:`json_common.sort_out`)."""

        def single(text: bytes, start: int, record: int, exc: Exception) -> tuple:
            parsed = self._bisect_one(start, text, schema, record, exc)
            return parsed.tables, parsed.rejects, parsed.seen

        tables, rejects, seen = sort_out(
            [t for _, t in run], [start for start, _ in run],
            list(range(first, first + len(run))), schema, self._strict, single, multiline=True,
        )
        return _Parsed(tables, rejects, seen)


def _of_values(first: bytes, schema: pa.Schema) -> bool:
    """Whether an array whose first element is ``first`` is read as values, not records.

    The first element decides, unless the schema says otherwise: a schema of records (any
    other than the one column ``value``) reads a range of the array that starts with a stray
    scalar (a Map part) as records too.
    """
    return first[:1] != b"{" and (not schema.names or schema.names == [VALUE_COLUMN])


def _element_reason(text: bytes) -> str:
    """Why an element of an array of objects that is not an object is rejected."""
    if not text:
        return "empty array element (two commas in a row, or a trailing comma?)"
    return not_an_object(text)


def _element_starts(buf: bytes, seps: np.ndarray) -> Callable[[], np.ndarray]:
    """Computes where each element before ``seps`` starts in ``buf`` (after whitespace).

    ``buf`` is immutable and replaced, not reused, by the next piece: keeping it costs no copy.
    """
    seps = seps.copy()  # it may be a view of scratch space the next split reuses
    return lambda: np.array([start for start, _ in element_texts(buf, seps)], np.int64)
