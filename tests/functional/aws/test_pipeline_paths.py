"""One test per path through the state machine: the real ASL on moto, the real handlers.

``stepfunctions/pipeline.asl.json`` runs on moto's ASL interpreter and its Lambda tasks call
``lambda/<step>/handler.py`` in-process (``engine.aws.local.runner``). Retries are not slept: the
retrier's waits are recorded instead (``retry_waits``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from engine.aws.local.runner import LocalPipeline, run_local
from engine.errors import TransientError
from engine.gen import generate
from engine.run import transform as single_pass

REPO = Path(__file__).resolve().parents[3]
HAPPY = ["Ingest", "IsDuplicate", "Validate", "SizeRoute", "Transform", "Output", "Done"]


def _contract(tmp_path: Path, name: str = "orders.yaml", **changes: Any) -> Path:
    """contracts/orders.yaml with ``changes`` applied (a value of None removes the key)."""
    doc = yaml.safe_load((REPO / "contracts" / "orders.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    path = tmp_path / "contracts" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def orders_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pipeline") / "orders.csv"
    generate("orders", path, size=200_000, seed=41)
    return path


def _read_parquet(pipe: LocalPipeline, uri: str) -> pa.Table:
    bucket, key = uri[5:].split("/", 1)
    body = pipe.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


def _flaky(monkeypatch: pytest.MonkeyPatch, times: int) -> dict[str, int]:
    """Make the transform step raise TransientError on its first ``times`` calls.

    The real handler (Powertools decorators and all) still runs: it calls
    ``engine.aws.steps.transform``, which is what is patched.
    """
    from engine.aws import steps

    real = steps.transform
    calls = {"n": 0}

    def transform(event: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= times:
            raise TransientError("S3 throttled (injected)", uri=event.get("key"))
        return real(event, *args, **kwargs)

    monkeypatch.setattr(steps, "transform", transform)
    return calls


def test_happy_path(tmp_path: Path, orders_csv: Path) -> None:
    contract = _contract(tmp_path)
    with LocalPipeline(contract=contract) as pipe:
        result = pipe.run(orders_csv)
        assert result["status"] == "SUCCEEDED", result["error"]
        assert result["states"] == HAPPY
        assert result["error"] is None and result["dlq"] == []
        record = result["record"]
        assert record["status"] == "SUCCEEDED"
        assert record["key"] == "orders/orders.csv"
        assert record["contract"]
        assert record["rows_out"] > 0
        assert record["expires_at"] > 0
        assert result["outputs"]
        parquet = [u for u in result["outputs"] if u.endswith(".parquet")
                   and "/_" not in u]  # not the rejects or aggregates
        assert parquet
        rows = sum(_read_parquet(pipe, u).num_rows for u in parquet)
        assert rows == record["rows_out"]


def test_duplicate_event_is_skipped(tmp_path: Path, orders_csv: Path) -> None:
    with LocalPipeline(contract=_contract(tmp_path)) as pipe:
        obj = pipe.upload(orders_csv)
        first = pipe.run_object(obj)
        second = pipe.run_object(obj)  # EventBridge delivers at least once
    assert first["status"] == "SUCCEEDED" and first["states"] == HAPPY
    assert second["status"] == "SUCCEEDED"
    assert second["states"] == ["Ingest", "IsDuplicate", "Skipped"]
    assert second["outputs"] == [] and second["dlq"] == []
    assert second["record"]["status"] == "SUCCEEDED"  # the first execution's record, untouched


def test_schema_error_from_validate_goes_to_the_dlq(tmp_path: Path, orders_csv: Path) -> None:
    lines = orders_csv.read_text().splitlines(keepends=True)
    bad = tmp_path / "orders.csv"
    bad.write_text(lines[0].replace("customer_id", "client_id") + "".join(lines[1:50]))
    result = run_local(bad, contract=_contract(tmp_path))
    assert result["status"] == "FAILED"
    assert result["states"] == ["Ingest", "IsDuplicate", "Validate", "DLQRoute", "Failed"]
    assert result["error"]["type"] == "SchemaError"
    assert result["attempts"]["Validate"] == 1  # permanent: not retried
    assert result["record"]["status"] == "FAILED"
    assert result["record"]["error_type"] == "SchemaError"
    (message,) = result["dlq"]
    assert message["bucket"] == "chunkwise-raw"
    assert message["key"] == "orders/orders.csv"
    assert "SchemaError" in str(message)
    assert result["outputs"] == []


def test_validation_error_from_transform_goes_to_the_dlq(tmp_path: Path) -> None:
    dirty = tmp_path / "orders.csv"
    generate("orders", dirty, size=100_000, seed=42, dirty=0.05)  # over max_ratio 0.01
    result = run_local(dirty, contract=_contract(tmp_path))
    assert result["status"] == "FAILED"
    assert result["states"] == ["Ingest", "IsDuplicate", "Validate", "SizeRoute", "Transform",
                                "DLQRoute", "Failed"]
    assert result["error"]["type"] == "ValidationError"
    assert result["attempts"]["Transform"] == 1
    assert result["record"]["status"] == "FAILED"
    assert result["record"]["error_type"] == "ValidationError"
    (message,) = result["dlq"]
    assert message["key"] == "orders/orders.csv"
    assert "ValidationError" in str(message)


def test_transient_error_twice_then_success(tmp_path: Path, orders_csv: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _flaky(monkeypatch, 2)
    result = run_local(orders_csv, contract=_contract(tmp_path))
    assert calls["n"] == 3
    assert result["status"] == "SUCCEEDED", result["error"]
    assert result["states"] == HAPPY
    assert result["attempts"]["Transform"] == 3
    assert result["retry_waits"] == [2.0, 4.0]  # IntervalSeconds 2, BackoffRate 2.0: not slept
    assert result["record"]["status"] == "SUCCEEDED"
    assert result["dlq"] == []


def test_transient_errors_exhausted_go_to_the_error_handler(
        tmp_path: Path, orders_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _flaky(monkeypatch, 1_000)
    result = run_local(orders_csv, contract=_contract(tmp_path))
    assert calls["n"] == 4
    assert result["status"] == "FAILED"
    assert result["states"] == ["Ingest", "IsDuplicate", "Validate", "SizeRoute", "Transform",
                                "ErrorHandler", "Failed"]
    assert result["attempts"]["Transform"] == 4  # the first attempt and MaxAttempts 3 retries
    assert result["retry_waits"] == [2.0, 4.0, 8.0]
    assert result["error"]["type"] == "TransientError"
    assert result["record"]["status"] == "FAILED"
    assert result["record"]["error_type"] == "TransientError"
    assert result["dlq"] == []  # transient: nothing for an operator to replay


def test_file_wide_contract_is_not_split(tmp_path: Path) -> None:
    """unique/dedupe/aggregate need the whole file in one pass: no Map, whatever the size."""
    big = tmp_path / "orders.csv"
    generate("orders", big, size=400_000, seed=44)
    contract = _contract(tmp_path, output={"compression": "zstd"})
    with LocalPipeline(contract=contract, settings={"MAX_SINGLE_BYTES": "200KB",
                                                    "RANGE_BYTES": "200KB"}) as pipe:
        result = pipe.run(big)
    assert result["status"] == "SUCCEEDED", result["error"]
    assert "Plan" not in result["states"] and "Transform" in result["states"]


def test_large_file_is_split_into_ranges(tmp_path: Path) -> None:
    big = tmp_path / "orders.csv"
    generate("orders", big, size=1_000_000, seed=43)
    assert b'"' in big.read_bytes() and big.read_text().count("\n") > 12_000
    # a contract whose result is row-wise (no unique/dedupe across the file, no aggregate, no
    # partitioning), so the parts together must equal one single-pass conversion
    columns = yaml.safe_load((REPO / "contracts" / "orders.yaml").read_text())["columns"]
    columns["order_id"].pop("unique")
    contract = _contract(tmp_path, columns=columns, transforms=[{"derive": {
        "name": "amount_cents",
        "expr": {"call": "multiply", "args": [{"field": "amount"}, {"literal": 100}]},
        "type": "int64"}}], aggregate=None, output={"compression": "zstd"})
    with LocalPipeline(contract=contract, settings={"MAX_SINGLE_BYTES": "200KB",
                                                    "RANGE_BYTES": "200KB"}) as pipe:
        result = pipe.run(big)
        assert result["status"] == "SUCCEEDED", result["error"]
        states = result["states"]
        assert states[:6] == ["Ingest", "IsDuplicate", "Validate", "SizeRoute", "Plan",
                              "TransformRanges"]
        assert states[-2:] == ["Output", "Done"]
        n = states.count("TransformPart")
        assert n >= 4
        parts = result["output"]["parts"]
        assert [p["index"] for p in parts] == list(range(n))
        tables = [_read_parquet(pipe, p["uri"]) for p in parts]
        record = result["record"]
    merged = pa.concat_tables(tables).sort_by("order_id")
    reference_dir = tmp_path / "single"
    report = single_pass(str(big), str(reference_dir / "all.parquet"), contract=str(contract))
    reference = pq.read_table(reference_dir / "all.parquet").sort_by("order_id")
    assert merged.num_rows == reference.num_rows == report.rows_out
    assert merged.equals(reference.select(merged.column_names))
    assert record["status"] == "SUCCEEDED"
    assert record["rows_out"] == report.rows_out


def test_a_local_run_uses_no_network_and_no_credentials(
        tmp_path: Path, orders_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network access attempted: {args!r}")

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_PROFILE", "nonexistent-profile")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://192.0.2.1:9")  # ignored by a local run
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    result = run_local(orders_csv, contract=_contract(tmp_path))
    assert result["status"] == "SUCCEEDED", result["error"]
    assert result["states"] == HAPPY
