"""One execution of the state machine, seen through the Step Functions API, as a result.

Shared by the local runs on moto (:mod:`engine.aws.local.runner`) and the runs on a deployed
stack (:mod:`engine.aws.remote`), so both give the same result shape: the input event S3 sends,
waiting for the end, reading the history (states entered, Lambda attempts, task outputs, the
``file_id``), the file's DynamoDB record and what the final state says was published. It talks
to whatever clients it is given and imports neither moto nor the local runner.

Example:
    >>> event = object_created_event("raw", "orders/x.csv", size=3, etag='"e"',
    ...                              region="eu-west-1", account="111122223333")
    >>> event["detail"]["object"]["key"], event["detail"]["object"]["etag"], event["region"]
    ('orders/x.csv', 'e', 'eu-west-1')
    >>> published_outputs({"parts": [{"files": [{"uri": "s3://p/a.parquet"}]}],
    ...                    "output": {"manifest": "s3://p/m.json"}})
    ['s3://p/a.parquet', 's3://p/m.json']
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "TERMINAL",
    "History",
    "dataset_table",
    "duration",
    "execution_error",
    "final_outputs",
    "object_created_event",
    "plain_item",
    "published_outputs",
    "read_history",
    "read_record",
    "run_result",
    "wait_for",
]

#: Execution statuses after which nothing more happens.
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def object_created_event(
    bucket: str,
    key: str,
    *,
    size: int,
    etag: str,
    region: str,
    account: str,
    version: str | None = None,
) -> dict[str, Any]:
    """An EventBridge "Object Created" event for an S3 object, as S3 sends it."""
    now = datetime.now(UTC)
    obj: dict[str, Any] = {"key": key, "size": size, "etag": etag.strip('"'),
                           "sequencer": f"{time.time_ns():X}"}
    if version:
        obj["version-id"] = version
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": account,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": account,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject",
        },
    }


@dataclass
class History:
    """What an execution's event history says about it.

    Attributes:
        states: the names of the states entered, in order (Map iterations repeat theirs).
        attempts: state name → Lambda invocations (retries included).
        outputs: state name → the output of its last task that succeeded.
        file_id: the first ``file_id`` a task output names (or the failure record names).
    """

    states: list[str] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    file_id: str | None = None


def read_history(sfn: Any, execution_arn: str) -> History:
    """Read every page of ``GetExecutionHistory`` into a :class:`History`."""
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page.get("events", []))
        token = page.get("nextToken")
        if not token:
            break
        kwargs["nextToken"] = token
    out = History()
    current: str | None = None
    for event in events:
        kind = event.get("type", "")
        if kind.endswith("StateEntered"):
            current = event["stateEnteredEventDetails"]["name"]
            out.states.append(current)
        elif kind in ("LambdaFunctionScheduled", "TaskScheduled") and current:
            out.attempts[current] = out.attempts.get(current, 0) + 1
        elif kind in ("LambdaFunctionSucceeded", "TaskSucceeded") and current:
            details = event.get("lambdaFunctionSucceededEventDetails") or event.get(
                "taskSucceededEventDetails") or {}
            with contextlib.suppress(TypeError, ValueError):
                output = json.loads(details.get("output") or "null")
                out.outputs[current] = output
                if out.file_id is None and isinstance(output, dict):
                    # a state's file_id, or (ingest failed) the one the error tasks recorded
                    failure = output.get("failure")
                    out.file_id = output.get("file_id") or (
                        failure.get("file_id") if isinstance(failure, dict) else None)
    return out


def wait_for(sfn: Any, execution_arn: str, *, poll: float, timeout: float | None,
             sleep: Callable[[float], None]) -> dict[str, Any]:
    """``DescribeExecution`` every ``poll`` seconds until the execution ends; its last answer.

    Raises:
        TimeoutError: still running after ``timeout`` seconds (``None``: no limit).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        desc = sfn.describe_execution(executionArn=execution_arn)
        if desc["status"] in TERMINAL:
            return desc  # type: ignore[no-any-return]
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"execution {execution_arn} still {desc['status']} after "
                               f"{timeout:.0f} s")
        sleep(poll)


