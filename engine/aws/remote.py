"""Run the pipeline on a deployed stack: start an execution for an object and follow it.

:func:`run_remote` finds the stack's state machine, table, processed bucket and queue through
CloudFormation, starts an execution with the event S3 would send for the object, waits for it and
returns the same result shape as a local run (:func:`engine.aws.local.runner.run_local`), built
with :mod:`engine.aws.executions`.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from engine.aws.executions import (
    dataset_table,
    final_outputs,
    object_created_event,
    read_history,
    read_record,
    run_result,
    wait_for,
)

__all__ = ["run_on", "run_remote", "stack_resources", "stack_targets"]

# For the event's "account" (the steps do not read it) and when no region is known.
_EVENT_ACCOUNT = "123456789012"
_DEFAULT_REGION = "us-east-1"


def stack_resources(cfn: Any, stack: str) -> dict[str, dict[str, str]]:
    """Logical id → ``{"type", "id"}`` (physical id) of every resource of ``stack``."""
    found: dict[str, dict[str, str]] = {}
    kwargs: dict[str, Any] = {"StackName": stack}
    while True:
        page = cfn.list_stack_resources(**kwargs)
        for r in page.get("StackResourceSummaries", []):
            found[r["LogicalResourceId"]] = {"type": r["ResourceType"],
                                             "id": r.get("PhysicalResourceId", "")}
        token = page.get("NextToken")
        if not token:
            return found
        kwargs["NextToken"] = token


def stack_targets(cfn: Any, stack: str) -> dict[str, str | None]:
    """The state machines, table, buckets and DLQ URL of a deployed stack.

    The per-file state machine is the ``PipelineStateMachine`` resource, else a stack output
    that is a state machine ARN, else the stack's one ``AWS::StepFunctions::StateMachine``; the
    rest come from the template's logical ids (``BackfillStateMachine``, ``MetadataTable``,
    ``RawBucket``, ``ProcessedBucket``, ``DeadLetterQueue``), ``None`` for one the stack lacks.

    Raises:
        LookupError: no such stack, or no per-file state machine in it.
    """
    stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    if not stacks:
        raise LookupError(f"no stack {stack!r}")
    resources = stack_resources(cfn, stack)

    def physical(logical: str) -> str | None:
        r = resources.get(logical)
        return r["id"] if r else None

    arn = physical("PipelineStateMachine")
    for out in stacks[0].get("Outputs", []) or []:
        value = str(out.get("OutputValue", ""))
        if arn is None and value.startswith("arn:") and ":states:" in value \
                and ":stateMachine:" in value:
            arn = value
    if arn is None:
        machines = [r["id"] for r in resources.values()
                    if r["type"] == "AWS::StepFunctions::StateMachine"]
        if len(machines) != 1:
            raise LookupError(f"stack {stack!r} has {len(machines)} state machines and no "
                              "output naming one")
        arn = machines[0]
    return {"state_machine": arn, "backfill_state_machine": physical("BackfillStateMachine"),
            "table": physical("MetadataTable"), "raw_bucket": physical("RawBucket"),
            "processed_bucket": physical("ProcessedBucket"),
            "queue": physical("DeadLetterQueue")}


def _dlq_entries(hist_states: list[str], routed: Any, queue: str | None) -> list[Any]:
    """What the ``DLQRoute`` step reported, if it ran: ``[{"queue_url", "sent", ...}]``."""
    if "DLQRoute" not in hist_states:
        return []
    entry: dict[str, Any] = {"queue_url": queue, "sent": routed is not None}
    if isinstance(routed, dict):
        sent = routed.get("dlq")
        if isinstance(sent, dict) and sent.get("message_id"):
            entry["message_id"] = sent["message_id"]
        if isinstance(routed.get("failure"), dict):
            entry["failure"] = routed["failure"]
    return [entry]


def run_remote(
    uri: str,
    *,
    stack: str,
    clients: Mapping[str, Any] | None = None,
    region: str | None = None,
    poll: float = 2.0,
    timeout: float | None = 3600,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Start an execution of a deployed stack's state machine for ``uri`` and follow it.

    The input is the same EventBridge "Object Created" event S3 sends (built from a
    ``head_object`` of ``uri``). If the upload already started an execution, this one finds the
    file claimed and ends in ``Skipped``. The DLQ is not read (receiving would hide messages
    from operators): ``dlq`` lists what the ``DLQRoute`` step reported, if it ran
    (``{"queue_url", "sent", "message_id", "failure"}``). ``outputs`` are the parts and the
    manifest the final state names (the processed bucket is not listed).

    Args:
        uri: ``s3://bucket/key`` of an object in the stack's raw bucket.
        stack: the CloudFormation stack name.
        clients: ``{"cloudformation", "s3", "stepfunctions", "dynamodb", "glue"}`` clients
            (tests pass stubbed ones); default boto3 clients from the environment's credentials.
        region: region of the default clients.
        poll: seconds between ``DescribeExecution`` calls.
        timeout: seconds to follow the execution before giving up (``None``: no limit).
        sleep: the wait between polls (tests pass a no-op).

    Returns:
        The same shape as a local run's result (:func:`engine.aws.local.runner.run_local`).

    Raises:
        ValueError: ``uri`` is not ``s3://bucket/key``.
        LookupError: the stack or its state machine cannot be found.
        TimeoutError: the execution is still running after ``timeout`` seconds.
    """
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"expected s3://bucket/key, got {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    given = dict(clients or {})

    def client(name: str) -> Any:
        if name not in given:
            import boto3

            given[name] = boto3.client(name, region_name=region)
        return given[name]

    targets = stack_targets(client("cloudformation"), stack)
    return run_on(uri, targets, client, region=region, poll=poll, timeout=timeout, sleep=sleep)


