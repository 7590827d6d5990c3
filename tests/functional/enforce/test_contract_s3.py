"""Contract runs against S3 (moto in-process): s3:// input, contract and reference table,
partitioned output, rejects and aggregate next to it; a failed file leaves no Parquet behind."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pytest
import yaml

from engine.enforce.enrich import clear_reference_cache
from engine.errors import ValidationError
from engine.gen import generate
from engine.plan import source_name
from engine.run import transform, validate

ORDERS_YAML = Path(__file__).resolve().parents[3] / "contracts" / "orders.yaml"
SRC = "s3://raw/orders/2025-03-01.csv"
#: in a directory, every file the source writes carries its name
NAME = source_name(SRC)
OUT = "s3://processed/orders/"
REF = "s3://ref/countries.csv"
#: Reference regions; DE and NA are left out, so those rows get a null region (left join).
REGIONS = {"US": "AMER", "CA": "AMER", "MX": "AMER", "BR": "LATAM", "AR": "LATAM",
           "CL": "LATAM", "JP": "APAC", "IN": "APAC", "AU": "APAC", "NZ": "APAC", "SG": "APAC",
           "KR": "APAC", "ZA": "EMEA", "GB": "EMEA", "FR": "EMEA", "ES": "EMEA", "IT": "EMEA",
           "NL": "EMEA", "SE": "EMEA", "PL": "EMEA", "CH": "EMEA", "BE": "EMEA", "AT": "EMEA",
           "IE": "EMEA", "DK": "EMEA", "NO": "EMEA", "FI": "EMEA", "PT": "EMEA"}


@pytest.fixture(scope="module")
def dirty_orders(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[dict]]:
    path = tmp_path_factory.mktemp("contract-s3") / "orders.csv"
    gen = generate("orders", path, size=600_000, seed=9, dirty=0.03)
    injected = [json.loads(line) for line in Path(gen.injected_path).read_text().splitlines()]
    return path.read_bytes(), injected


@pytest.fixture
def buckets(s3: Any, dirty_orders: tuple[bytes, list[dict]]) -> Any:
    clear_reference_cache()
    for name in ("raw", "processed", "ref", "contracts"):
        s3.create_bucket(Bucket=name)
    s3.put_object(Bucket="raw", Key="orders/2025-03-01.csv", Body=dirty_orders[0])
    sink = io.BytesIO()
    pacsv.write_csv(pa.table({"country": list(REGIONS), "region": list(REGIONS.values())}), sink)
    s3.put_object(Bucket="ref", Key="countries.csv", Body=sink.getvalue())
    yield s3
    clear_reference_cache()


def put_contract(client: Any, **rejects: Any) -> str:
    """orders.yaml plus an S3 enrich step, with the given thresholds, uploaded to S3."""
    spec = yaml.safe_load(ORDERS_YAML.read_text())
    spec["rejects"] = {"path": "rejects/", **rejects}
    spec["transforms"].append({"enrich": {"path": REF, "on": "country", "columns": ["region"]}})
    spec["output"]["max_rows_per_file"] = 200  # several objects per partition
    client.put_object(Bucket="contracts", Key="orders.yaml",
                      Body=yaml.safe_dump(spec, sort_keys=False).encode())
    return "s3://contracts/orders.yaml"


def keys(client: Any, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def open_uploads(client: Any) -> list[Any]:
    return [u for bucket in ("processed", "raw", "ref")
            for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def read_ndjson(client: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def test_contract_transform_from_s3_to_s3(buckets: Any, dirty_orders: Any, tmp_path: Path):
    _, injected = dirty_orders
    contract = put_contract(buckets, max_ratio=0.5)
    report = transform(SRC, OUT, contract=contract, block_size=64 << 10)
    assert report.status == "succeeded"
    assert report.rows_in == report.rows_out + report.rows_rejected + report.rows_filtered
    assert report.rows_rejected == len(injected)

    stored = keys(buckets, "processed")
    data = [k for k in stored if k.startswith("orders/country=")]
    assert set(stored) - set(data) == {f"orders/rejects/{NAME}.rejects.ndjson",
                                       f"orders/_aggregates/{NAME}.parquet",
                                       f"orders/_chunkwise/{NAME}.json"}
    assert all(k.endswith(".parquet") and k.split("/")[2].startswith(f"{NAME}-")
               for k in data)
    assert sorted(f["uri"] for f in report.files) == [f"s3://processed/{k}" for k in data]
    for f in report.files:
        head = buckets.head_object(Bucket="processed", Key=f["uri"].removeprefix("s3://processed/"))
        assert head["ContentLength"] == f["bytes"]
    assert open_uploads(buckets) == []

    # the rejects file lands next to the output and names exactly the injected records
    assert report.rejects["uri"] == f"{OUT}rejects/{NAME}.rejects.ndjson"
    rejects = read_ndjson(buckets, "processed", f"orders/rejects/{NAME}.rejects.ndjson")
    assert sorted(r["record"] for r in rejects) == [f["record"] for f in injected]
    assert report.aggregate["uri"] == f"{OUT}_aggregates/{NAME}.parquet"

    # read the partitions back: every row, enriched from the S3 reference table
    for key in data:
        local = tmp_path / key
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(buckets.get_object(Bucket="processed", Key=key)["Body"].read())
    table = ds.dataset(tmp_path / "orders", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == report.rows_out == sum(f["rows"] for f in report.files)
    pairs = set(zip(table.column("country").to_pylist(), table.column("region").to_pylist(),
                    strict=True))
    assert {region for country, region in pairs} - {None} == set(REGIONS.values())
    assert all(region == REGIONS.get(country) for country, region in pairs)
    assert ("DE", None) in pairs and ("NA", None) in pairs
    assert report.state_bytes > 0


@pytest.mark.parametrize("limits", [{"max_ratio": 0.01}, {"max_count": 10}])
def test_validation_error_leaves_no_parquet_and_no_open_uploads(buckets: Any, dirty_orders: Any,
                                                                limits: dict[str, Any]):
    _, injected = dirty_orders
    contract = put_contract(buckets, **limits)
    with pytest.raises(ValidationError, match="more than rejects"):
        transform(SRC, OUT, contract=contract, block_size=16 << 10)
    stored = keys(buckets, "processed")
    assert [k for k in stored if k.endswith(".parquet")] == []
    assert stored == [f"orders/rejects/{NAME}.rejects.ndjson"]  # and no manifest
    assert open_uploads(buckets) == []
    rejects = read_ndjson(buckets, "processed", stored[0])
    records = {r["record"] for r in rejects}
    assert records <= {f["record"] for f in injected}
    if "max_ratio" in limits:  # checked at the end: the whole file's rejects are there
        assert len(records) == len(injected)
    else:
        assert len(records) > 10


def test_validate_from_s3_writes_nothing(buckets: Any, dirty_orders: Any):
    _, injected = dirty_orders
    contract = put_contract(buckets, max_ratio=0.01)
    report = validate(SRC, contract=contract)
    assert report.status == "failed" and report.error["type"] == "ValidationError"
    assert report.rows_rejected == len(injected)
    assert keys(buckets, "processed") == []
    assert open_uploads(buckets) == []
