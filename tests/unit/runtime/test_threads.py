"""engine.runtime.threads: the read-ahead stream hands out blocks without copying them."""

from __future__ import annotations

import io

import pytest

from engine.runtime.threads import ReadAhead


def blocks(data: bytes, block: int) -> ReadAhead:
    return ReadAhead(io.BytesIO(data), block)


def test_a_read_of_a_whole_block_is_the_block_itself() -> None:
    """The JSON reader reads a block at a time: no buffer, no copy (issue 23)."""
    made = [bytes([i]) * 4096 for i in range(3)]
    source = iter(made)

    class Source:
        def read(self, n: int) -> bytes:
            return next(source, b"")

    stream = ReadAhead(Source(), 4096)  # type: ignore[arg-type]
    assert stream.read(4096) is made[0]
    assert stream.read(100) == made[1][:100]  # part of a block: a copy
    assert stream.read(4096) == made[1][100:] + made[2][:100]
    assert stream.read(8192) == made[2][100:]
    assert stream.read(1) == b""
    stream.close()


@pytest.mark.parametrize("size", [1, 1000, 4096, 5000, 20_000])
def test_reads_of_any_size_return_the_stream_in_order(size: int) -> None:
    data = bytes(i % 251 for i in range(16_500))
    stream = blocks(data, 4096)
    got = []
    while chunk := stream.read(size):
        assert type(chunk) is bytes
        got.append(chunk)
    stream.close()
    assert b"".join(got) == data
    assert all(len(chunk) == size for chunk in got[:-1])  # fewer only at the end


def test_read_all_and_readinto() -> None:
    data = bytes(i % 7 for i in range(10_000))
    stream = blocks(data, 1024)
    view = memoryview(bytearray(1500))
    assert stream.readinto(view) == 1500 and bytes(view) == data[:1500]
    assert stream.read() == data[1500:]
    assert stream.read(10) == b""
    stream.close()


class Counting(io.BytesIO):
    """A stream that counts the buffers it is asked to fill."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.targets: set[int] = set()

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        self.targets.add(id(buffer.obj))
        return super().readinto(buffer)


@pytest.mark.parametrize("size", [700, 1024, 1500, 5000])
def test_a_copying_reader_gets_the_stream_through_a_few_reused_buffers(size: int) -> None:
    """readinto hands each block back once copied (issue 17): a few buffers, every byte."""
    data = bytes((i * 7) % 256 for i in range(100_000))
    source = Counting(data)
    stream = ReadAhead(source, 1024)  # type: ignore[arg-type]
    got = bytearray()
    view = memoryview(bytearray(size))
    while n := stream.readinto(view):
        got += view[:n]
    stream.close()
    assert got == data
    assert 1 <= len(source.targets) <= 4  # not one per block (98 blocks)


def test_reads_after_readinto_copy_from_reused_buffers_before_handing_them_back() -> None:
    data = bytes((i * 13) % 256 for i in range(50_000))
    stream = ReadAhead(Counting(data), 1024)  # type: ignore[arg-type]
    view = memoryview(bytearray(3000))
    got = bytearray()
    got += view[:stream.readinto(view)]
    while chunk := stream.read(1024):
        assert type(chunk) is bytes  # never a buffer the thread will read into again
        got += chunk
        got += view[:stream.readinto(view)]
    stream.close()
    assert got == data
