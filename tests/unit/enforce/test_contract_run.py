"""Dataset contracts through ``engine.transform`` / ``engine.enforce.validate`` (issue 3).

The bar: on generated files with known injected faults (``generate(..., dirty=...)``), the
rejects file names exactly the injected records, each with the column and check its fault
breaks; and ``rows_in = rows_out + rows_rejected + rows_filtered`` in every report. Then each
check, the schema policies, the thresholds, every transform step through a real run, the
aggregate, partitioned and deterministic output, ``validate`` (writes nothing) and ``infer``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
import textwrap
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.contract import load_contract
from engine.enforce.enrich import clear_reference_cache
from engine.errors import SchemaError, ValidationError
from engine.gen import generate
from engine.gen.datasets.orders import ORDERS_COLUMNS
from engine.infer import infer_contract
from engine.plan import source_id, source_name
from engine.run import RunReport, transform, validate

ORDERS_YAML = Path(__file__).resolve().parents[3] / "contracts" / "orders.yaml"
FORMATS = ("csv", "ndjson", "json")
UTC = dt.UTC

#: The check a fault of each kind breaks (see ORDERS_FAULTS in engine/gen/datasets/orders.py and
#: orders.yaml).
KIND_CHECKS = {
    "wrong_type": {"type"},
    "out_of_range": {"min", "max"},
    "bad_timestamp": {"type"},
    "bad_enum": {"in", "regex"},
    "ragged": {"fields"},
    "invalid_json": {"json"},
    "duplicate": {"unique"},
    "null": {"nullable"},
    "too_long": {"max_length"},
}
#: Lower bounds of orders.yaml: an out-of-range value below them breaks ``min``, else ``max``.
LOWER = {"amount": Decimal(0), "quantity": Decimal(1), "customer_id": Decimal(1)}


@pytest.fixture(autouse=True)
def _fresh_reference_cache() -> Any:
    clear_reference_cache()
    yield
    clear_reference_cache()


# -- helpers ------------------------------------------------------------------------------------


def orders_contract(path: Path, fmt: str = "csv",
                    edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """A copy of contracts/orders.yaml for ``fmt``: thresholds raised (max_ratio 0.5, no
    max_count), every check kept; ``edit`` changes the mapping further."""
    spec = yaml.safe_load(ORDERS_YAML.read_text())
    spec["format"] = fmt
    if fmt != "csv":
        spec["options"].pop("delimiter")
    spec["rejects"]["max_ratio"] = 0.5
    spec["rejects"].pop("max_count")
    if edit is not None:
        edit(spec)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def write_contract(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def read_ndjson(path: Path | str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def check_accounting(report: RunReport) -> RunReport:
    assert report.rows_in == report.rows_out + report.rows_rejected + report.rows_filtered, (
        report.to_dict())
    assert report.rows_rejected == report.rejects["count"]
    return report


def expected_check(fault: dict[str, Any]) -> tuple[str | None, str]:
    """(column, check) a reject of an injected ``fault`` must name."""
    kind, column, value = fault["kind"], fault["column"], fault["value"]
    if kind == "ragged":
        return None, "fields"
    if kind == "invalid_json":
        return None, "json"
    if kind == "duplicate":
        return "order_id", "unique"
    if kind == "null":
        return column, "nullable"
    if kind == "too_long":
        return column, "max_length"
    if kind in ("wrong_type", "bad_timestamp"):
        return column, "type"
    if kind == "bad_enum":
        return column, "in" if column == "status" else "regex"
    assert kind == "out_of_range"
    return column, "min" if Decimal(value) < LOWER[column] else "max"


def summary_key(fault: dict[str, Any]) -> tuple[str, str]:
    """The (column, check) key of ``report.checks`` for an injected fault."""
    column, check = expected_check(fault)
    return column or "(record)", check


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size
            for p in sorted(root.rglob("*")) if p.is_file()}


def parquet_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet") if p.is_file())


def hive(root: Path) -> pa.Table:
    """The Hive-partitioned data under ``root`` (the _rejects/ and _aggregates/ dirs left out)."""
    return ds.dataset(root, format="parquet", partitioning="hive",
                      ignore_prefixes=[".", "_", "rejects", "aggregates"]).to_table()


def strings(table: pa.Table) -> pa.Table:
    """Dictionary columns decoded (pyarrow cannot sort by them)."""
    return pa.table({name: (col.cast(col.type.value_type)
                            if pa.types.is_dictionary(col.type) else col)
                     for name, col in zip(table.column_names, table.columns, strict=True)})


def csv_file(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


# -- exact rejects: the bar -------------------------------------------------------------


@pytest.fixture(scope="module")
def dirty_runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, int], Any]:
    """One generated dirty file and one contract run per (format, seed), shared by tests."""
    cache: dict[tuple[str, int], Any] = {}

    def run(fmt: str, seed: int) -> Any:
        if (fmt, seed) not in cache:
            root = tmp_path_factory.mktemp(f"dirty-{fmt}-{seed}")
            src = root / f"orders.{fmt}"
            gen = generate("orders", src, size=1_000_000, seed=seed, dirty=0.03)
            contract = orders_contract(root / "orders.yaml", fmt)
            report = transform(str(src), f"{root}/out/", contract=str(contract),
                               block_size=64 << 10)
            cache[fmt, seed] = (src, gen, report)
        return cache[fmt, seed]

    return run


@pytest.mark.parametrize("seed", [0, 7, 2024])
@pytest.mark.parametrize("fmt", FORMATS)
def test_rejects_are_exactly_the_injected_records(dirty_runs: Any, fmt: str, seed: int):
    src, gen, report = dirty_runs(fmt, seed)
    injected = read_ndjson(gen.injected_path)
    assert gen.injected == len(injected) > 50
    assert {f["kind"] for f in injected} == set(KIND_CHECKS) - {
        "ragged" if fmt != "csv" else "invalid_json"}
    check_accounting(report)
    assert report.status == "succeeded"
    name = source_name(str(src))  # in a directory, what a source writes carries its name
    assert report.rejects["uri"] == f"{src.parent}/out/_rejects/{name}.rejects.ndjson"
    rejects = read_ndjson(report.rejects["uri"])
    records = [r["record"] for r in rejects]
    assert len(records) == len(set(records))  # one line per rejected record
    assert set(records) == {f["record"] for f in injected}
    assert report.rows_in == gen.rows
    assert report.rows_rejected == len(injected)
    assert sum(c["count"] for c in report.checks) == len(injected)


@pytest.mark.parametrize("seed", [0, 7, 2024])
@pytest.mark.parametrize("fmt", FORMATS)
def test_each_reject_names_its_injected_fault(dirty_runs: Any, fmt: str, seed: int):
    src, gen, report = dirty_runs(fmt, seed)
    text = src.read_bytes()
    rejects = {r["record"]: r for r in read_ndjson(report.rejects["uri"])}
    for fault in read_ndjson(gen.injected_path):
        reject = rejects[fault["record"]]
        column, check = expected_check(fault)
        assert check in KIND_CHECKS[fault["kind"]]
        assert reject.get("column") == column, (fault, reject)
        assert reject.get("check") == check, (fault, reject)
        # Every check's reject carries its own record's offset: where the generator wrote it.
        assert reject["offset"] == fault["offset"], (fault, reject)
        if column is None:  # the record as a whole: its text, at its byte offset
            assert reject["raw"] == fault["value"]
            start = reject["offset"]
            assert text[start:start + len(reject["raw"].encode())] == reject["raw"].encode()
        elif fault["kind"] != "null":
            assert fault["value"] in reject["raw"], (fault, reject)
            if fault["kind"] == "bad_timestamp":
                assert column == "created_at"
        assert reject["reason"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_summary_counts_match_the_injected_faults(dirty_runs: Any, fmt: str):
    _, gen, report = dirty_runs(fmt, 0)
    expected = Counter(summary_key(f) for f in read_ndjson(gen.injected_path))
    assert {(c["column"], c["check"]): c["count"] for c in report.checks} == expected
    injected = {f["record"] for f in read_ndjson(gen.injected_path)}
    for entry in report.checks:
        assert 1 <= len(entry["examples"]) <= 3
        assert all(e["record"] in injected for e in entry["examples"])


def test_valid_rows_reach_the_output_after_the_transforms(dirty_runs: Any):
    src, gen, report = dirty_runs("csv", 0)
    out = hive(src.parent / "out")
    assert out.num_rows == report.rows_out == sum(f["rows"] for f in report.files)
    injected = {f["record"] for f in read_ndjson(gen.injected_path)}
    assert out.num_rows + report.rows_filtered == gen.rows - len(injected)
    assert "cancelled" not in out.column("status").to_pylist()  # the filter step
    ids = out.column("order_id")
    assert pc.count_distinct(ids).as_py() == len(ids)  # unique + dedupe
    assert pc.all(pc.equal(out.column("amount_cents"),
                           pc.cast(pc.multiply(out.column("amount"), 100), pa.int64()))).as_py()


# -- property tests -----------------------------------------------------------------------------

PROPERTY = settings(max_examples=6, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(fmt=st.sampled_from(FORMATS), seed=st.integers(0, 2**31 - 1),
       size=st.integers(500, 150_000), block=st.sampled_from([8 << 10, 64 << 10, 4 << 20]))
def test_generated_clean_data_never_rejects(fmt: str, seed: int, size: int, block: int):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / f"orders.{fmt}"
        gen = generate("orders", src, size=size, seed=seed)
        contract = orders_contract(root / "c.yaml", fmt)
        report = check_accounting(transform(str(src), f"{root}/out/", contract=str(contract),
                                            block_size=block))
        assert report.rows_in == gen.rows
        assert report.rows_rejected == 0 and report.checks == []
        assert read_ndjson(report.rejects["uri"]) == []


@PROPERTY
@given(fmt=st.sampled_from(FORMATS), seed=st.integers(0, 2**31 - 1),
       size=st.integers(2_000, 150_000), dirty=st.floats(0.005, 0.4),
       block=st.sampled_from([8 << 10, 64 << 10, 4 << 20]))
def test_dirty_data_rejects_exactly_its_injected_records(fmt: str, seed: int, size: int,
                                                         dirty: float, block: int):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / f"orders.{fmt}"
        gen = generate("orders", src, size=size, seed=seed, dirty=dirty)
        contract = orders_contract(root / "c.yaml", fmt,
                                   lambda c: c["rejects"].update(max_ratio=1.0))
        report = check_accounting(transform(str(src), f"{root}/out/", contract=str(contract),
                                            block_size=block))
        injected = read_ndjson(gen.injected_path)
        rejects = read_ndjson(report.rejects["uri"])
        assert sorted((r["record"], r["offset"]) for r in rejects) == [
            (f["record"], f["offset"]) for f in injected]


# -- thresholds ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dirty_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("dirty-csv")
    src = root / "orders.csv"
    gen = generate("orders", src, size=400_000, seed=11, dirty=0.05)
    return src, read_ndjson(gen.injected_path)


def _tight(max_ratio: float | None = None, max_count: int | None = None) -> Any:
    def edit(spec: dict[str, Any]) -> None:
        spec["rejects"] = {"path": "rejects/"}
        if max_ratio is not None:
            spec["rejects"]["max_ratio"] = max_ratio
        if max_count is not None:
            spec["rejects"]["max_count"] = max_count
        spec["output"]["max_rows_per_file"] = 50  # files are published before the failure

    return edit


def test_max_ratio_exceeded_fails_the_file_but_keeps_the_rejects(dirty_csv: Any,
                                                                 tmp_path: Path):
    src, injected = dirty_csv
    contract = orders_contract(tmp_path / "c.yaml", "csv", _tight(max_ratio=0.01))
    out = tmp_path / "out"
    with pytest.raises(ValidationError, match=r"more than rejects\.max_ratio") as info:
        transform(str(src), f"{out}/", contract=str(contract), block_size=32 << 10)
    assert info.value.uri == str(src)
    assert parquet_files(tmp_path) == []  # neither data nor aggregate
    name = source_name(str(src))
    rejects = read_ndjson(out / "rejects" / f"{name}.rejects.ndjson")
    assert sorted(r["record"] for r in rejects) == [f["record"] for f in injected]
    assert files_under(tmp_path).keys() == {"c.yaml", f"out/rejects/{name}.rejects.ndjson"}


def test_max_count_exceeded_fails_the_file_mid_stream(dirty_csv: Any, tmp_path: Path):
    src, injected = dirty_csv
    contract = orders_contract(tmp_path / "c.yaml", "csv", _tight(max_count=5))
    out = tmp_path / "out"
    with pytest.raises(ValidationError, match=r"more than rejects\.max_count \(5\)"):
        transform(str(src), f"{out}/", contract=str(contract), block_size=16 << 10)
    assert parquet_files(tmp_path) == []
    rejects = read_ndjson(out / "rejects" / f"{source_name(str(src))}.rejects.ndjson")
    assert len(rejects) > 5
    assert {r["record"] for r in rejects} <= {f["record"] for f in injected}


def test_threshold_at_the_limit_passes(dirty_csv: Any, tmp_path: Path):
    src, injected = dirty_csv
    contract = orders_contract(tmp_path / "c.yaml", "csv", _tight(max_count=len(injected)))
    report = check_accounting(transform(str(src), f"{tmp_path}/out/", contract=str(contract)))
    assert report.status == "succeeded"
    assert report.rows_rejected == len(injected)


@pytest.mark.parametrize(("limits", "message"), [
    ({"max_ratio": 0.01}, "max_ratio"),
    ({"max_count": 3}, r"max_count \(3\)"),
])
def test_validate_reports_a_failure_instead_of_raising(dirty_csv: Any, tmp_path: Path,
                                                       limits: dict[str, Any], message: str):
    src, injected = dirty_csv
    contract = orders_contract(tmp_path / "c.yaml", "csv", _tight(**limits))
    before = files_under(src.parent)
    report = validate(str(src), contract=str(contract))
    assert report.status == "failed"
    assert report.error is not None
    assert report.error["type"] == "ValidationError"
    assert re.search(message, report.error["message"])
    assert report.output is None and report.files == []
    check_accounting(report)
    if "max_ratio" in limits:  # the whole file was read
        assert report.rows_rejected == len(injected)
    assert files_under(src.parent) == before
    assert files_under(tmp_path).keys() == {"c.yaml"}


# -- schema policy ------------------------------------------------------------------------------


def simple_contract(path: Path, extra: str = "keep", type_errors: str = "reject",
                    fmt: str = "csv", columns: dict[str, Any] | None = None) -> Path:
    spec = {
        "dataset": "simple",
        "format": fmt,
        "columns": columns or {"id": {"type": "int64"}, "q": {"type": "int32"}},
        "extra_columns": extra,
        "type_errors": type_errors,
        "rejects": {"path": "rejects.ndjson"},
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_missing_required_column_is_a_schema_error_before_any_output(tmp_path: Path):
    src = csv_file(tmp_path / "in.csv", "id,q", "1,2", "2,3")
    contract = simple_contract(tmp_path / "c.yaml", columns={
        "id": {"type": "int64"}, "q": {"type": "int32"},
        "amount": {"type": "float64", "required": True}})
    with pytest.raises(SchemaError, match=r"required column.*\['amount'\]"):
        transform(str(src), f"{tmp_path}/out/", contract=str(contract))
    with pytest.raises(SchemaError, match="amount"):
        validate(str(src), contract=str(contract))
    assert files_under(tmp_path).keys() == {"in.csv", "c.yaml"}


def test_an_absent_optional_column_is_all_nulls(tmp_path: Path):
    src = csv_file(tmp_path / "in.csv", "id,q", "1,2", "2,3")
    contract = simple_contract(tmp_path / "c.yaml", columns={
        "id": {"type": "int64"}, "q": {"type": "int32"},
        "note": {"type": "string", "required": False}})
    report = check_accounting(transform(str(src), str(tmp_path / "o.parquet"),
                                        contract=str(contract)))
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.column_names == ["id", "q", "note"]
    assert table.column("note").to_pylist() == [None, None]
    assert report.rows_out == 2


def test_extra_columns_reject_is_a_schema_error(tmp_path: Path):
    src = csv_file(tmp_path / "in.csv", "id,q,secret", "1,2,x", "2,3,y")
    contract = simple_contract(tmp_path / "c.yaml", extra="reject")
    with pytest.raises(SchemaError, match=r"\['secret'\].*extra_columns: reject"):
        transform(str(src), f"{tmp_path}/out/", contract=str(contract))
    assert files_under(tmp_path).keys() == {"in.csv", "c.yaml"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_extra_columns_drop_and_keep(tmp_path: Path, fmt: str):
    rows = [{"id": 1, "q": 2, "ratio": 1.5, "tag": "a"},
            {"id": 2, "q": 3, "ratio": 2.25, "tag": "b"}]
    src = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        csv_file(src, "id,q,ratio,tag", "1,2,1.5,a", "2,3,2.25,b")
    elif fmt == "ndjson":
        src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        src.write_text(json.dumps(rows))
    dropped = check_accounting(transform(
        str(src), str(tmp_path / "drop.parquet"),
        contract=str(simple_contract(tmp_path / "d.yaml", extra="drop", fmt=fmt))))
    assert pq.read_table(tmp_path / "drop.parquet").column_names == ["id", "q"]
    assert [f["name"] for f in dropped.schema] == ["id", "q"]
    kept = check_accounting(transform(
        str(src), str(tmp_path / "keep.parquet"),
        contract=str(simple_contract(tmp_path / "k.yaml", extra="keep", fmt=fmt))))
    table = pq.read_table(tmp_path / "keep.parquet")
    assert table.column_names == ["id", "q", "ratio", "tag"]
    assert table.schema.field("q").type == pa.int32()  # declared
    assert table.schema.field("ratio").type == pa.float64()  # inferred
    assert table.schema.field("tag").type == pa.string()
    assert table.column("ratio").to_pylist() == [1.5, 2.25]
    assert kept.rows_out == 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_type_errors_fail_names_the_record(tmp_path: Path, fmt: str):
    src = tmp_path / f"in.{fmt}"
    rows = [{"id": 1, "q": 2}, {"id": 2, "q": 3}, {"id": 3, "q": "x12"}, {"id": 4, "q": 5}]
    if fmt == "csv":
        csv_file(src, "id,q", "1,2", "2,3", "3,x12", "4,5")
    elif fmt == "ndjson":
        src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        src.write_text(json.dumps(rows))
    contract = simple_contract(tmp_path / "c.yaml", type_errors="fail", fmt=fmt)
    with pytest.raises(SchemaError, match="x12") as info:
        transform(str(src), str(tmp_path / "out.parquet"), contract=str(contract))
    assert info.value.record == 3
    assert "record 3" in str(info.value)
    assert parquet_files(tmp_path) == []
    # the default, reject, keeps the other rows
    report = check_accounting(transform(str(src), str(tmp_path / "out.parquet"),
                                        contract=str(simple_contract(tmp_path / "r.yaml",
                                                                     fmt=fmt))))
    assert report.rows_out == 3
    assert [(r["record"], r["column"], r["check"])
            for r in read_ndjson(tmp_path / "rejects.ndjson")] == [(3, "q", "type")]


# -- each check ---------------------------------------------------------------------------------

CHECK_CASES = [
    # check, column spec, values of column v, {record: raw} expected rejected
    ("nullable", "{type: int64, nullable: false}", ["1", "", "3", ""], {2: "", 4: ""}),
    ("min", "{type: int64, min: 0}", ["0", "-1", "5", ""], {2: "-1"}),
    ("max", "{type: float64, max: 10}", ["10", "10.5", "-3", "1000.25"],
     {2: "10.5", 4: "1000.25"}),
    ("min", '{type: "decimal128(8, 2)", min: "0.50"}', ["0.50", "0.49", "7"], {2: "0.49"}),
    ("max", "{type: date32, max: 2025-03-01}", ["2025-03-01", "2025-03-02", "1999-01-01"],
     {2: "2025-03-02"}),
    ("min", '{type: "timestamp[s, tz=UTC]", min: "2020-01-01T00:00:00Z", '
            'formats: ["%Y-%m-%dT%H:%M:%S%z"]}',
     ["2020-01-01T00:00:00Z", "2019-12-31T23:59:59Z", "2024-05-05T10:00:00Z"],
     {2: "2019-12-31T23:59:59Z"}),
    ("in", "{type: string, in: [paid, shipped]}", ["paid", "PAID", "", "shipped", "lost"],
     {2: "PAID", 5: "lost"}),
    ("in", "{type: dictionary, in: [FR, DE]}", ["FR", "US", "DE", ""], {2: "US"}),
    ("in", "{type: int32, in: [1, 2, 3]}", ["1", "4", "3"], {2: "4"}),
    ("regex", '{type: string, regex: "^[A-Z]{2}$"}', ["FR", "fr", "ABC", "", "D1"],
     {2: "fr", 3: "ABC", 5: "D1"}),
    ("max_length", "{type: string, max_length: 3}", ["abc", "abcd", "", "日本語", "日本語x"],
     {2: "abcd", 5: "日本語x"}),
    ("unique", "{type: string, unique: true}", ["x", "y", "x", "", "", "y", "z"],
     {3: "x", 6: "y"}),
    ("unique", "{type: int64, unique: true}", ["5", "6", "5", "5"], {3: "5", 4: "5"}),
]


@pytest.mark.parametrize(("check", "spec", "values", "bad"), CHECK_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CHECK_CASES)])
def test_each_check_rejects_exactly_the_bad_rows(tmp_path: Path, check: str, spec: str,
                                                 values: list[str], bad: dict[int, str]):
    src = csv_file(tmp_path / "in.csv", "id,v", *(f"{i},{v}" for i, v in enumerate(values, 1)))
    contract = write_contract(tmp_path / "c.yaml", f"""
        dataset: checks
        options: {{null_values: [""]}}
        columns:
          id: {{type: int64}}
          v: {spec}
        rejects: {{path: rejects.ndjson}}
        """)
    report = check_accounting(transform(str(src), str(tmp_path / "out.parquet"),
                                        contract=str(contract)))
    rejects = read_ndjson(tmp_path / "rejects.ndjson")
    assert [(r["record"], r["column"], r["check"], r["raw"]) for r in rejects] == [
        (record, "v", check, raw) for record, raw in bad.items()]
    assert all(r["reason"].startswith("v: ") for r in rejects)
    kept = pq.read_table(tmp_path / "out.parquet").column("id").to_pylist()
    assert kept == [i for i in range(1, len(values) + 1) if i not in bad]
    assert report.checks == [{"column": "v", "check": check, "count": len(bad),
                              "examples": [{"record": k, "value": v}
                                           for k, v in list(bad.items())[:3]]}]


def test_first_failing_check_wins_and_a_row_is_rejected_once(tmp_path: Path):
    src = csv_file(tmp_path / "in.csv", "id,code,n", "1,FR,5", "2,toolong,50", "1,xx,-1",
                   "3,DE,7")
    contract = write_contract(tmp_path / "c.yaml", """
        dataset: checks
        columns:
          id: {type: int64, unique: true}
          code: {type: string, max_length: 2, regex: "^[A-Z]+$"}
          n: {type: int64, min: 0, max: 10}
        rejects: {path: rejects.ndjson}
        """)
    report = check_accounting(transform(str(src), str(tmp_path / "o.parquet"),
                                        contract=str(contract)))
    rejects = read_ndjson(tmp_path / "rejects.ndjson")
    assert [(r["record"], r["column"], r["check"]) for r in rejects] == [
        (2, "code", "regex"), (3, "code", "regex")]
    assert report.rows_rejected == 2 and report.rows_out == 2
    # record 3 repeats id 1 but was rejected already: it counts once, under its first check
    assert {(c["column"], c["check"]): c["count"] for c in report.checks} == {
        ("code", "regex"): 2}


@pytest.mark.parametrize(("timezone", "naive_winter", "naive_summer"), [
    ("Europe/Paris", dt.datetime(2025, 3, 1, 9, tzinfo=UTC),
     dt.datetime(2025, 7, 1, 8, tzinfo=UTC)),
    ("America/New_York", dt.datetime(2025, 3, 1, 15, tzinfo=UTC),
     dt.datetime(2025, 7, 1, 14, tzinfo=UTC)),
    ("+05:30", dt.datetime(2025, 3, 1, 4, 30, tzinfo=UTC),
     dt.datetime(2025, 7, 1, 4, 30, tzinfo=UTC)),
])
def test_timestamps_with_two_formats_and_a_zone_for_naive_values(
        tmp_path: Path, timezone: str, naive_winter: dt.datetime, naive_summer: dt.datetime):
    src = csv_file(tmp_path / "in.csv", "id,ts",
                   "1,2025-03-01T10:00:00+0000",
                   "2,2025-03-01T10:00:00+01:00",
                   "3,2025-03-01 10:00:00",
                   "4,2025-07-01 10:00:00",
                   "5,01/03/2025 10:00",
                   "6,2025-03-01T10:00:00-05:00")
    contract = write_contract(tmp_path / "c.yaml", f"""
        dataset: times
        columns:
          id: {{type: int64}}
          ts:
            type: "timestamp[ms, tz=UTC]"
            formats: ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S"]
            timezone: "{timezone}"
        rejects: {{path: rejects.ndjson}}
        """)
    check_accounting(transform(str(src), str(tmp_path / "o.parquet"), contract=str(contract)))
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    assert table.column("ts").to_pylist() == [
        dt.datetime(2025, 3, 1, 10, tzinfo=UTC),
        dt.datetime(2025, 3, 1, 9, tzinfo=UTC),
        naive_winter,
        naive_summer,
        dt.datetime(2025, 3, 1, 15, tzinfo=UTC),
    ]
    assert table.column("id").to_pylist() == [1, 2, 3, 4, 6]
    rejects = read_ndjson(tmp_path / "rejects.ndjson")
    assert [(r["record"], r["column"], r["check"], r["raw"]) for r in rejects] == [
        (5, "ts", "type", "01/03/2025 10:00")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_decimal128_and_dictionary_types_reach_the_parquet_file(tmp_path: Path, fmt: str):
    rows = [{"id": 1, "amount": "12.50", "country": "FR"},
            {"id": 2, "amount": "0.01", "country": "DE"},
            {"id": 3, "amount": "99999.99", "country": "FR"}]
    src = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        csv_file(src, "id,amount,country", "1,12.50,FR", "2,0.01,DE", "3,99999.99,FR")
    else:
        objects = [{**r, "amount": float(r["amount"])} for r in rows]
        text = "".join(json.dumps(o) + "\n" for o in objects)
        src.write_text(text if fmt == "ndjson" else json.dumps(objects))
    contract = write_contract(tmp_path / "c.yaml", f"""
        dataset: types
        format: {fmt}
        columns:
          id: {{type: int64}}
          amount: {{type: "decimal128(12, 2)", min: 0}}
          country: {{type: dictionary, regex: "^[A-Z]{{2}}$"}}
        """)
    report = check_accounting(transform(str(src), str(tmp_path / "o.parquet"),
                                        contract=str(contract)))
    schema = pq.read_schema(tmp_path / "o.parquet")
    assert schema.field("amount").type == pa.decimal128(12, 2)
    assert pa.types.is_dictionary(schema.field("country").type)
    assert schema.field("country").type.value_type == pa.string()
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.column("amount").to_pylist() == [Decimal("12.50"), Decimal("0.01"),
                                                  Decimal("99999.99")]
    assert table.column("country").to_pylist() == ["FR", "DE", "FR"]
    assert {"name": "amount", "type": "decimal128(12, 2)"} in report.schema


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_decimal_with_too_many_places_rejects_only_its_row(tmp_path: Path, fmt: str):
    amounts = ["1.234", "1.50", "2", "7.25", "9.999", "0.10"]
    src = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        csv_file(src, "id,amount", *(f"{i},{a}" for i, a in enumerate(amounts, 1)))
    else:
        objects = [f'{{"id": {i}, "amount": {a}}}' for i, a in enumerate(amounts, 1)]
        src.write_text("\n".join(objects) + "\n" if fmt == "ndjson"
                       else "[" + ",\n".join(objects) + "]\n")
    contract = write_contract(tmp_path / "c.yaml", f"""
        dataset: money
        format: {fmt}
        columns:
          id: {{type: int64}}
          amount: {{type: "decimal128(12, 2)"}}
        rejects: {{path: rejects.ndjson}}
        """)
    report = check_accounting(transform(str(src), str(tmp_path / "o.parquet"),
                                        contract=str(contract)))
    rejects = read_ndjson(tmp_path / "rejects.ndjson")
    assert [(r["record"], r["column"], r["check"]) for r in rejects] == [
        (1, "amount", "type"), (5, "amount", "type")]
    assert "1.234" in rejects[0]["raw"] and "9.999" in rejects[1]["raw"]
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.column("amount").to_pylist() == [Decimal("1.50"), Decimal("2.00"),
                                                  Decimal("7.25"), Decimal("0.10")]
    assert report.rows_out == 4


# -- transforms through transform() -------------------------------------------------------------

ORDERS_CSV = ("id,country,q,status",
              "1,FR,2,paid",
              "2,DE,3,cancelled",
              "3,US,1,paid",
              "2,DE,5,paid",
              "4,XX,2,shipped",
              "5,FR,0,paid",
              "1,FR,9,paid")
ORDERS_COLUMNS_YAML = """
columns:
  id: {type: int64}
  country: {type: string}
  q: {type: int64, min: 1}
  status: {type: string}
