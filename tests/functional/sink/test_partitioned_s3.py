"""PartitionedSink writing Hive partitions to S3 (moto in-process): layout, read-back, abort."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from engine.config import WriteOptions
from engine.sink.hive import HIVE_DEFAULT_PARTITION
from engine.sink.partitioned import PartitionedSink

BUCKET = "out-bucket"
PREFIX = "prefix/orders/"
COUNTRIES = ["FR", "DE", "US", "a/b=c%", None]


@pytest.fixture
def bucket(s3: Any) -> str:
    s3.create_bucket(Bucket=BUCKET)
    return BUCKET


def orders(n: int) -> pa.Table:
    return pa.table({
        "id": pa.array(range(n), pa.int64()),
        "country": pa.array([COUNTRIES[i % len(COUNTRIES)] for i in range(n)], pa.string()),
        "day": pa.array([dt.date(2025, 3, 1 + i % 2) for i in range(n)], pa.date32()),
        "amount": pa.array([i / 8 for i in range(n)], pa.float64()),
    })


def batches(table: pa.Table, size: int) -> list[pa.Table]:
    return [table.slice(i, size) for i in range(0, table.num_rows, size)]


def keys(client: Any) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def open_uploads(client: Any) -> list[Any]:
    return client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])


def download(client: Any, local: Path) -> Path:
    """Copy the dataset under PREFIX to ``local``, keeping the keys as paths."""
    for key in keys(client):
        path = local / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    return local / PREFIX


def read_back(root: Path, schema: pa.Schema, by: list[str]) -> pa.Table:
    partitioning = ds.partitioning(pa.schema([schema.field(k) for k in by]), flavor="hive")
    table = ds.dataset(str(root), format="parquet", partitioning=partitioning).to_table()
    return table.select(schema.names).sort_by("id")


def test_partitioned_output_to_s3(s3: Any, bucket: str, tmp_path: Path):
    table = orders(6_000)
    base = f"s3://{bucket}/{PREFIX}"
    with PartitionedSink(base, table.schema, ["country", "day"], file_stem="2025-03-01") as sink:
        for piece in batches(table, 700):
            sink.write(piece)

    expected = sorted(
        f"{PREFIX}country={c}/day=2025-03-0{d}/2025-03-01-00000.parquet"
        for c in ["FR", "DE", "US", "a%2Fb%3Dc%25", HIVE_DEFAULT_PARTITION] for d in (1, 2)
    )
    assert keys(s3) == expected
    assert sorted(f.uri for f in sink.files) == [f"s3://{bucket}/{k}" for k in expected]
    assert open_uploads(s3) == []
    for report in sink.files:
        key = report.uri.removeprefix(f"s3://{bucket}/")
        assert report.bytes == s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    assert sum(f.rows for f in sink.files) == table.num_rows
    assert read_back(download(s3, tmp_path), table.schema, ["country", "day"]).equals(table)


def test_rerun_overwrites_the_same_objects(s3: Any, bucket: str):
    table = orders(2_000)
    base = f"s3://{bucket}/{PREFIX}"
    for _ in range(2):
        with PartitionedSink(base, table.schema, ["country"], max_open_writers=2) as sink:
            for piece in batches(table, 150):
                sink.write(piece)
        assert len(keys(s3)) == len(sink.files) > len(COUNTRIES)


def test_abort_leaves_no_objects_and_no_open_uploads(s3: Any, bucket: str):
    table = orders(5_000)
    base = f"s3://{bucket}/{PREFIX}"
    with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012 - the failure is mid-stream
        with PartitionedSink(base, table.schema, ["country"], max_open_writers=2,
                             buffer_bytes=1) as sink:
            for piece in batches(table, 300):
                sink.write(piece)
            assert len(keys(s3)) > len(COUNTRIES)  # evicted files are already published
            assert len(open_uploads(s3)) == 2  # and two are still being uploaded
            raise RuntimeError("boom")
    assert keys(s3) == []
    assert open_uploads(s3) == []


def test_abort_after_rotation_deletes_published_objects(s3: Any, bucket: str):
    table = orders(3_000)
    base = f"s3://{bucket}/{PREFIX}"
    sink = PartitionedSink(base, table.schema, ["country"], WriteOptions(max_rows_per_file=200))
    for piece in batches(table, 500):
        sink.write(piece)
    assert len(keys(s3)) > len(COUNTRIES)
    sink.abort()
    assert keys(s3) == []
    assert open_uploads(s3) == []


def test_upload_buffer_cap_commits_the_largest_pending_upload(s3: Any, bucket: str,
                                                              tmp_path: Path):
    table = orders(20_000)
    base = f"s3://{bucket}/{PREFIX}"
    cap = 64 * 1024
    with PartitionedSink(base, table.schema, ["country"], buffer_bytes=1,
                         max_upload_buffer_bytes=cap) as sink:
        for piece in batches(table, 1_000):
            sink.write(piece)
            assert 0 <= sink.pending_upload_bytes <= cap
    assert len(sink.files) > len(COUNTRIES)  # the cap split partitions into several files
    assert read_back(download(s3, tmp_path), table.schema, ["country"]).equals(table)


def test_pending_upload_bytes_counts_unuploaded_parts(s3: Any, bucket: str):
    table = orders(5_000)
    sink = PartitionedSink(f"s3://{bucket}/{PREFIX}", table.schema, ["country"], buffer_bytes=1)
    sink.write(table)
    written = sum(f.bytes for f in sink.files) + sum(
        part.sink.open_file_bytes for part in sink._open.values())
    assert sink.pending_upload_bytes == written > 0  # below one 5 MiB part: all still held
    sink.abort()
    assert open_uploads(s3) == []
