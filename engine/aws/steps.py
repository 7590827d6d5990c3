"""The pipeline's steps: what each Lambda handler calls.

Every step takes the state (``docs/pipeline.md``, "The state passed between states") and returns
it with its own keys added, so each handler is a function of one JSON object::

    ingest           event → bucket, key, version, etag, size, file_id, contract, route,
                     received_at                                             (record RECEIVED)
    validate_head    → format, columns, dataset (its Glue table, its schema) (record VALIDATED)
    plan             → ranges, map_max_concurrency              (route "map" only)
    transform        → parts (one entry), or one parts entry for a Map item (record TRANSFORMED)
    output           → output: the manifest's URI, totals, catalog          (record SUCCEEDED)
    handle_error     records FAILED with the caught error's type and message
    route_to_dlq     the same, plus an SQS message with everything needed to replay the file

Errors are the engine's (:mod:`engine.errors`); their class names are what the state machine's
``Retry`` and ``Catch`` match. Settings come from the environment unless given
(:class:`~engine.aws.settings.Settings`), AWS clients from
:func:`~engine.aws.clients.default_clients`.

The conversion itself (time checks, ranges, checksums) is in :mod:`engine.aws.conversion`, where
outputs go in :mod:`engine.aws.layout`, what the output step commits (manifest, catalog table,
the previous version's files) in :mod:`engine.aws.commit`; the failure records and DLQ messages
in :mod:`engine.aws.failures`.
"""

from __future__ import annotations

import codecs
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from engine import io
from engine.aws import catalog, commit, failures, layout, metadata, routing
from engine.aws.clients import Clients, default_clients
from engine.aws.conversion import (
    RemainingMs,
    contract_of,
    convert_object,
    convert_range,
    object_uri,
    read_options,
    require_current,
)
from engine.aws.deadline import Deadline
from engine.aws.events import initial_state
from engine.aws.planning import plan_byte_ranges, splittable
from engine.aws.settings import Settings
from engine.config import MiB, ReadOptions
from engine.errors import EngineError, InputFormatError, SchemaError, TransientError
from engine.readers import Sample
from engine.readers.magic import known_binary
from engine.readers.sampling import reader_for

__all__ = [
    "HEAD_BYTES",
    "handle_error",
    "ingest",
    "manifest_uri",
    "output",
    "plan",
    "published",
    "route_to_dlq",
    "transform",
    "transform_range",
    "unpublish",
    "validate_head",
]

log = logging.getLogger(__name__)

#: Bytes of the (decompressed) head that validate reads: the header and the first records.
HEAD_BYTES = 1 * MiB

# ---------------------------------------------------------------------------------------------
# Shared helpers


def _table(settings: Settings, clients: Clients) -> Any:
    return clients.table(settings.require("metadata_table"))


def dataset_entry(state: Mapping[str, Any], settings: Settings, clients: Clients, *,
                  schema: bool = False) -> dict[str, Any] | None:
    """The state's ``dataset`` entry (:func:`engine.aws.catalog.snapshot`).

    ``None`` without ``GLUE_DATABASE``. ``schema``: read the table's schema too (for a file
    without a contract).
    """
    if not settings.glue_database:
        return None
    contract = contract_of(state)
    return catalog.snapshot(clients.glue, settings.glue_database,
                            layout.dataset_folder(state["key"], contract),
                            layout.output_base(state, contract, settings), schema=schema)


# ---------------------------------------------------------------------------------------------
# Ingest


def file_wide(contract: Any) -> bool:
    """Whether a contract keeps state across the whole file.

    An aggregate, a ``unique`` column or a ``dedupe`` step need every row of the file in one
    pass, so such a file is not split over a Map, whose parts cannot see each other's rows: it
    runs in one Lambda (memory stays bounded; the remaining-time check guards the duration).
    """
    if contract is None:
        return False
    return (contract.aggregate is not None
            or any(spec.unique for spec in contract.columns.values())
            or any(step.kind == "dedupe" for step in contract.transforms))


