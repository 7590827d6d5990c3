"""The read → write loop and its RunReport.

One chunk is in flight at a time; every stage is an iterator. Without an explicit schema, types
are inferred from samples across the object; a later value that does not fit widens its column and
the conversion restarts (the output has one schema and every row), up to
``RunOptions.max_restarts`` times.
"""

from __future__ import annotations

import json
import os
import posixpath
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Any

import pyarrow as pa

from engine import io
from engine.config import ReadOptions, RunOptions, WriteOptions
from engine.errors import EngineError, InputFormatError, SchemaError
from engine.pipeline import Prefetch, ReadAhead
from engine.readers import (
    READERS,
    Chunk,
    Reader,
    Sample,
    SchemaWidening,
    Widening,
    detect_format,
)
from engine.readers.base import utf8_stream
from engine.writer import ParquetSink

__all__ = ["RunReport", "build_options", "read_batches", "transform"]

#: Called after each chunk with (stored bytes read, stored size or None).
Progress = Callable[[int, int | None], None]


@dataclass
class RunReport:
    """What one conversion did. ``rows_in == rows_out + rows_rejected`` always."""

    status: str
    input: str
    output: str | None
    format: str
    rows_in: int = 0
    rows_out: int = 0
    rows_rejected: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    peak_rss_bytes: int = 0
    schema: list[dict[str, str]] = field(default_factory=list)
    widened: list[dict[str, Any]] = field(default_factory=list)
    rejects: dict[str, Any] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0
    compression: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able data."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> str:
        """The report as one line of JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, from the kernel.

    On Linux this is ``VmHWM``: ``ru_maxrss`` survives ``execve`` and so includes the RSS of the
    parent a child was forked from.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def build_options(options: RunOptions | None = None, **kwargs: Any) -> RunOptions:
    """``options`` with keyword overrides.

    Each keyword names a field of ``ReadOptions``, ``WriteOptions`` or ``RunOptions``
    (``compression`` is the Parquet codec).
    """
    options = options or RunOptions()
    groups: dict[str, dict[str, Any]] = {"read": {}, "write": {}, "run": {}}
    read_names = {f.name for f in fields(ReadOptions)}
    write_names = {f.name for f in fields(WriteOptions)}
    run_names = {f.name for f in fields(RunOptions)} - {"read", "write"}
    for key, value in kwargs.items():
        if key in write_names:
            groups["write"][key] = value
        elif key in read_names:
            groups["read"][key] = value
        elif key in run_names:
            groups["run"][key] = value
        else:
            raise TypeError(f"unknown option {key!r}")
    return replace(
        options,
        read=replace(options.read, **groups["read"]),
        write=replace(options.write, **groups["write"]),
        **groups["run"],
    )


# ---------------------------------------------------------------------------------------------


def _threads(requested: int | None) -> int:
    if requested is not None:
        return max(1, requested)
    try:
        return min(2, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return min(2, os.cpu_count() or 1)


@contextmanager
def _chunks(src: str, reader: Reader, schema: pa.Schema, opts: RunOptions,
            widen: str) -> Iterator[tuple[io.InputStream, Iterator[Chunk]]]:
    """Open ``src`` and parse it: sequentially, or with reading and parsing on worker threads."""
    raw = io.open_input(src, opts.read.input_compression)
    threaded = _threads(opts.threads) > 1
    with ExitStack() as stack:
        stack.enter_context(raw)
        source: Any = raw
        if threaded:
            source = ReadAhead(raw, opts.read.block_size)
            stack.callback(source.close)
        chunks = reader.read(utf8_stream(source, opts.read.encoding, src), schema, widen=widen)
        if threaded:
            chunks = stack.enter_context(Prefetch(chunks, name="chunkwise-parse"))
        yield raw, chunks


def _samples(src: str, read: ReadOptions) -> list[Sample]:
    """The head of the decompressed input, plus ranged reads across a plain seekable object."""
    with io.open_input(src, read.input_compression) as raw:
        head = utf8_stream(raw, read.encoding, src).read(read.sample_bytes)
        at_end = not raw.read(1) if len(head) < read.sample_bytes else False
        size = raw.size
    samples = [Sample(head, True, at_end)]
    compression = read.input_compression or io.infer_compression(src)
    plain = compression == "none" and read.encoding.lower().replace("-", "") in ("utf8", "ascii")
    if plain and size and size > read.sample_bytes * (read.sample_count + 1):
        step = size // (read.sample_count + 1)
        for i in range(1, read.sample_count + 1):
            start = i * step
            data = io.read_range(src, start, read.sample_bytes)
            samples.append(Sample(data, False, start + len(data) >= size))
    return samples


def _reader(src: str, read: ReadOptions, head: bytes) -> Reader:
    fmt = read.format or detect_format(src, head, json_path=read.json_path)
    if fmt not in READERS:
        raise InputFormatError(f"unknown format {fmt!r}; known: {', '.join(READERS)}", uri=src)
    tsv = posixpath.splitext(io.strip_compression_suffix(src).lower())[1] == ".tsv"
    if fmt == "csv" and read.delimiter == "," and tsv:
        read = replace(read, delimiter="\t")
    return READERS[fmt](src, read)


def _schema(src: str, reader: Reader, samples: list[Sample], explicit: Any) -> pa.Schema:
    if explicit is None:
        return reader.infer_schema(samples)
    if isinstance(explicit, pa.Schema):
        return explicit
    raise SchemaError(f"schema must be a pyarrow.Schema, not {type(explicit).__name__}", uri=src)


def read_batches(src: str, *, options: RunOptions | None = None,
                 **kwargs: Any) -> Iterator[pa.RecordBatch]:
    """Stream ``src`` as record batches, in bounded memory.

    Types are inferred from samples (or given by ``schema=``). A later value that does not fit
    widens its column from that batch on: batches after a widening carry the wider schema
    (``transform`` restarts instead, so that its output has one schema). Rejected records are
    not yielded; use :func:`transform` to account for them.

    Example:
        >>> for batch in read_batches("orders.csv", block_size=1 << 20):  # doctest: +SKIP
        ...     print(batch.num_rows)
    """
    opts = build_options(options, **kwargs)
    samples = _samples(src, opts.read)
    reader = _reader(src, opts.read, samples[0].data)
    schema = _schema(src, reader, samples, opts.schema)
    with _chunks(src, reader, schema, opts, "continue") as (_, chunks):
        for chunk in chunks:
            yield from chunk.table.to_batches()


class _RejectsFile:
    """Rejected records as NDJSON, written through an AtomicOutput (or only counted)."""

    def __init__(self, uri: str | None) -> None:
        self.uri = uri
        self.count = 0
        self._out: io.AtomicOutput | None = None
        self._file: Any = None

    def write(self, rejects: list) -> None:
        self.count += len(rejects)
        if self.uri is None or not rejects:
            return
        if self._out is None:
            self._out = io.AtomicOutput(self.uri)
            self._file = self._out.__enter__()
        lines = "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in rejects)
        self._file.write(lines.encode())

    def commit(self) -> None:
        if self.uri is not None and self._out is None:  # an empty rejects file says "none"
            self._out = io.AtomicOutput(self.uri)
            self._file = self._out.__enter__()
        if self._out is not None:
            self._out.commit()

    def abort(self) -> None:
        if self._out is not None:
            self._out.abort()
        self.count = 0


def transform(src: str, dst: str, *, options: RunOptions | None = None,
              progress: Progress | None = None, **kwargs: Any) -> RunReport:
    """Convert ``src`` (CSV, NDJSON or a JSON array; local or ``s3://``) to Parquet at ``dst``.

    Keyword arguments override fields of :class:`engine.config.ReadOptions`,
    :class:`~engine.config.WriteOptions` and :class:`~engine.config.RunOptions` by name, e.g.
    ``block_size=1 << 20, compression="snappy", rejects_uri="rejects.ndjson"``.

    A failed run raises an :class:`engine.errors.EngineError` and leaves no output behind.

    Example:
        >>> report = transform("orders.csv", "orders.parquet")  # doctest: +SKIP
        >>> report.rows_in == report.rows_out + report.rows_rejected
        True
    """
    started = time.perf_counter()
    opts = build_options(options, **kwargs)
    samples = _samples(src, opts.read)
    reader = _reader(src, opts.read, samples[0].data)
    schema = _schema(src, reader, samples, opts.schema)
    widened: list[Widening] = []
    for attempt in range(opts.max_restarts + 1):
        try:
            report = _convert(src, dst, reader, schema, opts, progress)
        except SchemaWidening as widening:
            if opts.schema is not None:
                change = widening.changes[0]
                raise SchemaError(
                    f"column {change.column!r} holds a value that is not {change.from_type}",
                    uri=src, record=change.record,
                ) from None
            widened.extend(widening.changes)
            schema = widening.schema
            continue
        report.widened = [w.to_dict() for w in widened]
        report.restarts = attempt
        report.seconds = round(time.perf_counter() - started, 3)
        report.peak_rss_bytes = peak_rss_bytes()
        return report
    raise SchemaError(f"gave up after {opts.max_restarts} schema widenings", uri=src)


def _convert(src: str, dst: str, reader: Reader, schema: pa.Schema, opts: RunOptions,
             progress: Progress | None) -> RunReport:
    rejects = _RejectsFile(opts.rejects_uri)
    rows_in = 0
    sink = ParquetSink(dst, schema, opts.write)
    try:
        with _chunks(src, reader, schema, opts, "restart") as (raw, chunks):
            for chunk in chunks:
                sink.write(chunk.table)
                rejects.write(chunk.rejects)
                rows_in += chunk.records
                if progress is not None:
                    progress(raw.raw_bytes_read, raw.size)
            bytes_in = raw.raw_bytes_read
        sink.commit()
        rejects.commit()
    except BaseException as exc:
        sink.abort()
        rejects.abort()
        if isinstance(exc, EngineError) and exc.uri is None:
            exc.uri = src
        raise
    rows_out = sum(f.rows for f in sink.files)
    if rows_in != rows_out + rejects.count:  # the promise: nothing is lost silently
        raise AssertionError(f"accounting: {rows_in} in != {rows_out} out + {rejects.count}")
    return RunReport(
        status="succeeded",
        input=src,
        output=sink.files[0].uri if len(sink.files) == 1 else dst,
        format=reader.format,
        rows_in=rows_in,
        rows_out=rows_out,
        rows_rejected=rejects.count,
        bytes_in=bytes_in,
        bytes_out=sum(f.bytes for f in sink.files),
        schema=[{"name": f.name, "type": str(f.type)} for f in schema],
        rejects={"count": rejects.count, "uri": opts.rejects_uri},
        files=[f.to_dict() for f in sink.files],
        compression=opts.write.compression,
    )
