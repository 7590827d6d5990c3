"""Backfill: every object under a prefix, each through its own per-file execution.

The work is the backfill state machine's (``stepfunctions/backfill.asl.json``): a DISTRIBUTED
Map whose ItemReader lists the prefix and whose items each start the per-file state machine and
wait for it (``startExecution.sync:2``). A file already claimed at its version (converted, or
failed and in the DLQ) is skipped by the pipeline's own claim. This module starts it, follows
its Map Run and counts what happened, in files:

- ``items``: objects listed (folder markers aside);
- ``succeeded``: files converted by this backfill; ``skipped``: files already claimed;
- ``failed``: the Map Run's failed items (a failed per-file execution: the file is FAILED in
  the metadata table and, for a permanent error, in the DLQ);
- ``ignored``: folder markers (keys ending in ``/``).

``succeeded`` and ``skipped`` come from the Map's output (one letter per item, see the
definition); when the backfill itself failed (more failures than the tolerated percentage),
there is none, and ``succeeded`` is the Map Run's count of items that did not fail, skipped
ones included (``skipped`` and ``ignored`` are then ``None``).

Example:
    >>> summary({"status": "SUCCEEDED", "executionArn": "arn:e", "output": '["c","s","i",null]'},
    ...         {"total": 4, "succeeded": 3, "failed": 1, "timedOut": 0, "aborted": 0})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'status': 'SUCCEEDED', 'execution': 'arn:e', 'items': 3, 'succeeded': 1, 'failed': 1,
     'skipped': 1, 'ignored': 1}
    >>> check_prefix("_contracts/x")
    Traceback (most recent call last):
    ...
    ValueError: the prefix '_contracts/x' is under _contracts/, where the contracts live
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from engine.aws.executions import TERMINAL
from engine.aws.targets import Target

__all__ = ["CONTRACTS_PREFIX", "check_prefix", "map_run_counts", "run_backfill", "summary"]

#: Where the contracts live in the raw bucket (never a backfill's).
CONTRACTS_PREFIX = "_contracts/"

_LETTERS = {"c": "succeeded", "s": "skipped", "i": "ignored"}


def check_prefix(prefix: str) -> str:
    """The prefix, if a backfill may list it.

    Raises:
        ValueError: empty (the whole bucket, contracts included), or under ``_contracts/``.
    """
    if not prefix:
        raise ValueError("a backfill needs a prefix (the whole raw bucket holds the contracts)")
    if prefix.startswith(CONTRACTS_PREFIX) or CONTRACTS_PREFIX.startswith(prefix):
        raise ValueError(f"the prefix {prefix!r} is under {CONTRACTS_PREFIX}, where the "
                         "contracts live")
    return prefix


def map_run_counts(sfn: Any, execution_arn: str) -> dict[str, int] | None:
    """The ``itemCounts`` of the execution's Map Run; ``None`` before it starts."""
    runs = sfn.list_map_runs(executionArn=execution_arn).get("mapRuns") or []
    if not runs:
        return None
    counts = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]).get("itemCounts") or {}
    return {str(k): int(v) for k, v in counts.items()}


def summary(desc: Mapping[str, Any], counts: Mapping[str, int] | None) -> dict[str, Any]:
    """The backfill's result from its description and its Map Run's ``itemCounts``."""
    counts = counts or {}
    failed = sum(int(counts.get(k, 0)) for k in ("failed", "timedOut", "aborted"))
    letters: list[Any] | None = None
    with contextlib.suppress(TypeError, ValueError):
        output = json.loads(desc.get("output") or "null")
        letters = output if isinstance(output, list) else None
    result: dict[str, Any] = {"status": desc["status"], "execution": desc["executionArn"]}
    total = int(counts.get("total", 0))
    if letters is None:
        result.update(items=total, succeeded=int(counts.get("succeeded", 0)), failed=failed,
                      skipped=None, ignored=None)
    else:
        found = {name: sum(1 for x in letters if x == letter) for letter, name in _LETTERS.items()}
        result.update(items=max(total, len(letters)) - found["ignored"],
                      succeeded=found["succeeded"], failed=failed, skipped=found["skipped"],
                      ignored=found["ignored"])
    if desc["status"] != "SUCCEEDED":
        result["error"] = {"type": desc.get("error") or desc["status"],
                           "message": desc.get("cause") or ""}
    return result


def _empty(target: Target, prefix: str) -> bool:
    listing = target.client("s3").list_objects_v2(Bucket=target.require("raw_bucket"),
                                                  Prefix=prefix, MaxKeys=1)
    return not listing.get("Contents")


def run_backfill(target: Target, prefix: str, *, poll: float = 1.0,
                 timeout: float | None = None,
                 on_progress: Callable[[Mapping[str, int]], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Start a backfill of ``prefix`` in the raw bucket, follow it, and count what it did.

    Args:
        target: the stack (its backfill state machine and raw bucket).
        prefix: the key prefix (:func:`check_prefix`).
        poll: seconds between looks at the execution and its Map Run.
        timeout: seconds to follow it (``None``: until it ends).
        on_progress: called with the Map Run's ``itemCounts`` at each look.
        sleep: the wait between looks.

    Returns:
        See :func:`summary`; with nothing under the prefix, no execution is started
        (``execution`` is ``None``, every count 0).

    Raises:
        ValueError: a prefix no backfill may list.
        LookupError: the stack has no backfill state machine (deployed before it existed).
        TimeoutError: still running after ``timeout`` seconds.
    """
    check_prefix(prefix)
    machine = target.require("backfill_state_machine")
    if _empty(target, prefix):
        return {"status": "SUCCEEDED", "execution": None, "items": 0, "succeeded": 0,
                "failed": 0, "skipped": 0, "ignored": 0}
    sfn = target.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=machine, name=f"backfill-{uuid.uuid4()}",
                              input=json.dumps({"prefix": prefix}))["executionArn"]
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        counts = map_run_counts(sfn, arn)
        if counts is not None and on_progress is not None:
            on_progress(counts)
        if desc["status"] in TERMINAL:
            return summary(desc, counts)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"backfill {arn} still {desc['status']} after {timeout:.0f} s")
        sleep(poll)
