"""Stage clock: exclusive nesting, per-thread CPU, and the stages of a real run.

The clock's arithmetic is tested on an injected clock (:class:`FakeTime` stands in for the
``time`` module the stage clock reads), where time passes only when a test says so: exact
figures, whatever the machine's load. A real run is then checked for its stages, not its times.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import engine
import engine.runtime.timing
from engine.runtime.timing import STAGES, StageClock


class FakeTime:
    """``perf_counter``, ``time`` and a per-thread ``thread_time`` that move only when told."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self._cpu: dict[int, float] = {}
        self._lock = threading.Lock()

    def perf_counter(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def thread_time(self) -> float:
        return self._cpu.get(threading.get_ident(), 0.0)

    def spin(self, seconds: float) -> None:
        """This thread computes for ``seconds``: wall and its own CPU time pass."""
        with self._lock:
            self.now += seconds
            me = threading.get_ident()
            self._cpu[me] = self._cpu.get(me, 0.0) + seconds

    def sleep(self, seconds: float) -> None:
        """This thread waits for ``seconds``: only wall time passes."""
        with self._lock:
            self.now += seconds


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    clock = FakeTime()
    monkeypatch.setattr(engine.runtime.timing, "time", clock)
    return clock


def test_nested_stages_are_exclusive(fake: FakeTime) -> None:
    clock = StageClock(trace=True)
    with clock.measure("encode_write"):
        fake.spin(0.02)
        with clock.measure("upload"):
            fake.spin(0.03)
        fake.sleep(0.01)
    assert clock.cpu["encode_write"] == pytest.approx(0.02)
    assert clock.wall["encode_write"] == pytest.approx(0.03)
    assert clock.cpu["upload"] == pytest.approx(0.03)
    assert clock.wall["upload"] == pytest.approx(0.03)
    assert clock.spans == [("upload", pytest.approx(1_000.02), pytest.approx(1_000.05)),
                           ("encode_write", 1_000.0, pytest.approx(1_000.06))]
    assert clock.to_dict()["encode_write"] == {"wall_s": 0.03, "cpu_s": 0.02}


def test_worker_thread_cpu_is_its_own_and_waiting_is_not_cpu(fake: FakeTime) -> None:
    clock = StageClock()

    def work() -> None:
        with clock.measure("parse"):
            fake.spin(0.03)
            fake.sleep(0.05)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    fake.spin(0.5)  # the main thread's own work is nobody's stage
    assert clock.cpu["parse"] == pytest.approx(0.03)
    assert clock.wall["parse"] == pytest.approx(0.08)
    assert sum(clock.cpu.values()) == pytest.approx(0.03)


def test_iterate_charges_producing_items_not_consuming_them(fake: FakeTime) -> None:
    clock = StageClock()

    def items():
        for _ in range(3):
            fake.spin(0.01)
            yield 1

    for _ in clock.iterate("parse", items()):
        fake.spin(0.02)
    assert clock.cpu["parse"] == pytest.approx(0.03)
    assert clock.wall["parse"] == pytest.approx(0.03)


def test_a_run_reports_every_stage(tmp_path: Path) -> None:
    src = tmp_path / "o.csv"
    from engine.gen import generate

    # beyond the 1 MiB head sample: a smaller input is parsed once, by inference (its "infer")
    generate("orders", src, size=2_000_000, fmt="csv")
    report = engine.transform(str(src), str(tmp_path / "o.parquet"), threads=1)
    assert list(report.stages) == list(STAGES)
    assert report.stages["parse"]["cpu_s"] > 0
    assert report.arrow_peak_bytes > 0
    assert sum(s["wall_s"] for s in report.stages.values()) <= report.seconds + 0.01
