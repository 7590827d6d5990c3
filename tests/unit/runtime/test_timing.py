"""Stage clock: exclusive nesting, per-thread CPU, and the stages of a real run."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import engine
from engine.runtime.timing import STAGES, StageClock


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_nested_stages_are_exclusive() -> None:
    clock = StageClock(trace=True)
    with clock.measure("encode_write"):
        _spin(0.02)
        with clock.measure("upload"):
            _spin(0.03)
    assert 0.015 < clock.cpu["encode_write"] < 0.028
    assert 0.025 < clock.cpu["upload"] < 0.04
    assert [s for s, _, _ in clock.spans] == ["upload", "encode_write"]


def test_worker_thread_cpu_is_its_own_and_waiting_is_not_cpu() -> None:
    clock = StageClock()

    def work() -> None:
        with clock.measure("parse"):
            _spin(0.03)
            time.sleep(0.05)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert 0.025 < clock.cpu["parse"] < 0.045
    assert clock.wall["parse"] > 0.075


def test_iterate_charges_producing_items_not_consuming_them() -> None:
    clock = StageClock()

    def items():
        for _ in range(3):
            _spin(0.01)
            yield 1

    for _ in clock.iterate("parse", items()):
        _spin(0.01)
    assert 0.025 < clock.cpu["parse"] < 0.04


def test_a_run_reports_every_stage(tmp_path: Path) -> None:
    src = tmp_path / "o.csv"
    from engine.gen import generate

    generate("orders", src, size=300_000, fmt="csv")
    report = engine.transform(str(src), str(tmp_path / "o.parquet"), threads=1)
    assert list(report.stages) == list(STAGES)
    assert report.stages["parse"]["cpu_s"] > 0
    assert report.arrow_peak_bytes > 0
    assert sum(s["wall_s"] for s in report.stages.values()) <= report.seconds + 0.01
