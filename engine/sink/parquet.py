"""Parquet sink: buffered row groups, file rotation, commit on success, abort on error.

``ParquetWriter.write_batch`` closes a row group per call, and 1 MiB batches make ~12k-row groups
that compress badly (docs/memory.md). The sink buffers tables until a row group reaches its byte
or row target and then writes them as one group: the buffer is the memory term to size
(``WriteOptions.row_group_bytes``).

What is published is checked against what was counted: before a file is published, the row
count in its own footer (the ``FileMetaData`` the writer returns when it closes, so nothing is
read back) must equal the rows the sink wrote to it, and the rows of all its files the rows it
was given. A row lost in between fails the run with an
:class:`~engine.errors.AccountingError` instead of publishing a short file.

Example:
    >>> import pyarrow as pa
    >>> from engine.sink.parquet import ParquetSink
    >>> table = pa.table({"a": [1, 2, 3]})
    >>> with ParquetSink(f"{tmp}/a.parquet", table.schema) as sink:
    ...     sink.write(table)
    >>> [(f.rows, f.row_groups) for f in sink.files]
    [(3, 1)]
"""

from __future__ import annotations

import logging
import math
import posixpath
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, BinaryIO, Self

import pyarrow as pa
import pyarrow.parquet as pq

from engine import kernels
from engine.config import WriteOptions
from engine.errors import AccountingError, EngineError, PermanentError, TransientError
from engine.io import AtomicOutput
from engine.runtime.timing import CLOCK, TimedWrites
from engine.sink.spool import Spool

__all__ = ["CheckUri", "CommitOrAbort", "FileReport", "ParquetSink", "rotated_uri"]

log = logging.getLogger(__name__)

#: Rows looked at to decide which columns are dictionary-encoded.
_DICTIONARY_PROBE_ROWS = 20_000

#: Called with the URI of each file before it is written; raises to refuse the name (a run
#: refuses to write over its own input, whatever naming or rotation led there).
CheckUri = Callable[[str], None]


