"""Fixtures of the unit tests: the benchmark scripts, loaded as modules."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="session")
def benchmark_script() -> Callable[[str], ModuleType]:
    """A loader of ``benchmarks/<name>.py`` (a script, not a package module)."""
    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"chunkwise_bench_{name}",
                                                      BENCHMARKS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
