"""The operating commands' parts: status on the index, backfill counts, replay grouping,
the local stack's state files, and the CLI's choice of stack. The whole flow on a local stack is
in tests/functional/aws/test_local_stack.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import typer
from moto import mock_aws
from typer.testing import CliRunner

from engine.aws import backfill, replay, status
from engine.aws.local import server
from engine.aws.local.asl import REGION
from engine.aws.local.stack import LOCAL_NAMES, create
from engine.aws.metadata import STATUSES
from engine.aws.targets import Target
from engine.cli import pipeline as pipeline_cli

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def local_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    """The local stack's resources on moto in this process, as a target."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        made = create(lambda service: boto3.client(service, region_name=REGION))
        yield Target("moto", state_machine=made["state_machine_arn"],
                     backfill_state_machine=made["backfill_state_machine_arn"],
                     table=LOCAL_NAMES["table"], queue=made["queue_url"],
                     raw_bucket=LOCAL_NAMES["raw_bucket"], region=REGION)


def _record(ddb: Any, key: str, state: str, updated_at: str, **counts: int) -> None:
    item = {"file_id": {"S": f"s3://chunkwise-raw/{key}#v1"}, "bucket": {"S": "chunkwise-raw"},
            "key": {"S": key}, "status": {"S": state}, "updated_at": {"S": updated_at},
            **{name: {"N": str(n)} for name, n in counts.items()}}
    if state == "FAILED":
        item |= {"error_type": {"S": "ValidationError"}, "error_message": {"S": "too many"}}
    ddb.put_item(TableName=LOCAL_NAMES["table"], Item=item)


def test_status_reads_the_index_by_state_and_time(local_aws: Target) -> None:
    ddb = local_aws.client("dynamodb")
    _record(ddb, "a.csv", "SUCCEEDED", "2026-01-01T10:00:00.000Z", rows_in=3, rows_out=2,
            rows_rejected=1, rows_filtered=0)
    _record(ddb, "b.csv", "FAILED", "2026-01-02T10:00:00.000Z")
    _record(ddb, "c.csv", "SUCCEEDED", "2026-01-03T10:00:00.000Z", rows_in=1, rows_out=1,
            rows_rejected=0, rows_filtered=0)
    every = status.records(local_aws)
    assert every["counts"] == {"SUCCEEDED": 2, "FAILED": 1}
    assert [f["key"] for f in every["files"]] == ["c.csv", "b.csv", "a.csv"]  # newest first
    assert every["files"][1]["error"] == "ValidationError: too many"
    assert every["files"][2] | {"file_id": None} == {
        "file_id": None, "key": "a.csv", "status": "SUCCEEDED", "rows_in": 3, "rows_out": 2,
        "rows_rejected": 1, "rows_filtered": 0, "error": None,
        "updated_at": "2026-01-01T10:00:00.000Z"}
    recent = status.records(local_aws, status="SUCCEEDED",
                            since=status.parse_since("2026-01-02"))
    assert [f["key"] for f in recent["files"]] == ["c.csv"] and recent["counts"] == {
        "SUCCEEDED": 1}
    with pytest.raises(ValueError, match="unknown status"):
        status.records(local_aws, status="DONE")
    with pytest.raises(ValueError, match="--since"):
        status.parse_since("yesterday")


def test_the_cli_offers_the_states_the_records_have() -> None:
    from click import Choice

    params = typer.main.get_command(pipeline_cli.app).commands["status"].params
    (state,) = [p for p in params if p.name == "state"]
    assert isinstance(state.type, Choice) and tuple(state.type.choices) == STATUSES


def test_backfill_counts_and_prefixes() -> None:
    failed_run = backfill.summary(
        {"status": "FAILED", "executionArn": "arn:e",
         "error": "States.ExceedToleratedFailureThreshold", "cause": "too many"},
        {"total": 10, "succeeded": 6, "failed": 3, "timedOut": 1, "aborted": 0})
    assert failed_run == {"status": "FAILED", "execution": "arn:e", "items": 10,
                          "succeeded": 6, "failed": 4, "skipped": None, "ignored": None,
                          "error": {"type": "States.ExceedToleratedFailureThreshold",
                                    "message": "too many"}}
    for bad in ("", "_contracts/", "_con"):
        with pytest.raises(ValueError):
            backfill.check_prefix(bad)
    assert backfill.check_prefix("orders/2025/") == "orders/2025/"


