"""ParquetReader: row group by row group, any type back as written, contracts, S3, bad files."""

from __future__ import annotations

import datetime
import decimal
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import engine.io
import engine.readers.parquet
from engine import read_batches, transform
from engine.config import ReadOptions
from engine.errors import InputFormatError, SchemaError
from engine.readers.parquet import ParquetReader

ROWS = 10_000


def orders(rows: int = ROWS) -> pa.Table:
    return pa.table({
        "order_id": pa.array(range(1, rows + 1), pa.int64()),
        "amount": [f"{i % 997}.{i % 100:02d}" for i in range(rows)],
        "country": pa.array([["NO", "PE", "JP"][i % 3] for i in range(rows)]).dictionary_encode(),
        "created": pa.array([datetime.datetime(2025, 1, 1) + datetime.timedelta(minutes=i)
                             for i in range(rows)], pa.timestamp("ms", tz="UTC")),
        "note": [None if i % 5 == 0 else f"note {i}" for i in range(rows)],
    })


def every_type() -> pa.Table:
    table = pa.table({
        "i8": pa.array([1, None, -3], pa.int8()),
        "u64": pa.array([0, 2**64 - 1, 3], pa.uint64()),
        "f32": pa.array([1.5, None, -0.0], pa.float32()),
        "f64": [1.5, float("inf"), -2.25],
        "dec": pa.array([decimal.Decimal("1.23"), None, decimal.Decimal("-4.00")],
                        pa.decimal128(10, 2)),
        "ts_tz": pa.array([datetime.datetime(2024, 1, 1, 12)] * 3, pa.timestamp("us", tz="UTC")),
        "ts_ns": pa.array([1, 2, 3], pa.timestamp("ns")),
        "day": pa.array([datetime.date(2024, 2, 29)] * 3, pa.date32()),
        "dict": pa.array(["a", "b", "a"]).dictionary_encode(),
        "flag": [True, False, None],
        "blob": [b"\x00\x01", b"", None],
        "ints": [[1, 2], [], None],
        "record": [{"x": 1, "y": "a"}, None, {"x": 2, "y": None}],
        "map": pa.array([[("k", 1)], [], None], pa.map_(pa.string(), pa.int64())),
        "big_text": pa.array(["x", "y", "z"], pa.large_string()),
        "required": pa.array([1, 2, 3], pa.int32()),
    })
    required = table.schema.get_field_index("required")
    return table.cast(table.schema.set(required, table.schema.field(required).with_nullable(False)))


def write(path: Path, table: pa.Table, **kw: Any) -> Path:
    pq.write_table(table, path, **kw)
    return path


def test_every_type_reads_back_as_written(tmp_path: Path):
    src = write(tmp_path / "types.parquet", every_type(), row_group_size=2)
    report = transform(str(src), str(tmp_path / "out.parquet"))
    assert (report.format, report.rows_in, report.rows_out) == ("parquet", 3, 3)
    back = pq.read_table(tmp_path / "out.parquet")
    assert back.schema.equals(pq.read_table(src).schema)
    assert back.equals(pq.read_table(src))  # values too (to_pylist of ns needs pandas)


@pytest.mark.parametrize("block_size", [64, 4096, 4 << 20])
def test_row_groups_come_in_order_in_chunks_of_about_block_size(tmp_path: Path, block_size):
    src = write(tmp_path / "o.parquet", orders(), row_group_size=3000)  # 4 groups, one short
    reader = ParquetReader(str(src), ReadOptions(block_size=block_size))
    schema = reader.infer_schema([])
    with engine.io.open_seekable(str(src)) as stored:
        chunks = list(reader.read(stored, schema))
    assert [c.first_record for c in chunks] == [
        1 + sum(c.records for c in chunks[:i]) for i in range(len(chunks))]
    assert sum(c.records for c in chunks) == ROWS
    assert pa.concat_tables(c.table for c in chunks).equals(pq.read_table(src))
    per_group = 4 if block_size == 4 << 20 else None
    if per_group:  # a group's rows fit one chunk: one chunk per row group
        assert len(chunks) == per_group
    else:
        assert len(chunks) > 4
        assert max(c.table.nbytes for c in chunks) <= max(block_size, 200) * 4
    offsets = {c.offset for c in chunks}
    assert len(offsets) == 4 and min(offsets) == 4  # each group's first byte; after "PAR1"


