"""Null markers apply on every path, and every reject carries its own record's offset (issue 19).

A CSV chunk whose values all fit the contract is parsed typed (pyarrow reads the null markers);
one holding a single misfit is parsed with the contract's columns as text and converted by the
validator. Both must judge a value the same way: whatever else is in its chunk. Every reject, of
every check, names its record and the byte offset where that record's text starts (for a Map
part, in the whole object). The README's and docs/contracts.md's words on both are quoted and
checked as written.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.run import RunReport, transform

ROOT = Path(__file__).resolve().parents[3]
#: pyarrow's own null markers, read as null in non-string columns when null_values is unset.
DEFAULT_MARKERS = tuple(pacsv.ConvertOptions().null_values)


def contract(path: Path, fmt: str, columns: str, *, null_values: list[str] | None = None,
             extra: str = "") -> Path:
    options = "" if null_values is None else f"options:\n  null_values: {json.dumps(null_values)}\n"
    text = (f"dataset: t\nformat: {fmt}\n{options}columns:\n"
            + textwrap.indent(textwrap.dedent(columns).strip(), "  ")
            + "\nrejects:\n  path: _rejects/\n  max_ratio: 1.0\n" + extra)
    path.write_text(text)
    return path


def run(src: Path, spec: Path, **kwargs: Any) -> tuple[RunReport, list[dict[str, Any]], pa.Table]:
    out = src.parent / f"out-{src.stem}/"
    report = transform(str(src), str(out) + "/", contract=str(spec), **kwargs)
    assert report.rows_in == report.rows_out + report.rows_rejected + report.rows_filtered
    lines = Path(report.rejects["uri"]).read_text().splitlines()
    rejects = sorted((json.loads(line) for line in lines), key=lambda r: r["record"])
    tables = [pq.read_table(f["uri"]) for f in report.files]
    table = pa.concat_tables(tables) if tables else pa.table({})
    return report, rejects, table


def csv_text(header: str, rows: list[str], newline: str = "\n") -> tuple[bytes, list[int]]:
    """The file's bytes and each row's byte offset."""
    data = (header + newline).encode()
    offsets = []
    for row in rows:
        offsets.append(len(data))
        data += (row + newline).encode()
    return data, offsets


# -- the example ------------------------------------------------------------------------


def test_one_bad_value_rejects_one_record_at_its_own_offset(tmp_path: Path):
    src = tmp_path / "e5.csv"
    src.write_bytes(b"id,v,w\n1,2.5,\n2,,5\n3,x,\n4,NA,7\n")
    spec = contract(tmp_path / "e5.yaml", "csv", """
        id: {type: int64}
        v: {type: double}
        w: {type: int32}
    """)
    report, rejects, table = run(src, spec)
    assert report.status == "succeeded"
    assert [(r["record"], r["offset"], r["column"], r["check"], r["raw"]) for r in rejects] == [
        (3, 19, "v", "type", "x")]
    assert table.to_pydict() == {"id": [1, 2, 4], "v": [2.5, None, None], "w": [None, 5, 7]}


# -- null markers: the same judgement on every path ---------------------------------------------

TYPED = """
    id: {type: int64}
    d: {type: double}
    i: {type: int32, nullable: true}
    b: {type: bool}
    m: {type: "decimal128(8, 2)"}
    t: {type: "timestamp[s]", formats: ["%Y-%m-%d %H:%M:%S"]}
    s: {type: string}
    l: {type: large_string}
