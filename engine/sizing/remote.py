"""``chunkwise size --function-name``: measure a deployed function, as AWS Lambda Power Tuning does.

For each memory setting: update the function's configuration, wait until the update is done,
invoke it ``invocations`` times with ``LogType=Tail``, and parse the ``REPORT`` line of each
invocation's log tail for Duration, Billed Duration and Max Memory Used. Outliers are discarded
as Power Tuning does (the fastest and slowest ``discard`` share of the runs), the original
configuration is restored whatever happens, and the same cost model as the local sweep picks the
cheapest setting whose Max Memory Used, with headroom, fits.
"""

from __future__ import annotations

import base64
import math
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.errors import EngineError, PermanentError, TransientError
from engine.sizing.model import ModelParams, Prices

__all__ = ["RemoteRun", "ReportLine", "parse_report_line", "run_remote"]

_REPORT = re.compile(
    r"REPORT RequestId:\s*(?P<id>\S+)\s+Duration:\s*(?P<duration>[\d.]+)\s*ms\s+"
    r"Billed Duration:\s*(?P<billed>\d+)\s*ms\s+Memory Size:\s*(?P<size>\d+)\s*MB\s+"
    r"Max Memory Used:\s*(?P<used>\d+)\s*MB(?:\s+Init Duration:\s*(?P<init>[\d.]+)\s*ms)?"
)
_THROTTLES = {"TooManyRequestsException", "ThrottlingException", "ResourceConflictException",
              "ServiceException", "EC2ThrottledException"}


@dataclass(frozen=True)
class ReportLine:
    """The figures of one invocation's ``REPORT`` log line."""

    request_id: str
    duration_ms: float
    billed_ms: int
    memory_mb: int
    max_memory_used_mb: int
    init_ms: float | None = None


def parse_report_line(log: str) -> ReportLine:
    """The ``REPORT`` line in a Lambda log tail.

    Raises:
        ValueError: the log has no ``REPORT`` line (the tail is the last 4 KB of the log).

    """
    match = _REPORT.search(log)
    if match is None:
        raise ValueError("no REPORT line in the log tail")
    init = match.group("init")
    return ReportLine(match.group("id"), float(match.group("duration")),
                      int(match.group("billed")), int(match.group("size")),
                      int(match.group("used")), float(init) if init else None)


@dataclass
class RemoteRun:
    """One memory setting's invocations and what the model makes of them."""

    memory_mb: int
    reports: list[ReportLine]
    kept: int
    duration_ms: float
    billed_ms: float
    max_memory_used_mb: int
    cost: float
    fits_memory: bool
    fits_time: bool

    @property
    def fits(self) -> bool:
        """Memory (with headroom) and duration fit."""
        return self.fits_memory and self.fits_time


@dataclass
class RemoteResult:
    """Every setting tried, the original memory, and the cheapest fitting setting."""

    function_name: str
    original_memory_mb: int
    runs: list[RemoteRun]
    memory_mb: int | None
    prices: Prices
    params: ModelParams
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "function_name": self.function_name,
            "original_memory_mb": self.original_memory_mb,
            "chosen_memory_mb": self.memory_mb,
            "prices": vars(self.prices), "params": vars(self.params),
            "runs": [{**{k: v for k, v in asdict(r).items() if k != "reports"},
                      "fits": r.fits, "reports": [asdict(x) for x in r.reports]}
                     for r in self.runs],
        }


def _trimmed(values: Sequence[float], discard: float) -> list[float]:
    """``values`` without the lowest and highest ``discard`` share (at least one kept)."""
    ordered = sorted(values)
    k = math.floor(len(ordered) * discard)
    return ordered[k:len(ordered) - k] or ordered


