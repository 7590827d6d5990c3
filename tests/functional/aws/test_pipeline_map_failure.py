"""A Map route's part that fails for good, on the local pipeline (the real ASL and handlers).

The Map's Catch hands the error handler the state as it entered the Map: no part results. The
parts that succeeded have published their files; without the record's ``published`` set they
stayed in the processed bucket with no manifest (issue 7's last gap). Here every part but one
converts, the failing one fails permanently (DLQ) or transiently beyond its retries (error
handler), and the bucket must end empty, the record FAILED.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_injection import MAP_SETTINGS, failing_part, keys, multipart_uploads

from engine.aws.local.runner import LocalPipeline
from engine.errors import SchemaError, TransientError


@pytest.mark.parametrize(("where", "error", "handler", "attempts"), [
    ("last", SchemaError("column order_id: 'x' is not int64 (injected)"), "DLQRoute", 1),
    ("first", SchemaError("column order_id: 'x' is not int64 (injected)"), "DLQRoute", 1),
    ("last", TransientError("S3 SlowDown (injected)"), "ErrorHandler", 4),
])
def test_failed_part_leaves_no_file_of_the_others(
        big_csv: Path, monkeypatch: pytest.MonkeyPatch, where: str, error: Exception,
        handler: str, attempts: int) -> None:
    with LocalPipeline(settings=MAP_SETTINGS, map_max_concurrency=1) as pipe:
        converted = failing_part(monkeypatch, where, error)
        result = pipe.run(big_csv, key="in/orders.csv")
        assert result["status"] == "FAILED"
        assert result["states"][:5] == ["Ingest", "IsDuplicate", "Validate", "SizeRoute", "Plan"]
        assert handler in result["states"]
        assert converted.count(-1) == attempts  # a TransientError: 1 + MaxAttempts 3
        assert result["attempts"]["TransformPart"] == len(converted)
        converted = [i for i in converted if i >= 0]
        record = result["record"]
        assert record["status"] == "FAILED" and record["error_type"] == type(error).__name__
        if where == "last":  # the others ran first (one at a time) and published
            assert len(converted) >= 3
            assert sorted(converted) == list(range(len(converted)))
            assert len(record["published"]) == len(converted)
        assert keys(pipe) == [] and multipart_uploads(pipe) == []
        assert result["outputs"] == []
        if handler == "DLQRoute":
            assert [m["error_type"] for m in result["dlq"]] == ["SchemaError"]
