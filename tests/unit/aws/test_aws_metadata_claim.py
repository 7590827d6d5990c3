"""The claim survives botocore resending a conditional put that was already applied."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest

from engine.aws import metadata


def _state(**extra: Any) -> dict[str, Any]:
    return {"file_id": "s3://raw/orders/a.csv#v1", "bucket": "raw", "key": "orders/a.csv",
            "version": "v1", "etag": "e1", "size": 1234, "contract": None, **extra}


class ResentTable:
    """A table whose first put is applied, then resent (its response lost), as botocore does.

    The resent put fails its condition on the record the first one wrote; DynamoDB returns that
    record (``ReturnValuesOnConditionCheckFailure``) unless ``return_item`` is False.
    """

    def __init__(self, existing: dict[str, Any] | None = None, return_item: bool = True) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        if existing:
            self.items[existing["file_id"]] = existing
        self.return_item = return_item
        self.puts: list[dict[str, Any]] = []

    def put_item(self, **kwargs: Any) -> None:
        self.puts.append(kwargs)
        item = kwargs["Item"]
        if item["file_id"] not in self.items:  # the first send: applied, response lost
            self.items[item["file_id"]] = item
        # botocore's retry of the same request (or another claimant's put) finds the record
        response: dict[str, Any] = {"Error": {"Code": "ConditionalCheckFailedException",
                                              "Message": "The conditional request failed"}}
        if self.return_item:
            response["Item"] = self.items[item["file_id"]]
        raise botocore.exceptions.ClientError(response, "PutItem")

    def get_item(self, Key: dict[str, Any], ConsistentRead: bool) -> dict[str, Any]:  # noqa: N803
        return {"Item": self.items.get(Key["file_id"])}


@pytest.mark.parametrize("return_item", [True, False])
def test_own_put_applied_before_its_response_was_lost_is_a_claim(return_item: bool) -> None:
    table = ResentTable(return_item=return_item)
    assert metadata.claim(table, _state()) is True
    (put,) = table.puts
    assert put["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    assert table.items["s3://raw/orders/a.csv#v1"]["claim_token"]


@pytest.mark.parametrize("return_item", [True, False])
def test_another_executions_claim_is_still_a_duplicate(return_item: bool) -> None:
    theirs = {"file_id": "s3://raw/orders/a.csv#v1", "status": "RECEIVED",
              "claim_token": "another-execution"}
    table = ResentTable(existing=theirs, return_item=return_item)
    assert metadata.claim(table, _state()) is False
    assert table.items["s3://raw/orders/a.csv#v1"]["claim_token"] == "another-execution"


def test_a_record_from_before_claim_tokens_is_a_duplicate() -> None:
    table = ResentTable(existing={"file_id": "s3://raw/orders/a.csv#v1", "status": "RECEIVED"})
    assert metadata.claim(table, _state()) is False


def test_low_level_item_shape_is_understood(monkeypatch: pytest.MonkeyPatch) -> None:
    table = ResentTable()
    real = table.put_item

    def put_item(**kwargs: Any) -> None:
        try:
            real(**kwargs)
        except botocore.exceptions.ClientError as exc:
            item = exc.response["Item"]
            exc.response["Item"] = {k: {"S": str(v)} for k, v in item.items()}
            raise

    monkeypatch.setattr(table, "put_item", put_item)
    assert metadata.claim(table, _state()) is True
