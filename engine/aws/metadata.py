"""The metadata table: one DynamoDB record per file, claimed once, updated at each step.

The record (``docs/pipeline.md``): partition key ``file_id``; ``bucket``, ``key``, ``version``,
``etag``, ``size``, ``contract``, ``status`` (``RECEIVED`` → ``VALIDATED`` → ``TRANSFORMED`` →
``SUCCEEDED``, or ``FAILED``), ``received_at``, ``updated_at``, counts, bytes, duration, peak
memory, ``manifest``, ``error_type``, ``error_message``, ``expires_at`` (the TTL attribute:
epoch seconds, received + 180 days, ADR-006), ``claim_token`` (see :func:`claim`) and
``published`` (the outputs a Map route's parts committed, see :func:`record_published`).

``table`` arguments are boto3 ``Table`` resources (``boto3.resource("dynamodb").Table(name)``).
DynamoDB throttling becomes :class:`~engine.errors.TransientError`, which the state machine
retries; other client errors propagate as they are (a bug or a deployment problem, for the
error handler).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import botocore.exceptions

from engine.errors import TransientError

__all__ = [
    "FAILED",
    "RECEIVED",
    "STATUSES",
    "SUCCEEDED",
    "TRANSFORMED",
    "TTL_DAYS",
    "VALIDATED",
    "claim",
    "published",
    "record",
    "record_published",
    "update_status",
]

RECEIVED, VALIDATED, TRANSFORMED, SUCCEEDED, FAILED = (
    "RECEIVED", "VALIDATED", "TRANSFORMED", "SUCCEEDED", "FAILED",
)
STATUSES = (RECEIVED, VALIDATED, TRANSFORMED, SUCCEEDED, FAILED)

#: Records expire this long after the file was received (DynamoDB TTL, ADR-006).
TTL_DAYS = 180

#: Longest error message stored (DynamoDB items are capped at 400 KB; a stack of causes is not
#: what an operator reads first).
MAX_ERROR_MESSAGE_CHARS = 4000

#: Error codes that mean "slow down": retried by the state machine as TransientError.
THROTTLING_CODES = frozenset({
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
})

#: The state keys copied into the record when a file is claimed.
_CLAIMED = ("bucket", "key", "version", "etag", "size", "contract")


def now_utc() -> datetime:
    """The current time, timezone-aware UTC (one place to patch in tests)."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with a ``Z``, to the millisecond."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """The inverse of :func:`iso` (any ISO-8601 string with an offset or ``Z``)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@contextmanager
def _dynamodb_errors(file_id: str) -> Iterator[None]:
    """Throttling inside the block becomes TransientError; other errors pass through."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in THROTTLING_CODES:
            message = exc.response.get("Error", {}).get("Message") or code
            raise TransientError(f"DynamoDB {code}: {message}", uri=file_id) from exc
        raise


