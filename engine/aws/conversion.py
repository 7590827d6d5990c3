"""Converting a file, or one byte range of it, to Parquet in the processed bucket.

What the transform step does, apart from the state machine's plumbing:

- **layout**: outputs go to ``s3://PROCESSED_BUCKET/<dataset or key folder>/``:
  ``<stem>.parquet`` from one Lambda, ``<stem>-part-00000.parquet``... from a Map (a contract
  with ``partition_by`` writes Hive directories there instead, files named after the same
  stem), ``<stem>.manifest.json`` beside them, where ``<stem>`` is the object's file name
  without extension. The keys are deterministic: a retried or replayed step overwrites.
- **the object is the one announced**: :func:`require_current` before reading it.
- **time**: a :class:`~engine.aws.deadline.Deadline` before and during the conversion.
- **threads**: one in a Lambda of less than one vCPU
  (:func:`engine.runtime.threads.lambda_threads`).
- **ranges**: streamed by the engine from S3 (``byte_range``, :func:`convert_range`).
- **parts entries**: the engine's report plus the SHA-256 of every file written
  (:func:`part_entry`).
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import engine
from engine import io
from engine.aws import routing
from engine.aws.deadline import Deadline
from engine.aws.settings import Settings
from engine.config import MiB, ReadOptions, build_options
from engine.errors import EngineError, InputNotFoundError, TransientError
from engine.report import RunReport

if TYPE_CHECKING:
    from engine.contract import Contract

__all__ = [
    "COPY_CHUNK_BYTES",
    "check_locations",
    "RemainingMs",
    "contract_of",
    "convert_object",
    "convert_range",
    "copy_range",
    "destination",
    "hash_object",
    "object_uri",
    "output_base",
    "part_entry",
    "part_name",
    "read_options",
    "require_current",
    "stem",
]

#: Bytes per read when copying a range to local storage or hashing an output.
COPY_CHUNK_BYTES = 1 * MiB

RemainingMs = Callable[[], int]




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


def stem(key: str) -> str:
    """The object's file name without compression suffix and extension (as the engine names)."""
    name = posixpath.basename(io.strip_compression_suffix(key).rstrip("/")) or "part"
    return posixpath.splitext(name)[0] or "part"


def output_base(state: Mapping[str, Any], contract: Contract | None,
                settings: Settings) -> str:
    """The processed bucket's folder for the state's outputs (ends with ``/``)."""
    bucket = settings.require("processed_bucket")
    prefix = routing.output_prefix(state["key"], contract).strip("/")
    return f"s3://{bucket}/{prefix}/" if prefix else f"s3://{bucket}/"


def destination(base: str, contract: Contract | None, name: str) -> str:
    """A file URI, or the directory for a contract that partitions its output."""
    if contract is not None and contract.output.partition_by:
        return base
    return f"{base}{name}.parquet"


def part_name(key: str, index: int) -> str:
    """The stem of a Map part's output: ``<stem>-part-00000``."""
    return f"{stem(key)}-part-{index:05d}"


def check_locations(state: Mapping[str, Any], contract: Contract | None, dst: str,
                    settings: Settings, stem_name: str) -> None:
    """Refuse a contract that reads or writes outside the configured buckets, before any data.

    The outputs (data, ``rejects.path``, ``aggregate.path``, resolved as the engine will) must be
    in the processed bucket; ``enrich`` reference tables in the processed bucket, the contracts'
    bucket or the event's bucket (:meth:`Settings.check_source`).

    Raises:
        ContractError: naming the offending key and URI (routed to the DLQ).
    """
    from engine.plan import OutputPlan  # the engine's resolution of output paths

    source = contract.source_path if contract is not None else None
    plan = OutputPlan.load(contract, object_uri(state), dst, stem_name)
    for uri, where in ((dst, "output"), (plan.data_uri, "output"),
                       (plan.rejects_uri, "rejects.path"),
                       (plan.aggregate_uri, "aggregate.path")):
        if uri:
            settings.check_output(uri, where, contract=source)
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
    from engine.io.s3 import s3_errors  # boto3 and smart-open load when S3 is first used

    bucket, key = io.split_s3(uri)
    with s3_errors(uri):
        body = io.s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        try:
            for chunk in body.iter_chunks(COPY_CHUNK_BYTES):
                digest.update(chunk)
        finally:
            body.close()
    return digest.hexdigest()


