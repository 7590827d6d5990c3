"""Resolving an input: Parquet told by its first bytes, other binary formats refused by name."""

from __future__ import annotations

import bz2
import gzip
import io
import sqlite3
import tarfile
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest
import zstandard

from engine import transform
from engine.config import ReadOptions
from engine.errors import InputFormatError, UsageError
from engine.readers.magic import known_binary, looks_binary
from engine.readers.sampling import detect_format, resolve_input

TABLE = pa.table({"id": [1, 2], "name": ["a", "b"]})


def _zip(entries: dict[str, bytes], *, stored_first: bool = False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, (name, data) in enumerate(entries.items()):
            kind = zipfile.ZIP_STORED if stored_first and i == 0 else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=kind)
    return out.getvalue()


def _tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        info = tarfile.TarInfo("orders.csv")
        info.size = 8
        archive.addfile(info, io.BytesIO(b"id\n1\n2\n\n"))
    return out.getvalue()


def _sqlite(tmp: Path) -> bytes:
    path = tmp / "db.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("create table t (a int)")
    db.close()
    return path.read_bytes()


def _arrow(write) -> bytes:
    out = io.BytesIO()
    write(TABLE, out)
    return out.getvalue()


#: name → (bytes, what the message must name). Real files where Python or pyarrow writes them.
def binary_files(tmp: Path) -> dict[str, tuple[bytes, str]]:
    return {
        "book.xlsx": (_zip({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<w/>"}),
                      "Excel workbook (.xlsx"),
        "sheet.ods": (_zip({"mimetype": b"application/vnd.oasis.opendocument.spreadsheet",
                            "content.xml": b"<x/>"}, stored_first=True),
                      "OpenDocument spreadsheet (.ods"),
        "letter.docx": (_zip({"word/document.xml": b"<d/>"}), "Word document"),
        "data.zip": (_zip({"orders.csv": b"id\n1\n"}), "ZIP archive"),
        "legacy.xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
                       + "Workbook".encode("utf-16-le") + bytes(64), "Excel 97-2003 workbook"),
        "legacy.doc": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "OLE2"),
        "data.tar": (_tar(), "tar archive"),
        "data.7z": (b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(32), "7-Zip archive"),
        "data.rar": (b"Rar!\x1a\x07\x01\x00" + bytes(32), "RAR archive"),
        "data.orc": (_arrow(orc.write_table), "ORC file"),
        "data.avro": (b"Obj\x01\x04\x14avro.codec\x08null" + bytes(16), "Avro"),
        "data.feather": (_arrow(feather.write_feather), "Arrow IPC"),
        "data.sqlite": (_sqlite(tmp), "SQLite database"),
        "doc.pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "PDF document"),
        "image.png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(17), "PNG image"),
        "photo.jpg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(20), "JPEG image"),
        "data.csv.xz": (b"\xfd7zXZ\x00\x00\x04" + bytes(20), "xz-compressed"),
        "twice.csv.gz": (gzip.compress(gzip.compress(b"id\n1\n")), "gzip-compressed data"),
    }


@pytest.fixture
def files(tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    return binary_files(tmp_path)


def _refused(path: Path, **options: object) -> InputFormatError:
    with pytest.raises(InputFormatError) as info:
        transform(str(path), str(path.parent / "out.parquet"), **options)
    assert not (path.parent / "out.parquet").exists()
    return info.value


BINARY_NAMES = ["book.xlsx", "sheet.ods", "letter.docx", "data.zip", "legacy.xls", "legacy.doc",
                "data.tar", "data.7z", "data.rar", "data.orc", "data.avro", "data.feather",
                "data.sqlite", "doc.pdf", "image.png", "photo.jpg", "data.csv.xz", "twice.csv.gz"]


def test_every_binary_file_is_tested(tmp_path: Path):
    assert sorted(binary_files(tmp_path)) == sorted(BINARY_NAMES)


@pytest.mark.parametrize("name", BINARY_NAMES)
def test_a_known_binary_format_is_refused_by_name(tmp_path: Path, files, name: str):
    data, what = files[name]
    src = tmp_path / name
    src.write_bytes(data)
    error = _refused(src)
    assert what in error.message and "not CSV, JSON or Parquet" in error.message
    assert error.offset == 0


@pytest.mark.parametrize("name", ["book.xlsx", "legacy.xls", "data.zip", "data.orc"])
@pytest.mark.parametrize("suffix", [".csv", ".ndjson", ".json", ".txt", ""])
def test_a_binary_format_named_as_text_is_refused_by_name(tmp_path: Path, files, name: str,
                                                          suffix: str):
    data, what = files[name]
    src = tmp_path / f"renamed{suffix}"
    src.write_bytes(data)
    assert what in _refused(src).message


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_a_binary_format_is_refused_whatever_the_format_asked_for(tmp_path: Path, files, fmt):
    data, what = files["book.xlsx"]
    src = tmp_path / "book.xlsx"
    src.write_bytes(data)
    assert what in _refused(src, format=fmt).message


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress,
                                      lambda b: zstandard.ZstdCompressor().compress(b)],
                         ids=["gz", "bz2", "zst"])
