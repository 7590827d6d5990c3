"""Converting a file, or one byte range of it, to Parquet in the processed bucket.

What the transform step does, apart from the state machine's plumbing:

- **layout**: outputs go to the dataset's table location in the processed bucket, named after
  the object and its identity (:mod:`engine.aws.layout`). The names are deterministic: a retried
  or replayed step overwrites its own files and no other object's.
- **the dataset's schema**: without a contract, a file of a dataset that has a catalog table is
  read with the table's types (:mod:`engine.aws.evolution`, the state's ``dataset`` entry that
  validate put there), so every file of the dataset holds each column in one type.
- **the object is the one announced**: :func:`require_current` before reading it.
- **time**: a :class:`~engine.aws.deadline.Deadline` before and during the conversion.
- **memory**: the process's peak RSS is reset when the conversion starts, so the figure is this
  invocation's (``PEAK_RSS_SCOPE``: the process's peak, or its growth over the start).
- **threads**: one in a Lambda of less than one vCPU
  (:func:`engine.runtime.threads.lambda_threads`).
- **ranges**: streamed by the engine from S3 (``byte_range``, :func:`convert_range`).
- **parts entries**: the engine's report plus the SHA-256 of every file written and the partition
  each file is in (:func:`part_entry`); :func:`parquet_schema` reads a written file's schema
  back from its footer (for the catalog, at the output step).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

import engine
from engine import io
from engine.aws import catalog, evolution, routing
from engine.aws.deadline import Deadline
from engine.aws.layout import destination, hidden, output_base, output_stem, part_name
from engine.aws.settings import Settings
from engine.config import MiB, ReadOptions, build_options
from engine.errors import EngineError, InputNotFoundError, SchemaError, TransientError
from engine.io.requests import counting
from engine.report import RunReport
from engine.runtime.memory import reset_peak_rss, rss_bytes

if TYPE_CHECKING:
    from engine.contract import Contract

__all__ = [
    "COPY_CHUNK_BYTES",
    "RemainingMs",
    "check_locations",
    "contract_of",
    "convert_object",
    "convert_range",
    "copy_range",
    "hash_object",
    "object_uri",
    "parquet_schema",
    "part_entry",
    "read_options",
    "require_current",
]

#: Bytes per read when copying a range to local storage or hashing an output.
COPY_CHUNK_BYTES = 1 * MiB

RemainingMs = Callable[[], int]

#: Bytes of a Parquet file's end read at first for its footer (most footers fit).
_FOOTER_GUESS = 64 * 1024


def object_uri(state: Mapping[str, Any]) -> str:
    """``s3://bucket/key`` of the state's object."""
    return f"s3://{state['bucket']}/{state['key']}"


def contract_of(state: Mapping[str, Any]) -> Contract | None:
    """The state's contract (loaded once per process), or ``None``."""
    uri = state.get("contract")
    return routing.get_contract(uri) if uri else None


def read_options(contract: Contract | None, fmt: str | None = None) -> ReadOptions:
    """The read options a contract sets, with the format found by validate."""
    overrides = contract.read_overrides() if contract is not None else {}
    if fmt:
        overrides["format"] = fmt
    return build_options(None, **overrides).read


def require_current(state: Mapping[str, Any]) -> None:
    """Raise unless the object under the key is still the one the event announced.

    The engine reads the key's current object. If the key was overwritten since the event, the
    newer object has an execution of its own and this one must not convert it under the old
    ``file_id``: one ``HeadObject`` compares the version (or, unversioned, the ETag).

    Raises:
        InputNotFoundError: the object is gone or was replaced (routed to the DLQ).
        TransientError: S3 throttling or a network failure.
    """
    uri = object_uri(state)
    try:
        head = io.s3_client().head_object(Bucket=state["bucket"], Key=state["key"])
    except Exception as exc:
        mapped = io.map_s3_error(exc, uri)
        if mapped is None:
            raise
        raise mapped from exc
    version, etag = head.get("VersionId"), str(head.get("ETag") or "").strip('"')
    if state.get("version") and version and version != state["version"]:
        changed = f"version {state['version']} is no longer current (now {version})"
    elif not state.get("version") and state.get("etag") and etag and etag != state["etag"]:
        changed = f"ETag {state['etag']} is no longer current (now {etag})"
    else:
        return
    raise InputNotFoundError(f"the object was overwritten after the event: {changed}; the new "
                             "object is converted by its own execution", uri=uri)