def run_on(uri: str, targets: Mapping[str, str | None], client: Callable[[str], Any], *,
           region: str | None = None, poll: float = 2.0, timeout: float | None = 3600,
           sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """:func:`run_remote` on known ``targets`` (:func:`stack_targets`'s) with ``client(name)``.

    The local stack's commands use it too (``pipeline run --local``).

    Raises:
        ValueError: ``uri`` is not ``s3://bucket/key``.
        TimeoutError: the execution is still running after ``timeout`` seconds.
    """
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"expected s3://bucket/key, got {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    head = client("s3").head_object(Bucket=bucket, Key=key)
    event = object_created_event(
        bucket, key, size=int(head["ContentLength"]), etag=head["ETag"],
        version=head.get("VersionId"), account=_EVENT_ACCOUNT,
        region=region or getattr(getattr(client("s3"), "meta", None), "region_name", None)
        or _DEFAULT_REGION,
    )
    sfn = client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=targets["state_machine"], name=str(uuid.uuid4()),
                              input=json.dumps(event))["executionArn"]
    desc = wait_for(sfn, arn, poll=poll, timeout=timeout, sleep=sleep)
    hist = read_history(sfn, arn)
    record = read_record(client("dynamodb"), targets["table"], hist.file_id) \
        if targets["table"] else None
    outputs: list[str] = []
    with contextlib.suppress(TypeError, ValueError):
        outputs = final_outputs(json.loads(desc.get("output") or "null"))
    dlq = _dlq_entries(hist.states, hist.outputs.get("DLQRoute"), targets["queue"])
    result = run_result(desc, hist, record=record, outputs=outputs, dlq=dlq)
    result["catalog"] = _catalog(client, dataset_table(hist))
    return result


def _catalog(client: Callable[[str], Any], table: tuple[str, str] | None) -> dict[str, Any] | None:
    """The dataset's Glue table, as a local run shows it; ``None`` without one.

    Without the permission to read it, the table's names and the error: the run's result does
    not depend on it.
    """
    if table is None:
        return None
    import botocore.exceptions

    from engine.aws import catalog

    try:
        return catalog.describe(client("glue"), *table)
    except botocore.exceptions.ClientError as exc:
        return {"database": table[0], "table": table[1], "error": str(exc)}
