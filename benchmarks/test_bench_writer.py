"""The Parquet sink on a fixed in-memory table: codec × row-group target.

The table is fed to ``ParquetSink.write`` in slices of ~50k rows (about what one 4 MiB chunk of
orders CSV parses to), as the run loop does, so the row-group target decides how much is buffered
before each ``write_table``. No assertion is about time.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.config import WriteOptions
from engine.sink.parquet import ParquetSink

MiB = 1024 * 1024
SLICE_ROWS = 50_000
ROUNDS = 3


@pytest.fixture(scope="module")
def slices(orders_table: pa.Table) -> list[pa.Table]:
    return [pa.Table.from_batches([b])
            for b in orders_table.to_batches(max_chunksize=SLICE_ROWS)]


@pytest.mark.benchmark(group="parquet_sink")
@pytest.mark.parametrize("row_group_mib", [4, 16, 64])
@pytest.mark.parametrize("compression", ["zstd", "snappy"])
def test_parquet_sink(benchmark, orders_table: pa.Table, slices: list[pa.Table],
                      compression: str, row_group_mib: int, tmp_path: Path) -> None:
    dst = tmp_path / "out.parquet"
    options = WriteOptions(compression=compression, row_group_bytes=row_group_mib * MiB)

    def setup() -> None:
        dst.unlink(missing_ok=True)

    def write() -> ParquetSink:
        with ParquetSink(str(dst), orders_table.schema, options) as sink:
            for piece in slices:
                sink.write(piece)
        return sink

    sink = benchmark.pedantic(write, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    meta = pq.read_metadata(dst)
    assert meta.num_rows == orders_table.num_rows == sink.files[0].rows
    benchmark.extra_info.update(
        rows=meta.num_rows, table_mib=round(orders_table.nbytes / MiB, 1),
        output_bytes=dst.stat().st_size, row_groups=meta.num_row_groups,
        arrow_mb_per_s_median=round(orders_table.nbytes / 1e6 / benchmark.stats.stats.median, 1),
    )
