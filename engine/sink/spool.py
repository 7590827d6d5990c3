"""The spool: S3 part buffers on local disk (Lambda's ephemeral ``/tmp``) instead of memory.

An S3 output holds the bytes of its next part until a part's worth has been written (or the file
ends). A partitioned run keeps one output open per partition, and most partition files are
smaller than a part, so in memory that term is ``max_open_writers`` × ``part_size`` (256 MiB at
the defaults), whatever the input. With a spool each open output holds its bytes in a file of
its own instead: a part is uploaded from that file, as a stream, once it is full, and the rest
(the whole file, for most partitions) when the output is published; memory holds none of it.

Disk: the spool holds at most ``max_open_writers`` × ``part_size`` bytes (each open output less
than one part: a full part is uploaded and its file emptied at once), the formula
:func:`spool_bytes_needed` gives. :class:`Spool` checks up front that the file system has that
much free beyond :data:`~engine.config.SPOOL_RESERVE_BYTES`, and raises
:class:`~engine.errors.DiskSpaceError` before a row is converted when it has not; a run that
would still exceed it (it cannot, by the formula) fails with the same error. The spool files are
anonymous (unlinked as they are created), so no byte is left on disk whatever happens to the
process (a killed one leaves the empty directory), and the space comes back when a part is
uploaded or an output published or aborted.

Example:
    >>> spool = Spool(4 * 1024**2, directory=tmp)
    >>> buffer = spool.buffer()
    >>> _ = buffer.write(b"parquet bytes")
    >>> spool.note(buffer.tell())
    >>> spool.peak_bytes
    13
    >>> buffer.close(); spool.close()
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import BinaryIO, cast

from engine.config import S3_MAX_PART_SIZE, S3_MIN_PART_SIZE, SPOOL_RESERVE_BYTES
from engine.errors import DiskSpaceError

__all__ = ["Spool", "spool_bytes_needed"]

MiB = 1024**2


def spool_bytes_needed(open_outputs: int, part_size: int) -> int:
    """Most bytes the spool holds: one part (clamped to S3's limits) per open output."""
    return open_outputs * min(max(part_size, S3_MIN_PART_SIZE), S3_MAX_PART_SIZE)


class Spool:
    """A private directory of anonymous files, each the part buffer of one S3 output.

    Args:
        budget_bytes: the most the spool may hold (:func:`spool_bytes_needed`).
        directory: where the spool goes (default: :func:`tempfile.gettempdir`, which is
            ``$TMPDIR`` or ``/tmp``: Lambda's ephemeral storage).
        uri: the output, for error messages.
        reserve_bytes: free space left to everything else on that file system.
        needs: what the budget is, in the error that refuses it.
        fix: what to lower, in that error, beside raising the function's storage.

    Raises:
        DiskSpaceError: the file system has less than ``budget_bytes`` + ``reserve_bytes`` free.
    """

    def __init__(self, budget_bytes: int, *, directory: str | None = None,
                 uri: str | None = None, reserve_bytes: int = SPOOL_RESERVE_BYTES,
                 needs: str = "one S3 part per open partition file",
                 fix: str = "the contract's output.max_open_writers or the part size") -> None:
        self.directory = directory or tempfile.gettempdir()
        self.budget_bytes = budget_bytes
        self.uri = uri
        try:
            free = shutil.disk_usage(self.directory).free
        except OSError as exc:
            raise DiskSpaceError(f"the spool directory {self.directory} cannot be used: {exc}",
                                 uri=uri) from exc
        if budget_bytes + reserve_bytes > free:
            raise DiskSpaceError(
                f"the spool needs {budget_bytes / MiB:.0f} MiB of local disk ({needs}) plus "
                f"{reserve_bytes / MiB:.0f} MiB kept free, but {self.directory} has "
                f"{free / MiB:.0f} MiB free: raise the function's EphemeralStorage, or lower "
                f"{fix}", uri=uri)
        try:
            self.path = tempfile.mkdtemp(prefix=".chunkwise-spool-", dir=self.directory)
        except OSError as exc:
            raise DiskSpaceError(f"cannot create a spool in {self.directory}: {exc}",
                                 uri=uri) from exc
        #: the most bytes the spool held at once (what the RunReport calls ephemeral storage)
        self.peak_bytes = 0

    def buffer(self) -> BinaryIO:
        """A new empty spool file, already unlinked: closing it gives its space back."""
        try:
            return cast(BinaryIO, tempfile.TemporaryFile(dir=self.path))
        except OSError as exc:
            raise DiskSpaceError(f"cannot create a spool file in {self.path}: {exc}",
                                 uri=self.uri) from exc

    def note(self, held_bytes: int) -> None:
        """Record that the spool holds ``held_bytes`` now; raise past the budget."""
        self.peak_bytes = max(self.peak_bytes, held_bytes)
        if held_bytes > self.budget_bytes:
            raise DiskSpaceError(f"the spool holds {held_bytes / MiB:.1f} MiB, over its budget "
                                 f"of {self.budget_bytes / MiB:.0f} MiB", uri=self.uri)

    def close(self) -> None:
        """Remove the spool's directory (its files are anonymous: nothing else to remove)."""
        if os.path.isdir(self.path):
            shutil.rmtree(self.path, ignore_errors=True)