def check_locations(state: Mapping[str, Any], contract: Contract | None, dst: str,
                    settings: Settings, stem_name: str) -> None:
    """Refuse a contract that reads or writes outside the configured places, before any data.

    The outputs (data, ``rejects.path``, ``aggregate.path``, resolved as the engine will) must be
    in the processed bucket, and the rejects and the aggregate not among the data: inside the
    table location only under a folder starting with ``_`` (:func:`engine.aws.layout.hidden`),
    where query engines do not read them. ``enrich`` reference tables must be in the processed
    bucket, the contracts' bucket or the event's bucket (:meth:`Settings.check_source`).

    Raises:
        ContractError: naming the offending key and URI (routed to the DLQ).
    """
    from engine.errors import ContractError
    from engine.plan import OutputPlan  # the engine's resolution of output paths

    source = contract.source_path if contract is not None else None
    plan = OutputPlan.load(contract, object_uri(state), dst, stem_name)
    for uri, where in ((dst, "output"), (plan.data_uri, "output"),
                       (plan.rejects_uri, "rejects.path"),
                       (plan.aggregate_uri, "aggregate.path")):
        if uri:
            settings.check_output(uri, where, contract=source)
    base = output_base(state, contract, settings)
    for uri, where in ((plan.rejects_uri, "rejects.path"), (plan.aggregate_uri,
                                                            "aggregate.path")):
        if uri and not hidden(uri, base):
            raise ContractError(f"{where}: {uri} is inside the table location {base}, where "
                                "Athena, Glue and pyarrow.dataset would read it as data; use a "
                                "folder whose name starts with _ (e.g. _rejects/)", uri=source)
    for index, step in enumerate(contract.transforms if contract is not None else []):
        if step.kind == "enrich":
            assert contract is not None
            settings.check_source(contract.resolve(step.enrich.path),
                                  f"transforms[{index}].enrich.path", extra=[state["bucket"]],
                                  contract=source)


def hash_object(uri: str) -> str:
    """SHA-256 of a written output, streamed back from S3 (or the local file)."""
    digest = hashlib.sha256()
    if not io.is_s3(uri):
        with open(uri, "rb") as fh:
            for chunk in iter(lambda: fh.read(COPY_CHUNK_BYTES), b""):
                digest.update(chunk)
        return digest.hexdigest()
    from engine.io.s3 import s3_errors  # botocore loads when S3 is first used

    bucket, key = io.split_s3(uri)
    with s3_errors(uri):
        body = io.s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        try:
            for chunk in body.iter_chunks(COPY_CHUNK_BYTES):
                digest.update(chunk)
        finally:
            body.close()
    return digest.hexdigest()


def parquet_schema(uri: str, size: int) -> pa.Schema:
    """The Arrow schema of a written Parquet file, from its footer (one or two ranged reads)."""
    import pyarrow.parquet as pq

    tail = io.read_range(uri, max(0, size - _FOOTER_GUESS), min(size, _FOOTER_GUESS))
    if len(tail) < 8 or tail[-4:] != b"PAR1":
        raise EngineError("not a Parquet file (no PAR1 at its end)", uri=uri)
    footer = int.from_bytes(tail[-8:-4], "little") + 8
    if footer > len(tail):
        tail = io.read_range(uri, size - footer, footer)
    # the footer alone, after the leading magic, is what the reader needs for the schema
    return pq.read_schema(pa.BufferReader(b"PAR1" + tail[-footer:]))


