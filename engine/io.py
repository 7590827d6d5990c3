"""Open local paths and ``s3://`` URIs for streaming reads and atomic writes.

Reads stream: :func:`open_input` returns an :class:`InputStream` whose ``read(n)`` yields
decompressed bytes while holding only a bounded buffer, whatever the object's size. Writes are
atomic: :class:`AtomicOutput` publishes an object only on :meth:`AtomicOutput.commit`; any failure
leaves nothing behind (a local temp file is unlinked, an S3 multipart upload is aborted).

Every failure leaves this module as an :mod:`engine.errors` exception naming the URI:

- missing file, object or bucket → :class:`~engine.errors.InputNotFoundError`;
- corrupt or truncated compression → :class:`~engine.errors.InputFormatError`, raised by
  ``read()`` (a truncation is only found while reading), with ``offset`` = stored bytes consumed;
- throttling, timeouts, connection resets → :class:`~engine.errors.TransientError`;
- access denied, a missing output bucket → :class:`~engine.errors.PermanentError`.

This module handles local files and decompression; :mod:`engine.s3` is the S3 backend. It is
imported inside the functions that meet an ``s3://`` URI, never at module level: boto3,
botocore, urllib3 and smart-open cost about 25 MiB of RSS and 0.15 s, which a local conversion
should not pay under a 200 MiB memory budget.
"""

from __future__ import annotations

import bz2
import io
import logging
import os
import secrets
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Protocol, cast

import zstandard
from isal import igzip
from isal.isal_zlib import error as IsalError

from engine.config import DEFAULT_PART_SIZE
from engine.errors import (
    EngineError,
    InputFormatError,
    InputNotFoundError,
    PermanentError,
    TransientError,
)

__all__ = [
    "AtomicOutput",
    "InputStream",
    "infer_compression",
    "is_s3",
    "map_s3_error",
    "object_size",
    "open_input",
    "read_range",
    "reset_s3_client",
    "s3_client",
    "split_s3",
    "strip_compression_suffix",
]

log = logging.getLogger(__name__)

#: Compression names accepted by :func:`open_input`.
INPUT_COMPRESSIONS = ("none", "gzip", "bz2", "zstd")

_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".gz", "gzip"),
    (".bz2", "bz2"),
    (".zst", "zstd"),
    (".zstd", "zstd"),
)

#: Buffer between the decompressor (or the stored bytes) and the caller.
_READ_BUFFER = 256 * 1024

#: What a decompressor raises on corrupt or truncated data (isal's gzip reader raises zlib's
#: exceptions and its own ``error``).
_DECOMPRESS_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zlib.error,
    IsalError,
    zstandard.ZstdError,
)

# ---------------------------------------------------------------------------------------------
# URIs and compression names
# ---------------------------------------------------------------------------------------------


def is_s3(uri: str) -> bool:
    """Whether ``uri`` names an S3 object (``s3://bucket/key``) rather than a local path."""
    return uri[:5].lower() == "s3://"


