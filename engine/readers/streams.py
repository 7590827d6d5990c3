"""Byte streams as readers take them: UTF-8 without a BOM, framed, cut at record boundaries."""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import pyarrow as pa

from engine.errors import InputFormatError

__all__ = ["UTF8_BOM", "Framed", "aligned_pieces", "first_invalid_utf8", "utf8_stream"]

UTF8_BOM = b"\xef\xbb\xbf"

def utf8_stream(stream: BinaryIO, encoding: str, uri: str, *,
                expected_bytes: int | None = None, known_text: bytes | None = None) -> BinaryIO:
    """``stream`` as UTF-8 bytes without a BOM: transcoded while streaming when needed.

    UTF-8 only: ``expected_bytes``, how many bytes ``stream`` holds when that is known (an
    uncompressed input's size), for :func:`aligned_pieces` to size its buffer for a small
    input; ``known_text``, the very bytes the stream gives when they are already in memory (a
    small input read whole, whose text is its stored bytes), for :func:`aligned_pieces` to cut
    its pieces from instead of copying them.
    """
    codec = codecs.lookup(encoding).name
    if codec == "utf-8":
        return _BomSkipping(stream, expected_bytes, known_text)
    return _Transcoding(stream, codec, uri)


class _BomSkipping:
    """Drops a UTF-8 byte-order mark at the very start of the stream."""

    def __init__(self, stream: BinaryIO, expected_bytes: int | None = None,
                 known_text: bytes | None = None) -> None:
        self._stream = stream
        self._first = True
        #: the bytes the stream is expected to hold (at most: a BOM is dropped), if known
        self.expected_bytes = expected_bytes
        #: the text the stream gives, when it is known to be these bytes (see utf8_stream)
        self.known_text = known_text

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if self._first and data:
            self._first = False
            while len(data) < 3 and data == UTF8_BOM[: len(data)]:
                more = self._stream.read(3 - len(data))
                if not more:
                    break
                data += more
            if data.startswith(UTF8_BOM):
                data = data[3:] or self._stream.read(n)
        return data

    def readinto(self, view: memoryview) -> int:
        if self._first and len(view) >= len(UTF8_BOM):
            # Straight into ``view``, then past a BOM: a copy of the first block less
            n = self._stream.readinto(view) or 0
            while 0 < n < len(UTF8_BOM) and bytes(view[:n]) == UTF8_BOM[:n]:
                more = self._stream.readinto(view[n:len(UTF8_BOM)]) or 0  # a BOM cut short
                if not more:
                    break
                n += more
            if not n:
                return 0
            self._first = False
            if bytes(view[:len(UTF8_BOM)]) != UTF8_BOM:
                return n
            n -= len(UTF8_BOM)
            view[:n] = bytes(view[len(UTF8_BOM):len(UTF8_BOM) + n])
            return n or self._stream.readinto(view) or 0
        if self._first:
            data = self.read(len(view))
            view[: len(data)] = data
            return len(data)
        return self._stream.readinto(view)


class _Transcoding:
    """Decodes ``codec`` incrementally and re-encodes it as UTF-8."""

    def __init__(self, stream: BinaryIO, codec: str, uri: str) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder(codec)("strict")
        self._uri = uri
        self._codec = codec
        self._consumed = 0
        self._first = True

    def read(self, n: int = -1) -> bytes:
        while True:
            raw = self._stream.read(n)
            try:
                text = self._decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                raise InputFormatError(
                    f"bytes are not valid {self._codec}: {exc.reason}",
                    uri=self._uri, offset=self._consumed + exc.start,
                ) from None
            self._consumed += len(raw)
            if self._first and text:
                self._first = False
                text = text.removeprefix("\ufeff")
            if text or not raw:
                return text.encode("utf-8")


#: Bytes beyond a block that :func:`aligned_pieces` keeps for the partial record it carries over.
_LEFTOVER_ROOM = 1 << 20


