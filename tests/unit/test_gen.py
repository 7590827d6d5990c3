"""Tests for engine.gen: the deterministic sample-data generator."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
from decimal import Decimal
from pathlib import Path

import pyarrow.csv as pv
import pytest
import zstandard

from engine.gen import DATASETS, GenReport, generate, infer_format, parse_size

COLUMNS = [
    "order_id",
    "created_at",
    "customer_id",
    "country",
    "amount",
    "quantity",
    "status",
    "note",
]
SAMPLE = 2_000_000


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[GenReport, bytes]]:
    """One ~2 MB file per format, seed 0, generated once for the module."""
    root = tmp_path_factory.mktemp("gen")
    out = {}
    for fmt in ("csv", "ndjson", "json"):
        path = root / f"orders.{fmt}"
        report = generate("orders", path, size=SAMPLE, seed=0)
        out[fmt] = (report, path.read_bytes())
    return out


def _csv_records(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def _csv_record_bytes(record: list[str]) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerow(record)
    return buf.getvalue().encode("utf-8")


# ----------------------------------------------------------------------------------- parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500MB", 500_000_000),
        ("500mb", 500_000_000),
        ("1.5MB", 1_500_000),
        ("1.5 GB", 1_500_000_000),
        ("2KB", 2_000),
        ("7B", 7),
        ("4096", 4096),
        ("1KiB", 1024),
        ("1kib", 1024),
        ("3MiB", 3 * 2**20),
        ("1.5GiB", 3 * 2**29),
        (".5KB", 500),
        ("0", 0),
        ("  10 mb  ", 10_000_000),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text", ["", "MB", "-1MB", "1.2.3MB", "10TB", "abc", "1e6", "5 M B", "1,5MB", "0x10"]
)
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


# -------------------------------------------------------------------------------------- CSV


def test_csv_parses_with_csv_module(samples: dict[str, tuple[GenReport, bytes]]) -> None:
    report, data = samples["csv"]
    assert report.format == "csv" and report.compression is None
    assert report.bytes_written == len(data)
    records = _csv_records(data)
    assert records[0] == COLUMNS
    rows = records[1:]
    assert len(rows) == report.rows > 10_000
    assert all(len(r) == 8 for r in rows)
    assert [int(r[0]) for r in rows[:5]] == [1, 2, 3, 4, 5]
    notes = [r[7] for r in rows]
    assert any("\n" in n for n in notes)
    assert any('"' in n for n in notes)
    assert any("," in n for n in notes)
    assert any(not n.isascii() for n in notes)
    assert any(n == "" for n in notes)
    assert "NA" in {r[3] for r in rows}
    assert {len(r[3]) for r in rows} == {2}
    assert all(len(r[4].split(".")[1]) == 2 for r in rows)


def test_csv_quoting_is_quote_minimal(samples: dict[str, tuple[GenReport, bytes]]) -> None:
    """Re-writing the parsed records with csv.QUOTE_MINIMAL gives the same bytes."""
    _, data = samples["csv"]
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerows(_csv_records(data))
    assert buf.getvalue().encode("utf-8") == data
    assert b"\r" not in data


def test_csv_parses_with_pyarrow(samples: dict[str, tuple[GenReport, bytes]]) -> None:
    report, data = samples["csv"]
    table = pv.read_csv(io.BytesIO(data), parse_options=pv.ParseOptions(newlines_in_values=True))
    assert table.column_names == COLUMNS
    assert table.num_rows == report.rows
    assert str(table.schema.field("order_id").type) == "int64"
    assert str(table.schema.field("amount").type) == "double"
    assert str(table.schema.field("created_at").type).startswith("timestamp")
    assert "NA" in table.column("country").to_pylist()


# ---------------------------------------------------------------------------- NDJSON / JSON


def test_ndjson_lines_are_json(samples: dict[str, tuple[GenReport, bytes]]) -> None:
    report, data = samples["ndjson"]
    assert data.endswith(b"\n")
    lines = data.decode("utf-8").split("\n")[:-1]
    assert len(lines) == report.rows
    objs = [json.loads(line) for line in lines]
    assert all(list(o) == COLUMNS for o in objs)
    assert [o["order_id"] for o in objs] == list(range(1, report.rows + 1))
    notes = [o["note"] for o in objs]
    assert any("\n" in n for n in notes) and any('"' in n for n in notes)
    assert any(not n.isascii() for n in notes)
    assert not data.isascii()  # unicode is written raw (ensure_ascii=False)


def test_ndjson_matches_csv_values(samples: dict[str, tuple[GenReport, bytes]]) -> None:
    csv_rows = _csv_records(samples["csv"][1])[1:]
    lines = samples["ndjson"][1].decode("utf-8").splitlines()
    for row, line in zip(csv_rows, lines, strict=False):
        obj = json.loads(line, parse_float=Decimal)
        assert str(obj["order_id"]) == row[0]
        assert obj["created_at"] == row[1]
        assert str(obj["customer_id"]) == row[2]
        assert obj["country"] == row[3]
        assert obj["amount"] == Decimal(row[4])
        assert str(obj["quantity"]) == row[5]
        assert obj["status"] == row[6]
        assert obj["note"] == row[7]


def test_json_array_matches_ndjson(samples: dict[str, tuple[GenReport, bytes]]) -> None:
    report, data = samples["json"]
    assert data.startswith(b"[\n") and data.endswith(b"\n]\n")
    doc = json.loads(data)
    assert isinstance(doc, list) and all(isinstance(o, dict) for o in doc)
    assert len(doc) == report.rows
    ndjson = [json.loads(line) for line in samples["ndjson"][1].splitlines()]
    n = min(len(doc), len(ndjson))
    assert n > 5_000
    assert doc[:n] == ndjson[:n]


def test_json_array_mixes_compact_and_multiline_objects(
    samples: dict[str, tuple[GenReport, bytes]],
) -> None:
    report, data = samples["json"]
    lines = data.decode("utf-8").split("\n")
    opening_lines = sum(1 for line in lines if line == "{")
    compact_lines = sum(1 for line in lines if line.startswith("{") and line != "{")
    assert opening_lines == report.rows // 7
    assert compact_lines == report.rows - opening_lines


# ------------------------------------------------------------------------- determinism, size


@pytest.mark.parametrize("suffix", [".csv", ".ndjson", ".json", ".csv.gz", ".ndjson.zst"])
def test_same_seed_same_bytes(tmp_path: Path, suffix: str) -> None:
    a, b, c = tmp_path / f"a{suffix}", tmp_path / f"other{suffix}", tmp_path / f"c{suffix}"
    generate("orders", a, size=200_000, seed=7)
    generate("orders", b, size=200_000, seed=7)
    generate("orders", c, size=200_000, seed=8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_smaller_size_is_a_prefix(tmp_path: Path) -> None:
    small, big = tmp_path / "s.csv", tmp_path / "b.csv"
    generate("orders", small, size=50_000, seed=3)
    generate("orders", big, size=3_000_000, seed=3)  # crosses several block boundaries
    assert big.read_bytes().startswith(small.read_bytes())


def _last_row_bytes(fmt: str, data: bytes) -> int:
    if fmt == "csv":
        return len(_csv_record_bytes(_csv_records(data)[-1]))
    if fmt == "ndjson":
        return len(data.rstrip(b"\n").rsplit(b"\n", 1)[-1]) + 1
    body = data[: -len(b"\n]\n")]
    return len(body) - body.rfind(b",\n{")


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
@pytest.mark.parametrize("size", [1_000, 12_345, 1_000_001])
def test_size_stops_at_first_row_boundary(tmp_path: Path, fmt: str, size: int) -> None:
    path = tmp_path / f"o.{fmt}"
    report = generate("orders", path, size=size, seed=1)
    data = path.read_bytes()
    assert report.bytes_written == len(data)
    assert report.rows > 1
    assert size <= len(data) < size + _last_row_bytes(fmt, data)


@pytest.mark.parametrize(("fmt", "rows"), [("csv", 0), ("ndjson", 1), ("json", 0)])
def test_tiny_size(tmp_path: Path, fmt: str, rows: int) -> None:
    """The header (and JSON's brackets) count toward the size: they may already reach it."""
    path = tmp_path / f"o.{fmt}"
    report = generate("orders", path, size=1, seed=1)
    assert report.rows == rows
    if fmt == "json":
        assert json.loads(path.read_bytes()) == []
    if fmt == "csv":
        assert path.read_bytes() == (",".join(COLUMNS) + "\n").encode()


# ------------------------------------------------------------------------------ compression


def _decompress(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".bz2":
        return bz2.decompress(data)
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
        return reader.read()


@pytest.mark.parametrize(
    ("suffix", "compression"), [(".gz", "gzip"), (".bz2", "bz2"), (".zst", "zstd")]
)
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_compressed_output_matches_plain(
    tmp_path: Path, suffix: str, compression: str, fmt: str
) -> None:
    plain = tmp_path / f"o.{fmt}"
    packed = tmp_path / f"o.{fmt}{suffix}"
    generate("orders", plain, size=300_000, seed=5)
    report = generate("orders", packed, size=300_000, seed=5)
    assert report.compression == compression
    assert report.format == fmt
    assert report.bytes_written == plain.stat().st_size
    assert packed.stat().st_size < plain.stat().st_size
    assert _decompress(packed) == plain.read_bytes()


def test_gzip_header_is_reproducible(tmp_path: Path) -> None:
    path = tmp_path / "o.csv.gz"
    generate("orders", path, size=10_000)
    header = path.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] & 0x08 == 0  # no FNAME: the bytes do not depend on the path
    assert header[4:8] == b"\x00\x00\x00\x00"  # mtime 0


# ------------------------------------------------------------------------- formats and errors


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("orders.csv", ("csv", None)),
        ("orders.CSV.GZ", ("csv", "gzip")),
        ("orders.ndjson.bz2", ("ndjson", "bz2")),
        ("orders.jsonl", ("ndjson", None)),
        ("orders.jsonl.zst", ("ndjson", "zstd")),
        ("orders.json", ("json", None)),
        ("orders.json.gz", ("json", "gzip")),
        ("orders.txt", (None, None)),
        ("orders.gz", (None, "gzip")),
    ],
)
def test_infer_format(name: str, expected: tuple[str | None, str | None]) -> None:
    assert infer_format(Path("/some/dir") / name) == expected


def test_explicit_format_overrides_suffix(tmp_path: Path) -> None:
    path = tmp_path / "orders.txt.gz"
    report = generate("orders", path, size=5_000, fmt="ndjson")
    assert (report.format, report.compression) == ("ndjson", "gzip")
    first = gzip.decompress(path.read_bytes()).split(b"\n", 1)[0]
    assert json.loads(first)["order_id"] == 1
    assert report.path == str(path)
    assert report.seconds >= 0


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="orders"):
        generate("customers", tmp_path / "x.csv", size=1_000)
    with pytest.raises(ValueError, match="cannot infer"):
        generate("orders", tmp_path / "x.txt", size=1_000)
    with pytest.raises(ValueError, match="unknown format"):
        generate("orders", tmp_path / "x.csv", size=1_000, fmt="parquet")
    with pytest.raises(ValueError, match="size"):
        generate("orders", tmp_path / "x.csv", size=0)
    assert not (tmp_path / "x.csv").exists()
    assert not (tmp_path / "x.txt").exists()


def test_registry() -> None:
    assert list(DATASETS) == ["orders"]
    assert list(DATASETS["orders"].columns) == COLUMNS
