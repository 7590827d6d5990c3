from __future__ import annotations

from typing import Any

import pytest

from engine.aws.events import file_id, initial_state, parse_event
from engine.errors import InputFormatError


def test_parses_the_saved_eventbridge_event(saved_event: dict[str, Any]) -> None:
    state = parse_event(saved_event)
    assert state == {
        "bucket": "chunkwise-raw-dev",
        "key": "orders/2025/orders 2025-03-01:10.csv",  # S3 URL-encodes keys in events
        "version": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        "etag": "b1946ac92492d2347c6235b4d2611184",
        "size": 1337,
        "file_id": "s3://chunkwise-raw-dev/orders/2025/orders 2025-03-01:10.csv"
                   "#IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
    }


def test_unversioned_bucket_uses_the_etag(saved_event: dict[str, Any]) -> None:
    del saved_event["detail"]["object"]["version-id"]
    saved_event["detail"]["object"]["etag"] = '"abc"'
    state = parse_event(saved_event)
    assert state["version"] is None
    assert state["etag"] == "abc"
    assert state["file_id"].endswith("#abc")


@pytest.mark.parametrize("change", [
    lambda e: e.update({"detail-type": "Object Deleted"}),
    lambda e: e.update({"source": "aws.ec2"}),
    lambda e: e["detail"].pop("bucket"),
    lambda e: e["detail"]["object"].pop("key"),
    lambda e: e["detail"]["object"].update({"size": "big"}),
    lambda e: e.pop("detail"),
])
def test_anything_else_is_an_input_format_error(saved_event: dict[str, Any], change: Any) -> None:
    change(saved_event)
    with pytest.raises(InputFormatError, match="not an S3 Object Created event"):
        parse_event(saved_event)


@pytest.mark.parametrize("event", [None, [], "s3://b/k", {"Records": []}])
def test_non_events_are_refused(event: Any) -> None:
    with pytest.raises(InputFormatError, match="not an S3 Object Created event"):
        initial_state(event)


def test_a_replay_state_is_accepted() -> None:
    state = initial_state({"bucket": "b", "key": "k.csv", "version": "v1", "etag": "e",
                           "size": 10, "replay": True})
    assert state["file_id"] == file_id("b", "k.csv", "v1", "e") == "s3://b/k.csv#v1"
    assert state["replay"] is True
    assert state["size"] == 10
