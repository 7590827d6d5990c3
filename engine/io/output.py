"""Atomic outputs: a file or object that appears complete or not at all.

:class:`AtomicOutput` is the only way the engine writes. This module holds it, its local backend
(a temp file renamed over the target) and the file handle it hands out; :mod:`engine.io.s3` holds
the S3 backend, imported only for an ``s3://`` output. :mod:`engine.io` re-exports
:class:`AtomicOutput`.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Protocol, cast

from engine.config import DEFAULT_PART_SIZE, S3_MAX_PART_SIZE, S3_MIN_PART_SIZE
from engine.errors import EngineError, TransientError
from engine.io.uri import is_s3, local_error, local_path, one_line

__all__ = ["AtomicOutput"]

log = logging.getLogger(__name__)


def _output_error(exc: OSError, uri: str) -> EngineError:
    """Translate a local filesystem error met while writing ``uri``."""
    return local_error(exc, uri, output=True)


class _OutputBackend(Protocol):
    """Where an :class:`AtomicOutput` goes: a local temp file, or an S3 object."""

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
        self._path = Path(local_path(uri))
        self._fh: BinaryIO | None = None
        self._native: Any = None  # a pyarrow.OSFile, when pyarrow writes the file itself
        self._tmp: Path | None = None
        self.native_bytes = 0

    def open_native(self) -> Any:
        """Create the temp file as :meth:`open` does, then open it as a ``pyarrow.OSFile``.

        pyarrow's writers then write it without a call into Python per write (a Parquet file
        makes a few per column chunk: ~0.5 ms CPU of a warm 1 MB conversion).
        """
        import pyarrow as pa

        self.open().close()  # exclusively created, as open() creates it
        self._fh = None
        assert self._tmp is not None
        try:
            self._native = pa.OSFile(str(self._tmp), "w")
        except OSError as exc:
            self.discard()
            raise _output_error(exc, self.uri) from exc
        return self._native

    def open(self) -> BinaryIO:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            # os.urandom as secrets.token_hex does: secrets imports hmac and hashlib (~3 ms)
            tmp = self._path.parent / f".{self._path.name}.{os.urandom(6).hex()}.tmp"
            self._fh = cast(BinaryIO, open(tmp, "xb"))  # noqa: SIM115 - closed by publish/discard
        except OSError as exc:
            raise _output_error(exc, self.uri) from exc
        self._tmp = tmp
        return self._fh

    def publish(self) -> None:
        assert (self._fh is not None or self._native is not None) and self._tmp is not None
        try:
            if self._native is not None:
                self.native_bytes = self._native.tell()
                self._native.close()  # unbuffered: its bytes are the file's already
                self._native = None
                fd = os.open(self._tmp, os.O_RDONLY)  # fsync syncs the file, whatever the fd
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            else:
                assert self._fh is not None
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
            os.replace(self._tmp, self._path)
        except OSError as exc:
            raise _output_error(exc, self.uri) from exc
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
        if self._native is not None:
            try:
                self._native.close()
            except OSError as exc:
                log.warning("could not close the temp file of %s: %r", self.uri, exc)
            self._native = None
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
            raise _output_error(exc, self.uri) from exc

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
    directory (created if needed), fsync'd and renamed over the target on :meth:`commit`. S3
    (:class:`engine.io.s3.S3Output`): an output smaller than a part is held in memory and
    published by one ``PutObject`` on :meth:`commit`; a larger one is a multipart upload,
    completed on :meth:`commit` and aborted on :meth:`abort`. An empty output still creates an
    empty object.

    Use it as a context manager: an exception inside the block aborts, a clean exit commits
    (unless the block already committed or aborted). An ``AtomicOutput`` that is dropped
    unfinished is aborted when collected, never published.

    Memory: on S3 one part (``part_size`` bytes) is buffered (in a local file instead with a
    ``spool``). A ``part_size`` below 5 MiB (S3's minimum part size) is raised to 5 MiB, and one
    above 5 GiB lowered to it.

    Args:
        uri: local path (or ``file://``) or ``s3://bucket/key``.
        part_size: S3 multipart part size in bytes.
        spool: on S3, makes the file the part is held in instead of memory (a local file:
            :class:`engine.sink.spool.Spool`); ignored for local outputs.

    Attributes:
        uri: the destination.

    """

    def __init__(self, uri: str, *, part_size: int = DEFAULT_PART_SIZE,
                 spool: Callable[[], BinaryIO] | None = None) -> None:
        self.uri = uri
        self.part_size = part_size
        self._backend: _OutputBackend
        if is_s3(uri):
            from engine.io import s3

            self._backend = s3.S3Output(uri, part_size, spool)
        else:
            self._backend = _LocalOutput(uri)
        self._file: _OutputFile | None = None
        self._native: Any = None
        self._committed = False
        self._aborted = False

    @property
    def bytes_written(self) -> int:
        """Bytes written so far."""
        if self._native is not None:
            local = cast(_LocalOutput, self._backend)
            return local.native_bytes if self._native.closed else self._native.tell()
        return self._file.bytes_written if self._file is not None else 0

    @property
    def pending_bytes(self) -> int:
        """Bytes written but held: the part of an S3 upload not yet sent (0 locally).

        They are in memory, or in the spool file when the output has a ``spool``.

        A part is sent once ``part_size`` (clamped to S3's limits) bytes are held; an output that
        never reaches it is held whole until its ``PutObject``.
        """
        if not is_s3(self.uri) or self._file is None or self._committed or self._aborted:
            return 0
        part = min(max(self.part_size, S3_MIN_PART_SIZE), S3_MAX_PART_SIZE)
        return self.bytes_written % part

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
            return _output_error(exc, self.uri)
        return TransientError(one_line(f"write failed: {exc!r}"), uri=self.uri)

    def open(self) -> BinaryIO:
        """Start the output (create the temp file; on S3 nothing is sent before a part is full).

        Returns:
            A writable binary file object; closing it does not commit.

        Raises:
            PermanentError: the path cannot be written. (On S3 nothing is sent yet: a missing
                bucket or denied access is raised by the write that fills the first part, or by
                :meth:`commit`.)
            TransientError: throttling or a network failure.

        """
        if self._file is not None or self._native is not None or self._committed or self._aborted:
            raise ValueError(f"output already opened: {self.uri}")
        sink = self._backend.open()
        self._file = _OutputFile(sink, self.uri, self._map_write_error)
        return cast(BinaryIO, self._file)

    def open_native(self) -> Any:
        """Start the output for pyarrow to write: locally a ``pyarrow.OSFile``, else :meth:`open`.

        A local output is then written by pyarrow without Python in between; a failed write
        raises ``OSError`` from pyarrow, which :meth:`write_error` translates. Closing the file
        does not commit; :meth:`commit` closes it and publishes.
        """
        if not isinstance(self._backend, _LocalOutput):
            return self.open()
        if self._file is not None or self._native is not None or self._committed or self._aborted:
            raise ValueError(f"output already opened: {self.uri}")
        self._native = self._backend.open_native()
        return self._native

    def write_error(self, exc: BaseException) -> EngineError:
        """The engine error for a failure of a write to this output (``OSError`` and others)."""
        return exc if isinstance(exc, EngineError) else self._map_write_error(exc)

    def commit(self) -> None:
        """Publish the output: rename the temp file, ``PutObject``, or complete the upload.

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
        if self._file is None and self._native is None:
            raise ValueError(f"cannot commit an output that was never opened: {self.uri}")
        try:
            self._backend.publish()
        except BaseException:
            self.abort()
            raise
        self._committed = True
        if self._file is not None:
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
        opened = any(getattr(self, name, None) is not None for name in ("_file", "_native"))
        if opened and not (self._committed or self._aborted):
            self.abort()

    def __repr__(self) -> str:
        state = "committed" if self._committed else "aborted" if self._aborted else "open"
        return f"AtomicOutput({self.uri!r}, {state}, {self.bytes_written} bytes)"
