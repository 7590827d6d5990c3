"""Datasets, not files (issue 15): the processed prefix reads as a table, the Glue table matches it.

The real state machine on moto with the real handlers (``engine.aws.local``). Several files go into
one dataset; the processed bucket is then copied to a folder, keys as paths
(:func:`engine.aws.local.export.export`, what ``pipeline run --out`` does), and read as query
engines read a table location: ``pyarrow.dataset`` with Hive partitioning and DuckDB's
``read_parquet(..., hive_partitioning=true)``. The catalog table (moto's Glue) is compared with
the Parquet files' own footers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import typer
from fault_injection import MAP_SETTINGS
from test_pipeline_paths import _contract
from typer.testing import CliRunner

from engine.aws import catalog
from engine.aws.glue_types import glue_type
from engine.aws.local.export import export
from engine.aws.local.runner import LocalPipeline
from engine.cli import pipeline as pipeline_cli
from engine.gen import generate


def _orders(tmp_path: Path, n: int) -> list[Path]:
    """``n`` generated orders files with distinct names and rows."""
    paths = []
    for i in range(n):
        path = tmp_path / f"2026-01-{i + 1:02d}.csv"
        generate("orders", path, size=60_000, seed=100 + i)
        paths.append(path)
    return paths


def _glue_columns(schema: pa.Schema) -> list[tuple[str, str]]:
    return [(f.name, glue_type(f.type, f.name)) for f in schema]


def test_the_processed_prefix_reads_as_a_table_and_the_catalog_matches_it(
        tmp_path: Path) -> None:
    files = _orders(tmp_path, 4)
    out = tmp_path / "out"
    with LocalPipeline(contract=_contract(tmp_path)) as pipe:
        results = [pipe.run(f) for f in files]
        assert [r["status"] for r in results] == ["SUCCEEDED"] * 4, results[-1]["error"]
        export(pipe, out)
        glue = pipe.client("glue")
        table = glue.get_table(DatabaseName="chunkwise", Name="orders")["Table"]
        registered = glue.get_partitions(DatabaseName="chunkwise",
                                         TableName="orders")["Partitions"]
    rows = sum(r["record"]["rows_out"] for r in results)
    location = out / "orders"
    # only data in the table location: every reader gets every row, and nothing else
    assert ds.dataset(location, format="parquet", partitioning="hive").count_rows() == rows
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{location}/*=*/*.parquet', "
                      "hive_partitioning=true)").fetchall() == [(rows,)]
    bookkeeping = {p.relative_to(location).parts[0] for p in location.rglob("*")
                   if p.is_file() and not p.parent.name.startswith("country=")}
    assert bookkeeping == {"_manifests", "_chunkwise", "_rejects", "_aggregates"}
    # the catalog table is the files' schema: columns, partition keys, partitions, location
    data = sorted(location.glob("country=*/*.parquet"))
    assert data
    sd = table["StorageDescriptor"]
    assert sd["Location"] == "s3://chunkwise-processed/orders/"
    for path in data:
        assert _glue_columns(pq.read_schema(path)) == [(c["Name"], c["Type"])
                                                       for c in sd["Columns"]], path
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [("country", "string")]
    assert {p["Values"][0] for p in registered} == {
        p.name.split("=", 1)[1] for p in location.glob("country=*")}
    # each execution's result shows the table as it stood then
    last = results[-1]["catalog"]
    assert last["columns"] == [{"name": c["Name"], "type": c["Type"]} for c in sd["Columns"]]
    assert len(last["partitions"]) == len(registered)
    # the catalog copy that --out writes
    copied = json.loads((out / "_catalog" / "chunkwise" / "orders.json").read_text())
    assert copied["table"]["StorageDescriptor"]["Columns"] == sd["Columns"]
    assert len(copied["partitions"]) == len(registered)


def test_a_dataset_without_contract_has_one_schema_that_grows(tmp_path: Path) -> None:
    """One Map-route file makes the table; the next ones are read with its types: integers in a
    double column become doubles, a new column is added at the end, and every file reads back."""
    big = tmp_path / "big.csv"
    generate("orders", big, size=300_000, seed=7)
    small = tmp_path / "small.csv"
    small.write_text("order_id,amount,coupon\n1,10,A1\n2,20,B2\n")  # amount: integers only
    out = tmp_path / "out"
    with LocalPipeline(settings=MAP_SETTINGS) as pipe:
        first = pipe.run(big, key="sales/big.csv")
        second = pipe.run(small, key="sales/small.csv")
        export(pipe, out)
        table = pipe.client("glue").get_table(DatabaseName="chunkwise", Name="sales")["Table"]
    assert "TransformRanges" in first["states"] and first["status"] == "SUCCEEDED"
    assert second["status"] == "SUCCEEDED", second["error"]
    columns = [(c["name"], c["type"]) for c in second["catalog"]["columns"]]
    assert columns[-1] == ("coupon", "string") and ("amount", "double") in columns
    small_file = [p for p in (out / "sales").glob("*.parquet") if "-part-" not in p.name]
    assert pq.read_schema(small_file[0]).field("amount").type == pa.float64()
    schema = catalog.table_schema(table)  # the dataset's schema: what a reader asks for
    rows = first["record"]["rows_out"] + second["record"]["rows_out"]
    assert ds.dataset(out / "sales", schema=schema, format="parquet").count_rows() == rows
    assert duckdb.sql(f"SELECT count(*), count(coupon) FROM read_parquet("
                      f"'{out}/sales/*.parquet', union_by_name=true)").fetchall() == [(rows, 2)]


def test_a_promotion_evolves_the_table(tmp_path: Path) -> None:
    """A table whose column is int (made by hand): a file with 64-bit integers makes it
    bigint, which Athena reads the earlier files' INT32 column as."""
    path = tmp_path / "e.csv"
    path.write_text("id,v\n1,5000000000\n")
    with LocalPipeline() as pipe:
        pipe.client("glue").create_table(DatabaseName="chunkwise", TableInput={
            "Name": "events", "TableType": "EXTERNAL_TABLE", "StorageDescriptor": {
                "Location": "s3://chunkwise-processed/events/",
                "Columns": [{"Name": "id", "Type": "int"}, {"Name": "v", "Type": "int"}]}})
        result = pipe.run(path, key="events/e.csv")
    assert result["status"] == "SUCCEEDED", result["error"]
    assert result["output"]["output"]["catalog"]["changes"] == ["id: int32 → int64",
                                                                "v: int32 → int64"]
    assert result["catalog"]["columns"] == [{"name": "id", "type": "bigint"},
                                            {"name": "v", "type": "bigint"}]


