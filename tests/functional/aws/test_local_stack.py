"""The operator's day on a local stack: backfill a folder, look, fix the contract, replay.

``chunkwise local up`` starts moto's server in a background process with the template's
resources and the real handlers (:mod:`engine.aws.local.server`); the ``pipeline`` commands act
on it with ``--local`` from this process, over loopback, as they would on a deployed stack. The
backfill is ``stepfunctions/backfill.asl.json`` run by moto's interpreter: a DISTRIBUTED Map
whose ItemReader lists the prefix and whose items are child executions of the per-file state
machine (``startExecution.sync:2``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from engine.aws.local import server
from engine.cli import local as local_cli
from engine.cli import pipeline as pipeline_cli
from engine.gen import generate

REPO = Path(__file__).resolve().parents[3]
FILES = 24
FAILING = {3, 11, 20}  # dirty files: far more than the contract's 1 % of rejects


def _cli(*args: str) -> tuple[int, dict[str, Any]]:
    """``chunkwise ARGS --json``: the exit code and the one JSON object printed."""
    main = typer.Typer()
    main.add_typer(pipeline_cli.app, name="pipeline")
    main.add_typer(local_cli.app, name="local")
    result = CliRunner().invoke(main, [*args, "--json"])
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, (result.stdout, result.stderr, result.exception)
    return result.exit_code, json.loads(lines[0])


def _contract(tmp_path: Path, max_ratio: float) -> Path:
    doc = yaml.safe_load((REPO / "contracts" / "orders.yaml").read_text(encoding="utf-8"))
    doc["rejects"]["max_ratio"] = max_ratio
    # one Parquet file per input: no partitions, no aggregate (the backfill is the subject)
    doc.pop("aggregate")
    doc["output"].pop("partition_by")
    path = tmp_path / f"ratio-{max_ratio}" / "orders.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A local stack of its own (its state under a temporary cache), stopped at the end."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, info = _cli("local", "up")
    assert code == 0, info
    try:
        yield info
    finally:
        if any(s["port"] == info["port"] for s in server.running()):  # the test stops it itself
            server.down(int(info["port"]))


def test_backfill_then_replay_with_a_relaxed_contract(tmp_path: Path,
                                                      stack: dict[str, Any]) -> None:
    assert stack["endpoint"].startswith("http://127.0.0.1:")
    code, listed = _cli("local", "status")
    assert code == 0 and [(s["port"], s["answers"]) for s in listed["stacks"]] == [
        (stack["port"], True)]
    folder = tmp_path / "landed"
    folder.mkdir()
    for i in range(FILES):
        generate("orders", folder / f"day-{i:02}.csv", size=4_000, seed=i,
                 dirty=0.2 if i in FAILING else 0.0)
    for side in folder.glob("*.injected.ndjson"):  # the generator's list of its faults
        side.unlink()
    strict = _contract(tmp_path, 0.01)

    code, first = _cli("pipeline", "backfill", str(folder), "--local", "--contract", str(strict),
                       "--prefix", "orders/2025/")
    assert code == 65, first  # some files failed
    assert (first["status"], first["items"], first["succeeded"], first["failed"],
            first["skipped"]) == ("SUCCEEDED", FILES, FILES - len(FAILING), len(FAILING), 0)
    code, status = _cli("pipeline", "status", "--local")
    assert status["counts"] == {"SUCCEEDED": FILES - len(FAILING), "FAILED": len(FAILING)}
    failed = {f["key"] for f in status["files"] if f["status"] == "FAILED"}
    assert failed == {f"orders/2025/day-{i:02}.csv" for i in FAILING}
    assert all("rejects.max_ratio" in f["error"] for f in status["files"]
               if f["status"] == "FAILED")
    code, dry = _cli("pipeline", "replay", "--local", "--dry-run")
    assert code == 0 and dry["replayed"] == 0 and dry["remaining"] == len(FAILING)
    assert {f["key"] for f in dry["files"]} == failed  # the DLQ holds each failed file, once

    code, again = _cli("pipeline", "backfill", str(folder), "--local", "--prefix",
                       "orders/2025/")
    assert code == 0, again  # nothing converted, nothing failed: every file already claimed
    assert (again["items"], again["succeeded"], again["failed"], again["skipped"]) == (
        FILES, 0, 0, FILES)

    relaxed = _contract(tmp_path, 1.0)
    code, replayed = _cli("pipeline", "replay", "--local", "--contract", str(relaxed))
    assert code == 0, replayed
    assert (replayed["replayed"], replayed["succeeded"], replayed["failed"],
            replayed["remaining"]) == (len(FAILING), len(FAILING), 0, 0)
    code, status = _cli("pipeline", "status", "--local")
    assert status["counts"] == {"SUCCEEDED": FILES}
    for f in status["files"]:
        assert f["rows_in"] == f["rows_out"] + f["rows_rejected"] + f["rows_filtered"], f
    assert sum(1 for f in status["files"] if f["rows_rejected"]) >= len(FAILING)
    code, recent = _cli("pipeline", "status", "--local", "--status", "FAILED", "--since", "1h")
    assert code == 0 and recent == {"counts": {}, "files": [], "version": recent["version"]}

    one = tmp_path / "late.csv"  # one more file, run on its own, as an object lands
    generate("orders", one, size=2_000, seed=99)
    code, run = _cli("pipeline", "run", str(one), "--local", "--key", "orders/2025/late.csv")
    assert code == 0 and run["status"] == "SUCCEEDED", run
    assert run["record"]["status"] == "SUCCEEDED"
    code, status = _cli("pipeline", "status", "--local", "--status", "SUCCEEDED")
    assert status["counts"] == {"SUCCEEDED": FILES + 1}

    code, stopped = _cli("local", "down", "--port", str(stack["port"]))
    assert code == 0 and stopped["stopped"] == [stack["port"]]
    assert server.running() == [] and not os.path.exists(
        server.state_dir() / f"{stack['port']}.json")
