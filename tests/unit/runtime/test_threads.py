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
