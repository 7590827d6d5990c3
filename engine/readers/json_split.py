r"""Where the elements of a JSON array lie in a byte buffer, found with numpy, without parsing.

In a buffer a few vectorised numpy passes (:func:`engine.readers.scan.structure`) find the bytes
that shape the document (``"`` ``\\`` ``[`` ``]`` ``{`` ``}`` ``,``); a quote is escaped iff an
odd run of backslashes precedes it, string state is the parity of the unescaped quotes before a
byte, and nesting depth is the cumulative sum of opening minus closing brackets outside strings.
The commas at the array's own depth separate its elements (:func:`find_elements`). A buffer that
starts outside strings at the array's depth (just after its ``[``, or just after a separator)
needs no other state, so a stream is split a block at a time, the bytes after the last separator
carried into the next block.

Arrays of objects usually need less than the full scan: a comma between ``}`` and ``{`` is
almost always a separator, and one sparse pass finds those (:func:`guess_elements`). A guess
must be verified by the caller (see there); :class:`Guesses` backs off after wrong ones.

:func:`locate_array` finds the array's ``[`` (at the top level, or at a ``json_path`` such as
``data.item``); :func:`open_array`, :func:`read_element` and :func:`check_after_array` do the
same on a stream, in bounded memory. The JSON array reader (:mod:`engine.readers.json_array`)
parses the elements found here; the Map planner (:mod:`engine.aws.planning`) cuts byte ranges
at them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from engine.errors import InputFormatError
from engine.readers.scan import SCAN_SLICE, STEP, Nesting, Scratch, structure

__all__ = [
    "WHITESPACE", "Elements", "Events", "Guesses", "check_after_array", "element_texts",
    "element_too_long", "find_elements", "guess_elements", "locate_array", "open_array",
    "path_keys", "read_element",
]

#: The bytes JSON allows between tokens.
WHITESPACE = b" \t\r\n"

_COLON = re.compile(rb"[ \t\r\n]*:[ \t\r\n]*")
_LEADING_WS = re.compile(rb"[ \t\r\n]*")
_QUOTE, _COMMA = ord('"'), ord(",")
_LBRACKET, _RBRACKET, _LBRACE, _RBRACE = ord("["), ord("]"), ord("{"), ord("}")


def path_keys(json_path: str | None) -> list[str]:
    """Return the object keys leading to the array an ijson prefix names (``data.item``: data).

    ``None``, ``""`` and ``"item"`` name a top-level array. Raises ``ValueError`` for a prefix
    that does not end in ``item`` or has an empty key.

    >>> path_keys("data.rows.item"), path_keys(None)
    (['data', 'rows'], [])
    """
    if not json_path or json_path == "item":
        return []
    *keys, last = json_path.split(".")
    if last != "item" or not all(keys):
        raise ValueError(f"json_path {json_path!r} must name an array as key.key.item, "
                         "e.g. 'data.item'")
    return keys


# ---------------------------------------------------------------------------------------------
# Splitting a buffer into elements


@dataclass
class Elements:
    """The complete elements at the start of a buffer that begins at the array's depth.

    Attributes:
        seps: position of the byte ending each element: a comma, or the array's ``]``.
        closed: whether the last separator is the array's ``]``.
        objects: whether every element is exactly one object (the fast path applies).

    """

    seps: np.ndarray
    closed: bool
    objects: bool

    def empty_array(self, buf: bytes) -> bool:
        """Whether ``buf`` (from just after the ``[``) holds an array with no element: ``[ ]``."""
        return (self.closed and self.seps.size == 1
                and not buf[: int(self.seps[0])].strip(WHITESPACE))


def find_elements(a: np.ndarray, scratch: Scratch | None = None) -> Elements:
    """Find the complete elements in ``a``, which starts outside strings at the array's depth.

    Raises ``ValueError`` for a ``}`` that closes the array.

    >>> found = find_elements(np.frombuffer(b' {"a": [1, 2]}, "x,y" ] ', np.uint8))
    >>> found.seps.tolist(), found.closed, found.objects
    ([14, 22], True, False)
    >>> find_elements(np.frombuffer(b'{"a": 1}, {"a', np.uint8)).seps.tolist()
    [8]
    """
    pos, ch, _ = structure(a, scratch=scratch)
    step = STEP.take(ch)
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
    return Elements(seps, closed, objects)


def element_texts(buf: bytes, seps: np.ndarray) -> list[tuple[int, bytes]]:
    """``(start, text)`` of each element before ``seps``: whitespace removed, start in ``buf``.

    >>> element_texts(b' 1, [2] ]', np.array([2, 8]))
    [(1, b'1'), (4, b'[2]')]
    """
    out = []
    start = 0
    for end in seps.tolist():
        raw = buf[start:end]
        text = raw.lstrip(WHITESPACE)
        out.append((start + len(raw) - len(text), text.rstrip(WHITESPACE)))
        start = end + 1
    return out


# ---------------------------------------------------------------------------------------------
# Guessing separators

#: Most whitespace bytes looked through between ``}``, ``,`` and ``{`` when guessing separators.
_GUESS_SPAN = 256
_BLANK = np.zeros(256, np.bool_)
_BLANK[list(WHITESPACE)] = True


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


def guess_elements(a: np.ndarray, scratch: Scratch) -> Elements | None:
    """Guess the separators of a run of objects: commas between ``}`` and ``{``.

    One sparse pass instead of the full scan of :func:`find_elements`. The guess is wrong where
    such a comma lies inside a string or a nested array, and misses separators next to anything
    but objects, so it must be verified: with every guessed comma turned into a line break,
    pyarrow parses the piece into exactly one row per guessed element only if the guess is
    right. (The piece starts at a true element boundary; a wrong line break either falls inside
    a string, where a raw line break is invalid, or between two values in a container, which
    then lack their comma; a missed separator leaves a comma between two top-level values.)
    Returns ``None`` when ``a`` does not start with an object or no separator is guessed.

    >>> a = np.frombuffer(b'{"a": 1}, {"a": "},{"}, {"a', np.uint8)
    >>> guess_elements(a, Scratch()).seps.tolist()  # 18 is inside a string: a wrong guess
    [8, 18, 22]
    """
    first = _next_solid(a, np.zeros(1, np.int64))[0]
    if first < 0 or a[first] != _LBRACE:
        return None
    mask = scratch.mask(a.size)
    closes = np.flatnonzero(np.equal(a, _RBRACE, out=mask))
    commas = _next_solid(a, closes + 1)
    commas = commas[commas >= 0]
    commas = commas[a.take(commas) == _COMMA]
    opens = _next_solid(a, commas + 1)
    ok = opens >= 0
    ok[ok] = a.take(opens[ok]) == _LBRACE
    seps = commas[ok]
    return Elements(seps, closed=False, objects=True) if seps.size else None


class Guesses:
    """When to try :func:`guess_elements`: always until a guess fails, then after 2, 4, 8... pieces.

    A guess that fails costs a parse; data whose guesses keep failing (arrays of objects with
    ``},{`` inside strings) is then split exactly, with a guess now and then in case it changes.
    """

    def __init__(self) -> None:
        self._failures = 0
        self._skip = 0

    def guess(self, a: np.ndarray, scratch: Scratch) -> Elements | None:
        """Guessed separators for ``a``, or ``None`` (no guess, or guessing is backing off)."""
        if self._skip:
            self._skip -= 1
            return None
        return guess_elements(a, scratch)

    def failed(self) -> None:
        """The last guess did not parse: back off."""
        self._failures += 1
        self._skip = 2 ** min(self._failures, 10)


# ---------------------------------------------------------------------------------------------
# Locating the array

#: Events of the document outside strings: positions, bytes, depth after each.
Events = tuple[np.ndarray, np.ndarray, np.ndarray]


def locate_array(buf: bytes | bytearray, keys: list[str], uri: str, path: str, eof: bool,
                 events: Events | None = None) -> int | None:
    """Index of the ``[`` that opens the array in ``buf``; ``None`` if more bytes are needed.

    Args:
        buf: the document from its first byte (after any byte-order mark).
        keys: the object keys leading to the array (:func:`path_keys`); ``[]``: the document.
        uri: the input, named in errors.
        path: the ``json_path`` as given, named in errors.
        eof: whether ``buf`` is the whole document.
        events: the document's quotes, brackets and commas outside strings down to the array's
            depth, if the caller scanned them already (:func:`open_array` does, a slice at a
            time, rather than rescanning a growing buffer).

    Raises:
        InputFormatError: the document is empty, not an array where one is expected, or has
            no ``path``.

    >>> locate_array(b' {"n": 1, "data": [{"a": 1}]}', ["data"], "x.json", "data.item", True)
    18
    >>> locate_array(b'{"data": ', ["data"], "x.json", "data.item", False) is None
    True
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
        pos, ch, _ = structure(np.frombuffer(buf, np.uint8), quotes=True)
        depth = np.cumsum(STEP.take(ch), dtype=np.int32)
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
                return -1 if buf[int(pos[j + 1]) + 1:].strip(WHITESPACE) else None
            return colon.end() if colon.end() < len(buf) else None
        k = int(np.searchsorted(stops, j))
        if k == stops.size:
            return None
        if ch[stops[k]] != _COMMA:
            return -1
        j = int(stops[k]) + 1
    return None if j + 1 >= ch.size and (j >= ch.size or ch[j] == _QUOTE) else -1


# ---------------------------------------------------------------------------------------------
# On a stream, in bounded memory


def open_array(stream: BinaryIO, keys: list[str], *, uri: str, path: str, block_size: int,
               max_record_bytes: int) -> tuple[bytes, int]:
    """Read up to the array's ``[``: the bytes after it, and their offset in the stream.

    With ``keys`` (a ``json_path``), each block read is scanned once, a slice at a time, keeping
    only the events down to the array's depth: memory is the bytes held (at most
    ``max_record_bytes``), not a multiple of them.

    Raises:
        InputFormatError: as :func:`locate_array`, or no array within ``max_record_bytes``.
    """
    held = bytearray()
    nesting, limit = Nesting(), len(keys) + 1
    kept: list[Events] = []
    while True:
        data = stream.read(block_size)
        events = None
        if keys:
            a = np.frombuffer(data, np.uint8)
            for at in range(0, a.size, SCAN_SLICE):
                pos, ch, levels = nesting.feed(a[at:at + SCAN_SLICE], quotes=True)
                keep = levels <= limit
                kept.append((pos[keep] + (len(held) + at), ch[keep], levels[keep]))
            kept = [tuple(np.concatenate(part) for part in zip(*kept, strict=True))]
            events = kept[0]
        held += data
        start = locate_array(held, keys, uri, path, not data, events)
        if start is not None:
            return bytes(held[start + 1:]), start + 1
        if not data:
            raise InputFormatError(f"json_path {path!r} not found in the document", uri=uri)
        if len(held) > max_record_bytes:
            raise InputFormatError(
                f"json_path {path!r} not found in the first {max_record_bytes} bytes "
                "(max_record_bytes)", uri=uri,
            )


def element_too_long(limit: int, uri: str, record: int | None = None,
                     offset: int | None = None) -> InputFormatError:
    """The error for an element longer than ``limit`` bytes (``max_record_bytes``)."""
    return InputFormatError(
        f"an array element is longer than max_record_bytes ({limit} bytes): an unbalanced "
        "quote or bracket?", uri=uri, record=record, offset=offset,
    )


def read_element(stream: BinaryIO, buf: bytes, *, base: int, record: int, uri: str, where: str,
                 block_size: int, max_record_bytes: int) -> tuple[Elements, bytes, int]:
    """Read on until the element that starts ``buf`` ends; its separator, the bytes, its depth.

    ``buf`` (at offset ``base`` in the stream, record ``record``) starts at the array's depth
    and holds no complete element. The new bytes are scanned as they arrive, a slice at a time,
    carrying the string state and depth between slices (:class:`~engine.readers.scan.Nesting`);
    nothing is rescanned, and memory is the element's bytes plus a slice's work arrays, up to
    ``max_record_bytes``. ``where`` names the array in errors (``the array``). The depth
    returned is the element's deepest nesting, counting the array's own level as 0.

    Raises:
        InputFormatError: the element is longer than ``max_record_bytes``, a ``}`` closes the
            array, or the stream ends first.
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
                                       "closes the array", uri=uri, record=record, offset=base)
            del a
            whole = bytes(held)
            del held
            objects = whole[:end].strip(WHITESPACE)[:1] == b"{"
            found = Elements(np.array([end], np.int64), bool(levels[k] < 0), objects)
            if end > max_record_bytes:
                raise element_too_long(max_record_bytes, uri, record, base)
            return found, whole, nesting.deepest
        del a
        if len(held) > max_record_bytes:
            raise element_too_long(max_record_bytes, uri, record, base)
        data = stream.read(block_size)
        if not data:
            raise InputFormatError(f"unterminated JSON document: {where} has no closing ']'",
                                   uri=uri, record=record, offset=base)
        held += data


def check_after_array(stream: BinaryIO, buf: bytes, offset: int, depth: int, *, uri: str,
                      block_size: int) -> None:
    """Scan the document after the array: its containers must close, then only whitespace.

    ``buf`` holds the bytes after the array's ``]`` (at ``offset`` in the stream), ``depth``
    the number of objects the array is in (``len(keys)``); the rest is read from ``stream``.

    Raises:
        InputFormatError: unbalanced brackets, trailing data, or a document cut short.
    """
    in_string, escaped = False, False
    while True:
        if depth == 0:
            rest = buf.lstrip(WHITESPACE)
            if rest:
                raise InputFormatError("trailing data after the JSON document", uri=uri,
                                       offset=offset + len(buf) - len(rest))
        elif buf:
            skip = 1 if escaped else 0
            pos, ch, in_string = structure(np.frombuffer(buf, np.uint8)[skip:],
                                           in_string=in_string)
            levels = depth + np.cumsum(STEP.take(ch), dtype=np.int64)
            closes = np.flatnonzero(levels <= 0)
            if closes.size:
                end = int(pos[closes[0]]) + skip + 1
                if levels[closes[0]] < 0 or ch[closes[0]] != _RBRACE:
                    raise InputFormatError("malformed JSON document: unbalanced brackets",
                                           uri=uri, offset=offset + end - 1)
                depth, buf, offset = 0, buf[end:], offset + end
                continue
            depth = int(levels[-1]) if levels.size else depth
            run = len(buf) - skip - len(buf[skip:].rstrip(b"\\"))
            escaped = in_string and run % 2 == 1
        offset += len(buf)
        buf = stream.read(block_size)
        if not buf:
            if depth or in_string:
                raise InputFormatError(
                    "unterminated JSON document: "
                    + ("a string is not closed" if in_string else "an object is not closed"),
                    uri=uri, offset=offset,
                )
            return
