"""The spool: S3 part buffers on local disk, its budget, its disk check and its clean-up."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from engine.config import S3_MAX_PART_SIZE, S3_MIN_PART_SIZE
from engine.errors import DiskSpaceError
from engine.sink.spool import Spool, spool_bytes_needed

MiB = 1024**2


def test_budget_is_one_part_per_open_output_clamped_to_s3_limits():
    assert spool_bytes_needed(32, 8 * MiB) == 256 * MiB
    assert spool_bytes_needed(3, 1) == 3 * S3_MIN_PART_SIZE
    assert spool_bytes_needed(2, 10 * S3_MAX_PART_SIZE) == 2 * S3_MAX_PART_SIZE


def test_too_little_free_disk_is_refused_before_anything_is_created(tmp_path: Path):
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(DiskSpaceError, match="EphemeralStorage") as info:
        Spool(free + 1, directory=str(tmp_path), uri="s3://b/out/")
    assert info.value.uri == "s3://b/out/"
    assert info.value.exit_code == 73
    assert list(tmp_path.iterdir()) == []


def test_the_reserve_counts_against_the_free_space(tmp_path: Path):
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(DiskSpaceError):
        Spool(MiB, directory=str(tmp_path), reserve_bytes=free)


def test_a_missing_directory_is_a_disk_space_error(tmp_path: Path):
    with pytest.raises(DiskSpaceError, match="cannot be used"):
        Spool(MiB, directory=str(tmp_path / "missing"))


def test_buffers_are_anonymous_files_in_a_private_directory(tmp_path: Path):
    spool = Spool(4 * MiB, directory=str(tmp_path))
    assert Path(spool.path).parent == tmp_path
    buffer = spool.buffer()
    buffer.write(b"x" * 1000)
    buffer.seek(0)
    assert buffer.read() == b"x" * 1000
    assert os.listdir(spool.path) == []  # unlinked: a killed process leaves no bytes behind
    buffer.close()
    spool.close()
    assert not Path(spool.path).exists()
    spool.close()  # closing twice is harmless


def test_note_keeps_the_peak_and_refuses_past_the_budget(tmp_path: Path):
    spool = Spool(4 * MiB, directory=str(tmp_path), uri="s3://b/out/")
    spool.note(3 * MiB)
    spool.note(MiB)
    assert spool.peak_bytes == 3 * MiB
    with pytest.raises(DiskSpaceError, match="over its budget") as info:
        spool.note(4 * MiB + 1)
    assert info.value.uri == "s3://b/out/"
    spool.close()
