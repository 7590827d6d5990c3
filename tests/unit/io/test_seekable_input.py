"""open_seekable: reads at any offset, locally (pread) and on S3 (one ranged GET per read)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

import engine.io
from engine.errors import InputFormatError, InputNotFoundError

DATA = bytes(range(256)) * 64  # 16 KiB


def check_reads(stored: engine.io.SeekableInput) -> None:
    assert stored.size == len(DATA) and stored.seekable() and stored.tell() == 0
    assert stored.read(10) == DATA[:10]
    assert stored.seek(-16, io.SEEK_END) == len(DATA) - 16
    assert stored.read(100) == DATA[-16:]  # clamped at the end
    assert stored.read(1) == b""
    stored.seek(1000)
    assert stored.seek(24, io.SEEK_CUR) == 1024
    buffer = bytearray(300)
    assert stored.readinto(buffer) == 300 and bytes(buffer) == DATA[1024:1324]
    stored.seek(0)
    assert stored.read() == DATA
    assert stored.raw_bytes_read == 10 + 16 + 300 + len(DATA)


def test_local_file(tmp_path: Path):
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)
    with engine.io.open_seekable(str(path)) as stored:
        check_reads(stored)
    assert stored.closed
    with pytest.raises(ValueError, match="closed"):
        stored.read(1)


def test_local_errors_are_typed(tmp_path: Path):
    with pytest.raises(InputNotFoundError):
        engine.io.open_seekable(str(tmp_path / "missing"))
    with pytest.raises(InputFormatError, match="directory"):
        engine.io.open_seekable(str(tmp_path))


def test_s3_object_one_ranged_get_per_read(s3: Any):
    s3.create_bucket(Bucket="raw")
    s3.put_object(Bucket="raw", Key="f.bin", Body=DATA)
    ranges: list[str] = []
    engine.io.s3_client().meta.events.register(
        "before-call.s3.GetObject", lambda params, **_: ranges.append(params["headers"]["Range"]))
    with engine.io.open_seekable("s3://raw/f.bin") as stored:
        check_reads(stored)
    last = len(DATA) - 1
    assert ranges == ["bytes=0-9", f"bytes={last - 15}-{last}", "bytes=1024-1323",
                      f"bytes=0-{last}"]


def test_s3_missing_object_is_input_not_found(s3: Any):
    s3.create_bucket(Bucket="raw")
    with pytest.raises(InputNotFoundError):
        engine.io.open_seekable("s3://raw/nope")
