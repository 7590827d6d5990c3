"""run_remote (``chunkwise pipeline run s3://… --stack NAME``) against stubbed AWS clients.

A deployed stack cannot be reached here, so every call is answered by botocore's Stubber: the
test pins which calls are made, with which parameters, and how their answers become the result.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from engine.aws.remote import run_remote

SM_ARN = "arn:aws:states:eu-west-1:111122223333:stateMachine:chunkwise-dev-Pipeline"
EXEC_ARN = "arn:aws:states:eu-west-1:111122223333:execution:chunkwise-dev-Pipeline:e1"
FILE_ID = "s3://raw-bucket/orders/x.csv#v1"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def clients(aws_env: None) -> dict[str, Any]:
    return {name: boto3.client(name, region_name="eu-west-1")
            for name in ("cloudformation", "s3", "stepfunctions", "dynamodb")}


def _entered(i: int, name: str, kind: str = "TaskStateEntered") -> dict[str, Any]:
    return {"timestamp": NOW, "type": kind, "id": i,
            "stateEnteredEventDetails": {"name": name, "input": "{}"}}


def _lambda(i: int, kind: str, output: Any = None) -> dict[str, Any]:
    event: dict[str, Any] = {"timestamp": NOW, "type": kind, "id": i}
    if kind == "LambdaFunctionSucceeded":
        event["lambdaFunctionSucceededEventDetails"] = {"output": json.dumps(output)}
    if kind == "LambdaFunctionScheduled":
        event["lambdaFunctionScheduledEventDetails"] = {"resource": "arn:f"}
    return event


def _stub_stack(cfn: Stubber, *, with_output: bool) -> None:
    outputs = [{"OutputKey": "PipelineStateMachineArn", "OutputValue": SM_ARN}] if with_output \
        else [{"OutputKey": "RawBucketName", "OutputValue": "raw-bucket"}]
    cfn.add_response("describe_stacks", {"Stacks": [{
        "StackName": "chunkwise-dev", "CreationTime": NOW, "StackStatus": "CREATE_COMPLETE",
        "Outputs": outputs}]}, {"StackName": "chunkwise-dev"})

    def summary(logical: str, physical: str, kind: str) -> dict[str, Any]:
        return {"LogicalResourceId": logical, "PhysicalResourceId": physical,
                "ResourceType": kind, "LastUpdatedTimestamp": NOW,
                "ResourceStatus": "CREATE_COMPLETE"}

    cfn.add_response("list_stack_resources", {"StackResourceSummaries": [
        summary("MetadataTable", "chunkwise-dev-MetadataTable-1", "AWS::DynamoDB::Table"),
        summary("ProcessedBucket", "processed-bucket", "AWS::S3::Bucket"),
    ], "NextToken": "page2"}, {"StackName": "chunkwise-dev"})
    cfn.add_response("list_stack_resources", {"StackResourceSummaries": [
        summary("DeadLetterQueue", "https://sqs.eu-west-1.amazonaws.com/111122223333/dlq",
                "AWS::SQS::Queue"),
        summary("PipelineStateMachine", SM_ARN, "AWS::StepFunctions::StateMachine"),
    ]}, {"StackName": "chunkwise-dev", "NextToken": "page2"})


def _stub_start(s3: Stubber, sfn: Stubber) -> None:
    s3.add_response("head_object", {"ContentLength": 1234, "ETag": '"abc"', "VersionId": "v1"},
                    {"Bucket": "raw-bucket", "Key": "orders/x.csv"})
    sfn.add_response("start_execution", {"executionArn": EXEC_ARN, "startDate": NOW},
                     {"stateMachineArn": SM_ARN, "name": ANY, "input": ANY})


def _describe(status: str, **extra: Any) -> dict[str, Any]:
    return {"executionArn": EXEC_ARN, "stateMachineArn": SM_ARN, "status": status,
            "startDate": NOW, **extra}


def test_follows_a_succeeded_execution(clients: dict[str, Any]) -> None:
    stubs = {name: Stubber(client) for name, client in clients.items()}
    _stub_stack(stubs["cloudformation"], with_output=True)
    _stub_start(stubs["s3"], stubs["stepfunctions"])
    sfn = stubs["stepfunctions"]
    sfn.add_response("describe_execution", _describe("RUNNING"), {"executionArn": EXEC_ARN})
    final = {"file_id": FILE_ID, "parts": [{"index": 0, "uri": "s3://processed-bucket/p0"}],
             "output": {"manifest": "s3://processed-bucket/_manifest.json"}}
    sfn.add_response("describe_execution", _describe("SUCCEEDED", output=json.dumps(final)),
                     {"executionArn": EXEC_ARN})
    sfn.add_response("get_execution_history", {"events": [
        _entered(1, "Ingest"), _lambda(2, "LambdaFunctionScheduled"),
        _lambda(3, "LambdaFunctionSucceeded", {"file_id": FILE_ID, "route": "single"}),
        _entered(4, "IsDuplicate", "ChoiceStateEntered")], "nextToken": "t"},
        {"executionArn": EXEC_ARN, "maxResults": 1000})
    sfn.add_response("get_execution_history", {"events": [
        _entered(5, "Validate"), _entered(6, "SizeRoute", "ChoiceStateEntered"),
        _entered(7, "Transform"), _lambda(8, "LambdaFunctionScheduled"),
        _lambda(9, "LambdaFunctionScheduled"), _entered(10, "Output"),
        _entered(11, "Done", "SucceedStateEntered")]},
        {"executionArn": EXEC_ARN, "maxResults": 1000, "nextToken": "t"})
    stubs["dynamodb"].add_response("get_item", {"Item": {
        "file_id": {"S": FILE_ID}, "status": {"S": "SUCCEEDED"}, "rows_out": {"N": "12"},
        "duration_seconds": {"N": "1.5"}}},
        {"TableName": "chunkwise-dev-MetadataTable-1", "Key": {"file_id": {"S": FILE_ID}},
         "ConsistentRead": True})
    sleeps: list[float] = []
    for stub in stubs.values():
        stub.activate()
    result = run_remote("s3://raw-bucket/orders/x.csv", stack="chunkwise-dev", clients=clients,
                        sleep=sleeps.append, poll=5)
    for stub in stubs.values():
        stub.assert_no_pending_responses()
    assert sleeps == [5]
    assert result["status"] == "SUCCEEDED" and result["error"] is None
    assert result["states"] == ["Ingest", "IsDuplicate", "Validate", "SizeRoute", "Transform",
                                "Output", "Done"]
    assert result["attempts"] == {"Ingest": 1, "Transform": 2}
    assert result["record"] == {"file_id": FILE_ID, "status": "SUCCEEDED", "rows_out": 12,
                                "duration_seconds": 1.5}
    assert result["outputs"] == ["s3://processed-bucket/p0",
                                 "s3://processed-bucket/_manifest.json"]
    assert result["dlq"] == []
    assert result["execution_arn"] == EXEC_ARN


def test_started_with_the_object_created_event(clients: dict[str, Any]) -> None:
    stubs = {name: Stubber(client) for name, client in clients.items()}
    _stub_stack(stubs["cloudformation"], with_output=False)  # found by resource type
    _stub_start(stubs["s3"], stubs["stepfunctions"])
    cause = json.dumps({"errorMessage": "column b missing", "errorType": "SchemaError"})
    stubs["stepfunctions"].add_response(
        "describe_execution", _describe("FAILED", error="SchemaError", cause=cause),
        {"executionArn": EXEC_ARN})
    stubs["stepfunctions"].add_response("get_execution_history", {"events": [
        _entered(1, "Ingest"), _lambda(2, "LambdaFunctionSucceeded", {"file_id": FILE_ID}),
        _entered(3, "Validate"), _entered(4, "DLQRoute"),
        _lambda(5, "LambdaFunctionSucceeded", {
            "file_id": FILE_ID, "dlq": {"message_id": "m-1"},
            "failure": {"error_type": "SchemaError", "error_message": "column b missing"}}),
        _entered(6, "Failed", "FailStateEntered")]},
        {"executionArn": EXEC_ARN, "maxResults": 1000})
    stubs["dynamodb"].add_response("get_item", {}, {
        "TableName": "chunkwise-dev-MetadataTable-1", "Key": {"file_id": {"S": FILE_ID}},
        "ConsistentRead": True})
    started: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        started.append(json.loads(params["input"]))

    clients["stepfunctions"].meta.events.register("provide-client-params.states.StartExecution",
                                                  capture)
    for stub in stubs.values():
        stub.activate()
    result = run_remote("s3://raw-bucket/orders/x.csv", stack="chunkwise-dev", clients=clients,
                        sleep=lambda s: None)
    assert result["status"] == "FAILED"
    assert result["error"] == {"type": "SchemaError", "message": "column b missing",
                               "cause": cause}
    assert result["record"] is None
    assert result["dlq"] == [{
        "queue_url": "https://sqs.eu-west-1.amazonaws.com/111122223333/dlq", "sent": True,
        "message_id": "m-1",
        "failure": {"error_type": "SchemaError", "error_message": "column b missing"}}]
    (event,) = started
    assert event["source"] == "aws.s3" and event["detail-type"] == "Object Created"
    assert event["detail"]["bucket"] == {"name": "raw-bucket"}
    assert event["detail"]["object"]["key"] == "orders/x.csv"
    assert event["detail"]["object"]["size"] == 1234
    assert event["detail"]["object"]["etag"] == "abc"
    assert event["detail"]["object"]["version-id"] == "v1"
    assert event["region"] == "eu-west-1"


def test_rejects_a_non_s3_source() -> None:
    with pytest.raises(ValueError, match="s3://"):
        run_remote("orders.csv", stack="x", clients={})
