"""The measured child: kernel peak RSS, timeline, watchdog."""

from __future__ import annotations

import sys

from engine.config import MiB
from engine.sizing.measure import launch

GROW = ("import time\nchunks = []\nfor _ in range(30):\n"
        "    chunks.append(bytearray(10 << 20))\n    time.sleep(0.01)\n")


def test_peak_rss_is_the_childs_own_not_this_processs() -> None:
    ballast = bytearray(300 * MiB)  # this process is big; the child's figure must not be
    got = launch([sys.executable, "-c", "pass"], sample_interval=0)
    assert got.exit_code == 0 and not got.killed
    assert got.peak_rss_bytes < 40 * MiB
    del ballast


def test_a_growing_child_is_sampled_and_its_peak_recorded() -> None:
    got = launch([sys.executable, "-c", GROW], sample_interval=0.01)
    assert got.exit_code == 0 and not got.killed
    assert got.peak_rss_bytes >= 300 * MiB
    assert len(got.timeline) >= 3
    assert max(m for _, m in got.timeline) > 100  # MiB
    assert got.cpu_s > 0


def test_the_watchdog_kills_above_the_cap_as_lambda_does() -> None:
    got = launch([sys.executable, "-c", GROW], cap_bytes=120 * MiB, sample_interval=0)
    assert got.killed
    assert got.exit_code == -9
    assert got.peak_rss_bytes < 300 * MiB


def test_a_child_under_the_cap_passes() -> None:
    got = launch([sys.executable, "-c", "x = bytearray(20 << 20)"], cap_bytes=200 * MiB,
                 sample_interval=0)
    assert got.exit_code == 0 and not got.killed


def _orders(tmp_path, name: str, rows: int) -> str:
    path = tmp_path / name
    path.write_text("order_id,amount\n" + "".join(f"{i},{i * 1.5}\n" for i in range(rows)))
    return str(path)


def test_the_child_lives_as_a_lambda_environment_init_cold_then_warm(tmp_path) -> None:
    """INIT is the packaged handler's import; each phase has its own CPU and peak."""
    from engine.resources import handler_dir
    from engine.sizing.measure import WarmRun, measure

    src, other = _orders(tmp_path, "a.csv", 20_000), _orders(tmp_path, "b.csv", 100)
    m = measure(src, str(tmp_path / "cold.parquet"), fmt="csv", size_bytes=0,
                block_size=MiB, threads=1, sample_interval=0,
                handler_dir=str(handler_dir("transform")),
                warm=WarmRun(other, str(tmp_path / "warmup.parquet"),
                             str(tmp_path / "warm.parquet")))
    assert m.ok and m.phases_done == ["init", "cold", "warmup", "warm"], m.stderr
    assert m.report["rows_in"] == 20_000  # the last phase's report: the file, warm
    assert all((tmp_path / f"{p}.parquet").exists() for p in ("cold", "warmup", "warm"))
    assert 0 < m.init_cpu_s and 0 < m.cold_cpu_s and 0 < m.warm_cpu_s
    assert m.init_cpu_s + m.cold_cpu_s + m.warm_cpu_s <= m.cpu_s  # parts of the process's
    assert 0 < m.init_peak_rss_bytes <= m.cold_peak_rss_bytes  # the cold peak spans INIT
    assert 0 < m.warm_baseline_rss_bytes <= m.warm_peak_rss_bytes
    assert m.peak_rss_bytes >= max(m.cold_peak_rss_bytes, m.warm_peak_rss_bytes)


def test_a_child_killed_in_init_says_no_phase_finished(tmp_path) -> None:
    from engine.resources import handler_dir
    from engine.sizing.measure import measure

    src = _orders(tmp_path, "a.csv", 10)
    m = measure(src, str(tmp_path / "o.parquet"), fmt="csv", size_bytes=0, block_size=MiB,
                threads=1, sample_interval=0, cap_bytes=30 * MiB,
                handler_dir=str(handler_dir("transform")))
    assert m.killed and not m.ok
    assert "cold" not in m.phases_done and not (tmp_path / "o.parquet").exists()
