"""Every CSV conformance case (csv_cases.py) through ``transform``, as its outcome says.

Each accepted case runs with an all-string schema (values back exactly) and with inferred types
(values equal as numbers), at the default block size and at a 3-byte one (every record cut
across reads), alone and between two neighbour records (which must come back untouched).
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from csv_cases import CASES, CsvCase

from engine import transform
from engine.errors import EngineError

#: Text pyarrow reads as null in a column that is not a string (chunkwise's default).
NULL_MARKERS = frozenset(pacsv.ConvertOptions().null_values)
TINY_BLOCK = 3
#: A number written with a zero before another digit: its text is the value (08123, 01.5).
LEADING_ZERO = r"^\s*[+-]?0[0-9]"
NEIGHBOUR = "neighbour"

ACCEPTED = [c for c in CASES if c.outcome == "accept"]
REJECTED = [c for c in CASES if c.outcome == "reject"]
FAILING = [c for c in CASES if c.outcome == "error"]
DEFINED = [c for c in CASES if c.outcome == "defined"]


def ids(case: CsvCase) -> str:
    return case.id


def rfc_rows(case: CsvCase) -> list[list[str]]:
    """The case as Python's csv module reads it (RFC 4180, any line ending, BOM dropped)."""
    text = case.data.decode("utf-8-sig")
    return [row for row in csv.reader(io.StringIO(text, newline=""),
                                      delimiter=case.options.get("delimiter", ","))]


def names_of(case: CsvCase) -> list[str]:
    assert case.expected is not None
    return case.names or case.expected[0]


def string_schema(case: CsvCase) -> pa.Schema:
    return pa.schema([(name, pa.string()) for name in names_of(case)])


def convert(tmp_path: Path, case: CsvCase, data: bytes, **options: Any) -> tuple[Any, list]:
    src = tmp_path / "in.csv"
    src.write_bytes(data)
    out = tmp_path / "out.parquet"
    report = transform(str(src), str(out), rejects_uri=str(tmp_path / "rejects.ndjson"),
                       **case.options, **options)
    assert report.rows_in == report.rows_out + report.rows_rejected, report
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == report.rows_out
    return report, [list(r.values()) for r in rows]


def same_as_number(expected: str, value: Any) -> bool:
    """``value`` (as inferred) is what the text ``expected`` says (a leading zero is data)."""
    if re.match(LEADING_ZERO, expected):
        return value == expected
    if value is None:
        return expected in NULL_MARKERS
    if isinstance(value, bool):
        return expected.strip().lower() == str(value).lower()
    if isinstance(value, int | float):
        number = float(expected)
        return number == value or (math.isnan(number) and math.isnan(value))
    return expected == value


def header_end(data: bytes) -> tuple[int, bytes]:
    """Where the header record ends (its first line break outside quotes), and that break."""
    inside = False
    for i, byte in enumerate(data):
        if byte == ord('"'):
            inside = not inside
        elif not inside and byte in b"\r\n":
            if data[i:i + 2] == b"\r\n":
                return i + 2, b"\r\n"
            return i + 1, bytes([byte])
    return len(data), b"\n"


def with_neighbours(case: CsvCase) -> tuple[bytes, list[str]]:
    """The case's header, a neighbour record, its records, a neighbour record."""
    head_end, newline = header_end(case.data)
    delimiter = case.options.get("delimiter", ",").encode()
    neighbour = [NEIGHBOUR] * len(names_of(case))
    line = delimiter.join(v.encode() for v in neighbour) + newline
    body = case.data[head_end:]
    if not body.endswith((b"\n", b"\r")):
        body += newline
    return case.data[:head_end] + line + body + line, neighbour


# -- the expected values are RFC 4180's ---------------------------------------------------------


@pytest.mark.parametrize("case", [c for c in CASES if c.expected and c.rfc], ids=ids)
def test_expected_values_are_what_rfc_4180_reads(case: CsvCase):
    assert rfc_rows(case) == case.expected


# -- accepted: exact as text, equal as numbers ---------------------------------------------------


@pytest.mark.parametrize("block_size", [None, TINY_BLOCK], ids=["default-block", "tiny-block"])
@pytest.mark.parametrize("case", ACCEPTED, ids=ids)
def test_accepted_case_reads_back_exactly_as_text(tmp_path: Path, case: CsvCase,
                                                  block_size: int | None):
    report, rows = convert(tmp_path, case, case.data, schema=string_schema(case),
                           block_size=block_size)
    assert report.rows_rejected == 0
    assert rows == case.expected[1:]