def test_a_large_row_group_is_read_through_buffers(tmp_path: Path, monkeypatch):
    src = write(tmp_path / "o.parquet", orders(), row_group_size=ROWS)
    opened: list[int] = []
    real = engine.readers.parquet.pq.ParquetFile

    def recording(source: Any, **kw: Any) -> Any:
        opened.append(kw["buffer_size"])
        return real(source, **kw)

    monkeypatch.setattr(engine.readers.parquet.pq, "ParquetFile", recording)
    monkeypatch.setattr(engine.readers.parquet, "PARQUET_WHOLE_ROW_GROUP_BYTES", 1024)
    transform(str(src), str(tmp_path / "out.parquet"))
    assert opened[0] == engine.readers.parquet.PARQUET_READ_BUFFER_BYTES  # then the size probe
    opened.clear()
    monkeypatch.setattr(engine.readers.parquet, "PARQUET_WHOLE_ROW_GROUP_BYTES", 1 << 30)
    transform(str(src), str(tmp_path / "out2.parquet"))
    assert opened[0] == 0
    for out in ("out.parquet", "out2.parquet"):
        assert pq.read_table(tmp_path / out).equals(pq.read_table(src))


def test_zero_row_groups_and_empty_groups(tmp_path: Path):
    src = write(tmp_path / "empty.parquet", orders(0))
    report = transform(str(src), str(tmp_path / "out.parquet"))
    assert report.rows_in == report.rows_out == 0
    assert pq.read_table(tmp_path / "out.parquet").schema.names == orders(0).schema.names


def test_read_batches_yields_the_rows(tmp_path: Path):
    src = write(tmp_path / "o.parquet", orders(), row_group_size=2500)
    batches = list(read_batches(str(src), block_size=1 << 16))
    assert len(batches) > 4
    assert pa.Table.from_batches(batches).equals(pq.read_table(src))


def test_repartitioning_an_existing_parquet_file(tmp_path: Path):
    src = write(tmp_path / "o.parquet", orders())
    report = transform(str(src), f"{tmp_path}/parts/", max_rows_per_file=3000)
    assert report.rows_out == ROWS and len(report.files) == 4
    parts = sorted((tmp_path / "parts").glob("*.parquet"))
    assert pa.concat_tables(pq.read_table(p) for p in parts).equals(pq.read_table(src))


CONTRACT = """\
dataset: orders
format: parquet
columns:
  order_id: {type: int64, nullable: false, unique: true}
  amount: {type: "decimal128(8, 2)", max: 900}
  country: {type: string, in: [NO, PE]}
  created: {type: "timestamp[s, tz=UTC]"}
extra_columns: drop
"""


def test_a_contract_retypes_and_checks_a_parquet_file(tmp_path: Path):
    src = write(tmp_path / "o.parquet", orders(), row_group_size=4000)
    contract = tmp_path / "orders.yaml"
    contract.write_text(CONTRACT)
    rejects = tmp_path / "rejects.ndjson"
    report = transform(str(src), str(tmp_path / "out.parquet"), contract=str(contract),
                       rejects_uri=str(rejects))
    assert report.rows_in == ROWS == report.rows_out + report.rows_rejected
    assert report.schema == [{"name": "order_id", "type": "int64"},
                             {"name": "amount", "type": "decimal128(8, 2)"},
                             {"name": "country", "type": "string"},
                             {"name": "created", "type": "timestamp[s, tz=UTC]"}]
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.schema.field("amount").type == pa.decimal128(8, 2)
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert len(lines) == report.rows_rejected
    source = orders()
    bad = {i + 1 for i, (amount, country) in enumerate(zip(
        source["amount"].to_pylist(), source["country"].to_pylist(), strict=True))
        if decimal.Decimal(amount) > 900 or country == "JP"}
    assert {line["record"] for line in lines} == bad
    assert {line["check"] for line in lines} == {"max", "in"}


def test_a_contract_type_that_does_not_fit_rejects_the_record(tmp_path: Path):
    table = pa.table({"id": [1, 2, 3], "n": ["7", "eight", "9"]})
    src = write(tmp_path / "t.parquet", table)
    contract = tmp_path / "c.yaml"
    contract.write_text("dataset: t\ncolumns:\n  id: {type: int64}\n  n: {type: int16}\n")
    report = transform(str(src), str(tmp_path / "out.parquet"), contract=str(contract),
                       rejects_uri=str(tmp_path / "r.ndjson"))
    assert (report.rows_out, report.rows_rejected) == (2, 1)
    line = json.loads((tmp_path / "r.ndjson").read_text())
    assert (line["record"], line["column"], line["check"]) == (2, "n", "type")
    assert pq.read_table(tmp_path / "out.parquet").to_pylist() == [
        {"id": 1, "n": 7}, {"id": 3, "n": 9}]


