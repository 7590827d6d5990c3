"""engine.io on local files: compression, streaming reads, error mapping, atomic outputs."""

from __future__ import annotations

import bz2
import gc
import gzip
import io
import os
import subprocess
import sys
from pathlib import Path

import botocore.exceptions
import pytest
import urllib3.exceptions
import zstandard

from engine.errors import (
    InputFormatError,
    InputNotFoundError,
    PermanentError,
    TransientError,
)
from engine.io import (
    AtomicOutput,
    InputStream,
    infer_compression,
    is_s3,
    map_s3_error,
    object_size,
    open_input,
    read_range,
    split_s3,
    strip_compression_suffix,
)

DATA = b"".join(b"%d,row %d,%f\n" % (i, i * 7, i / 3) for i in range(60_000))  # ~1.4 MB


def _compress(compression: str, data: bytes) -> bytes:
    if compression == "gzip":
        return gzip.compress(data)
    if compression == "bz2":
        return bz2.compress(data)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


SUFFIX = {"none": "", "gzip": ".gz", "bz2": ".bz2", "zstd": ".zst"}
COMPRESSIONS = list(SUFFIX)


def _write(tmp_path: Path, name: str, blob: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(blob)
    return str(path)


def _drain(stream: InputStream, size: int = 64 * 1024) -> bytes:
    out = bytearray()
    while chunk := stream.read(size):
        out += chunk
    return bytes(out)


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("x.csv", "none"),
        ("x.csv.gz", "gzip"),
        ("X.CSV.GZ", "gzip"),
        ("s3://b/k/x.json.bz2", "bz2"),
        ("x.ndjson.zst", "zstd"),
        ("x.ndjson.zstd", "zstd"),
        ("x.gzip.csv", "none"),
        ("archive.tgz", "none"),
    ],
)
def test_infer_compression(uri: str, expected: str) -> None:
    assert infer_compression(uri) == expected


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("x.csv.gz", "x.csv"),
        ("s3://b/dir/x.json.ZST", "s3://b/dir/x.json"),
        ("x.csv.zstd", "x.csv"),
        ("x.csv.bz2", "x.csv"),
        ("x.csv", "x.csv"),
    ],
)
def test_strip_compression_suffix(uri: str, expected: str) -> None:
    assert strip_compression_suffix(uri) == expected


def test_is_s3_and_split() -> None:
    assert is_s3("s3://bucket/key")
    assert is_s3("S3://bucket/key")
    assert not is_s3("/tmp/s3://x")
    assert not is_s3("s3a://bucket/key")
    assert split_s3("s3://bucket/a/b//c.csv") == ("bucket", "a/b//c.csv")
    assert split_s3("s3://bucket/", allow_empty_key=True) == ("bucket", "")
    for bad in ("s3://", "s3:///key", "s3://bucket", "s3://bucket/", "/local/path", "gs://b/k"):
        with pytest.raises(ValueError):
            split_s3(bad)


# --- reading ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_open_input_round_trip(tmp_path: Path, compression: str) -> None:
    blob = _compress(compression, DATA)
    uri = _write(tmp_path, "data.csv" + SUFFIX[compression], blob)
    with open_input(uri) as stream:
        assert stream.compression == compression
        assert stream.size == len(blob) == object_size(uri)
        assert stream.raw_bytes_read == 0
        first = stream.read(1000)
        assert len(first) == 1000  # full reads, not short ones
        assert 0 < stream.raw_bytes_read <= len(blob)
        rest = _drain(stream)
        assert stream.raw_bytes_read == len(blob)
        assert stream.tell() == len(DATA)
    assert first + rest == DATA
    assert stream.closed


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_explicit_compression_overrides_suffix(tmp_path: Path, compression: str) -> None:
    uri = _write(tmp_path, "data.bin", _compress(compression, DATA))
    with open_input(uri, compression=compression) as stream:
        assert _drain(stream) == DATA


