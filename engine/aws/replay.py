"""Replay the DLQ: run each failed file again, once, and let its message go only on an outcome.

The DLQ message of a failed file (:func:`engine.aws.failures.dlq_message`) carries ``replay``:
the input of a new execution, which ingest lets re-claim a FAILED file. :func:`replay` receives
every message (each held invisible for ``visibility`` seconds), groups them by file (one
execution per file, however many messages name it: a file never runs twice at once), runs the
files, at most ``concurrency`` at a time, and then, per file:

- the execution SUCCEEDED: its messages are deleted;
- it was skipped (another execution holds the claim): deleted if the record is SUCCEEDED,
  else kept;
- it FAILED and routed the file to the DLQ again: the old messages are deleted (the new one
  stands for the file);
- it FAILED otherwise (transient errors exhausted): the messages are kept.

A kept message is made visible again at once, and so is one with no ``replay`` (an event that
was not understood: an operator reads it). With ``dry_run`` nothing is started and every
message is released.

Example:
    >>> messages = [{"Body": '{"file_id": "f1", "replay": {"bucket": "b", "key": "k"}}'},
    ...             {"Body": '{"file_id": "f1", "replay": {"bucket": "b", "key": "k"}}'},
    ...             {"Body": '{"event": {"x": 1}}'}]
    >>> groups, unreplayable = group(messages)
    >>> {k: len(v) for k, v in groups.items()}, len(unreplayable)
    ({'f1': 2}, 1)
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from engine.aws.events import file_id as make_file_id
from engine.aws.executions import TERMINAL, read_history, read_record
from engine.aws.targets import Target

__all__ = ["group", "receive_all", "replay"]


def receive_all(sqs: Any, queue_url: str, *, visibility: int, wait: int = 1) -> list[Any]:
    """Every message the queue gives, each held invisible for ``visibility`` seconds.

    Long polling (``wait`` seconds) asks every SQS server, so an empty answer means empty.
    """
    messages: list[Any] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                  VisibilityTimeout=visibility, WaitTimeSeconds=wait,
                                  MessageAttributeNames=["All"]).get("Messages", [])
        if not got:
            return messages
        messages += got


def _body(message: Any) -> dict[str, Any]:
    with contextlib.suppress(TypeError, ValueError):
        body = json.loads(message.get("Body") or "")
        if isinstance(body, dict):
            return body
    return {}


def group(messages: list[Any]) -> tuple[dict[str, list[Any]], list[Any]]:
    """Messages by the file they replay, and those with nothing to replay."""
    groups: dict[str, list[Any]] = {}
    unreplayable: list[Any] = []
    for message in messages:
        body = _body(message)
        state = body.get("replay")
        if not isinstance(state, dict) or not state.get("bucket") or not state.get("key"):
            unreplayable.append(message)
            continue
        key = body.get("file_id") or make_file_id(state["bucket"], state["key"],
                                                  state.get("version"), state.get("etag"))
        groups.setdefault(str(key), []).append(message)
    return groups, unreplayable


def _release(sqs: Any, queue_url: str, messages: list[Any]) -> None:
    for message in messages:
        with contextlib.suppress(Exception):  # expired already: visible again anyway
            sqs.change_message_visibility(QueueUrl=queue_url,
                                          ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)


def _outcome(target: Target, file_id: str, desc: dict[str, Any]) -> tuple[str, bool]:
    """``(SUCCEEDED|FAILED|SKIPPED, whether the file's old messages can go)``."""
    sfn = target.client("stepfunctions")
    hist = read_history(sfn, desc["executionArn"])
    if desc["status"] == "SUCCEEDED":
        if "Skipped" not in hist.states:
            return "SUCCEEDED", True
        record = read_record(target.client("dynamodb"), target.table, file_id) or {}
        done = record.get("status") == "SUCCEEDED"
        return ("SUCCEEDED" if done else "SKIPPED"), done
    routed = hist.outputs.get("DLQRoute")
    sent = isinstance(routed, dict) and isinstance(routed.get("dlq"), dict) \
        and bool(routed["dlq"].get("message_id"))
    return "FAILED", sent


def replay(target: Target, *, dry_run: bool = False, concurrency: int = 4,
           visibility: int = 900, poll: float = 1.0, timeout: float | None = None,
           on_done: Callable[[dict[str, Any]], None] | None = None,
           sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Replay every file in the target's DLQ (see the module docstring).

    Args:
        target: the stack (its state machine, table and DLQ).
        dry_run: list what would be replayed; start nothing, delete nothing.
        concurrency: executions in flight at once.
        visibility: seconds each received message stays invisible (to other replays).
        poll: seconds between looks at the executions.
        timeout: seconds to wait for one execution (``None``: no limit).
        on_done: called with each file's entry as its execution ends.
        sleep: the wait between looks.

    Returns:
        ``{"replayed", "succeeded", "failed", "remaining", "files": [{"file_id", "key",
        "status", "execution", "messages"}]}``: ``replayed`` files run, of which
        ``succeeded`` and ``failed``; ``remaining`` the messages in the DLQ afterwards (new
        ones for files that failed again included).

    Raises:
        ValueError: ``concurrency`` below 1.
        LookupError: the stack has no DLQ, state machine or table.
        TimeoutError: an execution ran longer than ``timeout`` seconds.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    queue = target.require("queue")
    machine = target.require("state_machine")
    target.require("table")
    sqs, sfn = target.client("sqs"), target.client("stepfunctions")
    groups, unreplayable = group(receive_all(sqs, queue, visibility=visibility))
    _release(sqs, queue, unreplayable)
    files: list[dict[str, Any]] = []
    if dry_run:
        for file_id, messages in groups.items():
            _release(sqs, queue, messages)
            files.append({"file_id": file_id, "key": _body(messages[0])["replay"]["key"],
                          "status": "PENDING", "execution": None, "messages": len(messages)})
        return {"replayed": 0, "succeeded": 0, "failed": 0,
                "remaining": sum(len(m) for m in groups.values()) + len(unreplayable),
                "files": files}
    pending = list(groups.items())
    pending.reverse()
    running: dict[str, tuple[str, list[Any], float]] = {}  # ARN → (file_id, messages, start)
    try:
        while pending or running:
            while pending and len(running) < concurrency:
                file_id, messages = pending.pop()
                arn = sfn.start_execution(
                    stateMachineArn=machine, name=f"replay-{uuid.uuid4()}",
                    input=json.dumps(_body(messages[0])["replay"]))["executionArn"]
                running[arn] = (file_id, messages, time.monotonic())
            for arn, (file_id, messages, started) in list(running.items()):
                desc = sfn.describe_execution(executionArn=arn)
                if desc["status"] not in TERMINAL:
                    if timeout is not None and time.monotonic() - started > timeout:
                        raise TimeoutError(f"execution {arn} still {desc['status']} after "
                                           f"{timeout:.0f} s")
                    continue
                del running[arn]
                status, settled = _outcome(target, file_id, desc)
                if settled:
                    for message in messages:
                        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
                else:
                    _release(sqs, queue, messages)
                entry = {"file_id": file_id, "key": _body(messages[0])["replay"]["key"],
                         "status": status, "execution": arn, "messages": len(messages)}
                files.append(entry)
                if on_done is not None:
                    on_done(entry)
            if running:
                sleep(poll)
    finally:  # interrupted: what did not run is visible again for the next replay
        for _, messages in pending:
            _release(sqs, queue, messages)
        for _, messages, _started in running.values():
            _release(sqs, queue, messages)
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages",
                                        "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return {"replayed": len(files),
            "succeeded": sum(1 for f in files if f["status"] == "SUCCEEDED"),
            "failed": sum(1 for f in files if f["status"] == "FAILED"),
            "remaining": sum(int(v) for v in attributes.values()),
            "files": files}