"""


@pytest.mark.parametrize("marker", DEFAULT_MARKERS)
@pytest.mark.parametrize("bad", [False, True])
def test_default_markers_are_null_in_typed_columns_whatever_the_chunk(tmp_path: Path,
                                                                      marker: str, bad: bool):
    # "Unset: pyarrow's defaults (`""`, `NA`, `NULL`, `NaN`... for non-string columns only)."
    rows = [f"1,{marker},{marker},{marker},{marker},{marker},{marker},{marker}",
            "2,1.5,3,true,1.25,2025-01-01 00:00:00,x,x"]
    if bad:  # a misfit in the same chunk: the reader's text fallback
        rows.append("3,oops,1,false,2.00,2025-01-01 00:00:00,y,y")
    data, offsets = csv_text("id,d,i,b,m,t,s,l", rows)
    src = tmp_path / "m.csv"
    src.write_bytes(data)
    report, rejects, table = run(src, contract(tmp_path / "c.yaml", "csv", TYPED))
    assert [(r["record"], r["offset"]) for r in rejects] == ([(3, offsets[2])] if bad else [])
    first = table.slice(0, 1).to_pylist()[0]
    assert first == {"id": 1, "d": None, "i": None, "b": None, "m": None, "t": None,
                     "s": marker, "l": marker}  # "for non-string columns only": text kept


@pytest.mark.parametrize("bad", [False, True])
def test_contract_null_values_apply_to_string_columns_too_whatever_the_chunk(tmp_path: Path,
                                                                           bad: bool):
    # "Strings read as null, in string columns too."
    rows = ["1,-,-,-", "2,NA,2.5,NA"]
    if bad:
        rows.append("3,x,oops,x")
    data, offsets = csv_text("id,s,d,c", rows)
    src = tmp_path / "n.csv"
    src.write_bytes(data)
    spec = contract(tmp_path / "c.yaml", "csv", """
        id: {type: int64}
        s: {type: string}
        d: {type: double}
        c: {type: dictionary}
    """, null_values=["-"])
    report, rejects, table = run(src, spec)
    assert [(r["record"], r["offset"], r["check"]) for r in rejects] == (
        [(3, offsets[2], "type")] if bad else [])
    assert table.column("s").to_pylist()[:2] == [None, "NA"]
    assert table.column("d").to_pylist()[:2] == [None, 2.5]
    assert table.column("c").to_pylist()[:2] == [None, "NA"]


def test_nan_text_is_a_null_marker_in_the_fallback_as_in_the_typed_parse(tmp_path: Path):
    data, _ = csv_text("id,d", ["1,nan", "2,NaN", "3,x", "4,inf"])
    src = tmp_path / "nan.csv"
    src.write_bytes(data)
    report, rejects, table = run(src, contract(tmp_path / "c.yaml", "csv", """
        id: {type: int64}
        d: {type: double}
    """))
    assert [r["record"] for r in rejects] == [3]
    assert table.column("d").to_pylist() == [None, None, float("inf")]


@pytest.mark.parametrize("bad", [False, True])
def test_a_marker_in_a_non_nullable_column_is_a_nullable_reject(tmp_path: Path, bad: bool):
    # "A null (or a `null_values` marker) is accepted; `false` rejects the row."
    rows = ["1,NULL", "2,5"] + (["3,x"] if bad else [])
    data, offsets = csv_text("id,v", rows)
    src = tmp_path / "nn.csv"
    src.write_bytes(data)
    report, rejects, _ = run(src, contract(tmp_path / "c.yaml", "csv", """
        id: {type: int64}
        v: {type: int64, nullable: false}
    """))
    assert [(r["record"], r["offset"], r["check"]) for r in rejects] == (
        [(1, offsets[0], "nullable")] + ([(3, offsets[2], "type")] if bad else []))


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_json_null_and_a_missing_key_are_nulls_beside_a_type_error(tmp_path: Path, fmt: str):
    records = ['{"id": 1, "v": null}', '{"id": 2}', '{"id": 3, "v": "x"}', '{"id": 4, "v": 2}']
    if fmt == "ndjson":
        data = "".join(r + "\n" for r in records).encode()
    else:
        data = ("[\n" + ",\n".join(records) + "\n]\n").encode()
    src = tmp_path / f"j.{fmt}"
    src.write_bytes(data)
    report, rejects, table = run(src, contract(tmp_path / "c.yaml", fmt, """
        id: {type: int64}
        v: {type: double}
    """))
    assert [(r["record"], r["offset"]) for r in rejects] == [(3, data.index(records[2].encode()))]
    assert table.column("v").to_pylist() == [None, None, 2.0]


# -- offsets: every check, every format ---------------------------------------------------------

CHECKS = """
    id: {type: int64, unique: true}
    n: {type: int32, nullable: false, min: 1, max: 10}
    s: {type: string, in: [a, b], max_length: 1}
    c: {type: string, regex: "^[A-Z]+$"}