rejects: {path: rejects.ndjson}
"""


def small_orders(tmp_path: Path, transforms: str, extra: str = "") -> tuple[Path, Path]:
    src = csv_file(tmp_path / "orders.csv", *ORDERS_CSV)
    contract = tmp_path / "c.yaml"
    contract.write_text("dataset: small\n" + ORDERS_COLUMNS_YAML.lstrip()
                        + "transforms:\n" + textwrap.indent(textwrap.dedent(transforms), "  ")
                        + textwrap.dedent(extra))
    return src, contract


def test_derive_and_filter_count_rows_filtered(tmp_path: Path):
    src, contract = small_orders(tmp_path, """
        - derive:
            name: q10
            expr: {call: multiply, args: [{field: q}, {literal: 10}]}
            type: int64
        - filter: {call: not_equal, args: [{field: status}, {literal: cancelled}]}
        - filter: {call: less, args: [{field: q10}, {literal: 90}]}
        """)
    report = check_accounting(transform(str(src), str(tmp_path / "o.parquet"),
                                        contract=str(contract)))
    assert (report.rows_in, report.rows_rejected, report.rows_filtered) == (7, 1, 2)
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.column_names == ["id", "country", "q", "status", "q10"]
    assert table.column("id").to_pylist() == [1, 3, 2, 4]
    assert table.column("q10").to_pylist() == [20, 10, 50, 20]
    assert table.schema.field("q10").type == pa.int64()


def test_dedupe_keeps_the_first_row_per_key_across_chunks(tmp_path: Path):
    src, contract = small_orders(tmp_path, """
        - dedupe: {keys: [id]}
        """)
    report = check_accounting(transform(str(src), str(tmp_path / "o.parquet"),
                                        contract=str(contract)))
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.column("id").to_pylist() == [1, 2, 3, 4]
    assert table.column("q").to_pylist() == [2, 3, 1, 2]
    assert (report.rows_rejected, report.rows_filtered) == (1, 2)
    # the same across many small chunks
    big = tmp_path / "big.csv"
    csv_file(big, "id,country,q,status",
             *(f"{i % 997},FR,{1 + i % 5},paid" for i in range(5_000)))
    report = check_accounting(transform(str(big), str(tmp_path / "big.parquet"),
                                        contract=str(contract), block_size=4 << 10))
    assert report.rows_out == 997 and report.rows_filtered == 5_000 - 997
    ids = pq.read_table(tmp_path / "big.parquet").column("id").to_pylist()
    assert ids == list(range(997))


def test_rename_and_select(tmp_path: Path):
    src, contract = small_orders(tmp_path, """
        - rename: {status: state, q: quantity}
        - select: [state, id, quantity]
        """)
    report = check_accounting(transform(str(src), str(tmp_path / "o.parquet"),
                                        contract=str(contract)))
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.column_names == ["state", "id", "quantity"]
    assert [f["name"] for f in report.schema] == ["state", "id", "quantity"]
    assert table.num_rows == report.rows_out == 6


@pytest.mark.parametrize(("how", "rows", "filtered"), [("left", 6, 0), ("inner", 5, 1)])
def test_enrich_from_a_local_csv_reference_table(tmp_path: Path, how: str, rows: int,
                                                 filtered: int):
    ref = tmp_path / "ref"
    ref.mkdir()
    csv_file(ref / "countries.csv", "country,region,vat", "FR,EU,0.2", "DE,EU,0.19",
             "US,NA,0.0")
    src, contract = small_orders(tmp_path, f"""
        - enrich: {{path: ref/countries.csv, on: country, columns: [region], how: {how}}}
        """)
    report = check_accounting(transform(str(src), str(tmp_path / "o.parquet"),
                                        contract=str(contract)))
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.column_names == ["id", "country", "q", "status", "region"]
    pairs = list(zip(table.column("country").to_pylist(), table.column("region").to_pylist(),
                     strict=True))
    expected = [("FR", "EU"), ("DE", "EU"), ("US", "NA"), ("DE", "EU"), ("XX", None),
                ("FR", "EU")]
    assert pairs == [p for p in expected if how == "left" or p[1] is not None]
    assert (report.rows_out, report.rows_filtered) == (rows, filtered)
    assert report.state_bytes > 0  # the reference table is held for the run


def test_python_step_from_a_module_on_sys_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "chunkwise_contract_plugin.py").write_text(textwrap.dedent("""
        import pyarrow.compute as pc

        def double_and_keep_paid(batch):
            batch = batch.append_column("q2", pc.multiply(batch.column("q"), 2))
            return batch.filter(pc.equal(batch.column("status"), "paid"))
        """))
    monkeypatch.syspath_prepend(str(plugins))
    src, contract = small_orders(tmp_path, """
        - python: {function: "chunkwise_contract_plugin:double_and_keep_paid"}
        """)
    report = check_accounting(transform(str(src), str(tmp_path / "o.parquet"),
                                        contract=str(contract)))
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.column("q2").to_pylist() == [4, 2, 10, 18]
    assert table.column("id").to_pylist() == [1, 3, 2, 1]
    assert report.rows_filtered == 2  # cancelled, shipped


# -- aggregate ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_orders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clean")
    out = {}
    for fmt in FORMATS:
        out[fmt] = root / f"orders.{fmt}"
        generate("orders", out[fmt], size=300_000, seed=5)
    return out


def test_aggregate_matches_a_group_by_of_the_output(clean_orders: dict[str, Path],
                                                    tmp_path: Path):
    def edit(spec: dict[str, Any]) -> None:
        spec["aggregate"]["metrics"].update({
            "exact_customers": {"count_distinct": "customer_id"},
            "smallest": {"min": "amount"},
            "largest": {"max": "quantity"},
            "average": {"mean": "quantity"},
        })

    contract = orders_contract(tmp_path / "c.yaml", "csv", edit)
    out = tmp_path / "out"
    report = check_accounting(transform(str(clean_orders["csv"]), f"{out}/",
                                        contract=str(contract)))
    path = out / "_aggregates" / f"{source_name(str(clean_orders['csv']))}.parquet"
    assert report.aggregate is not None
    assert report.aggregate["uri"] == str(path)
    assert report.aggregate["groups"] > 30
    assert report.aggregate["bytes"] == path.stat().st_size
    assert report.state_bytes > 0
    agg = strings(pq.read_table(path)).sort_by([("country", "ascending"),
                                                ("status", "ascending")])
    assert agg.num_rows == report.aggregate["groups"]

    data = strings(hive(out))
    assert data.num_rows == report.rows_out
    expected = data.group_by(["country", "status"]).aggregate([
        ("order_id", "count"), ("amount", "sum"), ("customer_id", "count_distinct"),
        ("amount", "min"), ("quantity", "max"), ("quantity", "mean"),
    ]).sort_by([("country", "ascending"), ("status", "ascending")])
    assert agg.column("country").to_pylist() == expected.column("country").to_pylist()
    assert agg.column("status").to_pylist() == expected.column("status").to_pylist()
    assert agg.column("orders").to_pylist() == expected.column("order_id_count").to_pylist()
    assert agg.column("revenue").to_pylist() == expected.column("amount_sum").to_pylist()
    assert agg.column("exact_customers").to_pylist() == (
        expected.column("customer_id_count_distinct").to_pylist())
    assert agg.column("smallest").to_pylist() == expected.column("amount_min").to_pylist()
    assert agg.column("largest").to_pylist() == expected.column("quantity_max").to_pylist()
    assert agg.column("average").to_pylist() == pytest.approx(
        expected.column("quantity_mean").to_pylist())
    for approx, exact in zip(agg.column("customers").to_pylist(),
                             expected.column("customer_id_count_distinct").to_pylist(),
                             strict=True):
        assert abs(approx - exact) <= max(2, 0.1 * exact)
    assert sum(agg.column("orders").to_pylist()) == report.rows_out


@pytest.mark.parametrize("rotation", [{"max_rows_per_file": 7},
                                      {"max_bytes_per_file": 1}])
def test_the_aggregate_is_one_file_at_its_path_whatever_the_rotation(
        clean_orders: dict[str, Path], tmp_path: Path, rotation: dict[str, int]):
    contract = orders_contract(tmp_path / "c.yaml", "csv",
                               lambda c: c["output"].update(rotation))
    out = tmp_path / "out"
    report = check_accounting(transform(str(clean_orders["csv"]), f"{out}/",
                                        contract=str(contract)))
    name = f"{source_name(str(clean_orders['csv']))}.parquet"
    assert sorted(files_under(out / "_aggregates")) == [name]
    assert report.aggregate["uri"] == str(out / "_aggregates" / name)
    assert pq.read_metadata(report.aggregate["uri"]).num_rows == report.aggregate["groups"] > 7


def test_validate_computes_the_aggregate_without_writing_it(clean_orders: dict[str, Path],
                                                            tmp_path: Path):
    contract = orders_contract(tmp_path / "c.yaml", "csv")
    report = check_accounting(validate(str(clean_orders["csv"]), contract=str(contract)))
    assert report.status == "succeeded"
    assert report.aggregate is not None and report.aggregate["groups"] > 30
    assert "bytes" not in report.aggregate
    assert files_under(tmp_path).keys() == {"c.yaml"}


# -- output -------------------------------------------------------------------------------------


def test_partition_by_writes_hive_directories(clean_orders: dict[str, Path], tmp_path: Path):
    contract = orders_contract(tmp_path / "c.yaml", "csv")
    out = tmp_path / "out"
    report = check_accounting(transform(str(clean_orders["csv"]), f"{out}/",
                                        contract=str(contract)))
    dirs = sorted(p.name for p in out.iterdir() if p.is_dir())
    partitions = [d for d in dirs if d.startswith("country=")]
    assert set(dirs) - set(partitions) == {"_rejects", "_aggregates", "_chunkwise"}
    assert len(partitions) == 30
    stem = report.dataset["name"] + "-" + Path(report.files[0]["uri"]).name.split("-")[-2]
    for d in partitions:
        assert [p.name for p in (out / d).iterdir()] == [f"{stem}-00000.parquet"]
    assert len(report.files) == len(partitions)
    assert all(f["partition"]["country"] == Path(f["uri"]).parent.name.split("=", 1)[1]
               for f in report.files)
    table = hive(out)
    assert table.num_rows == report.rows_out == sum(f["rows"] for f in report.files)
    assert sorted(table.column("order_id").to_pylist()) == sorted(
        set(table.column("order_id").to_pylist()))
    by_file = {Path(f["uri"]).parent.name: f["rows"] for f in report.files}
    counts = table.group_by("country").aggregate([("order_id", "count")]).to_pylist()
    assert {f"country={c['country']}": c["order_id_count"] for c in counts} == by_file
    assert "NA" in {c["country"] for c in counts}  # Namibia is not a null


def test_a_rerun_replaces_the_same_sources_files(clean_orders: dict[str, Path],
                                                 tmp_path: Path):
    contract = orders_contract(tmp_path / "c.yaml", "csv",
                               lambda c: c["output"].update(max_rows_per_file=100))
    out = tmp_path / "out"
    first = transform(str(clean_orders["csv"]), f"{out}/", contract=str(contract))
    before = files_under(out)
    second = transform(str(clean_orders["csv"]), f"{out}/", contract=str(contract))
    after = files_under(out)
    # new names (a re-run never writes over the files it replaces), the old ones gone
    data = {k for k in after if not k.startswith("_")}
    assert data == {f["uri"].removeprefix(f"{out}/") for f in second.files}
    assert not data & {f["uri"].removeprefix(f"{out}/") for f in first.files}
    assert {k for k in after if k.startswith("_")} == {k for k in before if k.startswith("_")}
    assert hive(out).num_rows == second.rows_out == first.rows_out
    assert len(first.files) == len(second.files) > 30  # several files per partition


@pytest.mark.parametrize(("name", "stem"), [("2025-03-01.csv", "2025-03-01"),
                                            ("orders.csv.gz", "orders"),
                                            ("daily.export.ndjson", "daily.export")])
def test_files_are_named_after_the_input(tmp_path: Path, name: str, stem: str):
    src = tmp_path / "in" / name
    src.parent.mkdir()
    generate("orders", src, size=20_000, seed=1)
    fmt = "ndjson" if ".ndjson" in name else "csv"

    def unpartitioned(spec: dict[str, Any]) -> None:
        del spec["output"]["partition_by"]

    contract = orders_contract(tmp_path / "c.yaml", fmt, unpartitioned)
    out = tmp_path / "out"
    name = source_name(str(src))
    assert re.fullmatch(rf"{re.escape(stem)}-[0-9a-f]{{8}}", name)
    for _ in range(2):
        report = check_accounting(transform(str(src), f"{out}/", contract=str(contract)))
        data = Path(report.output).name
        assert re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{8}}\.parquet", data)
        assert sorted(files_under(out)) == sorted([f"_aggregates/{name}.parquet",
                                                   f"_chunkwise/{name}.json",
                                                   f"_rejects/{name}.rejects.ndjson", data])
    partitioned = orders_contract(tmp_path / "p.yaml", fmt)
    report = transform(str(src), f"{tmp_path}/parts/", contract=str(partitioned))
    # a source's first run into a directory names its files source_id (later ones differ)
    assert {Path(f["uri"]).name for f in report.files} == {f"{source_id(str(src))}-00000.parquet"}


def test_an_output_file_path_takes_its_name_and_puts_rejects_next_to_it(
        clean_orders: dict[str, Path], tmp_path: Path):
    def edit(spec: dict[str, Any]) -> None:
        del spec["output"]["partition_by"]
        spec["aggregate"]["path"] = "aggregates/"

    contract = orders_contract(tmp_path / "c.yaml", "csv", edit)
    dst = tmp_path / "out" / "day.parquet"
    report = check_accounting(transform(str(clean_orders["csv"]), str(dst),
                                        contract=str(contract)))
    assert report.output == str(dst)
    assert sorted(files_under(tmp_path / "out")) == [
        "_rejects/orders.rejects.ndjson", "aggregates/orders.parquet", "day.parquet"]


# -- validate() ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_validate_writes_nothing_and_counts_by_column_and_check(tmp_path: Path, fmt: str):
    inputs = tmp_path / "in"
    inputs.mkdir()
    src = inputs / f"orders.{fmt}"
    gen = generate("orders", src, size=200_000, seed=3, dirty=0.04)
    contract = orders_contract(inputs / "c.yaml", fmt)
    before = files_under(tmp_path)
    report = check_accounting(validate(str(src), contract=str(contract)))
    assert files_under(tmp_path) == before
    assert report.status == "succeeded" and report.error is None
    assert report.output is None and report.files == [] and report.bytes_out == 0
    assert report.rejects == {"count": gen.injected, "uri": None}
    injected = read_ndjson(gen.injected_path)
    expected = Counter(summary_key(f) for f in injected)
    assert {(c["column"], c["check"]): c["count"] for c in report.checks} == expected
    by_record = {f["record"]: f for f in injected}
    for entry in report.checks:
        assert 1 <= len(entry["examples"]) <= 3
        for example in entry["examples"]:
            fault = by_record[example["record"]]
            assert summary_key(fault) == (entry["column"], entry["check"])
            assert fault["value"][:100] in example["value"] or (
                example["value"] in fault["value"])
    # the same pass as transform: same counts
    done = transform(str(src), f"{tmp_path}/out/", contract=str(contract))
    assert (done.rows_in, done.rows_out, done.rows_rejected, done.rows_filtered) == (
        report.rows_in, report.rows_out, report.rows_rejected, report.rows_filtered)
    assert done.checks == report.checks


# -- infer --------------------------------------------------------------------------------------

EXPECTED_TYPES = {
    "order_id": pa.types.is_integer,
    "customer_id": pa.types.is_integer,
    "quantity": pa.types.is_integer,
    "amount": lambda t: pa.types.is_floating(t) or pa.types.is_decimal(t),
    "created_at": pa.types.is_timestamp,
    "country": pa.types.is_string,
    "status": pa.types.is_string,
    "note": pa.types.is_string,
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_infer_writes_a_contract_that_loads_and_converts_its_input(
        clean_orders: dict[str, Path], tmp_path: Path, fmt: str):
    from engine.types import parse_type

    src = clean_orders[fmt]
    text = infer_contract(str(src))
    assert text.startswith("#")
    contract = load_contract(text)
    assert contract.dataset == "orders"
    assert contract.format == fmt
    assert list(contract.columns) == list(ORDERS_COLUMNS)
    for name, spec in contract.columns.items():
        assert EXPECTED_TYPES[name](parse_type(spec.type)), (name, spec.type)
    assert not contract.columns["order_id"].nullable
    assert "# observed:" in text and '# in: ["cancelled", "delivered"' in text
    path = tmp_path / "inferred.yaml"
    path.write_text(text)
    assert load_contract(str(path)).columns == contract.columns
    report = check_accounting(transform(str(src), str(tmp_path / "o.parquet"),
                                        contract=str(path)))
    assert report.status == "succeeded" and report.rows_rejected == 0
    assert report.rows_out == report.rows_in == pq.read_metadata(tmp_path / "o.parquet").num_rows
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.column_names == list(ORDERS_COLUMNS)
    assert "NA" in table.column("country").to_pylist()
    assert os.path.getsize(tmp_path / "o.parquet") == report.bytes_out


def test_a_data_commit_failing_after_the_aggregate_leaves_nothing(
        clean_orders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The aggregate is published before the data files commit; if they fail, it goes too."""
    from engine.errors import TransientError
    from engine.sink.partitioned import PartitionedSink

    def failing_commit(self: PartitionedSink) -> None:
        raise TransientError("injected: the data files did not commit")

    monkeypatch.setattr(PartitionedSink, "commit", failing_commit)
    contract = orders_contract(tmp_path / "c.yaml", "csv")
    out = tmp_path / "out"
    with pytest.raises(TransientError, match="injected"):
        transform(str(clean_orders["csv"]), f"{out}/", contract=str(contract))
    assert parquet_files(tmp_path) == []
    assert [p for p in files_under(tmp_path) if p != "c.yaml"] == []
