"""``chunkwise transform SRC DIR/ --mode``: the issue's reproduction through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from typer.testing import CliRunner

from engine.cli.app import app
from engine.plan import source_name


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def sources(root: Path) -> tuple[Path, Path]:
    d1, d2 = root / "d1.csv", root / "d2.csv"
    d1.write_text("id,v\n1,a\n2,b\n")
    d2.write_text("id,v\n3,c\n4,d\n5,e\n")
    return d1, d2


def ids(out: Path) -> list[int]:
    return sorted(ds.dataset(out, format="parquet").to_table().column("id").to_pylist())


@pytest.mark.parametrize("rotation", [[], ["--max-rows-per-file", "1"]])
def test_a_second_file_into_the_same_directory_loses_no_row(runner: CliRunner, tmp_path: Path,
                                                            rotation: list[str]):
    d1, d2 = sources(tmp_path)
    out = f"{tmp_path}/out/"
    first = runner.invoke(app, ["transform", str(d1), out, *rotation, "--json"])
    assert first.exit_code == 0, first.output
    refused = runner.invoke(app, ["transform", str(d2), out, *rotation, "--json"])
    assert refused.exit_code == 2
    error = json.loads(refused.stdout)["error"]
    assert error["type"] == "UsageError" and error["uri"] == out
    assert "did not write" in error["message"] and "--mode" in error["message"]
    assert "Traceback" not in refused.output
    assert ids(tmp_path / "out") == [1, 2]
    added = runner.invoke(app, ["transform", str(d2), out, *rotation, "--mode", "append",
                                "--json"])
    assert added.exit_code == 0, added.output
    report = json.loads(added.stdout)
    assert report["dataset"] == {"name": source_name(str(d2)), "mode": "append",
                                 "generation": 0, "manifest": f"{out}_chunkwise/"
                                 f"{source_name(str(d2))}.json", "removed": 0}
    assert ids(tmp_path / "out") == [1, 2, 3, 4, 5]
    again = runner.invoke(app, ["transform", str(d1), out, "--mode", "append", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["dataset"]["removed"] == (2 if rotation else 1)
    assert ids(tmp_path / "out") == [1, 2, 3, 4, 5]
    replaced = runner.invoke(app, ["transform", str(d2), out, "--mode", "replace"])
    assert replaced.exit_code == 0, replaced.output
    assert ids(tmp_path / "out") == [3, 4, 5]


def test_mode_choices_and_a_file_output(runner: CliRunner, tmp_path: Path):
    d1, d2 = sources(tmp_path)
    bad = runner.invoke(app, ["transform", str(d1), f"{tmp_path}/out/", "--mode", "merge",
                              "--json"])
    assert bad.exit_code == 2
    assert json.loads(bad.stdout)["error"]["type"] == "UsageError"
    dst = str(tmp_path / "one.parquet")
    assert runner.invoke(app, ["transform", str(d1), dst]).exit_code == 0
    assert runner.invoke(app, ["transform", str(d2), dst]).exit_code == 0  # named: replaced
    assert runner.invoke(app, ["transform", str(d1), dst, "--mode", "error"]).exit_code == 2
    appended = runner.invoke(app, ["transform", str(d1), dst, "--mode", "append"])
    assert appended.exit_code == 2 and "cannot be appended" in appended.output
    assert ids(Path(dst)) == [3, 4, 5]