def part_entry(index: int, report: RunReport) -> dict[str, Any]:
    """One ``parts`` entry from the engine's report, with the SHA-256 of every file written."""
    files = [{"uri": f["uri"], "rows": f["rows"], "bytes": f["bytes"],
              "sha256": hash_object(f["uri"])} for f in report.files]
    if len(files) == 1:
        sha256 = files[0]["sha256"]
    else:  # several files (rotation, partitions): a digest of the sorted (uri, digest) pairs
        ordered = sorted(files, key=lambda f: f["uri"])
        lines = "".join(f"{f['uri']} {f['sha256']}\n" for f in ordered)
        sha256 = hashlib.sha256(lines.encode()).hexdigest()
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
        "peak_rss_bytes": report.peak_rss_bytes,
        "sha256": sha256,
        "files": files,
        "schema": report.schema,
        "rejects_uri": report.rejects.get("uri") if report.rows_rejected else None,
    }


def convert_object(state: Mapping[str, Any], settings: Settings,
                   remaining_ms: RemainingMs | None, *, index: int, name: str) -> dict[str, Any]:
    """The whole object in one conversion, read by the engine straight from S3."""
    uri = object_uri(state)
    contract = contract_of(state)
    read = read_options(contract, state.get("format"))
    deadline = Deadline(remaining_ms, min_throughput=settings.min_throughput)
    compressed = (read.input_compression or io.infer_compression(uri)) != "none"
    deadline.check_budget(int(state.get("size") or 0), f"convert {uri}", compressed=compressed)
    require_current(state)
    dst = destination(output_base(state, contract, settings), contract, name)
    check_locations(state, contract, dst, settings, name)
    kwargs: dict[str, Any] = {"format": read.format} if read.format else {}
    report = engine.transform(uri, dst, contract=contract, progress=deadline.progress,
                              **kwargs)
    return part_entry(index, report)


def convert_range(state: Mapping[str, Any], rng: Mapping[str, int], settings: Settings,
                  remaining_ms: RemainingMs | None = None) -> dict[str, Any]:
    """Convert one planned range to the part ``<stem>-part-<index>``; return its parts entry.

    The engine streams the range straight from S3 (``byte_range``): a CSV range after the
    first is read with the header's column names (``header=False, column_names=...``), a JSON
    range as a top-level array of its elements. Every range is parsed with the schema inferred
    from samples across the whole object, the same the single-Lambda conversion starts from,
    so all parts share one schema; a later value that does not fit it is a SchemaError (a
    single conversion would widen the column and restart; give such a dataset a contract). A
    range covering the whole object (an object that could not be split) is converted directly.
    """
    index, start, end = int(rng["index"]), int(rng["start"]), int(rng["end"])
    name = part_name(state["key"], index)
    size = int(state.get("size") or 0)
    if start == 0 and end >= size:
        return convert_object(state, settings, remaining_ms, index=index, name=name)
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
    schema = source.schema(source.reader())
    options: dict[str, Any] = {"format": fmt, "schema": schema, "byte_range": (start, end),
                               "output_stem": name}
    if fmt == "csv" and start > 0:
        options.update(header=False, column_names=tuple(schema.names))
    dst = destination(output_base(state, contract, settings), contract, name)
    check_locations(state, contract, dst, settings, name)
    report = engine.transform(uri, dst, contract=contract, progress=deadline.progress, **options)
    return part_entry(index, report)


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
