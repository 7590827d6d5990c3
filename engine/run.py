"""The public API and the read → enforce → write loop.

One chunk is in flight at a time; every stage is an iterator. Without an explicit schema, types
are inferred from samples across the object (:mod:`engine.readers.sampling`); a later value that
does not fit widens its column and the conversion restarts (the output has one schema and every
row), up to ``max_restarts`` times.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from engine.config import (
    ReadOptions,
    RunOptions,
    WriteMode,
    WriteOptions,
    build_options,
    parse_ahead_bytes,
)
from engine.errors import EngineError, SchemaError, ValidationError
from engine.io.requests import counting
from engine.plan import OutputPlan, refuse_replacing
from engine.readers import Reader, SchemaWidening, Widening
from engine.readers.sampling import ResolvedInput, resolve_input
from engine.report import RunReport, check_accounting
from engine.runtime.memory import peak_rss_bytes
from engine.runtime.timing import CLOCK, StageClock
from engine.sink.parquet import ParquetSink
from engine.sink.rejects import RejectsFile

if TYPE_CHECKING:
    from engine.contract import Contract
    from engine.enforce.stage import ContractStages

__all__ = ["Progress", "RunReport", "read_batches", "transform", "validate"]

#: Called after each chunk with (stored bytes read, stored size or None).
Progress = Callable[[int, int | None], None]

#: The names of every option field, for the explicit keywords of the API functions.
_OPTION_FIELDS = frozenset(f.name for cls in (ReadOptions, WriteOptions, RunOptions)
                           for f in fields(cls)) - {"read", "write"}


def _given(arguments: dict[str, Any]) -> dict[str, Any]:
    """The option keywords of an API function's ``arguments`` that were set (not ``None``)."""
    return {k: v for k, v in arguments.items() if k in _OPTION_FIELDS and v is not None}


