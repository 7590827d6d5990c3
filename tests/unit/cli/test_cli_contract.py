"""``chunkwise`` with dataset contracts: transform --contract, validate, infer, gen --dirty.

typer's CliRunner for most cases, plus real subprocesses of the console script.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
import yaml
from typer.testing import CliRunner

from engine.cli.app import app
from engine.contract import load_contract
from engine.gen import generate
from engine.gen.datasets.orders import ORDERS_COLUMNS
from engine.plan import source_id, source_name

ORDERS_YAML = Path(__file__).resolve().parents[3] / "contracts" / "orders.yaml"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A clean and a 5 % dirty orders CSV, and contracts for them."""
    root = tmp_path_factory.mktemp("cli-contract")
    clean, dirty = root / "clean" / "orders.csv", root / "dirty" / "orders.csv"
    clean.parent.mkdir()
    dirty.parent.mkdir()
    generate("orders", clean, size=250_000, seed=5)
    gen = generate("orders", dirty, size=250_000, seed=6, dirty=0.05)
    lenient = yaml.safe_load(ORDERS_YAML.read_text())
    lenient["rejects"] = {"path": "rejects/", "max_ratio": 0.5}
    (root / "lenient.yaml").write_text(yaml.safe_dump(lenient, sort_keys=False))
    typo = ORDERS_YAML.read_text().replace("  customer_id: {type: int64, required: true,",
                                           "  customer_id: {type: int64, requird: true,")
    assert typo != ORDERS_YAML.read_text()
    (root / "typo.yaml").write_text(typo)
    typo_line = 1 + typo.splitlines().index(next(line for line in typo.splitlines()
                                                 if "requird" in line))
    return {"root": root, "clean": clean, "dirty": dirty, "injected": gen.injected,
            "lenient": root / "lenient.yaml", "typo": root / "typo.yaml",
            "typo_line": typo_line}


def one_json_object(stdout: str) -> dict[str, Any]:
    text = stdout.strip()
    assert text, "nothing on stdout"
    assert len(text.splitlines()) == 1, stdout
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


# -- transform --contract -----------------------------------------------------------------------


def test_transform_contract_json_report(runner: CliRunner, data: dict[str, Any],
                                        tmp_path: Path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["transform", str(data["dirty"]), f"{out}/",
                                 "--contract", str(data["lenient"]), "--json"])
    assert result.exit_code == 0, result.output
    report = one_json_object(result.stdout)
    assert report["status"] == "succeeded"
    assert report["contract"] == "orders"
    assert report["rows_in"] == (report["rows_out"] + report["rows_rejected"]
                                 + report["rows_filtered"])
    assert report["rows_rejected"] == data["injected"]
    assert report["rows_filtered"] > 0  # cancelled orders
    assert sum(c["count"] for c in report["checks"]) == data["injected"]
    assert {"column", "check", "count", "examples"} <= set(report["checks"][0])
    assert {(c["column"], c["check"]) for c in report["checks"]} >= {
        ("order_id", "unique"), ("created_at", "type"), ("(record)", "fields")}
    assert report["aggregate"]["groups"] > 0 and report["state_bytes"] > 0
    name = source_name(str(data["dirty"]))  # in a directory, a source's files carry its name
    assert report["rejects"]["uri"] == f"{out}/rejects/{name}.rejects.ndjson"
    table = ds.dataset(out, format="parquet", partitioning="hive",
                       ignore_prefixes=[".", "_", "rejects"]).to_table()
    assert table.num_rows == report["rows_out"]
    assert "amount_cents" in table.column_names
    assert result.stderr == ""


def test_transform_contract_options_are_not_overridden_by_cli_defaults(
        runner: CliRunner, data: dict[str, Any], tmp_path: Path):
    # the contract says snappy and no partitioning; the command line says neither
    spec = yaml.safe_load(data["lenient"].read_text())
    spec["output"] = {"compression": "snappy"}
    contract = tmp_path / "c.yaml"
    contract.write_text(yaml.safe_dump(spec))
    result = runner.invoke(app, ["transform", str(data["clean"]), f"{tmp_path}/out/",
                                 "--contract", str(contract), "--json"])
    assert result.exit_code == 0, result.output
    report = one_json_object(result.stdout)
    assert report["compression"] == "snappy"
    assert report["output"] == f"{tmp_path}/out/{source_id(str(data['clean']))}.parquet"


