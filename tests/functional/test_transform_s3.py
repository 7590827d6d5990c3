"""transform() and the CLI against S3: moto in-process, and a loopback moto server."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.exceptions
import pyarrow.parquet as pq
import pytest

import engine.io
from engine.errors import InputFormatError, InputNotFoundError, PermanentError, UsageError
from engine.gen import generate
from engine.plan import source_id, source_name
from engine.run import transform

MiB = 1024**2


def _exists(client: Any, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey"):
            return False
        raise
    return True


def _keys(client: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def _uploads(client: Any, bucket: str) -> list[Any]:
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def _parquet(client: Any, bucket: str, key: str) -> Any:
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


@pytest.fixture(scope="module")
def orders_csv(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("s3in") / "orders.csv"
    generate("orders", path, size=2_000_000, seed=21)
    return path.read_bytes()


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """~12 MB of orders: with compression="none" its Parquet is larger than 2 parts of 5 MiB."""
    path = tmp_path_factory.mktemp("s3big") / "big.csv"
    generate("orders", path, size=12_000_000, seed=22)
    return path.read_bytes()


@pytest.fixture
def buckets(s3: Any) -> Any:
    for name in ("raw", "processed"):
        s3.create_bucket(Bucket=name)
    return s3


def _count_calls(operation: str) -> list[str]:
    """Record every ``operation`` call the engine's S3 client makes."""
    calls: list[str] = []
    engine.io.s3_client().meta.events.register(f"before-call.s3.{operation}",
                                               lambda **kw: calls.append(operation))
    return calls


# ---------------------------------------------------------------------------------------------
# in-process moto


def test_s3_gzip_csv_to_s3_parquet(buckets: Any, orders_csv: bytes, tmp_path: Path):
    packed = gzip.compress(orders_csv)
    buckets.put_object(Bucket="raw", Key="orders.csv.gz", Body=packed)
    report = transform("s3://raw/orders.csv.gz", "s3://processed/orders.parquet")
    assert report.status == "succeeded"
    assert report.rows_in == report.rows_out + report.rows_rejected
    assert report.output == "s3://processed/orders.parquet"
    assert report.bytes_in == len(packed)
    head = buckets.head_object(Bucket="processed", Key="orders.parquet")
    assert report.bytes_out == head["ContentLength"]
    remote = _parquet(buckets, "processed", "orders.parquet")
    # the same bytes converted locally give the same rows
    local_src = tmp_path / "orders.csv.gz"
    local_src.write_bytes(packed)
    local = transform(str(local_src), str(tmp_path / "orders.parquet"))
    assert local.rows_out == report.rows_out == remote.num_rows > 10_000
    assert remote.equals(pq.read_table(tmp_path / "orders.parquet"))
    assert _keys(buckets, "processed") == ["orders.parquet"]
    assert _uploads(buckets, "processed") == []


def test_s3_rejects_file(buckets: Any):
    data = b"a,b\n1,x\n2\n3,z\n4,w,5\n"
    buckets.put_object(Bucket="raw", Key="ragged.csv", Body=data)
    report = transform("s3://raw/ragged.csv", "s3://processed/out/ragged.parquet",
                       rejects_uri="s3://processed/rejects/ragged.ndjson")
    assert (report.rows_in, report.rows_out, report.rows_rejected) == (4, 2, 2)
    assert report.rejects == {"count": 2, "uri": "s3://processed/rejects/ragged.ndjson"}
    body = buckets.get_object(Bucket="processed", Key="rejects/ragged.ndjson")["Body"].read()
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert [(r["record"], r["raw"]) for r in lines] == [(2, "2"), (4, "4,w,5")]
    assert all(data[r["offset"]:].startswith(r["raw"].encode()) for r in lines)
    assert _parquet(buckets, "processed", "out/ragged.parquet").to_pylist() == [
        {"a": 1, "b": "x"}, {"a": 3, "b": "z"}]


def test_failure_after_multipart_started_leaves_nothing(buckets: Any, big_csv: bytes):
    packed = gzip.compress(big_csv, compresslevel=1)
    buckets.put_object(Bucket="raw", Key="big.csv.gz", Body=packed[:-4096])  # corrupt tail
    parts = _count_calls("UploadPart")
    with pytest.raises(InputFormatError) as info:
        transform("s3://raw/big.csv.gz", "s3://processed/big.parquet", compression="none",
                  dictionary_max_ratio=0.0, block_size=1 * MiB, row_group_bytes=1 * MiB,
                  part_size=5 * MiB, rejects_uri="s3://processed/big.rejects.ndjson")
    assert info.value.uri == "s3://raw/big.csv.gz"
    assert len(parts) >= 2  # parts of the output had gone up before the input failed
    assert not _exists(buckets, "processed", "big.parquet")
    assert _keys(buckets, "processed") == []
    assert _uploads(buckets, "processed") == []


