"""Parquet sink: buffered row groups, file rotation, commit on success, abort on error.

``ParquetWriter.write_batch`` closes a row group per call, and 1 MiB batches make ~12k-row groups
that compress badly (DESIGN.md). The sink buffers tables until a row group reaches its byte or row
target and then writes them as one group: the buffer is the memory term to size
(``WriteOptions.row_group_bytes``).

Example:
    >>> import pyarrow as pa
    >>> from engine.writer import ParquetSink
    >>> table = pa.table({"a": [1, 2, 3]})
    >>> with ParquetSink("/tmp/doc-example.parquet", table.schema) as sink:  # doctest: +SKIP
    ...     sink.write(table)
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.config import WriteOptions
from engine.errors import EngineError, PermanentError, TransientError
from engine.io import AtomicOutput

__all__ = ["FileReport", "ParquetSink", "rotated_uri"]

#: Rows looked at to decide which columns are dictionary-encoded.
_DICTIONARY_PROBE_ROWS = 20_000


@dataclass
class FileReport:
    """One Parquet file the sink wrote."""

    uri: str
    rows: int = 0
    bytes: int = 0
    row_groups: int = 0

    def to_dict(self) -> dict[str, Any]:
        """As reported in the RunReport."""
        return {"uri": self.uri, "rows": self.rows, "bytes": self.bytes,
                "row_groups": self.row_groups}


def rotated_uri(uri: str, index: int) -> str:
    """The name of the ``index``-th file when output rotates.

    ``out.parquet`` → ``out-00001.parquet``; a directory (``out/``) → ``out/part-00001.parquet``.
    """
    if uri.endswith("/"):
        return f"{uri}part-{index:05d}.parquet"
    stem, ext = posixpath.splitext(uri)
    return f"{stem}-{index:05d}{ext or '.parquet'}"


class ParquetSink:
    """Writes tables of one schema to Parquet; a context manager that commits or aborts.

    Args:
        uri: local path or ``s3://`` URI of the output (a directory, ending in ``/``, when files
            rotate).
        schema: the schema every written table has.
        options: compression, row-group targets, rotation, S3 part size.
    """

    def __init__(self, uri: str, schema: pa.Schema, options: WriteOptions | None = None) -> None:
        self.uri = uri
        self.schema = schema
        self.options = options or WriteOptions()
        self.rotating = bool(self.options.max_rows_per_file or self.options.max_bytes_per_file)
        if uri.endswith("/") and not self.rotating:
            self.uri = uri + "part-00000.parquet"
        self.files: list[FileReport] = []
        self._committed: list[AtomicOutput] = []
        self._out: AtomicOutput | None = None
        self._writer: pq.ParquetWriter | None = None
        self._buffer: list[pa.Table] = []
        self._buffered_rows = 0
        self._buffered_bytes = 0
        self._dictionary: list[str] | None = None
        self._done = False

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    # -- writing ---------------------------------------------------------------------------

    def write(self, table: pa.Table) -> None:
        """Buffer ``table``; write a row group whenever the buffer reaches its target."""
        if self._done:
            raise RuntimeError("write() after commit() or abort()")
        if not table.num_rows:
            return
        if not table.schema.equals(self.schema):
            table = table.select(self.schema.names).cast(self.schema)
        self._buffer.append(table)
        self._buffered_rows += table.num_rows
        self._buffered_bytes += table.nbytes
        opts = self.options
        full = self._buffered_bytes >= opts.row_group_bytes
        if full or self._buffered_rows >= opts.row_group_rows:
            self._flush()

    @property
    def rows_written(self) -> int:
        """Rows handed to the sink so far (written or buffered)."""
        return sum(f.rows for f in self.files) + self._buffered_rows

    @property
    def buffered_bytes(self) -> int:
        """Arrow bytes held for the row group being assembled."""
        return self._buffered_bytes

    def _flush(self) -> None:
        if not self._buffered_rows:
            return
        table = pa.concat_tables(self._buffer)
        self._buffer = []
        rows_per_group = min(table.num_rows, self.options.row_group_rows)
        try:
            if self._writer is None:
                self._open(table)
            assert self._writer is not None and self._out is not None
            self._writer.write_table(table, row_group_size=rows_per_group)
        except EngineError:
            raise
        except OSError as exc:  # the sink's file object failed: S3 or the local disk
            raise TransientError(f"writing Parquet failed: {exc}", uri=self._current_uri()) \
                from exc
        report = self.files[-1]
        report.rows += table.num_rows
        report.row_groups += -(-table.num_rows // rows_per_group)
        self._buffered_rows = 0
        self._buffered_bytes = 0
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
        self._out = AtomicOutput(uri, part_size=self.options.part_size)
        sink = self._out.__enter__()
        compression = None if self.options.compression == "none" else self.options.compression
        self._writer = pq.ParquetWriter(
            sink, self.schema, compression=compression,
            compression_level=self.options.compression_level,
            use_dictionary=self._dictionary, write_statistics=True,
        )

    def _dictionary_columns(self, table: pa.Table) -> list[str]:
        """Columns whose distinct-to-rows ratio in the first rows is low enough for a dictionary.

        High-cardinality columns skip the dictionary attempt (and its fallback) entirely.
        """
        probe = table.slice(0, _DICTIONARY_PROBE_ROWS)
        if not probe.num_rows:
            return []
        names = []
        for field, column in zip(probe.schema, probe.columns, strict=True):
            if pa.types.is_nested(field.type) or pa.types.is_null(field.type):
                continue
            distinct = pc.count_distinct(column).as_py()
            if distinct <= max(1, probe.num_rows * self.options.dictionary_max_ratio):
                names.append(field.name)
        return names

    def _close_file(self) -> None:
        if self._writer is None or self._out is None:
            return
        writer, out = self._writer, self._out
        self._writer = None
        self._out = None
        writer.close()
        out.commit()
        self.files[-1].bytes = out.bytes_written
        self._committed.append(out)

    # -- outcome ---------------------------------------------------------------------------

    def commit(self) -> None:
        """Write what is buffered, close the file and publish it.

        An empty input still gets a (zero-row) Parquet file with the schema.
        """
        if self._done:
            return
        try:
            self._flush()
            if not self.files:
                self._open(self.schema.empty_table())
            self._close_file()
        except BaseException:
            self.abort()
            raise
        self._done = True

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
            except (OSError, ValueError, pa.ArrowException):
                pass  # the file object is already discarded: closing only flushes into it
        for done in self._committed:
            try:
                done.delete()
            except EngineError as exc:
                raise PermanentError(f"could not remove a partial output: {exc}",
                                     uri=self.uri) from exc
        self._committed = []