def _call(client: Any, op: str, **kwargs: Any) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return getattr(client, op)(**kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        cls = TransientError if code in _THROTTLES else PermanentError
        raise cls(f"Lambda {op} failed: {code}: {message}",
                  uri=kwargs.get("FunctionName")) from None
    except BotoCoreError as exc:
        raise TransientError(f"Lambda {op} failed: {exc}",
                             uri=kwargs.get("FunctionName")) from None


def _wait_updated(client: Any, name: str, timeout_s: float, poll_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        cfg = _call(client, "get_function_configuration", FunctionName=name)
        status = cfg.get("LastUpdateStatus", "Successful")
        if status == "Successful":
            return
        if status == "Failed":
            raise PermanentError(f"updating {name} failed: "
                                 f"{cfg.get('LastUpdateStatusReason', 'no reason given')}",
                                 uri=name)
        if time.monotonic() > deadline:
            raise TransientError(f"{name} is still updating after {timeout_s:g} s", uri=name)
        time.sleep(poll_s)


def run_remote(client: Any, function_name: str, memories: Sequence[int], payload: bytes, *,
               invocations: int = 5, discard: float = 0.2, prices: Prices,
               params: ModelParams, update_timeout_s: float = 120.0,
               poll_s: float = 1.0) -> RemoteResult:
    """Invoke ``function_name`` at each memory in ``memories``; restore its memory after.

    Args:
        client: a boto3 Lambda client.
        function_name: the function's name or ARN.
        memories: settings to try (MB).
        payload: the event each invocation gets (JSON bytes).
        invocations: invocations per setting (the first after an update is a cold start).
        discard: share of the fastest and of the slowest invocations left out.
        prices: see :func:`engine.sizing.model.load_prices`.
        params: headroom and timeout margin (Max Memory Used already holds the runtime).
        update_timeout_s: how long to wait for a configuration update.
        poll_s: seconds between update status checks.

    Raises:
        PermanentError: an invocation returned a function error, or an update failed.
        TransientError: Lambda throttled beyond the SDK's retries.

    """
    if invocations < 1:
        raise PermanentError("invocations must be at least 1")
    original = _call(client, "get_function_configuration", FunctionName=function_name)
    original_mb = int(original["MemorySize"])
    runs: list[RemoteRun] = []
    try:
        for memory in memories:
            _call(client, "update_function_configuration", FunctionName=function_name,
                  MemorySize=int(memory))
            _wait_updated(client, function_name, update_timeout_s, poll_s)
            reports = [_invoke(client, function_name, payload) for _ in range(invocations)]
            runs.append(_judge(memory, reports, discard, prices, params))
    finally:
        try:
            _call(client, "update_function_configuration", FunctionName=function_name,
                  MemorySize=original_mb)
            _wait_updated(client, function_name, update_timeout_s, poll_s)
        except EngineError:
            if not runs:
                raise
    fitting = [r for r in runs if r.fits]
    best = min(fitting, key=lambda r: (r.cost, r.duration_ms), default=None)
    return RemoteResult(function_name, original_mb, runs, best.memory_mb if best else None,
                        prices, params)


def _invoke(client: Any, name: str, payload: bytes) -> ReportLine:
    resp = _call(client, "invoke", FunctionName=name, InvocationType="RequestResponse",
                 LogType="Tail", Payload=payload)
    log = base64.b64decode(resp.get("LogResult", "")).decode("utf-8", "replace")
    if resp.get("FunctionError"):
        body = resp["Payload"].read()[:500] if "Payload" in resp else b""
        raise PermanentError(f"{name} returned a function error ({resp['FunctionError']}): "
                             f"{body.decode('utf-8', 'replace')}", uri=name)
    try:
        return parse_report_line(log)
    except ValueError:
        raise PermanentError(f"{name}: the invocation's log tail has no REPORT line",
                             uri=name) from None


def _judge(memory: int, reports: list[ReportLine], discard: float, prices: Prices,
           params: ModelParams) -> RemoteRun:
    durations = _trimmed([r.duration_ms for r in reports], discard)
    billed = _trimmed([float(r.billed_ms) for r in reports], discard)
    used = max(r.max_memory_used_mb for r in reports)
    billed_ms = sum(billed) / len(billed)
    cost = prices.gb_second * (memory / 1024) * (billed_ms / 1000) + prices.request
    duration = sum(durations) / len(durations)
    return RemoteRun(
        memory_mb=memory, reports=reports, kept=len(durations), duration_ms=round(duration, 2),
        billed_ms=round(billed_ms, 2), max_memory_used_mb=used, cost=cost,
        fits_memory=used * (1 + params.headroom) <= memory,
        fits_time=duration / 1000 <= params.timeout_s * (1 - params.timeout_margin),
    )
