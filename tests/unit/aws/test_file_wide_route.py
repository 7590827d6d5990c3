"""A contract with file-wide state (aggregate, unique, dedupe) never fans out over a Map."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.aws.steps import file_wide
from engine.contract import load_contract

ROOT = Path(__file__).resolve().parents[3]


def test_orders_contract_is_file_wide() -> None:
    assert file_wide(load_contract(ROOT / "contracts" / "orders.yaml"))


def test_no_contract_is_not_file_wide() -> None:
    assert not file_wide(None)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", False),
        ("    unique: true\n", True),
    ],
)
def test_unique_column(extra: str, expected: bool) -> None:
    text = f"dataset: t\ncolumns:\n  a:\n    type: int64\n{extra}"
    assert file_wide(load_contract(text)) is expected


def test_dedupe_step() -> None:
    text = "dataset: t\ncolumns:\n  a: {type: int64}\ntransforms:\n  - dedupe: {keys: [a]}\n"
    assert file_wide(load_contract(text))