def test_raw_bytes_read_advances_while_streaming(tmp_path: Path) -> None:
    rng = __import__("random").Random(1)
    noisy = bytes(rng.getrandbits(8) for _ in range(3_000_000))  # incompressible: ~3 MB stored
    uri = _write(tmp_path, "noise.bin.gz", gzip.compress(noisy, compresslevel=1))
    seen = []
    with open_input(uri) as stream:
        while stream.read(256 * 1024):
            seen.append(stream.raw_bytes_read)
    assert seen == sorted(seen)
    assert len(set(seen)) > 3  # progress is reported along the way, not only at the end
    assert seen[0] < stream.size


def test_readline_and_iteration(tmp_path: Path) -> None:
    uri = _write(tmp_path, "lines.csv.zst", _compress("zstd", DATA))
    with open_input(uri) as stream:
        assert stream.readline() == DATA.split(b"\n", 1)[0] + b"\n"
        lines = list(stream)
    assert len(lines) == DATA.count(b"\n") - 1


def test_multi_member_gzip(tmp_path: Path) -> None:
    blob = gzip.compress(DATA[:1000]) + gzip.compress(DATA[1000:500_000]) + gzip.compress(b"")
    blob += gzip.compress(DATA[500_000:])
    uri = _write(tmp_path, "multi.csv.gz", blob)
    with open_input(uri) as stream:
        assert _drain(stream, 7_777) == DATA


def test_multi_stream_bz2_and_multi_frame_zstd(tmp_path: Path) -> None:
    bz = _write(tmp_path, "m.csv.bz2", bz2.compress(DATA[:300_000]) + bz2.compress(DATA[300_000:]))
    cctx = zstandard.ZstdCompressor(write_checksum=True)
    frames = cctx.compress(DATA[:300_000]) + cctx.compress(DATA[300_000:])
    zs = _write(tmp_path, "m.csv.zst", frames)
    for uri in (bz, zs):
        with open_input(uri) as stream:
            assert _drain(stream) == DATA


def test_zstd_streamed_frames_without_content_size(tmp_path: Path) -> None:
    out = io.BytesIO()
    cctx = zstandard.ZstdCompressor(write_checksum=True, write_content_size=False)
    with cctx.stream_writer(out, closefd=False) as writer:
        for start in range(0, len(DATA), 100_000):
            writer.write(DATA[start : start + 100_000])
    skippable = (0x184D2A50).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"hello"
    uri = _write(tmp_path, "s.csv.zst", skippable + out.getvalue())
    with open_input(uri) as stream:
        assert _drain(stream) == DATA


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_empty_inputs(tmp_path: Path, compression: str) -> None:
    uri = _write(tmp_path, "empty" + SUFFIX[compression], _compress(compression, b""))
    with open_input(uri) as stream:
        assert stream.read() == b""


