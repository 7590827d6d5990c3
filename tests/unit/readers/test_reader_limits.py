"""Hostile inputs the readers must survive: each test pins one fix made for issue 7.

Deep nesting, duplicate keys, numbers beyond float64, too many columns or keys, headers that are
not UTF-8 or are UTF-16, records longer than the inference sample or than a block, and the
memory a record longer than ``max_record_bytes`` may cost before it is refused.
"""

from __future__ import annotations

import io
import json
import random
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine import transform
from engine.config import MAX_COLUMNS, MAX_JSON_DEPTH, ReadOptions
from engine.errors import InputFormatError, SchemaError
from engine.readers import scan
from engine.readers.json_common import TooManyKeys, loads, parse_json_objects
from engine.readers.streams import aligned_pieces

MiB = 1024**2


def convert(tmp_path: Path, name: str, data: bytes, **kwargs: Any) -> tuple[Any, list[dict]]:
    """Transform ``data`` (written as ``name``); the report and the rejects file's lines."""
    src = tmp_path / name
    src.write_bytes(data)
    rejects = tmp_path / f"{name}.rejects.ndjson"
    report = transform(str(src), str(tmp_path / f"{name}.parquet"), rejects_uri=str(rejects),
                       **kwargs)
    assert report.rows_in == report.rows_out + report.rows_rejected
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert len(lines) == report.rows_rejected
    return report, lines


def rows(tmp_path: Path, name: str) -> list[dict]:
    return pq.read_table(tmp_path / f"{name}.parquet").to_pylist()


def deep_object(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b'{"a":1' + b"}" * depth


def deep_array(depth: int) -> bytes:
    """An object holding ``depth - 1`` nested arrays: ``depth`` levels in all."""
    return b'{"a":' + b"[" * (depth - 1) + b"1" + b"]" * (depth - 1) + b"}"


# ---------------------------------------------------------------------------------------------
# Nesting depth: pyarrow's parser overflowed its stack (SIGSEGV) on 20,000 levels, json.loads
# raised RecursionError, and Parquet readers refuse schemas nested more than 100 levels.


def reference_depth(text: bytes) -> int:
    """Bracket depth the way scan.structure sees it: an odd backslash run escapes a quote."""
    depth = deepest = run = 0
    inside = False
    for byte in text:
        if byte == 0x5C:
            run += 1
            continue
        escaped, run = run % 2 == 1, 0
        if byte == 0x22 and not escaped:
            inside = not inside
        elif not inside and byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif not inside and byte in b"]}":
            depth -= 1
    return deepest


def test_scan_depth_matches_a_byte_by_byte_reference(monkeypatch: pytest.MonkeyPatch):
    rng = random.Random(7)
    alphabet = b'[]{}"\\ax,\n'
    for _ in range(2000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(300)))
        a = np.frombuffer(data, np.uint8)
        lines = data.split(b"\n")
        spans, pos = [], 0
        for line in lines:
            if reference_depth(line) > 3:
                spans.append((pos, pos + len(line)))
            pos += len(line) + 1
        assert scan.deep_lines(a, 3) == spans, data
        ends = np.array([i for i, byte in enumerate(data) if byte == 0x2C], np.int64)
        records = data.split(b",")[: ends.size]
        assert scan.deep_records(a, ends, 3) == [
            i for i, r in enumerate(records) if reference_depth(r) > 3], data
        monkeypatch.setattr(scan, "SCAN_SLICE", rng.randrange(1, 16))  # state across slices
        monkeypatch.setattr(scan, "FILTER_BLOCK", rng.choice([8, 16, 24, 64]))
        monkeypatch.setattr(scan, "MAX_DENSE_REGIONS", rng.choice([1, 2, 64]))
        assert scan.deep_lines(a, 3) == spans, (data, scan.SCAN_SLICE, scan.FILTER_BLOCK)
        assert scan.deep_records(a, ends, 3) == [
            i for i, r in enumerate(records) if reference_depth(r) > 3], data
        for line in lines:
            assert scan.nesting_depth(np.frombuffer(line, np.uint8)) == reference_depth(line)
        monkeypatch.undo()


def _spans(data: bytes, limit: int) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for line in data.split(b"\n"):
        if reference_depth(line) > limit:
            spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    return spans