def ingest(event: Any, settings: Settings | None = None, clients: Clients | None = None, *,
           now: datetime | None = None) -> dict[str, Any]:
    """Parse the event, choose the contract and the route, and claim the file.

    The claim is the last call, so that a retried ingest (after a throttled listing of the
    contracts, say) does not find its own claim and take itself for a duplicate.

    Returns:
        The initial state with ``contract``, ``route`` (``skip`` for a file already claimed,
        ``map`` for a splittable object over ``MAX_SINGLE_BYTES``, else ``single``) and
        ``received_at``.

    Raises:
        InputFormatError: not an S3 Object Created event.
        ContractError: a contract under ``CONTRACTS_URI`` is invalid.
        TransientError: S3 or DynamoDB throttling.
    """
    settings = settings or Settings.from_env()
    clients = clients or default_clients()
    state = initial_state(event)
    uri = object_uri(state)
    if state["size"] is None:
        state["size"] = io.object_size(uri)
    contract_uri = routing.contract_for(state["key"], settings.contracts_uri)
    contract = routing.get_contract(contract_uri) if contract_uri else None
    large = state["size"] > settings.max_single_bytes
    split = large and splittable(uri, read_options(contract)) and not file_wide(contract)
    route = "map" if split else "single"
    received = now or metadata.now_utc()
    state.update(contract=contract_uri, route=route, received_at=metadata.iso(received))
    if not metadata.claim(_table(settings, clients), state, now=received):
        state["route"] = "skip"
    return state


# ---------------------------------------------------------------------------------------------
# Validate


def _read_head(uri: str, size: int | None, read: ReadOptions) -> tuple[bytes, bool]:
    """The first HEAD_BYTES of the decompressed object, and whether that is all of it."""
    compression = read.input_compression or io.infer_compression(uri)
    if compression == "none":
        head = io.read_range(uri, 0, HEAD_BYTES)
        at_end = len(head) < HEAD_BYTES or (size is not None and size <= HEAD_BYTES)
        return head, at_end
    with io.open_input(uri, compression) as stream:
        head = stream.read(HEAD_BYTES + 1)
    return head[:HEAD_BYTES], len(head) <= HEAD_BYTES


def _utf8_head(head: bytes, encoding: str, uri: str, at_end: bool) -> bytes:
    """The head as UTF-8 without a BOM; an undecodable byte is an InputFormatError."""
    codec = codecs.lookup(encoding).name
    decoder = codecs.getincrementaldecoder(codec)("strict")
    try:
        text = decoder.decode(head, final=at_end)  # a character cut at the end is not an error
    except UnicodeDecodeError as exc:
        raise InputFormatError(
            f"bytes are not valid {codec} ({exc.reason}); set options.encoding in the contract",
            uri=uri, offset=exc.start) from None
    return text.removeprefix("\ufeff").encode("utf-8")


