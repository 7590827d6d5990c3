from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.aws import routing
from engine.aws.layout import dataset_folder
from engine.errors import ContractError, InputNotFoundError

CONTRACT = """\
dataset: {name}
match: {match}
columns:
  id: {{type: int64}}
"""


@pytest.fixture(autouse=True)
def _fresh_cache() -> Any:
    routing.clear_cache()
    yield
    routing.clear_cache()


def _write(folder: Path, name: str, dataset: str, match: str) -> Path:
    path = folder / name
    path.write_text(CONTRACT.format(name=dataset, match=match))
    return path


def test_first_match_in_name_order_from_a_directory(tmp_path: Path) -> None:
    _write(tmp_path, "b_orders.yaml", "orders_b", '"orders/*.csv"')
    _write(tmp_path, "a_orders.yml", "orders_a", '["orders/2025/*.csv"]')
    (tmp_path / "notes.txt").write_text("not a contract")
    assert routing.contract_for("orders/2025/x.csv", str(tmp_path)) == str(
        tmp_path / "a_orders.yml")
    assert routing.contract_for("orders/2024/x.csv", str(tmp_path)) == str(
        tmp_path / "b_orders.yaml")
    assert routing.contract_for("events/x.json", str(tmp_path)) is None
    assert routing.contract_for("orders/x.csv", None) is None


def test_contracts_from_an_s3_prefix(aws: Any) -> None:
    aws.put_contract("orders.yaml", CONTRACT.format(name="orders", match='"orders/*"'))
    aws.put_contract("sub/ignored.yaml", CONTRACT.format(name="x", match='"*"'))
    uri = f"s3://{aws.config}/contracts/"
    assert routing.list_contracts(uri) == [f"s3://{aws.config}/contracts/orders.yaml"]
    found = routing.contract_for("orders/a.csv", uri)
    assert found == f"s3://{aws.config}/contracts/orders.yaml"
    assert routing.get_contract(found).dataset == "orders"
    assert routing.contract_for("other/a.csv", f"s3://{aws.config}/contracts") is None


def test_warm_cache_is_reused_until_it_expires(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "first", '"*"')
    assert routing.get_contract(str(tmp_path / "a.yaml")).dataset == "first"
    _write(tmp_path, "a.yaml", "second", '"*"')
    assert routing.get_contract(str(tmp_path / "a.yaml")).dataset == "first"
    assert routing.get_contract(str(tmp_path / "a.yaml"), max_age=0).dataset == "second"


def test_an_invalid_contract_fails_instead_of_being_skipped(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("dataset: x\ncolumns: {id: {type: intt64}}\n")
    with pytest.raises(ContractError, match="intt64"):
        routing.contract_for("anything.csv", str(tmp_path))


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        routing.contract_for("a.csv", str(tmp_path / "nope"))


def test_dataset_folder() -> None:
    """Without a contract, the key's folder; at the bucket's root, the key's stem (a table
    location is never the whole bucket)."""
    assert dataset_folder("orders/2025/a.csv", None) == "orders/2025"
    assert dataset_folder("a.csv.gz", None) == "a"
