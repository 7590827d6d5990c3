"""What a JSON record is to the readers (issue 14): an object, valid JSON, typed to keep its data.

Each test pins one fix and failed before it: a top-level ``null`` crashed the process (SIGSEGV in
pyarrow 26's parser) and a ``null`` line became a row of nulls; ``NaN`` converted; a value Arrow
cannot type was a reject; a file of ``{}`` was "no JSON object found"; surrogate escapes in array
values were mis-decoded; a date became a midnight timestamp. Inputs that crashed run in a child
process, so a crash fails the test instead of ending the test run.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine import transform
from engine.config import ReadOptions
from engine.errors import InputFormatError, SchemaError
from engine.readers import scan
from engine.readers.base import Sample
from engine.readers.json_array import JsonArrayReader
from engine.readers.json_common import NotAnObject, loads, not_an_object, parse_json_objects
from engine.readers.ndjson import NdjsonReader

BLOCKS = [None, 16, 3]


def convert(tmp_path: Path, name: str, data: bytes, **kwargs: Any) -> tuple[Any, list, list]:
    """Transform ``data`` (written as ``name``): the report, the rows and the rejects."""
    src = tmp_path / name
    src.write_bytes(data)
    out, rejects = tmp_path / f"{name}.parquet", tmp_path / f"{name}.rejects.ndjson"
    report = transform(str(src), str(out), rejects_uri=str(rejects), **kwargs)
    assert report.rows_in == report.rows_out + report.rows_rejected
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    return report, pq.read_table(out).to_pylist(), lines


def run_cli(tmp_path: Path, name: str, data: bytes, *args: str) -> subprocess.CompletedProcess:
    """``chunkwise transform`` in a child process: a crash is its exit status, not ours."""
    src = tmp_path / name
    src.write_bytes(data)
    return subprocess.run(
        [sys.executable, "-m", "engine.cli.app", "transform", str(src),
         str(tmp_path / f"{name}.parquet"), "--json", "--rejects",
         str(tmp_path / f"{name}.rejects.ndjson"), *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)


def convert_in_child(tmp_path: Path, name: str, data: bytes,
                     block_size: int | None = None) -> tuple[dict, list, list]:
    """:func:`convert` through :func:`run_cli`, for inputs of the classes that crashed pyarrow."""
    done = run_cli(tmp_path, name, data,
                   *(["--block-size", str(block_size)] if block_size else []))
    assert done.returncode == 0, (done.returncode, done.stderr)
    report = json.loads(done.stdout)
    assert report["rows_in"] == report["rows_out"] + report["rows_rejected"]
    rejects = tmp_path / f"{name}.rejects.ndjson"
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    return report, pq.read_table(tmp_path / f"{name}.parquet").to_pylist(), lines


# ---------------------------------------------------------------------------------------------
# 1. No input crashes the process; a record that is not an object is a reject, one way


CRASHED = [  # each was a SIGSEGV (exit 139, nothing on stderr) before the fix, at inference
    ("null.ndjson", b"null\n"),
    ("null-after-bad.ndjson", b'{"a":1}\n{"a":1,}\nnull\n'),
    ("leading-null.ndjson", b'  null\n{"a": 1}\n{"a": 2}\n'),
    ("null-then-object.json", b'[null {"a": 1}]'),
]


@pytest.mark.parametrize("name,data", CRASHED, ids=[c[0] for c in CRASHED])
@pytest.mark.parametrize("schema", [False, True], ids=["inferred", "explicit-schema"])
def test_inputs_that_crashed_pyarrow_end_cleanly(tmp_path: Path, name: str, data: bytes,
                                                 schema: bool):
    args = []
    if schema:
        (tmp_path / "schema.json").write_text('{"a": "int64"}')
        args = ["--schema", str(tmp_path / "schema.json")]
    done = run_cli(tmp_path, name, data, *args)
    assert done.returncode in (0, 65), (done.returncode, done.stderr)
    report = json.loads(done.stdout)
    if done.returncode == 0:
        assert report["rows_in"] == report["rows_out"] + report["rows_rejected"]
        assert report["rows_rejected"] >= 1
    else:
        assert report["error"]["type"] in ("InputFormatError", "SchemaError")
    if name == "null.ndjson" and not schema:
        assert report["error"]["message"].endswith(
            "1 record sampled, none a JSON object (record 1: not a JSON object: a top-level null)")


def test_parse_refuses_input_that_does_not_start_with_an_object():
    """Run in a child: before the guard, this call killed the interpreter."""
    code = ("from engine.readers.json_common import NotAnObject, parse_json_objects\n"
            "for data in (b'null', b' null\\n{}', b'\\tnull\\n\\n', b'1\\nnull'):\n"
            "    try:\n"
            "        parse_json_objects(data, None)\n"
            "    except NotAnObject:\n"
            "        pass\n"
            "    else:\n"
            "        raise SystemExit(f'parsed {data!r}')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr)
    with pytest.raises(NotAnObject):
        parse_json_objects(b'"x"\n{"a": 1}', None)
    assert parse_json_objects(b'\n  {"a": 1}\n', None).num_rows == 1


#: The child of the probe: reads each input every way, saying which it starts; the parent
#: notes the one a crash ends the child on, and starts a new child after it.
PROBE = r"""
import io, json, sys