def validate_head(state: Mapping[str, Any], settings: Settings | None = None,
                  clients: Clients | None = None) -> dict[str, Any]:
    """Check the head of the object against its contract, before the expensive step.

    One ranged read of the first MiB (decompressed): its encoding, its format (the contract's,
    else detected), its header or fields, and with a contract the columns: a missing required
    column, or an extra one under ``extra_columns: reject``, fails here as it would in the
    conversion.

    With a Glue database (``GLUE_DATABASE``), the state also gets ``dataset``: the dataset's
    table and, for a file without a contract, the table's schema, which the transform reads the
    file with (:mod:`engine.aws.evolution`). It is looked up once here, before the Map's parts
    fork, so that every part reads with the same schema.

    Returns:
        The state with ``format``, ``columns`` (as the reader sees them) and ``dataset``.

    Raises:
        InputFormatError: undecodable bytes, not CSV/JSON, a malformed head.
        SchemaError: the columns do not fit the contract.
        InputNotFoundError: the object is gone.
        UsageError: the dataset's table name is another location's table.
    """
    settings = settings or Settings.from_env()
    clients = clients or default_clients()
    uri = object_uri(state)
    require_current(state)
    contract = contract_of(state)
    read = read_options(contract)
    head, at_end = _read_head(uri, state.get("size"), read)
    if known_binary(head) is not None:  # Parquet is read, other binary formats refused by name
        text, reader = head, reader_for(uri, read, head)
    else:
        text = _utf8_head(head, read.encoding, uri, at_end)
        reader = reader_for(uri, read, text)  # the engine's choice of reader (TSV suffix, format)
    fmt = reader.format
    schema = reader.infer_schema([Sample(text, True, at_end)])
    if contract is not None and (len(schema) or at_end):
        from engine.enforce.validate import Validator

        Validator(contract, uri).reader_schema(schema)
    entry = dataset_entry(state, settings, clients, schema=contract is None)
    metadata.update_status(_table(settings, clients), state["file_id"], metadata.VALIDATED,
                           format=fmt)
    out = {**state, "format": fmt, "columns": list(schema.names)}
    if entry is not None:
        out["dataset"] = entry
    return out


# ---------------------------------------------------------------------------------------------
# Plan


def plan(state: Mapping[str, Any], settings: Settings | None = None,
         clients: Clients | None = None, *,
         remaining_ms: RemainingMs | None = None) -> dict[str, Any]:
    """Split the object into record-aligned ranges of about ``RANGE_BYTES`` (see planning).

    The state also gets ``map_max_concurrency`` (``MAP_MAX_CONCURRENCY``): how many ranges
    the Map converts at once, which the state machine reads from here (``MaxConcurrencyPath``).

    Raises:
        InputFormatError: no record boundary near a cut (an unbalanced quote?).
        TransientError: S3 failures, or not enough time left for the scan.
    """
    settings = settings or Settings.from_env()
    contract = contract_of(state)
    fmt = state.get("format") or read_options(contract).format or "csv"
    read = read_options(contract, fmt)
    deadline = Deadline(remaining_ms, min_throughput=settings.min_throughput)
    require_current(state)
    ranges = plan_byte_ranges(object_uri(state), fmt, int(state["size"]), settings.range_bytes,
                              options=read, deadline=deadline)
    return {**state, "ranges": ranges, "map_max_concurrency": settings.map_max_concurrency}


# ---------------------------------------------------------------------------------------------
# Transform


def transform(event: Mapping[str, Any], settings: Settings | None = None,
              clients: Clients | None = None, *, range: Mapping[str, int] | None = None,  # noqa: A002
              remaining_ms: RemainingMs | None = None) -> dict[str, Any]:
    """Convert the object to Parquet in the processed bucket (one Lambda, or one Map range).

    ``event`` is the state, or a Map item ``{"state": ..., "range": ...}`` (as the state
    machine's ``ItemSelector`` builds it), or the state with ``range`` given.

    Before starting, the time the conversion is predicted to take (size at ``MIN_THROUGHPUT``)
    is checked against the Lambda's remaining time, and while converting the measured
    throughput is: a conversion that cannot finish stops with a TransientError and publishes
    nothing, rather than being killed at the timeout.

    Returns:
        The state with ``parts`` (one entry) for the whole object, or the one ``parts`` entry of
        a range: ``index``, ``uri``, ``rows_in``, ``rows_out``, ``rows_rejected``,
        ``rows_filtered``, ``bytes_out``, ``seconds``, ``peak_rss_bytes``, ``sha256``, plus
        ``files`` (each output file with its rows, bytes and SHA-256), ``schema`` and
        ``rejects_uri``.

    Raises:
        ValidationError: too many rejects; SchemaError, InputFormatError: see the engine.
        TransientError: S3 failures, or not enough time left.
    """
    if range is None and isinstance(event.get("state"), Mapping) and "range" in event:
        event, range = event["state"], event["range"]
    if range is not None:
        return transform_range(event, range, settings, clients, remaining_ms=remaining_ms)
    settings = settings or Settings.from_env()
    clients = clients or default_clients()
    state = dict(event)
    entry = convert_object(state, settings, remaining_ms, index=0)
    try:
        metadata.update_status(
            _table(settings, clients), state["file_id"], metadata.TRANSFORMED,
            **{k: entry.get(k) for k in ("rows_in", "rows_out", "rows_rejected",
                                         "rows_filtered", "bytes_out", "peak_rss_bytes",
                                         "s3_requests")})
    except BaseException:
        # the step fails, so what it published must go: a retry writes it again, and a file
        # whose retries run out leaves nothing behind (its record says FAILED)
        _unpublish_quietly(published(state, settings, [entry], manifest=False))
        raise
    state["parts"] = [entry]
    return state