@pytest.mark.parametrize("name", ["book.xlsx", "data.tar", "legacy.xls"])
def test_a_compressed_binary_format_is_refused_by_name(tmp_path: Path, files, name: str,
                                                       compress):
    data, what = files[name]
    suffix = {gzip.compress: ".gz", bz2.compress: ".bz2"}.get(compress, ".zst")
    src = tmp_path / f"{name}{suffix}"
    src.write_bytes(compress(data))
    assert what in _refused(src).message


@pytest.mark.parametrize("text", [
    b"ORCHARD,PEAR\n1,2\n",            # starts with ORC's signature, but is text
    b"PAR1,PAR2\n1,2\n",               # Parquet's
    b"BZh91AY&SY,x\n1,2\n",            # bz2's
    b"GIF89a,x\n1,2\n",                # GIF's
    b"ARROW1,x\n1,2\n",                # Arrow's
])
def test_printable_signatures_in_text_stay_text(tmp_path: Path, text: bytes):
    assert known_binary(text) is None and not looks_binary(text)
    src = tmp_path / "looks.csv"
    src.write_bytes(text)
    report = transform(str(src), str(tmp_path / "out.parquet"))
    assert report.format == "csv" and report.rows_out == 1


def test_control_bytes_that_text_holds_are_not_binary():
    assert not looks_binary(b"a\tb\r\n\x0c\x1b[0m\n")
    assert looks_binary(b"a,b\n\x01\n") and looks_binary(b"a\x00")


@pytest.mark.parametrize("name", ["t.parquet", "t.pq", "t.csv", "t.json", "t.bin", "t"])
def test_parquet_is_read_whatever_its_name(tmp_path: Path, name: str):
    src = tmp_path / name
    pq.write_table(TABLE, src)
    assert resolve_input(str(src), ReadOptions()).format == "parquet"
    report = transform(str(src), str(tmp_path / "out.parquet"))
    assert report.format == "parquet" and report.rows_out == 2
    assert pq.read_table(tmp_path / "out.parquet").equals(TABLE)


def test_detect_format_tells_parquet_from_its_first_bytes():
    head = io.BytesIO()
    pq.write_table(TABLE, head)
    assert detect_format("export.csv", head.getvalue()) == "parquet"
    with pytest.raises(InputFormatError, match="ZIP archive"):
        detect_format("x.csv", _zip({"a.csv": b"x"}))


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_parquet_read_as_a_text_format_names_parquet(tmp_path: Path, fmt: str):
    src = tmp_path / "t.parquet"
    pq.write_table(TABLE, src)
    error = _refused(src, format=fmt)
    assert error.message == f"a Parquet file, not {fmt}: pass --format parquet, or no --format"


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".zst"])
def test_compressed_parquet_is_refused(tmp_path: Path, suffix: str):
    plain = io.BytesIO()
    pq.write_table(TABLE, plain)
    compress = {".gz": gzip.compress, ".bz2": bz2.compress,
                ".zst": zstandard.ZstdCompressor().compress}[suffix]
    src = tmp_path / f"t.parquet{suffix}"
    src.write_bytes(compress(plain.getvalue()))
    assert "a Parquet file inside" in _refused(src).message


def test_parquet_byte_range_is_a_usage_error(tmp_path: Path):
    src = tmp_path / "t.parquet"
    pq.write_table(TABLE, src)
    with pytest.raises(UsageError, match="read whole"):
        resolve_input(str(src), ReadOptions(format="parquet", byte_range=(0, 10)))


