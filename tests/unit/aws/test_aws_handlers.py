from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.aws import metadata
from engine.errors import SchemaError, TransientError

STEPS = ("ingest", "validate", "plan", "transform", "output", "error_handler", "dlq_route")
CSV = b"order_id,amount\n" + b"".join(f"{i},{i}.5\n".encode() for i in range(2000))


def _emf(out: str) -> list[dict[str, Any]]:
    """The CloudWatch EMF documents Powertools printed."""
    docs = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            doc = json.loads(line)  # a metric's value is a list of the values added
            docs.append({k: v[0] if isinstance(v, list) and len(v) == 1 else v
                         for k, v in doc.items()})
    return docs


@pytest.mark.parametrize("step", STEPS)
def test_handlers_are_thin(step: str) -> None:
    path = Path(__file__).resolve().parents[3] / "lambda" / step / "handler.py"
    assert len(path.read_text().splitlines()) <= 40


def test_single_route_through_the_handlers(aws: Any, handler_module: Any, context: Any,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    event = aws.put("orders/a.csv", CSV)
    state = handler_module("ingest").handler(event, context())
    assert state["route"] == "single"
    state = handler_module("validate").handler(state, context())
    state = handler_module("transform").handler(state, context())
    state = handler_module("output").handler(state, context())
    assert state["output"]["rows_out"] == 2000
    record = metadata.record(aws.table, state["file_id"])
    assert record["status"] == "SUCCEEDED"
    docs = _emf(capsys.readouterr().out)
    steps = [d["step"] for d in docs]
    assert steps == ["ingest", "validate", "transform", "output"]
    transform = docs[2]
    assert transform["RowsOut"] == 2000 and transform["PeakMemory"] > 0
    assert transform["Duration"] >= 0
    assert transform["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "chunkwise"
    assert docs[0]["BytesIn"] == len(CSV)


@pytest.mark.parametrize("shape", ["part", "parts", "output"])
def test_step_metrics_add_up_with_filtered_rows(shape: str) -> None:
    from engine.aws.observability import step_metrics

    part = {"rows_in": 10, "rows_out": 6, "rows_rejected": 1, "rows_filtered": 3, "bytes_out": 99}
    result = {"part": part, "parts": {"parts": [part, part]}, "output": {"output": part}}[shape]
    counts = step_metrics(result)
    assert counts["RowsIn"] == counts["RowsOut"] + counts["RowsRejected"] + counts["RowsFiltered"]
    assert counts["RowsFiltered"] == (6 if shape == "parts" else 3)


def test_map_route_through_the_handlers(aws: Any, handler_module: Any, context: Any,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_SINGLE_BYTES", "5000")
    monkeypatch.setenv("RANGE_BYTES", "6000")
    monkeypatch.setenv("MAP_MAX_CONCURRENCY", "3")
    state = handler_module("ingest").handler(aws.put("orders/big.csv", CSV), context())
    assert state["route"] == "map"
    state = handler_module("validate").handler(state, context())
    state = handler_module("plan").handler(state, context())
    assert state["map_max_concurrency"] == 3  # what the Map's MaxConcurrencyPath reads
    transform = handler_module("transform").handler
    parts = [transform({"state": state, "range": r}, context()) for r in state["ranges"]]
    assert len(parts) == len(state["ranges"]) > 2
    done = handler_module("output").handler({**state, "parts": parts}, context())
    assert done["output"]["rows_out"] == 2000


def test_duplicate_event_is_skipped_by_the_handler(aws: Any, handler_module: Any,
                                                   context: Any) -> None:
    event = aws.put("orders/a.csv", CSV)
    ingest = handler_module("ingest").handler
    assert ingest(event, context())["route"] == "single"
    assert ingest(event, context())["route"] == "skip"


def test_handler_errors_keep_the_engine_class_name(aws: Any, handler_module: Any,
                                                   context: Any,
                                                   capsys: pytest.CaptureFixture[str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    aws.put_contract("orders.yaml", "dataset: orders\nmatch: 'orders/*'\ncolumns:\n"
                                    "  customer: {type: string}\n")
    state = handler_module("ingest").handler(aws.put("orders/a.csv", CSV), context())
    with pytest.raises(SchemaError) as info:
        handler_module("validate").handler(state, context())
    assert type(info.value).__name__ == "SchemaError"  # the errorType Step Functions matches
    out = capsys.readouterr().out
    assert any(d.get("Errors") == 1 and d["step"] == "validate" for d in _emf(out))
    (failed,) = [r for r in caplog.records if r.getMessage() == "step failed"]
    assert failed.levelname == "WARNING"
    assert failed.error_type == "SchemaError"  # type: ignore[attr-defined]


def test_transform_handler_uses_the_remaining_time(aws: Any, handler_module: Any,
                                                   context: Any) -> None:
    state = handler_module("ingest").handler(aws.put("orders/a.csv", CSV), context())
    with pytest.raises(TransientError, match="not enough time left"):
        handler_module("transform").handler(state, context(remaining_ms=5_000))


def test_failure_handlers(aws: Any, handler_module: Any, context: Any) -> None:
    state = handler_module("ingest").handler(aws.put("orders/a.csv", CSV), context())
    cause = json.dumps({"errorMessage": "bad header", "errorType": "SchemaError"})
    failed = {**state, "error": {"Error": "SchemaError", "Cause": cause}}
    handler_module("dlq_route").handler(failed, context())
    (message,) = aws.dlq_messages()
    assert message["body"]["error_message"] == "bad header"
    handler_module("error_handler").handler(
        {**state, "error": {"Error": "States.Timeout", "Cause": "timed out"}}, context())
    record = metadata.record(aws.table, state["file_id"])
    assert (record["status"], record["error_type"]) == ("FAILED", "States.Timeout")
