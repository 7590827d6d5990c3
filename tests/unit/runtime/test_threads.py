"""engine.runtime.threads: the read-ahead stream hands out blocks without copying them; the
prefetching worker holds what its depth and its budget allow."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator

import pytest

from engine.runtime.threads import Prefetch, ReadAhead


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


class Counted:
    """A source of ``weights`` that counts the items the worker has taken from it."""

    def __init__(self, weights: list[int]) -> None:
        self.weights = weights
        self.taken = 0
        self.closed = False
        self.changed = threading.Condition()

    def __iter__(self) -> Iterator[int]:
        try:
            for weight in self.weights:
                with self.changed:
                    self.taken += 1
                    self.changed.notify_all()
                yield weight
        finally:
            self.closed = True

    def settled_at(self, taken: int) -> int:
        """What the worker has taken once it reaches ``taken`` and has had time to go further."""
        with self.changed:
            assert self.changed.wait_for(lambda: self.taken >= taken, timeout=10)
        time.sleep(0.1)  # a worker that ignored its bounds would take more meanwhile
        return self.taken


@pytest.mark.parametrize(("weights", "depth", "budget", "held"), [
    ([3] * 10, 32, 10, 3),  # 9 of 10: a fourth would pass the budget
    ([100] * 5, 32, 10, 1),  # heavier than the budget: one at a time still
    ([0] * 10, 2, 10, 2),  # weightless: the depth bounds them
    ([3] * 10, 32, 0, 1),  # no budget: one chunk ahead, as before issue 17
])
def test_the_worker_holds_what_its_depth_and_budget_allow(weights, depth, budget, held):
    source = Counted(weights)
    with Prefetch(source, depth=depth, weigh=lambda w: w, budget=budget) as items:
        # held, and one more taken that waits for room
        assert source.settled_at(held + 1) == held + 1
        assert next(items) == weights[0]
        assert source.settled_at(held + 2) == held + 2  # room for one more
        assert list(items) == weights[1:]
    assert source.closed


def test_without_weighing_only_the_depth_counts():
    source = Counted([10**9] * 6)
    with Prefetch(source, depth=3) as items:
        assert source.settled_at(4) == 4
        assert list(items) == [10**9] * 6


def test_a_failing_source_fails_the_consumer_once_then_ends():
    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("bad record")

    with Prefetch(failing(), depth=4, weigh=lambda w: w, budget=10) as items:
        assert next(items) == 1
        with pytest.raises(ValueError, match="bad record"):
            next(items)
        with pytest.raises(StopIteration):
            next(items)


def test_closing_stops_a_worker_that_waits_for_room():
    source = Counted([1] * 1000)
    items = Prefetch(source, depth=32, weigh=lambda w: w, budget=4)
    assert source.settled_at(5) == 5
    items.close()
    assert source.closed and source.taken == 5
