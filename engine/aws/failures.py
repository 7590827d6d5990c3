"""Failed files: the caught error, the FAILED record, and the DLQ message to replay them.

The state machine catches a failed state's error into ``$.error`` = ``{"Error", "Cause"}``:
``Error`` is the error name (the exception's class name for a Lambda, ``States.Timeout`` and
the like otherwise), ``Cause`` the JSON of the Lambda's ``{"errorMessage", "errorType",
"stackTrace"}``, or plain text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.aws import metadata
from engine.aws.events import initial_state
from engine.errors import InputFormatError

__all__ = ["dlq_message", "identity", "parse_error", "record_failure"]


def parse_error(error: Any) -> tuple[str, str]:
    """``(error type, message)`` from the state's ``error`` (``{"Error", "Cause"}``).

    A Lambda's ``Cause`` is the JSON of ``{"errorMessage", "errorType", "stackTrace"}``; a
    ``States.*`` error's is plain text.
    """
    if not isinstance(error, Mapping):
        return "Unknown", "" if error is None else str(error)
    error_type = str(error.get("Error") or "Unknown")
    cause = error.get("Cause")
    message = "" if cause is None else str(cause)
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except ValueError:
            parsed = None
        if isinstance(parsed, Mapping) and parsed.get("errorMessage") is not None:
            message = str(parsed["errorMessage"])
    return error_type, message


def identity(state: Mapping[str, Any]) -> dict[str, Any]:
    """The file's keys from the state, or from the raw event when ingest failed on it."""
    if state.get("file_id"):
        return dict(state)
    try:
        return {**state, **initial_state({k: v for k, v in state.items() if k != "error"})}
    except InputFormatError:
        return dict(state)


def record_failure(state: Mapping[str, Any], table: Any) -> dict[str, Any]:
    """Record FAILED with the caught error, when the file is known.

    Returns:
        ``file_id`` (``None`` for an event that was not understood), ``error_type``,
        ``error_message`` and ``failed_at``.
    """
    error_type, message = parse_error(state.get("error"))
    known = identity(state)
    failure = {"file_id": known.get("file_id"), "error_type": error_type,
               "error_message": message[:metadata.MAX_ERROR_MESSAGE_CHARS],
               "failed_at": metadata.iso(metadata.now_utc())}
    if known.get("file_id"):
        metadata.update_status(
            table, known["file_id"], metadata.FAILED,
            error_type=error_type, error_message=message,
            **{k: known.get(k) for k in ("bucket", "key", "version", "etag", "size",
                                         "contract")})
    return failure


def dlq_message(state: Mapping[str, Any], failure: Mapping[str, Any]) -> dict[str, Any]:
    """The DLQ message body for a failed file (JSON-able).

    ``file_id``, ``bucket``, ``key``, ``version``, ``etag``, ``size``, ``contract``,
    ``format``, ``received_at``, ``error_type``, ``error_message``, ``failed_at``, and
    ``replay``: the input to start a new execution with once the data or the contract is fixed
    (ingest re-claims a FAILED file for it). When the event itself was not understood,
    ``event`` holds it as received instead of ``replay``.
    """
    known = identity(state)
    body: dict[str, Any] = {
        **{k: known.get(k) for k in ("file_id", "bucket", "key", "version", "etag", "size",
                                     "contract", "format", "received_at")},
        "error_type": failure["error_type"],
        "error_message": failure["error_message"],
        "failed_at": failure["failed_at"],
    }
    if known.get("bucket") and known.get("key"):
        body["replay"] = {**{k: known.get(k) for k in ("bucket", "key", "version", "etag",
                                                      "size")}, "replay": True}
    else:
        body["event"] = {k: v for k, v in state.items() if k != "error"}
    return body
