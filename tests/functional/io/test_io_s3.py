"""engine.io against S3: moto in-process, and a loopback moto server via AWS_ENDPOINT_URL."""

from __future__ import annotations

import gc
import gzip
import os
import subprocess
import sys
from typing import Any

import boto3
import botocore.exceptions
import pytest
import zstandard

import engine.io
import engine.io.s3
from engine.config import MiB
from engine.errors import InputFormatError, InputNotFoundError, PermanentError, TransientError
from engine.io import AtomicOutput, object_size, open_input, read_range

DATA = b"".join(b"%d,row %d,%f\n" % (i, i * 7, i / 3) for i in range(60_000))
BUCKET = "in-bucket"


def _drain(stream: Any, size: int = 64 * 1024) -> bytes:
    out = bytearray()
    while chunk := stream.read(size):
        out += chunk
    return bytes(out)


def _exists(client: Any, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey"):
            return False
        raise
    return True


def _open_uploads(client: Any, bucket: str) -> list[Any]:
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


@pytest.fixture
def bucket(s3: Any) -> str:
    s3.create_bucket(Bucket=BUCKET)
    return BUCKET


# --- reading ------------------------------------------------------------------------------------


def test_read_plain_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="in/data.csv", Body=DATA)
    uri = f"s3://{bucket}/in/data.csv"
    assert object_size(uri) == len(DATA)
    with open_input(uri) as stream:
        assert stream.size == len(DATA)
        head = stream.read(1000)
        assert len(head) == 1000
        assert 0 < stream.raw_bytes_read < len(DATA)  # streamed, not fetched whole
        rest = _drain(stream)
        assert stream.raw_bytes_read == len(DATA)
    assert head + rest == DATA


@pytest.mark.parametrize(
    ("suffix", "blob"),
    [
        (".gz", gzip.compress(DATA[:400_000]) + gzip.compress(DATA[400_000:])),
        (".zst", zstandard.ZstdCompressor().compress(DATA)),
    ],
)
def test_read_compressed_object(s3: Any, bucket: str, suffix: str, blob: bytes) -> None:
    s3.put_object(Bucket=bucket, Key="data.csv" + suffix, Body=blob)
    uri = f"s3://{bucket}/data.csv{suffix}"
    assert object_size(uri) == len(blob)
    with open_input(uri) as stream:
        assert _drain(stream) == DATA
        assert stream.raw_bytes_read == len(blob)


def test_read_empty_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="empty.csv", Body=b"")
    with open_input(f"s3://{bucket}/empty.csv") as stream:
        assert stream.size == 0
        assert stream.read(10) == b""
    assert read_range(f"s3://{bucket}/empty.csv", 0, 10) == b""


def test_truncated_gzip_object(s3: Any, bucket: str) -> None:
    blob = gzip.compress(DATA)
    s3.put_object(Bucket=bucket, Key="cut.csv.gz", Body=blob[: len(blob) // 2])
    uri = f"s3://{bucket}/cut.csv.gz"
    with open_input(uri) as stream, pytest.raises(InputFormatError) as info:
        _drain(stream)
    assert info.value.uri == uri
    assert info.value.offset == len(blob) // 2


def test_read_range(s3: Any, bucket: str) -> None:
    blob = gzip.compress(DATA)
    s3.put_object(Bucket=bucket, Key="r.csv.gz", Body=blob)
    uri = f"s3://{bucket}/r.csv.gz"
    assert read_range(uri, 0, 100) == blob[:100]
    assert read_range(uri, 1000, 4096) == blob[1000:5096]
    assert read_range(uri, len(blob) - 10, 100) == blob[-10:]
    assert read_range(uri, len(blob), 100) == b""
    assert read_range(uri, len(blob) + 100, 100) == b""
    assert read_range(uri, 10, 0) == b""


def test_missing_key(s3: Any, bucket: str) -> None:
    uri = f"s3://{bucket}/nope.csv"
    for call in (lambda: open_input(uri), lambda: object_size(uri), lambda: read_range(uri, 0, 1)):
        with pytest.raises(InputNotFoundError) as info:
            call()
        assert info.value.uri == uri
    with pytest.raises(InputNotFoundError):
        read_range(uri, 0, 0)


def test_missing_bucket(s3: Any) -> None:
    uri = "s3://no-such-bucket/data.csv"
    for call in (lambda: open_input(uri), lambda: object_size(uri), lambda: read_range(uri, 0, 1)):
        with pytest.raises(InputNotFoundError) as info:
            call()
        assert info.value.uri == uri
    with pytest.raises(InputNotFoundError, match="bucket does not exist"):
        read_range(uri, 0, 1)


def test_object_deleted_mid_read(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="gone.csv", Body=DATA)
    with open_input(f"s3://{bucket}/gone.csv") as stream:
        s3.delete_object(Bucket=bucket, Key="gone.csv")
        with pytest.raises(InputNotFoundError):
            stream.read(10)


def test_object_replaced_mid_read_is_not_spliced(s3: Any, bucket: str) -> None:
    """Opening pins the ETag: a replaced object fails with TransientError (retry reads anew)."""
    s3.put_object(Bucket=bucket, Key="v.csv", Body=DATA)
    with open_input(f"s3://{bucket}/v.csv") as stream:
        s3.put_object(Bucket=bucket, Key="v.csv", Body=DATA[::-1])
        with pytest.raises(TransientError) as info:
            stream.read(10)
    assert "PreconditionFailed" in info.value.message


def test_throttling_is_transient(s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.put_object(Bucket=bucket, Key="t.csv", Body=DATA)
    client = engine.io.s3_client()

    def slow_down(**kwargs: Any) -> Any:
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}},
            "GetObject",
        )

    monkeypatch.setattr(client, "get_object", slow_down)
    with open_input(f"s3://{bucket}/t.csv") as stream, pytest.raises(TransientError) as info:
        stream.read(10)
    assert "SlowDown" in info.value.message
    with pytest.raises(TransientError):
        read_range(f"s3://{bucket}/t.csv", 0, 10)