def test_failure_in_the_sink_after_the_first_row_group(buckets: Any, orders_csv: bytes,
                                                       monkeypatch: pytest.MonkeyPatch):
    from engine.sink.parquet import ParquetSink

    buckets.put_object(Bucket="raw", Key="orders.csv", Body=orders_csv)
    flush = ParquetSink.flush
    flushed: list[int] = []

    def failing_flush(self: ParquetSink) -> None:
        if flushed:
            raise RuntimeError("disk on fire")
        flush(self)
        flushed.append(1)

    monkeypatch.setattr(ParquetSink, "flush", failing_flush)
    started, put = _count_calls("CreateMultipartUpload"), _count_calls("PutObject")
    with pytest.raises(RuntimeError, match="disk on fire"):
        transform("s3://raw/orders.csv", "s3://processed/orders.parquet",
                  block_size=256 * 1024, row_group_bytes=256 * 1024)
    # a row group was written, and held: less than a part is sent by the commit's PutObject,
    # which never came (an upload started and aborted: test_failure_after_multipart_started_...)
    assert flushed and started == put == []
    assert _keys(buckets, "processed") == []
    assert _uploads(buckets, "processed") == []


def test_failure_after_rotation_removes_published_objects(buckets: Any, orders_csv: bytes):
    data = orders_csv + b'1,2025-01-01T00:00:00Z,1,US,1.00,1,paid,"never closed\n'
    buckets.put_object(Bucket="raw", Key="bad.csv", Body=data)
    with pytest.raises(InputFormatError):
        transform("s3://raw/bad.csv", "s3://processed/parts/", max_rows_per_file=5_000,
                  row_group_rows=5_000, block_size=256 * 1024)
    assert _keys(buckets, "processed") == []
    assert _uploads(buckets, "processed") == []


def test_rotation_to_s3(buckets: Any, orders_csv: bytes):
    buckets.put_object(Bucket="raw", Key="orders.csv", Body=orders_csv)
    report = transform("s3://raw/orders.csv", "s3://processed/parts/",
                       max_rows_per_file=5_000, row_group_rows=5_000, block_size=64 * 1024)
    keys = _keys(buckets, "processed")
    manifest = f"parts/_chunkwise/{source_name('s3://raw/orders.csv')}.json"
    assert manifest in keys  # where query engines do not read it
    keys.remove(manifest)
    stem = source_id("s3://raw/orders.csv", etag=buckets.head_object(
        Bucket="raw", Key="orders.csv")["ETag"])
    assert keys == [f"parts/{stem}-{i:05d}.parquet" for i in range(len(keys))]
    assert len(keys) >= 2
    assert sum(_parquet(buckets, "processed", k).num_rows for k in keys) == report.rows_out
    assert report.rows_out == report.rows_in


@pytest.mark.parametrize("src", ["s3://no-such-bucket/orders.csv", "s3://raw/no-such-key.csv",
                                 "s3://raw/no-such-key.csv.gz"])
def test_missing_bucket_or_key_is_input_not_found(buckets: Any, src: str):
    with pytest.raises(InputNotFoundError) as info:
        transform(src, "s3://processed/out.parquet")
    assert info.value.uri == src
    assert _keys(buckets, "processed") == []


def test_s3_output_that_is_the_input_is_refused(buckets: Any, orders_csv: bytes):
    buckets.put_object(Bucket="raw", Key="orders.csv", Body=orders_csv)
    with pytest.raises(UsageError, match="the output is the input"):
        transform("s3://raw/orders.csv", "s3://raw/orders.csv")
    assert buckets.get_object(Bucket="raw", Key="orders.csv")["Body"].read() == orders_csv
    assert _uploads(buckets, "raw") == []


@pytest.mark.parametrize("src", ["s3://", "s3://raw", "s3://raw/"])
def test_s3_uri_without_a_key_is_a_usage_error(buckets: Any, src: str):
    with pytest.raises(UsageError, match="S3 URI has no"):
        transform(src, "s3://processed/out.parquet")


