from __future__ import annotations

import pytest

from engine.aws.deadline import Deadline
from engine.errors import TransientError


def test_no_limit_never_raises() -> None:
    deadline = Deadline(None)
    deadline.check_budget(10**15, "convert")
    deadline.progress(1, 10**15)


def test_budget_uses_the_conservative_throughput_and_the_margin() -> None:
    deadline = Deadline(lambda: 30_000, min_throughput=10 * 10**6, margin_ms=20_000)
    deadline.check_budget(90 * 10**6, "convert")  # 9 s predicted, 10 s left
    with pytest.raises(TransientError, match="not enough time left to convert"):
        deadline.check_budget(110 * 10**6, "convert")
    with pytest.raises(TransientError, match="not enough time left"):
        deadline.check_budget(30 * 10**6, "convert", compressed=True)  # 5x expansion: 15 s


def test_progress_projects_the_measured_throughput() -> None:
    now = [0.0]
    deadline = Deadline(lambda: 120_000, margin_ms=20_000, clock=lambda: now[0])
    now[0] = 10.0
    deadline.progress(1, 100)  # 1 %: not trusted yet
    deadline.progress(50, 100)  # 10 s more predicted, 100 s left
    with pytest.raises(TransientError, match="the rest predicted to take 190 s"):
        deadline.progress(5, 100)  # 5 % in 10 s: 190 s more


def test_progress_stops_when_the_margin_is_reached() -> None:
    deadline = Deadline(lambda: 19_000, margin_ms=20_000)
    with pytest.raises(TransientError, match="stopped after 7 bytes"):
        deadline.progress(7, None)
