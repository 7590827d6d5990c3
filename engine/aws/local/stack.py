"""The template's resources on local AWS: what a local run, or the local stack, creates.

:func:`create` makes, through whatever client factory it is given (moto in this process, or the
local stack's server), what ``template.yaml`` deploys for the pipeline: the raw bucket (versioned,
with the contracts under ``_contracts/``) and the processed bucket, the metadata table (TTL on
``expires_at``, and the ``by_status`` index ``pipeline status`` reads), the DLQ, the Glue
database, and two state machines: the per-file pipeline (``stepfunctions/pipeline.asl.json``) and
the backfill (``stepfunctions/backfill.asl.json``), each rendered with the substitutions the
template gives it. The names are fixed (:data:`LOCAL_NAMES`), so a local stack is found by them.

Example:
    >>> backfill_substitutions("arn:aws:states:us-east-1:123456789012:stateMachine:p")
    ... # doctest: +NORMALIZE_WHITESPACE
    {'RawBucketName': 'chunkwise-raw',
     'PipelineStateMachineArn': 'arn:aws:states:us-east-1:123456789012:stateMachine:p',
     'BackfillMaxConcurrency': '8', 'BackfillToleratedFailurePercentage': '10'}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.aws import settings as aws_settings
from engine.aws.local.asl import locate, render_definition
from engine.aws.status import STATUS_INDEX

__all__ = [
    "BACKFILL_MAX_CONCURRENCY",
    "BACKFILL_TOLERATED_FAILURE_PERCENTAGE",
    "LOCAL_NAMES",
    "STATUS_ATTRIBUTES",
    "backfill_asl_path",
    "backfill_substitutions",
    "create",
    "handler_env",
]

#: The Map's concurrency of a local run when neither the caller nor the settings give one.
LOCAL_MAP_MAX_CONCURRENCY = 4

#: Fixed names of the resources a local run creates (the template's logical ids in brackets).
LOCAL_NAMES: dict[str, str] = {
    "raw_bucket": "chunkwise-raw",  # RawBucket
    "processed_bucket": "chunkwise-processed",  # ProcessedBucket
    "contracts_prefix": "_contracts/",  # in the raw bucket, as the template's CONTRACTS_URI
    "table": "chunkwise-metadata",  # MetadataTable
    "queue": "chunkwise-dlq",  # DeadLetterQueue
    "database": "chunkwise",  # GlueDatabase
    "state_machine": "chunkwise-pipeline",  # PipelineStateMachine
    "backfill_state_machine": "chunkwise-backfill",  # BackfillStateMachine
}

#: The backfill's limits on local AWS: the template's parameters have their own defaults. moto
#: runs this many child executions at once; it does not enforce the tolerated percentage.
BACKFILL_MAX_CONCURRENCY = 8
BACKFILL_TOLERATED_FAILURE_PERCENTAGE = 10

#: The attributes the status index projects: what ``pipeline status`` shows of a record.
STATUS_ATTRIBUTES = ("bucket", "key", "rows_in", "rows_out", "rows_rejected", "rows_filtered",
                     "error_type", "error_message", "received_at")


def backfill_asl_path() -> Path:
    """The backfill definition (``$CHUNKWISE_BACKFILL_ASL``, else the packaged one)."""
    return locate("CHUNKWISE_BACKFILL_ASL", "stepfunctions/backfill.asl.json")


def backfill_substitutions(pipeline_arn: str, *, raw_bucket: str = LOCAL_NAMES["raw_bucket"],
                           max_concurrency: int = BACKFILL_MAX_CONCURRENCY,
                           tolerated_failure_percentage: float =
                           BACKFILL_TOLERATED_FAILURE_PERCENTAGE) -> dict[str, str]:
    """The backfill's ``DefinitionSubstitutions``, as the template gives them, locally."""
    return {"RawBucketName": raw_bucket, "PipelineStateMachineArn": pipeline_arn,
            "BackfillMaxConcurrency": str(max_concurrency),
            "BackfillToleratedFailurePercentage": str(tolerated_failure_percentage)}


