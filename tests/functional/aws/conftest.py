"""Fixtures shared by the local pipeline tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.gen import generate


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """500 kB of generated orders: five Map parts with ``fault_injection.MAP_SETTINGS``."""
    path = tmp_path_factory.mktemp("map") / "orders.csv"
    generate("orders", path, size=500_000, seed=3)
    return path
