"""engine.sink.partitioned.PartitionedSink: Hive layout, escaping, open writers, names, abort."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import engine.sink.parquet
from engine.config import WriteOptions
from engine.io import AtomicOutput, input_stem
from engine.sink.hive import HIVE_DEFAULT_PARTITION, escape_partition_text, partition_texts
from engine.sink.parquet import FileReport
from engine.sink.partitioned import PartitionedSink

COUNTRIES = ["FR", "DE", "US", "JP", "BR"]


def orders(n: int, start: int = 0, countries: list[str] = COUNTRIES) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "country": pa.array([countries[i % len(countries)] for i in ids], pa.string()),
        "day": pa.array([dt.date(2025, 3, 1 + i % 3) for i in ids], pa.date32()),
        "status": pa.array([f"status-{i % 4}" for i in ids], pa.string()),
        "amount": pa.array([i / 4 for i in ids], pa.float64()),
    })


def batches(table: pa.Table, size: int) -> list[pa.Table]:
    return [table.slice(i, size) for i in range(0, table.num_rows, size)]


def read_back(base: Path, schema: pa.Schema, keys: list[str]) -> pa.Table:
    """The dataset as pyarrow reads it, columns in the schema's order, sorted by id."""
    partitioning = ds.partitioning(pa.schema([schema.field(k) for k in keys]), flavor="hive")
    table = ds.dataset(str(base), format="parquet", partitioning=partitioning).to_table()
    return table.select(schema.names).sort_by("id")


def all_files(base: Path) -> list[str]:
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


def write_all(base: Path | str, table: pa.Table, keys: list[str], size: int = 1000,
              **kwargs: Any) -> PartitionedSink:
    with PartitionedSink(str(base), table.schema, keys, **kwargs) as sink:
        for piece in batches(table, size):
            sink.write(piece)
    return sink


# --- layout and read-back ----------------------------------------------------------------------


def test_rows_land_in_their_partition_and_read_back_equal(tmp_path: Path):
    table = orders(10_000)
    sink = write_all(tmp_path, table, ["country"])

    assert all_files(tmp_path) == sorted(f"country={c}/part-00000.parquet" for c in COUNTRIES)
    assert read_back(tmp_path, table.schema, ["country"]).equals(table)
    for country in COUNTRIES:
        path = tmp_path / f"country={country}" / "part-00000.parquet"
        stored = pq.read_table(path)
        assert "country" not in stored.schema.names  # the Hive convention: only in the path
        expected = table.filter(pc.equal(table["country"], country)).drop_columns(["country"])
        assert stored.equals(expected)  # rows keep their input order within a partition
    assert sink.rows_written == table.num_rows == sum(f.rows for f in sink.files)


def test_file_reports_carry_sizes_row_groups_and_partition_values(tmp_path: Path):
    table = orders(5_000)
    sink = write_all(tmp_path, table, ["country"])
    assert [f.partition for f in sink.files] == [{"country": c} for c in COUNTRIES]
    for report in sink.files:
        assert isinstance(report, FileReport)
        path = Path(report.uri)
        meta = pq.read_metadata(path)
        assert (report.rows, report.row_groups) == (meta.num_rows, meta.num_row_groups)
        assert report.bytes == path.stat().st_size
        assert report.to_dict()["partition"] == report.partition
    assert "partition" not in FileReport("x").to_dict()  # unpartitioned reports are unchanged


def test_multi_column_partitions(tmp_path: Path):
    table = orders(6_000)
    write_all(tmp_path, table, ["country", "day"], size=700)
    expected = sorted(
        f"country={c}/day=2025-03-0{d}/part-00000.parquet" for c in COUNTRIES for d in (1, 2, 3)
    )
    assert all_files(tmp_path) == expected
    back = read_back(tmp_path, table.schema, ["country", "day"])
    assert back.equals(table)
    assert back.schema.field("day").type == pa.date32()


def test_partition_column_order_gives_directory_nesting(tmp_path: Path):
    table = orders(60)
    write_all(tmp_path, table, ["day", "country"])
    assert "day=2025-03-01/country=FR/part-00000.parquet" in all_files(tmp_path)
    assert read_back(tmp_path, table.schema, ["day", "country"]).equals(table)