def create(client: Callable[[str], Any], contracts: Iterable[Path] = (), *,
           names: dict[str, str] | None = None) -> dict[str, str]:
    """Create the template's resources with ``client(service)`` clients; upload ``contracts``.

    Returns:
        ``{"queue_url", "state_machine_arn", "backfill_state_machine_arn"}``.
    """
    n = names or LOCAL_NAMES
    s3 = client("s3")
    for bucket in (n["raw_bucket"], n["processed_bucket"]):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=n["raw_bucket"],
                             VersioningConfiguration={"Status": "Enabled"})
    for path in contracts:
        s3.put_object(Bucket=n["raw_bucket"], Key=f"{n['contracts_prefix']}{path.name}",
                      Body=path.read_bytes())
    ddb = client("dynamodb")
    ddb.create_table(
        TableName=n["table"],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"}
                              for name in ("file_id", "status", "updated_at")],
        KeySchema=[{"AttributeName": "file_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{
            "IndexName": STATUS_INDEX,
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"},
                          {"AttributeName": "updated_at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "INCLUDE",
                           "NonKeyAttributes": list(STATUS_ATTRIBUTES)},
        }],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_time_to_live(TableName=n["table"], TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expires_at"})
    client("glue").create_database(DatabaseInput={
        "Name": n["database"], "Description": "chunkwise datasets (local run)"})
    queue_url = client("sqs").create_queue(QueueName=n["queue"], Attributes={
        "MessageRetentionPeriod": "1209600", "SqsManagedSseEnabled": "true"})["QueueUrl"]
    role = client("iam").create_role(
        RoleName="chunkwise-pipeline-local",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"},
            "Action": "sts:AssumeRole"}]}),
    )["Role"]["Arn"]
    sfn = client("stepfunctions")
    pipeline = sfn.create_state_machine(
        name=n["state_machine"], definition=render_definition(), roleArn=role, type="STANDARD",
    )["stateMachineArn"]
    backfill = sfn.create_state_machine(
        name=n["backfill_state_machine"], roleArn=role, type="STANDARD",
        definition=render_definition(backfill_substitutions(pipeline,
                                                            raw_bucket=n["raw_bucket"]),
                                     path=backfill_asl_path()),
    )["stateMachineArn"]
    return {"queue_url": queue_url, "state_machine_arn": pipeline,
            "backfill_state_machine_arn": backfill}


def handler_env(names: Mapping[str, str], queue_url: str,
                overrides: Mapping[str, str] | None = None, *,
                map_max_concurrency: int | None = None) -> dict[str, str]:
    """The environment the handlers see: the template's function environment, locally.

    Args:
        names: the resources' names (:data:`LOCAL_NAMES`).
        queue_url: the DLQ's URL.
        overrides: settings as environment variables, applied last but one.
        map_max_concurrency: the plan step's ``MAP_MAX_CONCURRENCY`` (default: the override's,
            else :data:`LOCAL_MAP_MAX_CONCURRENCY`).
    """
    env = {
        "METADATA_TABLE": names["table"],
        "PROCESSED_BUCKET": names["processed_bucket"],
        "DLQ_URL": queue_url,
        "CONTRACTS_URI": f"s3://{names['raw_bucket']}/{names['contracts_prefix']}",
        "POWERTOOLS_SERVICE_NAME": "chunkwise",
        "POWERTOOLS_METRICS_NAMESPACE": "chunkwise",
        aws_settings.MAP_MAX_CONCURRENCY: str(LOCAL_MAP_MAX_CONCURRENCY),
        aws_settings.GLUE_DATABASE: names["database"],
    }
    env.update(overrides or {})
    if map_max_concurrency is not None:
        env[aws_settings.MAP_MAX_CONCURRENCY] = str(int(map_max_concurrency))
    # the transform's own memory: this process also holds moto and the other handlers
    env[aws_settings.PEAK_RSS_SCOPE] = "growth"
    return env
