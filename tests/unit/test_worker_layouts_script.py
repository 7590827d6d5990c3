"""benchmarks/worker_layouts.py: the three layouts write the same table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pyarrow.parquet as pq
import pytest


@pytest.fixture(scope="module")
def wl(benchmark_script: Callable[[str], ModuleType]) -> ModuleType:
    return benchmark_script("worker_layouts")


def test_every_layout_writes_the_rows_in_order(wl: ModuleType, tmp_path: Path) -> None:
    from engine.gen import generate

    src = tmp_path / "orders.csv"
    generate("orders", src, size=3 * wl.MiB, seed=1)  # quoted line breaks among the notes
    tables = {}
    for mode in wl.MODES:
        out = tmp_path / f"{mode}.parquet"
        # small blocks and row groups: many of each, so the workers take turns
        rows = wl.convert(str(src), str(out), mode, block=64 << 10, row_group=256 << 10,
                          ahead=2)
        tables[mode] = pq.read_table(out)
        assert rows == tables[mode].num_rows
        assert pq.ParquetFile(out).metadata.num_row_groups > 4
    assert tables["one"].num_rows > 10_000
    assert tables["pipeline"].equals(tables["one"])
    assert tables["symmetric"].equals(tables["one"])


@pytest.mark.parametrize("mode", ["one", "pipeline", "symmetric"])
def test_a_failure_on_any_thread_is_raised_not_hung(wl: ModuleType, tmp_path: Path,
                                                    mode: str) -> None:
    import pyarrow as pa

    src = tmp_path / "in.csv"
    rows = [b"%d,x%d" % (i, i % 7) for i in range(200_000)]
    rows[150_000] = b"not a number,x"  # past the 1 MiB the types come from
    src.write_bytes(b"id,name\n" + b"\n".join(rows) + b"\n")
    with pytest.raises(pa.ArrowInvalid):
        wl.convert(str(src), str(tmp_path / "out.parquet"), mode, block=64 << 10,
                   row_group=256 << 10, ahead=2)
