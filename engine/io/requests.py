"""The S3 requests a conversion makes, counted by kind (``GetObject``, ``PutObject``, ...).

Each HTTP request to S3 is billed and, on AWS, costs tens of milliseconds of latency, so a run
reports what it sent: :func:`counting` opens a count for the code inside it (the run, in
:mod:`engine.run`), and the S3 client (:func:`engine.io.s3.s3_client`) adds every request it
sends, retries included, to the count of the context that sends it. Worker threads run in a copy
of the context that started them (:class:`engine.runtime.threads.Prefetch`), so their reads are
counted too. Outside :func:`counting` nothing is counted.

Example:
    >>> with counting() as count:
    ...     add("GetObject")
    ...     add("GetObject")
    >>> count.to_dict(), count.total
    ({'GetObject': 2}, 2)

"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["REQUESTS", "RequestCount", "add", "count_request", "counting", "current"]


class RequestCount:
    """Requests by kind (the S3 operation's name); safe to add to from several threads.

    Attributes:
        heads: ``HeadObject`` answers by URI that the run may use again instead of asking S3
            twice (its source's, :func:`engine.io.s3.head_object` with ``reuse``).

    """

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.heads: dict[str, dict[str, Any]] = {}

    def add(self, kind: str, n: int = 1) -> None:
        """Count ``n`` more requests of ``kind``."""
        with self._lock:
            self._counts[kind] = self._counts.get(kind, 0) + n

    @property
    def total(self) -> int:
        """Requests of every kind."""
        with self._lock:
            return sum(self._counts.values())

    def to_dict(self) -> dict[str, int]:
        """``{kind: count}``, kinds in alphabetical order."""
        with self._lock:
            return dict(sorted(self._counts.items()))


#: The count of the run in this context (``None``: not counting).
REQUESTS: ContextVar[RequestCount | None] = ContextVar("chunkwise_s3_requests", default=None)


@contextmanager
def counting() -> Iterator[RequestCount]:
    """Count the requests made inside the block (and only those: an enclosing count is not)."""
    count = RequestCount()
    token = REQUESTS.set(count)
    try:
        yield count
    finally:
        REQUESTS.reset(token)


def current() -> RequestCount | None:
    """The count of the run in this context, or ``None`` outside :func:`counting`."""
    return REQUESTS.get()


def add(kind: str) -> None:
    """Count one request of ``kind`` against the run in this context, if one is counting."""
    count = REQUESTS.get()
    if count is not None:
        count.add(kind)


def count_request(event_name: str = "", **_: Any) -> None:
    """Count one HTTP request: the ``before-send.s3`` handler (each retry is another).

    botocore emits ``before-send.s3.<Operation>`` once per attempt (``request-created`` only
    once per call, whatever its retries). It returns ``None``: a value would be taken as the
    response.
    """
    add(event_name.rsplit(".", 1)[-1] or "unknown")
