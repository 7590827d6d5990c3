"""``chunkwise inspect`` on S3 (moto in-process): footers only, counted request by request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from typer.testing import CliRunner

import engine
import engine.io
from engine.cli.app import app
from engine.errors import InputNotFoundError
from engine.gen import generate
from engine.inspect import inspect_dataset

CONTRACT = """dataset: orders
format: csv
columns:
  order_id: {type: int64}
  status: {type: string}
  amount: {type: double}
  note: {type: string}
output:
  partition_by: [status]
"""


class Requests:
    """Every S3 call the engine's client makes, with its parameters."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        self.calls.append((model.name, dict(params)))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [params for op, params in self.calls if op == name]


@pytest.fixture
def dataset(s3: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """A partitioned dataset on S3 written by the engine; its objects' sizes by key."""
    root = tmp_path_factory.mktemp("inspect-s3")
    src = root / "orders.csv"
    generate("orders", src, size=6_000_000, seed=5)
    (root / "c.yaml").write_text(CONTRACT)
    s3.create_bucket(Bucket="processed")
    engine.transform(src, "s3://processed/orders/", contract=root / "c.yaml",
                     compression="none")  # big files: the footer is a small part of each
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="processed")
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


@pytest.fixture
def requests() -> Requests:
    recorder = Requests()
    engine.io.s3_client().meta.events.register("provide-client-params.s3.*", recorder)
    return recorder


def test_inspect_reads_only_the_footers(dataset: dict[str, int], requests: Requests,
                                        tmp_path: Path, s3: Any):
    summary = inspect_dataset("s3://processed/orders/")
    data = {k: v for k, v in dataset.items() if "/_" not in k}
    assert len(data) >= 3 and len(dataset) == len(data) + 1  # + the manifest
    assert min(data.values()) > 128 * 1024  # more than pyarrow's 64 KiB first read
    assert [op for op, _ in requests.calls if op != "GetObject"] == ["ListObjectsV2"]
    gets = requests.named("GetObject")
    assert {g["Key"] for g in gets} == set(data)  # nothing hidden is read
    fetched = 0
    for get in gets:
        start, end = (int(x) for x in get["Range"].removeprefix("bytes=").split("-"))
        assert end == data[get["Key"]] - 1  # the end of the object, never all of it
        assert end - start + 1 <= 64 * 1024
        fetched += end - start + 1
    assert fetched < sum(data.values()) / 4
    # and the figures are a query engine's
    local = tmp_path / "orders"
    for key in data:
        path = tmp_path / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s3.get_object(Bucket="processed", Key=key)["Body"].read())
    reference = ds.dataset(local, format="parquet", partitioning="hive")
    assert summary["rows"] == reference.count_rows()
    assert [c["name"] for c in summary["columns"]] == reference.schema.names
    assert sorted(p["path"] for p in summary["partitions"]) == sorted(
        {k.split("/")[1] for k in data})
    assert summary["bytes"] == sum(data.values()) and summary["hidden_files"] == 1


def test_one_object_and_what_is_not_there(dataset: dict[str, int], requests: Requests):
    key = next(k for k in dataset if "/_" not in k)
    summary = inspect_dataset(f"s3://processed/{key}")
    assert [f["path"] for f in summary["files"]] == [key.rsplit("/", 1)[1]]
    assert [op for op, _ in requests.calls] == ["HeadObject", "GetObject"]
    assert requests.named("GetObject")[0]["Range"].endswith(f"-{dataset[key] - 1}")
    prefix = inspect_dataset("s3://processed/orders")  # a prefix without its slash
    assert prefix["rows"] > summary["rows"]
    with pytest.raises(InputNotFoundError, match="no Parquet data files"):
        inspect_dataset("s3://processed/nothing/")


def test_the_command_on_s3(dataset: dict[str, int]):
    result = CliRunner().invoke(app, ["inspect", "s3://processed/orders/", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["partition_keys"] == [{"name": "status", "type": "string", "partition": True,
                                       "nulls": 0, "min": data["partitions"][0]["values"][
                                           "status"], "max": data["partitions"][-1]["values"][
                                           "status"]}]