def test_a_file_changing_a_type_goes_to_the_dlq_naming_the_column(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("id,v\n1,10\n2,20\n")
    second.write_text("id,v\n3,ten\n")
    with LocalPipeline() as pipe:
        good = pipe.run(first)
        bad = pipe.run(second)
        keys = pipe.client("s3").list_objects_v2(Bucket="chunkwise-processed")["Contents"]
    assert good["status"] == "SUCCEEDED"
    assert bad["status"] == "FAILED" and bad["states"][-2:] == ["DLQRoute", "Failed"]
    (message,) = bad["dlq"]
    assert message["error_type"] == "SchemaError"
    assert ("column 'v': the dataset 'incoming' has it as int64 (Glue bigint), this file as "
            "string") in message["error_message"]
    assert bad["catalog"] == good["catalog"]  # the dataset's schema is unchanged
    assert {o["Key"] for o in keys} == {o.split("/", 3)[3] for o in good["outputs"]}


def _invoke(*args: str) -> Any:
    main = typer.Typer()

    @main.command()
    def other() -> None:  # pragma: no cover - only there to make "pipeline" a sub-command
        """Stands for the rest of the chunkwise command."""

    main.add_typer(pipeline_cli.app, name="pipeline")
    return CliRunner().invoke(main, ["pipeline", "run", *args])


def test_pipeline_run_several_files_one_line_each_and_out(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("id,v\n1,10\n")
    b.write_text("id,v,w\n2,20,x\n")
    out = tmp_path / "out"
    res = _invoke(str(a), str(b), "--json", "--out", str(out))
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    assert [r["status"] for r in lines] == ["SUCCEEDED", "SUCCEEDED"]
    assert [r["record"]["key"] for r in lines] == ["incoming/a.csv", "incoming/b.csv"]
    assert [len(r["catalog"]["columns"]) for r in lines] == [2, 3]
    assert set(lines[0]["catalog"]) == {"database", "table", "location", "columns",
                                        "partition_keys", "partitions", "projection"}
    assert ds.dataset(out / "incoming", format="parquet").count_rows() == 2
    assert (out / "_catalog" / "chunkwise" / "incoming.json").is_file()
    # one file: one object, as before, with its catalog; a failure's exit code is the run's
    b.write_text("id,v\n3,ten\n")
    res = _invoke(str(a), str(b), "--json")
    assert res.exit_code == 65
    assert [json.loads(line)["status"] for line in res.stdout.splitlines()] == [
        "SUCCEEDED", "FAILED"]
    res = _invoke(str(a), "--json")
    (only,) = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    assert only["catalog"]["table"] == "incoming" and res.exit_code == 0
