"""engine.sink.parquet.ParquetSink: row-group buffering, dictionaries, rotation, commit/abort."""

from __future__ import annotations

import decimal
import os
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.config import WriteOptions
from engine.sink.parquet import ParquetSink, rotated_uri

N = 20_000


def sample_table(n: int = N, start: int = 0) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "low": pa.array([f"status-{i % 5}" for i in ids], pa.string()),
        "high": pa.array([f"unique-{i:08d}" for i in ids], pa.string()),
        "amount": pa.array([i / 4 for i in ids], pa.float64()),
    })


def pieces(table: pa.Table, size: int) -> list[pa.Table]:
    return [table.slice(i, size) for i in range(0, table.num_rows, size)]


def entries(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def group_rows(path: Path) -> list[int]:
    meta = pq.ParquetFile(path).metadata
    return [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]


# ---------------------------------------------------------------------------------------------
# buffering


def test_small_writes_are_buffered_into_one_row_group(tmp_path: Path):
    table = sample_table()
    dst = tmp_path / "out.parquet"
    sink = ParquetSink(str(dst), table.schema)
    for piece in pieces(table, 500):  # 40 writes
        sink.write(piece)
    assert sink.rows_written == N
    assert sink.buffered_bytes > 0  # nothing forced a row group out yet
    assert not dst.exists()
    sink.commit()
    assert group_rows(dst) == [N]
    assert pq.read_table(dst).equals(table)
    (report,) = sink.files
    assert (report.uri, report.rows, report.row_groups) == (str(dst), N, 1)
    assert report.bytes == dst.stat().st_size
    assert entries(tmp_path) == ["out.parquet"]


def test_row_group_bytes_target(tmp_path: Path):
    table = sample_table()
    target = table.nbytes // 4
    dst = tmp_path / "out.parquet"
    with ParquetSink(str(dst), table.schema, WriteOptions(row_group_bytes=target)) as sink:
        for piece in pieces(table, 500):
            sink.write(piece)
            assert sink.buffered_bytes < target  # flushed as soon as the target is reached
    sizes = group_rows(dst)
    assert 4 <= len(sizes) <= 5
    assert sum(sizes) == N
    assert sink.files[0].row_groups == len(sizes)
    assert pq.read_table(dst).equals(table)


def test_row_group_rows_target(tmp_path: Path):
    table = sample_table()
    dst = tmp_path / "out.parquet"
    with ParquetSink(str(dst), table.schema, WriteOptions(row_group_rows=3_000)) as sink:
        for piece in pieces(table, 700):
            sink.write(piece)
    sizes = group_rows(dst)
    assert max(sizes) <= 3_000
    assert sum(sizes) == N
    assert len(sizes) >= 7
    assert sink.files[0].row_groups == len(sizes)


def test_one_large_write_is_split_by_row_group_rows(tmp_path: Path):
    table = sample_table()
    dst = tmp_path / "out.parquet"
    with ParquetSink(str(dst), table.schema, WriteOptions(row_group_rows=4_000)) as sink:
        sink.write(table)
    assert group_rows(dst) == [4_000] * 5
    assert sink.files[0].row_groups == 5


def test_empty_tables_are_ignored_and_columns_reordered(tmp_path: Path):
    table = sample_table(100)
    dst = tmp_path / "out.parquet"
    with ParquetSink(str(dst), table.schema) as sink:
        sink.write(table.slice(0, 0))
        sink.write(table.select(["amount", "high", "low", "id"]))
    assert pq.read_table(dst).equals(table)


# ---------------------------------------------------------------------------------------------
# dictionary encoding


def _encodings(path: Path) -> dict[str, tuple[str, ...]]:
    meta = pq.ParquetFile(path).metadata
    rg = meta.row_group(0)
    return {rg.column(i).path_in_schema: rg.column(i).encodings for i in range(meta.num_columns)}


def test_dictionary_columns_are_chosen_by_cardinality(tmp_path: Path):
    table = sample_table()
    dst = tmp_path / "out.parquet"
    with ParquetSink(str(dst), table.schema) as sink:
        sink.write(table)
    enc = _encodings(dst)
    assert "RLE_DICTIONARY" in enc["low"] or "PLAIN_DICTIONARY" in enc["low"]
    assert "RLE_DICTIONARY" not in enc["high"] and "PLAIN_DICTIONARY" not in enc["high"]
    assert "RLE_DICTIONARY" not in enc["id"]  # 20k distinct ids out of 20k rows
    assert pq.read_table(dst).equals(table)


def test_dictionary_max_ratio_is_the_threshold(tmp_path: Path):
    table = sample_table()
    everything = tmp_path / "all.parquet"
    with ParquetSink(str(everything), table.schema, WriteOptions(dictionary_max_ratio=1.0)) as s:
        s.write(table)
    assert "RLE_DICTIONARY" in _encodings(everything)["high"]
    nothing = tmp_path / "none.parquet"
    with ParquetSink(str(nothing), table.schema, WriteOptions(dictionary_max_ratio=0.0)) as s:
        s.write(table)
    assert "RLE_DICTIONARY" not in _encodings(nothing)["low"]
    assert pq.read_table(nothing).equals(table)


def test_the_dictionary_decision_from_prefixes_is_the_whole_probes():
    """Prefixes may only say no early: every answer is the full count's."""
    import random

    import pyarrow.compute as pc

    from engine.sink.parquet import _distinct_at_most

    rng = random.Random(7)
    for _ in range(300):
        rows = rng.choice([1, 2, 10, 999, 5_000, 20_000])
        kinds = rng.choice([1, 3, rows // 20 + 1, rows // 9 + 1, rows // 2 + 1, rows])
        late = rng.random() < 0.3  # the values change kind after the prefixes
        values = [None if rng.random() < 0.05 else
                  (rng.randrange(kinds) if not late or i > rows * 0.8 else i % 3)
                  for i in range(rows)]
        order = rng.choice(["as is", "rising", "falling"])  # ids and times come in order
        if order != "as is":
            values = sorted((v for v in values if v is not None), reverse=order == "falling")
            rows = len(values)
        typ = rng.choice([pa.int64(), pa.int32(), pa.float64(), pa.timestamp("s", tz="UTC"),
                          pa.date32()])
        column = pa.chunked_array([values[: rows // 3], values[rows // 3:]], pa.int64())
        column = column.cast(pa.int32()).cast(typ) if typ == pa.date32() else column.cast(typ)
        limit = max(1, rows * rng.choice([0.0, 0.05, 0.1, 0.5, 1.0]))
        assert _distinct_at_most(column, limit) == (pc.count_distinct(column).as_py() <= limit)


@pytest.mark.parametrize("values", [
    pa.array([1.0, float("nan"), None, float("nan"), -0.0, 0.0, 2.5]),
    pa.chunked_array([["a", None, "b"], ["a", "c", None]]),
    pa.array([b"x", None, b"x", b"y"], pa.large_binary()),
    pa.array([True, False, None, True]),
    pa.array([None, None], pa.int64()),
    pa.array([], pa.string()),
    pa.array([decimal.Decimal("1.50"), None, decimal.Decimal("1.5")], pa.decimal128(5, 2)),
    pa.array([1, 2, 1], pa.timestamp("ms", tz="UTC")),
    pa.array([date(2025, 1, 1), date(2025, 1, 1)]),
    pa.array([b"ab", b"ab", b"cd"], pa.binary(2)),
])
def test_the_kernel_counts_distinct_values_as_pyarrow_does(values):
    """engine.kernels.count_distinct counts by ``unique``: the same number, nulls left out."""
    import pyarrow.compute as pc

    from engine import kernels

    assert kernels.count_distinct(values) == pc.count_distinct(values).as_py()


# ---------------------------------------------------------------------------------------------
# compression


@pytest.mark.parametrize(("codec", "name"), [("zstd", "ZSTD"), ("snappy", "SNAPPY"),
                                             ("gzip", "GZIP"), ("none", "UNCOMPRESSED")])
def test_compression(tmp_path: Path, codec: str, name: str):
    table = sample_table(2_000)
    dst = tmp_path / "out.parquet"
    with ParquetSink(str(dst), table.schema, WriteOptions(compression=codec)) as sink:
        sink.write(table)
    meta = pq.ParquetFile(dst).metadata
    assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {name}


# ---------------------------------------------------------------------------------------------
# rotation


def test_rotated_uri():
    assert rotated_uri("out.parquet", 1) == "out-00001.parquet"
    assert rotated_uri("s3://b/k/out.parquet", 12) == "s3://b/k/out-00012.parquet"
    assert rotated_uri("out/", 0) == "out/part-00000.parquet"
    assert rotated_uri("noext", 2) == "noext-00002.parquet"


def test_rotation_by_rows_into_a_directory(tmp_path: Path):
    table = sample_table()
    out = tmp_path / "out"
    opts = WriteOptions(max_rows_per_file=5_000)
    with ParquetSink(f"{out}/", table.schema, opts) as sink:
        for piece in pieces(table, 1_000):
            sink.write(piece)
    names = entries(out)
    assert names == [f"part-{i:05d}.parquet" for i in range(4)]
    assert [pq.ParquetFile(out / n).metadata.num_rows for n in names] == [5_000] * 4
    assert [f.uri for f in sink.files] == [f"{out}/{n}" for n in names]
    assert pa.concat_tables([pq.read_table(out / n) for n in names]).equals(table)


def test_rotation_by_rows_with_one_large_write(tmp_path: Path):
    table = sample_table()
    out = tmp_path / "out"
    with ParquetSink(f"{out}/", table.schema, WriteOptions(max_rows_per_file=6_000)) as sink:
        sink.write(table)
    names = entries(out)
    rows = [pq.ParquetFile(out / n).metadata.num_rows for n in names]
    assert rows == [6_000, 6_000, 6_000, 2_000]
    assert pa.concat_tables([pq.read_table(out / n) for n in names]).equals(table)


def test_rotation_by_bytes(tmp_path: Path):
    table = sample_table()
    out = tmp_path / "out"
    opts = WriteOptions(max_bytes_per_file=1, row_group_rows=2_500)
    with ParquetSink(f"{out}/", table.schema, opts) as sink:
        for piece in pieces(table, 2_500):
            sink.write(piece)
    names = entries(out)
    assert len(names) == 8
    assert pa.concat_tables([pq.read_table(out / n) for n in names]).equals(table)


def test_directory_uri_without_rotation_gets_one_part(tmp_path: Path):
    table = sample_table(100)
    out = tmp_path / "out"
    with ParquetSink(f"{out}/", table.schema) as sink:
        sink.write(table)
    assert entries(out) == ["part-00000.parquet"]
    assert sink.files[0].uri == f"{out}/part-00000.parquet"


# ---------------------------------------------------------------------------------------------
# commit / abort


def test_abort_before_any_row_group_leaves_nothing(tmp_path: Path):
    table = sample_table()
    sink = ParquetSink(str(tmp_path / "out.parquet"), table.schema)
    sink.write(table)
    sink.abort()
    assert entries(tmp_path) == []


def test_abort_with_an_open_file_leaves_no_temp_file(tmp_path: Path):
    table = sample_table()
    sink = ParquetSink(str(tmp_path / "out.parquet"), table.schema,
                       WriteOptions(row_group_rows=1_000))
    sink.write(table.slice(0, 5_000))
    assert any(n.endswith(".tmp") for n in entries(tmp_path))  # row groups were written
    sink.abort()
    assert entries(tmp_path) == []


def test_abort_after_rotation_removes_published_files(tmp_path: Path):
    table = sample_table()
    out = tmp_path / "out"
    sink = ParquetSink(f"{out}/", table.schema, WriteOptions(max_rows_per_file=5_000,
                                                             row_group_rows=1_000))
    for piece in pieces(table.slice(0, 13_000), 1_000):
        sink.write(piece)
    published = [n for n in entries(out) if n.endswith(".parquet")]
    assert published == ["part-00000.parquet", "part-00001.parquet"]
    assert any(n.endswith(".tmp") for n in entries(out))  # the third file is in progress
    sink.abort()
    assert entries(out) == []


def test_context_manager_aborts_on_error(tmp_path: Path):
    table = sample_table()
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        with ParquetSink(f"{out}/", table.schema,
                         WriteOptions(max_rows_per_file=2_000, row_group_rows=1_000)) as s:
            for piece in pieces(table, 1_000):
                s.write(piece)
            assert len(os.listdir(out)) >= 2
            raise RuntimeError("boom")
    assert not out.exists() or entries(out) == []


def test_commit_on_empty_input_writes_a_zero_row_file(tmp_path: Path):
    schema = sample_table(1).schema
    dst = tmp_path / "out.parquet"
    sink = ParquetSink(str(dst), schema)
    sink.commit()
    table = pq.read_table(dst)
    assert table.num_rows == 0
    assert table.schema.names == schema.names
    assert table.schema.types == schema.types
    assert [(f.rows, f.uri) for f in sink.files] == [(0, str(dst))]
    assert entries(tmp_path) == ["out.parquet"]


def test_write_after_commit_or_abort_raises(tmp_path: Path):
    table = sample_table(10)
    sink = ParquetSink(str(tmp_path / "a.parquet"), table.schema)
    sink.write(table)
    sink.commit()
    with pytest.raises(RuntimeError):
        sink.write(table)
    sink.commit()  # idempotent
    assert pq.read_table(tmp_path / "a.parquet").equals(table)
    other = ParquetSink(str(tmp_path / "b.parquet"), table.schema)
    other.abort()
    with pytest.raises(RuntimeError):
        other.write(table)
    assert entries(tmp_path) == ["a.parquet"]


def test_commit_replaces_an_existing_file_atomically(tmp_path: Path):
    dst = tmp_path / "out.parquet"
    dst.write_bytes(b"old")
    table = sample_table(100)
    sink = ParquetSink(str(dst), table.schema, WriteOptions(row_group_rows=10))
    sink.write(table)
    assert dst.read_bytes() == b"old"  # not visible before commit
    sink.commit()
    assert pq.read_table(dst).equals(table)
    assert entries(tmp_path) == ["out.parquet"]