@pytest.mark.parametrize("block", [8, 64, 1024])
def test_deep_lines_filter_finds_deep_lines_spread_over_many_blocks(
        monkeypatch: pytest.MonkeyPatch, block: int):
    """Long lines whose brackets are far apart, among short ones: the filter must keep them."""
    monkeypatch.setattr(scan, "FILTER_BLOCK", block)
    monkeypatch.setattr(scan, "MAX_DENSE_REGIONS", 10_000)  # region by region, not all at once
    rng = random.Random(block)
    lines = []
    for _ in range(300):
        depth = rng.choice([0, 1, 2, 5, 47, 48, 49, 60])
        pad = b'"' + b"x" * rng.choice([0, 3, 100, 900]) + b'"'
        lines.append(b'{"a":' * depth + pad + b"}" * depth if depth else b"1")
    data = b"\n".join(lines)
    expected = _spans(data, 48)
    assert expected  # some lines are deeper than 48, some just at it
    assert scan.deep_lines(np.frombuffer(data, np.uint8), 48) == expected


def test_deep_lines_scans_typical_records_without_the_exact_pass(
        monkeypatch: pytest.MonkeyPatch):
    # records of the shape `chunkwise gen` writes, with a list: 2 brackets per ~180 bytes
    data = (b'{"order_id":1,"created_at":"2025-01-01T01:00:04Z","customer_id":971,'
            b'"country":"DE","amount":8.73,"tags":["a","b"],"note":"Customer wrote \\"VIP\\""}\n'
            * 50_000)
    monkeypatch.setattr(scan, "_deep_lines_exact", lambda *args: pytest.fail("exact pass"))
    assert scan.deep_lines(np.frombuffer(data, np.uint8), 48) == []


def test_dense_brackets_are_counted_per_record_not_per_bracket():
    data = b"[" * 100_000 + b"\n" + b"{}" * 1000 + b"\n" + b"[" * 10
    assert scan.deep_lines(np.frombuffer(data, np.uint8), 48) == [(0, 100_000)]


@pytest.mark.parametrize("make", [deep_object, deep_array], ids=["objects", "arrays"])
def test_ndjson_line_deeper_than_the_limit_is_rejected(tmp_path: Path, make: Any):
    data = b'{"a":1}\n' + make(MAX_JSON_DEPTH) + b"\n" + make(10_000) + b'\n{"a":2}\n'
    report, rejects = convert(tmp_path, "deep.ndjson", data)
    assert (report.rows_in, report.rows_rejected) == (4, 1)
    assert rejects[0]["record"] == 3 and "nested deeper than 48" in rejects[0]["reason"]
    assert len(rows(tmp_path, "deep.ndjson")) == 3  # the 48 levels read back from Parquet


@pytest.mark.parametrize("json_path", [None, "data.item"])
@pytest.mark.parametrize("block_size", [64, 1 << 20])
def test_json_array_element_deeper_than_the_limit_is_rejected(tmp_path: Path,
                                                              json_path: str | None,
                                                              block_size: int):
    elements = [b'{"a":1}', deep_object(20_000), deep_array(MAX_JSON_DEPTH + 1),
                deep_object(MAX_JSON_DEPTH), b"[" * 5000 + b"]" * 5000, b'{"a":2}']
    data = b"[" + b",".join(elements) + b"]"
    if json_path:
        data = b'{"data":' + data + b"}"
    report, rejects = convert(tmp_path, "deep.json", data, json_path=json_path,
                              block_size=block_size)
    assert [r["record"] for r in rejects] == [2, 3, 5]
    assert report.rows_out == 3


# ---------------------------------------------------------------------------------------------
# Duplicate keys: pyarrow refused them, the json.loads fallback silently kept the last value.


def test_loads_refuses_what_pyarrow_refuses():
    with pytest.raises(ValueError, match="duplicate key 'a'"):
        loads(b'{"a":1,"b":{"a":2,"a":3}}')
    with pytest.raises(ValueError, match="float64"):
        loads(b'{"a":1e400}')
    with pytest.raises(ValueError):
        loads(b'{"a":NaN}')
    assert loads(b'{"a":1,"b":{"a":2}}') == {"a": 1, "b": {"a": 2}}


@pytest.mark.parametrize("name,data", [
    ("dup.ndjson", b'{"a":1}\n{"a":1,"a":2}\n{"a":3}\n'),
    ("dup.json", b'[{"a":1},{"a":1,"a":2},{"a":3}]'),
    ("dup-value.json", b'[[{"a":1}],[{"a":1,"a":2}],[{"a":3}]]'),  # ijson's path
])
def test_duplicate_keys_reject_the_record(tmp_path: Path, name: str, data: bytes):
    report, rejects = convert(tmp_path, name, data)
    assert (report.rows_out, [r["record"] for r in rejects]) == (2, [2])


# ---------------------------------------------------------------------------------------------
# Numbers beyond float64: pyarrow reads 1e400 as inf, so the value changed silently.


