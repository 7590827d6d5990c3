"""engine.run: transform() and read_batches() end to end on local files.

Every output is read back with pyarrow.parquet and compared with the input parsed independently
(the csv and json modules). Every report must keep ``rows_in == rows_out + rows_rejected``.
"""

from __future__ import annotations

import bz2
import csv
import datetime as dt
import gzip
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from engine.config import RunOptions
from engine.errors import (
    EngineError,
    InputFormatError,
    InputNotFoundError,
    SchemaError,
    UsageError,
)
from engine.gen import generate
from engine.plan import source_id
from engine.run import RunReport, build_options, read_batches, transform

COLUMNS = ["order_id", "created_at", "customer_id", "country", "amount", "quantity", "status",
           "note"]
UTC = dt.UTC


# ---------------------------------------------------------------------------------------------
# helpers


def check_report(report: RunReport) -> RunReport:
    """The invariants every successful report keeps."""
    assert report.status == "succeeded"
    assert report.rows_in == report.rows_out + report.rows_rejected
    assert report.rejects["count"] == report.rows_rejected
    assert report.rows_out == sum(f["rows"] for f in report.files)
    assert report.bytes_out == sum(f["bytes"] for f in report.files)
    for f in report.files:
        assert os.path.getsize(f["uri"]) == f["bytes"]
        assert pq.ParquetFile(f["uri"]).metadata.num_rows == f["rows"]
        assert pq.ParquetFile(f["uri"]).metadata.num_row_groups == f["row_groups"]
    json.loads(report.to_json())  # always serialisable
    return report


def leftovers(directory: Path, keep: set[str]) -> list[str]:
    """Entries of ``directory`` other than ``keep`` (outputs, temp files, rejects)."""
    return sorted(set(os.listdir(directory)) - keep)


def csv_records(path: Path, encoding: str = "utf-8") -> list[dict[str, str]]:
    with open(path, newline="", encoding=encoding) as fh:
        return list(csv.DictReader(fh))


def json_records(path: Path, fmt: str, json_path: str | None = None) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if fmt == "ndjson":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    doc = json.loads(text)
    for key in (json_path or "item").split(".")[:-1]:
        doc = doc[key]
    return doc


def as_utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def assert_orders_equal(table: pa.Table, expected: list[dict[str, Any]]) -> None:
    """Compare an orders table with records parsed by the csv or json module."""
    assert table.num_rows == len(expected)
    assert table.column_names == COLUMNS
    got = table.to_pydict()
    assert got["order_id"] == [int(r["order_id"]) for r in expected]
    assert got["customer_id"] == [int(r["customer_id"]) for r in expected]
    assert got["quantity"] == [int(r["quantity"]) for r in expected]
    assert got["amount"] == [float(r["amount"]) for r in expected]
    assert got["country"] == [r["country"] for r in expected]  # "NA" (Namibia) is not null
    assert got["status"] == [r["status"] for r in expected]
    assert got["note"] == [r["note"] for r in expected]
    assert [as_utc(v) for v in got["created_at"]] == [
        dt.datetime.fromisoformat(r["created_at"]) for r in expected
    ]


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """~1 MB of orders per format (csv, ndjson, json array), plus a ~3 MB CSV."""
    root = tmp_path_factory.mktemp("orders")
    out = {}
    for fmt in ("csv", "ndjson", "json"):
        out[fmt] = root / f"orders.{fmt}"
        generate("orders", out[fmt], size=1_000_000, seed=7)
    out["big_csv"] = root / "big.csv"
    generate("orders", out["big_csv"], size=3_000_000, seed=11)
    return out


@pytest.fixture
def work(tmp_path: Path) -> Path:
    out = tmp_path / "work"
    out.mkdir()
    return out


# ---------------------------------------------------------------------------------------------
# formats → Parquet


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_transform_matches_independent_parse(orders: dict[str, Path], work: Path, fmt: str,
                                             threads: int):
    src = orders[fmt]
    dst = work / "out.parquet"
    report = check_report(transform(str(src), str(dst), threads=threads, block_size=64 * 1024))
    expected = csv_records(src) if fmt == "csv" else json_records(src, fmt)
    assert len(expected) > 1000
    assert report.format == fmt
    assert report.input == str(src)
    assert report.output == str(dst)
    assert report.rows_in == report.rows_out == len(expected)
    assert report.rows_rejected == 0
    assert report.bytes_in == src.stat().st_size
    assert report.bytes_out == dst.stat().st_size
    assert report.restarts == 0 and report.widened == []
    assert report.peak_rss_bytes > 0
    table = pq.read_table(dst)
    assert [f["name"] for f in report.schema] == table.column_names
    # Parquet has no seconds unit: timestamp[s] comes back as timestamp[ms].
    assert [f["type"].replace("[s,", "[ms,").replace("[s]", "[ms]") for f in report.schema] == [
        str(t) for t in table.schema.types]
    assert table.schema.field("order_id").type == pa.int64()
    assert table.schema.field("amount").type == pa.float64()
    assert pa.types.is_timestamp(table.schema.field("created_at").type)
    assert_orders_equal(table, expected)
    assert leftovers(work, set()) == ["out.parquet"]


