r"""JSON documents holding an array: elements found with numpy, parsed by pyarrow in one call.

The document is read in blocks. In each block a few vectorised numpy passes find the bytes that
shape the document (``"`` ``\\`` ``[`` ``]`` ``{`` ``}`` ``,``); a quote is escaped iff an odd run
of backslashes precedes it, string state is the parity of the unescaped quotes before a byte, and
nesting depth is the cumulative sum of opening minus closing brackets outside strings. The commas
at the array's own depth separate its elements. Each block is cut after its last separator (the
rest is carried into the next block), so every piece starts outside strings at the array's depth
and no other state crosses a block boundary. When every element of a piece is one object, the
separators are overwritten with line breaks and the piece goes to pyarrow's JSON parser in one
call; otherwise (a bad element, scalars, nested arrays) the piece's elements are parsed one run
at a time: objects by bisecting with pyarrow as :mod:`engine.readers.ndjson` does, other values
with ijson, as rows ``{"value": item}``.

Arrays of objects usually need less than the full scan: a comma between ``}`` and ``{`` is
almost always a separator, and one sparse pass finds those (:func:`_guess`). A guess is used only
once pyarrow has parsed its piece into one row per guessed element, which a wrong guess cannot
produce; otherwise the piece is split exactly. On a 200 MB array of flat orders with 4 MiB blocks
that takes the splitter from about a fifth of the CPU time to about a tenth; pyarrow's parse is
the rest.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar

import ijson
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.config import MAX_COLUMNS, MAX_JSON_DEPTH, ReadOptions
from engine.errors import InputFormatError
from engine.readers.base import Chunk, Reject, Sample, SchemaWidening, Widening
from engine.readers.ndjson import json_failure, parse_json_objects, python_parse, sort_out
from engine.readers.scan import SCAN_SLICE, Nesting, deep_records
from engine.readers.scan import STEP as _STEP
from engine.readers.scan import Scratch as _Scratch
from engine.readers.scan import structure as _structure
from engine.readers.schema import (
    check_rows_have_columns,
    check_width,
    nonfinite_rows,
    unify_schemas,
    unify_types,
    widenings,
)
from engine.readers.streams import first_invalid_utf8

__all__ = ["JsonArrayReader", "VALUE_COLUMN", "path_keys"]

#: Column that holds an array element that is not an object (a number, string, list...).
VALUE_COLUMN = "value"

try:
    _IJSON: Any = ijson.get_backend("yajl2_c")
except ImportError:  # pragma: no cover - the C backend is missing on this platform
    _IJSON = ijson

_WS = b" \t\r\n"
_COLON = re.compile(rb"[ \t\r\n]*:[ \t\r\n]*")
_QUOTE, _BACKSLASH, _COMMA = ord('"'), ord("\\"), ord(",")
_LBRACKET, _RBRACKET, _LBRACE, _RBRACE = ord("["), ord("]"), ord("{"), ord("}")



def path_keys(json_path: str | None) -> list[str]:
    """Return the object keys leading to the array an ijson prefix names (``data.item``: data).

    ``None``, ``""`` and ``"item"`` name a top-level array. Raises ``ValueError`` for a prefix
    that does not end in ``item`` or has an empty key.
    """
    if not json_path or json_path == "item":
        return []
    *keys, last = json_path.split(".")
    if last != "item" or not all(keys):
        raise ValueError(f"json_path {json_path!r} must name an array as key.key.item, "
                         "e.g. 'data.item'")
    return keys


# ---------------------------------------------------------------------------------------------
# Splitting the array into elements (the scanner is engine.readers.scan)


@dataclass
class _Elements:
    """The complete elements at the start of a buffer that begins at the array's depth.

    Attributes:
        seps: position of the byte ending each element: a comma, or the array's ``]``.
        closed: whether the last separator is the array's ``]``.
        objects: whether every element is exactly one object (the fast path applies).

    """

    seps: np.ndarray
    closed: bool
    objects: bool


def _elements(a: np.ndarray, scratch: _Scratch | None = None) -> _Elements:
    """Find the complete elements in ``a``, which starts outside strings at the array's depth."""
    pos, ch, _ = _structure(a, scratch=scratch)
    step = _STEP.take(ch)
    depth = np.cumsum(step, dtype=np.int32)
    closed = False
    if depth.size and depth.min() < 0:
        end = int(np.argmax(depth < 0))
        if ch[end] != _RBRACKET:
            raise ValueError(f"'}}' at byte {int(pos[end])} closes the array")
        pos, ch, step, depth = pos[: end + 1], ch[: end + 1], step[: end + 1], depth[: end + 1]
        closed = True
    # Bytes at the array's own depth: an element's opening bracket, separators, the closing "]".
    level = np.flatnonzero(depth == step)
    events = ch.take(level)
    is_sep = events == _COMMA
    if closed:
        is_sep[-1] = True
    sep_at = np.flatnonzero(is_sep)
    seps = pos.take(level.take(sep_at))
    if seps.size:
        events = events[: int(sep_at[-1]) + 1]
    objects = events.size == 2 * seps.size and bool((events[0::2] == _LBRACE).all())
    return _Elements(seps, closed, objects)


