"""Readers and the whole conversion, per format: ``pytest benchmarks/ --benchmark-only``.

No assertion is about time; each one checks that every generated row came through.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import engine

ROUNDS = 3


def _consume(src: str) -> int:
    rows = 0
    for batch in engine.read_batches(src):
        rows += batch.num_rows
    return rows


@pytest.mark.benchmark(group="read_batches")
@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_read_batches(benchmark, inputs, fmt: str) -> None:
    src = inputs[fmt]
    rows = benchmark.pedantic(_consume, args=(str(src.path),), rounds=ROUNDS, iterations=1,
                              warmup_rounds=1)
    assert rows == src.rows
    benchmark.extra_info.update(rows=rows, input_bytes=src.stored_bytes,
                                mb_per_s_median=round(src.stored_bytes / 1e6
                                                      / benchmark.stats.stats.median, 1))


@pytest.mark.benchmark(group="transform")
@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json", "csv.gz"])
def test_transform(benchmark, inputs, fmt: str, tmp_path: Path) -> None:
    src = inputs[fmt]
    dst = tmp_path / "out.parquet"

    def setup() -> None:
        dst.unlink(missing_ok=True)

    report = benchmark.pedantic(engine.transform, args=(str(src.path), str(dst)), setup=setup,
                                rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert report.status == "succeeded"
    assert report.rows_out == src.rows and report.rows_rejected == 0
    benchmark.extra_info.update(
        rows=report.rows_out, input_bytes=src.stored_bytes, output_bytes=report.bytes_out,
        row_groups=sum(f["row_groups"] for f in report.files),
        mb_per_s_median=round(src.stored_bytes / 1e6 / benchmark.stats.stats.median, 1),
    )
