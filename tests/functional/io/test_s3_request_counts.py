"""The S3 requests one conversion sends, counted on a loopback moto server (issue 17).

Each request is tens of milliseconds on AWS and billed: a small object costs one HEAD, one GET
and one PUT; a large one one HEAD, GETs that read no stored byte twice (beyond the inference
samples) and upload parts of the configured size. The requests are seen twice: by a botocore
``before-send`` hook of the test's own (the bytes asked for and sent) and in the run's report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

import engine
import engine.io
from engine.config import MiB
from engine.gen import generate


def _client() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def _record_requests() -> list[tuple[str, str | None, int]]:
    """``(operation, Range header, Content-Length)`` of each request the engine's client sends."""
    sent: list[tuple[str, str | None, int]] = []

    def record(request: Any, event_name: str, **_: Any) -> None:
        range_header = request.headers.get("Range")
        sent.append((event_name.rsplit(".", 1)[-1],
                     range_header.decode() if isinstance(range_header, bytes) else range_header,
                     int(request.headers.get("Content-Length") or 0)))

    engine.io.s3_client().meta.events.register("before-send.s3", record)
    return sent


def _ranges(sent: list[tuple[str, str | None, int]]) -> list[tuple[int, int]]:
    """The GETs' byte ranges as ``[first, last]`` (inclusive, as the header says)."""
    out = []
    for operation, header, _ in sent:
        if operation == "GetObject":
            assert header is not None and header.startswith("bytes=")  # never the whole object
            first, last = header.removeprefix("bytes=").split("-")
            out.append((int(first), int(last)))
    return out


@pytest.mark.parametrize("suffix", ["csv", "ndjson", "json"])
def test_a_1mb_object_costs_a_head_a_get_and_a_put(moto_server: str, tmp_path: Path,
                                                    suffix: str) -> None:
    src = tmp_path / f"small.{suffix}"
    generate("orders", src, size=1_000_000, seed=3)
    s3 = _client()
    s3.create_bucket(Bucket="raw")
    s3.create_bucket(Bucket="out")
    s3.upload_file(str(src), "raw", f"in/small.{suffix}")
    sent = _record_requests()
    report = engine.transform(f"s3://raw/in/small.{suffix}", "s3://out/small.parquet")
    assert report.s3_requests == {"GetObject": 1, "HeadObject": 1, "PutObject": 1}
    assert [operation for operation, _, _ in sent] == ["HeadObject", "GetObject", "PutObject"]
    assert _ranges(sent) == [(0, src.stat().st_size - 1)]  # the whole object, by one GET
    body = s3.get_object(Bucket="out", Key="small.parquet")["Body"].read()
    assert pq.read_metadata(engine.io.open_seekable("s3://out/small.parquet")).num_rows \
        == report.rows_out > 0 and len(body) == report.bytes_out


def test_a_large_object_is_read_once_and_written_in_parts_of_the_configured_size(
        moto_server: str, tmp_path: Path) -> None:
    src = tmp_path / "large.csv"
    generate("orders", src, size=16_000_000, seed=5)
    size = src.stat().st_size
    s3 = _client()
    s3.create_bucket(Bucket="raw")
    s3.create_bucket(Bucket="out")
    s3.upload_file(str(src), "raw", "in/large.csv")
    sent = _record_requests()
    part_size = 5 * MiB
    report = engine.transform("s3://raw/in/large.csv", "s3://out/large.parquet",
                              compression="none", part_size=part_size)
    assert report.bytes_out > part_size  # more than a part: a multipart upload

    counts = report.s3_requests
    assert counts["HeadObject"] == 1
    assert counts["CreateMultipartUpload"] == counts["CompleteMultipartUpload"] == 1
    assert "PutObject" not in counts
    assert sum(counts.values()) == len(sent)

    # The head (sampling), the mid-object samples, then one GET from the head's end onwards:
    # beyond the samples, every stored byte is read exactly once.
    head, *samples, rest = _ranges(sent)
    assert head[0] == 0 and rest == (head[1] + 1, size - 1)
    assert len(samples) == 4 and all(head[1] < first <= last < size for first, last in samples)

    parts = [length for operation, _, length in sent if operation == "UploadPart"]
    assert parts[:-1] == [part_size] * (len(parts) - 1) and 0 < parts[-1] <= part_size
    assert sum(parts) == report.bytes_out == s3.head_object(
        Bucket="out", Key="large.parquet")["ContentLength"]


def test_a_dataset_output_asks_for_its_source_once(moto_server: str, tmp_path: Path) -> None:
    """The source's version names the files, and is the version read: one HEAD for both."""
    src = tmp_path / "small.csv"
    generate("orders", src, size=300_000, seed=4)
    s3 = _client()
    s3.create_bucket(Bucket="raw")
    s3.create_bucket(Bucket="out")
    s3.upload_file(str(src), "raw", "in/small.csv")
    sent = _record_requests()
    report = engine.transform("s3://raw/in/small.csv", "s3://out/orders/")
    heads = [(operation, header) for operation, header, _ in sent if operation == "HeadObject"]
    assert report.s3_requests["HeadObject"] == len(heads) == 1
    ranged = [header for operation, header, _ in sent if operation == "GetObject" and header]
    assert ranged == [f"bytes=0-{src.stat().st_size - 1}"]  # the source, whole, by one GET
    assert report.rows_out > 0 and len(report.files) == 1
