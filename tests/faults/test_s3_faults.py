"""S3 faults injected between the engine and moto: errors, resets and stalls on reads and writes.

The engine talks to a :class:`fault_proxy.FaultProxy` on 127.0.0.1 in front of the session's
``ThreadedMotoServer``. What must hold (issue 7): a read resumes from the first byte it has not
read, with a ranged GET, a bounded number of times, backing off; a failing part upload is sent
again; past the retry budget the run fails with a TransientError (exit 74), the multipart upload
is aborted and no object appears. A run that gets through gives the same Parquet as a clean run.
Backoff sleeps are recorded and skipped (fixture ``sleeps``), except in the CLI test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fault_proxy import Fault, FaultProxy

import engine
import engine.io.s3
from engine.errors import TransientError

pytestmark = pytest.mark.s3server

MiB = 1024**2
SRC = "s3://raw/orders.csv"
DST = "s3://out/orders.parquet"
#: Uncompressed Parquet in 5 MiB parts: the ~11 MB output takes three UploadParts.
WRITE = {"compression": "none", "part_size": 5 * MiB}


@pytest.fixture(scope="module")
def orders_csv(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from engine.gen import generate

    path = tmp_path_factory.mktemp("faults") / "orders.csv"
    generate("orders", str(path), size=24 * 10**6, seed=3)
    return path.read_bytes()


@pytest.fixture(scope="module")
def clean(orders_csv: bytes, tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    """What a run without faults writes."""
    directory = tmp_path_factory.mktemp("clean")
    (directory / "orders.csv").write_bytes(orders_csv)
    engine.transform(str(directory / "orders.csv"), str(directory / "orders.parquet"), **WRITE)
    return pq.read_table(directory / "orders.parquet")


@pytest.fixture
def s3(moto_server: str, orders_csv: bytes) -> Iterator[Any]:
    """A client straight to moto (not through the proxy), with the input uploaded."""
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    client.create_bucket(Bucket="raw")
    client.create_bucket(Bucket="out")
    client.put_object(Bucket="raw", Key="orders.csv", Body=orders_csv)
    yield client


def published(s3: Any) -> pa.Table | None:
    listing = s3.list_objects_v2(Bucket="out").get("Contents", [])
    if not listing:
        return None
    body = s3.get_object(Bucket="out", Key="orders.parquet")["Body"].read()
    return pq.read_table(pa.BufferReader(body))


def open_uploads(s3: Any) -> list[Any]:
    return s3.list_multipart_uploads(Bucket="out").get("Uploads", [])


def assert_nothing_published(s3: Any, proxy: FaultProxy) -> None:
    assert published(s3) is None
    assert open_uploads(s3) == []
    creates = proxy.requests("CreateMultipartUpload")
    assert len(proxy.requests("AbortMultipartUpload")) == len(creates)


def resumed_ranges(proxy: FaultProxy) -> list[tuple[int, int, int]]:
    """For each broken GET: (its first byte, bytes it delivered, the next GET's first byte)."""
    gets = proxy.requests("GetObject")
    out = []
    for broken, following in zip(gets, gets[1:], strict=False):
        if broken["fault"] in ("reset", "stall"):
            start = int(broken["range"].split("=")[1].split("-")[0])
            again = int(following["range"].split("=")[1].split("-")[0])
            out.append((start, broken["sent"], again))
    return out


# ---------------------------------------------------------------------------------------------
# Reads


def test_get_errors_are_retried_with_backoff(proxy: FaultProxy, s3: Any, clean: pa.Table,
                                             sleeps: dict[str, list[float]]):
    proxy.add(Fault("GetObject", "status", times=2, status=500, code="InternalError"))
    proxy.add(Fault("GetObject", "status", times=2, status=503, code="SlowDown", skip=3))
    report = engine.transform(SRC, DST, **WRITE)
    assert published(s3).equals(clean)
    assert report.rows_out == clean.num_rows
    assert [e["fault"] for e in proxy.requests("GetObject")][:3] == ["status", "status", None]
    assert len(sleeps["botocore"]) >= 4  # one backoff per retried request


def test_reset_mid_body_resumes_from_the_first_unread_byte(
        proxy: FaultProxy, s3: Any, clean: pa.Table, sleeps: dict[str, list[float]]):
    proxy.add(Fault("GetObject", "reset", times=3, after_bytes=3 * MiB, skip=5))
    report = engine.transform(SRC, DST, **WRITE)
    assert published(s3).equals(clean)
    assert report.rows_in == report.rows_out == clean.num_rows
    resumes = resumed_ranges(proxy)
    assert len(resumes) == 3
    for start, sent, again in resumes:  # a ranged GET from where the reading stopped
        assert start + (sent > 0) <= again <= start + sent
    # Each reset came after progress: at most a first backoff each time, never a longer one.
    assert set(sleeps["engine"]) <= {0.25}


def test_stalled_read_times_out_and_resumes(proxy: FaultProxy, s3: Any, clean: pa.Table,
                                            sleeps: dict[str, list[float]],
                                            monkeypatch: pytest.MonkeyPatch):
    import botocore.config

    monkeypatch.setattr(engine.io.s3, "CLIENT_CONFIG",
                        engine.io.s3.CLIENT_CONFIG.merge(botocore.config.Config(read_timeout=1)))
    engine.io.s3.reset_s3_client()
    proxy.add(Fault("GetObject", "stall", times=1, after_bytes=2 * MiB, stall_seconds=5,
                    skip=2))
    engine.transform(SRC, DST, **WRITE)
    assert published(s3).equals(clean)
    [(start, sent, again)] = resumed_ranges(proxy)
    assert start + (sent > 0) <= again <= start + sent
    assert sleeps["engine"] in ([], [0.25])  # a backoff unless bytes arrived in that read


def test_read_making_no_progress_is_transient_and_publishes_nothing(
        proxy: FaultProxy, s3: Any, sleeps: dict[str, list[float]]):
    # The main read (after the inference samples) breaks at 20 MiB, once a part is uploaded;
    # every ranged GET resuming it then breaks before its first byte.
    proxy.add(Fault("GetObject", "reset", times=1, after_bytes=20 * MiB, skip=5))
    proxy.add(Fault("GetObject", "reset", times=-1, after_bytes=0, skip=5))
    with pytest.raises(TransientError) as info:
        engine.transform(SRC, DST, **WRITE)
    assert info.value.uri == SRC and "5 times in a row" in info.value.message
    assert sleeps["engine"] == [0.25, 0.5, 1.0, 2.0]  # bounded: READ_ATTEMPTS - 1 sleeps
    assert len(proxy.requests("UploadPart")) >= 1  # the upload had begun: it is aborted
    assert len(proxy.requests("AbortMultipartUpload")) == 1
    assert_nothing_published(s3, proxy)


def test_get_throttled_past_the_budget_is_transient(proxy: FaultProxy, s3: Any,
                                                    sleeps: dict[str, list[float]]):
    proxy.add(Fault("GetObject", "status", times=-1, status=503, code="SlowDown", skip=2))
    with pytest.raises(TransientError, match="SlowDown"):
        engine.transform(SRC, DST, **WRITE)
    gets = [e for e in proxy.requests("GetObject") if e["fault"]]
    assert len(gets) == 5  # botocore's standard mode: 5 attempts, then the error
    backoff = sleeps["botocore"]  # standard mode: random * 2**(n-1), capped at 20 s
    assert len(backoff) >= 4 and all(0 <= s <= 20 for s in backoff)
    assert_nothing_published(s3, proxy)


# ---------------------------------------------------------------------------------------------
# Writes


def test_failing_part_uploads_are_sent_again(proxy: FaultProxy, s3: Any, clean: pa.Table,
                                             sleeps: dict[str, list[float]]):
    # Faults are consulted in order, each counting only the requests it sees: part 1 meets a
    # 503 SlowDown then a 500, part 2 a connection reset after its body was sent.
    proxy.add(Fault("UploadPart", "status", times=1, status=503, code="SlowDown"))
    proxy.add(Fault("UploadPart", "status", times=1, status=500, code="InternalError"))
    proxy.add(Fault("UploadPart", "reset", times=1, skip=1))
    engine.transform(SRC, DST, **WRITE)
    assert published(s3).equals(clean)
    uploads = proxy.requests("UploadPart")
    assert [(e["part"], e["fault"]) for e in uploads] == [
        ("1", "status"), ("1", "status"), ("1", None), ("2", "reset"), ("2", None), ("3", None)]
    assert len(sleeps["botocore"]) >= 3  # a backoff before each part sent again
    assert open_uploads(s3) == []


def test_part_upload_failing_past_the_budget_aborts_the_upload(
        proxy: FaultProxy, s3: Any, sleeps: dict[str, list[float]]):
    proxy.add(Fault("UploadPart", "status", times=-1, status=503, code="SlowDown", skip=1))
    with pytest.raises(TransientError, match="SlowDown") as info:
        engine.transform(SRC, DST, **WRITE)
    assert info.value.uri == DST
    assert [e["part"] for e in proxy.requests("UploadPart")] == ["1"] + ["2"] * 5
    assert_nothing_published(s3, proxy)


def test_partitioned_run_failing_mid_commit_takes_everything_back(
        proxy: FaultProxy, s3: Any, sleeps: dict[str, list[float]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch):
    # A partitioned output on S3 holds its files in the spool on local disk and publishes them
    # one by one at the commit: three are published, the fourth PutObject fails past the retry
    # budget. The three are deleted, and the spool is gone.
    spool_dir = tmp_path / "ephemeral"
    spool_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool_dir))
    contract = tmp_path / "c.yaml"
    contract.write_text("dataset: orders\nformat: csv\ncolumns:\n  country: {type: string}\n"
                        "output:\n  partition_by: [country]\n")
    proxy.add(Fault("PutObject", "status", times=-1, status=503, code="SlowDown", skip=3))
    with pytest.raises(TransientError, match="SlowDown"):
        engine.transform(SRC, "s3://out/orders/", contract=contract, **WRITE)
    puts = proxy.requests("PutObject")
    assert [e["fault"] for e in puts[:4]] == [None, None, None, "status"]
    assert s3.list_objects_v2(Bucket="out").get("Contents", []) == []
    assert open_uploads(s3) == []
    assert len(proxy.requests("DeleteObject")) >= 3
    assert list(spool_dir.iterdir()) == []


