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

This module is the façade: URIs, compression names, sizes, ranges, opening inputs and error
mapping. :mod:`engine.decompress` holds the decompressors, :mod:`engine.output` the atomic
outputs (:class:`AtomicOutput` is re-exported here), and :mod:`engine.s3` the S3 backend. It is
imported inside the functions that meet an ``s3://`` URI, never at module level: boto3,
botocore, urllib3 and smart-open cost about 25 MiB of RSS and 0.15 s, which a local conversion
should not pay under a 200 MiB memory budget.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from typing import Any, cast

from engine.decompress import DECOMPRESS_ERRORS, ErrorMapper, open_decompressed
from engine.errors import (
    EngineError,
    InputFormatError,
    InputNotFoundError,
    PermanentError,
    TransientError,
    UsageError,
)
from engine.output import AtomicOutput

__all__ = [
    "AtomicOutput",
    "InputStream",
    "infer_compression",
    "is_s3",
    "local_path",
    "map_s3_error",
    "object_size",
    "open_input",
    "read_range",
    "reset_s3_client",
    "s3_client",
    "split_s3",
    "strip_compression_suffix",
]

#: Compression names accepted by :func:`open_input`.
INPUT_COMPRESSIONS = ("none", "gzip", "bz2", "zstd")

_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".gz", "gzip"),
    (".bz2", "bz2"),
    (".zst", "zstd"),
    (".zstd", "zstd"),
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
        UsageError: ``uri`` is not an ``s3://`` URI, or lacks a bucket (or a key); a
            ``ValueError``.

    """
    if not is_s3(uri):
        raise UsageError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise UsageError("S3 URI has no bucket", uri=uri)
    if not key and not allow_empty_key:
        raise UsageError("S3 URI has no key (s3://bucket/key names an object)", uri=uri)
    return bucket, key


def local_path(uri: str) -> str:
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
    if output and isinstance(exc, IsADirectoryError) and not uri.endswith("/"):
        return PermanentError(f"cannot write here ({reason}): to write into the directory, end "
                              "the output with /", uri=uri)
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
    path = local_path(uri)
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
        with open(local_path(uri), "rb") as fh:
            fh.seek(start)
            return fh.read(length)
    except OSError as exc:
        raise _local_error(exc, uri) from exc


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
            _check_compression(compression)
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
               byte_range: tuple[int, int] | None = None) -> InputStream:
    """Open a local path or ``s3://`` URI for streaming, decompressed reading.

    On S3 a ``HeadObject`` checks the object and gives its size; the bytes then come through
    :class:`engine.s3.RangedReader`, which resumes with a ranged GET from the first byte not yet
    read when a response body breaks (bounded retries with backoff, then a
    :class:`~engine.errors.TransientError`). Every ``GetObject`` carries ``If-Match: <ETag>``, so
    an object replaced mid-read fails (transient) instead of splicing two versions.

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
            source = open(local_path(uri), "rb", buffering=0)  # noqa: SIM115 - the stream owns it
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