def transform_range(state: Mapping[str, Any], rng: Mapping[str, int],
                    settings: Settings | None = None, clients: Clients | None = None, *,
                    remaining_ms: RemainingMs | None = None) -> dict[str, Any]:
    """Convert one planned range to the part ``<name>-part-<index>``; return its parts entry.

    See :func:`engine.aws.conversion.convert_range`: every part is parsed with the schema
    inferred across the whole object, so the parts share one schema.

    What the part committed is added to the file record's ``published`` set
    (:func:`metadata.record_published`) before the part returns: when another part fails for
    good, the Map's error carries no results, and the error handler deletes what the set
    names. A part that finishes after the file was recorded FAILED deletes its own outputs.

    Raises:
        EngineError: the file is already FAILED (another part failed, and the Map with it).
        TransientError: as :func:`transform`, or throttling of the record's update.
    """
    settings = settings or Settings.from_env()
    clients = clients or default_clients()
    entry = convert_range(state, rng, settings, remaining_ms)
    outputs = published(state, settings, [entry], manifest=False)
    try:
        recorded = metadata.record_published(_table(settings, clients), state["file_id"],
                                             outputs)
    except BaseException:
        _unpublish_quietly(outputs)  # unrecorded, so no error handler would find them
        raise
    if not recorded:
        unpublish(outputs)
        raise EngineError(f"part {entry['index']} of {object_uri(state)} finished after the "
                          "file was recorded FAILED; its outputs were deleted",
                          uri=object_uri(state))
    return entry


# ---------------------------------------------------------------------------------------------
# Output


