"""benchmarks/cross_core.py: where its threads run, what it loads, what it reports."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

two_cores = pytest.mark.skipif(not {0, 1} <= os.sched_getaffinity(0),
                               reason="needs cores 0 and 1")


@pytest.fixture(scope="module")
def cc(benchmark_script: Callable[[str], ModuleType]) -> ModuleType:
    return benchmark_script("cross_core")


def test_the_sample_is_whole_records_after_the_header(cc: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"id,name\n" + b"".join(b"%d,n%d\n" % (i, i) for i in range(200_000)))
    names, body, types = cc.load(path, 1)
    assert names == ["id", "name"]
    assert len(body) <= cc.MiB and body.endswith(b"\n") and body.startswith(b"0,n0\n")
    assert str(types.field("id").type) == "int64"


@two_cores
def test_each_stage_runs_on_the_core_it_is_given(cc: ModuleType) -> None:
    for core in (0, 1):
        seen, cpu = cc.on_core(core, lambda: os.sched_getaffinity(0))
        assert seen == {core} and cpu >= 0
    assert os.sched_getaffinity(0) >= {0, 1}  # the caller is left as it was
    with pytest.raises(ZeroDivisionError):  # raised here, not lost with the thread
        cc.on_core(0, lambda: 1 / 0)


@two_cores
def test_both_stages_are_measured_on_every_pair_of_cores(cc: ModuleType,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pairs: list[int] = []
    real = cc.on_core

    def on_core(core, work):
        pairs.append(core)
        return real(core, work)

    monkeypatch.setattr(cc, "on_core", on_core)
    names, body = ["a", "b"], b"".join(b"%d,x%d\n" % (i, i % 5) for i in range(1000))
    result = cc.measure(names, body, cc.parse(names, body, None).schema, rounds=1)
    # maker, stage: encode, then parse, for (1,1) (1,0) (0,0) (0,1)
    assert pairs == [1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1]
    for stage in ("encode", "parse"):
        r = result[stage]
        assert r["same_ms"] > 0 and r["cross_ms"] > 0
        assert r["ratio"] == pytest.approx(r["cross_ms"] / r["same_ms"])
