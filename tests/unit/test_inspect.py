"""``chunkwise inspect`` and engine.inspect on local files: the footers' figures, as a query
engine would see the folder (pyarrow.dataset is the reference), through the API and the CLI.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import engine
from engine.cli.app import app
from engine.errors import InputFormatError, InputNotFoundError
from engine.gen import generate
from engine.inspect import inspect_dataset

CONTRACT = """dataset: orders
format: csv
columns:
  order_id: {type: int64}
  created_at: {type: "timestamp[ms, tz=UTC]"}
  customer_id: {type: int64}
  country: {type: string}
  amount: {type: "decimal128(12, 2)"}
  quantity: {type: int32}
  status: {type: string}
  note: {type: string}
output:
  partition_by: [country]
  max_rows_per_file: 2000
"""


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("inspect")
    src = root / "orders.csv"
    generate("orders", src, size=300_000, seed=3)
    (root / "c.yaml").write_text(CONTRACT)
    engine.transform(src, f"{root}/hive/", contract=root / "c.yaml")
    return root


def test_a_single_file_against_its_own_metadata(tmp_path: Path):
    table = pa.table({
        "i": pa.array([3, None, -7, 12], pa.int64()),
        "s": pa.array(["b", "a", None, None]),
        "t": pa.array([dt.datetime(2025, 3, 1, 10), None, dt.datetime(2024, 1, 2), None],
                      pa.timestamp("ms", tz="UTC")),
        "d": pa.array([Decimal("1.50"), Decimal("-2.25"), None, Decimal("0.00")],
                      pa.decimal128(6, 2)),
        "l": pa.array([[1], None, [2, 3], []], pa.list_(pa.int64())),
    })
    pq.write_table(table, tmp_path / "x.parquet", row_group_size=3, compression="snappy")
    summary = inspect_dataset(str(tmp_path / "x.parquet"))
    assert (summary["rows"], summary["row_groups"]) == (4, 2)
    assert summary["bytes"] == (tmp_path / "x.parquet").stat().st_size
    assert summary["compression"] == ["SNAPPY"]
    assert summary["partitions"] == [] and summary["partition_keys"] == []
    by = {c["name"]: c for c in summary["columns"]}
    assert [c["name"] for c in summary["columns"]] == ["i", "s", "t", "d", "l"]
    assert [c["type"] for c in summary["columns"]] == [
        str(f.type) for f in pq.read_schema(tmp_path / "x.parquet")]  # list<element: ...>
    assert (by["i"]["nulls"], by["i"]["min"], by["i"]["max"]) == (1, -7, 12)
    assert (by["s"]["nulls"], by["s"]["min"], by["s"]["max"]) == (2, "a", "b")
    assert by["t"]["min"] == "2024-01-02T00:00:00+00:00"
    assert by["t"]["max"] == "2025-03-01T10:00:00+00:00"
    assert (by["d"]["min"], by["d"]["max"]) == ("-2.25", "1.50")
    assert (by["l"]["nulls"], by["l"]["min"]) == (None, None)  # nested: no column figure
    assert summary["files"] == [{"path": "x.parquet", "rows": 4, "row_groups": 2,
                                 "bytes": summary["bytes"],
                                 "created_by": pq.read_metadata(tmp_path / "x.parquet")
                                 .created_by}]
    json.dumps(summary, allow_nan=False)


def test_a_hive_folder_matches_pyarrow_dataset(orders: Path):
    summary = inspect_dataset(str(orders / "hive"))
    dataset = ds.dataset(orders / "hive", format="parquet", partitioning="hive")
    assert summary["rows"] == dataset.count_rows()
    assert len(summary["files"]) == len(dataset.files)
    assert [c["name"] for c in summary["columns"]] == dataset.schema.names
    assert [c["type"] for c in summary["columns"]] == [str(t) for t in dataset.schema.types]
    assert summary["partition_keys"][0]["name"] == "country"
    assert summary["partition_keys"][0]["partition"] is True
    assert summary["hidden_files"] == 1  # _chunkwise/ holds the manifest
    table = dataset.to_table()
    counts = {r["country"]: r["country_count"]
              for r in table.group_by("country").aggregate([("country", "count")]).to_pylist()}
    assert {p["values"]["country"]: p["rows"] for p in summary["partitions"]} == counts
    assert sum(p["files"] for p in summary["partitions"]) == len(summary["files"])
    by = {c["name"]: c for c in summary["columns"]}
    for name in ("order_id", "quantity", "amount", "created_at"):
        column = table.column(name)
        assert by[name]["nulls"] == column.null_count, name
        low, high = column.drop_null().to_pylist()[0], column.drop_null().to_pylist()[0]
        for value in column.drop_null().to_pylist():
            low, high = min(low, value), max(high, value)
        assert by[name]["min"] in (low, str(low), low.isoformat() if hasattr(low, "isoformat")
                                   else low), name
        assert by[name]["max"] in (high, str(high), high.isoformat() if hasattr(high, "isoformat")
                                   else high), name
    assert summary["schema_conflicts"] == []


def test_partition_types_and_nulls_as_pyarrow_discovers_them(tmp_path: Path):
    for path, n in (("year=2024/tag=a%2Fb", 2), ("year=2025/tag=__HIVE_DEFAULT_PARTITION__", 3),
                    ("year=2025/tag=x", 1)):
        (tmp_path / path).mkdir(parents=True)
        pq.write_table(pa.table({"v": list(range(n))}), tmp_path / path / "f.parquet")
    summary = inspect_dataset(f"{tmp_path}/")
    reference = ds.dataset(tmp_path, format="parquet", partitioning="hive")
    assert [(c["name"], c["type"]) for c in summary["partition_keys"]] == [
        (f.name, str(f.type)) for f in reference.partitioning.schema]
    year, tag = summary["partition_keys"]
    assert (year["min"], year["max"], year["nulls"]) == (2024, 2025, 0)
    assert (tag["min"], tag["max"], tag["nulls"]) == ("a/b", "x", 3)
    assert [p["values"] for p in summary["partitions"]] == [
        {"year": 2024, "tag": "a/b"}, {"year": 2025, "tag": None}, {"year": 2025, "tag": "x"}]


def test_files_that_disagree_on_a_type_are_shown(tmp_path: Path):
    pq.write_table(pa.table({"v": [1, 2]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"v": ["x"], "w": [1.5]}), tmp_path / "b.parquet")
    summary = inspect_dataset(str(tmp_path))
    v, w = summary["columns"]
    assert summary["schema_conflicts"] == ["v"]
    assert v["types"] == {"int64": 1, "string": 1} and v["min"] is None
    assert (w["files"], w["min"]) == (1, 1.5)


def test_what_is_not_a_dataset(tmp_path: Path):
    with pytest.raises(InputNotFoundError):
        inspect_dataset(str(tmp_path / "missing.parquet"))
    with pytest.raises(InputNotFoundError, match="no Parquet data files"):
        inspect_dataset(str(tmp_path))
    (tmp_path / "_chunkwise").mkdir()
    (tmp_path / "_chunkwise" / "m.json").write_text("{}")
    with pytest.raises(InputNotFoundError, match="only 1 hidden file"):
        inspect_dataset(str(tmp_path))
    pq.write_table(pa.table({"v": [1]}), tmp_path / "a.parquet")
    (tmp_path / "a.manifest.json").write_text("{}")  # what query engines would fail on
    with pytest.raises(InputFormatError, match="not a Parquet file") as info:
        inspect_dataset(str(tmp_path))
    assert info.value.uri == f"{tmp_path}/a.manifest.json"


def test_the_command(orders: Path):
    runner = CliRunner()
    result = runner.invoke(app, ["inspect", str(orders / "hive"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "succeeded" and data["version"] == engine.__version__
    assert {"rows", "columns", "files", "row_groups", "bytes", "partitions"} <= set(data)
    assert data == {"status": "succeeded", **inspect_dataset(str(orders / "hive")),
                    "version": engine.__version__}
    result = runner.invoke(app, ["inspect", str(orders / "hive")])
    assert result.exit_code == 0, result.output
    assert f"{data['rows']:,} rows in {len(data['files']):,} file(s)" in result.stdout
    assert "order_id" in result.stdout and "country=FR" in result.stdout
    assert "more files (--json lists all)" in result.stdout
    result = runner.invoke(app, ["inspect", str(orders / "nothing"), "--json"])
    assert result.exit_code == 66
    assert json.loads(result.stdout)["error"]["type"] == "InputNotFoundError"
