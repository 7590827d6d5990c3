"""Decompression for :mod:`engine.io`: the counting reader over the stored bytes, gzip, bz2, zstd.

:func:`open_decompressed` wraps a stored byte stream (a local file, the S3 ranged reader, or
a window of either) in a reader that counts the bytes consumed and maps the source's failures
to engine errors, then in the decompressor the compression name asks for. zstd gets a frame
tracker, because ``zstandard`` reports a stream cut in the middle of a frame as a clean end.
"""

from __future__ import annotations

import bz2
import io
import zlib
from collections.abc import Callable
from typing import Any, cast

import zstandard
from isal import igzip
from isal.isal_zlib import error as IsalError

from engine.errors import EngineError

__all__ = ["DECOMPRESS_ERRORS", "ErrorMapper", "open_decompressed"]

#: Buffer between the decompressor (or the stored bytes) and the caller.
_READ_BUFFER = 256 * 1024

#: What a decompressor raises on corrupt or truncated data (isal's gzip reader raises zlib's
#: exceptions and its own ``error``).
DECOMPRESS_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zlib.error,
    IsalError,
    zstandard.ZstdError,
)

#: Turns an exception from the stored byte stream, raised after ``offset`` bytes, into an
#: engine error (``None``: not an I/O failure, let it propagate).
ErrorMapper = Callable[[BaseException, int], EngineError | None]


class _CountingReader(io.RawIOBase):
    """The stored bytes: counts what is consumed and maps failures to engine errors.

    Args:
        source: the stored byte stream (a local ``FileIO`` or :class:`engine.io.s3.RangedReader`).
        map_error: see :data:`ErrorMapper`.
        observer: called with each chunk read (the zstd frame tracker).

    """

    def __init__(
        self,
        source: Any,
        map_error: ErrorMapper,
        observer: Callable[[memoryview], None] | None = None,
    ) -> None:
        super().__init__()
        self._source = source
        self._map_error = map_error
        self._observer = observer
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def _pull(self, method: Callable[[Any], Any], arg: Any) -> Any:
        try:
            return method(arg)
        except EngineError:
            raise
        except Exception as exc:
            mapped = self._map_error(exc, self.bytes_read)
            if mapped is None:
                raise
            raise mapped from exc

    def _consumed(self, chunk: memoryview) -> None:
        self.bytes_read += chunk.nbytes
        if self._observer is not None and chunk.nbytes:
            self._observer(chunk)

    def readinto(self, buffer: Any) -> int:
        n = cast(int, self._pull(self._source.readinto, buffer) or 0)
        self._consumed(memoryview(buffer)[:n])
        return n

    def read(self, size: int | None = -1) -> bytes:
        # gzip, bz2 and zstd pull with read(); forwarding it avoids readinto's extra copy.
        data = cast(bytes, self._pull(self._source.read, -1 if size is None else size))
        self._consumed(memoryview(data))
        return data

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            super().close()


_ZSTD_MAGIC = 0xFD2FB528