def test_parts_sent_again_from_the_spool_are_the_same_bytes(
        proxy: FaultProxy, s3: Any, sleeps: dict[str, list[float]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch):
    # A partition file passing a part is a multipart upload streamed from its spool file: a
    # part that fails (a 503, a reset after its body was sent) is read from the file again.
    from engine.sink.partitioned import PartitionedSink

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    rows = 14_000
    table = pa.table({"id": pa.array(range(rows), pa.int64()),
                      "country": pa.array([f"C{i % 2}" for i in range(rows)]),
                      "text": pa.array([os.urandom(512).hex() for _ in range(rows)])})
    proxy.add(Fault("UploadPart", "status", times=1, status=503, code="SlowDown"))
    proxy.add(Fault("UploadPart", "reset", times=1, skip=1))
    with PartitionedSink("s3://out/wide/", table.schema, ["country"],
                         engine.WriteOptions(compression="none", part_size=5 * MiB),
                         buffer_bytes=1) as sink:
        for start in range(0, rows, 1_000):
            sink.write(table.slice(start, 1_000))
    assert [e["fault"] for e in proxy.requests("UploadPart")][:4] == [
        "status", None, "reset", None]
    assert open_uploads(s3) == []
    back = []
    for country in ("C0", "C1"):
        body = s3.get_object(Bucket="out", Key=f"wide/country={country}/part-00000.parquet")
        back.append(pq.read_table(pa.BufferReader(body["Body"].read())))
    assert pa.concat_tables(back).sort_by("id").equals(table.select(["id", "text"]))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# The CLI: a fault past the budget exits 74 (EX_IOERR), with real backoff.


def test_cli_exits_74_and_publishes_nothing(proxy: FaultProxy, s3: Any, tmp_path: Path):
    proxy.add(Fault("UploadPart", "status", times=-1, status=500, code="InternalError"))
    env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url}
    done = subprocess.run(
        [sys.executable, "-c", "from engine.cli.app import main; main()", "transform", SRC, DST,
         "--json", "--compression", "none"],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 74, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["type"] == "TransientError" and error["uri"] == DST
    assert "Traceback" not in done.stderr
    assert_nothing_published(s3, proxy)