def test_transform_threshold_exceeded_exits_65(runner: CliRunner, data: dict[str, Any],
                                               tmp_path: Path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["transform", str(data["dirty"]), f"{out}/",
                                 "--contract", str(ORDERS_YAML), "--json"])
    assert result.exit_code == 65
    report = one_json_object(result.stdout)
    assert report["status"] == "failed"
    assert report["error"]["type"] == "ValidationError"
    assert "max_ratio" in report["error"]["message"]
    assert "Traceback" not in result.output
    assert files_under(out) == {f"_rejects/{source_name(str(data['dirty']))}.rejects.ndjson"}


# -- validate -----------------------------------------------------------------------------------


def test_validate_clean_data_exits_0(runner: CliRunner, data: dict[str, Any]):
    before = files_under(data["root"])
    result = runner.invoke(app, ["validate", str(data["clean"]), "--contract", str(ORDERS_YAML)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok ")
    assert " 0 rejected" in result.stdout
    assert files_under(data["root"]) == before


def test_validate_over_the_threshold_exits_65_with_a_table(runner: CliRunner,
                                                           data: dict[str, Any]):
    before = files_under(data["root"])
    result = runner.invoke(app, ["validate", str(data["dirty"]), "--contract", str(ORDERS_YAML)])
    assert result.exit_code == 65, result.output
    out = result.stdout
    assert out.startswith("failed ")
    assert f"{data['injected']:,} rejected" in out
    assert "more than rejects.max_ratio" in out
    header = next(line for line in out.splitlines() if "column" in line)
    assert re.search(r"column\W+check\W+rejects\W+examples", header)
    rows = [re.findall(r"[\w()]+", line) for line in out.splitlines()]
    for column, check in [("order_id", "unique"), ("created_at", "type"), ("status", "in"),
                          ("country", "regex"), ("(record)", "fields")]:
        assert any(row[:2] == [column, check] for row in rows), (column, check, out)
    assert "Traceback" not in result.output
    assert files_under(data["root"]) == before


def test_validate_json(runner: CliRunner, data: dict[str, Any]):
    result = runner.invoke(app, ["validate", str(data["dirty"]), "--contract", str(ORDERS_YAML),
                                 "--json"])
    assert result.exit_code == 65
    report = one_json_object(result.stdout)
    assert report["status"] == "failed"
    assert report["error"]["type"] == "ValidationError"
    assert report["output"] is None and report["files"] == []
    assert report["rows_rejected"] == data["injected"]
    assert report["rows_in"] == (report["rows_out"] + report["rows_rejected"]
                                 + report["rows_filtered"])
    assert sum(c["count"] for c in report["checks"]) == data["injected"]

    result = runner.invoke(app, ["validate", str(data["clean"]), "--contract", str(ORDERS_YAML),
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = one_json_object(result.stdout)
    assert report["status"] == "succeeded" and report["error"] is None
    assert report["checks"] == [] and report["rows_rejected"] == 0


# -- infer, gen --dirty -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_infer_prints_a_contract(runner: CliRunner, tmp_path: Path, fmt: str):
    src = tmp_path / f"orders.{fmt}"
    generate("orders", src, size=50_000, seed=2)
    result = runner.invoke(app, ["infer", str(src), "--dataset", "daily_orders"])
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(result.stdout)
    assert spec["dataset"] == "daily_orders"
    assert spec["format"] == fmt
    assert list(spec["columns"]) == list(ORDERS_COLUMNS)
    contract = load_contract(result.stdout)
    assert contract.columns["order_id"].type == "int64"
    assert files_under(tmp_path) == {f"orders.{fmt}"}
    path = tmp_path / "inferred.yaml"
    path.write_text(result.stdout)
    done = runner.invoke(app, ["transform", str(src), f"{tmp_path}/out/", "--contract",
                               str(path), "--json"])
    assert done.exit_code == 0, done.output
    assert one_json_object(done.stdout)["rows_rejected"] == 0


def test_gen_dirty_writes_the_injected_list(runner: CliRunner, tmp_path: Path):
    out = tmp_path / "orders.ndjson"
    result = runner.invoke(app, ["gen", "orders", "--size", "100KB", "-o", str(out),
                                 "--dirty", "0.05", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    report = one_json_object(result.stdout)
    sidecar = Path(report["injected_path"])
    assert sidecar == Path(f"{out}.injected.ndjson") and sidecar.exists()
    lines = [json.loads(line) for line in sidecar.read_text().splitlines()]
    assert report["injected"] == len(lines) > 0
    assert 0.03 < report["injected"] / report["rows"] < 0.07
    assert {"record", "offset", "kind", "column", "value"} == set(lines[0])

    result = runner.invoke(app, ["gen", "orders", "--size", "100KB", "-o", str(out), "--json"])
    report = one_json_object(result.stdout)
    assert report["injected"] == 0 and report["injected_path"] is None
    assert not sidecar.exists()  # the stale list is removed


def test_gen_dirty_out_of_range_is_a_usage_error(runner: CliRunner, tmp_path: Path):
    result = runner.invoke(app, ["gen", "orders", "--size", "10KB", "-o",
                                 str(tmp_path / "o.csv"), "--dirty", "0.9", "--json"])
    assert result.exit_code != 0
    assert "dirty" in result.output
    assert "Traceback" not in result.output


# -- broken contracts ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["transform", "validate"])
def test_a_typo_in_the_contract_exits_65_naming_the_line(runner: CliRunner, data: dict[str, Any],
                                                         tmp_path: Path, command: str):
    args = [command, str(data["clean"])]
    if command == "transform":
        args.append(f"{tmp_path}/out/")
    args += ["--contract", str(data["typo"])]
    result = runner.invoke(app, args)
    assert result.exit_code == 65
    assert result.stdout == ""
    assert f"line {data['typo_line']}" in result.stderr
    assert "requird" in result.stderr and "ContractError" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()

    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 65
    error = one_json_object(result.stdout)["error"]
    assert error["type"] == "ContractError"
    assert re.search(rf"\bline {data['typo_line']}\b", error["message"])


def test_a_missing_contract_exits_66(runner: CliRunner, data: dict[str, Any], tmp_path: Path):
    result = runner.invoke(app, ["validate", str(data["clean"]), "--contract",
                                 str(tmp_path / "nope.yaml"), "--json"])
    assert result.exit_code == 66
    assert one_json_object(result.stdout)["error"]["type"] == "InputNotFoundError"


# -- real subprocesses --------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "chunkwise"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli.app"]
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES",
                                                                "CHUNKWISE_DEBUG")}
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120,
                          env=environ)


def test_subprocess_gen_dirty_validate_and_a_broken_contract(data: dict[str, Any],
                                                             tmp_path: Path):
    src = tmp_path / "orders.csv"
    gen = run_cli("gen", "orders", "--size", "150KB", "-o", str(src), "--dirty", "0.05",
                  "--json")
    assert gen.returncode == 0, gen.stderr
    injected = one_json_object(gen.stdout)["injected"]

    checked = run_cli("validate", str(src), "--contract", str(ORDERS_YAML), "--json")
    assert checked.returncode == 65, checked.stderr
    report = one_json_object(checked.stdout)
    assert report["status"] == "failed" and report["rows_rejected"] == injected
    assert "Traceback" not in checked.stderr

    broken = run_cli("transform", str(src), f"{tmp_path}/out/", "--contract", str(data["typo"]))
    assert broken.returncode == 65
    assert broken.stdout == ""
    assert f"line {data['typo_line']}" in broken.stderr
    assert broken.stderr.startswith("error: ContractError: ")
    assert "Traceback" not in broken.stderr
    assert sorted(files_under(tmp_path)) == ["orders.csv", "orders.csv.injected.ndjson"]
