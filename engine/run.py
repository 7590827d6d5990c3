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
from engine.errors import (
    EngineError,
    InputFormatError,
    SchemaError,
    UsageError,
    ValidationError,
)
from engine.pipeline import Prefetch, ReadAhead, worker_threads
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
from engine.timing import CLOCK, StageClock, TimedReads
from engine.writer import ParquetSink

__all__ = ["OutputPlan", "RunReport", "build_options", "read_batches", "transform", "validate"]

#: Called after each chunk with (stored bytes read, stored size or None).
Progress = Callable[[int, int | None], None]


@dataclass
class RunReport:
    """What one conversion did.

    ``rows_in == rows_out + rows_rejected + rows_filtered`` always (``rows_filtered`` counts rows
    a contract's ``filter``/``dedupe`` steps removed). ``state_bytes`` is memory held across
    chunks by ``unique``/``dedupe`` keys, enrichment tables and aggregate groups, reported apart
    from the bounded streaming memory. ``peak_rss_bytes`` is the process's high-water RSS,
    ``arrow_peak_bytes`` the Arrow memory pool's, and ``stages`` the wall and CPU seconds per
    stage (see :mod:`engine.timing`).
    """

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
    arrow_peak_bytes: int = 0
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    schema: list[dict[str, str]] = field(default_factory=list)
    widened: list[dict[str, Any]] = field(default_factory=list)
    rejects: dict[str, Any] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0
    compression: str | None = None
    rows_filtered: int = 0
    contract: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    state_bytes: int = 0
    aggregate: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

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


@contextmanager
def _chunks(src: str, reader: Reader, schema: pa.Schema, opts: RunOptions, widen: str,
            strict: frozenset[str] = frozenset(), clock: StageClock | None = None,
            ) -> Iterator[tuple[io.InputStream, Iterator[Chunk]]]:
    """Open ``src`` and parse it: sequentially, or with reading and parsing on worker threads.

    With ``clock``, reads are charged to its ``read`` stage and parsing to ``parse``, on
    whichever thread does them.
    """
    raw = io.open_input(src, opts.read.input_compression, byte_range=opts.read.byte_range)
    threaded = worker_threads(opts.threads) > 1
    with ExitStack() as stack:
        stack.enter_context(raw)
        source: Any = raw if clock is None else TimedReads(raw, clock)
        if threaded:
            source = ReadAhead(source, opts.read.block_size)
            stack.callback(source.close)
        if opts.read.byte_range is not None and reader.format == "json":
            source = _Framed(source, b"[", b"]")
        chunks = reader.read(utf8_stream(source, opts.read.encoding, src), schema, widen=widen,
                             strict=strict)
        if clock is not None:
            chunks = clock.iterate("parse", chunks)
        if threaded:
            chunks = stack.enter_context(Prefetch(chunks, name="chunkwise-parse"))
        yield raw, chunks