def test_parquet_takes_no_text_samples(tmp_path: Path):
    src = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": list(range(400_000))}), src, row_group_size=10_000)
    options = ReadOptions(sample_bytes=1024, sample_count=4)
    assert len(resolve_input(str(src), options).samples) == 1


@pytest.mark.parametrize(("name", "compress", "ahead"), [
    ("t.csv", None, False), ("t.csv.gz", gzip.compress, True), ("t.csv.zst",
                                                              zstandard.compress, True)])
def test_worker_threads_read_ahead_only_where_reading_costs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, compress, ahead: bool):
    """A plain local file is read by the parsing thread; a compressed one on a thread of its own.

    The kernel reads a local file ahead already: a read-ahead thread only copied each block once
    more (issue 17). Whichever threads read, the rows are those of one thread.
    """
    from engine.readers import sampling

    started: list[int] = []

    class Spy(sampling.ReadAhead):
        def __init__(self, stream, block_size: int, **kw) -> None:
            started.append(block_size)
            super().__init__(stream, block_size, **kw)

    monkeypatch.setattr(sampling, "ReadAhead", Spy)
    text = "id,name\n" + "".join(f"{i},n{i % 7}\n" for i in range(40_000))
    data = text.encode()
    src = tmp_path / name
    src.write_bytes(compress(data) if compress else data)
    transform(src, tmp_path / "two.parquet", threads=2, block_size=64 << 10)
    assert bool(started) is ahead
    assert resolve_input(str(src), ReadOptions()).reads_ahead is ahead
    transform(src, tmp_path / "one.parquet", threads=1, block_size=64 << 10)
    assert pq.read_table(tmp_path / "two.parquet").equals(pq.read_table(tmp_path / "one.parquet"))


def test_an_s3_input_is_read_ahead(tmp_path: Path):
    src = tmp_path / "t.csv"
    src.write_bytes(b"id\n1\n")
    local = resolve_input(str(src), ReadOptions())
    from dataclasses import replace

    assert not local.reads_ahead and replace(local, uri="s3://bucket/t.csv").reads_ahead
    assert not replace(local, read=replace(local.read, format="parquet")).reads_ahead


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
@pytest.mark.parametrize("contract", [False, True])
def test_parsing_runs_ahead_by_half_a_row_group_of_chunk_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, contract: bool, fmt: str):
    """The parse stage may hold parsed chunks up to half a row group while a row group is
    encoded (issue 17), each weighed by what it holds: a contract's chunks keep their text."""
    from engine.config import parse_ahead_bytes
    from engine.readers import sampling

    seen: list[tuple[int, list[int], list[int]]] = []

    class Spy(sampling.Prefetch):
        def __init__(self, source, *, weigh=None, budget: int = 0, **kw) -> None:
            weights: list[int] = []
            kept: list[int] = []

            def weighed(chunk):
                weights.append(weigh(chunk))
                kept.append(chunk.kept)
                assert weights[-1] == chunk.table.nbytes + chunk.kept
                return weights[-1]

            seen.append((budget, weights, kept))
            super().__init__(source, weigh=weighed, budget=budget, **kw)

    monkeypatch.setattr(sampling, "Prefetch", Spy)
    src = tmp_path / f"t.{fmt}"
    rows = [(i, f"n{i % 7}") for i in range(40_000)]
    if fmt == "csv":
        src.write_text("id,name\n" + "".join(f"{i},{n}\n" for i, n in rows))
    else:
        lines = [f'{{"id": {i}, "name": "{n}"}}' for i, n in rows]
        src.write_text("\n".join(lines) + "\n" if fmt == "ndjson" else
                       "[" + ",\n".join(lines) + "]")
    given = {"contract": "dataset: t\ncolumns:\n  id: {type: int64}\n"
                         "  name: {type: string}\n"} if contract else {}
    transform(src, tmp_path / "two.parquet", threads=2, block_size=64 << 10,
              row_group_bytes=1 << 20, **given)
    [(budget, weights, kept)] = seen
    assert budget == parse_ahead_bytes(1 << 20) == 512 << 10
    assert len(weights) > 2 and all(weights)
    assert all(k > 0 for k in kept) is contract and any(kept) is contract