def part_entry(index: int, report: RunReport, *, baseline_rss: int | None = None
               ) -> dict[str, Any]:
    """One ``parts`` entry from the engine's report, with what the output step needs.

    Each file with its SHA-256 and, for partitioned output, its ``partition`` (column → text,
    ``None`` for null). ``peak_rss_bytes`` is the report's, less ``baseline_rss`` when given
    (the ``growth`` scope). ``s3_requests`` is the report's count by kind plus the reads of the
    outputs back for their SHA-256 (one ``GetObject`` each).
    """
    files = []
    with counting() as hashing:
        for f in report.files:
            entry = {"uri": f["uri"], "rows": f["rows"], "bytes": f["bytes"],
                     "sha256": hash_object(f["uri"])}
            if f.get("partition") is not None:
                entry["partition"] = f["partition"]
            files.append(entry)
    by_kind = dict(report.s3_requests)
    for kind, n in hashing.to_dict().items():
        by_kind[kind] = by_kind.get(kind, 0) + n
    if len(files) == 1:
        sha256 = files[0]["sha256"]
    else:  # several files (rotation, partitions): a digest of the sorted (uri, digest) pairs
        ordered = sorted(files, key=lambda f: f["uri"])
        lines = "".join(f"{f['uri']} {f['sha256']}\n" for f in ordered)
        sha256 = hashlib.sha256(lines.encode()).hexdigest()
    peak = report.peak_rss_bytes
    if baseline_rss is not None:
        peak = max(0, peak - baseline_rss)
    return {
        "index": index,
        "uri": report.output,
        "rows_in": report.rows_in,
        "rows_out": report.rows_out,
        "rows_rejected": report.rows_rejected,
        "rows_filtered": report.rows_filtered,
        "bytes_in": report.bytes_in,
        "bytes_out": report.bytes_out,
        "seconds": report.seconds,
        "peak_rss_bytes": peak,
        "sha256": sha256,
        "files": files,
        "schema": report.schema,
        "rejects_uri": report.rejects.get("uri") if report.rows_rejected else None,
        "s3_requests": dict(sorted(by_kind.items())),
    }


def _start_measuring(settings: Settings) -> int | None:
    """Reset the process's peak RSS for this conversion; the baseline of the ``growth`` scope.

    Arrow's pool gives back what it holds unused first, so that memory kept from an earlier
    invocation of a warm process is not counted as this one's.
    """
    pa.default_memory_pool().release_unused()
    baseline = rss_bytes()
    if not reset_peak_rss() or settings.peak_rss_scope != "growth":
        return None
    return baseline


def _dataset_schema(state: Mapping[str, Any], contract: Contract | None) -> pa.Schema | None:
    """The dataset's schema from the state (validate's snapshot of the catalog table).

    ``None`` for a file with a contract (the contract is the schema) or a dataset with no table.
    """
    entry = state.get("dataset")
    if contract is not None or not isinstance(entry, Mapping) or not entry.get("schema"):
        return None
    return catalog.decode_schema(entry["schema"])


def _mode(dst: str) -> str:
    """The engine's write mode for ``dst``.

    A file is this version's own (a retry replaces it); into a partitioned table location,
    other sources' files stay, and a retry replaces only its own (the engine's manifest).
    """
    return "append" if dst.endswith("/") else "replace"


def _transform(state: Mapping[str, Any], uri: str, dst: str, contract: Contract | None,
               deadline: Deadline, dataset: pa.Schema | None, file_schema: pa.Schema | None,
               **options: Any) -> RunReport:
    """``engine.transform``, its misfit errors named in the dataset's terms."""
    try:
        return engine.transform(uri, dst, contract=contract, progress=deadline.progress,
                                **options)
    except SchemaError as exc:
        if dataset is None or file_schema is None:
            raise
        raise evolution.with_dataset_types(exc, dataset, file_schema,
                                           dataset_name=str(state["dataset"]["name"])) from None


def convert_object(state: Mapping[str, Any], settings: Settings,
                   remaining_ms: RemainingMs | None, *, index: int,
                   name: str | None = None) -> dict[str, Any]:
    """The whole object in one conversion, read by the engine straight from S3.

    Without a contract, in a dataset that has a schema, the file is read with the dataset's
    types (:func:`engine.aws.evolution.read_schema` of the file's inferred schema).

    Raises:
        SchemaError: a column the dataset cannot take (naming both types), or see the engine.
    """
    name = name or output_stem(state)
    baseline = _start_measuring(settings)
    uri = object_uri(state)
    contract = contract_of(state)
    read = read_options(contract, state.get("format"))
    deadline = Deadline(remaining_ms, min_throughput=settings.min_throughput)
    compressed = (read.input_compression or io.infer_compression(uri)) != "none"
    deadline.check_budget(int(state.get("size") or 0), f"convert {uri}", compressed=compressed)
    require_current(state)
    dst = destination(output_base(state, contract, settings), contract, name)
    check_locations(state, contract, dst, settings, name)
    options: dict[str, Any] = {"output_stem": name, "mode": _mode(dst)}
    if read.format:
        options["format"] = read.format
    dataset, file_schema = _dataset_schema(state, contract), None
    if dataset is not None:
        from engine.readers.sampling import resolve_input  # the engine's inference, as it runs

        source = resolve_input(uri, read)
        file_schema = source.schema(source.reader())
        options["schema"] = evolution.read_schema(dataset, file_schema,
                                                  dataset_name=str(state["dataset"]["name"]))
    report = _transform(state, uri, dst, contract, deadline, dataset, file_schema, **options)
    return part_entry(index, report, baseline_rss=baseline)


