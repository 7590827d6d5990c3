"""``chunkwise layer build`` failing: typed, with the sizes when over budget, no traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import engine.layer
from engine.cli.app import app
from engine.layer import LayerTooLargeError


class _Sizes:
    def to_dict(self) -> dict[str, Any]:
        return {"unzipped": 200 << 20, "zipped": 60 << 20}

    def table(self) -> str:
        return "package  MiB\npyarrow  200"


def _over_budget(*args: Any, **kwargs: Any) -> Any:
    error = LayerTooLargeError("over budget: 200 MiB > 150 MiB", uri="build/layer.zip")
    error.report = _Sizes()  # type: ignore[attr-defined]
    raise error


def _broken(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("boom")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_over_budget_prints_the_sizes_and_exits_with_its_code(
        runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(engine.layer, "build_layer", _over_budget)
    args = ["layer", "build", "--host", "-o", str(tmp_path / "l.zip")]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == LayerTooLargeError.exit_code
    document = json.loads(result.stdout)
    assert document["status"] == "failed"
    assert document["error"]["type"] == "LayerTooLargeError"
    assert document["report"] == _Sizes().to_dict()
    text = runner.invoke(app, args)
    assert "pyarrow  200" in text.stdout and "LayerTooLargeError" in text.stderr


def test_an_unexpected_failure_is_an_internal_error_not_a_traceback(
        runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(engine.layer, "build_layer", _broken)
    result = runner.invoke(app, ["layer", "build", "--host", "-o", str(tmp_path / "l.zip"),
                                 "--json"])
    assert result.exit_code == 70
    assert json.loads(result.stdout)["error"]["type"] == "InternalError"
    assert "Traceback" not in result.stderr
