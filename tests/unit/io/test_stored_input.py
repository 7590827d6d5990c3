"""An input's head read once (engine.io.stored); S3 requests by kind; threads for small inputs."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import boto3
import pytest

from engine.config import DEFAULT_BLOCK_SIZE, THREADED_BLOCK_SIZE, MiB, ReadOptions
from engine.errors import TransientError
from engine.io import open_input, open_seekable, probe_input, read_range
from engine.io.requests import add, counting
from engine.readers.sampling import resolve_input
from engine.runtime.threads import Prefetch, conversion_threads, worker_threads

DATA = b"".join(b"%d,row %d\n" % (i, i * 7) for i in range(300_000))  # ~3.5 MB


def _drain(stream: Any) -> bytes:
    out = bytearray()
    while chunk := stream.read(100_000):
        out += chunk
    return bytes(out)


def test_a_small_local_file_is_read_whole_once(tmp_path: Path) -> None:
    path = tmp_path / "in.csv.gz"
    path.write_bytes(gzip.compress(DATA))
    head = probe_input(str(path), 1024, whole_up_to=8 * MiB)
    assert head.whole and head.continuable and head.data == path.read_bytes()
    path.unlink()  # from here on, only the head's bytes can be read
    with open_input(str(path), head=head) as stream:
        assert _drain(stream) == DATA
    assert read_range(str(path), 10, 20, head=head) == gzip.compress(DATA)[10:30]
    with open_seekable(str(path), head=head) as seekable:
        seekable.seek(5)
        assert seekable.read(7) == gzip.compress(DATA)[5:12]


def test_a_large_local_file_is_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(DATA)
    head = probe_input(str(path), 1024, whole_up_to=1024)
    assert (head.data, head.size, head.whole, head.continuable) == (b"", len(DATA), False, False)
    with open_input(str(path), head=head) as stream:  # read from the file, from its start
        assert _drain(stream) == DATA


def test_a_byte_range_is_probed_within_its_bounds(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(DATA)
    head = probe_input(str(path), 1024, whole_up_to=MiB, byte_range=(100, 5000))
    assert (head.start, head.end, head.data) == (100, 5000, DATA[100:5000])
    with open_input(str(path), "none", byte_range=(100, 5000), head=head) as stream:
        assert _drain(stream) == DATA[100:5000]


def test_an_s3_object_is_read_on_from_the_head_with_no_second_head(moto_server: str) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="raw")
    s3.put_object(Bucket="raw", Key="in.csv", Body=DATA)
    uri = "s3://raw/in.csv"
    with counting() as count:
        head = probe_input(uri, MiB)
        assert not head.whole and head.continuable and head.data == DATA[:MiB]
        assert read_range(uri, 100, 50, head=head) == DATA[100:150]  # from memory
        assert count.to_dict() == {"GetObject": 1, "HeadObject": 1}
        with open_input(uri, head=head) as stream:
            assert _drain(stream) == DATA
        assert count.to_dict() == {"GetObject": 2, "HeadObject": 1}  # the rest: one GET
        assert read_range(uri, 2 * MiB, 10, head=head) == DATA[2 * MiB:2 * MiB + 10]
    assert count.to_dict() == {"GetObject": 3, "HeadObject": 1}


def test_a_changed_s3_object_is_not_continued(moto_server: str) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="raw")
    s3.put_object(Bucket="raw", Key="in.csv", Body=DATA)
    head = probe_input("s3://raw/in.csv", MiB)
    s3.put_object(Bucket="raw", Key="in.csv", Body=DATA[::-1])  # replaced after the probe
    # the rest is read If-Match the probe's ETag: a retry starts over, never splices versions
    with pytest.raises(TransientError, match="PreconditionFailed|412"), open_input(
            "s3://raw/in.csv", head=head) as stream:
        _drain(stream)


def test_requests_are_counted_per_run_and_on_worker_threads() -> None:
    def source() -> Any:
        for _ in range(3):
            add("GetObject")  # as a read on the parse thread does
            yield 1

    add("HeadObject")  # outside any count: not counted anywhere
    with counting() as outer:
        with counting() as inner, Prefetch(source()) as items:
            assert list(items) == [1, 1, 1]
        add("PutObject")
    assert inner.to_dict() == {"GetObject": 3} and inner.total == 3
    assert outer.to_dict() == {"PutObject": 1}


def test_a_small_input_runs_on_the_calling_thread() -> None:
    block = 4 * MiB
    many = worker_threads(None)
    assert conversion_threads(None, MiB, compressed=False, block_size=block) == 1
    assert conversion_threads(None, 2 * block, compressed=False, block_size=block) == 1
    assert conversion_threads(None, 2 * block + 1, compressed=False, block_size=block) == many
    assert conversion_threads(None, 3 * MiB, compressed=True, block_size=block) == many
    assert conversion_threads(None, None, compressed=False, block_size=block) == many
    assert conversion_threads(2, MiB, compressed=False, block_size=block) == 2
    assert conversion_threads(1, 100 * MiB, compressed=False, block_size=block) == 1


def test_worker_threads_read_smaller_blocks_unless_a_block_size_was_chosen(
        tmp_path: Path) -> None:
    """With worker threads the default block is 2 MiB: less in flight (issue 17)."""
    path = tmp_path / "in.csv"
    path.write_bytes(DATA)
    source = resolve_input(str(path), ReadOptions())
    threaded, count = source.threaded(2, block_chosen=False)
    assert count == 2 and threaded.read.block_size == THREADED_BLOCK_SIZE
    assert threaded.reader().options.block_size == THREADED_BLOCK_SIZE
    for requested, chosen in ((2, True), (1, False), (None, False)):  # None: a small input
        kept, _ = source.threaded(requested, block_chosen=chosen)
        assert kept.read.block_size == DEFAULT_BLOCK_SIZE
    own, _ = resolve_input(str(path), ReadOptions(block_size=MiB)).threaded(2, block_chosen=False)
    assert own.read.block_size == MiB
