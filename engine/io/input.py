"""Open local paths and ``s3://`` URIs for streaming, decompressed reads.

:func:`open_input` returns an :class:`InputStream` whose ``read(n)`` yields decompressed bytes
while holding only a bounded buffer, whatever the object's size. :func:`object_size` and
:func:`read_range` answer the two questions sampling asks before a read. :func:`open_seekable`
reads stored bytes at any offset, for a format whose index is at its end (Parquet).

Every failure leaves this module as an :mod:`engine.errors` exception naming the URI:

- missing file, object or bucket → :class:`~engine.errors.InputNotFoundError`;
- corrupt or truncated compression → :class:`~engine.errors.InputFormatError`, raised by
  ``read()`` (a truncation is only found while reading), with ``offset`` = stored bytes consumed;
- throttling, timeouts, connection resets → :class:`~engine.errors.TransientError`;
- access denied, a missing output bucket → :class:`~engine.errors.PermanentError`.

:mod:`engine.io.s3` is imported inside the functions that meet an ``s3://`` URI, never at module
level: botocore, urllib3 and the S3 client cost about 22 MiB of RSS and 0.1 s, which a local
conversion should not pay under a 200 MiB memory budget.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from typing import Any, cast

from engine.errors import EngineError, InputFormatError
from engine.io.decompress import DECOMPRESS_ERRORS, ErrorMapper, open_decompressed
from engine.io.stored import Continued, StoredHead
from engine.io.uri import (
    check_compression,
    infer_compression,
    is_s3,
    local_error,
    local_path,
    one_line,
)

__all__ = [
    "InputStream",
    "SeekableInput",
    "map_s3_error",
    "object_size",
    "open_input",
    "open_seekable",
    "read_range",
    "reset_s3_client",
    "s3_client",
]


# ---------------------------------------------------------------------------------------------
# The S3 entry points callers use through this module
# ---------------------------------------------------------------------------------------------


def s3_client() -> Any:
    """Return the process-wide S3 client (see :func:`engine.io.s3.s3_client`)."""
    from engine.io import s3

    return s3.s3_client()


def reset_s3_client() -> None:
    """Forget the cached S3 client, so the next call builds one from the current environment.

    Tests call this around moto (which resets boto3 sessions) and after changing
    ``AWS_ENDPOINT_URL``. Before :mod:`engine.io.s3` is imported there is no client to forget, and
    importing it here would load boto3 into every local run and unit test.
    """
    s3 = sys.modules.get("engine.io.s3")
    if s3 is not None:
        s3.reset_s3_client()


def map_s3_error(
    exc: BaseException, uri: str, *, output: bool = False, offset: int | None = None
) -> EngineError | None:
    """Translate an exception from botocore (see :func:`engine.io.s3.map_s3_error`)."""
    from engine.io import s3

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
        from engine.io import s3

        return s3.object_size(uri)
    path = local_path(uri)
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory", path)
        return os.stat(path).st_size
    except OSError as exc:
        raise local_error(exc, uri) from exc


def read_range(uri: str, start: int, length: int, *, head: StoredHead | None = None) -> bytes:
    """Read ``length`` stored (raw, still compressed) bytes from ``start``.

    On S3 this is one ``GetObject`` with a ``Range`` header (after a ``HeadObject``, unless
    ``head`` gives the size and the ETag). Reads past the end are clamped: fewer bytes (or
    ``b""`` when ``start`` is at or past the end) come back.

    Args:
        uri: local path or ``s3://`` URI.
        start: first byte, 0-based.
        length: most bytes to return.
        head: what :func:`~engine.io.stored.probe_input` read of the whole of ``uri``: bytes
            within it come from memory, others are read ``If-Match`` its ETag, with no HEAD.

    Returns:
        The bytes, at most ``length`` of them.

    Raises:
        ValueError: a negative ``start`` or ``length``.
        InputNotFoundError: the file or object does not exist.
        TransientError: S3 throttling or a network failure.

    """
    if start < 0 or length < 0:
        raise ValueError(f"bad range: start={start} length={length}")
    if head is not None and head.start == 0 and (head.whole or start + length <= len(head.data)):
        return head.data[start:start + length]
    if is_s3(uri):
        from engine.io import s3

        if head is not None and head.start == 0:
            if length == 0 or start >= head.end:
                return b""
            with s3.RangedReader(s3.s3_client(), uri, head.end, head.etag, start=start,
                                 end=min(head.end, start + length)) as reader:
                return reader.read()
        return s3.read_range(uri, start, length)
    try:
        with open(local_path(uri), "rb") as fh:
            fh.seek(start)
            return fh.read(length)
    except OSError as exc:
        raise local_error(exc, uri) from exc


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


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
            check_compression(compression)
        except ValueError:
            source.close()
            raise
        self.uri = uri
        self.name = uri
        self.compression = compression
        self.size = size
        self._position = 0
        self._raw, self._inner = open_decompressed(source, compression, map_error)

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
        except DECOMPRESS_ERRORS as exc:
            kind = "data" if self.compression == "none" else f"{self.compression} data"
            raise InputFormatError(
                one_line(f"corrupt or truncated {kind}: {exc}"),
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
            source.seek(start)  # the S3 reader defers the GET: it starts at ``start``

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
               byte_range: tuple[int, int] | None = None,
               head: StoredHead | None = None) -> InputStream:
    """Open a local path or ``s3://`` URI for streaming, decompressed reading.

    On S3 a ``HeadObject`` checks the object and gives its size; the bytes then come through
    :class:`engine.io.s3.RangedReader`, which resumes with a ranged GET from the first byte not yet
    read when a response body breaks (bounded retries with backoff, then a
    :class:`~engine.errors.TransientError`). Every ``GetObject`` carries ``If-Match: <ETag>``, so
    an object replaced mid-read fails (transient) instead of splicing two versions.

    Args:
        uri: local path (or ``file://``) or ``s3://bucket/key``.
        compression: ``none``, ``gzip``, ``bz2`` or ``zstd``; ``None`` infers it from the suffix.
        byte_range: ``(start, end)``: only the stored bytes ``[start, end)`` (clamped to the
            size) of an uncompressed input; the stream's ``size`` is the range's length.
        head: what :func:`~engine.io.stored.probe_input` read of the same input (the same
            ``byte_range``): the stream starts from its bytes and reads on from where they end
            (on S3 one ranged GET ``If-Match`` its ETag, with no HEAD; nothing at all when they
            are the whole input). A local file's head is used only when it is the whole file.

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
    check_compression(compression)
    if byte_range is not None:
        if compression != "none":
            raise ValueError(f"a byte range needs an uncompressed input, not {compression}")
        if not 0 <= byte_range[0] <= byte_range[1]:
            raise ValueError(f"bad byte range {byte_range}")
    map_error: ErrorMapper
    if head is not None and head.continuable:
        return _continue_input(uri, compression, head)
    if is_s3(uri):
        from engine.io import s3

        source, size = s3.open_object(uri)

        def map_error(exc: BaseException, offset: int) -> EngineError | None:
            return s3.map_s3_error(exc, uri, offset=offset)

    else:
        try:  # open() refuses a directory with IsADirectoryError
            source = open(local_path(uri), "rb", buffering=0)  # noqa: SIM115 - the stream owns it
        except OSError as exc:
            raise local_error(exc, uri) from exc
        size = os.fstat(source.fileno()).st_size

        def map_error(exc: BaseException, offset: int) -> EngineError | None:
            if not isinstance(exc, OSError):
                return None
            mapped = local_error(exc, uri)
            mapped.offset = offset
            return mapped

    if byte_range is not None:
        end = min(byte_range[1], size)
        source = _Window(source, min(byte_range[0], end), end)
        size = max(0, end - byte_range[0])
    return InputStream(source, uri, compression, size=size, map_error=map_error)


def _continue_input(uri: str, compression: str, head: StoredHead) -> InputStream:
    """:func:`open_input` from ``head``'s bytes in memory, then the rest of the object."""
    if not is_s3(uri):  # continuable: the whole file is in memory

        def map_local(exc: BaseException, offset: int) -> EngineError | None:
            return None

        return InputStream(Continued(head, None), uri, compression, size=head.size,
                           map_error=map_local)
    from engine.io import s3

    def rest() -> Any:
        return s3.RangedReader(s3.s3_client(), uri, head.end, head.etag,
                               start=head.start + len(head.data))

    def map_error(exc: BaseException, offset: int) -> EngineError | None:
        return s3.map_s3_error(exc, uri, offset=offset)

    return InputStream(Continued(head, rest), uri, compression, size=head.size,
                       map_error=map_error)


# ---------------------------------------------------------------------------------------------
# Random access
# ---------------------------------------------------------------------------------------------


class SeekableInput(io.RawIOBase):
    """A stored file or object read at any offset: what a format with its index at the end needs.

    Parquet's footer is at the end of the file and its column chunks are found from there, so a
    Parquet reader seeks. Each ``read(n)`` is one ``pread`` of a local file, or one ranged
    ``GetObject`` of exactly those bytes (``If-Match`` the ETag, resumed on a broken body, by
    :class:`engine.io.s3.RangedReader`): no response is left half read when the reader seeks on.
    Nothing is decompressed. ``raw_bytes_read`` counts the bytes read, for progress.

    Args:
        uri: what was opened.
        size: the stored size in bytes.
        read_at: ``read_at(position, n)`` returns up to ``n`` bytes from ``position``.
        release: closes what ``read_at`` reads from.

    """

    compression = "none"

    def __init__(self, uri: str, size: int, read_at: Callable[[int, int], bytes | bytearray],
                 release: Callable[[], None]) -> None:
        super().__init__()
        self.uri = uri
        self.name = uri
        self.size = size
        self.raw_bytes_read = 0
        self._read_at = read_at
        self._release = release
        self._position = 0

    def readable(self) -> bool:
        """Return True."""
        return True

    def seekable(self) -> bool:
        """Return True."""
        return True

    def tell(self) -> int:
        """The offset of the next byte read."""
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` (from the start, the current position or the end)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def read(self, size: int | None = -1) -> bytes | bytearray:  # type: ignore[override]
        """Up to ``size`` bytes from the position (what remains for ``-1``); ``b""`` at the end.

        The bytes come in a ``bytearray`` of their own, not copied into ``bytes``: pyarrow keeps
        the object as its buffer.
        """
        if self.closed:
            raise ValueError(f"I/O operation on closed SeekableInput ({self.uri})")
        left = max(0, self.size - self._position)
        n = left if size is None or size < 0 else min(size, left)
        data = self._read_at(self._position, n) if n else b""
        self._position += len(data)
        self.raw_bytes_read += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the position; the count, 0 at the end."""
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Release the file handle."""
        if not self.closed:
            try:
                self._release()
            finally:
                super().close()

    def __enter__(self) -> SeekableInput:
        return self


def open_seekable(uri: str, *, head: StoredHead | None = None) -> SeekableInput:
    """Open a local path or ``s3://`` URI for reads at any offset (see :class:`SeekableInput`).

    With ``head`` (:func:`~engine.io.stored.probe_input` of the whole of ``uri``), an input it
    holds whole is read from memory, and an S3 object's size and ETag are taken from it (no
    HEAD).

    Raises:
        InputNotFoundError: no such file, object or bucket.
        InputFormatError: a local path names a directory.
        PermanentError: access denied.
        TransientError: S3 throttling or a network failure (also from ``read``).

    """
    if head is not None and head.start == 0 and head.whole:
        data = memoryview(head.data)
        return SeekableInput(uri, head.size,
                             lambda position, n: bytes(data[position:position + n]),
                             lambda: None)
    if is_s3(uri):
        from engine.io import s3

        client = s3.s3_client()
        if head is not None and head.start == 0:
            size, etag = head.end, head.etag
        else:
            answer = s3.head_object(client, uri)
            size, etag = int(answer["ContentLength"]), answer.get("ETag")

        def read_object(position: int, n: int) -> bytes | bytearray:
            with s3.RangedReader(client, uri, size, etag, start=position,
                                 end=position + n) as ranged:
                return _read_exactly(ranged, n)

        return SeekableInput(uri, size, read_object, lambda: None)
    try:
        fd = os.open(local_path(uri), os.O_RDONLY)
    except OSError as exc:
        raise local_error(exc, uri) from exc
    size = os.fstat(fd).st_size
    if os.path.isdir(local_path(uri)):  # os.open opens a directory for reading
        os.close(fd)
        raise local_error(IsADirectoryError(21, "Is a directory", uri), uri)

    def read_file(position: int, n: int) -> bytes | bytearray:
        try:
            data = os.pread(fd, n, position)
            while len(data) < n:  # a regular file answers whole, but the API allows less
                more = os.pread(fd, n - len(data), position + len(data))
                if not more:
                    break
                data += more
            return data
        except OSError as exc:
            raise local_error(exc, uri) from exc

    return SeekableInput(uri, size, read_file, lambda: os.close(fd))


def _read_exactly(stream: Any, n: int) -> bytearray:
    """``n`` bytes of ``stream`` (fewer only at its end), read into one buffer, not copied."""
    buffer = bytearray(n)
    view = memoryview(buffer)
    got = 0
    while got < n:
        count = stream.readinto(view[got:])
        if not count:
            break
        got += count
    del view
    if got < n:
        del buffer[got:]
    return buffer