def _segments(buf: bytes, seps: np.ndarray) -> list[tuple[int, bytes]]:
    """``(start, text)`` of each element before ``seps``: whitespace removed, start in ``buf``."""
    out = []
    start = 0
    for end in seps.tolist():
        raw = buf[start:end]
        text = raw.lstrip(_WS)
        out.append((start + len(raw) - len(text), text.rstrip(_WS)))
        start = end + 1
    return out


def _one_line(buf: bytes, seps: np.ndarray) -> bytearray:
    """Copy the elements before ``seps``, separators turned into line breaks (for pyarrow)."""
    piece = bytearray(memoryview(buf)[: int(seps[-1]) + 1])
    np.frombuffer(piece, np.uint8)[seps] = ord("\n")
    return piece


# ---------------------------------------------------------------------------------------------
# Guessing separators

#: Most whitespace bytes looked through between ``}``, ``,`` and ``{`` when guessing separators.
_GUESS_SPAN = 256
_BLANK = np.zeros(256, np.bool_)
_BLANK[list(_WS)] = True


def _next_solid(a: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Position of the first non-whitespace byte at or after each of ``at`` (-1: none near)."""
    found = np.full(at.size, -1, np.int64)
    todo = np.flatnonzero(at < a.size)
    pos = at.take(todo)
    for _ in range(_GUESS_SPAN):
        blank = _BLANK.take(a.take(pos))
        solid = ~blank
        found[todo[solid]] = pos[solid]
        pos = pos[blank] + 1
        todo = todo[blank]
        inside = pos < a.size
        pos, todo = pos[inside], todo[inside]
        if not todo.size:
            break
    return found


def _guess(a: np.ndarray, scratch: _Scratch) -> _Elements | None:
    """Guess the separators of a run of objects: commas between ``}`` and ``{``.

    One sparse pass instead of the full scan of :func:`_elements`. The guess is wrong where such
    a comma lies inside a string or a nested array, and misses separators next to anything but
    objects, so it must be verified: with every guessed comma turned into a line break, pyarrow
    parses the piece into exactly one row per guessed element only if the guess is right. (The
    piece starts at a true element boundary; a wrong line break either falls inside a string,
    where a raw line break is invalid, or between two values in a container, which then lack
    their comma; a missed separator leaves a comma between two top-level values.)
    """
    first = _next_solid(a, np.zeros(1, np.int64))[0]
    if first < 0 or a[first] != _LBRACE:
        return None
    _, mask, _ = scratch.arrays(a.size)
    closes = np.flatnonzero(np.equal(a, _RBRACE, out=mask))
    commas = _next_solid(a, closes + 1)
    commas = commas[commas >= 0]
    commas = commas[a.take(commas) == _COMMA]
    opens = _next_solid(a, commas + 1)
    ok = opens >= 0
    ok[ok] = a.take(opens[ok]) == _LBRACE
    seps = commas[ok]
    return _Elements(seps, closed=False, objects=True) if seps.size else None


class _Guesses:
    """When to try :func:`_guess`: always, until a guess fails; then after 2, 4, 8... pieces."""

    def __init__(self) -> None:
        self._failures = 0
        self._skip = 0

    def guess(self, a: np.ndarray, scratch: _Scratch) -> _Elements | None:
        """Guessed separators for ``a``, or ``None`` (no guess, or guessing is backing off)."""
        if self._skip:
            self._skip -= 1
            return None
        return _guess(a, scratch)

    def failed(self) -> None:
        """The last guess did not parse: back off."""
        self._failures += 1
        self._skip = 2 ** min(self._failures, 10)


# ---------------------------------------------------------------------------------------------
# Locating the array


_LEADING_WS = re.compile(rb"[ \t\r\n]*")

#: Events of the document outside strings: positions, bytes, depth after each.
_Events = tuple[np.ndarray, np.ndarray, np.ndarray]


def _locate(buf: bytes | bytearray, keys: list[str], uri: str, path: str, eof: bool,
            events: _Events | None = None) -> int | None:
    """Index of the ``[`` that opens the array in ``buf``; ``None`` if more bytes are needed.

    ``events``: the document's quotes, brackets and commas outside strings down to the array's
    depth, if the caller scanned them already (:meth:`JsonArrayReader._open_array` does, a
    slice at a time, rather than rescanning a growing buffer).
    """
    first = _LEADING_WS.match(buf).end()  # type: ignore[union-attr]
    if first == len(buf):
        if eof:
            raise InputFormatError("the input is empty", uri=uri, offset=0)
        return None
    opener = buf[first]
    if not keys:
        if opener == _LBRACKET:
            return first
        what = "an object" if opener == _LBRACE else "not an array"
        raise InputFormatError(
            f"the JSON document's top-level value is {what}: pass --json-path (e.g. data.item) "
            "to read an array inside it, or --format ndjson for one object per line",
            uri=uri, offset=first,
        )
    if opener != _LBRACE:
        raise InputFormatError(f"json_path {path!r} needs a JSON object at the top level",
                               uri=uri, offset=first)
    if events is None:
        pos, ch, _ = _structure(np.frombuffer(buf, np.uint8), quotes=True)
        depth = np.cumsum(_STEP.take(ch), dtype=np.int32)
    else:
        pos, ch, depth = events
    opened = 0  # event index of the "{" of the object searched at this level
    for level, key in enumerate(keys, 1):
        value = _member(buf, pos, ch, depth, opened, level, key)
        if value is None:
            return None
        where = ".".join(keys[:level])
        if value < 0:
            raise InputFormatError(f"json_path {path!r}: {where!r} is not in the document",
                                   uri=uri, offset=int(pos[opened]))
        last = level == len(keys)
        if buf[value] != (_LBRACKET if last else _LBRACE):
            kind = "an array" if last else "an object"
            raise InputFormatError(f"json_path {path!r}: the value of {where!r} is not {kind}",
                                   uri=uri, offset=value)
        if last:
            return value
        opened = int(np.searchsorted(pos, value))
    raise AssertionError("unreachable")  # pragma: no cover


def _member(
    buf: bytes, pos: np.ndarray, ch: np.ndarray, depth: np.ndarray, opened: int, level: int,
    key: str,
) -> int | None:
    """Find the value of ``key`` in the object whose ``{`` is event ``opened``, at ``level``.

    Returns the value's index in ``buf``, -1 if the object has no such key, ``None`` if more
    bytes are needed.
    """
    after = opened + 1
    # A member ends at a comma at this depth; the object ends where the depth drops below it.
    stops = after + np.flatnonzero(((ch[after:] == _COMMA) & (depth[after:] == level))
                                   | (depth[after:] < level))
    j = after
    while j + 1 < ch.size and ch[j] == _QUOTE:
        try:
            name = json.loads(buf[pos[j]: pos[j + 1] + 1])
        except ValueError:
            return -1
        if name == key:
            colon = _COLON.match(buf, int(pos[j + 1]) + 1)
            if colon is None:
                return -1 if buf[int(pos[j + 1]) + 1:].strip(_WS) else None
            return colon.end() if colon.end() < len(buf) else None
        k = int(np.searchsorted(stops, j))
        if k == stops.size:
            return None
        if ch[stops[k]] != _COMMA:
            return -1
        j = int(stops[k]) + 1
    return None if j + 1 >= ch.size and (j >= ch.size or ch[j] == _QUOTE) else -1


# ---------------------------------------------------------------------------------------------
# Parsing elements


#: Below this many elements a failing run is sorted out one by one with json.loads.
_LEAF_ELEMENTS = 64


def _reason(exc: Exception) -> str:
    text = str(exc).removeprefix("JSON parse error: ").split(" in row ")[0]
    return text.splitlines()[0] if text else type(exc).__name__


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
    """The values ijson finds at ``prefix``: no duplicate keys, no number beyond float64."""
    values = list(_IJSON.items(text, prefix, use_float=True, map_type=_Keys))
    for value in values:
        _check_value(value)
    return values


def _python_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows built in Python as a table of ``schema``; non-strings in string columns as JSON text."""
    for name in (f.name for f in schema if pa.types.is_string(f.type)):
        for row in rows:
            value = row.get(name)
            if value is not None and not isinstance(value, str):
                row[name] = json.dumps(value, ensure_ascii=False)
    return pa.Table.from_pylist(rows, schema=schema)


def _value_schema(values: list[Any]) -> pa.Schema:
    """Infer the schema of the rows ``{"value": v}`` with Arrow (string if the types mix)."""
    try:
        return pa.Table.from_pylist([{VALUE_COLUMN: v} for v in values]).schema
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.schema([(VALUE_COLUMN, pa.string())])


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

    Elements that are not objects become rows with one column, ``value``. A bad element is
    rejected; a document that is not a JSON array, or that is cut short, is an error.
    """

    format: ClassVar[str] = "json"

    _strict: frozenset[str] = frozenset()

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
        """
        head = next((s for s in samples if s.at_start), None)
        if head is None:
            raise InputFormatError("schema inference needs the start of the document", uri=self.uri)
        start = _locate(head.data, self._keys, self.uri, self._path, head.at_end)
        if start is None:
            if head.at_end:
                raise InputFormatError(f"json_path {self._path!r} not found in the document",
                                       uri=self.uri)
            return pa.schema([])  # the array starts past the sample: read() widens from empty
        buf = head.data[start + 1:]
        try:
            found = _elements(np.frombuffer(buf, np.uint8))
        except ValueError as exc:
            raise InputFormatError(f"malformed JSON document: {exc}", uri=self.uri) from None
        schema = pa.schema([])
        if found.seps.size and not (found.closed and found.seps.size == 1
                                    and not buf[: found.seps[0]].strip(_WS)):
            for seen in self._infer(buf, found, start + 1):
                schema = unify_schemas(schema, seen)
        return check_width(pa.schema([
            pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type)
            for f in schema]), self.uri)

    def _infer(self, buf: bytes, found: _Elements, base: int) -> list[pa.Schema]:
        """Schemas of the complete elements of ``buf``; too deep or bad elements are skipped.

        Objects are parsed in groups of at most ``MAX_COLUMNS`` keys, other values with ijson.
        """
        end = int(found.seps[-1]) + 1
        bad = first_invalid_utf8(memoryview(buf)[:end])
        if bad is not None:  # pyarrow would take the bytes into a field name
            raise InputFormatError(
                f"bytes are not valid UTF-8 ({bad[1]}); use --encoding for other encodings",
                uri=self.uri, record=1 + int(np.searchsorted(found.seps, bad[0])),
                offset=base + bad[0])
        deep = set(deep_records(np.frombuffer(buf, np.uint8), found.seps, MAX_JSON_DEPTH))
        if found.objects and not deep and buf.count(b":", 0, end) <= MAX_COLUMNS:
            try:
                table = parse_json_objects(_one_line(buf, found.seps), None, multiline=True,
                                           records=int(found.seps.size))
                if table.num_rows == found.seps.size:
                    return [table.schema]
            except pa.ArrowInvalid:
                pass
        out, values, group, keys = [], [], [], 0
        texts = [text for i, (_, text) in enumerate(_segments(buf, found.seps)) if i not in deep]
        for text in texts + [b""]:
            count = text.count(b":")
            if group and (not text or keys + count > MAX_COLUMNS):
                out += self._infer_objects(group)
                group, keys = [], 0
            if text[:1] == b"{":
                group.append(text)
                keys += count
            elif text:
                try:
                    values.extend(_items(text, ""))
                except (ijson.JSONError, ValueError):
                    continue
        if values:
            out.append(_value_schema(values))
        return out

    @staticmethod
    def _infer_objects(texts: list[bytes]) -> list[pa.Schema]:
        try:
            table = parse_json_objects(b"\n".join(texts), None, multiline=True,
                                       records=len(texts))
            if table.num_rows == len(texts):
                return [table.schema]
        except pa.ArrowInvalid:
            pass
        out = []
        for text in texts:  # a bad element must not spoil inference
            try:
                out.append(parse_json_objects(text, None, multiline=True, records=1).schema)
            except pa.ArrowInvalid:
                continue
        return out

    # -- reading ----------------------------------------------------------------------------

    def read(
        self, stream: BinaryIO, schema: pa.Schema, *, widen: str = "restart",
        strict: frozenset[str] = frozenset(),
    ) -> Iterator[Chunk]:
        """Parse the array's elements in chunks; see :class:`engine.readers.base.Reader`."""
        self._strict = strict
        buf, base = self._open_array(stream)
        record = 1
        scratch, guesses = _Scratch(), _Guesses()
        while True:
            found, result, guessed = self._next_piece(buf, schema, base, record, widen, scratch,
                                                      guesses)
            if found.seps.size:
                if result is not None:
                    table, rejects, schema = result
                    result = None
                    yield Chunk(table, record, int(found.seps.size), base, rejects)
                    del table, rejects  # the consumer holds the chunk, not the next parse
                    record += int(found.seps.size)
                cut = int(found.seps[-1]) + 1
                if found.closed:
                    self._check_tail(stream, buf[cut:], base + cut)
                    return
                buf, base = buf[cut:], base + cut
                if guessed:
                    continue  # the rest may hold the array's end: split it exactly first
                size = self.options.block_size
            elif len(buf) < self.options.block_size // 2:
                size = self.options.block_size  # the tail of a piece: read the next block
            else:  # an element of half a block or more: scan on from where the split stopped
                found, buf, deep = self._span(stream, buf, base, record)
                result = self._parse_chunk(buf, found, schema, base, record, widen, deep=deep)
                assert result is not None  # only a guessed split is refused
                table, rejects, schema = result
                result = None
                yield Chunk(table, record, 1, base, rejects)
                del table, rejects
                record += 1
                cut = int(found.seps[-1]) + 1
                if found.closed:
                    self._check_tail(stream, buf[cut:], base + cut)
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

    def _next_piece(
        self,
        buf: bytes,
        schema: pa.Schema,
        base: int,
        record: int,
        widen: str,
        scratch: _Scratch,
        guesses: _Guesses,
    ) -> tuple[_Elements, _Result | None, bool]:
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
            found = _elements(a, scratch)
        except ValueError as exc:
            raise InputFormatError(f"malformed JSON document: {exc}", uri=self.uri,
                                   record=record, offset=base) from None
        if not found.seps.size:
            return found, None, False
        self._check_sizes(found.seps, base, record)
        if found.closed and record == 1 and found.seps.size == 1 \
                and not buf[: int(found.seps[0])].strip(_WS):
            return found, None, False  # "[ ]"
        return found, self._parse_chunk(buf, found, schema, base, record, widen), False

    def _span(self, stream: BinaryIO, buf: bytes, base: int,
              record: int) -> tuple[_Elements, bytes, list[int]]:
        """Read on until the element that starts ``buf`` ends; its separator and the bytes.

        The new bytes are scanned as they arrive, a slice at a time, carrying the string state
        and depth between slices (:class:`Nesting`); nothing is rescanned, and memory is the
        element's bytes plus a slice's work arrays, up to ``max_record_bytes``. Also returns
        ``[0]`` when the element is nested deeper than ``MAX_JSON_DEPTH``.
        """
        nesting = Nesting()
        held = bytearray(buf)
        data = buf
        while True:
            a = np.frombuffer(data, np.uint8)
            done = len(held) - len(data)
            for at in range(0, a.size, SCAN_SLICE):
                pos, ch, levels = nesting.feed(a[at:at + SCAN_SLICE])
                ends = np.flatnonzero(((ch == _COMMA) & (levels == 0)) | (levels < 0))
                if not ends.size:
                    continue
                k = int(ends[0])
                end = done + at + int(pos[k])
                if levels[k] < 0 and ch[k] != _RBRACKET:
                    raise InputFormatError(f"malformed JSON document: '}}' at byte {base + end} "
                                           "closes the array", uri=self.uri, record=record,
                                           offset=base)
                del a
                whole = bytes(held)
                del held
                objects = whole[:end].strip(_WS)[:1] == b"{"
                found = _Elements(np.array([end], np.int64), bool(levels[k] < 0), objects)
                self._check_sizes(found.seps, base, record)
                return found, whole, [0] if nesting.deepest > MAX_JSON_DEPTH else []
            del a
            if len(held) > self.options.max_record_bytes:
                self._too_long(record, base)
            data = stream.read(self.options.block_size)
            if not data:
                raise InputFormatError(
                    f"unterminated JSON document: {self._where} has no closing ']'",
                    uri=self.uri, record=record, offset=base,
                )
            held += data

    def _open_array(self, stream: BinaryIO) -> tuple[bytes, int]:
        """Read up to the array's ``[``: the bytes after it, and their offset in the stream.

        With a ``json_path``, each block read is scanned once, a slice at a time, keeping only
        the events down to the array's depth: memory is the bytes held (at most
        ``max_record_bytes``), not a multiple of them.
        """
        held = bytearray()
        nesting, limit = Nesting(), len(self._keys) + 1
        kept: list[_Events] = []
        while True:
            data = stream.read(self.options.block_size)
            events = None
            if self._keys:
                a = np.frombuffer(data, np.uint8)
                for at in range(0, a.size, SCAN_SLICE):
                    pos, ch, levels = nesting.feed(a[at:at + SCAN_SLICE], quotes=True)
                    keep = levels <= limit
                    kept.append((pos[keep] + (len(held) + at), ch[keep], levels[keep]))
                kept = [tuple(np.concatenate(part) for part in zip(*kept, strict=True))]
                events = kept[0]
            held += data
            start = _locate(held, self._keys, self.uri, self._path, not data, events)
            if start is not None:
                return bytes(held[start + 1:]), start + 1
            if not data:
                raise InputFormatError(f"json_path {self._path!r} not found in the document",
                                       uri=self.uri)
            if len(held) > self.options.max_record_bytes:
                raise InputFormatError(
                    f"json_path {self._path!r} not found in the first "
                    f"{self.options.max_record_bytes} bytes (max_record_bytes)", uri=self.uri,
                )

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
            self._too_long(record + oversize[0], base + oversize[1])

    def _too_long(self, record: int, offset: int) -> None:
        raise InputFormatError(
            f"an array element is longer than max_record_bytes ({self.options.max_record_bytes}"
            " bytes): an unbalanced quote or bracket?", uri=self.uri, record=record, offset=offset,
        )

    def _check_tail(self, stream: BinaryIO, buf: bytes, offset: int) -> None:
        """Scan the document after the array: its containers must close, then only whitespace."""
        depth, in_string, escaped = len(self._keys), False, False
        while True:
            if depth == 0:
                rest = buf.lstrip(_WS)
                if rest:
                    raise InputFormatError("trailing data after the JSON document", uri=self.uri,
                                           offset=offset + len(buf) - len(rest))
            elif buf:
                skip = 1 if escaped else 0
                pos, ch, in_string = _structure(np.frombuffer(buf, np.uint8)[skip:],
                                                in_string=in_string)
                levels = depth + np.cumsum(_STEP.take(ch), dtype=np.int64)
                closes = np.flatnonzero(levels <= 0)
                if closes.size:
                    end = int(pos[closes[0]]) + skip + 1
                    if levels[closes[0]] < 0 or ch[closes[0]] != _RBRACE:
                        raise InputFormatError("malformed JSON document: unbalanced brackets",
                                               uri=self.uri, offset=offset + end - 1)
                    depth, buf, offset = 0, buf[end:], offset + end
                    continue
                depth = int(levels[-1]) if levels.size else depth
                run = len(buf) - skip - len(buf[skip:].rstrip(b"\\"))
                escaped = in_string and run % 2 == 1
            offset += len(buf)
            buf = stream.read(self.options.block_size)
            if not buf:
                if depth or in_string:
                    raise InputFormatError(
                        "unterminated JSON document: "
                        + ("a string is not closed" if in_string else "an object is not closed"),
                        uri=self.uri, offset=offset,
                    )
                return

    # -- parsing a piece --------------------------------------------------------------------

    def _parse_chunk(
        self,
        buf: bytes,
        found: _Elements,
        schema: pa.Schema,
        offset: int,
        first: int,
        widen: str,
        *,
        guessed: bool = False,
        deep: list[int] | None = None,
    ) -> _Result | None:
        """Parse the elements before ``found.seps``: rows, rejects and the schema now in force.

        With ``guessed`` (separators from :func:`_guess`), returns ``None`` unless pyarrow parses
        the piece into exactly one row per element, which proves the guess right.
        """
        bad = first_invalid_utf8(memoryview(buf)[: int(found.seps[-1]) + 1])
        if bad is not None:  # pyarrow's JSON parser copies invalid UTF-8 as is
            raise InputFormatError(
                f"bytes are not valid UTF-8 ({bad[1]}); use --encoding for other encodings",
                uri=self.uri, record=first + int(np.searchsorted(found.seps, bad[0])),
                offset=offset + bad[0])
        count = int(found.seps.size)
        if deep is None:
            deep = deep_records(np.frombuffer(buf, np.uint8), found.seps, MAX_JSON_DEPTH)
        if deep and guessed:
            return None  # only the exact split can tell where the deep elements are
        if found.objects and not deep:
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
        parsed = self._parse_runs(_segments(buf, found.seps), schema, offset, first,
                                  frozenset(deep))
        wider, changes = schema, []
        for seen, record in sorted(parsed.seen, key=lambda s: s[1]):
            step = unify_schemas(wider, seen, self._strict)
            changes += widenings(wider, step, record)
            wider = step
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
                        buf: bytes, found: _Elements, offset: int, first: int) -> _Result:
        """Reject the elements holding a number beyond float64: pyarrow reads 1e400 as inf."""
        bad = nonfinite_rows(table)
        if bad is None:
            return table, rejects, schema
        chunk = Chunk(table, first, int(found.seps.size), offset, rejects)
        segments = _segments(buf, found.seps)
        for record in chunk.row_records()[bad].tolist():
            start, text = segments[record - first]
            rejects.append(Reject.make(record, offset + start, "a number is beyond the range "
                                       "of float64", text, check="json"))
        rejects.sort(key=lambda r: r.record)
        return table.filter(pa.array(~bad)), rejects, schema

    def _parse_runs(
        self, segments: list[tuple[int, bytes]], schema: pa.Schema, offset: int, first: int,
        deep: frozenset[int] = frozenset(),
    ) -> _Parsed:
        """Parse elements in runs of objects (pyarrow) and of other values (ijson), in order.

        The elements at the indices in ``deep`` are nested too deep to parse: rejected.
        """
        parsed = _Parsed([], [], [])
        i = 0
        while i < len(segments):
            if i in deep:
                start, text = segments[i]
                parsed.rejects.append(Reject.make(
                    first + i, offset + start,
                    f"JSON nested deeper than {MAX_JSON_DEPTH} levels (MAX_JSON_DEPTH)", text,
                    check="json"))
                i += 1
                continue
            is_object = segments[i][1][:1] == b"{"
            j = i + 1
            while j < len(segments) and (segments[j][1][:1] == b"{") == is_object \
                    and j not in deep:
                j += 1
            run = [(offset + start, text) for start, text in segments[i:j]]
            if is_object:
                parsed += self._bisect(run, schema, first + i)
            else:
                parsed += self._values(run, schema, first + i)
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
            inferred = parse_json_objects(text, None, multiline=True, records=1)
        except pa.ArrowInvalid as inner:
            error = inner
        else:
            if inferred.num_rows == 1:
                wider = unify_schemas(schema, inferred.schema, self._strict)
                if not wider.equals(schema):
                    return _Parsed([], [], [(wider, first)])
                for name in self._strict & set(inferred.schema.names):
                    expected = schema.field(name).type
                    found = inferred.schema.field(name).type
                    if not unify_types(expected, found).equals(expected):
                        reason = f"{name}: a {found} value is not {expected}"
                        return _Parsed([], [Reject.make(first, start, reason, text,
                                                        column=name, check="type")], [])
                try:  # the value fits only as JSON text in a string column
                    return _Parsed([python_parse([text], schema)], [], [])
                except (ValueError, TypeError, pa.ArrowException):
                    pass
        reject = Reject.make(first, start, json_failure(text, error), text, check="json")
        return _Parsed([], [reject], [])

    def _sort_out(self, run: list[tuple[int, bytes]], schema: pa.Schema, first: int) -> _Parsed:
        """A few elements: json.loads sorts them out (see :func:`ndjson.sort_out`)."""

        def single(text: bytes, start: int, record: int, exc: Exception) -> tuple:
            parsed = self._bisect_one(start, text, schema, record, exc)
            return parsed.tables, parsed.rejects, parsed.seen

        tables, rejects, seen = sort_out(
            [t for _, t in run], [start for start, _ in run],
            list(range(first, first + len(run))), schema, self._strict, single, multiline=True,
        )
        return _Parsed(tables, rejects, seen)

    def _values(self, run: list[tuple[int, bytes]], schema: pa.Schema, first: int) -> _Parsed:
        """Parse elements that are not objects with ijson, as rows ``{"value": item}``."""
        rejects: list[Reject] = []
        try:
            values = _items(b"[" + b",".join(t for _, t in run) + b"]", "item")
        except (ijson.JSONError, ValueError):
            values = []
        if len(values) != len(run):  # find the bad ones, one element at a time
            values, rejects = [], []
            for k, (start, text) in enumerate(run):
                if not text:
                    reason = "empty array element (two commas in a row, or a trailing comma?)"
                else:
                    try:
                        value = _items(text, "")
                    except (ijson.JSONError, ValueError) as exc:
                        reason = f"invalid JSON: {_reason(exc)}"
                    else:
                        values += value  # exactly one: a text is a single value between commas
                        continue
                rejects.append(Reject.make(first + k, start, reason, text))
        if not values:
            return _Parsed([], rejects, [])
        wider = unify_schemas(schema, _value_schema(values))
        if not wider.equals(schema):
            return _Parsed([], rejects, [(wider, first)])
        rows = [{VALUE_COLUMN: v} for v in values]
        try:
            table = _python_table(rows, schema)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            string = pa.field(VALUE_COLUMN, pa.string())
            return _Parsed([], rejects, [(pa.schema([string]), first)])
        return _Parsed([table], rejects, [])