def test_json_array_at_json_path(orders: dict[str, Path], work: Path):
    array = orders["json"].read_bytes()
    src = work / "doc.json"
    src.write_bytes(b'{"meta": {"source": "gen", "note": "[not, the, array]"},\n "data": '
                    + array + b',\n "after": [1, 2, 3]}\n')
    report = check_report(transform(str(src), str(work / "doc.parquet"), json_path="data.item"))
    expected = json_records(src, "json", "data.item")
    assert report.format == "json"
    assert report.rows_out == len(expected) > 1000
    assert_orders_equal(pq.read_table(work / "doc.parquet"), expected)


def test_json_path_not_in_document_is_an_input_format_error(work: Path):
    src = work / "doc.json"
    src.write_text('{"meta": {}, "rows": [{"a": 1}]}\n', encoding="utf-8")
    with pytest.raises(InputFormatError) as info:
        transform(str(src), str(work / "doc.parquet"), json_path="data.item")
    assert info.value.uri == str(src)
    assert leftovers(work, {"doc.json"}) == []


# ---------------------------------------------------------------------------------------------
# rejects


def test_csv_rejects_file_holds_exactly_the_ragged_rows(work: Path):
    rows = [f"{i},name {i},{i * 3}" for i in range(20_000)]
    bad = {4: "4,name 4", 7_001: "7001,x,1,extra", 15_000: "15000", 19_999: "19999,a,b,c,d"}
    for index, text in bad.items():
        rows[index] = text
    data = ("id,name,n\n" + "\n".join(rows) + "\n").encode()
    src = work / "ragged.csv"
    src.write_bytes(data)
    rejects = work / "rejects.ndjson"
    report = check_report(transform(str(src), str(work / "out.parquet"), block_size=16 * 1024,
                                    rejects_uri=str(rejects)))
    assert report.rows_in == 20_000
    assert report.rows_rejected == len(bad)
    assert report.rejects == {"count": len(bad), "uri": str(rejects)}
    lines = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert [(r["record"], r["raw"]) for r in lines] == [(i + 1, t) for i, t in bad.items()]
    for r in lines:
        assert data[r["offset"]:].startswith(r["raw"].encode() + b"\n")
        assert r["reason"]
    table = pq.read_table(work / "out.parquet")
    assert table.column("id").to_pylist() == [i for i in range(20_000) if i not in bad]
    assert table.column("name").to_pylist() == [f"name {i}" for i in range(20_000)
                                                if i not in bad]


def test_ndjson_rejects_file_holds_exactly_the_bad_lines(work: Path):
    lines = [json.dumps({"id": i, "name": f"n{i}"}) for i in range(5_000)]
    bad = {0: '{"id": 0, "name": ', 1_234: "not json at all", 4_999: '{"id": 4999,, }'}
    for index, text in bad.items():
        lines[index] = text
    data = ("\n".join(lines) + "\n").encode()
    src = work / "bad.ndjson"
    src.write_bytes(data)
    rejects = work / "rejects.ndjson"
    report = check_report(transform(str(src), str(work / "out.parquet"), block_size=8 * 1024,
                                    rejects_uri=str(rejects)))
    assert (report.rows_in, report.rows_out, report.rows_rejected) == (5_000, 4_997, 3)
    got = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert [(r["record"], r["raw"]) for r in got] == [(i + 1, t) for i, t in bad.items()]
    assert [r["offset"] for r in got] == [data.index((t + "\n").encode()) for t in bad.values()]
    table = pq.read_table(work / "out.parquet")
    assert table.column("id").to_pylist() == [i for i in range(5_000) if i not in bad]


