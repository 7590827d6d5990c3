from __future__ import annotations

import gzip
import io
import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from engine.aws import planning
from engine.aws.planning import plan_byte_ranges, splittable
from engine.config import ReadOptions
from engine.errors import InputFormatError


@pytest.fixture(params=[None, 997], ids=["one-block", "small-blocks"])
def blocks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the sequential scans in one block, and in many small ones (state across blocks)."""
    if request.param:
        monkeypatch.setattr(planning, "SCAN_BLOCK_BYTES", request.param)


def _tiles(ranges: list[dict[str, int]], start: int, end: int) -> None:
    assert [r["index"] for r in ranges] == list(range(len(ranges)))
    assert ranges[0]["start"] == start and ranges[-1]["end"] == end
    for a, b in zip(ranges, ranges[1:], strict=False):
        assert a["end"] == b["start"] or a["end"] + 1 == b["start"]  # JSON: the comma between


# -- CSV with quoted line breaks ----------------------------------------------------------------


def quoted_csv(rows: int, seed: int = 7) -> bytes:
    """CSV whose quoted fields hold line breaks, doubled quotes, commas and CSV-looking text."""
    rng = random.Random(seed)
    notes = [
        'plain', 'with "quotes" inside', 'line one\nline two', 'a,b,c',
        '1,2,3\n4,5,6\n7,8,9',  # a quoted field that looks like whole records of 3 fields
        '"\n"', '', 'trailing newline\n', 'x' * 300, '\n"a",b\n',
    ]
    lines = ["id,note,amount\n"]
    for i in range(rows):
        note = rng.choice(notes)
        special = any(c in note for c in ',"\n')
        quoted = '"' + note.replace('"', '""') + '"' if special or rng.random() < 0.5 else note
        lines.append(f"{i},{quoted},{rng.randint(0, 10**6) / 100}\n")
    return "".join(lines).encode()


def record_starts(data: bytes) -> set[int]:
    """Where each CSV record starts, by a plain state machine over every byte."""
    starts, inside = {0}, False
    for i, byte in enumerate(data):
        if byte == ord('"'):
            inside = not inside
        elif byte == ord("\n") and not inside:
            starts.add(i + 1)
    return starts


def test_csv_cuts_fall_on_record_starts_only(tmp_path: Path, blocks: None) -> None:
    data = quoted_csv(3000)
    path = tmp_path / "orders.csv"
    path.write_bytes(data)
    ranges = plan_byte_ranges(str(path), "csv", len(data), 7000)
    assert len(ranges) > 10
    _tiles(ranges, 0, len(data))
    starts = record_starts(data)
    assert all(r["start"] in starts for r in ranges)
    # The data is adversarial: the first line break after a nominal cut is often inside quotes.
    naive = [data.index(b"\n", cut) + 1 for cut in range(7000, len(data) - 1000, 7000)]
    assert any(cut not in starts for cut in naive)


def test_csv_ranges_hold_exactly_the_rows_of_one_parse(tmp_path: Path, blocks: None) -> None:
    data = quoted_csv(2000, seed=3)
    path = tmp_path / "orders.csv"
    path.write_bytes(data)
    ranges = plan_byte_ranges(str(path), "csv", len(data), 5000)
    header = data[: data.index(b"\n") + 1]
    parse = pacsv.ParseOptions(newlines_in_values=True)
    whole = pacsv.read_csv(io.BytesIO(data), parse_options=parse)
    schema = whole.schema
    parts = []
    for r in ranges:
        piece = data[r["start"]: r["end"]]
        if r["start"]:
            piece = header + piece
        parts.append(pacsv.read_csv(io.BytesIO(piece), parse_options=parse,
                                    convert_options=pacsv.ConvertOptions(column_types=schema)))
    assert pa.concat_tables(parts).equals(whole)


def test_csv_without_quoting_and_crlf(tmp_path: Path) -> None:
    data = b"".join(f"{i},name {i}\r\n".encode() for i in range(5000))
    path = tmp_path / "plain.csv"
    path.write_bytes(data)
    ranges = plan_byte_ranges(str(path), "csv", len(data), 4096,
                              options=ReadOptions(quote_char=""))
    _tiles(ranges, 0, len(data))
    assert all(data[r["start"] - 1: r["start"]] == b"\n" for r in ranges[1:])


def test_unbalanced_quote_is_an_input_format_error(tmp_path: Path) -> None:
    data = b'id,note\n1,"never closed\n' + b"2,x\n" * 5000
    path = tmp_path / "bad.csv"
    path.write_bytes(data)
    with pytest.raises(InputFormatError, match="unbalanced quote"):
        plan_byte_ranges(str(path), "csv", len(data), 2000,
                         options=ReadOptions(max_record_bytes=4000))


# -- NDJSON --------------------------------------------------------------------------------------


def test_ndjson_cuts_after_line_breaks(tmp_path: Path) -> None:
    lines = [json.dumps({"id": i, "text": "x" * (i % 97)}) + "\n" for i in range(4000)]
    data = "".join(lines).encode()
    path = tmp_path / "events.ndjson"
    path.write_bytes(data)
    ranges = plan_byte_ranges(str(path), "ndjson", len(data), 10_000)
    _tiles(ranges, 0, len(data))
    rows = [json.loads(line) for r in ranges
            for line in data[r["start"]: r["end"]].splitlines()]
    assert rows == [json.loads(line) for line in lines]
    assert all(r["end"] - r["start"] >= 10_000 for r in ranges[:-1])


def test_ndjson_cut_right_after_a_line_break_starts_there(tmp_path: Path) -> None:
    data = b'{"a":1}\n' * 10  # 8 bytes a line: a cut at 16 is a line start
    path = tmp_path / "x.ndjson"
    path.write_bytes(data)
    assert [r["start"] for r in plan_byte_ranges(str(path), "ndjson", 80, 16)] == [
        0, 16, 32, 48, 64]


def test_ndjson_line_longer_than_the_limit(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planning, "WINDOW_BYTES", 512)
    data = (b'{"a":"' + b"x" * 50_000 + b'"}\n') * 2
    path = tmp_path / "x.ndjson"
    path.write_bytes(data)
    with pytest.raises(InputFormatError, match="no line break"):
        plan_byte_ranges(str(path), "ndjson", len(data), 100,
                         options=ReadOptions(max_record_bytes=1000))


# -- JSON arrays ---------------------------------------------------------------------------------


def tricky_elements(count: int, seed: int = 11) -> list[Any]:
    rng = random.Random(seed)
    texts = ['a},{"b": 1', "[1,2]", 'quote \\" inside', "back\\\\slash", ",", "}", "]", "{"]
    out: list[Any] = []
    for i in range(count):
        out.append({"id": i, "text": rng.choice(texts) + "x" * rng.randint(0, 50),
                    "nested": {"list": [1, [2, {"k": "v,]"}]], "s": "},{"}})
    return out


def _json_rows(data: bytes, ranges: list[dict[str, int]]) -> list[Any]:
    return [row for r in ranges for row in json.loads(b"[" + data[r["start"]: r["end"]] + b"]")]


@pytest.mark.parametrize("indent", [None, 2])
def test_json_array_cuts_at_element_boundaries(tmp_path: Path, indent: int | None,
                                              blocks: None) -> None:
    elements = tricky_elements(1500)
    data = b"\xef\xbb\xbf  " + json.dumps(elements, indent=indent).encode() + b"\n"
    path = tmp_path / "events.json"
    path.write_bytes(data)
    ranges = plan_byte_ranges(str(path), "json", len(data), 8000)
    assert len(ranges) > 5
    assert ranges[0]["start"] == data.index(b"[") + 1
    assert ranges[-1]["end"] == data.rindex(b"]")
    _tiles(ranges, ranges[0]["start"], ranges[-1]["end"])
    assert _json_rows(data, ranges) == elements


def test_json_array_at_a_nested_path(tmp_path: Path, blocks: None) -> None:
    elements = tricky_elements(800, seed=5)
    document = {"meta": {"items": [1, 2, 3], "note": "data"}, "data": elements, "next": "c,]"}
    data = json.dumps(document).encode()
    path = tmp_path / "page.json"
    path.write_bytes(data)
    ranges = plan_byte_ranges(str(path), "json", len(data), 6000,
                              options=ReadOptions(json_path="data.item"))
    assert len(ranges) > 3
    assert _json_rows(data, ranges) == elements


def test_json_empty_array_and_trailing_data(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(b"[" + b" " * 100 + b"]")
    ranges = plan_byte_ranges(str(path), "json", 102, 10)
    assert _json_rows(path.read_bytes(), ranges) == []
    path.write_bytes(json.dumps(list(range(100))).encode() + b" [1]")
    with pytest.raises(InputFormatError, match="trailing data"):
        plan_byte_ranges(str(path), "json", path.stat().st_size, 50)


def test_json_unterminated_array(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_bytes(json.dumps(list(range(1000))).encode()[:-1])
    with pytest.raises(InputFormatError, match="unterminated"):
        plan_byte_ranges(str(path), "json", path.stat().st_size, 100)


# -- what is not split ----------------------------------------------------------------------------


def test_small_or_compressed_objects_get_one_range(tmp_path: Path) -> None:
    data = quoted_csv(500)
    path = tmp_path / "orders.csv.gz"
    path.write_bytes(gzip.compress(data))
    assert not splittable(str(path))
    assert plan_byte_ranges(str(path), "csv", 10**9, 1000) == [
        {"index": 0, "start": 0, "end": 10**9}]
    assert plan_byte_ranges("x.csv", "csv", 10, 1000) == [{"index": 0, "start": 0, "end": 10}]
    assert not splittable("x.csv", ReadOptions(encoding="utf-16"))
    assert splittable("x.csv", ReadOptions(encoding="latin-1"))