class _ZstdFrameTracker:
    """Follows the zstd frame structure over the stored bytes, without decompressing.

    ``zstandard``'s stream reader returns a short, clean EOF when the input stops in the middle
    of a frame; this tracker tells a stream that ends between frames from one that was cut.
    It only reads frame and block headers and skips block bodies, so it costs next to nothing.
    Structures it does not understand make it step aside (``zstd`` itself reports them).
    """

    def __init__(self) -> None:
        self._state = "magic"
        self._need = 4
        self._header = bytearray()
        self._skip = 0
        self._checksum = False
        self._last_block = False
        self._unknown = False

    @property
    def at_frame_boundary(self) -> bool:
        """Whether the bytes seen so far end exactly between two frames."""
        return self._unknown or (self._state == "magic" and not self._header and not self._skip)

    def feed(self, data: memoryview) -> None:
        """Account for the next stored bytes."""
        pos, end = 0, len(data)
        while pos < end and not self._unknown:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                if not self._skip:
                    self._skipped()
                continue
            step = min(self._need - len(self._header), end - pos)
            self._header += data[pos : pos + step]
            pos += step
            if len(self._header) == self._need:
                header = bytes(self._header)
                self._header.clear()
                self._parsed(header)

    def _expect(self, state: str, need: int) -> None:
        self._state, self._need = state, need

    def _skip_then(self, state: str, count: int) -> None:
        self._state, self._skip = state, count
        if not count:
            self._skipped()

    def _parsed(self, header: bytes) -> None:
        value = int.from_bytes(header, "little")
        if self._state == "magic":
            if value == _ZSTD_MAGIC:
                self._expect("descriptor", 1)
            elif value & 0xFFFFFFF0 == 0x184D2A50:  # skippable frame
                self._expect("skippable_size", 4)
            else:
                self._unknown = True
        elif self._state == "skippable_size":
            self._skip_then("skippable_body", value)
        elif self._state == "descriptor":
            fcs_flag, single_segment = value >> 6, (value >> 5) & 1
            if value & 0x08:  # reserved bit
                self._unknown = True
                return
            self._checksum = bool(value & 0x04)
            rest = (0 if single_segment else 1) + (0, 1, 2, 4)[value & 0x03]
            rest += (single_segment, 2, 4, 8)[fcs_flag]
            self._skip_then("frame_header", rest)
        elif self._state == "block_header":
            self._last_block = bool(value & 1)
            block_type, block_size = (value >> 1) & 3, value >> 3
            if block_type == 3:
                self._unknown = True
                return
            self._skip_then("block_body", 1 if block_type == 1 else block_size)

    def _skipped(self) -> None:
        if self._state == "frame_header":
            self._expect("block_header", 3)
        elif self._state == "block_body":
            if not self._last_block:
                self._expect("block_header", 3)
            elif self._checksum:
                self._skip_then("checksum", 4)
            else:
                self._expect("magic", 4)
        else:  # skippable_body, checksum
            self._expect("magic", 4)


class _ZstdReader(io.RawIOBase):
    """zstd decompression across frames, which raises on a truncated last frame."""

    def __init__(self, raw: _CountingReader, tracker: _ZstdFrameTracker) -> None:
        super().__init__()
        self._tracker = tracker
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            raw, read_across_frames=True, closefd=False
        )

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = cast(int, self._reader.readinto(buffer))
        if not n and len(buffer) and not self._tracker.at_frame_boundary:
            raise EOFError("zstd stream ends in the middle of a frame")
        return n

    def close(self) -> None:
        try:
            self._reader.close()
        finally:
            super().close()


def open_decompressed(
    source: Any, compression: str, map_error: ErrorMapper
) -> tuple[_CountingReader, Any]:
    """Wrap the stored byte stream ``source`` for reading decompressed bytes.

    Args:
        source: the stored byte stream; closing the counting reader closes it.
        compression: ``none``, ``gzip``, ``bz2`` or ``zstd`` (already checked by the caller).
        map_error: see :data:`ErrorMapper`.

    Returns:
        The counting reader over ``source`` (its ``bytes_read`` is the progress in stored
        bytes), and the buffered reader of decompressed bytes on top of it.

    """
    tracker = _ZstdFrameTracker() if compression == "zstd" else None
    raw = _CountingReader(source, map_error, tracker.feed if tracker else None)
    inner: Any
    if compression == "gzip":
        inner = igzip.IGzipFile(fileobj=raw, mode="rb")
    elif compression == "bz2":
        inner = bz2.BZ2File(raw, mode="rb")
    elif tracker is not None:
        inner = io.BufferedReader(_ZstdReader(raw, tracker), _READ_BUFFER)
    else:
        inner = io.BufferedReader(raw, _READ_BUFFER)
    return raw, inner