def aligned_pieces(
    stream: BinaryIO,
    cut: Callable[[bytearray, int], int],
    *,
    block_size: int,
    max_record_bytes: int,
    uri: str,
    first_record: Callable[[], int],
) -> Iterator[tuple[int, memoryview, bool]]:
    """Yield ``(offset, piece, last)``: the stream in pieces that each end at a record boundary.

    Reads into one reused ``bytearray`` and yields views of it, so no block is allocated or
    copied per piece (measured: 16 MiB less peak RSS at 4 MiB blocks
    than bytes concatenation). A stream that says it holds fewer bytes than a block
    (``expected_bytes``, :func:`utf8_stream`) gets a buffer of its size: zeroing (and faulting
    in) a block and the room after it took ~3 ms of a warm 1 MB conversion. Should it hold
    more, reading goes on in whole blocks. ``cut(buf, end)`` returns the index just past the
    last complete record in ``buf[:end]`` (0 if none). A piece is only valid until the next
    one is requested: pyarrow's parsers copy what they keep, and the consumer must not hold
    on to the view.
    """
    # Room for a partial record after the block: the buffer then grows only for records over
    # _LEFTOVER_ROOM. Each growth reallocates it, and once glibc's dynamic mmap threshold has
    # risen past its size the new copy lands on the heap, where it stays as fragmentation:
    # growing by a few bytes at a time left ~9 MiB more peak RSS after ~70 MB of input.
    known = getattr(stream, "known_text", None)
    if known is not None and len(known) < block_size:  # what one read would give
        yield from _known_pieces(stream, known, cut, max_record_bytes, uri, first_record)
        return
    expected = getattr(stream, "expected_bytes", None)
    room = block_size if expected is None else min(block_size, max(64, expected + 1))
    buf = bytearray(room + (_LEFTOVER_ROOM if room == block_size else 0))
    filled = 0  # bytes of buf holding data
    offset = 0  # stream offset of buf[0]
    readinto = getattr(stream, "readinto", None)
    while True:
        if filled > max_record_bytes:  # what is carried over is one unfinished record
            raise InputFormatError(
                f"a record is longer than max_record_bytes ({max_record_bytes} bytes): "
                "an unbalanced quote or a missing line break?",
                uri=uri, record=first_record(), offset=offset,
            )
        if len(buf) - filled < room:
            try:  # in place: realloc moves the pages of a large buffer, it does not copy them
                buf.extend(bytes(filled + room + _LEFTOVER_ROOM - len(buf)))
            except BufferError:  # the consumer still holds a view of it: copy, view to view
                grown = bytearray(filled + room + _LEFTOVER_ROOM)
                grown[:filled] = memoryview(buf)[:filled]
                buf = grown
        if readinto is not None:
            n = readinto(memoryview(buf)[filled:filled + room]) or 0
        else:
            data = stream.read(room)
            n = len(data)
            buf[filled:filled + n] = data
        if n == room < block_size:  # more than expected: on in whole blocks
            room = block_size
        if not n:
            if filled:
                yield offset, memoryview(buf)[:filled], True
            return
        filled += n
        pos = cut(buf, filled)
        if pos <= 0:
            continue
        yield offset, memoryview(buf)[:pos], False
        rest = filled - pos
        buf[:rest] = buf[pos:filled]
        filled = rest
        offset += pos


def _known_pieces(
    stream: BinaryIO, known: bytes, cut: Callable[[bytes, int], int], max_record_bytes: int,
    uri: str, first_record: Callable[[], int],
) -> Iterator[tuple[int, memoryview, bool]]:
    """:func:`aligned_pieces` of a stream whose text, smaller than a block, is ``known``.

    The pieces are views of ``known``, cut where one read of the whole would be. The stream is
    still read to its end, through a small buffer, so that its stored bytes count as read (the
    run's ``bytes_in``, progress): ~0.1 ms per MB, where copying it into a buffer of its own
    size (fresh pages) took ~0.6.
    """
    scratch = bytearray(min(len(known) + 1, 1 << 18))
    readinto = getattr(stream, "readinto", None)
    total = 0
    while n := (readinto(memoryview(scratch)) if readinto is not None
                else len(stream.read(len(scratch)))):
        total += n
    if total != len(known):
        raise InputFormatError(f"the input gave {total} bytes where {len(known)} were read "
                               "before: it changed while it was read", uri=uri)
    pos = cut(known, len(known)) if known else 0
    if pos > 0:
        yield 0, memoryview(known)[:pos], False
    if pos < len(known):
        if len(known) - pos > max_record_bytes:
            raise InputFormatError(
                f"a record is longer than max_record_bytes ({max_record_bytes} bytes): "
                "an unbalanced quote or a missing line break?",
                uri=uri, record=first_record(), offset=pos,
            )
        yield pos, memoryview(known)[pos:], True


def first_invalid_utf8(data: bytes | bytearray | memoryview) -> tuple[int, str] | None:
    """Index and reason of the first byte of ``data`` that is not UTF-8, or ``None``.

    Arrow's vectorised validation over the bytes as they are (no copy, no decode); only an
    invalid input is decoded in Python, to find the position.
    """
    offsets = pa.py_buffer(struct.pack("<2q", 0, len(data)))
    try:
        pa.LargeStringArray.from_buffers(1, offsets, pa.py_buffer(data)).validate(full=True)
        return None
    except pa.ArrowInvalid:
        pass
    try:
        bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start, exc.reason
    return None


class Framed:
    """A stream with ``prefix`` before its first byte and ``suffix`` after its last.

    A Map part of a JSON array holds whole elements and the commas between them; framed by
    ``[`` and ``]`` it reads as an array of its own.
    """

    def __init__(self, stream: Any, prefix: bytes, suffix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix
        self._suffix: bytes | None = suffix

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all for ``-1``), fewer only at the end, as a buffered reader."""
        out = self._prefix
        self._prefix = b""
        while self._suffix is not None and (n is None or n < 0 or len(out) < n):
            data = self._stream.read(-1 if n is None or n < 0 else n - len(out))
            if not data:
                out += self._suffix
                self._suffix = None
            out += data
        if n is not None and 0 <= n < len(out):  # the suffix went over: keep it for later
            out, self._prefix = out[:n], out[n:]
        return out

    def readinto(self, view: Any) -> int:
        """Fill ``view``; the count, 0 at the end."""
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)