class _Framed:
    """A stream with ``prefix`` before its first byte and ``suffix`` after its last."""

    def __init__(self, stream: Any, prefix: bytes, suffix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix
        self._suffix: bytes | None = suffix

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all for ``-1``), fewer only at the end, as a buffered reader."""
        out = self._prefix
        self._prefix = b""
        while self._suffix is not None and (n is None or n < 0 or len(out) < n):
            data = self._stream.read(-1 if n is None or n < 0 else n - len(out))
            if not data:
                out += self._suffix
                self._suffix = None
            out += data
        if n is not None and 0 <= n < len(out):  # the suffix went over: keep it for later
            out, self._prefix = out[:n], out[n:]
        return out

    def readinto(self, view: Any) -> int:
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


def _samples(src: str, read: ReadOptions) -> list[Sample]:
    """The head of the decompressed input, plus ranged reads across a plain seekable object."""
    if read.byte_range is not None and read.format is None:
        raise ValueError("a byte range needs an explicit format")
    with io.open_input(src, read.input_compression, byte_range=read.byte_range) as raw:
        stream: Any = raw
        if read.byte_range is not None and read.format == "json":
            stream = _Framed(raw, b"[", b"]")
        head = utf8_stream(stream, read.encoding, src).read(read.sample_bytes)
        at_end = not stream.read(1) if len(head) < read.sample_bytes else False
        size = raw.size
    samples = [Sample(head, True, at_end)]
    compression = read.input_compression or io.infer_compression(src)
    plain = compression == "none" and read.encoding.lower().replace("-", "") in ("utf8", "ascii")
    plain = plain and read.byte_range is None  # a range's samples: its head (pass a schema)
    if plain and size and size > read.sample_bytes * (read.sample_count + 1):
        step = size // (read.sample_count + 1)
        for i in range(1, read.sample_count + 1):
            start = i * step
            data = io.read_range(src, start, read.sample_bytes)
            samples.append(Sample(data, False, start + len(data) >= size))
    return samples


def _reader(src: str, read: ReadOptions, head: bytes) -> Reader:
    fmt = read.format or detect_format(src, head, json_path=read.json_path)
    if read.byte_range is not None and fmt == "json":
        read = replace(read, json_path=None)  # the range is read as a top-level array
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


def read_batches(src: str | os.PathLike[str], *, options: RunOptions | None = None,
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
    src = os.fspath(src)
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


def transform(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
              options: RunOptions | None = None,
              progress: Progress | None = None, contract: Any = None,
              **kwargs: Any) -> RunReport:
    """Convert ``src`` (CSV, NDJSON or a JSON array; local or ``s3://``) to Parquet at ``dst``.

    Keyword arguments override fields of :class:`engine.config.ReadOptions`,
    :class:`~engine.config.WriteOptions` and :class:`~engine.config.RunOptions` by name, e.g.
    ``block_size=1 << 20, compression="snappy", rejects_uri="rejects.ndjson"``.

    With ``contract`` (an :class:`engine.contract.Contract` or the path of its YAML), the
    contract's types and checks are enforced in the same pass, its transforms applied and its
    aggregate written; ``dst`` may then be a directory (ending in ``/``) where the file is named
    after the input, so a re-run overwrites rather than duplicates.

    A failed run raises an :class:`engine.errors.EngineError` and leaves no output behind.

    Example:
        >>> report = transform("orders.csv", "orders.parquet")  # doctest: +SKIP
        >>> report.rows_in == report.rows_out + report.rows_rejected + report.rows_filtered
        True
    """
    return _run(os.fspath(src), os.fspath(dst), options, progress, contract, kwargs)


def validate(src: str | os.PathLike[str], *, contract: Any,
             options: RunOptions | None = None,
             progress: Progress | None = None, **kwargs: Any) -> RunReport:
    """Check ``src`` against ``contract`` in one pass, writing nothing.

    The report's ``checks`` counts rejects by column and check, with a few examples each;
    ``status`` is ``"failed"`` when the rejects exceed the contract's thresholds.
    """
    return _run(os.fspath(src), None, options, progress, contract, kwargs)


def _run(src: str, dst: str | None, options: RunOptions | None, progress: Progress | None,
         contract: Any, kwargs: dict[str, Any]) -> RunReport:
    started = time.perf_counter()
    clock = CLOCK.get()
    token = CLOCK.set(StageClock()) if clock is None else None
    try:
        return _run_timed(src, dst, options, progress, contract, kwargs, started)
    finally:
        if token is not None:
            CLOCK.reset(token)


def _run_timed(src: str, dst: str | None, options: RunOptions | None, progress: Progress | None,
               contract: Any, kwargs: dict[str, Any], started: float) -> RunReport:
    clock = CLOCK.get()
    assert clock is not None
    opts = build_options(options, **kwargs)
    plan = OutputPlan.load(contract, src, dst, opts.output_stem)
    opts = build_options(options, **{**plan.overrides(), **kwargs})
    if dst is not None:
        _refuse_replacing(src, [plan.data_uri or dst, opts.rejects_uri, plan.aggregate_uri])
    with clock.measure("infer"):
        samples = _samples(src, opts.read)
        reader = _reader(src, opts.read, samples[0].data)
        schema = _schema(src, reader, samples, opts.schema)
    widened: list[Widening] = []
    for attempt in range(opts.max_restarts + 1):
        try:
            report = _convert(src, plan, reader, schema, opts, progress, clock)
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
        report.arrow_peak_bytes = pa.default_memory_pool().max_memory() or 0
        report.stages = clock.to_dict()
        return report
    raise SchemaError(f"gave up after {opts.max_restarts} schema widenings", uri=src)


@dataclass
class OutputPlan:
    """Where a run's outputs go (data, rejects, aggregate) and the contract that shapes them.

    :meth:`load` resolves them as :func:`transform` will, so the pipeline can check and clean
    up the very URIs a run writes.
    """

    dst: str | None
    contract: Any = None
    data_uri: str | None = None
    rejects_uri: str | None = None
    aggregate_uri: str | None = None
    stem: str = "part"

    @classmethod
    def load(cls, contract: Any, src: str, dst: str | None,
             stem: str | None = None) -> OutputPlan:
        """Resolve the outputs of converting ``src`` to ``dst`` (files named after ``stem``)."""
        if contract is not None and not hasattr(contract, "columns"):
            from engine.contract import load_contract

            contract = load_contract(contract)
        stem = stem or _stem(src)
        plan = cls(dst, contract, dst, stem=stem)
        if dst is None or contract is None:
            return plan
        directory = dst.endswith("/") or bool(contract.output.partition_by)
        base = dst if dst.endswith("/") else (dst + "/" if directory else _parent(dst))
        if directory and not contract.output.partition_by:
            plan.data_uri = f"{base}{stem}.parquet"
        if contract.rejects.path:
            plan.rejects_uri = _under(base, contract.rejects.path, f"{stem}.rejects.ndjson")
        if contract.aggregate is not None:
            plan.aggregate_uri = _under(base, contract.aggregate.path, f"{stem}.parquet")
        return plan

    def overrides(self) -> dict[str, Any]:
        """The contract's format and output options, as :func:`transform` keywords."""
        if self.contract is None:
            return {}
        out = {**self.contract.read_overrides(), **self.contract.output.write_overrides()}
        if self.rejects_uri:
            out["rejects_uri"] = self.rejects_uri
        return out


def _stem(uri: str) -> str:
    name = posixpath.basename(io.strip_compression_suffix(uri).rstrip("/")) or "part"
    return posixpath.splitext(name)[0] or "part"


def _parent(uri: str) -> str:
    head = posixpath.dirname(uri)
    return f"{head}/" if head else ""


def _under(base: str, path: str, name: str) -> str:
    """``path`` relative to the output directory ``base``.

    A path ending in ``/`` is a directory, and the file in it is called ``name``.
    """
    full = path if ("://" in path or posixpath.isabs(path)) else base + path
    return full + name if full.endswith("/") else full


class _Stages:
    """The contract's stages for one pass: validate → transform → aggregate."""

    def __init__(self, plan: OutputPlan, src: str, schema: pa.Schema) -> None:
        from engine.transforms import Transformer
        from engine.validate import Validator

        contract = plan.contract
        self.contract = contract
        self.validator = Validator(contract, src)
        self.reader_schema, self.strict = self.validator.reader_schema(schema)
        self.transformer = Transformer.from_contract(contract, uri=src, validated=True)
        self.aggregator = None
        if contract.aggregate is not None:
            from engine.aggregate import Aggregator

            self.aggregator = Aggregator(contract.aggregate, uri=src)
        validated = self.validator.output_schema()
        if contract.extra_columns == "keep":
            extras = [f for f in self.reader_schema if f.name not in contract.columns]
            validated = pa.schema(list(validated) + extras)
        self.output_schema = self.transformer.output_schema(validated)
        self.filtered = 0

    def apply(self, chunk: Chunk) -> tuple[pa.Table, list[Any]]:
        table, rejects = self.validator.apply(chunk)
        if self.contract.type_errors == "fail":
            bad = min((r for r in chunk.rejects + rejects if r.check == "type"),
                      key=lambda r: r.record, default=None)
            if bad is not None:
                raise SchemaError(bad.reason, record=bad.record, offset=bad.offset)
        self.validator.note_reader_rejects(chunk.rejects)
        table, removed = self.transformer.apply(table)
        self.filtered += removed
        if self.aggregator is not None and table.num_rows:
            self.aggregator.update(table)
        return table, chunk.rejects + rejects

    @property
    def state_bytes(self) -> int:
        total = self.validator.state_bytes + self.transformer.state_bytes
        if self.aggregator is not None:
            total += self.aggregator.state_bytes
        return total


def _check_thresholds(contract: Any, rows_in: int, rejected: int, src: str,
                      final: bool) -> None:
    policy = contract.rejects
    if policy.max_count is not None and rejected > policy.max_count:
        raise ValidationError(f"{rejected} records rejected, more than rejects.max_count "
                              f"({policy.max_count})", uri=src)
    if final and policy.max_ratio is not None and rows_in and (
        rejected / rows_in > policy.max_ratio
    ):
        raise ValidationError(f"{rejected} of {rows_in} records rejected "
                              f"({rejected / rows_in:.2%}), more than rejects.max_ratio "
                              f"({policy.max_ratio:.2%})", uri=src)


def _refuse_replacing(src: str, outputs: list[str | None]) -> None:
    """Raise :class:`UsageError` when one of ``outputs`` is ``src`` itself.

    The output is renamed into place (or committed) after the input has been read, so the run
    would succeed and leave the input replaced by its own Parquet.
    """
    for out in outputs:
        if not out:
            continue
        if io.is_s3(src) or io.is_s3(out):
            same = src == out
        else:
            same = os.path.realpath(io.local_path(src)) == os.path.realpath(io.local_path(out))
        if same:
            raise UsageError("the output is the input: writing it would replace the input; "
                             "choose another output path", uri=out)


def _sink(plan: OutputPlan, schema: pa.Schema, opts: RunOptions) -> Any:
    if plan.dst is None:
        return None
    contract = plan.contract
    if contract is not None and contract.output.partition_by:
        from engine.writer import PartitionedSink

        # On S3 each open partition file holds up to one part in memory until it commits;
        # cap that term at four parts by committing the largest file early.
        upload_cap = 4 * opts.write.part_size if io.is_s3(plan.dst) else None
        return PartitionedSink(plan.dst if plan.dst.endswith("/") else plan.dst + "/", schema,
                               list(contract.output.partition_by), opts.write,
                               file_stem=plan.stem,
                               max_open_writers=contract.output.max_open_writers,
                               max_upload_buffer_bytes=upload_cap)
    return ParquetSink(plan.data_uri or plan.dst, schema, opts.write)


def _convert(src: str, plan: OutputPlan, reader: Reader, schema: pa.Schema, opts: RunOptions,
             progress: Progress | None, clock: StageClock) -> RunReport:
    stages = _Stages(plan, src, schema) if plan.contract is not None else None
    read_schema, strict = (stages.reader_schema, stages.strict) if stages else (schema, frozenset())
    out_schema = stages.output_schema if stages else schema
    rejects = _RejectsFile(opts.rejects_uri if plan.dst is not None else None)
    rows_in = 0
    sink = _sink(plan, out_schema, opts)
    published: list[ParquetSink] = []
    failed: ValidationError | None = None
    try:
        with _chunks(src, reader, read_schema, opts, "restart", strict, clock) as (raw, chunks):
            for chunk in chunks:
                if stages is not None:
                    with clock.measure("validate_transform"):
                        table, bad = stages.apply(chunk)
                else:
                    table, bad = chunk.table, chunk.rejects
                if sink is not None:
                    with clock.measure("encode_write"):
                        sink.write(table)
                rejects.write(bad)
                rows_in += chunk.records
                if stages is not None:
                    _check_thresholds(plan.contract, rows_in, rejects.count, src, final=False)
                if progress is not None:
                    progress(raw.raw_bytes_read, raw.size)
            bytes_in = raw.raw_bytes_read
        if stages is not None:
            _check_thresholds(plan.contract, rows_in, rejects.count, src, final=True)
        aggregate = _write_aggregate(plan, stages, opts, published)
        if sink is not None:
            with clock.measure("encode_write"):
                sink.commit()
        rejects.commit()
    except ValidationError as exc:
        failed = exc
    except BaseException as exc:
        if sink is not None:
            sink.abort()
        for done in published:  # the aggregate, published before the data failed to commit
            done.abort()
        rejects.abort()
        if isinstance(exc, EngineError) and exc.uri is None:
            exc.uri = src
        raise
    if failed is not None:
        # Too many rejects: nothing is published but the rejects file, so an operator sees why.
        if sink is not None:
            sink.abort()
        rejects.commit()
        if plan.dst is not None:
            raise failed
        return _validation_report(src, reader, rows_in, rejects, stages, failed)
    filtered = stages.filtered if stages else 0
    files = sink.files if sink is not None else []
    rows_out = (sum(f.rows for f in files) if sink is not None
                else rows_in - rejects.count - filtered)
    if rows_in != rows_out + rejects.count + filtered:  # the promise: nothing is lost silently
        raise AssertionError(f"accounting: {rows_in} in != {rows_out} out + {rejects.count} "
                             f"rejected + {filtered} filtered")
    report = RunReport(
        status="succeeded",
        input=src,
        output=(files[0].uri if len(files) == 1 else plan.dst) if sink is not None else None,
        format=reader.format,
        rows_in=rows_in,
        rows_out=rows_out,
        rows_rejected=rejects.count,
        rows_filtered=filtered,
        bytes_in=bytes_in,
        bytes_out=sum(f.bytes for f in files),
        schema=[{"name": f.name, "type": str(f.type)} for f in out_schema],
        rejects={"count": rejects.count, "uri": rejects.uri},
        files=[f.to_dict() for f in files],
        compression=opts.write.compression if sink is not None else None,
    )
    if stages is not None:
        report.contract = plan.contract.dataset
        report.checks = _checks(stages)
        report.state_bytes = stages.state_bytes
        report.aggregate = aggregate
    return report


def _write_aggregate(plan: OutputPlan, stages: _Stages | None, opts: RunOptions,
                     published: list[ParquetSink]) -> dict | None:
    """Write the aggregate; its sink joins ``published``, to be aborted if the run fails later."""
    if stages is None or stages.aggregator is None:
        return None
    table = stages.aggregator.result()
    info: dict[str, Any] = {"groups": table.num_rows, "uri": plan.aggregate_uri}
    if plan.aggregate_uri is not None and plan.dst is not None:
        # One file at the aggregate's path: the data's file rotation does not apply to it.
        write = replace(opts.write, max_rows_per_file=None, max_bytes_per_file=None)
        with ParquetSink(plan.aggregate_uri, table.schema, write) as sink:
            sink.write(table)
        published.append(sink)
        info["bytes"] = sink.files[0].bytes if sink.files else 0
    return info


def _checks(stages: _Stages) -> list[dict[str, Any]]:
    v = stages.validator
    return [{"column": column, "check": check, "count": count,
             "examples": v.examples.get((column, check), [])}
            for (column, check), count in v.counts.most_common()]


def _validation_report(src: str, reader: Reader, rows_in: int, rejects: _RejectsFile,
                       stages: _Stages | None, failed: ValidationError) -> RunReport:
    report = RunReport(status="failed", input=src, output=None, format=reader.format,
                       rows_in=rows_in, rows_rejected=rejects.count,
                       rejects={"count": rejects.count, "uri": rejects.uri})
    report.error = failed.to_dict()
    if stages is not None:
        report.contract = stages.contract.dataset
        report.checks = _checks(stages)
        report.rows_filtered = stages.filtered
        report.rows_out = rows_in - rejects.count - stages.filtered
    return report