def read_batches(
    src: str | os.PathLike[str], *, options: RunOptions | None = None,
    format: str | None = None, input_compression: str | None = None,
    encoding: str | None = None, delimiter: str | None = None, quote_char: str | None = None,
    header: bool | None = None, column_names: Sequence[str] | None = None,
    null_values: Sequence[str] | None = None, json_path: str | None = None,
    block_size: int | None = None, max_record_bytes: int | None = None,
    sample_count: int | None = None, sample_bytes: int | None = None,
    schema: pa.Schema | None = None, threads: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream ``src`` as record batches, in bounded memory.

    Types are inferred from samples (or given by ``schema``). A later value that does not fit
    widens its column from that batch on: batches after a widening carry the wider schema
    (:func:`transform` restarts instead, so that its output has one schema). Rejected records
    are not yielded; use :func:`transform` to account for them.

    Args:
        src: local path or ``s3://bucket/key``; compression by suffix (``.gz``, ``.bz2``,
            ``.zst``).
        options: a :class:`~engine.config.RunOptions` to start from; the keywords below
            override its fields, ``None`` keeps them. They are documented on
            :class:`~engine.config.ReadOptions` and :class:`~engine.config.RunOptions`.
        format: ``csv``, ``ndjson``, ``json`` (an array) or ``parquet``; ``None`` detects it.
        input_compression: ``gzip``, ``bz2``, ``zstd`` or ``none``; ``None``: from the suffix.
        encoding: the text encoding (UTF-8 by default).
        delimiter: the CSV delimiter.
        quote_char: the CSV quote character (``""``: no quoting).
        header: whether the first CSV record holds the column names.
        column_names: names to use instead of (or without) a header.
        null_values: strings read as null (replacing pyarrow's defaults).
        json_path: where the array is in a JSON document (``data.item``).
        block_size: bytes per parsed chunk.
        max_record_bytes: the longest record accepted.
        sample_count: ranged samples taken for inference beyond the head.
        sample_bytes: bytes per inference sample.
        schema: an explicit Arrow schema: no inference, no widening.
        threads: 1 for one thread, 2 to read and parse on a worker thread.

    Yields:
        Record batches, in input order.

    Example:
        >>> total = sum(b.num_rows for b in read_batches(path, block_size=1 << 16))
        >>> total
        3

    """
    src = os.fspath(src)
    given = _given(locals())
    opts = build_options(options, **given)
    source, threads = resolve_input(src, opts.read).threaded(
        opts.threads, block_chosen="block_size" in given)
    reader = source.reader()
    read_schema = source.schema(reader, opts.schema)
    with source.chunks(reader, read_schema, threads=threads, widen="continue") as (_, chunks):
        for chunk in chunks:
            yield from chunk.table.to_batches()


def transform(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
    contract: Contract | str | os.PathLike[str] | None = None,
    options: RunOptions | None = None, progress: Progress | None = None,
    format: str | None = None, input_compression: str | None = None,
    encoding: str | None = None, delimiter: str | None = None, quote_char: str | None = None,
    header: bool | None = None, column_names: Sequence[str] | None = None,
    null_values: Sequence[str] | None = None, json_path: str | None = None,
    block_size: int | None = None, max_record_bytes: int | None = None,
    sample_count: int | None = None, sample_bytes: int | None = None,
    byte_range: tuple[int, int] | None = None,
    compression: str | None = None, compression_level: int | None = None,
    row_group_bytes: int | None = None, row_group_rows: int | None = None,
    max_rows_per_file: int | None = None, max_bytes_per_file: int | None = None,
    part_size: int | None = None, dictionary_max_ratio: float | None = None,
    schema: pa.Schema | None = None, rejects_uri: str | None = None,
    max_restarts: int | None = None, threads: int | None = None,
    output_stem: str | None = None, mode: WriteMode | None = None,
) -> RunReport:
    """Convert ``src`` (CSV, NDJSON, a JSON array or Parquet; local or ``s3://``) to ``dst``.

    With ``contract`` (a :class:`engine.contract.Contract` or the path of its YAML), the
    contract's types and checks are enforced in the same pass, its transforms applied and its
    aggregate written. Into a directory (``dst`` ending in ``/``), files are named after the
    source and ``mode`` says what to do with other sources' files (docs/datasets.md).

    A failed run raises an :class:`engine.errors.EngineError` and leaves no output behind.

    Args:
        src: the input, as for :func:`read_batches` (whose reading keywords apply here too:
            ``format`` … ``max_record_bytes``).
        dst: a Parquet file, or a directory ending in ``/``; local or ``s3://``.
        contract: the dataset contract to enforce, or ``None``.
        options: a :class:`~engine.config.RunOptions` to start from; every keyword below
            overrides one of its fields (see :class:`~engine.config.ReadOptions`,
            :class:`~engine.config.WriteOptions`, :class:`~engine.config.RunOptions`), ``None``
            keeps it.
        progress: called after each chunk with (stored bytes read, stored size or ``None``).
        format: see :func:`read_batches`.
        input_compression: see :func:`read_batches`.
        encoding: see :func:`read_batches`.
        delimiter: see :func:`read_batches`.
        quote_char: see :func:`read_batches`.
        header: see :func:`read_batches`.
        column_names: see :func:`read_batches`.
        null_values: see :func:`read_batches`.
        json_path: see :func:`read_batches`.
        block_size: see :func:`read_batches`.
        max_record_bytes: see :func:`read_batches`.
        sample_count: see :func:`read_batches`.
        sample_bytes: see :func:`read_batches`.
        byte_range: read only the stored bytes ``[start, end)`` (a Map part); needs ``format``.
        compression: the Parquet codec: ``zstd`` (default), ``snappy``, ``gzip``, ``none``.
        compression_level: the codec's level.
        row_group_bytes: Arrow bytes buffered per row group.
        row_group_rows: most rows per row group.
        max_rows_per_file: rotate to a new file after this many rows.
        max_bytes_per_file: rotate after about this many output bytes.
        part_size: the S3 multipart part size.
        dictionary_max_ratio: string columns at most this distinct-to-rows ratio are
            dictionary-encoded.
        schema: an explicit Arrow schema: no inference, and a misfit is a SchemaError.
        rejects_uri: where rejected records go (NDJSON); ``None`` only counts them.
        max_restarts: how many column widenings (restarts) a run may make.
        threads: 1 for one thread, 2 to read and parse on a worker thread.
        output_stem: the name of what is written for the source (default: its own name).
        mode: into a directory, ``"error"`` (``None``), ``"append"`` or ``"replace"``: see
            :class:`~engine.config.RunOptions`; a re-run of a source replaces its own files.

    Returns:
        The :class:`~engine.report.RunReport`.

    Example:
        >>> report = transform(path, f"{tmp}/out.parquet")
        >>> report.rows_in == report.rows_out + report.rows_rejected + report.rows_filtered
        True

    """
    return _run(os.fspath(src), os.fspath(dst), options, _given(locals()), progress, contract)


def validate(
    src: str | os.PathLike[str], *, contract: Contract | str | os.PathLike[str],
    options: RunOptions | None = None, progress: Progress | None = None,
    format: str | None = None, input_compression: str | None = None,
    encoding: str | None = None, delimiter: str | None = None, quote_char: str | None = None,
    header: bool | None = None, column_names: Sequence[str] | None = None,
    null_values: Sequence[str] | None = None, json_path: str | None = None,
    block_size: int | None = None, max_record_bytes: int | None = None,
    sample_count: int | None = None, sample_bytes: int | None = None,
    threads: int | None = None,
) -> RunReport:
    """Check ``src`` against ``contract`` in one pass, writing nothing.

    The report's ``checks`` counts rejects by column and check, with a few examples each;
    ``status`` is ``"failed"`` when the rejects exceed the contract's thresholds. The reading
    keywords are those of :func:`read_batches`, and ``options``, ``progress`` and ``threads``
    those of :func:`transform`.

    Example:
        >>> validate(path, contract=contract_path).status
        'succeeded'

    """
    return _run(os.fspath(src), None, options, _given(locals()), progress, contract)


def _run(src: str, dst: str | None, options: RunOptions | None, given: dict[str, Any],
         progress: Progress | None, contract: Any) -> RunReport:
    started = time.perf_counter()
    clock = CLOCK.get()
    token = CLOCK.set(StageClock()) if clock is None else None
    try:
        with counting() as requests:
            report = _run_timed(src, dst, options, given, progress, contract, started)
        report.s3_requests = requests.to_dict()
        return report
    finally:
        if token is not None:
            CLOCK.reset(token)


def _run_timed(src: str, dst: str | None, options: RunOptions | None, given: dict[str, Any],
               progress: Progress | None, contract: Any, started: float) -> RunReport:
    clock = CLOCK.get()
    assert clock is not None
    plan, opts = OutputPlan.resolve(contract, src, dst, options, given)  # the mode's check
    with clock.measure("infer"):
        source, threads = resolve_input(src, opts.read).threaded(
            opts.threads, block_chosen="block_size" in given)
        opts = replace(opts, threads=threads)  # as settled for this input's size
        reader = source.reader()
        schema = source.schema(reader, opts.schema)
        source = source.inferred()  # the samples' memory back before the conversion
    widened: list[Widening] = []
    for attempt in range(opts.max_restarts + 1):
        try:
            report = _convert(source, plan, reader, schema, opts, progress, clock)
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


def _convert(source: ResolvedInput, plan: OutputPlan, reader: Reader, schema: pa.Schema,
             opts: RunOptions, progress: Progress | None, clock: StageClock) -> RunReport:
    src = source.uri
    stages: ContractStages | None = None
    if plan.contract is not None:
        from engine.enforce.stage import ContractStages  # contracts only: pydantic, compute

        stages = ContractStages(plan.contract, src, schema, source.null_markers)
    read_schema, strict = (stages.reader_schema, stages.strict) if stages else (schema, frozenset())
    out_schema = stages.output_schema if stages else schema
    rejects = RejectsFile(opts.rejects_uri if plan.dst is not None else None)
    rows_in = 0
    # Every file name the sink chooses (in a directory, by rotation, per partition) is checked
    # too: the output is renamed into place after the input was read. (The plan's own name
    # was, when the plan was prepared.)
    checked = plan.data_uri or plan.dst

    def check_uri(uri: str) -> None:
        if uri != checked:
            refuse_replacing(src, [uri])

    sink = plan.sink(out_schema, opts.write, check_uri=check_uri)
    published: list[ParquetSink] = []
    failed: ValidationError | None = None
    try:
        with source.chunks(reader, read_schema, threads=opts.threads, strict=strict,
                           clock=clock, ahead_bytes=parse_ahead_bytes(opts.write.row_group_bytes),
                           ) as (raw, chunks):
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
                    stages.check_thresholds(rows_in, rejects.count, final=False)
                if progress is not None:
                    progress(raw.raw_bytes_read, raw.size)
            bytes_in = raw.raw_bytes_read
        if stages is not None:
            stages.check_thresholds(rows_in, rejects.count, final=True)
        filtered = stages.filtered if stages else 0
        # The commit decision, before anything is published: every record read was given to
        # the sink, rejected or filtered, and the rejects file holds a line per reject. The
        # sinks check their files' footers against the rows given before publishing each one.
        if sink is not None:
            check_accounting(src, rows_in, sink.rows_written, rejects.count, filtered)
        rejects.check()
        aggregate = None
        if stages is not None and stages.aggregator is not None:
            aggregate = stages.write_aggregate(plan.aggregate_uri if plan.dst else None,
                                               opts.write, published)
        if sink is not None:
            with clock.measure("encode_write"):
                sink.commit()
        rejects.commit()
        plan.record(sink, opts.rejects_uri, aggregate is not None)  # a directory's manifest
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
        if plan.dst is not None or stages is None:
            raise failed
        return stages.failure_report(reader.format, rows_in, rejects, failed)
    files = sink.files if sink is not None else []
    rows_out = (sum(f.rows for f in files) if sink is not None
                else rows_in - rejects.count - filtered)
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
        # what inference decided for a column a contract does not type (CsvReader.inferences)
        inference=[d.to_dict() for d in getattr(reader, "inferences", ())
                   if d.column not in strict],
        rejects={"count": rejects.count, "uri": rejects.uri},
        files=[f.to_dict() for f in files],
        compression=opts.write.compression if sink is not None else None,
        dataset=plan.finish(),  # a re-run's earlier files, replace's other files: deleted
        ephemeral_bytes=getattr(sink, "spool_peak_bytes", 0),  # a partitioned S3 output's spool
    )
    if stages is not None:
        stages.describe(report)
        report.aggregate = aggregate
    return report