@pytest.mark.parametrize("name,data,expected", [
    ("big.ndjson", b'{"a":1.5}\n{"a":1e400}\n{"a":[1.0,-1e999]}\n{"a":2.5}\n', [2, 3]),
    ("big.json", b'[{"a":1.5},{"a":{"b":1e400}},{"a":2.5}]', [2]),
    ("big-values.json", b"[1.5, 1e400, 2.5]", [2]),
    ("big.csv", b"a,b\n1.5,x\n1e400,y\ninf,z\n-Infinity,w\n2.5,v\n", [2]),
])
def test_numbers_beyond_float64_reject_the_record(tmp_path: Path, name: str, data: bytes,
                                                  expected: list[int]):
    report, rejects = convert(tmp_path, name, data)
    assert [r["record"] for r in rejects] == expected
    assert all("float64" in r["reason"] or "overflow" in r["reason"] for r in rejects)


def test_csv_infinity_spelled_out_is_kept(tmp_path: Path):
    convert(tmp_path, "inf.csv", b"a\n1.5\ninf\n-Infinity\n")
    assert [r["a"] for r in rows(tmp_path, "inf.csv")] == [1.5, float("inf"), float("-inf")]


# ---------------------------------------------------------------------------------------------
# Width: 100,000 CSV columns took 1.4 GiB; 20,000 JSON keys over 2,000 records took 650 MiB.


def test_csv_with_too_many_columns_is_a_schema_error(tmp_path: Path):
    header = b",".join(b"c%d" % i for i in range(MAX_COLUMNS + 1))
    with pytest.raises(SchemaError, match="MAX_COLUMNS"):
        convert(tmp_path, "wide.csv", header + b"\n" + b"1," * MAX_COLUMNS + b"1\n")


def test_ndjson_record_with_too_many_keys_is_rejected(tmp_path: Path):
    wide = b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(MAX_COLUMNS + 1)) + b"}"
    report, rejects = convert(tmp_path, "wide.ndjson", b'{"a":1}\n' + wide + b'\n{"a":2}\n')
    assert [r["record"] for r in rejects] == [2] and report.rows_out == 2


def test_too_many_distinct_keys_over_many_records_is_a_schema_error(tmp_path: Path):
    data = b"".join(b'{"k%d":1,"k%d":2}\n' % (2 * i, 2 * i + 1) for i in range(MAX_COLUMNS))
    with pytest.raises(SchemaError, match="MAX_COLUMNS"):
        convert(tmp_path, "sparse.ndjson", data, block_size=64 * 1024)


def test_inference_parse_refuses_more_keys_than_columns_allowed():
    many = b"\n".join(b'{"k%d":1}' % i for i in range(MAX_COLUMNS + 1))
    with pytest.raises(TooManyKeys):
        parse_json_objects(many, None)
    colons_in_a_string = b'{"a":"' + b":" * (2 * MAX_COLUMNS) + b'"}'
    assert parse_json_objects(colons_in_a_string, None, records=1).num_rows == 1


# ---------------------------------------------------------------------------------------------
# Encodings of a CSV header: invalid UTF-8 became U+FFFD in a column name; UTF-16 without a
# byte-order mark became column names full of NULs; an invalid key crashed NDJSON inference.


@pytest.mark.parametrize("data,match", [
    (b"id,na\xffme\n1,a\n", "not valid UTF-8"),
    ("id,name\n1,abc\n".encode("utf-16-le"), "UTF-16"),
    ("id,name\n1,abc\n".encode("utf-16"), "UTF-16"),
    (b"id,na\x00me\n1,a\n", "NUL"),
])
def test_csv_header_that_is_not_utf8_text_is_an_input_format_error(tmp_path: Path, data: bytes,
                                                                   match: str):
    with pytest.raises(InputFormatError, match=match) as info:
        convert(tmp_path, "bad.csv", data)
    assert info.value.record == 1
    assert not (tmp_path / "bad.csv.parquet").exists()


def test_ndjson_key_that_is_not_utf8_is_an_input_format_error(tmp_path: Path):
    with pytest.raises(InputFormatError, match="UTF-8") as info:
        convert(tmp_path, "key.ndjson", b'{"i\xffd":1}\n{"id":2}\n')
    assert info.value.offset == 3


def test_csv_header_longer_than_the_sample_is_named_as_such(tmp_path: Path):
    header = b",".join(b"c%d_" % i + b"x" * 1000 for i in range(1200))  # 1.2 MB, 1,200 columns
    with pytest.raises(InputFormatError, match="longer than the .* bytes sampled"):
        convert(tmp_path, "long-header.csv", header + b"\n" + b"1," * 1199 + b"1\n")


# ---------------------------------------------------------------------------------------------
# Long records


