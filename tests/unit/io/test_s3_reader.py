"""RangedReader against a scripted client: resume from the first unread byte, bounded retries.

The same behaviour end to end, through a fault-injecting proxy in front of moto, is in
``tests/faults/test_s3_faults.py``.
"""

from __future__ import annotations

import io
from typing import Any

import botocore.exceptions
import pytest
import urllib3.exceptions

import engine.io.s3
from engine.errors import InputNotFoundError, TransientError
from engine.io.s3 import READ_ATTEMPTS, RangedReader

DATA = bytes(range(256)) * 4096  # 1 MiB


class Body:
    """A response body that breaks after ``cut`` bytes (None: never)."""

    def __init__(self, data: bytes, cut: int | None) -> None:
        self._data = io.BytesIO(data)
        self._left = len(data) if cut is None else cut

    def read(self, amt: int) -> bytes:
        if self._left <= 0:
            raise urllib3.exceptions.ProtocolError("Connection broken: reset by peer")
        chunk = self._data.read(min(amt, self._left))
        self._left -= len(chunk)
        return chunk

    def close(self) -> None:
        pass


class Client:
    """get_object serving ``DATA`` by Range; each GET breaks after the next of ``cuts``."""

    def __init__(self, cuts: list[int | None], status: int = 206) -> None:
        self.cuts = list(cuts)
        self.ranges: list[tuple[int, int]] = []
        self.status = status

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        first, last = map(int, kwargs["Range"].removeprefix("bytes=").split("-"))
        self.ranges.append((first, last))
        cut = self.cuts.pop(0) if self.cuts else None
        return {"Body": Body(DATA[first:last + 1], cut),
                "ResponseMetadata": {"HTTPStatusCode": self.status}}


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(engine.io.s3, "_sleep", recorded.append)
    return recorded


def test_a_broken_body_is_resumed_from_the_first_unread_byte(sleeps: list[float]):
    client = Client([300_000, 0, 200_000])
    reader = RangedReader(client, "s3://b/k", len(DATA), '"etag"')
    assert reader.read() == DATA
    starts = [first for first, _ in client.ranges]
    assert starts == [0, 300_000, 300_000, 500_000]
    assert sleeps == [0.25]  # only the GET that brought nothing waited


def test_failures_in_a_row_without_a_byte_are_bounded(sleeps: list[float]):
    client = Client([100, 0, 0, 0, 0, 0, 0])
    reader = RangedReader(client, "s3://b/k", len(DATA), None)
    with pytest.raises(TransientError, match="5 times in a row at byte 100") as info:
        reader.read()
    assert info.value.offset == 100
    assert len(client.ranges) == 1 + READ_ATTEMPTS
    assert sleeps == [0.25, 0.5, 1.0, 2.0]


def test_resumes_are_bounded_in_all(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]):
    monkeypatch.setattr(engine.io.s3, "READ_MAX_RESUMES", 10)
    reader = RangedReader(Client([1000] * 100), "s3://b/k", len(DATA), None)
    with pytest.raises(TransientError, match="READ_MAX_RESUMES"):
        reader.read()


def test_a_byte_range_is_read_and_seeking_costs_no_request(sleeps: list[float]):
    client = Client([None])
    reader = RangedReader(client, "s3://b/k", len(DATA), None, start=10, end=5000)
    reader.seek(20)
    assert client.ranges == []
    assert reader.read() == DATA[20:5000]
    assert client.ranges == [(20, 4999)]


def test_an_s3_error_is_mapped_not_resumed(sleeps: list[float]):
    class Missing(Client):
        def get_object(self, **kwargs: Any) -> dict[str, Any]:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")

    with pytest.raises(InputNotFoundError):
        RangedReader(Missing([]), "s3://b/k", len(DATA), None).read()
    assert sleeps == []


def test_a_server_ignoring_range_on_a_resume_is_refused(sleeps: list[float]):
    client = Client([1000], status=206)
    reader = RangedReader(client, "s3://b/k", len(DATA), None)
    assert len(reader.read(4000)) == 1000
    client.status = 200
    with pytest.raises(TransientError, match="whole object"):
        reader.read(4000)
