"""benchmarks/threads_cost.py: the head it cuts, the order it runs in, the ratios it reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture(scope="module")
def tc(benchmark_script: Callable[[str], ModuleType]) -> ModuleType:
    return benchmark_script("threads_cost")


def test_head_is_cut_at_the_last_newline_in_the_limit(tc: ModuleType, tmp_path: Path) -> None:
    src, dst = tmp_path / "in.csv", tmp_path / "head.csv"
    src.write_bytes(b'a,b\r\n1,"x\ny"\r\n2,z\r\n3,w\r\n')
    assert tc.write_head(src, dst, limit=20) == 19  # as head -c 20 | sed '$d'
    assert dst.read_bytes() == b'a,b\r\n1,"x\ny"\r\n2,z\r\n'
    assert tc.write_head(src, dst, limit=10) == 10  # a quoted line break is a line end too
    assert dst.read_bytes() == b'a,b\r\n1,"x\n'


def test_pairs_alternate_and_per_gb_takes_the_heads_out(tc: ModuleType, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = {("big", False): [3.0, 3.4], ("big", True): [2.5, 2.6],
           ("head", False): [0.5, 0.6], ("head", True): [0.5, 0.4]}
    seen: list[tuple[str, bool]] = []

    def fake_run(src: Path, out: Path, *, one_thread: bool, pin: str | None) -> dict[str, Any]:
        key = (src.name, one_thread)
        seen.append(key)
        value = cpu[key][sum(k == key for k in seen) - 1]
        return {"cpu_s": value, "user_s": value, "sys_s": 0.0, "wall_s": value / 2,
                "maxrss_kib": 2048, "minflt": 10}

    monkeypatch.setattr(tc, "run", fake_run)
    rows = tc.measure(Path("big"), Path("head"), tmp_path / "o.parquet", 2, None)
    assert [r["case"] for r in rows] == ["default", "one", "head_default", "head_one",
                                         "one", "default", "head_one", "head_default"]
    summary = tc.summarize(rows, big_bytes=1_001_000_000, head_bytes=1_000_000)
    assert summary["per_gb_ratios"] == pytest.approx([2.5 / 2.0, 2.8 / 2.2])
    assert summary["per_gb_ratio"] == pytest.approx((2.5 / 2.0 + 2.8 / 2.2) / 2)
    assert summary["cpu_ratio"] == pytest.approx((3.0 / 2.5 + 3.4 / 2.6) / 2)
    assert summary["cpu_s_per_gb"] == pytest.approx({"default": 2.65, "one": 2.1})
    assert summary["verdict"] == "not met"
    assert "| **1.261×** (1.256–1.267) |" in tc.table(
        {"x": {"bytes": 10**9, "summary": summary}}, None)
