"""``chunkwise pipeline run``: output and exit codes, on moto with stub handler files.

The handlers here are files in a temporary ``lambda/<step>/handler.py`` tree (found through
``CHUNKWISE_LAMBDA_DIR``), so the loader is exercised too; ``STUB_FAIL=step:ErrorClass`` makes
one step raise. The paths through the real handlers are in test_pipeline_paths.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from engine.aws.local.asl import FUNCTIONS
from engine.cli import pipeline as pipeline_cli

STUB = '''
import json, os
import boto3
import engine.errors

STEP = {step!r}


def handler(event, context):
    print(json.dumps({{"level": "INFO", "message": "a log line on stdout", "step": STEP}}))
    fail = os.environ.get("STUB_FAIL", "")
    if fail.split(":")[0] == STEP:
        raise getattr(engine.errors, fail.split(":")[1])("stub says no")
    if STEP == "ingest":
        d, o = event["detail"], event["detail"]["object"]
        state = {{"bucket": d["bucket"]["name"], "key": o["key"], "size": o["size"],
                 "file_id": "s3://%s/%s#%s" % (d["bucket"]["name"], o["key"], o["version-id"]),
                 "route": "single"}}
        boto3.client("dynamodb").put_item(TableName=os.environ["METADATA_TABLE"], Item={{
            "file_id": {{"S": state["file_id"]}}, "status": {{"S": "RECEIVED"}},
            "rows_out": {{"N": "0"}}}})
        return state
    if STEP == "transform":
        bucket = os.environ["PROCESSED_BUCKET"]
        boto3.client("s3").put_object(Bucket=bucket, Key="o/p.parquet", Body=b"x")
        return {{**event, "parts": [{{"uri": "s3://%s/o/p.parquet" % bucket}}]}}
    if STEP == "dlq_route":
        boto3.client("sqs").send_message(QueueUrl=os.environ["DLQ_URL"],
                                         MessageBody=json.dumps({{"key": event.get("key")}}))
    return event
'''


@pytest.fixture
def stubs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "lambda"
    for step in FUNCTIONS.values():
        (root / step).mkdir(parents=True)
        (root / step / "handler.py").write_text(STUB.format(step=step))
    monkeypatch.setenv("CHUNKWISE_LAMBDA_DIR", str(root))
    monkeypatch.delenv("STUB_FAIL", raising=False)
    data = tmp_path / "orders.csv"
    data.write_text("a,b\n1,2\n")
    return data


def _invoke(*args: str) -> Any:
    main = typer.Typer()

    @main.command()
    def other() -> None:  # pragma: no cover - only there to make "pipeline" a sub-command
        """Stands for the rest of the chunkwise command."""

    main.add_typer(pipeline_cli.app, name="pipeline")
    return CliRunner().invoke(main, ["pipeline", "run", *args])


def _json(out: str) -> dict[str, Any]:
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out  # --json: one object on stdout and nothing else
    return json.loads(lines[0])


def test_json_success(stubs: Path) -> None:
    res = _invoke(str(stubs), "--json")
    assert res.exit_code == 0, res.output
    result = _json(res.stdout)
    assert result["status"] == "SUCCEEDED"
    assert result["states"] == ["Ingest", "IsDuplicate", "Validate", "SizeRoute", "Transform",
                                "Output", "Done"]
    assert result["error"] is None and result["dlq"] == []
    assert result["record"]["status"] == "RECEIVED"
    assert result["outputs"] == ["s3://chunkwise-processed/o/p.parquet"]
    assert "a log line on stdout" in res.stderr  # handler logs moved off stdout


@pytest.mark.parametrize(("fail", "code", "last"), [
    ("validate:SchemaError", 65, ["DLQRoute", "Failed"]),
    ("transform:ValidationError", 65, ["DLQRoute", "Failed"]),
    ("ingest:InputNotFoundError", 65, ["DLQRoute", "Failed"]),
    ("transform:TransientError", 74, ["ErrorHandler", "Failed"]),
    ("output:EngineError", 70, ["ErrorHandler", "Failed"]),
])
def test_json_failures_and_exit_codes(stubs: Path, monkeypatch: pytest.MonkeyPatch, fail: str,
                                      code: int, last: list[str]) -> None:
    monkeypatch.setenv("STUB_FAIL", fail)
    res = _invoke(str(stubs), "--json")
    assert res.exit_code == code, res.output
    result = _json(res.stdout)
    assert result["status"] == "FAILED"
    assert result["states"][-2:] == last
    assert result["error"]["type"] == fail.split(":")[1]
    assert result["error"]["message"] == "stub says no"
    assert len(result["dlq"]) == (1 if code == 65 else 0)


def test_human_output(stubs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    res = _invoke(str(stubs), "--key", "orders/2026/orders.csv")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "succeeded" in out
    assert "Ingest → IsDuplicate → Validate → SizeRoute → Transform → Output → Done" in out
    assert "metadata record" in out and "RECEIVED" in out
    assert "s3://chunkwise-processed/o/p.parquet" in out
    assert "DLQ     0 messages" in out
    monkeypatch.setenv("STUB_FAIL", "validate:SchemaError")
    res = _invoke(str(stubs))
    assert res.exit_code == 65
    assert "SchemaError: stub says no" in res.stdout
    assert "DLQ     1 message" in res.stdout and '"key": "incoming/orders.csv"' in res.stdout


def test_usage_errors(stubs: Path, tmp_path: Path) -> None:
    res = _invoke("s3://raw/orders/x.csv")
    assert res.exit_code == 2 and "--stack" in res.output
    res = _invoke(str(stubs), "--stack", "chunkwise-dev")
    assert res.exit_code == 2
    res = _invoke("s3://raw/x.csv", "--stack", "chunkwise-dev", "--contract", "c.yaml")
    assert res.exit_code == 2 and "only apply to a local run" in res.output
    res = _invoke(str(tmp_path / "missing.csv"), "--json")
    assert res.exit_code == 66
    assert _json(res.stdout)["error"]["type"] == "InputNotFoundError"
    contract = tmp_path / "c.yaml"
    contract.write_text("dataset: x\nmatch: 'orders/*.json'\n")
    res = _invoke(str(stubs), "--contract", str(contract))
    assert res.exit_code == 2 and "does not match" in res.output
    res = _invoke(str(stubs), "--max-single-bytes", "lots")
    assert res.exit_code == 2
    for option in ("--max-single-bytes", "--range-bytes"):  # were an execution failing (70)
        res = _invoke(str(stubs), option, "0")
        assert res.exit_code == 2 and "must be positive" in res.output, res.output


def test_stack_runs_remote(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def fake_remote(uri: str, **kwargs: Any) -> dict[str, Any]:
        calls.append((uri, kwargs))
        return {"status": "FAILED", "states": ["Ingest", "ErrorHandler", "Failed"],
                "error": {"type": "Lambda.TooManyRequestsException", "message": "slow down"},
                "record": None, "outputs": [], "dlq": [], "execution_arn": "arn:x"}

    monkeypatch.setattr("engine.aws.remote.run_remote", fake_remote)
    res = _invoke("s3://raw/orders/x.csv", "--stack", "chunkwise-dev", "--region", "eu-west-1",
                  "--json")
    assert res.exit_code == 74
    assert calls == [("s3://raw/orders/x.csv", {"stack": "chunkwise-dev",
                                                "region": "eu-west-1"})]
    assert _json(res.stdout)["error"]["type"] == "Lambda.TooManyRequestsException"


def test_exit_codes() -> None:
    assert pipeline_cli.exit_code({"status": "SUCCEEDED", "states": ["Skipped"]}) == 0
    assert pipeline_cli.exit_code({"status": "TIMED_OUT", "error": {"type": "TIMED_OUT"}}) == 74
    assert pipeline_cli.exit_code({"status": "ABORTED", "error": {"type": "ABORTED"}}) == 70
    assert pipeline_cli._path(["A", "B", "B", "B", "C"]) == "A → B ×3 → C"
