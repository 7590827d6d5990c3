"""A step that fails takes back what it published; the failure steps take back the file's outputs.

Without this, a file whose metadata write ran out of retries after the conversion (or after the
manifest) stayed FAILED in the table with its Parquet, rejects, aggregate and even its manifest
published in the processed bucket.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_aws_steps import CONTRACT as ORDERS_CONTRACT
from test_aws_steps import ORDERS, _ingest

from engine.aws import metadata, steps
from engine.errors import TransientError
from engine.plan import source_id

CONTRACT = ORDERS_CONTRACT + """\
rejects: {path: _rejects/}
aggregate:
  by: [note]
  metrics: {orders: {count: order_id}}
  path: _aggregates/
"""


def _keys(aws: Any) -> list[str]:
    listed = aws.s3.list_objects_v2(Bucket=aws.processed).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def _failing(monkeypatch: pytest.MonkeyPatch, status: str) -> None:
    real = metadata.update_status

    def update_status(table: Any, file_id: str, to: str, **kwargs: Any) -> None:
        if to == status:
            raise TransientError("DynamoDB ProvisionedThroughputExceededException (injected)")
        real(table, file_id, to, **kwargs)

    monkeypatch.setattr(metadata, "update_status", update_status)


def _validated(aws: Any) -> dict[str, Any]:
    aws.put_contract("orders.yaml", CONTRACT)
    state = _ingest(aws, "orders/a.csv", ORDERS)
    return steps.validate_head(state, aws.settings, aws.clients)


def test_published_names_every_output_of_the_conversion(aws: Any) -> None:
    state = steps.transform(_validated(aws), aws.settings, aws.clients)
    assert state["parts"][0]["rejects_uri"] is None  # no rejected row: the part does not say
    state = steps.output(state, aws.settings, aws.clients)
    written = [f"s3://{aws.processed}/{k}" for k in _keys(aws)]
    name = source_id(f"s3://{aws.raw}/orders/a.csv", version=state["version"])
    assert written == [f"s3://{aws.processed}/orders/{k}" for k in (
        f"_aggregates/{name}.parquet", f"_manifests/{name}.manifest.json",
        f"_rejects/{name}.rejects.ndjson", f"{name}.parquet")]
    assert steps.published(state, aws.settings) == written
    steps.unpublish(written)
    steps.unpublish(written)  # already gone: not an error
    assert _keys(aws) == []


def test_transform_whose_status_write_fails_publishes_nothing(
        aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    state = _validated(aws)
    _failing(monkeypatch, metadata.TRANSFORMED)
    with pytest.raises(TransientError, match="injected"):
        steps.transform(state, aws.settings, aws.clients)
    assert _keys(aws) == []


def test_output_whose_status_write_fails_takes_its_manifest_back(
        aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    state = steps.transform(_validated(aws), aws.settings, aws.clients)
    before = _keys(aws)
    _failing(monkeypatch, metadata.SUCCEEDED)
    with pytest.raises(TransientError, match="injected"):
        steps.output(state, aws.settings, aws.clients)
    assert _keys(aws) == before  # the data stays for the retry, the manifest is gone
    assert not any(k.endswith(".manifest.json") for k in before)


@pytest.mark.parametrize("step", ["handle_error", "route_to_dlq"])
def test_failure_steps_take_back_a_converted_file(aws: Any, step: str) -> None:
    state = steps.output(steps.transform(_validated(aws), aws.settings, aws.clients),
                         aws.settings, aws.clients)
    failed = {**state, "error": {"Error": "TransientError", "Cause": "{}"}}
    del failed["output"]
    getattr(steps, step)(failed, aws.settings, aws.clients)
    assert _keys(aws) == []
    assert metadata.record(aws.table, state["file_id"])["status"] == "FAILED"


def test_failure_before_conversion_leaves_earlier_outputs_alone(aws: Any) -> None:
    """An older version's outputs (same keys) are not this execution's to remove."""
    done = steps.output(steps.transform(_validated(aws), aws.settings, aws.clients),
                        aws.settings, aws.clients)
    before = _keys(aws)
    newer = _ingest(aws, "orders/a.csv", ORDERS + b"4,1.0,x\n")
    steps.route_to_dlq({**newer, "error": {"Error": "SchemaError", "Cause": "{}"}},
                       aws.settings, aws.clients)
    assert _keys(aws) == before and newer["file_id"] != done["file_id"]
