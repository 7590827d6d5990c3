"""Tests for engine.gen: the deterministic sample-data generator."""

from __future__ import annotations

import bz2
import collections
import csv
import dataclasses
import datetime as dt
import gzip
import hashlib
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pyarrow.csv as pv
import pytest
import zstandard

from engine.config import parse_size
from engine.gen import DATASETS, GenReport, generate, infer_format

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
        ("orders.csv.zstd", ("csv", "zstd")),
        ("orders.txt", ("csv", None)),  # as the reader takes it (engine.config.FORMAT_SUFFIXES)
        ("orders.ldjson", ("ndjson", None)),
        ("orders.tsv", (None, None)),  # implies tabs: gen's CSV is comma-separated
        ("orders.parquet", (None, None)),
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
        generate("orders", tmp_path / "x.tsv", size=1_000)
    with pytest.raises(ValueError, match="unknown format"):
        generate("orders", tmp_path / "x.csv", size=1_000, fmt="parquet")
    with pytest.raises(ValueError, match="size"):
        generate("orders", tmp_path / "x.csv", size=0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        generate("orders", tmp_path / "x.csv", size=1_000, seed=-1)
    assert not (tmp_path / "x.csv").exists()
    assert not (tmp_path / "x.tsv").exists()


def test_registry() -> None:
    assert list(DATASETS) == ["orders", "orders_offsets"]
    assert list(DATASETS["orders"].columns) == COLUMNS
    assert list(DATASETS["orders_offsets"].columns) == COLUMNS


# ------------------------------------------------------------------------------ orders_offsets


def test_offsets_are_orders_with_zones_and_crlf(
    tmp_path: Path, samples: dict[str, tuple[GenReport, bytes]]
) -> None:
    """The rows of "orders" but each timestamp at +02:00 or -05:00, records ending in CRLF."""
    report = generate("orders_offsets", tmp_path / "x.csv", size=SAMPLE, seed=0)
    data = (tmp_path / "x.csv").read_bytes()
    # Longer records than orders' (six bytes more each), so fewer of them in as many bytes
    assert 0.8 * samples["csv"][0].rows < report.rows < samples["csv"][0].rows
    assert data.startswith(b"order_id,created_at,customer_id,country,amount,quantity,status,"
                           b"note\r\n")
    zoned = _csv_records(data)
    plain = _csv_records(samples["csv"][1])[:len(zoned)]
    assert len(zoned) == report.rows + 1
    zones = collections.Counter()
    for z, p in zip(zoned[1:], plain[1:], strict=True):
        assert z[1][:19] == p[1][:19] and p[1][19:] == "Z"
        zones[z[1][19:]] += 1
        assert z[:1] + z[2:] == p[:1] + p[2:]
    assert set(zones) == {"+02:00", "-05:00"}
    assert min(zones.values()) > report.rows // 3
    # Every record ends in CRLF; the notes' own line breaks (inside quotes) stay LF.
    lines = data.split(b"\n")
    quoted_breaks = sum(1 for line in lines[:-1] if not line.endswith(b"\r"))
    assert quoted_breaks > 0 and lines[-1] == b""
    assert data.count(b"\r\n") == report.rows + 1
    assert "é".encode() in data
    assert report.bytes_written == len(data)
    typed = pv.read_csv(io.BytesIO(data))
    assert str(typed.schema.field("created_at").type) == "timestamp[s, tz=UTC]"
    # The same bytes for the same seed, and a smaller size gives a prefix.
    generate("orders_offsets", tmp_path / "y.csv", size=SAMPLE // 4, seed=0)
    assert data.startswith((tmp_path / "y.csv").read_bytes())


def test_offsets_json_has_the_zones(tmp_path: Path) -> None:
    generate("orders_offsets", tmp_path / "x.ndjson", size=50_000, seed=3)
    rows = [json.loads(line) for line in (tmp_path / "x.ndjson").read_text().splitlines()]
    assert {r["created_at"][19:] for r in rows} == {"+02:00", "-05:00"}


def test_offsets_have_no_faults(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="defines no faults"):
        generate("orders_offsets", tmp_path / "x.csv", size=1_000, dirty=0.1)


def test_dirty_needs_a_fault_for_the_format(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    orders = DATASETS["orders"]
    ragged = tuple(f for f in orders.faults if f.kind == "ragged")  # CSV only
    assert ragged and all(f.formats == ("csv",) for f in ragged)
    monkeypatch.setitem(DATASETS, "ragged", dataclasses.replace(orders, name="ragged",
                                                                faults=ragged))
    report = generate("ragged", tmp_path / "x.csv", size=50_000, dirty=0.1)
    assert report.injected > 0
    assert {i["kind"] for i in _injected(report)} == {"ragged"}
    with pytest.raises(ValueError, match="dataset 'ragged' defines no faults for ndjson"):
        generate("ragged", tmp_path / "x.ndjson", size=50_000, dirty=0.1)
    assert not (tmp_path / "x.ndjson").exists()
    assert generate("ragged", tmp_path / "x.ndjson", size=50_000).injected == 0


# ------------------------------------------------------------------------- faults (dirty=RATIO)

# sha256 of the output before fault injection existed: dirty=0 must keep writing these bytes.
CLEAN_SHA256 = {
    ("csv", 0, 3_000_000): "09e8c5c7c30a34cf73bcf0bd4a0270804cb58e6ff0b74d1fb94824ee04aa9732",
    ("csv", 7, 200_000): "20d99211231e9ee5ac24194e0cd5bf1643f4e2b88967c38aa69762080ec5ea32",
    ("ndjson", 0, 3_000_000): "23c948a4a1d5b00823678547e341460355a34a4c7b4f79972b1ad5b2e1b150ac",
    ("ndjson", 7, 200_000): "0926a16af8e6aa344d96b5ed49d3c3be5b5234ab915e75eef47f67fdf44c5f2f",
    ("json", 0, 3_000_000): "1dc03c753240e8bbe69b70e9ee04e7d94fcc6f371cb74b7d84aa04fc4e54644a",
    ("json", 7, 200_000): "d3e83c3536c84eedaecbd01e1414f1f3e9e676ce6dcdcf83ca42a6e498f0b1e5",
}

# The checks of contracts/orders.yaml, mirrored. Statuses: the generator writes "refunded",
# so the contract's `in` list must hold it for clean rows to pass.
STATUSES = {"pending", "paid", "shipped", "delivered", "cancelled", "returned", "refunded"}
TIMESTAMP_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S")
COUNTRY = re.compile(r"^[A-Z]{2}$")
INT_TEXT = re.compile(r"^[+-]?\d+$")
DECIMAL_TEXT = re.compile(r"^[+-]?\d{1,10}(\.\d{1,2})?$")  # decimal128(12, 2)
INT32 = (-(2**31), 2**31 - 1)
DIRTY = 0.05
DIRTY_SIZE = 1_000_000

Violation = tuple[str, str | None]  # (kind, column)


def _int_value(value: object, *, csv_text: bool) -> int | None:
    """The int a value holds, or None when it is not an integer (a wrong type)."""
    if csv_text:
        return int(value) if isinstance(value, str) and INT_TEXT.match(value) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _check_fields(values: dict[str, object], *, csv_text: bool) -> list[Violation]:
    """Every violation of the contract's column checks (nulls: "" in CSV, null in JSON)."""
    out: list[Violation] = []

    def null(name: str) -> bool:
        value = values.get(name)
        return value is None or (csv_text and value == "")

    for name in ("order_id", "customer_id", "quantity"):
        if null(name):
            if name != "quantity":
                out.append(("null", name))
            continue
        number = _int_value(values[name], csv_text=csv_text)
        if number is None:
            out.append(("wrong_type", name))
        elif name == "quantity" and not (1 <= number <= 1000 and INT32[0] <= number <= INT32[1]):
            out.append(("out_of_range", name))
        elif name != "quantity" and number < 1:
            out.append(("out_of_range", name))

    amount = values.get("amount")
    if null("amount"):
        out.append(("null", "amount"))
    else:
        if csv_text:
            ok = isinstance(amount, str) and DECIMAL_TEXT.match(amount) is not None
            number = Decimal(amount) if ok else None
        else:
            ok = isinstance(amount, int | Decimal) and not isinstance(amount, bool)
            number = Decimal(amount) if ok else None
            ok = ok and -number.as_tuple().exponent <= 2
        if not ok or number is None:
            out.append(("wrong_type", "amount"))
        elif not 0 <= number <= 100_000:
            out.append(("out_of_range", "amount"))

    created = values.get("created_at")
    if null("created_at"):
        out.append(("null", "created_at"))
    elif not isinstance(created, str):
        out.append(("wrong_type", "created_at"))
    else:
        parsed = False
        for fmt in TIMESTAMP_FORMATS:
            try:
                dt.datetime.strptime(created, fmt)
            except ValueError:
                continue
            parsed = True
            break
        if not parsed:
            out.append(("bad_timestamp", "created_at"))

    for name in ("country", "status", "note"):
        value = values.get(name)
        if null(name):
            continue
        if not isinstance(value, str):
            out.append(("wrong_type", name))
        elif name == "country" and (len(value) > 2 or not COUNTRY.match(value)):
            out.append(("bad_enum", name))
        elif name == "status" and value not in STATUSES:
            out.append(("bad_enum", name))
        elif name == "note" and len(value) > 2000:
            out.append(("too_long", name))
    return out


def _json_array_elements(data: bytes) -> list[str]:
    """Split a JSON array's text into element texts (strings and nesting respected)."""
    text = data.decode("utf-8")
    token = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]')
    depth, start, out = 0, None, []
    for m in token.finditer(text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            if depth == 1:
                start = m.end()
        elif tok in "]}":
            depth -= 1
            if depth == 0:
                out.append(text[start : m.start()])
        elif tok == "," and depth == 1:
            out.append(text[start : m.start()])
            start = m.end()
    assert depth == 0
    return [e.strip() for e in out if e.strip()]


def _records(fmt: str, data: bytes) -> list[dict[str, object] | None]:
    """The file's data records as dicts; None for a record that is not a valid record."""
    if fmt == "csv":
        rows = _csv_records(data)
        assert rows[0] == COLUMNS
        return [dict(zip(COLUMNS, r, strict=True)) if len(r) == len(COLUMNS) else None
                for r in rows[1:]]
    texts = data.decode("utf-8").split("\n")[:-1] if fmt == "ndjson" else _json_array_elements(data)
    out: list[dict[str, object] | None] = []
    for text in texts:
        try:
            obj = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError:
            out.append(None)
            continue
        out.append(obj if isinstance(obj, dict) and list(obj) == COLUMNS else None)
    return out


def _violations(fmt: str, data: bytes) -> dict[int, list[Violation]]:
    """Violations by 1-based record number, for records that have any."""
    found: dict[int, list[Violation]] = {}
    seen: set[int] = set()
    for number, record in enumerate(_records(fmt, data), start=1):
        if record is None:
            found[number] = [("ragged" if fmt == "csv" else "invalid_json", None)]
            continue
        problems = _check_fields(record, csv_text=fmt == "csv")
        order_id = _int_value(record["order_id"], csv_text=fmt == "csv")
        if order_id is not None:
            if order_id in seen:
                problems.append(("duplicate", "order_id"))
            seen.add(order_id)
        if problems:
            found[number] = problems
    return found


def _injected(report: GenReport) -> list[dict[str, object]]:
    assert report.injected_path is not None
    text = Path(report.injected_path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def dirty_samples(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[GenReport, bytes, list[dict[str, object]]]]:
    """One ~1 MB file per format with dirty=0.05, seed 11."""
    root = tmp_path_factory.mktemp("dirty")
    out = {}
    for fmt in ("csv", "ndjson", "json"):
        report = generate("orders", root / f"orders.{fmt}", size=DIRTY_SIZE, seed=11, dirty=DIRTY)
        out[fmt] = (report, Path(report.path).read_bytes(), _injected(report))
    return out


@pytest.mark.parametrize(("fmt", "seed", "size"), sorted(CLEAN_SHA256))
@pytest.mark.parametrize("dirty", [None, 0, 0.0])
def test_dirty_zero_writes_the_clean_bytes(
    tmp_path: Path, fmt: str, seed: int, size: int, dirty: float | None
) -> None:
    path = tmp_path / f"o.{fmt}"
    kwargs = {} if dirty is None else {"dirty": dirty}
    report = generate("orders", path, size=size, seed=seed, **kwargs)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == CLEAN_SHA256[(fmt, seed, size)]
    assert (report.injected, report.injected_path) == (0, None)
    assert not Path(f"{path}.injected.ndjson").exists()


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_rejects_are_exactly_the_injected_records(
    dirty_samples: dict[str, tuple[GenReport, bytes, list[dict[str, object]]]], fmt: str
) -> None:
    report, data, injected = dirty_samples[fmt]
    assert report.injected_path == report.path + ".injected.ndjson"
    assert report.injected == len(injected)
    found = _violations(fmt, data)
    assert all(len(v) == 1 for v in found.values()), {n: v for n, v in found.items() if len(v) > 1}
    expected = {int(i["record"]): [(i["kind"], i["column"])] for i in injected}
    assert found == expected
    # Spread over the file, in record order, and about DIRTY of the rows.
    numbers = [int(i["record"]) for i in injected]
    assert numbers == sorted(set(numbers))
    assert numbers[-1] <= report.rows
    assert numbers[0] < report.rows * 0.1 and numbers[-1] > report.rows * 0.9
    assert abs(len(injected) - DIRTY * report.rows) <= 0.2 * DIRTY * report.rows


@pytest.mark.parametrize(("fmt", "extra"), [("csv", "ragged"), ("ndjson", "invalid_json"),
                                             ("json", "invalid_json")])
def test_fault_kinds_per_format(
    dirty_samples: dict[str, tuple[GenReport, bytes, list[dict[str, object]]]],
    fmt: str,
    extra: str,
) -> None:
    kinds = {"wrong_type", "out_of_range", "bad_timestamp", "bad_enum", "duplicate", "null",
             "too_long", extra}
    _, _, injected = dirty_samples[fmt]
    counts = collections.Counter(str(i["kind"]) for i in injected)
    assert set(counts) == kinds
    share = len(injected) / len(kinds)
    assert all(0.6 * share <= c <= 1.4 * share for c in counts.values()), counts  # ~uniform
    columns = {(i["kind"], i["column"]) for i in injected}
    assert {c for k, c in columns if k == "wrong_type"} == {"quantity", "customer_id"}
    assert {c for k, c in columns if k == "out_of_range"} == {"amount", "quantity", "customer_id"}
    assert {c for k, c in columns if k == "bad_enum"} == {"status", "country"}
    assert {c for k, c in columns if k == "null"} == {"created_at", "customer_id", "amount"}
    assert {c for k, c in columns if k == "too_long"} == {"note"}
    assert {c for k, c in columns if k in ("ragged", "invalid_json")} == {None}


#: Nullable columns of contracts/orders.yaml and the share of nulls dirty data gives them.
NULL_RATES = {"country": 0.01, "quantity": 0.03, "status": 0.02, "note": 0.02}


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_dirty_data_has_nulls_in_every_nullable_column(
    dirty_samples: dict[str, tuple[GenReport, bytes, list[dict[str, object]]]], fmt: str
) -> None:
    """Real data has nulls, in the columns and the stretches of the file that hold faults."""
    report, data, injected = dirty_samples[fmt]
    records = [r for r in _records(fmt, data) if r is not None]
    empty = "" if fmt == "csv" else None
    for column, rate in NULL_RATES.items():
        nulls = [i for i, r in enumerate(records) if r[column] == empty]
        share = len(nulls) / len(records)
        if column == "note" and fmt == "csv":
            assert share > rate  # clean notes are often empty too
        else:
            assert 0.7 * rate <= share <= 1.3 * rate, (column, share)
    # In the same column and stretch of the file as type faults: within 500 records of each.
    numbered = _records(fmt, data)
    quantity_nulls = [n for n, r in enumerate(numbered, 1) if r and r["quantity"] == empty]
    type_faults = [int(i["record"]) for i in injected
                   if i["kind"] == "wrong_type" and i["column"] == "quantity"]
    assert type_faults
    for record in type_faults:
        assert any(abs(record - n) <= 500 for n in quantity_nulls), record


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_injected_offsets_point_at_the_records(
    dirty_samples: dict[str, tuple[GenReport, bytes, list[dict[str, object]]]], fmt: str
) -> None:
    _, data, injected = dirty_samples[fmt]
    if fmt == "csv":
        texts = [_csv_record_bytes(r)[:-1] for r in _csv_records(data)[1:]]
    elif fmt == "ndjson":
        texts = data.split(b"\n")[:-1]
    else:
        texts = [t.encode() for t in _json_array_elements(data)]
    for item in injected:
        text, at = texts[int(item["record"]) - 1], int(item["offset"])
        assert data[at:at + len(text)] == text, item
        assert at == 0 or data[at - 1:at] in (b"\n", b"[")


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_injected_values_are_what_the_file_holds(
    dirty_samples: dict[str, tuple[GenReport, bytes, list[dict[str, object]]]], fmt: str
) -> None:
    _, data, injected = dirty_samples[fmt]
    records = _records(fmt, data)
    if fmt == "csv":
        texts = [_csv_record_bytes(r).decode()[:-1] for r in _csv_records(data)[1:]]
    elif fmt == "ndjson":
        texts = data.decode("utf-8").split("\n")[:-1]
    else:
        texts = _json_array_elements(data)
    for item in injected:
        number, column, value = int(item["record"]), item["column"], item["value"]
        if column is None:
            assert texts[number - 1] == value
        else:
            held = records[number - 1][column]
            assert ("" if held is None else str(held)) == value
    duplicates = [i for i in injected if i["kind"] == "duplicate"]
    assert duplicates
    faulty = {int(i["record"]) for i in injected}
    first_with_id: dict[str, int] = {}
    for number, record in enumerate(records, start=1):
        if record is not None:
            first_with_id.setdefault(str(record["order_id"]), number)
    for item in duplicates:  # the earlier record with that id is a clean one
        first = first_with_id[str(item["value"])]
        assert first < int(item["record"]) and first not in faulty


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_clean_records_are_the_ones_dirty_zero_writes(
    dirty_samples: dict[str, tuple[GenReport, bytes, list[dict[str, object]]]],
    tmp_path: Path,
    fmt: str,
) -> None:
    report, data, injected = dirty_samples[fmt]
    clean = generate("orders", tmp_path / f"c.{fmt}", size=DIRTY_SIZE, seed=11)
    clean_records = _records(fmt, Path(clean.path).read_bytes())
    faulty = {int(i["record"]) for i in injected}
    dirty_records = _records(fmt, data)
    n = min(len(clean_records), len(dirty_records))
    assert n > 5_000
    empty = "" if fmt == "csv" else None
    for number in range(1, n + 1):
        if number not in faulty:  # the same record, or with nulls in nullable columns
            dirty_record, clean_record = dirty_records[number - 1], clean_records[number - 1]
            assert dirty_record is not None and clean_record is not None
            for column, value in dirty_record.items():
                assert value == clean_record[column] or (
                    value == empty and column in NULL_RATES), (number, column)
    if fmt == "json":  # the array keeps its layout: every 7th element indented
        assert data.startswith(b"[\n") and data.endswith(b"\n]\n")
        assert data.decode("utf-8").split("\n").count("{") == report.rows // 7


@pytest.mark.parametrize("suffix", [".csv", ".ndjson", ".json.gz"])
def test_dirty_is_deterministic(tmp_path: Path, suffix: str) -> None:
    a, b, c = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}", tmp_path / f"c{suffix}"
    ra = generate("orders", a, size=300_000, seed=4, dirty=0.02)
    rb = generate("orders", b, size=300_000, seed=4, dirty=0.02)
    rc = generate("orders", c, size=300_000, seed=5, dirty=0.02)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    listing = Path(ra.injected_path or "").read_bytes()
    assert listing == Path(rb.injected_path or "").read_bytes()
    assert listing != Path(rc.injected_path or "").read_bytes()
    assert ra.injected == rb.injected > 0


def test_dirty_smaller_size_is_a_prefix(tmp_path: Path) -> None:
    small = generate("orders", tmp_path / "s.csv", size=40_000, seed=3, dirty=0.1)
    big = generate("orders", tmp_path / "b.csv", size=2_500_000, seed=3, dirty=0.1)
    assert Path(big.path).read_bytes().startswith(Path(small.path).read_bytes())
    small_list = Path(small.injected_path or "").read_text()
    assert Path(big.injected_path or "").read_text().startswith(small_list)
    assert 0 < small.injected < big.injected


def test_dirty_compressed_matches_plain(tmp_path: Path) -> None:
    plain = generate("orders", tmp_path / "o.ndjson", size=200_000, seed=2, dirty=0.1)
    packed = generate("orders", tmp_path / "o.ndjson.zst", size=200_000, seed=2, dirty=0.1)
    assert _decompress(Path(packed.path)) == Path(plain.path).read_bytes()
    assert packed.injected_path == f"{tmp_path / 'o.ndjson.zst'}.injected.ndjson"
    assert Path(packed.injected_path).read_bytes() == Path(plain.injected_path or "").read_bytes()


def test_dirty_half(tmp_path: Path) -> None:
    report = generate("orders", tmp_path / "o.csv", size=300_000, seed=9, dirty=0.5)
    injected = _injected(report)
    assert abs(len(injected) - 0.5 * report.rows) <= 0.05 * report.rows
    found = _violations("csv", Path(report.path).read_bytes())
    assert found == {int(i["record"]): [(i["kind"], i["column"])] for i in injected}


def test_dirty_zero_removes_a_stale_list(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    dirty = generate("orders", path, size=50_000, dirty=0.1)
    assert dirty.injected_path and Path(dirty.injected_path).exists()
    generate("orders", path, size=50_000)
    assert not Path(dirty.injected_path).exists()


@pytest.mark.parametrize("dirty", [-0.01, 0.51, 1, 2.0, float("nan"), True, "0.1", None])
def test_dirty_out_of_range(tmp_path: Path, dirty: object) -> None:
    with pytest.raises(ValueError, match="dirty"):
        generate("orders", tmp_path / "x.csv", size=1_000, dirty=dirty)
    assert not (tmp_path / "x.csv").exists()
    assert not (tmp_path / "x.csv.injected.ndjson").exists()
