"""A single-file Parquet output on S3 holds its part in a spool file on local disk (issue 23).

The part being assembled (up to ``part_size``) is not in memory: it goes to an anonymous file
in ``tempfile.gettempdir()`` (Lambda's ``/tmp``), from which each part, or the one
``PutObject``, is streamed. The disk is checked before a row is read; the run reports what the
spool held as ``ephemeral_bytes``; nothing is left on disk, whatever the outcome.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import engine
import engine.sink.spool
from engine.errors import DiskSpaceError

MiB = 1024**2


@pytest.fixture
def source(s3: Any) -> str:
    """~14 MB of CSV: uncompressed, more than two 5 MiB parts of Parquet."""
    s3.create_bucket(Bucket="raw")
    s3.create_bucket(Bucket="out")
    rows = "".join(f"{i},{'x' * 40}{i},{i / 8}\n" for i in range(220_000))
    s3.put_object(Bucket="raw", Key="orders.csv", Body=("id,text,amount\n" + rows).encode())
    return "s3://raw/orders.csv"


def uploads(s3: Any) -> list[Any]:
    return s3.list_multipart_uploads(Bucket="out").get("Uploads", [])


def test_parts_go_through_the_spool(s3: Any, source: str, spool_dir: Path) -> None:
    report = engine.transform(source, "s3://out/orders.parquet", compression="none",
                              part_size=5 * MiB)
    assert report.bytes_out > 2 * 5 * MiB
    assert report.s3_requests["UploadPart"] == -(-report.bytes_out // (5 * MiB))
    assert 0 < report.ephemeral_bytes <= 5 * MiB
    body = s3.get_object(Bucket="out", Key="orders.parquet")["Body"].read()
    assert pq.read_table(io.BytesIO(body)).num_rows == report.rows_out == 220_000
    assert uploads(s3) == []
    assert list(spool_dir.iterdir()) == []


def test_a_small_output_is_one_put_from_the_spool(s3: Any, spool_dir: Path) -> None:
    s3.create_bucket(Bucket="raw")
    s3.create_bucket(Bucket="out")
    s3.put_object(Bucket="raw", Key="small.csv", Body=b"id,country\n1,FR\n2,DE\n")
    report = engine.transform("s3://raw/small.csv", "s3://out/small.parquet")
    assert report.s3_requests.get("PutObject") == 1 and "UploadPart" not in report.s3_requests
    assert report.ephemeral_bytes == report.bytes_out > 0
    assert list(spool_dir.iterdir()) == []


def test_a_failed_publish_leaves_nothing(s3: Any, source: str, spool_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.io.s3

    def failing(backend: engine.io.s3.S3Output) -> None:
        assert backend._writer is not None  # parts sent from the spool: an upload to abort
        raise RuntimeError("boom")

    monkeypatch.setattr(engine.io.s3.S3Output, "publish", failing)
    with pytest.raises(RuntimeError, match="boom"):
        engine.transform(source, "s3://out/orders.parquet", compression="none",
                         part_size=5 * MiB)
    assert s3.list_objects_v2(Bucket="out").get("KeyCount") == 0
    assert uploads(s3) == []
    assert list(spool_dir.iterdir()) == []


def test_too_little_disk_fails_before_anything_is_read(s3: Any, source: str, spool_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.disk_usage

    def small(path: str) -> Any:
        return real(path)._replace(free=32 * MiB)  # less than a part and the reserve

    monkeypatch.setattr(engine.sink.spool.shutil, "disk_usage", small)
    with pytest.raises(DiskSpaceError, match="the part size") as info:
        engine.transform(source, "s3://out/orders.parquet")
    assert info.value.uri == "s3://out/orders.parquet"
    assert "EphemeralStorage" in info.value.message
    assert s3.list_objects_v2(Bucket="out").get("KeyCount") == 0
    assert list(spool_dir.iterdir()) == []


def test_a_name_refused_leaves_no_spool(spool_dir: Path) -> None:
    import pyarrow as pa

    from engine.errors import UsageError
    from engine.sink.parquet import ParquetSink
    from engine.sink.spool import Spool

    def refuse(uri: str) -> None:
        raise UsageError("refused", uri=uri)

    spool = Spool(5 * MiB)
    assert list(spool_dir.iterdir()) != []
    with pytest.raises(UsageError):
        ParquetSink("s3://out/x.parquet", pa.schema([("a", pa.int64())]), check_uri=refuse,
                    spool=spool)
    assert list(spool_dir.iterdir()) == []