def _to_dynamodb(value: Any) -> Any:
    """Python values as the boto3 resource layer accepts them (floats become Decimals)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return Decimal(str(value)) if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _to_dynamodb(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamodb(v) for v in value]
    return value


def _from_dynamodb(value: Any) -> Any:
    """The inverse of :func:`_to_dynamodb`: Decimals become ints or floats, sets sorted lists."""
    if isinstance(value, set | frozenset):
        return sorted(_from_dynamodb(v) for v in value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: _from_dynamodb(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamodb(v) for v in value]
    return value


def claim(table: Any, state: Mapping[str, Any], *, now: datetime | None = None) -> bool:
    """Create the file's record with status RECEIVED, unless it already exists.

    One conditional put (``attribute_not_exists(file_id)``): of two executions started for the
    same file (EventBridge delivers at least once), exactly one claims it. A replay
    (``state["replay"]``) may also re-claim a file whose record is FAILED.

    The put carries a token of its own (``claim_token``). When the put was applied but its
    response was lost (a timeout, a 500), botocore sends it again and the condition fails on
    this call's own record: the token tells that apart from another execution's claim, which
    would otherwise make the file look like a duplicate and no execution would convert it.

    Args:
        table: the metadata table.
        state: the state after ingest: ``file_id`` and the keys copied into the record
            (``bucket``, ``key``, ``version``, ``etag``, ``size``, ``contract``), and
            ``received_at`` if already set.
        now: the time of receipt (default: now).

    Returns:
        True if this call created (or re-claimed) the record, False for a duplicate.

    Raises:
        TransientError: DynamoDB throttled the request.
    """
    received = now or (parse_iso(state["received_at"]) if state.get("received_at")
                       else now_utc())
    token = uuid.uuid4().hex
    item = {name: state.get(name) for name in _CLAIMED}
    item.update(
        file_id=state["file_id"],
        status=RECEIVED,
        received_at=iso(received),
        updated_at=iso(received),
        expires_at=int((received + timedelta(days=TTL_DAYS)).timestamp()),
        claim_token=token,
    )
    condition = "attribute_not_exists(file_id)"
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    if state.get("replay"):
        condition += " OR #status = :failed"
        names["#status"] = "status"
        values[":failed"] = FAILED
    kwargs: dict[str, Any] = {"Item": _to_dynamodb(item), "ConditionExpression": condition,
                              "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
    if names:
        kwargs.update(ExpressionAttributeNames=names, ExpressionAttributeValues=values)
    try:
        with _dynamodb_errors(state["file_id"]):
            table.put_item(**kwargs)
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        existing = exc.response.get("Item")
        if existing is None:  # a DynamoDB that does not return it: read it
            return record(table, state["file_id"]).get("claim_token") == token
        found = existing.get("claim_token")
        if isinstance(found, Mapping):  # the low-level shape, {"S": "..."}
            found = found.get("S")
        return found == token  # our own put, applied before its response was lost
    return True


def update_status(table: Any, file_id: str, status: str, *, now: datetime | None = None,
                  **fields: Any) -> None:
    """Set the record's ``status``, ``updated_at`` and ``fields`` (``None`` values are skipped).

    The record is created if it is missing (an error handler may run for a file that was never
    claimed, e.g. after a malformed event), with the TTL attribute set on creation only.

    Raises:
        ValueError: an unknown status.
        TransientError: DynamoDB throttled the request.
    """
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; expected one of {STATUSES}")
    moment = now or now_utc()
    if "error_message" in fields and fields["error_message"] is not None:
        fields["error_message"] = str(fields["error_message"])[:MAX_ERROR_MESSAGE_CHARS]
    values: dict[str, Any] = {
        ":status": status,
        ":now": iso(moment),
        ":expires": int((moment + timedelta(days=TTL_DAYS)).timestamp()),
    }
    names = {"#status": "status"}
    sets = ["#status = :status", "updated_at = :now",
            "expires_at = if_not_exists(expires_at, :expires)"]
    for i, (name, value) in enumerate(sorted(fields.items())):
        if value is None or name in ("file_id", "status", "updated_at", "expires_at"):
            continue
        names[f"#f{i}"] = name
        values[f":f{i}"] = _to_dynamodb(value)
        sets.append(f"#f{i} = :f{i}")
    with _dynamodb_errors(file_id):
        table.update_item(
            Key={"file_id": file_id},
            UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )


def record(table: Any, file_id: str) -> dict[str, Any]:
    """The file's record as plain JSON-able data (numbers as int/float); ``{}`` if none.

    Raises:
        TransientError: DynamoDB throttled the request.
    """
    with _dynamodb_errors(file_id):
        response = table.get_item(Key={"file_id": file_id}, ConsistentRead=True)
    return dict(_from_dynamodb(response.get("Item") or {}))


def record_published(table: Any, file_id: str, uris: Iterable[str]) -> bool:
    """Add ``uris`` to the record's ``published`` set, unless the file has FAILED.

    A Map route's part calls this once its outputs are committed, so that when another part
    fails for good, the error handler finds every file the others published (the Map's error
    carries no results) and deletes them. The update is conditional on the record existing and
    not being FAILED: the error handler records FAILED before reading the set, so a part that
    finishes after that (a Map's other iterations run on once it has failed) is refused here
    and must take its own outputs back.

    Returns:
        True if recorded; False if the file is FAILED (or its record is gone).

    Raises:
        TransientError: DynamoDB throttled the request.
    """
    values = sorted(set(uris))
    if not values:
        return True
    try:
        with _dynamodb_errors(file_id):
            table.update_item(
                Key={"file_id": file_id},
                UpdateExpression="ADD published :uris SET updated_at = :now",
                ConditionExpression="attribute_exists(file_id) AND #status <> :failed",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":uris": set(values), ":failed": FAILED,
                                           ":now": iso(now_utc())},
            )
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def published(table: Any, file_id: str) -> list[str]:
    """The record's ``published`` set (see :func:`record_published`), sorted; ``[]`` if none.

    Raises:
        TransientError: DynamoDB throttled the request.
    """
    return [str(uri) for uri in record(table, file_id).get("published") or ()]