def test_columns_in_another_order_and_chunked_input(tmp_path: Path):
    table = orders(3_000)
    shuffled = pa.concat_tables(batches(table.select(list(reversed(table.column_names))), 500))
    assert shuffled.column("country").num_chunks > 1
    with PartitionedSink(str(tmp_path), table.schema, ["country"]) as sink:
        sink.write(shuffled)
    assert read_back(tmp_path, table.schema, ["country"]).equals(table)


def test_dictionary_partition_column(tmp_path: Path):
    table = orders(2_000)
    encoded = table.set_column(1, "country", table["country"].dictionary_encode())
    write_all(tmp_path, encoded, ["country"], size=300)
    assert all_files(tmp_path) == sorted(f"country={c}/part-00000.parquet" for c in COUNTRIES)
    assert read_back(tmp_path, table.schema, ["country"]).equals(table)


# --- escaping ----------------------------------------------------------------------------------


SPECIAL = [
    "a/b", "x=y", "50%", "t:1", "ctl\x01\x1f", "del\x7f", "q?#*", "br[a]c{e}^", "back\\slash",
    "quote\"'", "with space", "é ü ß 東京", "..", ".hidden", "_under", "plain-._~",
]


def test_escape_partition_text_follows_hive():
    assert escape_partition_text("a/b=c%d") == "a%2Fb%3Dc%25d"
    assert escape_partition_text("t:1\x01\x7f") == "t%3A1%01%7F"
    assert escape_partition_text('"#\'*?[\\]^{') == "%22%23%27%2A%3F%5B%5C%5D%5E%7B"
    assert escape_partition_text("with space é}") == "with space é}"  # Hive keeps these
    assert escape_partition_text("plain") == "plain"


def test_special_characters_and_nulls_are_escaped_and_read_back(tmp_path: Path):
    values = [*SPECIAL, None]
    n = len(values)  # odd: each value meets both numbers
    table = pa.table({
        "id": pa.array(range(3 * n), pa.int64()),
        "key": pa.array(values * 3, pa.string()),
        "num": pa.array([None if i % 2 else 7 for i in range(3 * n)], pa.int32()),
    })
    sink = write_all(tmp_path, table, ["key", "num"], size=n)
    directories = {str(Path(f).parent) for f in all_files(tmp_path)}
    assert "key=a%2Fb/num=7" in directories
    assert f"key={HIVE_DEFAULT_PARTITION}/num={HIVE_DEFAULT_PARTITION}" in directories
    assert any(d.startswith("key=../") for d in directories)  # a plain value after "key="
    for directory in directories:  # every value is one directory level: nothing escaped the tree
        assert len(Path(directory).parts) == 2
    assert read_back(tmp_path, table.schema, ["key", "num"]).equals(table)
    assert {"key": None, "num": None} in [f.partition for f in sink.files]
    assert {"key": "a/b", "num": "7"} in [f.partition for f in sink.files]


def test_empty_string_goes_to_the_default_partition_as_hive_does(tmp_path: Path):
    table = pa.table({"id": pa.array([0, 1, 2], pa.int64()), "key": ["", None, "x"]})
    write_all(tmp_path, table, ["key"])
    assert all_files(tmp_path) == [
        f"key={HIVE_DEFAULT_PARTITION}/part-00000.parquet", "key=x/part-00000.parquet",
    ]
    assert read_back(tmp_path, table.schema, ["key"])["key"].to_pylist() == [None, None, "x"]


def test_partition_texts_formats():
    paris = pa.array([dt.datetime(2025, 3, 1, 9, 0)], pa.timestamp("ms", "Europe/Paris"))
    assert partition_texts(paris) == ["2025-03-01T09:00:00.000Z"]  # stored UTC, written UTC
    assert partition_texts(pa.array([dt.datetime(2025, 3, 1, 10, 0, 0, 123)])) == [
        "2025-03-01T10:00:00.000123"
    ]
    assert partition_texts(pa.array([dt.date(2025, 3, 1), None])) == ["2025-03-01", None]
    assert partition_texts(pa.array([True, False])) == ["true", "false"]
    assert partition_texts(pa.array([1.0, 2.5, None])) == ["1", "2.5", None]
    assert partition_texts(pa.array(["", "a"])) == [None, "a"]
    assert partition_texts(pa.chunked_array([["b"], ["c"]]).dictionary_encode()) == ["b", "c"]


