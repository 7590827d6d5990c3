from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from engine.aws import metadata
from engine.errors import TransientError

NOW = datetime(2025, 3, 1, 10, 15, tzinfo=UTC)


def _state(**extra: Any) -> dict[str, Any]:
    return {"file_id": "s3://raw/orders/a.csv#v1", "bucket": "raw", "key": "orders/a.csv",
            "version": "v1", "etag": "e1", "size": 1234, "contract": None, **extra}


def test_claim_creates_the_record_once(aws: Any) -> None:
    assert metadata.claim(aws.table, _state(), now=NOW) is True
    assert metadata.claim(aws.table, _state(), now=NOW) is False  # a duplicate event
    item = metadata.record(aws.table, "s3://raw/orders/a.csv#v1")
    assert item["status"] == "RECEIVED"
    assert item["size"] == 1234
    assert item["received_at"] == "2025-03-01T10:15:00.000Z"
    assert item["expires_at"] == int((NOW + timedelta(days=180)).timestamp())


def test_replay_reclaims_a_failed_file_only(aws: Any) -> None:
    assert metadata.claim(aws.table, _state(), now=NOW)
    assert not metadata.claim(aws.table, _state(replay=True), now=NOW)  # still RECEIVED
    metadata.update_status(aws.table, "s3://raw/orders/a.csv#v1", "FAILED",
                           error_type="SchemaError", error_message="bad")
    assert metadata.claim(aws.table, _state(replay=True), now=NOW)
    assert metadata.record(aws.table, "s3://raw/orders/a.csv#v1")["status"] == "RECEIVED"


def test_update_status_sets_fields_and_keeps_the_ttl(aws: Any) -> None:
    metadata.claim(aws.table, _state(), now=NOW)
    later = NOW + timedelta(minutes=5)
    metadata.update_status(aws.table, "s3://raw/orders/a.csv#v1", metadata.SUCCEEDED, now=later,
                           rows_out=10, duration_seconds=1.25, manifest=None)
    item = metadata.record(aws.table, "s3://raw/orders/a.csv#v1")
    assert item["status"] == "SUCCEEDED"
    assert item["rows_out"] == 10
    assert item["duration_seconds"] == 1.25
    assert "manifest" not in item  # None values are skipped
    assert item["updated_at"] == "2025-03-01T10:20:00.000Z"
    assert item["expires_at"] == int((NOW + timedelta(days=180)).timestamp())


def test_update_status_creates_a_missing_record_with_a_ttl(aws: Any) -> None:
    metadata.update_status(aws.table, "s3://raw/x#e", "FAILED", now=NOW, error_type="X",
                           error_message="m" * 10_000)
    item = metadata.record(aws.table, "s3://raw/x#e")
    assert item["expires_at"] == int((NOW + timedelta(days=180)).timestamp())
    assert len(item["error_message"]) == metadata.MAX_ERROR_MESSAGE_CHARS


def test_unknown_status_and_missing_record(aws: Any) -> None:
    with pytest.raises(ValueError, match="unknown status"):
        metadata.update_status(aws.table, "f", "DONE")
    assert metadata.record(aws.table, "nope") == {}


@pytest.fixture
def stubbed(aws_env: None) -> Any:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table("t")
    with Stubber(table.meta.client) as stubber:
        yield table, stubber


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException",
                                  "ThrottlingException", "RequestLimitExceeded"])
def test_throttling_is_a_transient_error(stubbed: Any, code: str) -> None:
    table, stubber = stubbed
    stubber.add_client_error("put_item", service_error_code=code, http_status_code=400)
    stubber.add_client_error("update_item", service_error_code=code, http_status_code=400)
    stubber.add_client_error("get_item", service_error_code=code, http_status_code=400)
    with pytest.raises(TransientError, match=code):
        metadata.claim(table, _state(), now=NOW)
    with pytest.raises(TransientError, match=code):
        metadata.update_status(table, "f", "VALIDATED")
    with pytest.raises(TransientError, match=code):
        metadata.record(table, "f")


def test_other_client_errors_propagate(stubbed: Any) -> None:
    import botocore.exceptions

    table, stubber = stubbed
    stubber.add_client_error("put_item", service_error_code="ResourceNotFoundException",
                             http_status_code=400)
    with pytest.raises(botocore.exceptions.ClientError):
        metadata.claim(table, _state(), now=NOW)