def test_json_array_bad_element_is_rejected(work: Path):
    data = b'[{"a": 1, "b": "x"},\n {"a": 2, "b": },\n {"a": 3, "b": "z"}]\n'
    src = work / "arr.json"
    src.write_bytes(data)
    rejects = work / "rejects.ndjson"
    report = check_report(transform(str(src), str(work / "out.parquet"),
                                    rejects_uri=str(rejects)))
    assert (report.rows_in, report.rows_out, report.rows_rejected) == (3, 2, 1)
    (reject,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert reject["record"] == 2
    assert reject["raw"] == '{"a": 2, "b": }'
    assert data[reject["offset"]:].startswith(reject["raw"].encode())
    assert pq.read_table(work / "out.parquet").to_pylist() == [{"a": 1, "b": "x"},
                                                               {"a": 3, "b": "z"}]


def test_clean_input_with_rejects_uri_writes_an_empty_rejects_file(orders, work: Path):
    rejects = work / "rejects.ndjson"
    report = check_report(transform(str(orders["csv"]), str(work / "out.parquet"),
                                    rejects_uri=str(rejects)))
    assert report.rows_rejected == 0
    assert rejects.read_bytes() == b""


# ---------------------------------------------------------------------------------------------
# schemas: widening, explicit schema

WIDE_ROWS = 150_000
FLOAT_AT = 90_000  # 0-based data row whose "v" is 1.5
TEXT_AT = 130_000  # 0-based data row whose "w" is text


@pytest.fixture(scope="module")
def late_values(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~3 MB of integers; a float in ``v`` after ~1.8 MB and text in ``w`` after ~2.6 MB."""
    rows = []
    for i in range(WIDE_ROWS):
        v = "1.5" if i == FLOAT_AT else str(i)
        w = "text" if i == TEXT_AT else str(i * 2)
        rows.append(f"{i},{v},{w}")
    path = tmp_path_factory.mktemp("late") / "late.csv"
    path.write_text("id,v,w\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert path.stat().st_size > 2_500_000
    return path


def test_late_values_widen_and_restart(late_values: Path, work: Path):
    dst = work / "out.parquet"
    report = check_report(transform(str(late_values), str(dst), block_size=256 * 1024))
    assert report.rows_in == report.rows_out == WIDE_ROWS
    assert report.restarts >= 1
    assert [(w["column"], w["from"], w["to"]) for w in report.widened] == [
        ("v", "int64", "double"), ("w", "int64", "string")]
    table = pq.read_table(dst)
    assert table.schema == pa.schema([("id", pa.int64()), ("v", pa.float64()),
                                      ("w", pa.string())])
    assert pq.ParquetFile(dst).schema_arrow == table.schema  # one schema for the whole file
    assert [f["type"] for f in report.schema] == ["int64", "double", "string"]
    ids = table.column("id").to_pylist()
    assert ids == list(range(WIDE_ROWS))
    v = table.column("v").to_pylist()
    assert v[FLOAT_AT] == 1.5 and v[0] == 0.0 and v[-1] == float(WIDE_ROWS - 1)
    w = table.column("w").to_pylist()
    assert w[TEXT_AT] == "text" and w[0] == "0" and w[-1] == str((WIDE_ROWS - 1) * 2)
    # The widening names the record that holds the value (1-based data records).
    assert [w["record"] for w in report.widened] == [FLOAT_AT + 1, TEXT_AT + 1]


def test_explicit_schema_that_a_value_does_not_fit_is_a_schema_error(late_values: Path,
                                                                      work: Path):
    schema = pa.schema([("id", pa.int64()), ("v", pa.int64()), ("w", pa.string())])
    with pytest.raises(SchemaError) as info:
        transform(str(late_values), str(work / "out.parquet"), schema=schema,
                  block_size=256 * 1024, rejects_uri=str(work / "rejects.ndjson"))
    assert leftovers(work, set()) == []  # no output, no temp file, no rejects file
    err = info.value
    assert err.uri == str(late_values)
    assert "'v'" in err.message
    assert err.record == FLOAT_AT + 1  # the record that holds 1.5


def test_explicit_schema_is_used_without_inference(work: Path):
    src = work / "in.csv"
    src.write_text("a,b\n1,2\n3,4\n", encoding="utf-8")
    schema = pa.schema([("a", pa.int32()), ("b", pa.string())])
    report = check_report(transform(str(src), str(work / "out.parquet"), schema=schema))
    assert report.schema == [{"name": "a", "type": "int32"}, {"name": "b", "type": "string"}]
    table = pq.read_table(work / "out.parquet")
    assert table.schema == schema
    assert table.to_pylist() == [{"a": 1, "b": "2"}, {"a": 3, "b": "4"}]


def test_explicit_schema_with_other_columns_is_a_schema_error(work: Path):
    src = work / "in.csv"
    src.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(SchemaError):
        transform(str(src), str(work / "out.parquet"), schema=pa.schema([("x", pa.int64())]))
    with pytest.raises(SchemaError):
        transform(str(src), str(work / "out.parquet"), schema={"a": "int64"})
    assert leftovers(work, {"in.csv"}) == []


def test_ndjson_late_float_widens(work: Path):
    lines = [json.dumps({"id": i, "v": i}) for i in range(60_000)]
    lines[50_000] = json.dumps({"id": 50_000, "v": 2.5})
    src = work / "late.ndjson"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = check_report(transform(str(src), str(work / "out.parquet"), block_size=128 * 1024))
    assert report.restarts >= 1
    assert [(w["column"], w["from"], w["to"]) for w in report.widened] == [
        ("v", "int64", "double")]
    assert 1 <= report.widened[0]["record"] <= 50_001
    table = pq.read_table(work / "out.parquet")
    assert table.schema.field("v").type == pa.float64()
    assert table.column("v").to_pylist()[50_000] == 2.5
    assert table.column("id").to_pylist() == list(range(60_000))


# ---------------------------------------------------------------------------------------------
# Parquet options: compression, row groups, rotation

CODECS = {"zstd": "ZSTD", "snappy": "SNAPPY", "gzip": "GZIP", "none": "UNCOMPRESSED"}


@pytest.mark.parametrize("codec", list(CODECS))
def test_compression_codec_in_column_chunks(orders: dict[str, Path], work: Path, codec: str):
    dst = work / "out.parquet"
    report = check_report(transform(str(orders["csv"]), str(dst), compression=codec))
    assert report.compression == codec
    meta = pq.ParquetFile(dst).metadata
    codecs = {meta.row_group(g).column(c).compression
              for g in range(meta.num_row_groups) for c in range(meta.num_columns)}
    assert codecs == {CODECS[codec]}
    assert_orders_equal(pq.read_table(dst), csv_records(orders["csv"]))


def test_many_small_blocks_still_give_few_row_groups(orders: dict[str, Path], work: Path):
    src = str(orders["big_csv"])
    blocks = sum(1 for _ in read_batches(src, block_size=64 * 1024))
    assert blocks >= 30  # the reader really produced many small chunks
    dst = work / "out.parquet"
    report = check_report(transform(src, str(dst), block_size=64 * 1024))
    meta = pq.ParquetFile(dst).metadata
    assert meta.num_row_groups <= 2
    assert report.files[0]["row_groups"] == meta.num_row_groups
    assert meta.num_rows == report.rows_out


def test_small_row_group_bytes_gives_more_groups(orders: dict[str, Path], work: Path):
    src = str(orders["big_csv"])
    few = work / "few.parquet"
    many = work / "many.parquet"
    check_report(transform(src, str(few), block_size=64 * 1024))
    report = check_report(transform(src, str(many), block_size=64 * 1024,
                                    row_group_bytes=256 * 1024))
    n_few = pq.ParquetFile(few).metadata.num_row_groups
    n_many = pq.ParquetFile(many).metadata.num_row_groups
    assert n_many >= 5 and n_many > n_few
    assert report.files[0]["row_groups"] == n_many
    assert pq.read_table(many).equals(pq.read_table(few))


def test_row_group_rows_caps_rows_per_group(orders: dict[str, Path], work: Path):
    dst = work / "out.parquet"
    report = check_report(transform(str(orders["big_csv"]), str(dst), row_group_rows=5_000))
    meta = pq.ParquetFile(dst).metadata
    sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    assert max(sizes) <= 5_000
    assert sum(sizes) == report.rows_out
    assert meta.num_row_groups >= math.ceil(report.rows_out / 5_000)


def test_rotation_into_a_directory(orders: dict[str, Path], work: Path):
    src = orders["big_csv"]
    expected = csv_records(src)
    limit = 10_000
    out = work / "out"
    report = check_report(transform(str(src), f"{out}/", max_rows_per_file=limit))
    names = sorted(os.listdir(out))
    count = math.ceil(len(expected) / limit)
    # the files carry the source's id; its manifest is in a folder query engines skip
    assert names == ["_chunkwise", *(f"{source_id(str(src))}-{i:05d}.parquet"
                                     for i in range(count))]
    names.remove("_chunkwise")
    assert [f["uri"] for f in report.files] == [f"{out}/{n}" for n in names]
    rows = [pq.ParquetFile(out / n).metadata.num_rows for n in names]
    assert all(r <= limit for r in rows)
    assert sum(rows) == report.rows_out == len(expected)
    table = pa.concat_tables([pq.read_table(out / n) for n in names])
    assert_orders_equal(table, expected)


# ---------------------------------------------------------------------------------------------
# compressed inputs


def _compress(kind: str, data: bytes) -> bytes:
    if kind == "gz":
        return gzip.compress(data)
    if kind == "bz2":
        return bz2.compress(data)
    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("kind", ["gz", "bz2", "zst"])
@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_compressed_inputs_give_the_same_parquet(orders, work: Path, kind: str, fmt: str):
    plain = orders[fmt]
    src = work / f"orders.{fmt}.{kind}"
    src.write_bytes(_compress(kind, plain.read_bytes()))
    check_report(transform(str(plain), str(work / "plain.parquet")))
    report = check_report(transform(str(src), str(work / "packed.parquet")))
    assert report.format == fmt
    assert report.bytes_in == src.stat().st_size
    assert pq.read_table(work / "packed.parquet").equals(pq.read_table(work / "plain.parquet"))


def test_input_compression_option_overrides_the_suffix(orders, work: Path):
    src = work / "orders.csv"  # gzip bytes behind a plain suffix
    src.write_bytes(gzip.compress(orders["csv"].read_bytes()))
    report = check_report(transform(str(src), str(work / "out.parquet"),
                                    input_compression="gzip"))
    assert_orders_equal(pq.read_table(work / "out.parquet"), csv_records(orders["csv"]))
    assert report.bytes_in == src.stat().st_size


# ---------------------------------------------------------------------------------------------
# format detection


@pytest.mark.parametrize(("name", "source", "fmt"), [
    ("x.csv", "csv", "csv"),
    ("x.CSV.GZ", "csv", "csv"),
    ("x.ndjson", "ndjson", "ndjson"),
    ("x.jsonl", "ndjson", "ndjson"),
    ("x.json", "json", "json"),
    ("x.json", "ndjson", "ndjson"),  # .json holding one object per line
    ("x", "csv", "csv"),  # no suffix: sniffed from the content
    ("x", "ndjson", "ndjson"),
    ("x", "json", "json"),
    ("x.dat", "json", "json"),
])
def test_format_detection(orders, work: Path, name: str, source: str, fmt: str):
    data = orders[source].read_bytes()
    src = work / name
    src.write_bytes(gzip.compress(data) if name.lower().endswith(".gz") else data)
    report = check_report(transform(str(src), str(work / "out.parquet")))
    assert report.format == fmt
    assert report.rows_rejected == 0
    expected = csv_records(orders[source]) if source == "csv" else json_records(orders[source],
                                                                                source)
    assert_orders_equal(pq.read_table(work / "out.parquet"), expected)


def test_tsv_suffix_reads_tabs(work: Path):
    src = work / "x.tsv"
    src.write_text("a\tb\n1\tx,y\n2\tz\n", encoding="utf-8")
    report = check_report(transform(str(src), str(work / "out.parquet")))
    assert report.format == "csv"
    assert pq.read_table(work / "out.parquet").to_pylist() == [{"a": 1, "b": "x,y"},
                                                               {"a": 2, "b": "z"}]


@pytest.mark.parametrize(("source", "fmt"), [("ndjson", "ndjson"), ("csv", "csv")])
def test_format_option_overrides_the_suffix(orders, work: Path, source: str, fmt: str):
    src = work / "data.txt"  # .txt would be read as CSV
    shutil.copy(orders[source], src)
    report = check_report(transform(str(src), str(work / "out.parquet"), format=fmt))
    assert report.format == fmt
    assert report.rows_rejected == 0
    expected = csv_records(orders[source]) if source == "csv" else json_records(orders[source],
                                                                                source)
    assert_orders_equal(pq.read_table(work / "out.parquet"), expected)


# ---------------------------------------------------------------------------------------------
# failures leave nothing behind


@pytest.mark.parametrize("threads", [1, 2])
def test_truncated_gzip_mid_file_leaves_no_output(orders, work: Path, threads: int):
    data = orders["big_csv"].read_bytes()
    packed = gzip.compress(data)
    src = work / "in.csv.gz"
    src.write_bytes(packed[: len(packed) * 3 // 4])
    dst = work / "out.parquet"
    seen: list[list[str]] = []

    def progress(done: int, total: int | None) -> None:
        seen.append(os.listdir(work))

    with pytest.raises(InputFormatError) as info:
        transform(str(src), str(dst), block_size=64 * 1024, row_group_bytes=64 * 1024,
                  rejects_uri=str(work / "rejects.ndjson"), progress=progress,
                  threads=threads)
    assert info.value.uri == str(src)
    assert info.value.offset is not None and info.value.offset > 0
    # The sink really had a temp file with row groups in it before the failure...
    assert any(n.endswith(".tmp") for names in seen for n in names)
    # ...and nothing is left: no output, no temp file, no rejects file.
    assert leftovers(work, {"in.csv.gz"}) == []


@pytest.mark.parametrize("threads", [1, 2])
def test_unterminated_quote_at_eof_leaves_no_output(orders, work: Path, threads: int):
    data = orders["big_csv"].read_bytes()
    rows = len(csv_records(orders["big_csv"]))
    src = work / "in.csv"
    src.write_bytes(data + b'999999,2025-01-01T00:00:00Z,1,US,1.00,1,paid,"never closed\nmore\n')
    with pytest.raises(InputFormatError) as info:
        transform(str(src), str(work / "out.parquet"), block_size=64 * 1024,
                  row_group_bytes=64 * 1024, threads=threads)
    assert info.value.record == rows + 1
    assert info.value.offset == len(data)
    assert leftovers(work, {"in.csv"}) == []


def test_failure_keeps_an_existing_output_untouched(orders, work: Path):
    dst = work / "out.parquet"
    dst.write_bytes(b"previous")
    src = work / "in.csv.gz"
    packed = gzip.compress(orders["csv"].read_bytes())
    src.write_bytes(packed[:-100])
    with pytest.raises(InputFormatError):
        transform(str(src), str(dst))
    assert dst.read_bytes() == b"previous"
    assert leftovers(work, {"in.csv.gz", "out.parquet"}) == []


def test_missing_input_is_input_not_found(work: Path):
    src = work / "nope.csv"
    with pytest.raises(InputNotFoundError) as info:
        transform(str(src), str(work / "out.parquet"))
    assert info.value.uri == str(src)
    assert info.value.exit_code == 66
    assert leftovers(work, set()) == []


def _garbage(n: int = 8192, seed: int = 3) -> bytes:
    import random

    rnd = random.Random(seed)
    return bytes(rnd.randrange(256) for _ in range(n))


def test_binary_garbage_without_suffix_is_input_format_error(work: Path):
    src = work / "blob"
    src.write_bytes(_garbage())
    with pytest.raises(InputFormatError) as info:
        transform(str(src), str(work / "out.parquet"))
    assert info.value.uri == str(src)
    assert leftovers(work, {"blob"}) == []


@pytest.mark.parametrize("seed", [0, 5, 6])  # each reaches a different parser first
def test_binary_garbage_with_csv_suffix_is_input_format_error(work: Path, seed: int):
    src = work / "blob.csv"
    src.write_bytes(_garbage(seed=seed))
    with pytest.raises(InputFormatError) as info:
        transform(str(src), str(work / "out.parquet"))
    assert info.value.uri == str(src)
    assert leftovers(work, {"blob.csv"}) == []


@pytest.mark.parametrize("block_size", [None, 5])  # 5: every chunk is cut at a CR
def test_bare_cr_line_endings_are_records(work: Path, block_size: int | None):
    src = work / "mac.csv"  # classic Mac line endings (Excel for Mac's "CSV (Macintosh)")
    src.write_bytes(b'a,b\r1,2\r3,4\r5,"six\rlines"\r7,8')
    report = check_report(transform(str(src), str(work / "out.parquet"), block_size=block_size))
    assert report.rows_in == report.rows_out == 4
    assert pq.read_table(work / "out.parquet").to_pylist() == [
        {"a": 1, "b": "2"}, {"a": 3, "b": "4"}, {"a": 5, "b": "six\rlines"}, {"a": 7, "b": "8"}]


@pytest.mark.parametrize("name", ["u16.csv", "u16"])
def test_utf16_without_encoding_is_input_format_error(work: Path, name: str):
    src = work / name
    src.write_bytes("id,city\n1,Zürich\n2,Łódź\n".encode("utf-16"))
    with pytest.raises(InputFormatError):
        transform(str(src), str(work / "out.parquet"))
    assert leftovers(work, {name}) == []
    report = check_report(transform(str(src), str(work / "out.parquet"), encoding="utf-16",
                                    format="csv"))
    assert pq.read_table(work / "out.parquet").to_pylist() == [{"id": 1, "city": "Zürich"},
                                                               {"id": 2, "city": "Łódź"}]
    assert report.rows_out == 2


@pytest.mark.parametrize("clean_rows", [0, 150_000])  # in the inference head / far past it
def test_latin1_ragged_row_without_encoding_is_input_format_error(work: Path, clean_rows: int):
    data = (b"id,city\n" + b"".join(b"%d,Paris\n" % i for i in range(clean_rows))
            + b"1,Z\xfcrich\n2,M\xfcnchen,extra\n3,Paris\n")
    src = work / "l1.csv"
    src.write_bytes(data)
    with pytest.raises(InputFormatError) as info:
        transform(str(src), str(work / "out.parquet"), block_size=64 * 1024,
                  rejects_uri=str(work / "rejects.ndjson"))
    assert "UTF-8" in info.value.message
    assert info.value.uri == str(src)
    assert info.value.offset == data.index(b"\xfc")
    assert info.value.record == clean_rows + 1
    assert leftovers(work, {"l1.csv"}) == []


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_json_inputs_that_are_not_utf8(work: Path, fmt: str):
    objects = [{"id": i, "city": "Paris"} for i in range(2_000)]
    objects[1_500]["city"] = "Zürich"
    if fmt == "ndjson":
        text = "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects)
    else:
        text = "[" + ",\n".join(json.dumps(o, ensure_ascii=False) for o in objects) + "]\n"
    data = text.encode("latin-1")
    src = work / f"l1.{fmt}"
    src.write_bytes(data)
    # Without the encoding the bytes are not UTF-8: an error, never a Parquet file holding
    # invalid UTF-8 strings.
    with pytest.raises(InputFormatError) as info:
        transform(str(src), str(work / "out.parquet"), block_size=8 * 1024)
    assert info.value.offset == data.index(b"\xfc")
    assert info.value.record == 1_501
    assert leftovers(work, {src.name}) == []
    report = check_report(transform(str(src), str(work / "out.parquet"), encoding="latin-1",
                                    block_size=8 * 1024))
    assert report.format == fmt
    table = pq.read_table(work / "out.parquet")
    assert table.to_pylist() == objects


def test_latin1_encoding(work: Path):
    rows = [f"{i},café {i},Zürich" for i in range(3_000)]
    src = work / "l1.csv"
    src.write_bytes(("id,note,city\n" + "\n".join(rows) + "\n").encode("latin-1"))
    with pytest.raises(InputFormatError):
        transform(str(src), str(work / "out.parquet"))
    report = check_report(transform(str(src), str(work / "out.parquet"), encoding="latin-1",
                                    block_size=8 * 1024))
    assert report.rows_out == 3_000
    expected = csv_records(src, encoding="latin-1")
    table = pq.read_table(work / "out.parquet")
    assert table.column("note").to_pylist() == [r["note"] for r in expected]
    assert set(table.column("city").to_pylist()) == {"Zürich"}


@pytest.mark.parametrize("data", [b"a,b,c\n", b"a,b,c", b"a,b,c\r\n"])
def test_header_only_csv_gives_a_zero_row_parquet(work: Path, data: bytes):
    src = work / "empty.csv"
    src.write_bytes(data)
    report = check_report(transform(str(src), str(work / "out.parquet")))
    assert (report.rows_in, report.rows_out, report.rows_rejected) == (0, 0, 0)
    table = pq.read_table(work / "out.parquet")
    assert table.num_rows == 0
    assert table.column_names == ["a", "b", "c"]


def test_empty_file_is_input_format_error(work: Path):
    src = work / "empty.csv"
    src.write_bytes(b"")
    with pytest.raises(InputFormatError):
        transform(str(src), str(work / "out.parquet"))
    assert leftovers(work, {"empty.csv"}) == []


# ---------------------------------------------------------------------------------------------
# read_batches and options


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_read_batches_row_total(orders, fmt: str):
    src = orders[fmt]
    expected = csv_records(src) if fmt == "csv" else json_records(src, fmt)
    batches = list(read_batches(str(src), block_size=32 * 1024))
    assert len(batches) > 5
    assert all(isinstance(b, pa.RecordBatch) for b in batches)
    assert len({b.schema for b in batches}) == 1
    assert sum(b.num_rows for b in batches) == len(expected)
    table = pa.Table.from_batches(batches)
    assert table.column("order_id").to_pylist() == [int(r["order_id"]) for r in expected]


def test_read_batches_skips_rejects_and_widens(work: Path):
    rows = [f"{i},{i}" for i in range(20_000)]
    rows[10] = "10"  # ragged: not yielded
    rows[15_000] = "15000,x"  # a late string: later batches carry the wider schema
    src = work / "in.csv"
    src.write_text("a,b\n" + "\n".join(rows) + "\n", encoding="utf-8")
    batches = list(read_batches(str(src), block_size=16 * 1024, sample_bytes=4096))
    assert sum(b.num_rows for b in batches) == 19_999
    assert batches[0].schema.field("b").type == pa.int64()
    assert batches[-1].schema.field("b").type == pa.string()


def test_read_batches_missing_input(work: Path):
    with pytest.raises(InputNotFoundError):
        next(read_batches(str(work / "nope.csv")))


def test_build_options():
    opts = build_options(None, block_size=1024, compression="snappy", rejects_uri="r.ndjson",
                         max_restarts=2)
    assert opts.read.block_size == 1024
    assert opts.write.compression == "snappy"
    assert opts.rejects_uri == "r.ndjson"
    assert opts.max_restarts == 2
    again = build_options(opts, block_size=2048)
    assert (again.read.block_size, again.write.compression) == (2048, "snappy")
    with pytest.raises(TypeError):
        build_options(RunOptions(), blocksize=1)


def test_unknown_keyword_is_a_type_error_before_any_output(orders, work: Path):
    with pytest.raises(TypeError):
        transform(str(orders["csv"]), str(work / "out.parquet"), row_group_size=1)
    assert leftovers(work, set()) == []


def test_progress_reports_stored_bytes(orders, work: Path):
    src = orders["big_csv"]
    calls: list[tuple[int, int | None]] = []
    check_report(transform(str(src), str(work / "out.parquet"), block_size=256 * 1024,
                           progress=lambda done, total: calls.append((done, total))))
    assert len(calls) >= 5
    assert all(total == src.stat().st_size for _, total in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == src.stat().st_size


def test_max_restarts_exceeded_is_a_schema_error(late_values: Path, work: Path):
    with pytest.raises(SchemaError):
        transform(str(late_values), str(work / "out.parquet"), block_size=256 * 1024,
                  max_restarts=0)
    assert leftovers(work, set()) == []


def test_errors_are_engine_errors_with_uri(work: Path):
    src = work / "in.json"
    src.write_bytes(b'[{"a": 1}, {"a": 2}')  # no closing bracket
    with pytest.raises(EngineError) as info:
        transform(str(src), str(work / "out.parquet"))
    assert isinstance(info.value, InputFormatError)
    assert info.value.uri == str(src)
    assert leftovers(work, {"in.json"}) == []


@pytest.mark.parametrize(("option", "value", "problem"), [
    ("delimiter", ";;", "must be one ASCII character"),
    ("delimiter", "", "must be one ASCII character"),
    ("delimiter", "\n", "cannot be a line break"),
    ("quote_char", "«", "must be one ASCII character"),
    ("encoding", "bogus", "'bogus' is not a known text encoding"),
    ("block_size", 0, "must be at least 1, not 0"),
    ("row_group_rows", 0, "must be at least 1, not 0"),
    ("compression", "lz5", "must be one of zstd, snappy, gzip, none"),
    ("max_rows_per_file", -1, "must be at least 0, not -1"),
    ("threads", 0, "must be at least 1, not 0"),
])
def test_unusable_options_are_a_value_error(option: str, value: Any, problem: str,
                                            tmp_path: Path) -> None:
    # Each of these failed deep in a run (a bare TypeError, LookupError or ArrowInvalid), or,
    # for block_size=0, read nothing and reported success.
    with pytest.raises(ValueError, match=f"^{option} {problem}"):
        build_options(None, **{option: value})
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,2\n", "utf-8")
    with pytest.raises(ValueError, match=f"^{option} "):
        transform(str(src), str(tmp_path / "out.parquet"), **{option: value})
    assert sorted(os.listdir(tmp_path)) == ["in.csv"]


@pytest.mark.parametrize("where", ["output", "output-spelled-differently", "rejects"])
def test_an_output_that_would_replace_the_input_is_refused(tmp_path: Path, where: str) -> None:
    # The run read the input, then renamed its Parquet over it: a silent, complete data loss.
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,2\n", "utf-8")
    dst, rejects = str(tmp_path / "out.parquet"), None
    if where == "output":
        dst = str(src)
    elif where == "output-spelled-differently":
        dst = str(tmp_path / "sub" / ".." / "in.csv")
        (tmp_path / "sub").mkdir()
    else:
        rejects = str(src)
    with pytest.raises(UsageError, match="the output is the input") as info:
        transform(str(src), dst, rejects_uri=rejects)
    assert isinstance(info.value, ValueError) and info.value.exit_code == 2
    assert src.read_text("utf-8") == "a,b\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.csv"] + (
        ["sub"] if where == "output-spelled-differently" else []))


def test_paths_may_be_path_objects(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,2\n", "utf-8")
    report = transform(src, tmp_path / "out.parquet")  # os.PathLike, as pyarrow accepts
    assert report.rows_out == 1 and report.output == str(tmp_path / "out.parquet")
    assert sum(b.num_rows for b in read_batches(src)) == 1


@pytest.mark.parametrize("option", ["null_values", "column_names"])
def test_a_string_where_a_list_is_expected_is_refused(option: str) -> None:
    # null_values="NA" made "N" and "A" null markers, one per character.
    with pytest.raises(UsageError, match=f"{option} must be a list of strings"):
        build_options(None, **{option: "NA"})


def test_column_names_that_do_not_match_the_header_are_a_schema_error(tmp_path: Path) -> None:
    # Every record was rejected as ragged and the run "succeeded" with no rows.
    src = tmp_path / "in.csv"
    src.write_text("a,b,c\n1,2,3\n", "utf-8")
    with pytest.raises(SchemaError, match="column_names has 2 names but the header has 3"):
        transform(str(src), str(tmp_path / "out.parquet"), column_names=("x", "y"))
    report = transform(str(src), str(tmp_path / "out.parquet"), column_names=("x", "y", "z"))
    assert report.rows_out == 1


def test_an_existing_directory_as_output_says_how_to_write_into_it(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,2\n", "utf-8")
    (tmp_path / "out").mkdir()
    with pytest.raises(EngineError, match="to write into the directory, end the output with /"):
        transform(str(src), str(tmp_path / "out"))
    assert transform(str(src), str(tmp_path / "out") + "/").rows_out == 1