@pytest.mark.parametrize("kind", [pa.timestamp("s"), pa.timestamp("us", "UTC"),
                                  pa.timestamp("ms", "Asia/Tokyo")])
def test_timestamps_are_iso_and_read_back(tmp_path: Path, kind: pa.DataType):
    when = [dt.datetime(2025, 3, 1, 10, 0, 0), dt.datetime(2025, 3, 1, 23, 59, 59), None]
    table = pa.table({"id": pa.array([0, 1, 2], pa.int64()), "at": pa.array(when, kind)})
    write_all(tmp_path, table, ["at"])
    assert "at=2025-03-01T10%3A00%3A00" in all_files(tmp_path)[0]
    assert read_back(tmp_path, table.schema, ["at"]).equals(table)


# --- bounded open writers -----------------------------------------------------------------------


class CountingOutput(AtomicOutput):
    """AtomicOutput that records how many outputs are open at once."""

    open_now = 0
    most = 0

    def open(self) -> Any:
        sink = super().open()
        CountingOutput.open_now += 1
        CountingOutput.most = max(CountingOutput.most, CountingOutput.open_now)
        return sink

    def open_native(self) -> Any:  # the Parquet sink's way in: counted as open()
        if self.uri.startswith("s3://"):
            return super().open_native()  # which is open()
        sink = super().open_native()
        CountingOutput.open_now += 1
        CountingOutput.most = max(CountingOutput.most, CountingOutput.open_now)
        return sink

    def commit(self) -> None:
        was_open = not (self.committed or self.aborted)
        super().commit()
        if was_open:
            CountingOutput.open_now -= 1

    def abort(self) -> None:
        opened = self._file is not None or self._native is not None
        was_open = opened and not (self.committed or self.aborted)
        super().abort()
        if was_open:
            CountingOutput.open_now -= 1


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> type[CountingOutput]:
    CountingOutput.open_now = CountingOutput.most = 0
    monkeypatch.setattr(engine.sink.parquet, "AtomicOutput", CountingOutput)
    return CountingOutput


def test_lru_bound_with_interleaved_partitions(tmp_path: Path, counting: type[CountingOutput]):
    # every batch holds 5 partitions in turn, so two open writers must keep closing files; a
    # one-byte buffer budget writes every batch at once, so files are open between batches
    table = orders(5_000)
    with PartitionedSink(str(tmp_path), table.schema, ["country"], max_open_writers=2,
                         buffer_bytes=1) as sink:
        for piece in batches(table, 250):
            sink.write(piece)
            assert sink.open_writers <= 2
            assert counting.open_now <= 2
    assert counting.most == 2 and counting.open_now == 0
    assert sink.evictions > 0

    names = all_files(tmp_path)
    for country in COUNTRIES:
        files = [n for n in names if n.startswith(f"country={country}/")]
        assert len(files) > 1
        # sequence numbers are contiguous from 0, in the order the files were written
        assert files == [f"country={country}/part-{i:05d}.parquet" for i in range(len(files))]
        reports = [f for f in sink.files if f.partition == {"country": country}]
        assert [Path(f.uri).name for f in reports] == [Path(f).name for f in files]
    assert sum(f.rows for f in sink.files) == table.num_rows
    assert len(sink.files) == len(names)
    assert read_back(tmp_path, table.schema, ["country"]).equals(table)


def test_a_partition_that_returns_after_eviction_gets_the_next_file(tmp_path: Path):
    table = orders(4, countries=["FR", "DE", "FR", "US"])
    sink = write_all(tmp_path, table, ["country"], size=1, max_open_writers=1)
    assert [f.uri.removeprefix(str(tmp_path) + "/") for f in sink.files] == [
        "country=FR/part-00000.parquet", "country=DE/part-00000.parquet",
        "country=FR/part-00001.parquet", "country=US/part-00000.parquet",
    ]