def test_ndjson_first_record_longer_than_the_sample_converts(tmp_path: Path):
    big = json.dumps({"id": 1, "text": "x" * (2 * MiB)}).encode()
    report, _ = convert(tmp_path, "big-first.ndjson", big + b'\n{"id":2,"text":"y"}\n')
    assert report.rows_out == 2 and report.restarts == 1
    assert [r["id"] for r in rows(tmp_path, "big-first.ndjson")] == [1, 2]


@pytest.mark.parametrize("json_path", [None, "data.item"])
def test_json_array_element_longer_than_a_block_converts(tmp_path: Path, json_path: str | None):
    elements = [{"id": 1, "text": "a,b]}" * 100_000}, {"id": 2, "text": "y"},
                {"id": 3, "text": '\\"' * 50_000}]
    doc: Any = elements if json_path is None else {"skip": "z" * 300_000, "data": elements}
    report, _ = convert(tmp_path, "long.json", json.dumps(doc).encode(), block_size=64 * 1024,
                        json_path=json_path)
    assert rows(tmp_path, "long.json") == elements
    assert report.rows_out == 3


def peak_python_bytes(run: Any) -> int:
    tracemalloc.start()
    try:
        run()
    except InputFormatError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_a_record_past_max_record_bytes_costs_about_its_length_not_twice():
    """The buffer grows in place: the old growth copied it (twice, with a slice) per block."""
    limit, block = 8 * MiB, 256 * 1024
    data = b"x" * (3 * limit)

    def run() -> None:
        for _ in aligned_pieces(io.BytesIO(data), lambda buf, end: 0, block_size=block,
                                max_record_bytes=limit, uri="mem", first_record=lambda: 1):
            pass

    with pytest.raises(InputFormatError, match="max_record_bytes"):
        run()
    assert peak_python_bytes(run) < 1.5 * limit


@pytest.mark.parametrize("json_path", [None, "data.item"])
def test_json_element_past_max_record_bytes_is_scanned_once(json_path: str | None):
    """Scanned as it arrives, not rescanned: the old loop held ~12 bytes per byte buffered."""
    from engine.readers.json_array import JsonArrayReader

    limit = 4 * MiB
    head = b'{"data":' if json_path else b""
    data = head + b'[{"a":"' + b"x" * (3 * limit)
    reader = JsonArrayReader("mem.json", ReadOptions(max_record_bytes=limit, json_path=json_path,
                                                     block_size=256 * 1024))
    schema = pa.schema([("a", pa.string())])

    def run() -> None:
        list(reader.read(io.BytesIO(data), schema))

    with pytest.raises(InputFormatError, match="max_record_bytes"):
        run()
    assert peak_python_bytes(run) < 2.5 * limit


# ---------------------------------------------------------------------------------------------
# Found by tests/fuzz: records Parquet cannot hold as parsed.


@pytest.mark.parametrize("name,data", [("empty.ndjson", b"{}\n{}\n"), ("empty.json", b"[{},{}]")])
def test_records_without_fields_are_a_schema_error_not_lost(tmp_path: Path, name: str,
                                                            data: bytes):
    """pa.concat_tables made zero rows of them: the run's own accounting check tripped."""
    with pytest.raises((SchemaError, InputFormatError)):
        convert(tmp_path, name, data)
    assert not (tmp_path / f"{name}.parquet").exists()


@pytest.mark.parametrize("name,data", [
    ("struct.ndjson", b'{"a":{},"b":1}\n{"a":{},"b":2}\n'),
    ("struct.json", b'[{"a":[{}],"b":1},{"a":[],"b":2}]'),
])
def test_empty_objects_are_kept_as_json_text(tmp_path: Path, name: str, data: bytes):
    """Parquet has no struct without fields: the writer raised ArrowNotImplementedError."""
    report, _ = convert(tmp_path, name, data)
    assert report.rows_out == 2
    assert [r["b"] for r in rows(tmp_path, name)] == [1, 2]
    assert rows(tmp_path, name)[0]["a"] in ("{}", "[{}]")


@pytest.mark.parametrize("name,data", [("nulls.ndjson", b'{"a":[null,null]}\n'),
                                       ("nulls.json", b'[{"a":{"b":[null]}}]')])
def test_nulls_nested_in_lists_are_written(tmp_path: Path, name: str, data: bytes):
    """pyarrow's JSON reader built an invalid list<null> array the Parquet writer refused."""
    report, _ = convert(tmp_path, name, data)
    assert report.rows_out == 1
    assert rows(tmp_path, name) == [json.loads(data.strip().strip(b"[]") if name.endswith(
        ".json") else data)]