"""
#: One record per check (and the reader's own) among good ones, as (id, n, s, c) or raw text.
RECORDS: list[tuple[Any, ...] | str] = [
    (1, 5, "a", "X"), (2, "x", "a", "X"), (3, None, "a", "X"), (4, 0, "a", "X"),
    (5, 11, "a", "X"), (6, 5, "c", "X"), (7, 5, "a", "x1"), (8, 5, "a", "X"),
    (1, 5, "b", "Y"), (9, 5, "a\nb", "X"), (10, 5, "a", "X"),
]
EXPECTED = {2: "type", 3: "nullable", 4: "min", 5: "max", 6: "in", 7: "regex", 9: "unique",
            10: "in"}


def render(fmt: str, rows: list[tuple[Any, ...] | str], *, crlf: bool = False
           ) -> tuple[bytes, list[int]]:
    """The file for ``rows`` in ``fmt`` and each record's offset."""
    nl = "\r\n" if crlf else "\n"
    texts = []
    for row in rows:
        if isinstance(row, str):
            texts.append(row)
        elif fmt == "csv":
            fields = ["" if v is None else str(v) for v in row]
            texts.append(",".join(f'"{v}"' if "\n" in v or "," in v else v for v in fields))
        else:
            texts.append(json.dumps(dict(zip(("id", "n", "s", "c"), row, strict=True))))
    head = {"csv": "id,n,s,c" + nl, "ndjson": "", "json": "[" + nl}[fmt]
    sep = {"csv": nl, "ndjson": nl, "json": "," + nl}[fmt]
    data, offsets = head.encode(), []
    for i, text in enumerate(texts):
        if i and fmt == "json":
            data += sep.encode()
        offsets.append(len(data))
        data += text.encode()
        if fmt != "json":
            data += sep.encode()
    if fmt == "json":
        data += (nl + "]" + nl).encode()
    return data, offsets


@pytest.mark.parametrize("block", [64, 1 << 20])
@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_every_check_rejects_at_its_own_record_offset(tmp_path: Path, fmt: str, block: int):
    rows = list(RECORDS)
    own = "1,5,a,X,extra" if fmt == "csv" else '{"id": 11, "n": 5, "s": "a", "c": "X",}'
    rows.insert(7, own)  # the reader's own reject: a ragged row, invalid JSON
    data, offsets = render(fmt, rows, crlf=fmt == "csv")
    src = tmp_path / f"checks.{fmt}"
    src.write_bytes(data)
    report, rejects, _ = run(src, contract(tmp_path / "c.yaml", fmt, CHECKS),
                             block_size=block)
    expected = {(k if k < 8 else k + 1): check for k, check in EXPECTED.items()}
    expected[8] = "fields" if fmt == "csv" else "json"
    assert {r["record"]: r["check"] for r in rejects} == expected
    for reject in rejects:
        assert reject["offset"] == offsets[reject["record"] - 1], reject


def test_unique_is_judged_among_the_records_written(tmp_path: Path):
    """A repeat of a record rejected for another reason is no duplicate: nothing was written."""
    rows: list[tuple[Any, ...] | str] = [(1, "x", "a", "X"), (1, 5, "a", "X"), (1, 6, "a", "X")]
    data, offsets = render("csv", rows)
    src = tmp_path / "u.csv"
    src.write_bytes(data)
    report, rejects, table = run(src, contract(tmp_path / "c.yaml", "csv", CHECKS))
    assert [(r["record"], r["check"], r["offset"]) for r in rejects] == [
        (1, "type", offsets[0]), (3, "unique", offsets[2])]
    assert table.column("n").to_pylist() == [5]


