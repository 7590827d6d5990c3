"""Parquet input, row group by row group, so an existing file can be re-typed or re-partitioned.

A Parquet file is typed already: its schema is its footer's (nothing is sampled or widened), and
a contract converts its columns as it converts parsed text. The footer is at the end of the
file, so the file is read at any offset (:func:`engine.io.open_seekable`: ``pread`` locally,
ranged GETs of exactly the bytes asked for on S3), never streamed through a decompressor: a
compressed ``.parquet.gz`` is refused before it gets here (Parquet compresses its own pages).

Memory: ``ParquetFile.iter_batches`` decodes ``block_size`` bytes' worth of Arrow rows at a time
from one row group. Pre-buffering (which would read every row group's column chunks at once) is off.
A row group up to ``PARQUET_WHOLE_ROW_GROUP_BYTES`` compressed has its column chunks read whole,
one read each (few GETs); a larger one (Spark writes 128 MiB groups) is read through buffers of
``PARQUET_READ_BUFFER_BYTES`` per column, so memory does not grow with the row group.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from engine import io
from engine.config import PARQUET_READ_BUFFER_BYTES, PARQUET_WHOLE_ROW_GROUP_BYTES, ReadOptions
from engine.errors import InputFormatError, SchemaError
from engine.readers.base import Chunk, Sample, Widening
from engine.readers.schema import check_width

__all__ = ["ParquetReader"]

#: What pyarrow raises for bytes that are not valid Parquet: its own errors, and ``OSError`` for
#: a footer or page header that does not deserialise. (The engine's streams raise its own typed
#: errors, which pass through pyarrow unchanged and are not caught here.)
_ARROW_ERRORS = (pa.ArrowException, OSError)

#: Rows decoded to measure the Arrow size of a row (:meth:`ParquetReader._batch_rows`).
_PROBE_ROWS = 1024

#: Bytes read at a time per column to decode those rows.
_PROBE_BUFFER_BYTES = 64 * 1024


class ParquetReader:
    """Reads a Parquet file's row groups as chunks of its own schema.

    ``read`` takes the seekable stored file (:func:`engine.io.open_seekable`), not a text
    stream. Columns a contract types (``strict``) come in their stored type, for the contract
    to convert value by value; any other column is cast to the schema asked for, and a value
    that does not fit is a :class:`~engine.errors.SchemaError`.
    """

    format: ClassVar[str] = "parquet"

    def __init__(self, uri: str, options: ReadOptions) -> None:
        self.uri = uri
        self.options = options
        self.widened: list[Widening] = []

    def infer_schema(self, samples: list[Sample]) -> pa.Schema:
        """The schema in the file's footer (the samples of text formats are not needed)."""
        with io.open_seekable(self.uri) as stored:
            return self._schema(self._metadata(stored))

    def read(
        self, stream: BinaryIO, schema: pa.Schema, *, widen: str = "restart",
        strict: frozenset[str] = frozenset(),
    ) -> Iterator[Chunk]:
        """Yield the rows of ``stream`` (a seekable stored file) in chunks of ``schema``."""
        metadata = self._metadata(stream)
        stored = self._schema(metadata)
        if sorted(stored.names) != sorted(schema.names):
            raise SchemaError(f"the Parquet columns {stored.names} do not match the expected "
                              f"columns {schema.names}", uri=self.uri)
        groups = [metadata.row_group(i) for i in range(metadata.num_row_groups)]
        largest = max((sum(g.column(c).total_compressed_size for c in range(g.num_columns))
                       for g in groups), default=0)
        whole = largest <= PARQUET_WHOLE_ROW_GROUP_BYTES
        parquet = pq.ParquetFile(pa.PythonFile(stream, mode="r"), metadata=metadata,
                                 pre_buffer=False,
                                 buffer_size=0 if whole else PARQUET_READ_BUFFER_BYTES)
        rows = self._batch_rows(stream, metadata, groups, schema.names)
        record = 1
        for index, group in enumerate(groups):
            if not group.num_rows:
                continue
            offset = _group_offset(group)
            batches = parquet.iter_batches(batch_size=rows, row_groups=[index],
                                           columns=schema.names, use_threads=False)
            for batch in self._guard(batches, record, offset):
                table = self._fit(pa.Table.from_batches([batch]), schema, strict, record)
                yield Chunk(table, record, table.num_rows, offset)
                record += table.num_rows

    # -- the footer ------------------------------------------------------------------------

    def _metadata(self, stored: BinaryIO) -> pq.FileMetaData:
        try:
            return pq.read_metadata(pa.PythonFile(stored, mode="r"))
        except pa.ArrowMemoryError:
            raise
        except _ARROW_ERRORS as exc:
            raise InputFormatError(f"not a readable Parquet file ({io.one_line(str(exc))})",
                                   uri=self.uri, offset=0) from None

    def _schema(self, metadata: pq.FileMetaData) -> pa.Schema:
        """The file's Arrow schema without its metadata (pandas', the Arrow schema's)."""
        try:
            stored = metadata.schema.to_arrow_schema()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputFormatError(f"a Parquet schema Arrow cannot read ({exc})",
                                   uri=self.uri) from None
        names = stored.names
        if not names:
            raise SchemaError("the Parquet file has no columns", uri=self.uri)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise SchemaError(f"the Parquet file has more than one column named {repeated}",
                              uri=self.uri)
        schema = pa.schema([pa.field(f.name, f.type, f.nullable) for f in stored])
        return check_width(schema, self.uri)

    # -- the rows --------------------------------------------------------------------------

    def _batch_rows(self, stream: BinaryIO, metadata: pq.FileMetaData,
                    groups: list[pq.RowGroupMetaData], columns: list[str]) -> int:
        """Rows per batch for about ``block_size`` bytes of Arrow data.

        The footer's sizes are of encoded pages (a dictionary-encoded string column is a few
        bits a row there), so the Arrow size of a row is measured on the first rows instead,
        read through small buffers: a few KiB of each column, not its whole chunk.
        """
        first = next((i for i, g in enumerate(groups) if g.num_rows), None)
        if first is None:
            return 1
        probe = min(groups[first].num_rows, _PROBE_ROWS)
        parquet = pq.ParquetFile(pa.PythonFile(stream, mode="r"), metadata=metadata,
                                 pre_buffer=False, buffer_size=_PROBE_BUFFER_BYTES)
        batches = parquet.iter_batches(batch_size=probe, row_groups=[first], columns=columns,
                                       use_threads=False)
        batch = next(self._guard(batches, 1, _group_offset(groups[first])), None)
        per_row = max(1, batch.nbytes // max(1, batch.num_rows)) if batch is not None else 1
        return max(1, self.options.block_size // per_row)

    def _guard(self, batches: Iterator[pa.RecordBatch], record: int,
               offset: int) -> Iterator[pa.RecordBatch]:
        """``batches``, with a corrupt page or column chunk as an InputFormatError."""
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except pa.ArrowMemoryError:
                raise
            except _ARROW_ERRORS as exc:
                raise InputFormatError(f"corrupt Parquet data ({io.one_line(str(exc))})",
                                       uri=self.uri, record=record, offset=offset) from None
            yield batch

    def _fit(self, table: pa.Table, schema: pa.Schema, strict: frozenset[str],
             record: int) -> pa.Table:
        """``table`` in ``schema``'s column order and types (``strict`` columns as stored)."""
        if table.schema.equals(schema):
            return table
        columns, fields = [], []
        for field in schema:
            column = table.column(field.name)
            if field.name not in strict and not column.type.equals(field.type):
                try:
                    column = column.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise SchemaError(f"column {field.name!r} ({column.type}) does not convert "
                                      f"to {field.type}: {exc}", uri=self.uri,
                                      record=record) from None
            columns.append(column)
            fields.append(field.with_type(column.type))
        return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _group_offset(group: pq.RowGroupMetaData) -> int:
    """The byte offset where a row group's first column chunk starts."""
    first = group.column(0)
    offsets = [first.data_page_offset]
    if first.has_dictionary_page and first.dictionary_page_offset:
        offsets.append(first.dictionary_page_offset)
    return min(offsets)
