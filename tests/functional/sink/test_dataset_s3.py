"""Several sources into one S3 prefix (moto in-process): the write modes, re-runs, identity.

The same bar as tests/unit/test_write_modes.py, on S3: no row lost under any mode, a re-run
replaces exactly its source's objects, a failed run leaves what was there, and the manifests
live under ``_chunkwise/`` where query engines do not read them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from typer.testing import CliRunner

import engine
from engine.cli.app import app
from engine.errors import InputFormatError, UsageError
from engine.plan import source_id, source_name

CONTRACT = """dataset: orders
format: csv
columns:
  id: {type: int64, nullable: false}
  country: {type: string}
rejects: {path: _rejects/}
output:
  partition_by: [country]
  max_rows_per_file: 2
"""
OUT = "s3://processed/orders/"


def csv(ids: range) -> bytes:
    countries = ("FR", "DE", "US")
    return ("id,country\n" + "".join(f"{i},{countries[i % 3]}\n" for i in ids)).encode()


@pytest.fixture
def buckets(s3: Any) -> Any:
    for bucket in ("raw", "processed"):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket="raw", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="raw", Key="in/d1.csv", Body=csv(range(0, 10)))
    s3.put_object(Bucket="raw", Key="in/d2.csv", Body=csv(range(10, 17)))
    s3.put_object(Bucket="raw", Key="other/d1.csv", Body=csv(range(17, 20)))
    return s3


def keys(client: Any, prefix: str = "orders/") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket="processed", Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def ids_in(client: Any, tmp_path: Path, partitioned: bool = False) -> list[int]:
    """Download the prefix and read it as pyarrow.dataset does (hidden folders skipped)."""
    local = tmp_path / "copy"
    for key in keys(client):
        path = local / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(client.get_object(Bucket="processed", Key=key)["Body"].read())
    if not (local / "orders").exists():
        return []
    table = ds.dataset(local / "orders", format="parquet",
                       partitioning="hive" if partitioned else None).to_table(columns=["id"])
    for child in sorted(local.rglob("*"), reverse=True):  # the next call downloads afresh
        child.unlink() if child.is_file() else child.rmdir()
    return sorted(table.column("id").to_pylist())


def test_modes_on_s3(buckets: Any, tmp_path: Path):
    engine.transform("s3://raw/in/d1.csv", OUT, max_rows_per_file=3)
    with pytest.raises(UsageError, match="did not write"):
        engine.transform("s3://raw/in/d2.csv", OUT)
    engine.transform("s3://raw/in/d2.csv", OUT, mode="append", max_rows_per_file=2)
    engine.transform("s3://raw/other/d1.csv", OUT, mode="append")  # same file name elsewhere
    assert ids_in(buckets, tmp_path) == list(range(20))
    manifests = [k for k in keys(buckets) if k.startswith("orders/_chunkwise/")]
    assert manifests == sorted(f"orders/_chunkwise/{source_name(u)}.json" for u in (
        "s3://raw/in/d1.csv", "s3://raw/in/d2.csv", "s3://raw/other/d1.csv"))
    report = engine.transform("s3://raw/in/d1.csv", OUT, mode="append")  # a re-run
    assert report.dataset["removed"] == 4
    assert ids_in(buckets, tmp_path) == list(range(20))
    report = engine.transform("s3://raw/in/d2.csv", OUT, mode="replace")
    assert ids_in(buckets, tmp_path) == list(range(10, 17))
    assert keys(buckets) == sorted([report.output.removeprefix("s3://processed/"),
                                    f"orders/_chunkwise/{source_name('s3://raw/in/d2.csv')}.json"])


def test_a_new_version_of_an_object_replaces_the_old_ones_files(buckets: Any, tmp_path: Path):
    first = engine.transform("s3://raw/in/d1.csv", OUT)
    head = buckets.head_object(Bucket="raw", Key="in/d1.csv")
    assert first.output == f"{OUT}{source_id('s3://raw/in/d1.csv', head['VersionId'])}.parquet"
    buckets.put_object(Bucket="raw", Key="in/d1.csv", Body=csv(range(50, 53)))
    second = engine.transform("s3://raw/in/d1.csv", OUT)
    assert ids_in(buckets, tmp_path) == [50, 51, 52]
    assert second.output != first.output
    manifest = json.loads(buckets.get_object(
        Bucket="processed", Key=f"orders/_chunkwise/{source_name('s3://raw/in/d1.csv')}.json"
    )["Body"].read())
    assert manifest["version"] == buckets.head_object(Bucket="raw", Key="in/d1.csv")["VersionId"]
    assert manifest["generation"] == 1
    assert manifest["superseded"] == [first.output.removeprefix(OUT)]  # and deleted


def test_partitioned_contract_runs_on_s3(buckets: Any, tmp_path: Path):
    contract = tmp_path / "c.yaml"
    contract.write_text(CONTRACT)
    engine.transform("s3://raw/in/d1.csv", OUT, contract=contract)
    engine.transform("s3://raw/in/d2.csv", OUT, contract=contract, mode="append")
    engine.transform("s3://raw/in/d1.csv", OUT, contract=contract, mode="append")
    assert ids_in(buckets, tmp_path, partitioned=True) == list(range(17))
    assert {k.split("/")[1] for k in keys(buckets)} == {
        "_chunkwise", "_rejects", "country=DE", "country=FR", "country=US"}


def test_a_failed_rerun_on_s3_leaves_the_previous_objects(buckets: Any, tmp_path: Path):
    engine.transform("s3://raw/in/d1.csv", OUT, max_rows_per_file=2)
    before = keys(buckets)
    buckets.put_object(Bucket="raw", Key="in/d1.csv",
                       Body=csv(range(0, 10)) + b'99,"never closed\n')
    with pytest.raises(InputFormatError):
        engine.transform("s3://raw/in/d1.csv", OUT, max_rows_per_file=2, block_size=64)
    assert keys(buckets) == before
    assert buckets.list_multipart_uploads(Bucket="processed").get("Uploads", []) == []
    assert ids_in(buckets, tmp_path) == list(range(10))


def test_the_cli_mode_on_s3(buckets: Any, tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(app, ["transform", "s3://raw/in/d1.csv", OUT, "--json"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["transform", "s3://raw/in/d2.csv", OUT, "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["type"] == "UsageError"
    result = runner.invoke(app, ["transform", "s3://raw/in/d2.csv", OUT, "--mode", "append",
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dataset"]["mode"] == "append"
    assert ids_in(buckets, tmp_path) == list(range(17))