def execution_error(desc: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"type", "message", "cause"}`` of an execution that did not succeed, else ``None``.

    The message is the Lambda runtime's ``errorMessage`` when the cause is its error payload.
    """
    if desc["status"] == "SUCCEEDED":
        return None
    error_type = desc.get("error") or desc["status"]
    cause = desc.get("cause")
    message = cause or ""
    with contextlib.suppress(TypeError, ValueError):
        parsed = json.loads(cause or "")
        if isinstance(parsed, dict) and "errorMessage" in parsed:
            message = parsed["errorMessage"]
    return {"type": error_type, "message": message, "cause": cause}


def _plain(value: Any) -> Any:
    """DynamoDB values (Decimal, sets, bytes) as plain JSON-able Python."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    return value


def plain_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A low-level DynamoDB item (``{"n": {"N": "1"}}``) as plain Python (``{"n": 1}``)."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: _plain(deserializer.deserialize(v)) for k, v in raw.items()}


def read_record(ddb: Any, table: str | None, file_id: str | None) -> dict[str, Any] | None:
    """The file's record in the metadata table (a consistent read), or ``None``."""
    if not (table and file_id):
        return None
    item = ddb.get_item(TableName=table, Key={"file_id": {"S": file_id}},
                        ConsistentRead=True).get("Item")
    return plain_item(item) if item else None


def final_outputs(output: Any) -> list[str]:
    """Output URIs named by a succeeded execution's final state: parts and manifest."""
    uris: list[str] = []
    if not isinstance(output, dict):
        return uris
    for part in output.get("parts") or []:
        if isinstance(part, dict) and isinstance(part.get("uri"), str):
            uris.append(part["uri"])
    manifest = (output.get("output") or {}).get("manifest") if isinstance(
        output.get("output"), dict) else None
    if isinstance(manifest, str):
        uris.append(manifest)
    return uris


def published_outputs(output: Any) -> list[str]:
    """What a succeeded execution's final state says it published: manifest, files, rejects."""
    if not isinstance(output, dict):
        return []
    uris: list[str] = []
    for part in output.get("parts") or []:
        if not isinstance(part, dict):
            continue
        uris += [f["uri"] for f in part.get("files") or []
                 if isinstance(f, dict) and isinstance(f.get("uri"), str)]
        if isinstance(part.get("rejects_uri"), str):
            uris.append(part["rejects_uri"])
    final = output.get("output")
    if isinstance(final, dict) and isinstance(final.get("manifest"), str):
        uris.append(final["manifest"])
    return sorted(set(uris))


def dataset_table(hist: History) -> tuple[str, str] | None:
    """``(database, table)`` of the dataset the execution's file went to.

    As a state names it (validate's ``dataset`` entry); ``None`` before validate, or without a
    catalog.
    """
    for output in hist.outputs.values():
        entry = output.get("dataset") if isinstance(output, dict) else None
        if isinstance(entry, dict) and entry.get("database") and entry.get("table"):
            return str(entry["database"]), str(entry["table"])
    return None


def duration(desc: Mapping[str, Any]) -> float | None:
    """Seconds from an execution's start to its stop, as ``DescribeExecution`` reports them."""
    start, stop = desc.get("startDate"), desc.get("stopDate")
    if isinstance(start, datetime) and isinstance(stop, datetime):
        return round((stop - start).total_seconds(), 3)
    return None


def run_result(desc: Mapping[str, Any], hist: History, *, record: Any, outputs: list[str],
               dlq: list[Any], waits: list[float] | None = None) -> dict[str, Any]:
    """The result of a run, local or remote (see :func:`engine.aws.local.runner.run_local`)."""
    result: dict[str, Any] = {
        "status": desc["status"],
        "states": hist.states,
        "error": execution_error(desc),
        "record": record,
        "outputs": outputs,
        "dlq": dlq,
        "execution_arn": desc["executionArn"],
        "attempts": hist.attempts,
        "skipped": "Skipped" in hist.states,
    }
    if waits is not None:
        result["retry_waits"] = waits
    output = desc.get("output")
    with contextlib.suppress(TypeError, ValueError):
        result["output"] = json.loads(output) if output else None
    return result
