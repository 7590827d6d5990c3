"""benchmarks/small_files.py: the alternation and the untimed clean-up between runs."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def sf(benchmark_script: Callable[[str], ModuleType]) -> ModuleType:
    return benchmark_script("small_files")


def test_runs_alternate_and_the_clean_up_follows_each_untimed(sf: ModuleType,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    calls: list[str] = []
    timed: list[str] = []
    real = sf.timed

    def timing(run: Callable[[], object]) -> tuple[float, float]:
        timed.append(run.__name__)
        return real(run)

    monkeypatch.setattr(sf, "timed", timing)

    def bare() -> None:
        calls.append("bare")

    def ours() -> None:
        calls.append("ours")

    def cleanup() -> None:
        calls.append("cleanup")

    result = sf.compare(bare, ours, 3, cleanup)
    assert calls == ["bare", "cleanup", "ours", "cleanup"] * 5  # 2 warm-up rounds, 3 timed
    assert timed == ["bare", "ours"] * 3
    assert result["wall_ratio"] == pytest.approx(result["ours_ms"] / result["bare_ms"])


def test_a_local_case_leaves_no_output_behind(sf: ModuleType, tmp_path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(100)))
    out = tmp_path / "out"
    out.mkdir()
    result = sf.local_case(src, "csv", out, 2, None)
    assert result["ours_ms"] > 0 and result["bare_ms"] > 0
    assert list(out.iterdir()) == []