import pyarrow as pa

from engine.config import ReadOptions
from engine.errors import EngineError
from engine.readers.base import Sample
from engine.readers.json_array import JsonArrayReader
from engine.readers.ndjson import NdjsonReader

for n, text in json.loads(sys.stdin.read()):
    print(n, flush=True)
    text = [t.encode() for t in text]
    lines = b"\n".join(text) + b"\n"
    array = b"[" + b",".join(text) + b"]"
    for reader, data in ((NdjsonReader, lines), (JsonArrayReader, array)):
        for schema in (None, pa.schema([("a", pa.int64())])):
            r = reader("probe", ReadOptions())
            try:
                s = schema or r.infer_schema([Sample(data, True, True)])
                for chunk in r.read(io.BytesIO(data), s, widen="continue"):
                    assert chunk.records == chunk.table.num_rows + len(chunk.rejects)
            except EngineError:
                pass
print("done", flush=True)
"""

#: Top-level values of every kind, and a few that are not JSON.
ATOMS = ["null", " null", "1", "-1.5", '"x"', "true", "false", "[1]", "[]", "[null]", "{}",
         '{"a": 1}', '{"a": null}', '{"b": {}}', '{"a": 1,}', "nul", "NaN", '{"a": NaN}']


def probe(inputs: list[list[str]]) -> list[list[str]]:
    """The inputs that crash a process reading them every way (each read in a child)."""
    crashed, todo = [], list(enumerate(inputs))
    while todo:
        done = subprocess.run([sys.executable, "-c", PROBE], input=json.dumps(todo),
                              capture_output=True, text=True, timeout=1200)
        said = done.stdout.split()
        if said[-1:] == ["done"]:
            assert done.returncode == 0, done.stderr[-2000:]
            break
        assert done.returncode < 0 and said, (done.returncode, done.stderr[-2000:])
        last = int(said[-1])  # the input the child died on
        crashed.append(inputs[last])
        todo = [(n, text) for n, text in todo if n > last]
    return crashed


def test_probe_every_top_level_value_alone_and_in_pairs():
    """Every one- and two-record input of :data:`ATOMS`, read every way: none crashes.

    NDJSON lines and JSON-array elements, inferred and with an explicit schema. Before the fix
    60 of these 342 inputs crashed the process in pyarrow 26.0.1: a ``null`` first, or a
    ``null`` after a record pyarrow refused (retried line by line, the ``null`` came alone).
    """
    inputs = [[a] for a in ATOMS] + [[a, b] for a in ATOMS for b in ATOMS]
    assert probe(inputs) == []


NOT_OBJECTS = [(b"null", "null"), (b"4", "number"), (b"-1.5e3", "number"), (b'"x"', "string"),
               (b"true", "boolean"), (b"false", "boolean"), (b"[1]", "array"), (b"[]", "array"),
               (b" null ", "null")]


@pytest.mark.parametrize("block_size", [None, 3])
def test_every_top_level_non_object_line_is_a_reject(tmp_path: Path, block_size: int | None):
    """Before: ``null`` was a row of nulls (or a crash), ``4`` and ``"x"`` were rejects."""
    lines = [b'{"a": 1}']
    for text, _ in NOT_OBJECTS:
        lines += [text, b'{"a": 2}']
    data = b"\n".join(lines) + b"\n"
    report, rows, rejects = convert_in_child(tmp_path, "mixed.ndjson", data, block_size)
    assert rows == [{"a": 1}] + [{"a": 2}] * len(NOT_OBJECTS)
    assert [(r["record"], r["reason"]) for r in rejects] == [
        (2 * i + 2, f"not a JSON object: a top-level {kind}")
        for i, (_, kind) in enumerate(NOT_OBJECTS)]
    assert [r["offset"] for r in rejects][:2] == [9, data.index(b"\n4\n") + 1]


@pytest.mark.parametrize("block_size", [None, 3])
def test_non_objects_among_array_objects_are_rejects_the_same_way(tmp_path: Path,
                                                                  block_size: int | None):
    elements = [b'{"a": 1}']
    for text, _ in NOT_OBJECTS:
        elements += [text, b'{"a": 2}']
    report, rows, rejects = convert_in_child(tmp_path, "mixed.json",
                                             b"[" + b",".join(elements) + b"]", block_size)
    assert rows == [{"a": 1}] + [{"a": 2}] * len(NOT_OBJECTS)
    assert [(r["record"], r["reason"]) for r in rejects] == [
        (2 * i + 2, f"not a JSON object: a top-level {kind}")
        for i, (_, kind) in enumerate(NOT_OBJECTS)]


@pytest.mark.parametrize("line", [b'{"a": 2} {"a": 3}', b'{"a": 2}{"a": 3}', b'{"a": 2} null'])
@pytest.mark.parametrize("block_size", [None, 3])
def test_a_line_holding_two_values_is_a_reject(tmp_path: Path, line: bytes,
                                               block_size: int | None):
    """Before: ``{"a": 2} {"a": 3}`` on one line wrote two rows for one record (and a null
    row for ``{"a": 2} null``)."""
    data = b'{"a": 1}\n' + line + b'\n{"a": 4}\n'
    report, rows, rejects = convert(tmp_path, "two.ndjson", data, block_size=block_size)
    assert rows == [{"a": 1}, {"a": 4}] and report.rows_in == 3
    assert [r["record"] for r in rejects] == [2]
    assert rejects[0]["reason"].startswith("invalid JSON: Extra data")


def test_many_non_object_lines_among_many_records(tmp_path: Path):
    rng = random.Random(14)
    lines, expected, bad = [], [], []
    for n in range(1, 3001):
        if rng.random() < 0.2:
            lines.append(rng.choice([b"null", b"1", b'"s"', b"[]", b"  null"]))
            bad.append(n)
        else:
            lines.append(b'{"n": %d}' % n)
            expected.append({"n": n})
    report, rows, rejects = convert_in_child(tmp_path, "many.ndjson",
                                             b"\n".join(lines) + b"\n", 4096)
    assert rows == expected
    assert [r["record"] for r in rejects] == bad


def test_scan_lines_matches_a_line_by_line_reference(monkeypatch: pytest.MonkeyPatch):
    rng = random.Random(5)
    alphabet = [b'{"a": 1}', b"[1]", b"null", b" {}", b"", b"\r", b"x", b"{", b"["]
    for _ in range(1500):
        data = b"\n".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 12)))
        data += rng.choice([b"", b"\n"])
        lines = data.split(b"\n") if data else []
        if data.endswith(b"\n"):
            lines.pop()
        plain = all(line[:1] in (b"{", b"[") for line in lines)
        for slice_bytes in (scan.SCAN_SLICE, rng.randrange(1, 9)):
            monkeypatch.setattr(scan, "SCAN_SLICE", slice_bytes)
            monkeypatch.setattr(scan, "FILTER_BLOCK", rng.choice([8, 16, 1024]))
            found = scan.scan_lines(np.frombuffer(data, np.uint8), 48)
            assert (found.plain, found.lines) == (plain, len(lines)), data
        monkeypatch.undo()


def test_split_lines_matches_a_line_by_line_reference():
    """The records of an NDJSON piece and those that are not objects, whitespace and all."""
    from engine.readers import ndjson

    rng = random.Random(9)
    for _ in range(5000):
        data = bytes(rng.choice(b' \t\r\n{x[n') for _ in range(rng.randrange(0, 24)))
        starts, ends, odd, pos = [], [], [], 0
        for line in data.split(b"\n"):
            text = line.lstrip(b" \t\r")
            if text:
                if text[:1] != b"{":
                    odd.append(len(starts))
                starts.append(pos)
                ends.append(pos + len(line))
            pos += len(line) + 1
        got = ndjson._split_lines(data)
        assert (got[0].tolist(), got[1].tolist(), got[2]) == (starts, ends, odd), data
    indented = b" " * 100 + b'{"a": 1}\n' + b"\t" * 70 + b"null"
    assert ndjson._split_lines(indented)[2] == [1]


def test_not_an_object_says_what_the_record_holds():
    assert not_an_object(b"null") == "not a JSON object: a top-level null"
    assert not_an_object(b"[1, 2]") == "not a JSON object: a top-level array"
    assert not_an_object(b"nul").startswith("invalid JSON")
    assert not_an_object(b"[" + b"1," * 600_000 + b"1]") == (
        "not a JSON object: a top-level array")


# ---------------------------------------------------------------------------------------------
# 2. NaN and Infinity are not JSON


NONFINITE = [b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"Inf", b"+Infinity", b"nan", b"inf",
             b"[1.5, NaN]", b'{"x": Infinity}']


@pytest.mark.parametrize("block_size", BLOCKS)
@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_nan_and_infinity_are_rejects_on_every_path(tmp_path: Path, fmt: str,
                                                    block_size: int | None):
    """Before: ``NaN`` and ``-NaN`` converted as nan on the pyarrow path."""
    records = [b'{"a": 1.5}'] + [b'{"a": %s}' % t for t in NONFINITE] + [b'{"a": 2.5}']
    data = (b"\n".join(records) + b"\n") if fmt == "ndjson" else (
        b"[" + b",\n".join(records) + b"]")
    report, rows, rejects = convert(tmp_path, f"nan.{fmt}", data, block_size=block_size)
    assert rows == [{"a": 1.5}, {"a": 2.5}]
    assert [r["record"] for r in rejects] == list(range(2, 2 + len(NONFINITE)))
    assert all(r["reason"].startswith("invalid JSON") for r in rejects), rejects
    assert "NaN is not JSON" in rejects[0]["reason"]


def test_nan_does_not_type_a_column_at_inference(tmp_path: Path):
    report, rows, rejects = convert(tmp_path, "n.ndjson", b'{"a": 1}\n{"a": NaN}\n{"a": 3}\n')
    assert report.schema == [{"name": "a", "type": "int64"}]
    assert rows == [{"a": 1}, {"a": 3}] and [r["record"] for r in rejects] == [2]


# ---------------------------------------------------------------------------------------------
# 3. A value Arrow cannot type is JSON text in its column (see also test_ndjson_reader.py)


@pytest.mark.parametrize("block_size", BLOCKS)
def test_untypeable_values_widen_their_column_in_every_batch(tmp_path: Path,
                                                             block_size: int | None):
    """Before: a reject in a small file, text in a larger batch, "no JSON object" alone."""
    values = [[1, "x"], [[1], ["z"]], [1, 2], [{"k": 1}, {"k": [1, "y"]}]]
    data = b"".join(json.dumps({"id": i, "v": v}).encode() + b"\n" for i, v in enumerate(values))
    report, rows, rejects = convert(tmp_path, "u.ndjson", data, block_size=block_size)
    assert rejects == []
    assert report.schema[1] == {"name": "v", "type": "string"}
    assert [json.loads(r["v"]) for r in rows] == values


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
@pytest.mark.parametrize("block_size", BLOCKS)
def test_empty_lists_do_not_make_a_list_column_text(tmp_path: Path, fmt: str,
                                                    block_size: int | None):
    """An empty list (or ``[null]``) says nothing of its items: the next list types them."""
    rows = [{"id": 0, "n": []}, {"id": 1, "n": [None]}, {"id": 2, "n": [0]},
            {"id": 3, "s": {"t": None}}, {"id": 4, "s": {"t": 1.5}}]
    data = (b"".join(json.dumps(r).encode() + b"\n" for r in rows) if fmt == "ndjson"
            else json.dumps(rows).encode())
    report, got, rejects = convert(tmp_path, f"e.{fmt}", data, block_size=block_size)
    assert rejects == []
    assert {f["name"]: f["type"] for f in report.schema} == {
        "id": "int64", "n": "list<item: int64>", "s": "struct<t: double>"}
    assert [r["n"] for r in got] == [[], [None], [0], None, None]


def test_a_record_with_too_many_keys_is_still_a_reject(tmp_path: Path):
    wide = json.dumps({f"k{i}": i for i in range(6000)}).encode()
    report, rows, rejects = convert(tmp_path, "w.ndjson", b'{"a": 1}\n' + wide + b'\n{"a": 2}\n')
    assert rows == [{"a": 1}, {"a": 2}] and [r["record"] for r in rejects] == [2]


# ---------------------------------------------------------------------------------------------
# 4. A file that gives no column says what it found


@pytest.mark.parametrize("data,error,words", [
    (b"{}\n", SchemaError, "the 1 record sampled is {}"),
    (b"{}\n{}\n", SchemaError, "the 2 records sampled are {}"),
    (b'{}\n{"a": 1, "a": 2}\n', SchemaError, "1 of the 2 records sampled are {}"),
    (b'{"a": 1, "a": 2}\n', SchemaError, "record 1: invalid JSON: duplicate key 'a'"),
    (b'{"a": NaN}\n', SchemaError, "NaN is not JSON"),
    (b"1\n2\n", InputFormatError, "2 records sampled, none a JSON object"),
    (b"", InputFormatError, "no JSON object found in the input"),
])
def test_no_column_is_a_typed_error_saying_what_was_found(tmp_path: Path, data: bytes,
                                                          error: type, words: str):
    """Before: every one of these was "no JSON object found in the input"."""
    src = tmp_path / "in.ndjson"
    src.write_bytes(data)
    with pytest.raises(error) as info:
        transform(str(src), str(tmp_path / "out.parquet"))
    assert words in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ndjson"]


@pytest.mark.parametrize("data,error", [(b"[{}]", SchemaError),
                                        (b'[{"a": 1, "a": 2}]', SchemaError),
                                        (b"[tru]", InputFormatError)])
def test_an_array_that_gives_no_column_is_the_same_error(tmp_path: Path, data: bytes,
                                                         error: type):
    src = tmp_path / "in.json"
    src.write_bytes(data)
    with pytest.raises(error):
        transform(str(src), str(tmp_path / "out.parquet"))


# ---------------------------------------------------------------------------------------------
# 5. Surrogate escapes: a pair is its character, a lone surrogate a reject, on every path


SURROGATES = [(r'"\uD888\u1234"', None), (r'"\uD800\uD800"', None), (r'"\uD800"', None),
              (r'"\uDC00"', None), (r'"\uDE00\uD83D"', None), (r'"a\uD800b"', None),
              (r'"\uD83D\uDE00"', "\U0001F600"), (r'"\ud834\udd1e"', "\U0001D11E"),
              (r'"\\uD800"', "\\uD800")]


@pytest.mark.parametrize("form", ["array-values", "array-objects", "ndjson"])
@pytest.mark.parametrize("block_size", [None, 3])
def test_surrogate_escapes_decode_as_json_says(tmp_path: Path, form: str,
                                               block_size: int | None):
    """Before: array values decoded "\\uD888\\u1234" as U+32234, a lone one as "?"."""
    texts = [t.encode() for t, _ in SURROGATES]
    if form == "array-values":
        name, data, key = "s.json", b"[" + b", ".join(texts) + b"]", "value"
    elif form == "array-objects":
        name, data, key = "s.json", b"[" + b", ".join(b'{"v": %s}' % t for t in texts) + b"]", "v"
    else:
        name, data, key = "s.ndjson", b"".join(b'{"v": %s}\n' % t for t in texts), "v"
    report, rows, rejects = convert(tmp_path, name, data, block_size=block_size)
    assert [r[key] for r in rows] == [v for _, v in SURROGATES if v is not None]
    assert [r["record"] for r in rejects] == [i + 1 for i, (_, v) in enumerate(SURROGATES)
                                              if v is None]
    assert all("lone surrogate" in r["reason"] for r in rejects), rejects


def test_loads_decodes_pairs_and_refuses_lone_surrogates():
    assert loads(b'"\\ud83d\\ude00"') == "\U0001F600"
    assert loads(b'{"k\\ud83d\\ude00": 1}') == {"k\U0001F600": 1}
    for text in (b'"\\ud800"', b'{"\\udc00": 1}', b'["\\ud888\\u1234"]'):
        with pytest.raises(ValueError, match="lone surrogate"):
            loads(text)


# ---------------------------------------------------------------------------------------------
# 7. Dates are dates


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
@pytest.mark.parametrize("block_size", [None, 16])
def test_date_only_values_infer_as_date32(tmp_path: Path, fmt: str, block_size: int | None):
    """Before: "1970-01-01" became timestamp[s] 1970-01-01 00:00:00."""
    rows = [{"d": "1970-01-01", "m": "2020-02-29", "t": "2020-02-29 00:00:00",
             "s": {"e": "2001-02-03"}, "l": ["1999-12-31"]},
            {"d": "2024-12-31", "m": "2020-03-01T05:06:07", "t": "2021-01-01 00:00:00",
             "s": {"e": None}, "l": []}]
    data = (b"".join(json.dumps(r).encode() + b"\n" for r in rows) if fmt == "ndjson"
            else json.dumps(rows).encode())
    report, got, rejects = convert(tmp_path, f"d.{fmt}", data, block_size=block_size)
    types = {f["name"]: f["type"] for f in report.schema}
    assert types == {"d": "date32[day]", "m": "timestamp[s]", "t": "timestamp[s]",
                     "s": "struct<e: date32[day]>", "l": "list<item: date32[day]>"}
    assert [r["d"] for r in got] == [dt.date(1970, 1, 1), dt.date(2024, 12, 31)]
    assert [r["m"] for r in got] == [dt.datetime(2020, 2, 29), dt.datetime(2020, 3, 1, 5, 6, 7)]
    assert got[0]["s"] == {"e": dt.date(2001, 2, 3)} and got[0]["l"] == [dt.date(1999, 12, 31)]


def test_a_column_that_turns_to_timestamps_later_widens(tmp_path: Path):
    data = b'{"d": "1970-01-01"}\n{"d": "1970-01-02"}\n{"d": "1970-01-03T04:05:06"}\n'
    report, rows, _ = convert(tmp_path, "late.ndjson", data, sample_bytes=20, block_size=16)
    assert report.schema == [{"name": "d", "type": "timestamp[s]"}]
    assert rows[2] == {"d": dt.datetime(1970, 1, 3, 4, 5, 6)}


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_an_explicit_date32_schema_reads_date_strings(tmp_path: Path, fmt: str):
    """Before: pyarrow read a date32 field from a JSON number of days, and refused the text."""
    rows = [{"d": "1970-01-01"}, {"d": "2020-02-29"}, {"d": None}]
    data = (b"".join(json.dumps(r).encode() + b"\n" for r in rows) if fmt == "ndjson"
            else json.dumps(rows).encode())
    schema = pa.schema([("d", pa.date32())])
    _, got, _ = convert(tmp_path, f"e.{fmt}", data, schema=schema)
    assert [r["d"] for r in got] == [dt.date(1970, 1, 1), dt.date(2020, 2, 29), None]
    src = tmp_path / f"bad.{fmt}"
    src.write_bytes(b'{"d": "2020-02-30"}\n' if fmt == "ndjson" else b'[{"d": 18000}]')
    with pytest.raises(SchemaError):
        transform(str(src), str(tmp_path / "bad.parquet"), schema=schema)


def test_csv_dates_stay_date32(tmp_path: Path):
    data = b"d,e\n1970-01-01,1970-01-01\n2020-02-29,2020-02-29T05:00:00\n"
    report, rows, _ = convert(tmp_path, "d.csv", data)
    assert report.schema == [{"name": "d", "type": "date32[day]"},
                             {"name": "e", "type": "timestamp[s]"}]


def test_reader_level_dates_and_value_arrays():
    reader = NdjsonReader("mem.ndjson", ReadOptions())
    schema = reader.infer_schema([Sample(b'{"d": "1970-01-01"}\n', True, True)])
    assert schema == pa.schema([("d", pa.date32())])
    chunks = list(reader.read(io.BytesIO(b'{"d": "1970-01-02"}\n'), schema))
    assert chunks[0].table.column("d").to_pylist() == [dt.date(1970, 1, 2)]
    arrays = JsonArrayReader("mem.json", ReadOptions())
    assert arrays.infer_schema([Sample(b'[{"d": "1970-01-01"}]', True, True)]) == schema