def test_client_is_cached_and_configured(s3: Any) -> None:
    client = engine.io.s3_client()
    assert engine.io.s3_client() is client
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
    engine.io.reset_s3_client()
    assert engine.io.s3_client() is not client


def test_s3_backend_loads_neither_smart_open_nor_boto3() -> None:
    """Both cost memory under the 200 MiB bar and give the engine nothing (issue 23): smart-open
    7 MiB of imports, boto3's session ~4 MiB (its import, and s3transfer in every client)."""
    code = ("import sys, engine.io.s3; engine.io.s3.s3_client(); "
            "print(sorted(m for m in ('smart_open', 'boto3', 's3transfer') if m in sys.modules))")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True)
    assert done.stdout.strip() == "[]"


# --- writing ------------------------------------------------------------------------------------


def test_atomic_output_multipart_commit(s3: Any, bucket: str) -> None:
    payload = bytes(range(256)) * (11 * MiB // 256 + 1000)  # > 2 parts of 5 MiB
    out = AtomicOutput(f"s3://{bucket}/out/big.bin", part_size=5 * MiB)
    with out as fh:
        for start in range(0, len(payload), 1 * MiB + 17):
            fh.write(payload[start : start + 1 * MiB + 17])
        assert not _exists(s3, bucket, "out/big.bin")
        assert len(_open_uploads(s3, bucket)) == 1
    assert out.committed and out.bytes_written == len(payload)
    assert s3.head_object(Bucket=bucket, Key="out/big.bin")["ETag"].endswith('-3"')  # 3 parts
    assert s3.get_object(Bucket=bucket, Key="out/big.bin")["Body"].read() == payload
    assert _open_uploads(s3, bucket) == []


def test_atomic_output_small_part_size_is_clamped(s3: Any, bucket: str) -> None:
    out = AtomicOutput(f"s3://{bucket}/small.bin", part_size=1024)
    with out as fh:
        fh.write(b"x" * 6 * MiB)
    assert s3.head_object(Bucket=bucket, Key="small.bin")["ETag"].endswith('-2"')  # 5 + 1 MiB


def test_atomic_output_empty_object(s3: Any, bucket: str) -> None:
    with AtomicOutput(f"s3://{bucket}/empty.parquet"):
        pass
    assert s3.get_object(Bucket=bucket, Key="empty.parquet")["Body"].read() == b""
    assert _open_uploads(s3, bucket) == []


def test_atomic_output_exception_leaves_nothing(s3: Any, bucket: str) -> None:
    out = AtomicOutput(f"s3://{bucket}/out/fail.bin", part_size=5 * MiB)
    with pytest.raises(RuntimeError, match="boom"), out as fh:
        fh.write(b"y" * (6 * MiB))  # one part already uploaded
        raise RuntimeError("boom")
    assert out.aborted
    assert not _exists(s3, bucket, "out/fail.bin")
    assert _open_uploads(s3, bucket) == []


def test_failed_part_upload_aborts(s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = engine.io.s3_client()
    real_upload_part = client.upload_part
    calls = []

    def flaky_upload_part(**kwargs: Any) -> Any:
        calls.append(kwargs["PartNumber"])
        if kwargs["PartNumber"] == 2:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "SlowDown", "Message": "Reduce your request rate"}},
                "UploadPart",
            )
        return real_upload_part(**kwargs)

    monkeypatch.setattr(client, "upload_part", flaky_upload_part)
    out = AtomicOutput(f"s3://{bucket}/out/flaky.bin", part_size=5 * MiB)
    with pytest.raises(TransientError) as info, out as fh:
        for _ in range(12):
            fh.write(b"z" * MiB)
    assert calls == [1, 2]
    assert info.value.uri == f"s3://{bucket}/out/flaky.bin"
    monkeypatch.undo()
    assert not _exists(s3, bucket, "out/flaky.bin")
    assert _open_uploads(s3, bucket) == []


