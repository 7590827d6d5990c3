"""The EventBridge S3 "Object Created" event, turned into the pipeline's initial state.

EventBridge delivers S3 notifications as::

    {"source": "aws.s3", "detail-type": "Object Created",
     "detail": {"bucket": {"name": "raw"},
                "object": {"key": "orders/x.csv", "size": 1024, "etag": "...",
                           "version-id": "..."}, ...}, ...}

Powertools' :class:`S3EventBridgeNotificationEvent` reads it (and URL-decodes the key, which S3
encodes in notifications). Anything else is an :class:`~engine.errors.InputFormatError`: the
state machine routes it to the DLQ, where an operator sees what arrived.

A replay (an operator re-running a failed file from its DLQ message) is not an event but a state:
``{"bucket", "key", "version", "etag", "size", "replay": true}``; :func:`initial_state` accepts
both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.errors import InputFormatError

__all__ = ["OBJECT_CREATED", "file_id", "initial_state", "parse_event"]

#: The ``detail-type`` of the events the pipeline converts.
OBJECT_CREATED = "Object Created"

_NOT_AN_EVENT = "not an S3 Object Created event"


def file_id(bucket: str, key: str, version: str | None, etag: str | None) -> str:
    """The file's identity: ``s3://bucket/key#version-or-etag`` (the metadata table's key).

    An object overwritten in an unversioned bucket gets a new ETag, so it is a new file; the
    same event delivered twice names the same file.
    """
    return f"s3://{bucket}/{key}#{version or etag or '-'}"


def _clean_etag(etag: Any) -> str | None:
    if not etag:
        return None
    return str(etag).strip('"') or None


def parse_event(event: Any) -> dict[str, Any]:
    """The initial state from an EventBridge S3 "Object Created" event.

    Returns:
        ``{"bucket", "key", "version", "etag", "size", "file_id"}``; ``version`` is ``None`` in
        an unversioned bucket, ``size`` is ``None`` if the event lacks it.

    Raises:
        InputFormatError: ``event`` is anything else (another source or detail type, a missing
            bucket or key).
    """
    if not isinstance(event, Mapping):
        raise InputFormatError(f"{_NOT_AN_EVENT}: got {type(event).__name__}")
    source, kind = event.get("source"), event.get("detail-type")
    if source != "aws.s3" or kind != OBJECT_CREATED:
        raise InputFormatError(f"{_NOT_AN_EVENT}: source {source!r}, detail-type {kind!r}")
    # The data_classes package imports every event class Powertools knows (~3 MiB): only the
    # ingest step parses an event, so it loads here.
    from aws_lambda_powertools.utilities.data_classes import S3EventBridgeNotificationEvent

    parsed = S3EventBridgeNotificationEvent(dict(event))
    try:
        bucket = parsed.detail.bucket.name
        obj = parsed.detail.object
        key = obj.key
        size = obj.size
        version = obj.get("version-id") or None
        etag = _clean_etag(obj.etag)
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputFormatError(f"{_NOT_AN_EVENT}: no {exc} in its detail") from None
    if not bucket or not key:
        raise InputFormatError(f"{_NOT_AN_EVENT}: empty bucket or key")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise InputFormatError(f"{_NOT_AN_EVENT}: bad size {size!r}")
    return {
        "bucket": bucket,
        "key": key,
        "version": version,
        "etag": etag,
        "size": size,
        "file_id": file_id(bucket, key, version, etag),
    }


def initial_state(event: Any) -> dict[str, Any]:
    """The initial state from an EventBridge event, or from a replay state.

    A replay keeps ``"replay": true`` so that ingest may re-claim a FAILED file.

    Raises:
        InputFormatError: neither an S3 Object Created event nor a state naming bucket and key.
    """
    if isinstance(event, Mapping) and "detail-type" not in event and "bucket" in event \
            and "key" in event:
        bucket, key = event["bucket"], event["key"]
        if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
            raise InputFormatError(f"{_NOT_AN_EVENT} nor a replay: bad bucket or key")
        version = event.get("version") or None
        etag = _clean_etag(event.get("etag"))
        size = event.get("size")
        return {
            "bucket": bucket,
            "key": key,
            "version": version,
            "etag": etag,
            "size": size if isinstance(size, int) and not isinstance(size, bool) else None,
            "file_id": file_id(bucket, key, version, etag),
            "replay": bool(event.get("replay")),
        }
    return parse_event(event)