@pytest.mark.parametrize("block_size", [None, TINY_BLOCK], ids=["default-block", "tiny-block"])
@pytest.mark.parametrize("case", ACCEPTED, ids=ids)
def test_accepted_case_reads_back_equal_with_inferred_types(tmp_path: Path, case: CsvCase,
                                                            block_size: int | None):
    report, rows = convert(tmp_path, case, case.data, block_size=block_size)
    assert report.rows_rejected == 0
    assert [f["name"] for f in report.schema] == names_of(case)
    expected = case.expected[1:]
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        assert all(same_as_number(w, g) for w, g in zip(want, got, strict=True)), (want, got)


@pytest.mark.parametrize("inferred", [False, True], ids=["as-text", "inferred"])
@pytest.mark.parametrize("case", [c for c in ACCEPTED if len(c.expected) > 1], ids=ids)
def test_accepted_case_between_neighbours(tmp_path: Path, case: CsvCase, inferred: bool):
    data, neighbour = with_neighbours(case)
    schema = None if inferred else string_schema(case)
    for block_size in (None, TINY_BLOCK):
        report, rows = convert(tmp_path, case, data, schema=schema, block_size=block_size)
        assert report.rows_rejected == 0
        assert [str(v) for v in rows[0]] == neighbour and [str(v) for v in rows[-1]] == neighbour
        middle = rows[1:-1]
        assert len(middle) == len(case.expected) - 1
        for got, want in zip(middle, case.expected[1:], strict=True):
            assert all(same_as_number(w, g) for w, g in zip(want, got, strict=True)), (want, got)


def test_leading_zeros_are_kept_and_reported(tmp_path: Path):
    case = next(c for c in CASES if c.name == "leading_zeros")
    report, rows = convert(tmp_path, case, case.data)
    assert rows == [["08123", 1], ["00501", 2]]
    assert report.inference == [{"column": "zip", "type": "string", "reason": (
        "values with leading zeros (e.g. '08123'), which a number type would drop")}]


# -- rejected: the bad records named, their neighbours kept --------------------------------------


@pytest.mark.parametrize("block_size", [None, TINY_BLOCK], ids=["default-block", "tiny-block"])
@pytest.mark.parametrize("inferred", [False, True], ids=["as-text", "inferred"])
@pytest.mark.parametrize("case", REJECTED, ids=ids)
def test_ragged_records_are_rejects(tmp_path: Path, case: CsvCase, inferred: bool,
                                    block_size: int | None):
    schema = None if inferred else string_schema(case)
    report, rows = convert(tmp_path, case, case.data, schema=schema, block_size=block_size)
    assert [[str(v) for v in row] for row in rows] == case.expected[1:]
    lines = (tmp_path / "rejects.ndjson").read_text().splitlines()
    assert report.rows_rejected == len(lines) == len(case.rejects)
    assert [int(line.split('"record":')[1].split(",")[0]) for line in lines] == list(case.rejects)
    assert all("fields" in line for line in lines)


# -- not CSV: a typed error, nothing written -----------------------------------------------------


@pytest.mark.parametrize("block_size", [None, TINY_BLOCK], ids=["default-block", "tiny-block"])
@pytest.mark.parametrize("case", FAILING, ids=ids)
def test_malformed_input_is_a_typed_error(tmp_path: Path, case: CsvCase, block_size: int | None):
    src = tmp_path / "in.csv"
    src.write_bytes(case.data)
    with pytest.raises(EngineError) as info:
        transform(str(src), str(tmp_path / "out.parquet"), block_size=block_size, **case.options)
    assert type(info.value).__name__ == case.error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


# -- outside RFC 4180: never a crash -------------------------------------------------------------


@pytest.mark.parametrize("block_size", [None, TINY_BLOCK], ids=["default-block", "tiny-block"])
@pytest.mark.parametrize("case", DEFINED, ids=ids)
def test_implementation_defined_input_never_crashes(tmp_path: Path, case: CsvCase,
                                                    block_size: int | None):
    try:
        report, rows = convert(tmp_path, case, case.data, block_size=block_size)
    except EngineError:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
        assert case.expected is None, "a pinned case must convert"
        return
    if case.expected is not None:
        assert [[str(v) for v in row] for row in rows] == case.expected[1:]
        assert report.rows_in == len(case.expected) - 1
