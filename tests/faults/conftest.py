"""Fixtures: the fault proxy in front of the session's moto server, and recorded backoff.

``CHUNKWISE_FAULT_RUNS=N`` runs every test here N times (default 1: once per CI run), each run
with its own proxy, moto state and faults: the counts of docs/RELIABILITY.md are N runs of each.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

# hypothesis's pytest plugin imports hypothesis in the terminal summary if no test did, and
# pytest then rewrites it: after these tests (botocore retries, resets, finalizers), CPython
# 3.11.7's ast.parse there failed with "SystemError: AST constructor recursion depth mismatch"
# in runs of tests/faults plus other non-hypothesis tests. Importing it here, at collection, as
# the full suite does anyway, keeps such partial runs green.
import hypothesis  # noqa: F401
import pytest
from fault_proxy import FaultProxy

import engine.io

#: How many times each fault test runs (docs/RELIABILITY.md's "10 runs": 10).
RUNS = int(os.environ.get("CHUNKWISE_FAULT_RUNS", "1"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Repeat every test of this directory ``RUNS`` times (``[run0]``, ``[run1]``, ...)."""
    if RUNS > 1:
        metafunc.fixturenames.append("fault_run")
        metafunc.parametrize("fault_run", range(RUNS), ids=lambda n: f"run{n}")


@pytest.fixture
def proxy(moto_server: str, monkeypatch: pytest.MonkeyPatch,
          request: pytest.FixtureRequest) -> Iterator[FaultProxy]:
    """A fault proxy in front of moto; the engine's S3 client goes through it."""
    proxy = FaultProxy(moto_server)
    url = proxy.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    engine.io.reset_s3_client()
    yield proxy
    proxy.stop()
    engine.io.reset_s3_client()
    log = os.environ.get("CHUNKWISE_RELIABILITY_LOG")  # figures for docs/RELIABILITY.md
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({
                "suite": "faults", "test": request.node.name,
                "faults": [[f.operation, f.kind, f.status if f.kind == "status" else None,
                            f.hits] for f in proxy.faults],
                "requests": {op: sum(e["operation"] == op for e in proxy.log)
                             for op in ("GetObject", "UploadPart", "AbortMultipartUpload",
                                        "CompleteMultipartUpload")},
            }) + "\n")


class _RecordedTime:
    """``time`` as botocore's endpoint sees it, with ``sleep`` recorded instead of slept."""

    def __init__(self, sleeps: list[float]) -> None:
        self._sleeps = sleeps

    def sleep(self, seconds: float) -> None:
        self._sleeps.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[float]]:
    """Backoff sleeps, recorded and skipped: botocore's request retries and the engine's
    read resumes. The tests check that they happened and grew, without waiting for them."""
    import botocore.endpoint

    import engine.io.s3

    recorded: dict[str, list[float]] = {"botocore": [], "engine": []}
    monkeypatch.setattr(botocore.endpoint, "time", _RecordedTime(recorded["botocore"]))
    monkeypatch.setattr(engine.io.s3, "_sleep", recorded["engine"].append)
    return recorded
