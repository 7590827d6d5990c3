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
