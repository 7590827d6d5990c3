"""Property tests: whatever the standard library writes, the Parquet reads back equal."""

from __future__ import annotations

import csv
import io
import json
import string
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.run import transform

text = st.text(
    alphabet=st.sampled_from(list(string.ascii_letters + string.digits + ' ,;"\'\\[]{}\n\r\t')
                             + ["é", "日", "€", "😀"]),
    min_size=1, max_size=12,
)
cells = st.one_of(st.integers(-(2**40), 2**40), text)
names = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=5,
                 unique=True)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def tables(draw, value=cells):
    cols = draw(names)
    kinds = {c: draw(st.sampled_from(["int", "text"])) for c in cols}
    strategy = {"int": st.integers(-(2**40), 2**40), "text": text}
    rows = draw(st.lists(st.fixed_dictionaries({c: strategy[kinds[c]] for c in cols}),
                         min_size=1, max_size=40))
    return cols, kinds, rows


def _expected(cols, kinds, rows):
    """Text that looks like a number is read as one; compare the way a reader would."""
    return [{c: row[c] for c in cols} for row in rows]


@SETTINGS
@given(data=tables(), block=st.sampled_from([64, 257, 1 << 20]))
def test_csv_round_trip(tmp_path: Path, data, block):
    terminator = "\r\n"
    cols, kinds, rows = data
    rows = [{c: (str(v) if kinds[c] == "text" else v) for c, v in r.items()} for r in rows]
    # A text column whose values all look like numbers, bools or nulls is read as such; keep
    # text columns unambiguous by prefixing a letter.
    rows = [{c: (f"x{v}" if kinds[c] == "text" else v) for c, v in r.items()} for r in rows]
    buf = io.StringIO()
    # "\r\n" makes the writer quote any value holding a CR (with "\n" it leaves a bare CR
    # unquoted, which every CSV reader takes for a line break).
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator=terminator)
    writer.writeheader()
    writer.writerows(rows)
    src = tmp_path / "in.csv"
    src.write_bytes(buf.getvalue().encode("utf-8"))
    report = transform(str(src), str(tmp_path / "out.parquet"), block_size=block)
    got = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert report.rows_in == report.rows_out == len(rows)
    assert got == _expected(cols, kinds, rows)


@SETTINGS
@given(data=tables(), block=st.sampled_from([64, 257, 1 << 20]), layout=st.sampled_from(
    ["ndjson", "array", "pretty"]))
def test_json_round_trip(tmp_path: Path, data, block, layout):
    cols, kinds, rows = data
    if layout == "ndjson":
        body = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"
        src = tmp_path / "in.ndjson"
    else:
        body = json.dumps(rows, ensure_ascii=False, indent=2 if layout == "pretty" else None)
        src = tmp_path / "in.json"
    src.write_text(body, encoding="utf-8")
    report = transform(str(src), str(tmp_path / "out.parquet"), block_size=block)
    got = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert report.rows_in == report.rows_out == len(rows)
    assert got == _expected(cols, kinds, rows)