def convert_range(state: Mapping[str, Any], rng: Mapping[str, int], settings: Settings,
                  remaining_ms: RemainingMs | None = None) -> dict[str, Any]:
    """Convert one planned range to the part ``<name>-part-<index>``; return its parts entry.

    The engine streams the range straight from S3 (``byte_range``): a CSV range after the
    first is read with the header's column names (``header=False, column_names=...``), a JSON
    range as a top-level array of its elements. Every range is parsed with the schema inferred
    from samples across the whole object, the same the single-Lambda conversion starts from
    (and, without a contract, with the dataset's types, as :func:`convert_object`), so all parts
    share one schema; a later value that does not fit it is a SchemaError (a single conversion
    would widen the column and restart; give such a dataset a contract). A range covering the
    whole object (an object that could not be split) is converted directly.
    """
    index, start, end = int(rng["index"]), int(rng["start"]), int(rng["end"])
    name = part_name(state, index)
    size = int(state.get("size") or 0)
    if start == 0 and end >= size:
        return convert_object(state, settings, remaining_ms, index=index, name=name)
    baseline = _start_measuring(settings)
    uri = object_uri(state)
    contract = contract_of(state)
    read = read_options(contract, state.get("format"))
    fmt = read.format
    if fmt is None:
        raise ValueError(f"a range of {uri} needs the format found by validate")
    deadline = Deadline(remaining_ms, min_throughput=settings.min_throughput)
    deadline.check_budget(end - start, f"convert bytes {start}-{end} of {uri}")
    require_current(state)
    from engine.readers.sampling import resolve_input  # the engine's own: one schema for all

    source = resolve_input(uri, read)
    file_schema = schema = source.schema(source.reader())
    dataset = _dataset_schema(state, contract)
    if dataset is not None:
        schema = evolution.read_schema(dataset, file_schema,
                                       dataset_name=str(state["dataset"]["name"]))
    dst = destination(output_base(state, contract, settings), contract, name)
    options: dict[str, Any] = {"format": fmt, "schema": schema, "byte_range": (start, end),
                               "output_stem": name, "mode": _mode(dst)}
    if fmt == "csv" and start > 0:
        options.update(header=False, column_names=tuple(schema.names))
    check_locations(state, contract, dst, settings, name)
    report = _transform(state, uri, dst, contract, deadline, dataset, file_schema, **options)
    return part_entry(index, report, baseline_rss=baseline)


def copy_range(uri: str, start: int, end: int, path: str, *, version: str | None = None,
               prefix: bytes = b"", suffix: bytes = b"") -> int:
    """Copy bytes ``[start, end)`` of ``uri`` to the local file ``path``, between two framings.

    On S3 one ranged ``GetObject`` of the given version (so that the bytes are those planned,
    even if the key was overwritten since), streamed in 1 MiB pieces.

    Returns:
        The bytes written.

    Raises:
        TransientError: S3 failures, or fewer bytes than asked for.
        InputNotFoundError: the object (version) is gone.
    """
    written = 0
    with open(path, "wb") as out:
        out.write(prefix)
        if end > start and io.is_s3(uri):
            bucket, key = io.split_s3(uri)
            kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key,
                                      "Range": f"bytes={start}-{end - 1}"}
            if version:
                kwargs["VersionId"] = version
            try:
                body = io.s3_client().get_object(**kwargs)["Body"]
                try:
                    for chunk in body.iter_chunks(COPY_CHUNK_BYTES):
                        out.write(chunk)
                        written += len(chunk)
                finally:
                    body.close()
            except EngineError:
                raise
            except Exception as exc:
                mapped = io.map_s3_error(exc, uri, offset=start + written)
                if mapped is None:
                    raise
                raise mapped from exc
        elif end > start:
            with open(uri[7:] if uri.startswith("file://") else uri, "rb") as src:
                src.seek(start)
                while written < end - start:
                    chunk = src.read(min(COPY_CHUNK_BYTES, end - start - written))
                    if not chunk:
                        break
                    out.write(chunk)
                    written += len(chunk)
        out.write(suffix)
    if written != end - start:
        raise TransientError(f"short read: {written} of {end - start} bytes from byte {start}",
                             uri=uri, offset=start + written)
    return written
