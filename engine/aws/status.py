"""The metadata table's records, by status: what ``pipeline status`` shows.

The table's ``by_status`` index (partition key ``status``, sort key ``updated_at``; see
``template.yaml``) answers "which files are FAILED, since when" with one query per status
instead of a scan of every record. It projects what an operator reads first: key, counts,
error.

Example:
    >>> parse_since("2026-01-02")
    '2026-01-02T00:00:00.000Z'
    >>> parse_since("90m", now=datetime(2026, 1, 2, 12, 0, tzinfo=UTC))
    '2026-01-02T10:30:00.000Z'
    >>> file_entry({"file_id": "s3://b/k#v", "key": "k", "status": "FAILED",
    ...             "error_type": "ValidationError", "error_message": "too many rejects",
    ...             "updated_at": "2026-01-02T10:30:00.000Z"})["error"]
    'ValidationError: too many rejects'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.aws.executions import plain_item
from engine.aws.metadata import STATUSES, iso
from engine.aws.targets import Target

__all__ = ["STATUS_INDEX", "file_entry", "parse_since", "records"]

#: The metadata table's index by status and update time (the template's ``by_status``).
STATUS_INDEX = "by_status"

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, *, now: datetime | None = None) -> str:
    """``--since``: an ISO-8601 date or time (UTC unless it says), or an age (``90m``, ``7d``).

    Returns:
        The moment as the records write it (``updated_at``), for comparison.

    Raises:
        ValueError: neither.
    """
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return iso((now or datetime.now(UTC)) - delta)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since: an ISO-8601 date or time, or an age like 90m, 24h, 7d; "
                         f"not {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso(moment)


def file_entry(item: dict[str, Any]) -> dict[str, Any]:
    """One record as ``status`` lists it."""
    error = None
    if item.get("error_type"):
        error = f"{item['error_type']}: {item.get('error_message') or ''}".rstrip(": ")
    return {"file_id": item.get("file_id"), "key": item.get("key"), "status": item.get("status"),
            "rows_in": item.get("rows_in"), "rows_out": item.get("rows_out"),
            "rows_rejected": item.get("rows_rejected"),
            "rows_filtered": item.get("rows_filtered"), "error": error,
            "updated_at": item.get("updated_at")}


def records(target: Target, *, status: str | None = None,
            since: str | None = None) -> dict[str, Any]:
    """The records of ``status`` (every status when ``None``) updated at or after ``since``.

    Args:
        target: the stack (its metadata table).
        status: one of :data:`engine.aws.metadata.STATUSES`.
        since: as the records write times (:func:`parse_since`).

    Returns:
        ``{"counts": {status: n}, "files": [file_entry, ...]}``, the files newest first.

    Raises:
        ValueError: an unknown status.
        LookupError: the stack has no metadata table.
    """
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
    table = target.require("table")
    ddb = target.client("dynamodb")
    counts: dict[str, int] = {}
    files: list[dict[str, Any]] = []
    for wanted in [status] if status else list(STATUSES):
        condition = "#s = :s"
        values: dict[str, Any] = {":s": {"S": wanted}}
        if since:
            condition += " AND updated_at >= :since"
            values[":since"] = {"S": since}
        kwargs: dict[str, Any] = {
            "TableName": table, "IndexName": STATUS_INDEX, "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#s": "status"}, "ExpressionAttributeValues": values}
        for page in ddb.get_paginator("query").paginate(**kwargs):
            for raw in page.get("Items", []):
                files.append(file_entry(plain_item(raw)))
                counts[wanted] = counts.get(wanted, 0) + 1
    files.sort(key=lambda f: f.get("updated_at") or "", reverse=True)
    return {"counts": counts, "files": files}
