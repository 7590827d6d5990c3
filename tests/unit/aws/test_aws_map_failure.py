"""A Map route's part that fails for good: the error handler takes back what the others published.

The Map's error carries no results, so the parts' entries never reach the state. Each part adds
what it committed to the file record's ``published`` set; the failure steps record FAILED, then
delete what the set names; a part that finishes after that is refused and deletes its own.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_aws_steps import CONTRACT as ORDERS_CONTRACT
from test_aws_steps import _ingest, _settings, quoted_csv
from test_aws_unpublish import _keys

from engine.aws import metadata, steps
from engine.errors import EngineError, SchemaError, TransientError
from engine.plan import source_id

CONTRACT = ORDERS_CONTRACT + "rejects: {path: _rejects/}\n"


def _planned(aws: Any, data: bytes, contract: str | None = CONTRACT) -> tuple[Any, dict[str, Any]]:
    if contract:
        aws.put_contract("orders.yaml", contract)
    settings = _settings(aws, max_single_bytes=10_000, range_bytes=20_000)
    state = _ingest(aws, "orders/big.csv", data, max_single_bytes=10_000, range_bytes=20_000)
    assert state["route"] == "map"
    state = steps.plan(steps.validate_head(state, settings, aws.clients), settings, aws.clients)
    assert len(state["ranges"]) >= 4
    return settings, state


def _part(aws: Any, settings: Any, state: dict[str, Any], index: int) -> dict[str, Any]:
    return steps.transform({"state": state, "range": state["ranges"][index]}, settings,
                           aws.clients)


def _failing_part(monkeypatch: pytest.MonkeyPatch, index: int) -> None:
    """Part ``index`` fails as bad data in its range would (a value its inferred type cannot
    hold: a Map part cannot widen and restart, see convert_range)."""
    real = steps.convert_range

    def convert_range(state: Any, rng: Any, *args: Any, **kwargs: Any) -> Any:
        if rng["index"] == index:
            raise SchemaError("column order_id: 'x1' is not int64 (injected)")
        return real(state, rng, *args, **kwargs)

    monkeypatch.setattr(steps, "convert_range", convert_range)


def test_each_part_records_what_it_published(aws: Any) -> None:
    settings, state = _planned(aws, quoted_csv(3000))
    parts = [_part(aws, settings, state, i) for i in range(2)]
    recorded = metadata.published(aws.table, state["file_id"])
    written = [f"s3://{aws.processed}/{k}" for k in _keys(aws)]
    data = {f["uri"] for p in parts for f in p["files"]}
    assert len(data) == 2 and data < set(written)  # the rest: each part's rejects file
    assert set(written) <= set(recorded)
    name = source_id(f"s3://{aws.raw}/orders/big.csv", version=state["version"])
    assert {u for u in recorded if u not in written} <= {
        f"s3://{aws.processed}/orders/_rejects/{n}.rejects.ndjson"
        for n in (name, f"{name}-part-00000", f"{name}-part-00001")}
    assert metadata.record(aws.table, state["file_id"])["published"] == recorded  # a JSON list
    _part(aws, settings, state, 0)  # a retried part: the set does not grow
    assert metadata.published(aws.table, state["file_id"]) == recorded


@pytest.mark.parametrize("step", ["handle_error", "route_to_dlq"])
def test_failed_map_takes_back_every_part_published(
        aws: Any, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    settings, state = _planned(aws, quoted_csv(3000))
    last = len(state["ranges"]) - 1
    _failing_part(monkeypatch, last)
    for i in range(last):
        _part(aws, settings, state, i)
    assert len(_keys(aws)) == 2 * last  # data and rejects file of each part
    with pytest.raises(SchemaError):
        _part(aws, settings, state, last)
    # the Map's Catch: the state as it entered the Map, with the error and no parts
    failed = {**state, "error": {"Error": "SchemaError", "Cause": "{}"}}
    getattr(steps, step)(failed, settings, aws.clients)
    assert _keys(aws) == []
    assert metadata.record(aws.table, state["file_id"])["status"] == "FAILED"


def test_a_part_finishing_after_the_file_failed_deletes_its_own_outputs(aws: Any) -> None:
    settings, state = _planned(aws, quoted_csv(3000))
    _part(aws, settings, state, 0)
    steps.handle_error({**state, "error": {"Error": "SchemaError", "Cause": "{}"}}, settings,
                       aws.clients)
    assert _keys(aws) == []
    with pytest.raises(EngineError, match="recorded FAILED; its outputs were deleted"):
        _part(aws, settings, state, 1)  # still running when the Map failed
    assert _keys(aws) == []
    assert metadata.record(aws.table, state["file_id"])["status"] == "FAILED"


def test_a_part_whose_record_write_fails_deletes_its_outputs(
        aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, state = _planned(aws, quoted_csv(3000))

    def throttled(*args: Any, **kwargs: Any) -> bool:
        raise TransientError("DynamoDB ThrottlingException (injected)")

    monkeypatch.setattr(metadata, "record_published", throttled)
    with pytest.raises(TransientError, match="injected"):
        _part(aws, settings, state, 0)
    assert _keys(aws) == []  # unrecorded outputs would be found by no one


def test_a_replay_starts_with_an_empty_set(aws: Any) -> None:
    settings, state = _planned(aws, quoted_csv(3000))
    _part(aws, settings, state, 0)
    steps.handle_error({**state, "error": {"Error": "SchemaError", "Cause": "{}"}}, settings,
                       aws.clients)
    assert metadata.claim(aws.table, {**state, "replay": True})
    assert metadata.published(aws.table, state["file_id"]) == []


def test_record_published_refuses_a_missing_record(aws: Any) -> None:
    assert not metadata.record_published(aws.table, "no-such-file", ["s3://b/k"])
    assert metadata.record(aws.table, "no-such-file") == {}
    assert metadata.record_published(aws.table, "no-such-file", [])  # nothing to record
