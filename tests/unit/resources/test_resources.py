"""engine.resources: what the commands read at run time is packaged, or a typed error says not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine import resources
from engine.cli.app import app
from engine.errors import InstallationError, exit_code_for

ROOT = Path(__file__).resolve().parents[3]


def test_the_packaged_files_are_the_repositorys_own() -> None:
    pairs = {"stepfunctions/pipeline.asl.json": "stepfunctions/pipeline.asl.json",
             "handlers/transform/handler.py": "lambda/transform/handler.py",
             "layer/requirements.txt": "layer/requirements.txt",
             "contracts/orders.yaml": "contracts/orders.yaml"}
    for packaged, repository in pairs.items():
        assert resources.resource(packaged).read_bytes() == (ROOT / repository).read_bytes()
    assert resources.handler_dir("ingest").name == "ingest"
    assert resources.contract_names() == ["events", "orders"]


@pytest.fixture
def empty_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An installation whose resources folder lost its files.

    Only chunkwise's own lookup is pointed at the empty folder: patching
    ``importlib.resources.files`` itself would also empty every other library's
    data (moto reads its EC2 catalogue that way).
    """
    monkeypatch.setattr(resources, "root", lambda: tmp_path)
    monkeypatch.delenv("CHUNKWISE_ASL", raising=False)
    monkeypatch.delenv("CHUNKWISE_LAMBDA_DIR", raising=False)


def test_a_missing_file_is_an_installation_error(empty_install: None) -> None:
    with pytest.raises(InstallationError, match="stepfunctions/pipeline.asl.json.*incomplete") \
            as caught:
        resources.resource("stepfunctions/pipeline.asl.json")
    assert exit_code_for(caught.value) == 72


def test_the_pipeline_says_so_not_errno(empty_install: None, tmp_path: Path) -> None:
    src = tmp_path / "o.csv"
    src.write_text("a\n1\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["pipeline", "run", str(src), "--json"])
    assert result.exit_code == 72, result.output
    error = json.loads(result.stdout.splitlines()[-1])["error"]
    assert error["type"] == "InstallationError" and "incomplete" in error["message"]
    assert "Errno" not in result.output


def test_contracts_show_prints_a_contract_and_refuses_an_unknown_name() -> None:
    shown = CliRunner().invoke(app, ["contracts", "show", "orders"])
    assert shown.exit_code == 0 and shown.stdout == (ROOT / "contracts/orders.yaml").read_text()
    unknown = CliRunner().invoke(app, ["contracts", "show", "order"])
    assert unknown.exit_code == 2 and "events, orders" in unknown.output
    listed = json.loads(CliRunner().invoke(app, ["contracts", "list", "--json"]).stdout)
    assert [c["name"] for c in listed["contracts"]] == ["events", "orders"]