def output(state: Mapping[str, Any], settings: Settings | None = None,
           clients: Clients | None = None, *, now: datetime | None = None) -> dict[str, Any]:
    """Commit: the manifest, the catalog table, SUCCEEDED; then the previous version goes.

    The manifest (``<table location>/_manifests/<id>.manifest.json``,
    :func:`engine.aws.commit.manifest`) lists the parts in order with their files, rows and
    SHA-256, the totals, the schema, the contract, the source object's version and every object
    published. With ``GLUE_DATABASE``, the dataset's table is created or updated and the new
    partitions registered (:func:`engine.aws.commit.update_catalog`) before SUCCEEDED is
    recorded: a file whose columns the dataset cannot take fails here (the DLQ) and publishes
    nothing. Once SUCCEEDED, what earlier versions of the same object published is deleted
    (:func:`engine.aws.commit.supersede`; a failure there is logged and left for the next
    version, never the step's).

    Returns:
        The state with ``output``: ``manifest`` (its URI), ``rows_in``, ``rows_out``,
        ``rows_rejected``, ``rows_filtered``, ``bytes_out``, ``files`` (URIs), ``catalog``
        (``{"database", "table", "location", "created", "changes", "partitions_added"}`` or
        ``None``) and ``superseded`` (the earlier versions' manifests removed).

    Raises:
        SchemaError: the parts do not share one schema, or the dataset cannot take a column.
        ValueError: parts are missing (a bug: the Map returns one entry per range).
    """
    settings = settings or Settings.from_env()
    clients = clients or default_clients()
    parts = sorted(state.get("parts") or [], key=lambda p: p["index"])
    expected = sorted(r["index"] for r in state.get("ranges") or [{"index": 0}])
    if [p["index"] for p in parts] != expected:
        raise ValueError(f"parts {[p['index'] for p in parts]} do not match ranges {expected}")
    schema = parts[0].get("schema")
    for part in parts[1:]:
        if part.get("schema") != schema:
            raise SchemaError(f"part {part['index']} has another schema than part 0: "
                              f"{part.get('schema')} != {schema}", uri=object_uri(state))
    contract = contract_of(state)
    manifest = manifest_uri(state, settings)
    moment = now or metadata.now_utc()
    received = state.get("received_at")
    duration = (moment - metadata.parse_iso(received)).total_seconds() if received else None
    totals = commit.totals(parts)
    peak = max(int(p.get("peak_rss_bytes") or 0) for p in parts)
    outputs = published(state, settings, parts, manifest=False)
    document = commit.manifest(state, parts, outputs=outputs,
                               dataset=contract.dataset if contract is not None else None,
                               committed_at=metadata.iso(moment), duration=duration, peak=peak)
    with io.AtomicOutput(manifest) as out:
        out.write(json.dumps(document, indent=2, ensure_ascii=False).encode())
    table = None
    try:
        entry = state.get("dataset") or dataset_entry(state, settings, clients)
        if entry is not None:
            table = commit.update_catalog(clients.glue, entry, parts, contract)
        metadata.update_status(_table(settings, clients), state["file_id"], metadata.SUCCEEDED,
                               now=moment, duration_seconds=duration, peak_rss_bytes=peak,
                               manifest=manifest, s3_requests=commit.s3_requests(parts) or None,
                               **totals)
    except BaseException:
        _unpublish_quietly([manifest])  # no manifest unless the record says SUCCEEDED
        raise
    superseded = commit.supersede(
        layout.manifests_prefix(state, contract, settings), state, [*outputs, manifest],
        unpublish)
    return {**state, "output": {"manifest": manifest, **totals,
                                "files": [f["uri"] for p in parts for f in p.get("files") or []],
                                "catalog": table, "superseded": superseded}}


# ---------------------------------------------------------------------------------------------
# Failures


def handle_error(state: Mapping[str, Any], settings: Settings | None = None,
                 clients: Clients | None = None) -> dict[str, Any]:
    """Record FAILED with the caught error's type and message; return the state + ``failure``."""
    settings = settings or Settings.from_env()
    clients = clients or default_clients()
    failure = failures.record_failure(state, _table(settings, clients))
    unpublish(taken_back(state, settings, clients))
    return {**state, "failure": failure}


def route_to_dlq(state: Mapping[str, Any], settings: Settings | None = None,
                 clients: Clients | None = None) -> dict[str, Any]:
    """Record FAILED and send the DLQ a message with everything needed to replay the file.

    The message is :func:`engine.aws.failures.dlq_message`, with the error type also as the
    ``error_type`` message attribute (for filtering in the console).

    Raises:
        TransientError: SQS or DynamoDB throttling.
    """
    settings = settings or Settings.from_env()
    clients = clients or default_clients()
    failure = failures.record_failure(state, _table(settings, clients))
    unpublish(taken_back(state, settings, clients))
    body = failures.dlq_message(state, failure)
    try:
        response = clients.sqs.send_message(
            QueueUrl=settings.require("dlq_url"),
            MessageBody=json.dumps(body, ensure_ascii=False, default=str),
            MessageAttributes={"error_type": {"DataType": "String",
                                              "StringValue": failure["error_type"]}},
        )
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code in metadata.THROTTLING_CODES | {"RequestThrottled"}:
            raise TransientError(f"SQS {code}", uri=settings.dlq_url) from exc
        raise
    return {**state, "failure": failure, "dlq": {"message_id": response.get("MessageId")}}