def split_s3(uri: str, *, allow_empty_key: bool = False) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``("bucket", "key")``.

    Args:
        uri: an ``s3://`` URI.
        allow_empty_key: accept ``s3://bucket`` and ``s3://bucket/`` (key ``""``), e.g. for a
            prefix; objects always need a key.

    Returns:
        The bucket name and the key, the key exactly as written (no normalisation).

    Raises:
        ValueError: ``uri`` is not an ``s3://`` URI, or lacks a bucket (or a key).

    """
    if not is_s3(uri):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"S3 URI has no bucket: {uri!r}")
    if not key and not allow_empty_key:
        raise ValueError(f"S3 URI has no key: {uri!r}")
    return bucket, key


def _local_path(uri: str) -> str:
    """Return the filesystem path of a local URI (a plain path, or ``file://`` + a path)."""
    return uri[7:] if uri.startswith("file://") else uri


def infer_compression(uri: str) -> str:
    """Return the compression implied by the suffix of ``uri``.

    Returns:
        ``gzip`` for ``.gz``, ``bz2`` for ``.bz2``, ``zstd`` for ``.zst``/``.zstd``, else ``none``
        (case-insensitive).

    """
    lower = uri.lower()
    for suffix, name in _SUFFIXES:
        if lower.endswith(suffix):
            return name
    return "none"


def strip_compression_suffix(uri: str) -> str:
    """``uri`` without its compression suffix: ``x.csv.gz`` → ``x.csv``; other names unchanged."""
    lower = uri.lower()
    for suffix, _ in _SUFFIXES:
        if lower.endswith(suffix):
            return uri[: -len(suffix)]
    return uri


def _check_compression(compression: str) -> None:
    if compression not in INPUT_COMPRESSIONS:
        raise ValueError(
            f"unknown compression {compression!r}; expected one of {INPUT_COMPRESSIONS}"
        )


# ---------------------------------------------------------------------------------------------
# Errors, and the S3 entry points callers use through this module
# ---------------------------------------------------------------------------------------------


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _local_error(exc: OSError, uri: str, *, output: bool = False) -> EngineError:
    """Translate a local filesystem error into the engine's hierarchy."""
    reason = _one_line(exc.strerror or exc)
    if not output and isinstance(exc, FileNotFoundError | NotADirectoryError):
        return InputNotFoundError("file not found", uri=uri)
    if not output and isinstance(exc, IsADirectoryError):
        return InputFormatError("not a readable file (a directory)", uri=uri)
    if isinstance(exc, PermissionError):
        return PermanentError(f"permission denied ({reason})", uri=uri)
    if output and isinstance(exc, IsADirectoryError | NotADirectoryError | FileExistsError):
        return PermanentError(f"cannot write here ({reason})", uri=uri)
    return TransientError(f"I/O error ({reason})", uri=uri)


def s3_client() -> Any:
    """Return the process-wide S3 client (see :func:`engine.s3.s3_client`)."""
    from engine import s3

    return s3.s3_client()


def reset_s3_client() -> None:
    """Forget the cached S3 client, so the next call builds one from the current environment.

    Tests call this around moto (which resets boto3 sessions) and after changing
    ``AWS_ENDPOINT_URL``. Before :mod:`engine.s3` is imported there is no client to forget, and
    importing it here would load boto3 into every local run and unit test.
    """
    s3 = sys.modules.get("engine.s3")
    if s3 is not None:
        s3.reset_s3_client()


def map_s3_error(
    exc: BaseException, uri: str, *, output: bool = False, offset: int | None = None
) -> EngineError | None:
    """Translate an exception from boto3 / smart-open (see :func:`engine.s3.map_s3_error`)."""
    from engine import s3

    return s3.map_s3_error(exc, uri, output=output, offset=offset)


# ---------------------------------------------------------------------------------------------
# Sizes and ranges
# ---------------------------------------------------------------------------------------------


def object_size(uri: str) -> int:
    """Size in bytes of the stored file or object (the compressed size, for compressed inputs).

    Raises:
        InputNotFoundError: it does not exist.
        InputFormatError: a local path names a directory.
        PermanentError: access denied.
        TransientError: S3 throttling or a network failure.

    """
    if is_s3(uri):
        from engine import s3

        return s3.object_size(uri)
    path = _local_path(uri)
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory", path)
        return os.stat(path).st_size
    except OSError as exc:
        raise _local_error(exc, uri) from exc


def read_range(uri: str, start: int, length: int) -> bytes:
    """Read ``length`` stored (raw, still compressed) bytes from ``start``.

    On S3 this is one ``GetObject`` with a ``Range`` header. Reads past the end are clamped:
    fewer bytes (or ``b""`` when ``start`` is at or past the end) come back.

    Args:
        uri: local path or ``s3://`` URI.
        start: first byte, 0-based.
        length: most bytes to return.

    Returns:
        The bytes, at most ``length`` of them.

    Raises:
        ValueError: a negative ``start`` or ``length``.
        InputNotFoundError: the file or object does not exist.
        TransientError: S3 throttling or a network failure.

    """
    if start < 0 or length < 0:
        raise ValueError(f"bad range: start={start} length={length}")
    if is_s3(uri):
        from engine import s3

        return s3.read_range(uri, start, length)
    try:
        with open(_local_path(uri), "rb") as fh:
            fh.seek(start)
            return fh.read(length)
    except OSError as exc:
        raise _local_error(exc, uri) from exc


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

#: Turns an exception from the stored byte stream, raised after ``offset`` bytes, into an
#: engine error (``None``: not an I/O failure, let it propagate).
ErrorMapper = Callable[[BaseException, int], EngineError | None]


class _CountingReader(io.RawIOBase):
    """The stored bytes: counts what is consumed and maps failures to engine errors.

    Args:
        source: the stored byte stream (a local ``FileIO`` or smart-open's S3 reader).
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


class InputStream(io.BufferedIOBase):
    """A read-only, streaming, decompressed view of a stored file or object.

    ``read(n)`` returns up to ``n`` decompressed bytes, fewer only at the end (buffered-reader
    semantics); memory stays bounded by a few small buffers whatever the object's size. Corrupt or
    truncated compressed data raises :class:`~engine.errors.InputFormatError` from ``read()`` with
    ``offset`` = stored bytes consumed so far; network failures raise
    :class:`~engine.errors.TransientError`.

    Args:
        source: the stored byte stream; the stream owns it and closes it.
        uri: what was opened.
        compression: ``none``, ``gzip``, ``bz2`` or ``zstd``.
        size: the stored size in bytes, when known.
        map_error: see :data:`ErrorMapper`.

    Attributes:
        uri: what was opened.
        compression: ``none``, ``gzip``, ``bz2`` or ``zstd``.
        size: the stored (compressed) size in bytes, when known.

    """

    def __init__(
        self,
        source: Any,
        uri: str,
        compression: str,
        *,
        size: int | None,
        map_error: ErrorMapper,
    ) -> None:
        super().__init__()
        try:
            _check_compression(compression)
        except ValueError:
            source.close()
            raise
        self.uri = uri
        self.name = uri
        self.compression = compression
        self.size = size
        self._position = 0
        tracker = _ZstdFrameTracker() if compression == "zstd" else None
        self._raw = _CountingReader(source, map_error, tracker.feed if tracker else None)
        self._inner: Any
        if compression == "gzip":
            self._inner = igzip.IGzipFile(fileobj=self._raw, mode="rb")
        elif compression == "bz2":
            self._inner = bz2.BZ2File(self._raw, mode="rb")
        elif tracker is not None:
            self._inner = io.BufferedReader(_ZstdReader(self._raw, tracker), _READ_BUFFER)
        else:
            self._inner = io.BufferedReader(self._raw, _READ_BUFFER)

    @property
    def raw_bytes_read(self) -> int:
        """Stored (compressed) bytes consumed so far: progress against :attr:`size`."""
        return self._raw.bytes_read

    def _guard(self, call: Callable[..., Any], *args: Any) -> Any:
        if self.closed:
            raise ValueError(f"I/O operation on closed InputStream ({self.uri})")
        try:
            return call(*args)
        except EngineError:
            raise
        except _DECOMPRESS_ERRORS as exc:
            kind = "data" if self.compression == "none" else f"{self.compression} data"
            raise InputFormatError(
                _one_line(f"corrupt or truncated {kind}: {exc}"),
                uri=self.uri,
                offset=self.raw_bytes_read,
            ) from exc

    def readable(self) -> bool:
        """Return True: the stream is readable."""
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` decompressed bytes (all that remain for ``-1``); ``b""`` at the end."""
        data = cast(bytes, self._guard(self._inner.read, -1 if size is None else size))
        self._position += len(data)
        return data

    def read1(self, size: int = -1) -> bytes:
        """Decompressed bytes with at most one read of the underlying stream."""
        data = cast(bytes, self._guard(self._inner.read1, size))
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` with decompressed bytes; the count, 0 at the end."""
        n = cast(int, self._guard(self._inner.readinto, buffer))
        self._position += n
        return n

    def readline(self, size: int | None = -1) -> bytes:
        """One line (up to and including a newline), or at most ``size`` bytes of it."""
        line = cast(bytes, self._guard(self._inner.readline, -1 if size is None else size))
        self._position += len(line)
        return line

    def tell(self) -> int:
        """Decompressed bytes returned so far."""
        return self._position

    def close(self) -> None:
        """Release the decompressor, the file handle or the HTTP connection."""
        if self.closed:
            return
        try:
            self._inner.close()
        finally:
            try:
                self._raw.close()
            finally:
                super().close()

    def __enter__(self) -> InputStream:
        return self


class _Window(io.RawIOBase):
    """Bytes ``[start, end)`` of a seekable stored stream (the source is closed with it)."""

    def __init__(self, source: Any, start: int, end: int) -> None:
        super().__init__()
        self._source = source
        self._left = max(0, end - start)
        if start:
            source.seek(start)  # smart-open's reader defers the GET: it starts at ``start``

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._left:
            return 0
        view = memoryview(buffer)[: self._left]
        n = cast(int, self._source.readinto(view) or 0)
        self._left -= n
        return n

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            super().close()


def open_input(uri: str, compression: str | None = None, *,
               byte_range: tuple[int, int] | None = None) -> InputStream:
    """Open a local path or ``s3://`` URI for streaming, decompressed reading.

    On S3 a ``HeadObject`` checks the object and gives its size; the bytes then come through
    smart-open's ranged reader, which re-opens the stream at the current offset after a
    connection reset. Every ``GetObject`` carries ``If-Match: <ETag>``, so an object replaced
    mid-read fails (as a :class:`~engine.errors.TransientError`) instead of splicing two versions.

    Args:
        uri: local path (or ``file://``) or ``s3://bucket/key``.
        compression: ``none``, ``gzip``, ``bz2`` or ``zstd``; ``None`` infers it from the suffix.
        byte_range: ``(start, end)``: only the stored bytes ``[start, end)`` (clamped to the
            size) of an uncompressed input; the stream's ``size`` is the range's length.

    Returns:
        The stream; close it (or use it as a context manager).

    Raises:
        ValueError: an unknown compression or a malformed S3 URI.
        InputNotFoundError: no such file, object or bucket.
        InputFormatError: a local path names a directory.
        PermanentError: access denied.
        TransientError: S3 throttling or a network failure.

    """
    compression = infer_compression(uri) if compression is None else compression
    _check_compression(compression)
    if byte_range is not None:
        if compression != "none":
            raise ValueError(f"a byte range needs an uncompressed input, not {compression}")
        if not 0 <= byte_range[0] <= byte_range[1]:
            raise ValueError(f"bad byte range {byte_range}")
    map_error: ErrorMapper
    if is_s3(uri):
        from engine import s3

        source, size = s3.open_object(uri)

        def map_error(exc: BaseException, offset: int) -> EngineError | None:
            return s3.map_s3_error(exc, uri, offset=offset)

    else:
        try:  # open() refuses a directory with IsADirectoryError
            source = open(_local_path(uri), "rb", buffering=0)  # noqa: SIM115 - the stream owns it
        except OSError as exc:
            raise _local_error(exc, uri) from exc
        size = os.fstat(source.fileno()).st_size

        def map_error(exc: BaseException, offset: int) -> EngineError | None:
            if not isinstance(exc, OSError):
                return None
            mapped = _local_error(exc, uri)
            mapped.offset = offset
            return mapped

    if byte_range is not None:
        end = min(byte_range[1], size)
        source = _Window(source, min(byte_range[0], end), end)
        size = max(0, end - byte_range[0])
    return InputStream(source, uri, compression, size=size, map_error=map_error)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


class _OutputBackend(Protocol):
    """Where an :class:`AtomicOutput` goes: a local temp file, or an S3 multipart upload."""

    def open(self) -> Any:
        """Start the output; return the sink that takes ``write(memoryview)``."""

    def publish(self) -> None:
        """Make the output visible under its name (raises an engine error on failure)."""

    def discard(self) -> None:
        """Drop an unpublished output; never raises."""

    def delete(self) -> None:
        """Remove the published output; a missing one is not an error."""

    def map_error(self, exc: BaseException) -> EngineError | None:
        """Map a failure of the sink's ``write`` (``None``: leave it to :class:`AtomicOutput`)."""


class _LocalOutput:
    """A temp file ``.<name>.<random>.tmp`` in the target's directory (created if needed).

    Publishing fsyncs it and renames it over the target, then fsyncs the directory.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._path = Path(_local_path(uri))
        self._fh: BinaryIO | None = None
        self._tmp: Path | None = None

    def open(self) -> BinaryIO:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.parent / f".{self._path.name}.{secrets.token_hex(6)}.tmp"
            self._fh = cast(BinaryIO, open(tmp, "xb"))  # noqa: SIM115 - closed by publish/discard
        except OSError as exc:
            raise _local_error(exc, self.uri, output=True) from exc
        self._tmp = tmp
        return self._fh

    def publish(self) -> None:
        assert self._fh is not None and self._tmp is not None
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            os.replace(self._tmp, self._path)
        except OSError as exc:
            raise _local_error(exc, self.uri, output=True) from exc
        self._tmp = None
        try:  # make the rename itself durable; best effort (not every filesystem allows it)
            dir_fd = os.open(self._path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass

    def discard(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError as exc:
                log.warning("could not close the temp file of %s: %r", self.uri, exc)
        if self._tmp is not None:
            try:
                self._tmp.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove %s: %r", self._tmp, exc)
            self._tmp = None

    def delete(self) -> None:
        try:
            self._path.unlink(missing_ok=True)
        except OSError as exc:
            raise _local_error(exc, self.uri, output=True) from exc

    def map_error(self, exc: BaseException) -> EngineError | None:
        return None  # local write failures are OSErrors, which AtomicOutput maps


class _OutputFile(io.BufferedIOBase):
    """The writable handed out by :class:`AtomicOutput`.

    It forwards writes and counts bytes. ``close()`` only closes this handle: it never commits
    (pyarrow's ``ParquetWriter.close()`` and other wrappers close the file they were given;
    publishing is the :class:`AtomicOutput`'s decision alone).
    """

    def __init__(self, sink: Any, uri: str, map_error: Callable[[BaseException], EngineError]):
        super().__init__()
        self._sink = sink
        self._uri = uri
        self._map_error = map_error
        self.bytes_written = 0
        self.name = uri

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        """Write ``data`` (any bytes-like object); returns its length."""
        if self.closed:
            raise ValueError(f"write to closed output ({self._uri})")
        view = memoryview(data)
        try:
            self._sink.write(view)
        except EngineError:
            raise
        except Exception as exc:
            raise self._map_error(exc) from exc
        self.bytes_written += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        """Bytes written so far."""
        return self.bytes_written


class AtomicOutput:
    """Write one file or object so that it appears complete or not at all.

    The only way the engine writes. Local: a temp file ``.<name>.<random>.tmp`` in the target's
    directory (created if needed), fsync'd and renamed over the target on :meth:`commit`. S3: a
    multipart upload (:class:`engine.s3.S3Output`), completed on :meth:`commit` and aborted on
    :meth:`abort`. An empty output still creates an empty object.

    Use it as a context manager: an exception inside the block aborts, a clean exit commits
    (unless the block already committed or aborted). An ``AtomicOutput`` that is dropped
    unfinished is aborted when collected, never published.

    Memory: on S3 one part (``part_size`` bytes) is buffered. smart-open raises a ``part_size``
    below 5 MiB (S3's minimum part size) to 5 MiB, and caps it at 5 GiB.

    Args:
        uri: local path (or ``file://``) or ``s3://bucket/key``.
        part_size: S3 multipart part size in bytes.

    Attributes:
        uri: the destination.

    """

    def __init__(self, uri: str, *, part_size: int = DEFAULT_PART_SIZE) -> None:
        self.uri = uri
        self.part_size = part_size
        self._backend: _OutputBackend
        if is_s3(uri):
            from engine import s3

            self._backend = s3.S3Output(uri, part_size)
        else:
            self._backend = _LocalOutput(uri)
        self._file: _OutputFile | None = None
        self._committed = False
        self._aborted = False

    @property
    def bytes_written(self) -> int:
        """Bytes written so far."""
        return self._file.bytes_written if self._file is not None else 0

    @property
    def committed(self) -> bool:
        """Whether the output was published."""
        return self._committed

    @property
    def aborted(self) -> bool:
        """Whether the output was discarded."""
        return self._aborted

    def _map_write_error(self, exc: BaseException) -> EngineError:
        mapped = self._backend.map_error(exc)
        if mapped is not None:
            return mapped
        if isinstance(exc, OSError):
            return _local_error(exc, self.uri, output=True)
        return TransientError(_one_line(f"write failed: {exc!r}"), uri=self.uri)

    def open(self) -> BinaryIO:
        """Start the output (create the temp file or the multipart upload).

        Returns:
            A writable binary file object; closing it does not commit.

        Raises:
            PermanentError: the output bucket does not exist, access denied, or the path cannot
                be written.
            TransientError: throttling or a network failure.

        """
        if self._file is not None or self._committed or self._aborted:
            raise ValueError(f"output already opened: {self.uri}")
        sink = self._backend.open()
        self._file = _OutputFile(sink, self.uri, self._map_write_error)
        return cast(BinaryIO, self._file)

    def commit(self) -> None:
        """Publish the output: rename the temp file, or complete the multipart upload.

        Committing twice is a no-op. If publishing fails the output is aborted, then the error
        is raised.

        Raises:
            ValueError: the output was never opened, or was aborted.
            PermanentError: e.g. access denied.
            TransientError: throttling or a network failure.

        """
        if self._committed:
            return
        if self._aborted:
            raise ValueError(f"cannot commit an aborted output: {self.uri}")
        if self._file is None:
            raise ValueError(f"cannot commit an output that was never opened: {self.uri}")
        try:
            self._backend.publish()
        except BaseException:
            self.abort()
            raise
        self._committed = True
        self._file.close()

    def abort(self) -> None:
        """Discard the output: unlink the temp file, or abort the multipart upload.

        Idempotent and never raises: a failure to clean up is logged (an S3 upload that could not
        be aborted is left to the bucket's ``AbortIncompleteMultipartUpload`` lifecycle rule, and
        can no longer be completed by this process). Aborting after a commit does nothing.
        """
        if self._committed or self._aborted:
            return
        self._aborted = True
        self._backend.discard()
        if self._file is not None:
            self._file.close()

    def delete(self) -> None:
        """Remove a published output (a run that fails after rotating files cleans up with this).

        Before a commit this is :meth:`abort`. Idempotent: deleting twice, or an output that is
        already gone, is not an error.

        Raises:
            PermanentError: access denied.
            TransientError: throttling or a network failure.

        """
        if not self._committed:
            self.abort()
            return
        self._backend.delete()
        self._committed = False
        self._aborted = True

    def __enter__(self) -> BinaryIO:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif not (self._committed or self._aborted):
            self.commit()

    def __del__(self) -> None:
        if getattr(self, "_file", None) is not None and not (self._committed or self._aborted):
            self.abort()

    def __repr__(self) -> str:
        state = "committed" if self._committed else "aborted" if self._aborted else "open"
        return f"AtomicOutput({self.uri!r}, {state}, {self.bytes_written} bytes)"