def test_offsets_of_a_csv_with_blank_lines_and_quoted_breaks(tmp_path: Path):
    data = b'id,n,s,c\n\n1,"5",a,X\n\n\n2,"x\n",a,X\n3,5,"a\n\nb",X\n4,0,a,X\n'
    src = tmp_path / "blank.csv"
    src.write_bytes(data)
    report, rejects, _ = run(src, contract(tmp_path / "c.yaml", "csv", CHECKS))
    assert [(r["record"], r["offset"]) for r in rejects] == [
        (2, data.index(b"2,")), (3, data.index(b"3,")), (4, data.index(b"4,"))]


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_a_map_part_rejects_at_offsets_into_the_whole_object(tmp_path: Path, fmt: str):
    rows: list[tuple[Any, ...] | str] = [(i, 5 if i % 4 else "x", "a", "X") for i in range(1, 41)]
    data, offsets = render(fmt, rows)
    src = tmp_path / f"whole.{fmt}"
    src.write_bytes(data)
    cut = offsets[20]  # the part starts at record 21: after a line break, or after a comma
    start = cut if fmt != "json" else data.rindex(b",", 0, cut) + 1
    options: dict[str, Any] = {"format": fmt, "byte_range": (start, len(data))}
    if fmt == "csv":
        options.update(header=False, column_names=["id", "n", "s", "c"])
    spec = contract(tmp_path / "c.yaml", fmt, CHECKS)
    if fmt == "json":  # the part ends at the array's "]": its elements end at the last one
        options["byte_range"] = (start, data.rindex(b"]"))
    report, rejects, _ = run(src, spec, **options)
    assert [r["offset"] for r in rejects] == [offsets[i - 1] for i in range(21, 41) if i % 4 == 0]


# -- what the docs say, as written --------------------------------------------------------------


def test_the_docs_statements_on_nulls_and_offsets_hold(tmp_path: Path):
    readme = (ROOT / "README.md").read_text()
    contracts = (ROOT / "docs" / "contracts.md").read_text()
    flat = re.sub(r"\s+", " ", contracts)
    quoted = {
        "readme": "a record that cannot be written is a reject, with its number, byte offset "
                  "and reason",
        "null_values": "Strings read as null, in string columns too. Unset: pyarrow's defaults "
                       '(`""`, `NA`, `NULL`, `NaN`... for non-string columns only).',
        "nullable": "A null (or a `null_values` marker) is accepted; `false` rejects the row.",
        "offset": "Each reject in the rejects file names the record, the byte offset where the "
                  "record starts in the decompressed text (for a Map part, in the whole object)",
        "batch": "a value is judged the same way whatever else is in its batch",
        "unique": "`unique` is judged among the records written",
    }
    assert quoted["readme"] in re.sub(r"\s+", " ", readme)
    for key in ("null_values", "nullable", "offset", "batch", "unique"):
        assert quoted[key] in flat, key
    # ... and they hold: markers null in typed columns only (unset), the contract's in string
    # columns too, a marker in a non-nullable column rejected, each reject at its own record.
    data, offsets = csv_text("id,v,s,k", ["1,NA,NA,", "2,,,1", "3,x,,2", "4,NULL,NULL,"])
    src = tmp_path / "docs.csv"
    src.write_bytes(data)
    spec = contract(tmp_path / "a.yaml", "csv", """
        id: {type: int64}
        v: {type: double}
        s: {type: string}
        k: {type: int64, nullable: false}
    """)
    _, rejects, table = run(src, spec)
    assert [(r["record"], r["offset"], r["check"]) for r in rejects] == [
        (1, offsets[0], "nullable"), (3, offsets[2], "type"), (4, offsets[3], "nullable")]
    assert table.to_pydict() == {"id": [2], "v": [None], "s": [""], "k": [1]}
    spec = contract(tmp_path / "b.yaml", "csv", """
        id: {type: int64}
        v: {type: double}
        s: {type: string}
        k: {type: int64}
    """, null_values=["NA", ""])
    _, rejects, table = run(src, spec)
    assert [(r["record"], r["offset"]) for r in rejects] == [(3, offsets[2]), (4, offsets[3])]
    assert table.to_pydict() == {"id": [1, 2], "v": [None, None], "s": [None, None],
                                 "k": [None, 1]}