def test_failed_completion_aborts(s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = engine.io.s3_client()

    def broken(**kwargs: Any) -> Any:
        raise botocore.exceptions.ConnectionClosedError(endpoint_url="http://s3")

    monkeypatch.setattr(client, "complete_multipart_upload", broken)
    out = AtomicOutput(f"s3://{bucket}/out/done.bin", part_size=5 * MiB)
    with pytest.raises(TransientError), out as fh:
        fh.write(b"d" * (6 * MiB))  # past one part: a multipart upload
    assert out.aborted
    monkeypatch.undo()
    gc.collect()
    assert not _exists(s3, bucket, "out/done.bin")
    assert _open_uploads(s3, bucket) == []


def test_output_smaller_than_a_part_is_one_put(s3: Any, bucket: str) -> None:
    """Held in memory and published by one PutObject: no upload is created, none is left."""
    calls: list[str] = []
    engine.io.s3_client().meta.events.register(
        "before-call.s3", lambda model, **kw: calls.append(model.name))
    out = AtomicOutput(f"s3://{bucket}/out/small.bin", part_size=5 * MiB)
    with out as fh:
        for _ in range(4):
            fh.write(b"s" * MiB)
        assert calls == [] and out.pending_bytes == 4 * MiB  # nothing sent before the commit
    assert calls == ["PutObject"]
    assert s3.get_object(Bucket=bucket, Key="out/small.bin")["Body"].read() == b"s" * 4 * MiB
    assert _open_uploads(s3, bucket) == []


def test_failed_put_publishes_nothing(s3: Any, bucket: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    client = engine.io.s3_client()

    def broken(**kwargs: Any) -> Any:
        raise botocore.exceptions.ConnectionClosedError(endpoint_url="http://s3")

    monkeypatch.setattr(client, "put_object", broken)
    out = AtomicOutput(f"s3://{bucket}/out/put.bin")
    with pytest.raises(TransientError) as info, out as fh:
        fh.write(b"data")
    assert out.aborted and info.value.uri == f"s3://{bucket}/out/put.bin"
    monkeypatch.undo()
    assert not _exists(s3, bucket, "out/put.bin")
    assert _open_uploads(s3, bucket) == []


def test_aborted_writer_garbage_collected_leaves_nothing(s3: Any, bucket: str) -> None:
    out = AtomicOutput(f"s3://{bucket}/out/gc.bin", part_size=5 * MiB)
    fh = out.open()
    fh.write(b"g" * (6 * MiB))
    out.abort()
    out.abort()  # idempotent
    del out, fh
    gc.collect()
    assert not _exists(s3, bucket, "out/gc.bin")
    assert _open_uploads(s3, bucket) == []


def test_abandoned_output_garbage_collected_is_aborted(s3: Any, bucket: str) -> None:
    """Neither committed nor aborted: collection must abort, never complete, the upload."""
    out = AtomicOutput(f"s3://{bucket}/out/abandoned.bin")
    fh = out.open()
    fh.write(b"partial")
    del out, fh
    gc.collect()
    assert not _exists(s3, bucket, "out/abandoned.bin")
    assert _open_uploads(s3, bucket) == []


def test_abandoned_multipart_writer_is_aborted_not_completed(s3: Any, bucket: str) -> None:
    """smart-open's writer completes the upload when collected (IOBase.__del__ -> close()).

    The engine's subclass aborts instead, even when it outlives its AtomicOutput.
    """
    writer = engine.io.s3.GuardedMultipartWriter(
        bucket, "out/orphan.bin", client=engine.io.s3_client()
    )
    writer.write(b"partial")
    assert len(_open_uploads(s3, bucket)) == 1
    del writer
    gc.collect()
    assert not _exists(s3, bucket, "out/orphan.bin")
    assert _open_uploads(s3, bucket) == []


def test_abort_survives_a_failing_terminate(
    s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = engine.io.s3_client()
    out = AtomicOutput(f"s3://{bucket}/out/stuck.bin", part_size=5 * MiB)
    fh = out.open()
    fh.write(b"d" * (6 * MiB))  # past one part: a multipart upload

    def broken(**kwargs: Any) -> Any:
        raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3")

    monkeypatch.setattr(client, "abort_multipart_upload", broken)
    out.abort()  # logs, does not raise
    monkeypatch.undo()
    del out, fh
    gc.collect()
    # The upload is orphaned (a lifecycle rule's job) but was never completed.
    assert not _exists(s3, bucket, "out/stuck.bin")
    assert len(_open_uploads(s3, bucket)) == 1


def test_delete_published_object(s3: Any, bucket: str) -> None:
    out = AtomicOutput(f"s3://{bucket}/out/rotated-0.parquet")
    with out as fh:
        fh.write(b"data")
    assert _exists(s3, bucket, "out/rotated-0.parquet")
    out.delete()
    out.delete()
    assert not _exists(s3, bucket, "out/rotated-0.parquet")


def test_output_bucket_missing(s3: Any) -> None:
    with pytest.raises(PermanentError, match="output bucket does not exist") as info:
        with AtomicOutput("s3://no-such-bucket/out.parquet"):
            pass
    assert type(info.value) is PermanentError


def test_parquet_writer_to_s3(s3: Any, bucket: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"a": list(range(10_000)), "b": [str(i) for i in range(10_000)]})
    with AtomicOutput(f"s3://{bucket}/t.parquet") as fh:
        with pq.ParquetWriter(fh, table.schema) as writer:
            writer.write_table(table)
        assert not _exists(s3, bucket, "t.parquet")  # closing the pyarrow writer is not a commit
    body = s3.get_object(Bucket=bucket, Key="t.parquet")["Body"].read()
    assert pq.read_table(pa.BufferReader(body)).equals(table)


# --- a real HTTP endpoint through AWS_ENDPOINT_URL --------------------------------------------


@pytest.mark.s3server
def test_endpoint_url_redirects_reads_and_writes(moto_server: str) -> None:
    client = engine.io.s3_client()
    assert client.meta.endpoint_url == moto_server
    plain = boto3.client("s3")  # the test's own client also follows AWS_ENDPOINT_URL
    plain.create_bucket(Bucket="srv")
    blob = gzip.compress(DATA)
    plain.put_object(Bucket="srv", Key="in/data.csv.gz", Body=blob)

    uri = "s3://srv/in/data.csv.gz"
    assert object_size(uri) == len(blob)
    assert read_range(uri, 10, 20) == blob[10:30]
    with open_input(uri) as stream:
        assert _drain(stream) == DATA

    with AtomicOutput("s3://srv/out/data.csv", part_size=5 * MiB) as fh:
        fh.write(DATA * 5)  # > 5 MiB: a real multipart upload over HTTP
    assert plain.get_object(Bucket="srv", Key="out/data.csv")["Body"].read() == DATA * 5

    with pytest.raises(InputNotFoundError):
        open_input("s3://srv/missing.csv")


@pytest.mark.s3server
def test_endpoint_url_abort_over_http(moto_server: str) -> None:
    plain = boto3.client("s3")
    plain.create_bucket(Bucket="srv")
    out = AtomicOutput("s3://srv/out/fail.bin", part_size=5 * MiB)
    with pytest.raises(RuntimeError), out as fh:
        fh.write(b"f" * (6 * MiB))
        raise RuntimeError("boom")
    del out, fh
    gc.collect()
    assert not _exists(plain, "srv", "out/fail.bin")
    assert plain.list_multipart_uploads(Bucket="srv").get("Uploads", []) == []


@pytest.mark.s3server
def test_unreachable_endpoint_is_transient(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(
        engine.io.s3,
        "CLIENT_CONFIG",
        engine.io.s3.CLIENT_CONFIG.merge(
            botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1})
        ),
    )
    engine.io.reset_s3_client()
    with pytest.raises(TransientError) as info:
        open_input("s3://b/k.csv")
    assert info.value.uri == "s3://b/k.csv"
    engine.io.reset_s3_client()


def test_a_write_after_a_failed_part_raises_at_once() -> None:
    """The writer's promise: after a part fails, every later write (not only the next part)
    raises that error again."""
    from engine.io.s3 import GuardedMultipartWriter

    class FailingParts:
        aborted = 0

        def create_multipart_upload(self, **_: Any) -> dict[str, str]:
            return {"UploadId": "u1"}

        def upload_part(self, **_: Any) -> dict[str, str]:
            raise RuntimeError("part failed")

        def abort_multipart_upload(self, **_: Any) -> None:
            FailingParts.aborted += 1

    writer = GuardedMultipartWriter("b", "k", client=FailingParts(), part_size=4)
    with pytest.raises(RuntimeError, match="part failed"):
        writer.write(b"12345")
    with pytest.raises(RuntimeError, match="part failed"):
        writer.write(b"x")
    writer.terminate()
    assert FailingParts.aborted == 1
