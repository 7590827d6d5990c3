"""Every JSON conformance case (json_cases.py) that must be accepted or rejected, as it says.

How values compare. A case's text is read back equal to ``json.loads`` of it, value by value:

- numbers as numbers (``1`` equals ``1.0``), booleans, nulls and strings exactly;
- a date read as ``date32`` (a string written ``YYYY-MM-DD`` is a date to chunkwise) equals its
  ISO text;
- a struct (a JSON object) has a field for every key seen in its column: a field that is null
  equals a key that is absent (Arrow cannot tell them apart);
- a JSON-text column (a string column holding values of other kinds: a column whose values
  differ in kind, or that Arrow cannot type) holds each string as itself and every other value
  as its JSON text: that text, parsed, equals the value.

The inputs are written at the default block size and at a 3-byte one (every record cut across
reads), alone and in batches. Cases are read as a field's value (``{"v": TEXT}``) on NDJSON lines
and as JSON-array elements; as an element of an array of values; and, for objects, as the record.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from json_cases import CASES, JsonCase

from engine import transform
from engine.errors import InputFormatError

TINY_BLOCK = 3
BLOCKS = pytest.mark.parametrize("block_size", [None, TINY_BLOCK],
                                 ids=["default-block", "tiny-block"])
FORMATS = pytest.mark.parametrize("fmt", ["ndjson", "json"])
#: Records around a case: a string or a number in the same field (a ``NaN`` next to numbers is
#: where pyarrow's parser would take it).
NEIGHBOURS = pytest.mark.parametrize("neighbour", [b'{"v": "neighbour"}', b'{"v": 1.5}'],
                                     ids=["text-neighbours", "number-neighbours"])

ACCEPTED = [c for c in CASES if c.outcome == "accept"]
REJECTED = [c for c in CASES if c.outcome == "reject"]


def ids(case: JsonCase) -> str:
    return case.id


def value_of(case: JsonCase) -> Any:
    return json.loads(case.text)


def same(got: Any, want: Any) -> bool:
    """Whether ``got`` (read back from Parquet) is ``want`` (``json.loads``), as said above."""
    if isinstance(got, str) and not isinstance(want, str):
        return same(json.loads(got), want)  # a JSON-text column
    if want is None or isinstance(want, bool):
        return got is want
    if isinstance(want, int | float):
        return isinstance(got, int | float) and not isinstance(got, bool) and got == want
    if isinstance(want, str):
        if isinstance(got, dt.date) and not isinstance(got, dt.datetime):
            return got.isoformat() == want
        return got == want
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(
            same(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, dict):
        return isinstance(got, dict) and set(want) <= set(got) and all(
            same(got[key], want.get(key)) for key in got)
    raise AssertionError(f"not a json.loads value: {want!r}")


def records(fmt: str, texts: list[bytes]) -> bytes:
    """``texts`` (each one record) as an NDJSON file or a JSON array."""
    if fmt == "ndjson":
        return b"".join(t + b"\n" for t in texts)
    return b"[" + b",\n".join(texts) + b"]"


def convert(tmp_path: Path, name: str, data: bytes,
            block_size: int | None) -> tuple[Any, list[dict], list[dict]]:
    """Transform ``data``: the report, the rows as read back, the rejects."""
    src = tmp_path / name
    src.write_bytes(data)
    out, rejects = tmp_path / f"{name}.parquet", tmp_path / f"{name}.rejects.ndjson"
    report = transform(str(src), str(out), rejects_uri=str(rejects), block_size=block_size)
    assert report.rows_in == report.rows_out + report.rows_rejected, report
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == report.rows_out
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert len(lines) == report.rows_rejected
    return report, rows, lines


def field(case: JsonCase, key: str = "v") -> bytes:
    return b'{"%s": %s}' % (key.encode(), case.text)


def breaks_the_document(text: bytes) -> bool:
    """Whether ``text`` leaves a string open or its brackets unbalanced (outside strings).

    In a JSON array such a value shifts every element boundary after it: the document as a
    whole is then malformed, and a typed failure is the answer rather than a reject.
    """
    depth, inside, escaped = 0, False, False
    for byte in text:
        if inside:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                inside = False
            continue
        if byte == 0x22:
            inside = True
        elif byte in b"[{":
            depth += 1
        elif byte in b"]}":
            depth -= 1
            if depth < 0:
                return True
    return inside or depth != 0


# -- must accept: equal to json.loads ------------------------------------------------------------


def by_format(cases: list[JsonCase]) -> list[Any]:
    """``(case, fmt)`` for both formats; a text with a raw line break is no NDJSON line."""
    return [pytest.param(c, fmt, id=f"{fmt}-{c.id}") for fmt in ("ndjson", "json")
            for c in cases if fmt == "json" or c.one_line]


@BLOCKS
@pytest.mark.parametrize("case,fmt", by_format(ACCEPTED))
def test_accepted_case_as_a_field_value_alone(tmp_path: Path, case: JsonCase, fmt: str,
                                              block_size: int | None):
    report, rows, rejects = convert(tmp_path, f"in.{fmt}", records(fmt, [field(case)]),
                                    block_size)
    assert rejects == []
    assert len(rows) == 1 and same(rows[0]["v"], value_of(case)), (rows, report.schema)


@BLOCKS
@pytest.mark.parametrize("case", [c for c in ACCEPTED if not c.text.strip().startswith(b"{")],
                         ids=ids)
def test_accepted_case_as_an_element_of_an_array_of_values(tmp_path: Path, case: JsonCase,
                                                           block_size: int | None):
    report, rows, rejects = convert(tmp_path, "in.json", b"[" + case.text + b"]", block_size)
    assert rejects == []
    assert len(rows) == 1 and same(rows[0]["value"], value_of(case)), (rows, report.schema)


@BLOCKS
@FORMATS
@pytest.mark.parametrize("case", [c for c in ACCEPTED if isinstance(value_of(c), dict)
                                  and value_of(c)], ids=ids)
def test_accepted_object_as_the_record(tmp_path: Path, case: JsonCase, fmt: str,
                                       block_size: int | None):
    report, rows, rejects = convert(tmp_path, f"in.{fmt}", records(fmt, [case.text]),
                                    block_size)
    assert rejects == []
    assert len(rows) == 1 and same(rows[0], value_of(case)), (rows, report.schema)


@BLOCKS
@FORMATS
def test_accepted_cases_in_one_batch_each_in_its_own_column(tmp_path: Path, fmt: str,
                                                            block_size: int | None):
    cases = [c for c in ACCEPTED if c.one_line or fmt == "json"]
    texts = [field(c, f"c{i}") for i, c in enumerate(cases)]
    report, rows, rejects = convert(tmp_path, f"in.{fmt}", records(fmt, texts), block_size)
    assert rejects == [] and len(rows) == len(cases)
    for i, (row, case) in enumerate(zip(rows, cases, strict=True)):
        assert same(row[f"c{i}"], value_of(case)), (case.id, row[f"c{i}"])
        assert all(row[f"c{j}"] is None for j in range(len(cases)) if j != i)


@BLOCKS
@FORMATS
def test_accepted_cases_in_one_batch_in_one_column(tmp_path: Path, fmt: str,
                                                   block_size: int | None):
    """Values of every kind in one column: a JSON-text column, each value kept."""
    cases = [c for c in ACCEPTED if c.one_line or fmt == "json"]
    report, rows, rejects = convert(tmp_path, f"in.{fmt}",
                                    records(fmt, [field(c) for c in cases]), block_size)
    assert rejects == [] and len(rows) == len(cases)
    assert report.schema == [{"name": "v", "type": "string"}]
    for row, case in zip(rows, cases, strict=True):
        assert same(row["v"], value_of(case)), (case.id, row["v"])


@BLOCKS
def test_accepted_cases_in_one_array_of_values(tmp_path: Path, block_size: int | None):
    cases = sorted(ACCEPTED, key=lambda c: c.text.strip().startswith(b"{"))  # a value first
    data = b"[" + b",".join(c.text for c in cases) + b"]"
    report, rows, rejects = convert(tmp_path, "in.json", data, block_size)
    assert rejects == [] and len(rows) == len(cases)
    for row, case in zip(rows, cases, strict=True):
        assert same(row["value"], value_of(case)), (case.id, row["value"])


# -- must reject: a reject with its neighbours kept, or a clean typed failure --------------------


@BLOCKS
@FORMATS
@NEIGHBOURS
@pytest.mark.parametrize("case", REJECTED, ids=ids)
def test_rejected_case_between_neighbours(tmp_path: Path, case: JsonCase, fmt: str,
                                          block_size: int | None, neighbour: bytes):
    record = field(case)
    data = records(fmt, [neighbour, record, neighbour])
    if fmt == "json" and breaks_the_document(case.text):
        try:
            convert(tmp_path, "in.json", data, block_size)
        except InputFormatError:
            assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json"]
            return
    report, rows, rejects = convert(tmp_path, f"in.{fmt}", data, block_size)
    spanned = record.count(b"\n") + 1 if fmt == "ndjson" else 1  # a raw line break splits it
    assert rows == [json.loads(neighbour)] * 2
    assert [r["record"] for r in rejects] == list(range(2, 2 + spanned))
    assert all(r["reason"].startswith(("invalid JSON", "not a JSON object")) for r in rejects)


@BLOCKS
@FORMATS
@NEIGHBOURS
def test_rejected_cases_in_one_file_among_good_records(tmp_path: Path, fmt: str,
                                                       block_size: int | None, neighbour: bytes):
    cases = [c for c in REJECTED if c.one_line and not (
        fmt == "json" and breaks_the_document(c.text))]
    texts = [neighbour]
    for case in cases:
        texts += [field(case), neighbour]
    report, rows, rejects = convert(tmp_path, f"in.{fmt}", records(fmt, texts), block_size)
    assert rows == [json.loads(neighbour)] * (len(cases) + 1)
    assert [r["record"] for r in rejects] == [2 * i + 2 for i in range(len(cases))]


# -- the cases are what they say they are ---------------------------------------------------------


def test_accepted_cases_are_json_and_rejected_ones_are_not():
    for case in ACCEPTED:
        json.loads(case.text)
    def no_constant(name: str) -> Any:
        raise ValueError(name)

    for case in REJECTED:
        with pytest.raises(ValueError):
            json.loads(case.text, parse_constant=no_constant)


def test_the_classes_are_covered():
    classes = {(c.outcome, c.klass) for c in CASES}
    for outcome in ("accept", "reject"):
        for klass in ("array", "object", "number", "string", "structure"):
            assert (outcome, klass) in classes
    assert {c.klass for c in CASES if c.outcome == "defined"} >= {
        "number", "string", "structure", "object"}