def test_missing_output_bucket_is_permanent(buckets: Any, orders_csv: bytes):
    buckets.put_object(Bucket="raw", Key="orders.csv", Body=orders_csv)
    with pytest.raises(PermanentError) as info:
        transform("s3://raw/orders.csv", "s3://no-such-bucket/out.parquet")
    assert not isinstance(info.value, InputNotFoundError)


def test_s3_ndjson_and_json_inputs(buckets: Any, tmp_path: Path):
    for fmt in ("ndjson", "json"):
        path = tmp_path / f"orders.{fmt}"
        generate("orders", path, size=300_000, seed=3)
        buckets.put_object(Bucket="raw", Key=f"orders.{fmt}", Body=path.read_bytes())
        report = transform(f"s3://raw/orders.{fmt}", f"s3://processed/{fmt}.parquet")
        assert report.format == fmt
        local = transform(str(path), str(tmp_path / f"{fmt}.parquet"))
        assert _parquet(buckets, "processed", f"{fmt}.parquet").equals(
            pq.read_table(tmp_path / f"{fmt}.parquet"))
        assert report.rows_out == local.rows_out > 1000


# ---------------------------------------------------------------------------------------------
# moto server over HTTP (AWS_ENDPOINT_URL)


@pytest.fixture
def server_buckets(moto_server: str) -> Any:
    import boto3

    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_server)
    for name in ("raw", "processed"):
        client.create_bucket(Bucket=name)
    return client


@pytest.mark.s3server
@pytest.mark.parametrize(("src", "message"), [
    ("s3://no-such-bucket/orders.csv", "bucket does not exist"),
    ("s3://raw/no-such-key.csv.gz", "object not found"),
])
def test_server_missing_bucket_or_key_is_named(server_buckets: Any, src: str, message: str):
    # Over HTTP a HEAD answer has no body: both are a bare 404 until a HeadBucket tells them apart.
    with pytest.raises(InputNotFoundError) as info:
        transform(src, "s3://processed/out.parquet")
    assert (info.value.uri, info.value.message) == (src, message)


@pytest.mark.s3server
def test_server_transform_s3_to_s3(server_buckets: Any, moto_server: str, orders_csv: bytes,
                                   tmp_path: Path):
    assert engine.io.s3_client().meta.endpoint_url == moto_server
    packed = gzip.compress(orders_csv)
    server_buckets.put_object(Bucket="raw", Key="orders.csv.gz", Body=packed)
    report = transform("s3://raw/orders.csv.gz", "s3://processed/orders.parquet",
                       rejects_uri="s3://processed/orders.rejects.ndjson")
    assert report.rows_in == report.rows_out + report.rows_rejected
    local = tmp_path / "orders.csv"
    local.write_bytes(orders_csv)
    transform(str(local), str(tmp_path / "orders.parquet"))
    remote = _parquet(server_buckets, "processed", "orders.parquet")
    assert remote.equals(pq.read_table(tmp_path / "orders.parquet"))
    assert _keys(server_buckets, "processed") == ["orders.parquet", "orders.rejects.ndjson"]
    assert _uploads(server_buckets, "processed") == []


@pytest.mark.s3server
def test_server_cli_subprocess_json(server_buckets: Any, moto_server: str, orders_csv: bytes):
    server_buckets.put_object(Bucket="raw", Key="orders.csv", Body=orders_csv)
    script = Path(sys.executable).parent / "chunkwise"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli.app"]
    env = dict(os.environ)  # fake credentials from aws_env, AWS_ENDPOINT_URL from moto_server
    assert env["AWS_ENDPOINT_URL"] == moto_server
    ok = subprocess.run([*command, "transform", "s3://raw/orders.csv",
                         "s3://processed/cli/orders.parquet", "--json"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "Traceback" not in ok.stderr
    lines = ok.stdout.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["status"] == "succeeded"
    assert report["output"] == "s3://processed/cli/orders.parquet"
    assert report["bytes_in"] == len(orders_csv)
    remote = _parquet(server_buckets, "processed", "cli/orders.parquet")
    assert remote.num_rows == report["rows_out"] == report["rows_in"] > 10_000

    missing = subprocess.run([*command, "transform", "s3://raw/none.csv",
                              "s3://processed/cli/none.parquet", "--json"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 66
    error = json.loads(missing.stdout)["error"]
    assert (error["type"], error["uri"]) == ("InputNotFoundError", "s3://raw/none.csv")
    assert "Traceback" not in missing.stderr
    assert _keys(server_buckets, "processed") == ["cli/orders.parquet"]