@pytest.mark.parametrize("compression", ["gzip", "bz2", "zstd"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_input_raises_during_read(tmp_path: Path, compression: str, keep: float) -> None:
    blob = _compress(compression, DATA)
    uri = _write(tmp_path, "cut.csv" + SUFFIX[compression], blob[: int(len(blob) * keep)])
    stream = open_input(uri)  # opening succeeds: truncation only shows while reading
    with stream, pytest.raises(InputFormatError) as info:
        _drain(stream)
    err = info.value
    assert err.uri == uri
    assert err.offset is not None and 0 < err.offset <= int(len(blob) * keep)
    assert compression in err.message
    assert "\n" not in str(err)


@pytest.mark.parametrize("compression", ["gzip", "bz2", "zstd"])
def test_corrupt_input_raises_during_read(tmp_path: Path, compression: str) -> None:
    blob = bytearray(_compress(compression, DATA))
    middle = len(blob) // 2
    blob[middle : middle + 64] = b"\xff" * 64
    uri = _write(tmp_path, "bad.csv" + SUFFIX[compression], bytes(blob))
    with open_input(uri) as stream, pytest.raises(InputFormatError) as info:
        _drain(stream)
    assert info.value.uri == uri


@pytest.mark.parametrize("compression", ["gzip", "bz2", "zstd"])
def test_not_compressed_at_all(tmp_path: Path, compression: str) -> None:
    uri = _write(tmp_path, "plain.csv" + SUFFIX[compression], DATA)
    with open_input(uri) as stream, pytest.raises(InputFormatError) as info:
        stream.read(10)
    assert info.value.uri == uri
    assert info.value.offset is not None


def test_zstd_truncation_detected_at_every_cut(tmp_path: Path) -> None:
    """A cut anywhere but between frames is an error (zstandard itself returns a short EOF)."""
    cctx = zstandard.ZstdCompressor(write_checksum=True)
    part1, part2 = cctx.compress(DATA[:5_000]), cctx.compress(DATA[5_000:9_000])
    blob = part1 + part2
    path = tmp_path / "cut.zst"
    for cut in range(1, len(blob)):
        path.write_bytes(blob[:cut])
        with open_input(str(path)) as stream:
            if cut == len(part1):
                assert stream.read() == DATA[:5_000]
            else:
                with pytest.raises(InputFormatError):
                    stream.read()


def test_trailing_garbage_after_gzip(tmp_path: Path) -> None:
    uri = _write(tmp_path, "junk.csv.gz", gzip.compress(DATA) + b"not gzip")
    with open_input(uri) as stream, pytest.raises(InputFormatError):
        _drain(stream)


def test_missing_file(tmp_path: Path) -> None:
    uri = str(tmp_path / "nope.csv")
    with pytest.raises(InputNotFoundError) as info:
        open_input(uri)
    assert info.value.uri == uri
    with pytest.raises(InputNotFoundError):
        object_size(uri)
    with pytest.raises(InputNotFoundError):
        read_range(uri, 0, 10)
    with pytest.raises(InputNotFoundError):
        open_input(str(tmp_path / "nope" / "deeper.csv.gz"))


def test_directory_is_not_a_readable_file(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError) as info:
        open_input(str(tmp_path))
    assert "not a readable file" in info.value.message
    with pytest.raises(InputFormatError):
        object_size(str(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.csv"
    path.write_bytes(DATA)
    path.chmod(0)
    with pytest.raises(PermanentError) as info:
        open_input(str(path))
    assert type(info.value) is PermanentError


def test_file_uri(tmp_path: Path) -> None:
    path = _write(tmp_path, "f.csv", DATA)
    with open_input("file://" + path) as stream:
        assert _drain(stream) == DATA


def test_unknown_compression(tmp_path: Path) -> None:
    uri = _write(tmp_path, "f.csv", DATA)
    with pytest.raises(ValueError):
        open_input(uri, compression="lz4")


def test_read_range_is_raw_and_clamped(tmp_path: Path) -> None:
    blob = _compress("gzip", DATA)
    uri = _write(tmp_path, "r.csv.gz", blob)
    assert read_range(uri, 0, 10) == blob[:10]
    assert read_range(uri, 100, 50) == blob[100:150]
    assert read_range(uri, len(blob) - 5, 100) == blob[-5:]
    assert read_range(uri, len(blob) + 10, 100) == b""
    assert read_range(uri, 5, 0) == b""
    with pytest.raises(ValueError):
        read_range(uri, -1, 10)


def test_read_after_close(tmp_path: Path) -> None:
    stream = open_input(_write(tmp_path, "f.csv", DATA))
    stream.close()
    stream.close()  # idempotent
    with pytest.raises(ValueError):
        stream.read(1)


def test_transient_error_from_the_source_passes_through_decompression(tmp_path: Path) -> None:
    blob = _compress("gzip", DATA)

    class Flaky(io.RawIOBase):
        def __init__(self) -> None:
            self.inner = io.BytesIO(blob)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:
            if self.inner.tell() > len(blob) // 2:
                raise botocore.exceptions.ReadTimeoutError(endpoint_url="http://x")
            return self.inner.readinto(buffer[:1000])

    stream = InputStream(
        Flaky(),
        "s3://b/k.gz",
        "gzip",
        size=len(blob),
        map_error=lambda exc, offset: map_s3_error(exc, "s3://b/k.gz", offset=offset),
    )
    with stream, pytest.raises(TransientError) as info:
        _drain(stream)
    assert info.value.uri == "s3://b/k.gz"
    assert info.value.offset is not None and info.value.offset > len(blob) // 2


# --- S3 error mapping (no AWS needed) ---------------------------------------------------------


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {
            "Error": {"Code": code, "Message": "msg\nwith newline"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "GetObject",
    )


@pytest.mark.parametrize(
    ("code", "status", "output", "expected"),
    [
        ("NoSuchKey", 404, False, InputNotFoundError),
        ("NoSuchBucket", 404, False, InputNotFoundError),
        ("404", 404, False, InputNotFoundError),
        ("NoSuchBucket", 404, True, PermanentError),
        ("AccessDenied", 403, False, PermanentError),
        ("403", 403, True, PermanentError),
        ("SlowDown", 503, False, TransientError),
        ("503", 503, True, TransientError),
        ("RequestTimeout", 400, False, TransientError),
        ("InternalError", 500, True, TransientError),
        ("ExpiredToken", 400, False, TransientError),
        ("PreconditionFailed", 412, False, TransientError),
        ("InvalidArgument", 400, False, PermanentError),
    ],
)
def test_map_client_errors(code: str, status: int, output: bool, expected: type) -> None:
    mapped = map_s3_error(_client_error(code, status), "s3://b/k", output=output)
    assert type(mapped) is expected
    assert mapped is not None and mapped.uri == "s3://b/k"
    assert "\n" not in str(mapped)
    if output and code == "NoSuchBucket":
        assert "output bucket does not exist" in mapped.message


@pytest.mark.parametrize(("bucket_answer", "message"), [
    (404, "bucket does not exist"),
    (403, "object not found"),  # no s3:ListBucket: the bucket may well exist
    (200, "object not found"),
])
def test_head_object_names_a_missing_bucket(bucket_answer: int, message: str) -> None:
    import boto3
    from botocore.stub import Stubber

    from engine.io.s3 import head_object

    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("head_object", "404", http_status_code=404)
        if bucket_answer == 200:
            stub.add_response("head_bucket", {})
        else:
            stub.add_client_error("head_bucket", str(bucket_answer),
                                  http_status_code=bucket_answer)
        with pytest.raises(InputNotFoundError) as info:
            head_object(client, "s3://b/k.csv")
        stub.assert_no_pending_responses()
    assert (info.value.uri, info.value.message) == ("s3://b/k.csv", message)


def test_map_wrapped_errors() -> None:
    # smart-open wraps ClientErrors: OSError with .backend_error on reads, ValueError (cause) on
    # CreateMultipartUpload.
    wrapped = OSError("unable to access bucket")
    wrapped.backend_error = _client_error("NoSuchKey", 404)  # type: ignore[attr-defined]
    assert type(map_s3_error(wrapped, "s3://b/k")) is InputNotFoundError
    try:
        try:
            raise _client_error("NoSuchBucket", 404)
        except botocore.exceptions.ClientError as exc:
            raise ValueError("the bucket does not exist, or is forbidden") from exc
    except ValueError as exc:
        assert type(map_s3_error(exc, "s3://b/k", output=True)) is PermanentError


@pytest.mark.parametrize(
    "exc",
    [
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"),
        botocore.exceptions.ConnectionClosedError(endpoint_url="http://x"),
        botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"),
        botocore.exceptions.ConnectTimeoutError(endpoint_url="http://x"),
        urllib3.exceptions.ProtocolError("Connection broken"),
        ConnectionResetError(104, "reset"),
        OSError("smart_open: failed to read 100 bytes after 5 attempts"),
    ],
)
def test_map_network_errors(exc: BaseException) -> None:
    mapped = map_s3_error(exc, "s3://b/k", offset=12)
    assert type(mapped) is TransientError
    assert mapped is not None and mapped.offset == 12


def test_map_leaves_bugs_alone() -> None:
    assert map_s3_error(KeyError("x"), "s3://b/k") is None
    assert map_s3_error(ValueError("x"), "s3://b/k") is None
    assert type(map_s3_error(botocore.exceptions.NoCredentialsError(), "s3://b/k")) is (
        PermanentError
    )


# --- atomic local outputs ---------------------------------------------------------------------


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_atomic_output_commits_on_clean_exit(tmp_path: Path) -> None:
    final = tmp_path / "out" / "deeper" / "x.parquet"
    out = AtomicOutput(str(final))
    with out as fh:
        fh.write(b"hello ")
        fh.write(memoryview(b"world"))
        # nothing is visible until commit, but the temp file sits next to the target
        assert not final.exists()
        assert [n for n in _leftovers(final.parent) if n.startswith(".x.parquet.")]
    assert final.read_bytes() == b"hello world"
    assert out.bytes_written == 11 and out.committed
    assert _leftovers(final.parent) == ["x.parquet"]


def test_a_native_output_is_pyarrows_file_committed_as_the_others(tmp_path: Path) -> None:
    import pyarrow as pa

    final = tmp_path / "out" / "x.parquet"
    out = AtomicOutput(str(final))
    native = out.open_native()
    assert isinstance(native, pa.NativeFile)
    native.write(b"hello ")
    native.write(memoryview(b"world"))
    assert out.bytes_written == 11 and not final.exists()
    with pytest.raises(ValueError, match="already opened"):
        out.open()
    out.commit()
    assert final.read_bytes() == b"hello world" and out.bytes_written == 11
    assert _leftovers(final.parent) == ["x.parquet"]
    dropped = AtomicOutput(str(tmp_path / "y.parquet"))
    dropped.open_native().write(b"partial")
    dropped.abort()
    assert _leftovers(tmp_path) == ["out"]


def test_a_full_disk_under_pyarrows_own_file_is_a_typed_error_and_leaves_nothing(
        tmp_path: Path) -> None:
    # A file size limit makes write() fail as a full disk does (EFBIG instead of ENOSPC)
    code = f"""
import resource, signal, sys
from pathlib import Path
import pyarrow as pa, pyarrow.csv as pacsv
import engine
from engine.errors import EngineError
tmp = Path({str(tmp_path)!r})
pacsv.write_csv(pa.table({{"s": [str(i) * 40 for i in range(4000)]}}), tmp / "big.csv")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
try:
    engine.transform(tmp / "big.csv", tmp / "out" / "x.parquet", compression="none")
except EngineError as exc:
    print(type(exc).__name__, exc)
    sys.exit(0)
sys.exit("no error")
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("TransientError ") and "x.parquet" in run.stdout
    assert "File too large" in run.stdout  # the reason, from the operating system
    assert _leftovers(tmp_path / "out") == []  # no temp file, no output


def test_atomic_output_replaces_existing(tmp_path: Path) -> None:
    final = tmp_path / "x.bin"
    final.write_bytes(b"old")
    with AtomicOutput(str(final)) as fh:
        fh.write(b"new")
        assert final.read_bytes() == b"old"
    assert final.read_bytes() == b"new"


def test_atomic_output_exception_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "x.bin"
    out = AtomicOutput(str(final))
    with pytest.raises(RuntimeError, match="boom"), out as fh:
        fh.write(b"partial")
        raise RuntimeError("boom")
    assert out.aborted and not out.committed
    assert _leftovers(tmp_path) == []


def test_atomic_output_exception_keeps_previous_version(tmp_path: Path) -> None:
    final = tmp_path / "x.bin"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError), AtomicOutput(str(final)) as fh:
        fh.write(b"new")
        raise RuntimeError
    assert final.read_bytes() == b"old"
    assert _leftovers(tmp_path) == ["x.bin"]


def test_abort_is_idempotent_and_final(tmp_path: Path) -> None:
    out = AtomicOutput(str(tmp_path / "x.bin"))
    fh = out.open()
    fh.write(b"data")
    out.abort()
    out.abort()
    out.__exit__(None, None, None)  # a clean exit after abort does not commit
    assert _leftovers(tmp_path) == []
    with pytest.raises(ValueError):
        fh.write(b"more")
    with pytest.raises(ValueError):
        out.commit()


def test_commit_twice_and_abort_after_commit(tmp_path: Path) -> None:
    final = tmp_path / "x.bin"
    out = AtomicOutput(str(final))
    with out as fh:
        fh.write(b"data")
        out.commit()
    out.commit()
    out.abort()  # too late to discard: a no-op
    assert final.read_bytes() == b"data"


def test_empty_output_is_created(tmp_path: Path) -> None:
    with AtomicOutput(str(tmp_path / "empty.bin")):
        pass
    assert (tmp_path / "empty.bin").read_bytes() == b""


def test_closing_the_handle_does_not_commit(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    final = tmp_path / "t.parquet"
    table = pa.table({"a": list(range(1000))})
    out = AtomicOutput(str(final))
    with pytest.raises(RuntimeError), out as fh:
        with pq.ParquetWriter(fh, table.schema) as writer:
            writer.write_table(table)
        fh.close()
        assert not final.exists()
        raise RuntimeError("fail after the writer closed")
    assert _leftovers(tmp_path) == []

    with AtomicOutput(str(final)) as fh:
        with pq.ParquetWriter(fh, table.schema) as writer:
            writer.write_table(table)
    assert pq.read_table(final).equals(table)


def test_dropped_output_is_aborted_not_published(tmp_path: Path) -> None:
    out = AtomicOutput(str(tmp_path / "x.bin"))
    out.open().write(b"data")
    del out
    gc.collect()
    assert _leftovers(tmp_path) == []


def test_output_path_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(PermanentError), AtomicOutput(str(tmp_path / "dir")) as fh:
        fh.write(b"x")
    assert _leftovers(tmp_path) == ["dir"]


def test_output_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(PermanentError), AtomicOutput(str(tmp_path / "file" / "x.bin")):
        pass


def test_delete_after_commit(tmp_path: Path) -> None:
    final = tmp_path / "x.bin"
    out = AtomicOutput(str(final))
    with out as fh:
        fh.write(b"data")
    out.delete()
    assert not final.exists() and out.aborted and not out.committed
    out.delete()  # idempotent


def test_delete_before_commit_aborts(tmp_path: Path) -> None:
    out = AtomicOutput(str(tmp_path / "x.bin"))
    out.open().write(b"data")
    out.delete()
    assert out.aborted
    assert _leftovers(tmp_path) == []


# --- import cost --------------------------------------------------------------------------------


def test_local_io_never_imports_the_s3_stack(tmp_path: Path) -> None:
    """boto3 & co. cost ~25 MiB of RSS: only an s3:// URI may load them (engine.io.s3)."""
    uri = _write(tmp_path, "f.csv.gz", _compress("gzip", DATA))
    script = f"""
import sys
import engine.io as eio
with eio.open_input({uri!r}) as stream:
    stream.read()
eio.object_size({uri!r}), eio.read_range({uri!r}, 0, 10)
with eio.AtomicOutput({str(tmp_path / "out.bin")!r}) as fh:
    fh.write(b"x")
eio.reset_s3_client()
heavy = ("boto3", "botocore", "smart_open", "urllib3", "engine.io.s3")
print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m in heavy)))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""