# ---------------------------------------------------------------------------------------------
# Taking back what a failed file published


def manifest_uri(state: Mapping[str, Any], settings: Settings) -> str:
    """Where the output step writes the file's manifest (:func:`engine.aws.layout.manifest_uri`)."""
    return layout.manifest_uri(state, contract_of(state), settings)


def published(state: Mapping[str, Any], settings: Settings,
              parts: Sequence[Mapping[str, Any]] | None = None, *,
              manifest: bool = True) -> list[str]:
    """What converting the file published, as far as ``parts`` (default the state's) tell.

    Each part's data files and rejects file; for a contract, the rejects file and the aggregate
    the engine writes beside the output even when the part names neither (no rejected row, the
    aggregate is not a part file) and, for partitioned output, the engine's manifest of each
    name; and the file's manifest (``manifest=True``). Without parts the file was never
    converted by this execution: nothing (a manifest of the same version describes what an
    earlier execution published, which this one did not touch).
    """
    parts = list(state.get("parts") or [] if parts is None else parts)
    if not parts or not state.get("key") or not state.get("bucket"):
        return []
    contract = contract_of(state)
    uris: set[str] = set()
    names = {layout.output_stem(state)}  # the name of a whole object, whatever the route
    for part in parts:
        uris.update(f["uri"] for f in part.get("files") or [] if isinstance(f, Mapping))
        if part.get("rejects_uri"):
            uris.add(part["rejects_uri"])
        if state.get("ranges"):
            names.add(layout.part_name(state, int(part["index"])))
    if contract is not None:
        from engine.plan import OutputPlan  # the engine's own naming of rejects and aggregate files

        base, src = layout.output_base(state, contract, settings), object_uri(state)
        for name in names:
            plan = OutputPlan.load(contract, src, layout.destination(base, contract, name), name)
            uris.update(u for u in (plan.rejects_uri, plan.aggregate_uri) if u)
            if contract.output.partition_by:
                uris.add(plan.manifest_uri or "")
    if manifest:
        uris.add(manifest_uri(state, settings))
    return sorted(u for u in uris if u)


def taken_back(state: Mapping[str, Any], settings: Settings, clients: Clients) -> list[str]:
    """What a failed file's handler deletes: :func:`published` and the record's ``published``.

    The record's set is read after FAILED was recorded, so it names every part that will ever
    be recorded (:func:`metadata.record_published` refuses a FAILED file).
    """
    uris = set(published(state, settings))
    file_id = state.get("file_id")
    if file_id and state.get("ranges") and not state.get("parts"):
        uris.update(metadata.published(_table(settings, clients), file_id))
    return sorted(uris)


def unpublish(uris: Iterable[str]) -> None:
    """Delete these outputs (a missing one is not an error).

    Raises:
        TransientError: S3 throttling or a network failure (the failure step is retried).
    """
    for uri in uris:
        if io.is_s3(uri):
            from engine.io.s3 import s3_errors

            bucket, key = io.split_s3(uri)
            with s3_errors(uri, output=True):
                io.s3_client().delete_object(Bucket=bucket, Key=key)
        else:
            import contextlib
            import os

            with contextlib.suppress(FileNotFoundError):
                os.remove(uri[7:] if uri.startswith("file://") else uri)


def _unpublish_quietly(uris: Iterable[str]) -> None:
    """:func:`unpublish` on an error path: a failure is logged, never raised over the error."""
    try:
        unpublish(uris)
    except Exception as exc:  # noqa: BLE001 - the step's own error is the one to report
        log.warning("could not remove the outputs of a failed step: %r", exc)