def test_an_explicit_schema_casts_and_a_misfit_is_a_schema_error(tmp_path: Path):
    src = write(tmp_path / "t.parquet", pa.table({"a": [1, 2], "b": ["x", "300"]}))
    schema = pa.schema([("b", pa.string()), ("a", pa.float64())])  # reordered, widened
    transform(str(src), str(tmp_path / "out.parquet"), schema=schema)
    assert pq.read_table(tmp_path / "out.parquet").to_pylist() == [
        {"b": "x", "a": 1.0}, {"b": "300", "a": 2.0}]
    with pytest.raises(SchemaError, match="column 'b'"):
        transform(str(src), str(tmp_path / "bad.parquet"),
                  schema=pa.schema([("a", pa.int64()), ("b", pa.int8())]))
    with pytest.raises(SchemaError, match="do not match"):
        transform(str(src), str(tmp_path / "bad.parquet"), schema=pa.schema([("a", pa.int64())]))
    assert not (tmp_path / "bad.parquet").exists()


def test_duplicate_column_names_are_a_schema_error(tmp_path: Path):
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    src = write(tmp_path / "dup.parquet", table)
    with pytest.raises(SchemaError, match="more than one column named"):
        transform(str(src), str(tmp_path / "out.parquet"))


def _corrupt_page(path: Path) -> None:
    """Overwrite the middle of the first column chunk's data."""
    column = pq.read_metadata(path).row_group(0).column(0)
    data = bytearray(path.read_bytes())
    start = column.data_page_offset + 8
    data[start:start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncated", "no_footer", "page", "text"])
def test_a_damaged_parquet_file_is_an_input_format_error(tmp_path: Path, damage: str):
    src = write(tmp_path / "o.parquet", orders(), compression="none")
    data = src.read_bytes()
    if damage == "truncated":
        src.write_bytes(data[: len(data) // 2])
    elif damage == "no_footer":
        src.write_bytes(data[:-8])
    elif damage == "page":
        _corrupt_page(src)
    else:
        src.write_bytes(b"id,name\n1,a\n")  # named .parquet, holding CSV
    with pytest.raises(InputFormatError) as info:
        transform(str(src), str(tmp_path / "out.parquet"))
    assert "Parquet" in info.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.parquet"]


def test_from_s3_each_read_is_one_ranged_get_of_exactly_its_bytes(
        s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # An object this small is read whole by one GET (WHOLE_INPUT_BYTES): read it as a large one.
    monkeypatch.setattr("engine.readers.sampling.WHOLE_INPUT_BYTES", 0)
    monkeypatch.setattr("engine.readers.sampling._HEAD_SLACK_BYTES", 0)
    src = write(tmp_path / "o.parquet", orders(), row_group_size=2500)
    s3.create_bucket(Bucket="raw")
    s3.upload_file(str(src), "raw", "in/o.parquet")
    ranges: list[tuple[int, int]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        first, last = params["headers"]["Range"].removeprefix("bytes=").split("-")
        ranges.append((int(first), int(last)))

    engine.io.s3_client().meta.events.register("before-call.s3.GetObject", record)
    report = transform("s3://raw/in/o.parquet", str(tmp_path / "out.parquet"),
                       sample_bytes=4096)
    assert report.format == "parquet" and report.rows_out == ROWS
    assert pq.read_table(tmp_path / "out.parquet").equals(pq.read_table(src))
    size = src.stat().st_size
    assert size > 4096  # larger than the head sampling reads
    assert ranges and all(0 <= first <= last < size for first, last in ranges)
    chunks = [pq.read_metadata(src).row_group(g).column(c) for g in range(4) for c in range(5)]
    for column in chunks:  # each column chunk read whole by one GET, no open-ended range
        start = min(o for o in (column.dictionary_page_offset, column.data_page_offset) if o)
        assert (start, start + column.total_compressed_size - 1) in ranges
    assert report.bytes_in <= 2 * size


def test_a_contract_run_on_s3_parquet(s3: Any, tmp_path: Path):
    src = write(tmp_path / "o.parquet", orders(), row_group_size=4000)
    s3.create_bucket(Bucket="raw")
    s3.upload_file(str(src), "raw", "o.parquet")
    contract = tmp_path / "orders.yaml"
    contract.write_text(CONTRACT)
    report = transform("s3://raw/o.parquet", "s3://raw/out/", contract=str(contract))
    assert report.rows_in == ROWS == report.rows_out + report.rows_rejected
    assert report.rows_rejected > 0
