"""Fixtures for engine.aws: moto S3 + DynamoDB + SQS, settings, events and a fake Lambda context."""

from __future__ import annotations

import copy
import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from engine.aws import routing
from engine.aws.clients import Clients, reset_clients
from engine.aws.settings import Settings

EVENTS = Path(__file__).parent / "events"
ROOT = Path(__file__).resolve().parents[3]

RAW = "chunkwise-raw-dev"
PROCESSED = "chunkwise-processed-dev"
CONFIG = "chunkwise-config-dev"
TABLE = "chunkwise-metadata-dev"
QUEUE = "chunkwise-dlq-dev"



class FakeContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    def __init__(self, remaining_ms: int = 900_000, name: str = "chunkwise-test") -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.memory_limit_in_mb = 1024
        self.aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "2025/03/01/[$LATEST]abcdef"
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms


@dataclass
class Aws:
    """What a test needs to drive the steps against moto."""

    settings: Settings
    clients: Clients
    s3: Any
    table: Any
    sqs: Any
    raw: str = RAW
    processed: str = PROCESSED
    config: str = CONFIG

    def put(self, key: str, data: bytes, bucket: str = RAW) -> dict[str, Any]:
        """Upload ``data`` and return the EventBridge event S3 would send for it."""
        response = self.s3.put_object(Bucket=bucket, Key=key, Body=data)
        return object_created(bucket, key, len(data), response["ETag"].strip('"'),
                              response.get("VersionId"))

    def put_contract(self, name: str, text: str) -> str:
        self.s3.put_object(Bucket=CONFIG, Key=f"contracts/{name}", Body=text.encode())
        return f"s3://{CONFIG}/contracts/{name}"

    def get(self, uri: str) -> bytes:
        bucket, key = uri[5:].split("/", 1)
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def dlq_messages(self) -> list[dict[str, Any]]:
        url = self.settings.dlq_url
        out = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       MessageAttributeNames=["All"])
        return [{"body": json.loads(m["Body"]), "attributes": m.get("MessageAttributes", {})}
                for m in out.get("Messages", [])]


def object_created(bucket: str, key: str, size: int | None, etag: str | None,
                   version: str | None) -> dict[str, Any]:
    """The saved EventBridge event, for another object (the key URL-encoded as S3 does)."""
    from urllib.parse import quote_plus

    event = copy.deepcopy(json.loads((EVENTS / "object_created.json").read_text()))
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["bucket"]["name"] = bucket
    obj = event["detail"]["object"]
    obj["key"] = quote_plus(key, safe="/")
    if size is None:
        del obj["size"]
    else:
        obj["size"] = size
    obj["etag"] = etag
    if version is None:
        del obj["version-id"]
    else:
        obj["version-id"] = version
    return event


@pytest.fixture
def saved_event() -> dict[str, Any]:
    return json.loads((EVENTS / "object_created.json").read_text())


@pytest.fixture
def aws(s3: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """Buckets (raw is versioned), the metadata table and the DLQ in moto; env set to match."""
    import boto3

    reset_clients()
    routing.clear_cache()
    for bucket in (RAW, PROCESSED, CONFIG):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=RAW, VersioningConfiguration={"Status": "Enabled"})
    dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
    table = dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "file_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "file_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    env = {
        "METADATA_TABLE": TABLE,
        "PROCESSED_BUCKET": PROCESSED,
        "DLQ_URL": url,
        "CONTRACTS_URI": f"s3://{CONFIG}/contracts/",
        "MAX_SINGLE_BYTES": "500MB",
        "RANGE_BYTES": "256MB",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    yield Aws(settings, Clients(), s3, table, sqs)
    reset_clients()
    routing.clear_cache()


def load_handler(step: str) -> ModuleType:
    """``lambda/<step>/handler.py`` as a module (``lambda`` is a keyword: no package import)."""
    path = ROOT / "lambda" / step / "handler.py"
    spec = importlib.util.spec_from_file_location(f"chunkwise_lambda_{step}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def context() -> type[FakeContext]:
    """The fake Lambda context class: ``context(remaining_ms=...)``."""
    return FakeContext


@pytest.fixture
def handler_module() -> Any:
    """Load a handler by step name: ``handler_module("ingest").handler``."""
    return load_handler


@pytest.fixture
def event_for() -> Any:
    """Build an Object Created event: ``event_for(bucket, key, size, etag, version)``."""
    return object_created
