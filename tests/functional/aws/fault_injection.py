"""Fault injection for the local pipeline (``engine.aws.local``), for the fault and load tests.

Everything here is test-only and patches from the outside (pytest's ``monkeypatch`` or a
botocore event hook on the steps' own client); no production code knows about it.

- :class:`TransformFault` stops the transform step at a chosen point: before batch *k* of the
  engine's read loop (``ResolvedInput.chunks``), or at the *j*-th output commit
  (``engine.io.output.AtomicOutput.commit``: data files, rejects, aggregate). With ``hard=True`` the
  attempt dies as a killed Lambda would: the engine's cleanup does not reach S3 (no multipart
  abort, no delete of files it already published). A commit fails inside
  ``AtomicOutput.commit`` (in the S3 backend's ``publish``), as a failing
  ``CompleteMultipartUpload`` would.
- :class:`DynamoFaults` answers DynamoDB ``PutItem``/``UpdateItem`` requests with throttling
  errors, or applies one and then loses its response (a fault in moto's backend, so botocore's
  own retries run as they would on AWS).
- :func:`failing_part` makes the first or the last Map part fail on every attempt, and
  :data:`MAP_SETTINGS` sends a few hundred kB down the Map route in ~100 kB ranges.
- :func:`objects`, :func:`multipart_uploads`: what the processed bucket holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from engine.aws import steps
from engine.aws.local.runner import LocalPipeline
from engine.aws.settings import Settings

PROCESSED = "chunkwise-processed"

#: The Map route for anything over 100 kB, in ranges of about 100 kB.
MAP_SETTINGS = Settings(max_single_bytes=100_000, range_bytes=100_000)


def failing_part(monkeypatch: pytest.MonkeyPatch, where: str, error: Exception) -> list[int]:
    """The ``"first"`` or ``"last"`` Map part raises ``error`` on every attempt.

    Returns:
        A list that fills with the index of each part converted, in order, and -1 for each
        failed attempt.
    """
    real, converted = steps.convert_range, []

    def convert_range(state: Any, rng: Any, *args: Any, **kwargs: Any) -> Any:
        last = int(rng["end"]) >= int(state["size"])
        if (last and where == "last") or (rng["index"] == 0 and where == "first"):
            converted.append(-1)
            raise error
        entry = real(state, rng, *args, **kwargs)
        converted.append(rng["index"])
        return entry

    monkeypatch.setattr(steps, "convert_range", convert_range)
    return converted


def objects(pipe: LocalPipeline, bucket: str = PROCESSED) -> dict[str, bytes]:
    """Every object of ``bucket``: key → body."""
    s3 = pipe.client("s3")
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def keys(pipe: LocalPipeline, bucket: str = PROCESSED) -> list[str]:
    """The keys of ``bucket``, sorted."""
    s3 = pipe.client("s3")
    found: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found += [o["Key"] for o in page.get("Contents", [])]
    return sorted(found)


def multipart_uploads(pipe: LocalPipeline, bucket: str = PROCESSED) -> list[str]:
    """Keys of the multipart uploads still open in ``bucket`` (neither completed nor aborted)."""
    listed = pipe.client("s3").list_multipart_uploads(Bucket=bucket)
    return sorted(u["Key"] for u in listed.get("Uploads", []))


class InjectedFault(Exception):
    """Raised by :class:`TransformFault`; its class name is what the state machine matches."""


def fault_type(name: str) -> type[Exception]:
    """An exception class reported to the state machine as ``name``.

    The local dispatcher reports ``type(exc).__name__`` as the Lambda runtime does, so a class of
    that name stands for an error Lambda itself reports (``Lambda.Unknown`` for a function killed
    by a timeout or out of memory).
    """
    if name == "TransientError":
        from engine.errors import TransientError

        return TransientError
    return type(name, (InjectedFault,), {})


class TransformFault:
    """Stop the first ``attempts`` transform attempts at ``position`` (outputs on S3 only).

    Positions ``0 .. batches - 1`` are "before that batch of the read loop"; positions
    ``batches .. batches + commits - 1`` are "at that output commit". With ``position=None`` it
    only counts (a clean run), so that a test can learn ``batches`` and ``commits`` first.

    Args:
        monkeypatch: where the patches go.
        position: where to stop, or None to count only.
        batches: batches in a clean run (to tell a batch position from a commit position).
        error: the error name the state machine sees (see :func:`fault_type`).
        hard: die like a killed process: no multipart upload is aborted and no published file
            is deleted by the failing attempt.
        attempts: how many transform attempts fail (each at the same position).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, position: int | None = None,
                 batches: int = 0, error: str = "TransientError", hard: bool = False,
                 attempts: int = 1) -> None:
        import engine.io.s3
        from engine.aws import steps
        from engine.readers.sampling import ResolvedInput

        self.position = position
        self.batch_count = batches
        self.error = fault_type(error)
        self.hard = hard
        self.attempts_to_fail = attempts
        self.attempts = 0  # transform attempts seen
        self.batches = 0  # batches in the current attempt
        self.commits = 0  # output commits in the current attempt
        self.fired: list[str] = []  # where each fault fired
        self._active = False  # inside the transform step
        self._armed = False
        self._dying = False

        real_transform = steps.transform

        def transform(event: Any, *args: Any, **kwargs: Any) -> Any:
            self.attempts += 1
            self.batches = self.commits = 0
            self._active = True
            self._armed = position is not None and self.attempts <= self.attempts_to_fail
            try:
                return real_transform(event, *args, **kwargs)
            finally:
                self._active = self._armed = self._dying = False

        real_chunks = ResolvedInput.chunks

        @contextlib.contextmanager
        def chunks(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with real_chunks(*args, **kwargs) as (raw, it):
                yield raw, self._count(it)

        real_publish = engine.io.s3.S3Output.publish

        def publish(backend: Any) -> None:  # inside AtomicOutput.commit, as a real failure is
            if self._active:
                if self._armed:
                    self._check(self.batch_count + self.commits, f"commit {self.commits + 1}")
                self.commits += 1
            real_publish(backend)

        real_discard, real_delete = engine.io.s3.S3Output.discard, engine.io.s3.S3Output.delete

        def discard(backend: Any) -> None:
            if not self._dying:
                return real_discard(backend)
            writer, backend._writer = backend._writer, None  # the process is gone: no abort
            if writer is not None:
                writer.neutralise()
            return None

        def delete(backend: Any) -> None:
            if not self._dying:
                real_delete(backend)

        monkeypatch.setattr(steps, "transform", transform)
        monkeypatch.setattr(ResolvedInput, "chunks", chunks)
        monkeypatch.setattr(engine.io.s3.S3Output, "publish", publish)
        monkeypatch.setattr(engine.io.s3.S3Output, "discard", discard)
        monkeypatch.setattr(engine.io.s3.S3Output, "delete", delete)

    def _count(self, it: Iterator[Any]) -> Iterator[Any]:
        for chunk in it:
            if self._armed:
                self._check(self.batches, f"batch {self.batches + 1}")
            if self._active:
                self.batches += 1
            yield chunk

    def _check(self, at: int, where: str) -> None:
        if at == self.position:
            self.fired.append(where)
            self._dying = self.hard
            raise self.error(f"injected at {where} of transform attempt {self.attempts}")


class DynamoFaults:
    """Make DynamoDB ``PutItem``/``UpdateItem`` requests fail, by request number.

    The fault is in moto's DynamoDB backend, so botocore sees a real error response and its own
    retries run as on AWS. Every ``PutItem`` or ``UpdateItem`` request reaching DynamoDB
    (botocore's retries included; only the steps write) gets a number from 1; ``plan`` maps a
    number to what happens to it: ``"throttle"`` (``ProvisionedThroughputExceededException``,
    400: the write is not applied), ``"throttling"`` (``ThrottlingException``, 400), or
    ``"lost"`` (the write is applied, then the client gets ``InternalServerError``, 500, as when
    a response is lost on the way back). botocore's retry backoff is not slept; the delays it
    asked for are in ``delays``.
    """

    CODES = {"throttle": ("ProvisionedThroughputExceededException", 400),
             "throttling": ("ThrottlingException", 400),
             "lost": ("InternalServerError", 500)}

    def __init__(self, monkeypatch: pytest.MonkeyPatch, plan: dict[int, str]) -> None:
        import threading

        import botocore.retries.standard
        from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException
        from moto.dynamodb.models import DynamoDBBackend

        self.plan = dict(plan)
        self.requests: list[tuple[str, str]] = []  # (operation, what happened)
        self.delays: list[float] = []
        lock = threading.Lock()

        def faulty(op: str, real: Any) -> Any:
            def call(backend: Any, *args: Any, **kwargs: Any) -> Any:
                with lock:
                    what = self.plan.get(len(self.requests) + 1, "ok")
                    self.requests.append((op, what))
                if what == "ok":
                    return real(backend, *args, **kwargs)
                if what == "lost":
                    real(backend, *args, **kwargs)  # applied...
                code, status = self.CODES[what]  # ...but the client gets an error
                error = DynamodbException(ERROR_TYPE_PREFIX + code, f"injected {code}")
                error.code = status
                raise error

            return call

        monkeypatch.setattr(DynamoDBBackend, "put_item",
                            faulty("PutItem", DynamoDBBackend.put_item))
        monkeypatch.setattr(DynamoDBBackend, "update_item",
                            faulty("UpdateItem", DynamoDBBackend.update_item))

        real_delay = botocore.retries.standard.ExponentialBackoff.delay_amount

        def delay_amount(backoff: Any, context: Any) -> float:
            self.delays.append(real_delay(backoff, context))
            return 0.0

        monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount",
                            delay_amount)

    def count(self, what: str) -> int:
        """Requests that got ``what``."""
        return sum(1 for _, w in self.requests if w == what)