# -- the invariant, for any table with nulls ----------------------------------------------------

#: A fault per check: (column, text in CSV, JSON value, the check it breaks).
FAULTS = [
    ("n", "x", "x", "type"), ("n", "0", 0, "min"), ("n", "11", 11, "max"),
    ("s", "c", "c", "in"), ("c", "x1", "x1", "regex"), ("k", "", None, "nullable"),
    ("s", "ab", "ab", "max_length"),
]
PROPERTY_CHECKS = """
    id: {type: int64, unique: true}
    n: {type: int32, min: 1, max: 10}
    s: {type: string, in: [a, b, ab], max_length: 1}
    c: {type: string, regex: "^[A-Z]+$"}
    k: {type: double, nullable: false}
"""


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(["csv", "ndjson", "json"]),
       rows=st.lists(st.tuples(st.integers(1, 10) | st.none(),
                               st.sampled_from(["a", "b"]) | st.none(),
                               st.sampled_from(["X", "YZ"]) | st.none()),
                     min_size=1, max_size=80),
       faults=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, len(FAULTS) - 1)),
                       max_size=15),
       marker=st.sampled_from(["", "NA", "NULL", "null", "N/A", "NaN"]),
       given_markers=st.booleans(),
       block=st.sampled_from([40, 256, 1 << 20]))
def test_k_faults_in_a_table_with_nulls_are_exactly_k_rejects(
        tmp_path_factory: pytest.TempPathFactory, fmt: str, rows: list[tuple[Any, ...]],
        faults: list[tuple[int, int]], marker: str, given_markers: bool, block: int):
    """Injecting k faults into any table with nulls yields exactly those k rejects, each at
    its own record's offset, and rows_in = rows_out + rows_rejected."""
    # CSV nulls are the marker: one of pyarrow's defaults (null_values unset: typed columns
    # only, so string columns then hold no nulls) or the contract's null_values.
    null_values = [marker] if fmt == "csv" and given_markers else None
    bad = {where % len(rows): FAULTS[kind] for where, kind in faults}
    records = []
    for i, (n, s, c) in enumerate(rows):
        if fmt == "csv" and null_values is None:
            s, c = s or "a", c or "X"
        values: dict[str, Any] = {"id": i + 1, "n": n, "s": s, "c": c, "k": 1.5}
        if i in bad:
            column, text, value, _ = bad[i]
            values[column] = (marker if value is None else text) if fmt == "csv" else value
        records.append(values)
    texts = []
    for values in records:
        if fmt == "csv":
            texts.append(",".join(marker if value is None else str(value)
                                  for value in values.values()))
        else:
            texts.append(json.dumps(values))
    head, sep = {"csv": ("id,n,s,c,k\n", "\n"), "ndjson": ("", "\n"), "json": ("[", ",")}[fmt]
    data, offsets = head.encode(), []
    for i, text in enumerate(texts):
        offsets.append(len(data))
        data += (text + (sep if fmt != "json" or i < len(texts) - 1 else "")).encode()
    data += b"]" if fmt == "json" else b""
    root = tmp_path_factory.mktemp("prop")
    src = root / f"p.{fmt}"
    src.write_bytes(data)
    spec = contract(root / "c.yaml", fmt, PROPERTY_CHECKS, null_values=null_values)
    report, rejects, _ = run(src, spec, block_size=block)
    assert report.rows_in == len(rows)
    assert report.rows_in == report.rows_out + report.rows_rejected + report.rows_filtered
    assert sorted((r["record"], r["offset"], r["check"]) for r in rejects) == [
        (i + 1, offsets[i], bad[i][3]) for i in sorted(bad)]