def test_an_empty_prefix_starts_no_backfill(local_aws: Target) -> None:
    result = backfill.run_backfill(local_aws, "nothing/here/")
    assert result == {"status": "SUCCEEDED", "execution": None, "items": 0, "succeeded": 0,
                      "failed": 0, "skipped": 0, "ignored": 0}
    assert local_aws.client("stepfunctions").list_executions(
        stateMachineArn=local_aws.backfill_state_machine)["executions"] == []


def test_replay_groups_messages_by_file_and_releases_what_it_cannot_replay(
        local_aws: Target) -> None:
    sqs = local_aws.client("sqs")
    message = {"file_id": "s3://chunkwise-raw/k#v1",
               "replay": {"bucket": "chunkwise-raw", "key": "k", "version": "v1"}}
    for body in (message, message, {"event": "not understood"}):
        sqs.send_message(QueueUrl=local_aws.queue, MessageBody=json.dumps(body))
    dry = replay.replay(local_aws, dry_run=True, visibility=30)
    assert (dry["replayed"], dry["remaining"]) == (0, 3)
    assert dry["files"] == [{"file_id": "s3://chunkwise-raw/k#v1", "key": "k",
                             "status": "PENDING", "execution": None, "messages": 2}]
    # every message is visible again at once: a second look finds them all
    again = replay.receive_all(sqs, local_aws.queue, visibility=30, wait=0)
    assert len(again) == 3
    with pytest.raises(ValueError, match="concurrency"):
        replay.replay(local_aws, concurrency=0)


def test_local_state_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert server.state_dir() == tmp_path / "chunkwise" / "local"
    assert server.running() == []
    with pytest.raises(LookupError, match="no local stack is running"):
        server.find()
    server.state_dir().mkdir(parents=True)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = server.state_dir() / "5001.json"
    stale.write_text(json.dumps({"port": 5001, "pid": int(gone.stdout)}), encoding="utf-8")
    live = {"port": 5002, "pid": os.getpid(), "endpoint": "http://127.0.0.1:1"}
    (server.state_dir() / "5002.json").write_text(json.dumps(live), encoding="utf-8")
    assert server.running() == [live] and not stale.exists()  # a stale file is removed
    assert server.find() == live and server.find(5002) == live
    with pytest.raises(LookupError, match="on port 5003"):
        server.find(5003)
    with pytest.raises(LookupError, match="no local stack is running on port 5003"):
        server.down(5003)
    assert server.answers({"port": 1}, timeout=0.5) is False  # nothing listens there


def _invoke(*args: str) -> Any:
    main = typer.Typer()
    main.command()(lambda: None)
    main.add_typer(pipeline_cli.app, name="pipeline")
    return CliRunner().invoke(main, ["pipeline", *args])


@pytest.mark.parametrize("args", [
    ["status"], ["status", "--local", "--stack", "s"], ["replay"], ["backfill", "s3://b/p/"]])
def test_exactly_one_of_local_and_stack(args: list[str]) -> None:
    result = _invoke(*args)
    assert result.exit_code == 2 and "exactly one of --local" in result.output


def test_local_without_a_running_stack_is_a_usage_error(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    result = _invoke("status", "--local", "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "UsageError" and "chunkwise local up" in error["message"]


def test_a_folder_goes_under_the_contracts_directory(tmp_path: Path) -> None:
    contract = REPO / "contracts" / "orders.yaml"  # match: "orders/*.csv*"
    assert pipeline_cli._folder_prefix(tmp_path / "landed", str(contract)) == "orders/"
    assert pipeline_cli._folder_prefix(tmp_path / "landed", None) == "landed/"