def test_one_batch_with_more_partitions_than_writers(tmp_path: Path,
                                                     counting: type[CountingOutput]):
    table = orders(1_000)
    write_all(tmp_path, table, ["country", "status"], size=1_000, max_open_writers=3)
    assert counting.most <= 3
    assert read_back(tmp_path, table.schema, ["country", "status"]).equals(table)


# --- memory budget -----------------------------------------------------------------------------


def test_buffers_share_one_budget(tmp_path: Path):
    table = orders(20_000)
    budget = table.nbytes // 10
    with PartitionedSink(str(tmp_path), table.schema, ["country"], buffer_bytes=budget) as sink:
        for piece in batches(table, 500):
            sink.write(piece)
            assert sink.buffered_bytes <= budget
    assert read_back(tmp_path, table.schema, ["country"]).equals(table)


def test_a_partition_alone_gets_full_row_groups(tmp_path: Path):
    # one partition, a budget of 8 row groups' worth: the static split (budget / writers) would
    # cut its row groups 32-fold; the shared budget lets it use the full row-group target
    table = orders(20_000, countries=["FR"])
    options = WriteOptions(row_group_rows=5_000)
    sink = write_all(tmp_path, table, ["country"], size=500, options=options)
    (report,) = sink.files
    meta = pq.read_metadata(report.uri)
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [5_000] * 4


def test_one_partition_batch_is_not_copied(tmp_path: Path):
    table = orders(1_000, countries=["FR"])
    sink = PartitionedSink(str(tmp_path), table.schema, ["country"])
    ((texts, piece),) = list(sink._split(table))
    assert texts == ("FR",)
    assert piece.column("id").chunks[0].buffers()[1].address == \
        table.column("id").chunks[0].buffers()[1].address
    sink.abort()


# --- rotation ----------------------------------------------------------------------------------


def test_rotation_by_rows_is_per_partition_and_exact(tmp_path: Path):
    table = orders(2_600, countries=["FR", "DE"])
    options = WriteOptions(max_rows_per_file=500)
    sink = write_all(tmp_path, table, ["country"], size=333, options=options)
    for country in ("FR", "DE"):
        reports = [f for f in sink.files if f.partition == {"country": country}]
        assert [f.rows for f in reports] == [500, 500] + [300]
        assert [Path(f.uri).name for f in reports] == [f"part-0000{i}.parquet" for i in range(3)]
    assert read_back(tmp_path, table.schema, ["country"]).equals(table)


def test_rotation_by_bytes(tmp_path: Path):
    table = orders(20_000, countries=["FR"])
    options = WriteOptions(max_bytes_per_file=1, row_group_rows=4_000)
    sink = write_all(tmp_path, table, ["country"], size=1_000, options=options)
    assert [f.rows for f in sink.files] == [4_000] * 5
    assert read_back(tmp_path, table.schema, ["country"]).equals(table)


# --- deterministic names -----------------------------------------------------------------------


def test_a_rerun_writes_the_same_names_and_overwrites(tmp_path: Path):
    table = orders(3_000)
    first = write_all(tmp_path, table, ["country"], size=200, file_stem="orders-2025-03-01",
                      max_open_writers=2)
    names = all_files(tmp_path)
    assert all(Path(n).name.startswith("orders-2025-03-01-") for n in names)
    before = {n: (tmp_path / n).stat().st_ino for n in names}

    second = write_all(tmp_path, table, ["country"], size=200, file_stem="orders-2025-03-01",
                       max_open_writers=2)
    assert all_files(tmp_path) == names  # the same set: overwritten, not duplicated
    assert [f.uri for f in second.files] == [f.uri for f in first.files]
    assert all((tmp_path / n).stat().st_ino != before[n] for n in names)  # replaced by rename
    assert read_back(tmp_path, table.schema, ["country"]).equals(table)


def test_another_input_gets_other_names(tmp_path: Path):
    write_all(tmp_path, orders(100), ["country"], file_stem="a")
    write_all(tmp_path, orders(100, start=100), ["country"], file_stem="b")
    assert len(all_files(tmp_path)) == 2 * len(COUNTRIES)
    assert read_back(tmp_path, orders(1).schema, ["country"]).num_rows == 200


