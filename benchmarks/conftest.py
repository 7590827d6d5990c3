"""Fixtures for the pytest-benchmark suites (``pytest benchmarks/ --benchmark-only``).

These files are not collected by a plain ``pytest``: the project's ``testpaths`` is ``tests``.
Inputs are generated once per session into a temporary directory by ``engine.gen``; sizes can be
changed with ``CHUNKWISE_BENCH_SIZE`` (readers, transform; default 20MB) and
``CHUNKWISE_BENCH_WRITER_SIZE`` (the CSV whose rows make the writer's in-memory table; default
80MB, so that the table, ~85 MiB of Arrow data, spans more than one 64 MiB row group).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from engine.gen import generate

SEED = 0
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20}


def parse_size(text: str) -> int:
    """``"20MB"`` → 20_000_000 (kept here so the suites do not follow engine refactors)."""
    raw = text.strip().lower()
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    return int(float(number) * _UNITS[raw[len(number):]])


@dataclass(frozen=True)
class BenchInput:
    path: Path
    rows: int
    text_bytes: int

    @property
    def stored_bytes(self) -> int:
        return self.path.stat().st_size


def _size(var: str, default: str) -> tuple[str, int]:
    text = os.environ.get(var, default)
    return text.strip().lower(), parse_size(text)


@pytest.fixture(scope="session")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-data")


@pytest.fixture(scope="session")
def inputs(bench_dir: Path) -> dict[str, BenchInput]:
    """One generated file per format: ``csv``, ``ndjson``, ``json`` and ``csv.gz``."""
    label, size = _size("CHUNKWISE_BENCH_SIZE", "20MB")
    out = {}
    for suffix in ("csv", "ndjson", "json", "csv.gz"):
        path = bench_dir / f"orders_{label}_seed{SEED}.{suffix}"
        report = generate("orders", path, size=size, seed=SEED)
        out[suffix] = BenchInput(path, report.rows, report.bytes_written)
    return out


@pytest.fixture(scope="session")
def orders_table(bench_dir: Path) -> pa.Table:
    """A fixed in-memory table of orders rows, parsed once by the engine's CSV reader."""
    import engine

    label, size = _size("CHUNKWISE_BENCH_WRITER_SIZE", "80MB")
    path = bench_dir / f"orders_{label}_seed{SEED}.writer.csv"
    generate("orders", path, size=size, fmt="csv", seed=SEED)
    table = pa.Table.from_batches(list(engine.read_batches(str(path))))
    path.unlink()
    return table.combine_chunks()