@dataclass
class FileReport:
    """One Parquet file the sink wrote."""

    uri: str
    rows: int = 0
    bytes: int = 0
    row_groups: int = 0
    #: partitioned output only: column → the value's text as in the path (unescaped), ``None``
    #: for null (see :class:`PartitionedSink`).
    partition: dict[str, str | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        """As reported in the RunReport (``partition`` only for partitioned output)."""
        out: dict[str, Any] = {"uri": self.uri, "rows": self.rows, "bytes": self.bytes,
                               "row_groups": self.row_groups}
        if self.partition is not None:
            out["partition"] = dict(self.partition)
        return out


def rotated_uri(uri: str, index: int) -> str:
    """The name of the ``index``-th file when output rotates.

    ``out.parquet`` → ``out-00001.parquet``; a directory (``out/``) → ``out/part-00001.parquet``.
    """
    if uri.endswith("/"):
        return f"{uri}part-{index:05d}.parquet"
    stem, ext = posixpath.splitext(uri)
    return f"{stem}-{index:05d}{ext or '.parquet'}"


def _distinct_at_most(column: pa.ChunkedArray, limit: float) -> bool:
    """Whether ``column`` holds at most ``limit`` distinct values (nulls not counted).

    A prefix with more already answers no, since a prefix holds no more distinct values than
    the whole: the prefixes tried grow from ``limit + 1`` rows, so a column of mostly distinct
    values (an id, a timestamp, an amount) is told from a tenth to a half of its rows, at the
    cost of hashing those, not all of them (~1 ms of a warm 1 MB conversion). A prefix whose
    values repeat much goes straight to the whole column, where the answer is as before.
    (Telling ordered ids with numpy first, or starting from a larger prefix, cost more than
    they saved: each check runs on cold memory.)
    """
    rows = len(column)
    size = int(limit) + 1
    while size < rows:
        distinct = kernels.count_distinct(column.slice(0, size))
        if distinct > limit:
            return False
        if distinct * 2 * rows <= size * limit:  # repeats: few distinct overall
            break
        # as many rows again as would pass the limit at this prefix's rate, and half as many
        size *= max(2, math.ceil(1.5 * limit / max(distinct, 1)))
    return kernels.count_distinct(column) <= limit


class CommitOrAbort(ABC):
    """``with sink:`` commits on a clean exit and aborts on an exception."""

    @abstractmethod
    def commit(self) -> None:
        """Publish what was written."""

    @abstractmethod
    def abort(self) -> None:
        """Discard what was written."""

    schema: pa.Schema
    _done: bool

    def _accept(self, table: pa.Table) -> pa.Table | None:
        """``table`` in the sink's schema (columns in its order), or ``None`` when empty."""
        if self._done:
            raise RuntimeError("write() after commit() or abort()")
        if not table.num_rows:
            return None
        if not table.schema.equals(self.schema):
            table = table.select(self.schema.names).cast(self.schema)
        return table

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class ParquetSink(CommitOrAbort):
    """Writes tables of one schema to Parquet; a context manager that commits or aborts.

    Args:
        uri: local path or ``s3://`` URI of the output (a directory, ending in ``/``, when files
            rotate).
        schema: the schema every written table has.
        options: compression, row-group targets, rotation, S3 part size.
        check_uri: called with each file's URI before the file is written (at once when the
            one name is known), to refuse a name.
        spool: on S3, where each output's part is held instead of memory: a
            :class:`~engine.sink.spool.Spool`, which the sink then owns (it notes what its
            files hold, reports the most as :attr:`spool_peak_bytes` and is closed with the
            sink), or a spool's :meth:`~engine.sink.spool.Spool.buffer` (a partitioned sink's
            shared spool, which it accounts for itself).
    """

    def __init__(self, uri: str, schema: pa.Schema, options: WriteOptions | None = None, *,
                 check_uri: CheckUri | None = None,
                 spool: Spool | Callable[[], BinaryIO] | None = None) -> None:
        self.uri = uri
        self.schema = schema
        self.options = options or WriteOptions()
        self.rotating = bool(self.options.max_rows_per_file or self.options.max_bytes_per_file)
        if uri.endswith("/") and not self.rotating:
            self.uri = uri + "part-00000.parquet"
        self._check_uri = check_uri
        self._own_spool = spool if isinstance(spool, Spool) else None
        self._spool = spool.buffer if isinstance(spool, Spool) else spool
        if check_uri is not None and not self.rotating:
            try:
                check_uri(self.uri)  # the only name: refused before a byte is read
            except BaseException:
                self._close_spool()
                raise
        self.files: list[FileReport] = []
        self._committed: list[AtomicOutput] = []
        self._out: AtomicOutput | None = None
        self._writer: pq.ParquetWriter | None = None
        self._buffer: list[pa.Table] = []
        self._buffered_rows = 0
        self._buffered_bytes = 0
        self._accepted = 0  # rows given to write(), to check what the files hold against
        self._footer: list[pq.FileMetaData] = []  # the open file's, once its writer closes
        self._dictionary: list[str] | None = None
        self._done = False

    # -- writing ---------------------------------------------------------------------------

    def write(self, table: pa.Table) -> None:
        """Buffer ``table``; write a row group whenever the buffer reaches its target."""
        table = self._accept(table)
        if table is None:
            return
        self._accepted += table.num_rows
        self._buffer.append(table)
        self._buffered_rows += table.num_rows
        self._buffered_bytes += table.nbytes
        opts = self.options
        limit = opts.row_group_rows
        if opts.max_rows_per_file:  # never buffer past the end of the current file
            limit = min(limit, opts.max_rows_per_file - self._file_rows())
        full = self._buffered_bytes >= opts.row_group_bytes
        if full or self._buffered_rows >= limit:
            self.flush()

    def _file_rows(self) -> int:
        """Rows already in the open file (0 when the next write opens a new one)."""
        return self.files[-1].rows if self._writer is not None else 0

    @property
    def rows_written(self) -> int:
        """Rows handed to the sink so far (written or buffered)."""
        return self._accepted

    @property
    def buffered_bytes(self) -> int:
        """Arrow bytes held for the row group being assembled."""
        return self._buffered_bytes

    @property
    def open_file_bytes(self) -> int:
        """Encoded bytes written to the file now open (0 when none is)."""
        return self._out.bytes_written if self._out is not None else 0

    @property
    def pending_upload_bytes(self) -> int:
        """Encoded bytes of the open file held in memory for an S3 upload (0 for local files)."""
        return self._out.pending_bytes if self._out is not None else 0

    @property
    def spool_peak_bytes(self) -> int:
        """The most bytes the sink's own spool held (0 without one): ``ephemeral_bytes``."""
        return self._own_spool.peak_bytes if self._own_spool is not None else 0

    def flush(self) -> None:
        """Write what is buffered as a row group now (a smaller one than the target)."""
        if not self._buffered_rows:
            return
        table = pa.concat_tables(self._buffer)
        self._buffer = []
        self._buffered_rows = 0
        self._buffered_bytes = 0
        limit = self.options.max_rows_per_file
        while table.num_rows:  # split at file boundaries when rotating by rows
            take = min(table.num_rows, limit - self._file_rows()) if limit else table.num_rows
            self._write_group(table.slice(0, take))
            table = table.slice(take)

    def _write_group(self, table: pa.Table) -> None:
        rows_per_group = min(table.num_rows, self.options.row_group_rows)
        try:
            if self._writer is None:
                self._open(table)
            assert self._writer is not None and self._out is not None
            self._writer.write_table(table, row_group_size=rows_per_group)
        except EngineError:
            raise
        except OSError as exc:  # the sink's file object failed: S3 or the local disk
            if self._out is not None and self._writer is not None:
                raise self._out.write_error(exc) from exc
            raise TransientError(f"writing Parquet failed: {exc}", uri=self._current_uri()) \
                from exc
        report = self.files[-1]
        report.rows += table.num_rows
        report.row_groups += -(-table.num_rows // rows_per_group)
        if self._own_spool is not None:
            self._own_spool.note(self._out.pending_bytes)
        opts = self.options
        if (opts.max_rows_per_file and report.rows >= opts.max_rows_per_file) or (
            opts.max_bytes_per_file and self._out.bytes_written >= opts.max_bytes_per_file
        ):
            self._close_file()

    def _current_uri(self) -> str:
        return rotated_uri(self.uri, len(self.files) - 1) if self.rotating else self.uri

    def _open(self, first: pa.Table) -> None:
        if self._dictionary is None:
            self._dictionary = self._dictionary_columns(first)
        self.files.append(FileReport(""))
        uri = self._current_uri()
        self.files[-1].uri = uri
        if self._check_uri is not None and self.rotating:
            self._check_uri(uri)
        self._out = AtomicOutput(uri, part_size=self.options.part_size, spool=self._spool)
        sink: Any = self._out.open_native()  # a local file: pyarrow's own, no Python per write
        clock = CLOCK.get()
        if clock is not None and not isinstance(sink, pa.NativeFile):
            sink = TimedWrites(sink, clock)  # S3: a write may send a part
        compression = None if self.options.compression == "none" else self.options.compression
        self._footer = []
        self._writer = pq.ParquetWriter(
            sink, self.schema, compression=compression,
            compression_level=self.options.compression_level,
            use_dictionary=self._dictionary, write_statistics=True,
            metadata_collector=self._footer,
        )

    def _dictionary_columns(self, table: pa.Table) -> list[str]:
        """Columns whose distinct-to-rows ratio in the first rows is low enough for a dictionary.

        High-cardinality columns skip the dictionary attempt (and its fallback) entirely.
        """
        probe = table.slice(0, _DICTIONARY_PROBE_ROWS)
        if not probe.num_rows:
            return []
        limit = max(1, probe.num_rows * self.options.dictionary_max_ratio)
        names = []
        for field, column in zip(probe.schema, probe.columns, strict=True):
            if pa.types.is_nested(field.type) or pa.types.is_null(field.type):
                continue
            if pa.types.is_dictionary(field.type):  # already encoded: keep the dictionary
                names.append(field.name)
                continue
            if _distinct_at_most(column, limit):
                names.append(field.name)
        return names

    def _close_file(self) -> None:
        if self._writer is None or self._out is None:
            return
        writer, out = self._writer, self._out
        self._writer = None
        self._out = None
        try:
            writer.close()  # the footer
        except OSError as exc:  # pyarrow's own local file (else the sink's file mapped it)
            writer.is_open = False
            out.abort()
            raise out.write_error(exc) from exc
        if self._own_spool is not None:  # the footer is held too, until the publish
            self._own_spool.note(out.pending_bytes)
        report = self.files[-1]
        footer_rows = self._footer[-1].num_rows if self._footer else None
        if footer_rows != report.rows:
            out.abort()
            raise AccountingError(f"the Parquet footer of {report.uri} holds {footer_rows} "
                                  f"rows, but {report.rows} were written to it", uri=report.uri)
        clock = CLOCK.get()
        if clock is None:
            out.commit()
        else:
            with clock.measure("upload"):
                out.commit()
        self.files[-1].bytes = out.bytes_written
        self._committed.append(out)

    # -- outcome ---------------------------------------------------------------------------

    def commit(self) -> None:
        """Write what is buffered, close the file and publish it.

        An empty input still gets a (zero-row) Parquet file with the schema. Nothing is
        published unless the files hold every row given to :meth:`write`, each file's footer
        agreeing with the rows written to it; otherwise everything is aborted and an
        :class:`~engine.errors.AccountingError` raised.
        """
        if self._done:
            return
        try:
            self.flush()
            if not self.files:
                self._open(self.schema.empty_table())
            written = sum(f.rows for f in self.files)
            if written != self._accepted:  # lost between write() and the writer
                raise AccountingError(f"{self._accepted} rows were given to the sink, but its "
                                      f"files hold {written}", uri=self.uri)
            self._close_file()
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._close_spool()

    def abort(self) -> None:
        """Discard everything: no object or file of this sink remains.

        Rotated files that were already published are deleted.
        """
        self._done = True
        self._buffer = []
        writer, out = self._writer, self._out
        self._writer = None
        self._out = None
        if out is not None:
            out.abort()
        if writer is not None:
            try:
                writer.close()
            except (OSError, ValueError, RuntimeError, pa.ArrowException):
                # The file object is already discarded: closing only flushes into it. A writer
                # whose file failed closes without a footer, and asking for it (the collector)
                # raises RuntimeError. Marked closed, or its __del__ would try again.
                writer.is_open = False
        self._close_spool()
        for done in self._committed:
            try:
                done.delete()
            except EngineError as exc:
                raise PermanentError(f"could not remove a partial output: {exc}",
                                     uri=self.uri) from exc
        self._committed = []

    def _close_spool(self) -> None:
        """Remove the sink's own spool (its file is closed by then: published or discarded)."""
        if self._own_spool is not None:
            self._own_spool.close()