@pytest.mark.parametrize(("uri", "stem"), [
    ("s3://raw/orders/2025-03-01.csv.gz", "2025-03-01"),
    ("/data/in/orders.ndjson", "orders"),
    ("orders.2025.json.zst", "orders.2025"),
    ("s3://raw/_tmp.csv", "tmp"),
    ("s3://raw/.csv", "csv"),
    ("s3://raw/_", "part"),
    ("events", "events"),
])
def test_input_stem(uri: str, stem: str):
    assert input_stem(uri) == stem


# --- commit and abort --------------------------------------------------------------------------


def test_abort_after_lru_commits_leaves_nothing(tmp_path: Path):
    table = orders(5_000)
    with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012 - the failure is mid-stream
        with PartitionedSink(str(tmp_path), table.schema, ["country"],
                             max_open_writers=2, buffer_bytes=1) as sink:
            for piece in batches(table, 250):
                sink.write(piece)
            published = [n for n in all_files(tmp_path) if n.endswith(".parquet")]
            assert len(published) > len(COUNTRIES)  # evicted files were already published
            assert any(".tmp" in n for n in all_files(tmp_path))  # and two files are open
            raise RuntimeError("boom")
    assert all_files(tmp_path) == []


def test_abort_deletes_rotated_files_too(tmp_path: Path):
    table = orders(3_000)
    sink = PartitionedSink(str(tmp_path), table.schema, ["country"],
                           WriteOptions(max_rows_per_file=100))
    for piece in batches(table, 500):
        sink.write(piece)
    assert len(all_files(tmp_path)) > len(COUNTRIES)
    sink.abort()
    sink.abort()  # idempotent
    assert all_files(tmp_path) == []


def test_commit_failure_aborts_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    table = orders(2_000)
    sink = PartitionedSink(str(tmp_path), table.schema, ["country"], max_open_writers=2)
    for piece in batches(table, 100):
        sink.write(piece)
    calls = 0
    real_commit = engine.sink.parquet.ParquetSink.commit

    def failing_commit(self: engine.sink.parquet.ParquetSink) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("disk full")
        real_commit(self)

    monkeypatch.setattr(engine.sink.parquet.ParquetSink, "commit", failing_commit)
    with pytest.raises(OSError, match="disk full"):
        sink.commit()
    monkeypatch.undo()
    assert all_files(tmp_path) == []


def test_empty_input_writes_nothing_and_state_errors(tmp_path: Path):
    table = orders(10)
    with PartitionedSink(str(tmp_path), table.schema, ["country"]) as sink:
        sink.write(table.slice(0, 0))
    assert sink.files == [] and all_files(tmp_path) == []
    sink.commit()  # a second commit is a no-op
    with pytest.raises(RuntimeError):
        sink.write(table)


# --- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("keys", "kwargs", "message"), [
    ([], {}, "no column"),
    (["country", "country"], {}, "repeats"),
    (["nope"], {}, "not in the schema"),
    (["tags"], {}, "cannot partition"),
    (["blob"], {}, "cannot partition"),
    (["country"], {"file_stem": "_x"}, "file_stem"),
    (["country"], {"file_stem": "a/b"}, "file_stem"),
    (["country"], {"file_stem": ""}, "file_stem"),
    (["country"], {"max_open_writers": 0}, "max_open_writers"),
    (["country"], {"buffer_bytes": 0}, "buffer_bytes"),
])
def test_bad_arguments(tmp_path: Path, keys: list[str], kwargs: dict[str, Any], message: str):
    schema = pa.schema([("country", pa.string()), ("tags", pa.list_(pa.string())),
                        ("blob", pa.binary()), ("id", pa.int64())])
    with pytest.raises(ValueError, match=message):
        PartitionedSink(str(tmp_path), schema, keys, **kwargs)


def test_every_column_a_partition_column_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="every column"):
        PartitionedSink(str(tmp_path), pa.schema([("a", pa.string())]), ["a"])


def test_base_uri_with_or_without_trailing_slash(tmp_path: Path):
    table = orders(5)
    a = write_all(tmp_path / "a", table, ["country"])
    b = write_all(f"{tmp_path / 'b'}{os.sep}", table, ["country"])
    assert [f.uri.split("/a/")[1] for f in a.files] == [f.uri.split("/b/")[1] for f in b.files]
