"""Lambda's CPU share, duration and cost at each memory setting, warm and cold, from measurements.

The model (all of it here, so a test can check it by hand):

- **CPU share.** Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB,
  up to six at 10,240 MB. The engine runs one thread below 1,769 MB and two from there
  (:func:`engine.runtime.threads.lambda_threads`), so the share it can use is
  ``min(memory / 1769, threads, 6)``.
- **Warm invocation** (an execution environment that has run before): duration = the warm
  conversion's CPU seconds ÷ that share + S3 seconds (bytes to and from S3 at an assumed S3
  throughput; a local measurement has no network time of its own).
- **Cold invocation** (a new environment): the INIT phase, then the first invocation. INIT =
  the handler's import (CPU seconds of the interpreter's start and ``import handler``) ÷ the INIT
  share; the first invocation = (warm CPU + what the first call loads: engine.run,
  pyarrow.parquet, boto3, its clients) ÷ the share + S3 seconds. INIT is billed: since
  2025-08-01 AWS bills the INIT phase of on-demand functions like the invocation
  (:data:`INIT_BILLING_SOURCE`), so a cold invocation bills INIT + invocation, rounded up to
  the millisecond. AWS documents no CPU share of its own for INIT, only the proportional rule;
  others report a burst above it. The default INIT share is the documented rule,
  ``min(memory / 1769, 1)`` (an import is one thread), which errs expensive;
  :attr:`ModelParams.init_vcpu_share` sets another (1.0: the reported burst).
- **Cold share**: the share of invocations that are cold, given
  (:attr:`ModelParams.cold_share`) or estimated by :func:`cold_share` from the files per
  minute, how long Lambda keeps an idle environment and how often it recycles a busy one.
- **Cost** per invocation = price per GB-second × memory (GB = MB / 1024) × billed duration
  (rounded up to the millisecond) + the request price; a band's cost is the blend
  ``(1 - cold share) × warm + cold share × cold``. Prices are data (:file:`prices.json`) with
  their date and source, and can be overridden.
- **Fits** when the larger of the cold and warm peak RSS × (1 + headroom) + the runtime's
  overhead ≤ memory, the warm and the cold invocation ≤ timeout × (1 - margin), and INIT ≤ the
  10 s Lambda allows it (:data:`INIT_LIMIT_S`).

The recommendation for a size band is the cheapest setting (blended cost) that fits for every
format; a tie goes to the faster one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from engine.config import FULL_VCPU_MB, MiB
from engine.runtime.threads import lambda_threads

__all__ = [
    "DEFAULT_MEMORY_SETTINGS",
    "FULL_VCPU_MB",
    "INIT_BILLING_SOURCE",
    "INIT_LIMIT_S",
    "Fit",
    "ModelParams",
    "Prediction",
    "Prices",
    "Recommendation",
    "Workload",
    "cold_share",
    "fit_line",
    "init_share",
    "lambda_threads",
    "load_prices",
    "predict",
    "recommend",
    "vcpu_share",
]

#: The most vCPUs a function gets (at 10,240 MB).
MAX_VCPUS = 6
#: Memory settings a sweep considers (Lambda accepts any MB from 128 to 10,240).
DEFAULT_MEMORY_SETTINGS = (128, 192, 256, 320, 384, 448, 512, 640, 768, 1024, 1280, 1536, 1769,
                           2048, 3008, 3538, 4096, 5120, 6144, 8192, 10240)
#: The INIT phase of an on-demand function may last this long; beyond it Lambda retries INIT
#: inside the first invocation (AWS Lambda Developer Guide, "Understanding the Lambda execution
#: environment lifecycle").
INIT_LIMIT_S = 10.0
#: Where "INIT is billed" comes from.
INIT_BILLING_SOURCE = ("https://aws.amazon.com/blogs/compute/"
                       "aws-lambda-standardizes-billing-for-init-phase/ (effective 2025-08-01)")


@dataclass(frozen=True)
class Prices:
    """Lambda's on-demand prices for one architecture, with where they come from."""

    architecture: str
    gb_second: float
    request: float
    region: str
    recorded: str
    source: str


def load_prices(architecture: str = "arm64", *, gb_second: float | None = None,
                request: float | None = None, path: str | None = None) -> Prices:
    """The prices in ``path`` (default: the bundled :file:`prices.json`), with overrides."""
    if path is None:
        text = resources.files("engine.sizing").joinpath("prices.json").read_text("utf-8")
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    data = json.loads(text)
    try:
        arch = data["architectures"][architecture]
    except KeyError:
        from engine.errors import ContractError

        raise ContractError(f"no Lambda prices for architecture {architecture!r}; "
                            f"known: {', '.join(data['architectures'])}") from None
    source = data["source"] if gb_second is None and request is None else "overridden"
    return Prices(architecture, arch["gb_second"] if gb_second is None else gb_second,
                  arch["request"] if request is None else request, data["region"],
                  data["recorded"], source)


@dataclass(frozen=True)
class ModelParams:
    """The model's assumptions; each one a CLI option of ``chunkwise size``.

    Attributes:
        headroom: share of the measured peak RSS added on top (0.25: 25 %).
        overhead_mb: what Lambda counts beyond the measured process (the runtime's own
            processes and buffers); an estimate, not a measurement.
        timeout_s: the function's timeout (the template's ``TransformTimeout``).
        timeout_margin: share of the timeout kept free (0.5: predicted ≤ half the timeout).
        s3_mb_per_s: assumed S3 throughput of one stream from Lambda, MB/s, for the I/O time.
        init_vcpu_share: the vCPUs INIT runs on; ``None``: the documented proportional rule,
            ``min(memory / 1769, 1)``.
        cold_share: the share of invocations that are cold; ``None``: :func:`cold_share`'s
            estimate from the three below.
        files_per_minute: files arriving per minute, steadily.
        idle_minutes: how long Lambda keeps an idle environment (AWS publishes no figure:
            an estimate, the short end of what has been measured).
        lifetime_minutes: how often Lambda replaces a busy environment (AWS: "every few
            hours"; the short end).

    """

    headroom: float = 0.25
    overhead_mb: float = 30.0
    timeout_s: float = 900.0
    timeout_margin: float = 0.5
    s3_mb_per_s: float = 90.0
    init_vcpu_share: float | None = None
    cold_share: float | None = None
    files_per_minute: float = 100.0
    idle_minutes: float = 5.0
    lifetime_minutes: float = 120.0


def vcpu_share(memory_mb: float, threads: int) -> float:
    """The CPUs a run of ``threads`` threads can use at ``memory_mb``."""
    return min(memory_mb / FULL_VCPU_MB, float(threads), float(MAX_VCPUS))


def init_share(memory_mb: float, params: ModelParams) -> float:
    """The CPUs the INIT phase runs on at ``memory_mb`` (see :class:`ModelParams`)."""
    if params.init_vcpu_share is not None:
        return params.init_vcpu_share
    return vcpu_share(memory_mb, 1)


def cold_share(params: ModelParams, warm_duration_s: float) -> float:
    """The share of invocations that start a new execution environment.

    ``params.cold_share`` when given; else an estimate for files arriving steadily (a Poisson
    stream of ``files_per_minute``): the environments busy at once are ``rate × duration``
    (Little's law, at least one), each sees ``rate / environments`` files a minute, and a file
    is cold when its environment sat idle longer than ``idle_minutes`` (probability
    ``exp(-rate / environments × idle)``) or, kept, was replaced (one cold start per environment
    every ``lifetime_minutes``: ``environments / (rate × lifetime)`` of the files). Bursts
    start more environments than this: measure the share on the deployed function (``Init
    Duration`` in its REPORT lines) and give it.

    Example:
        >>> round(cold_share(ModelParams(files_per_minute=100), 0.3), 6)  # 1 env, 2 h each
        8.3e-05
        >>> round(cold_share(ModelParams(files_per_minute=0.1), 0.3), 3)  # 10 min apart
        0.639

    """
    if params.cold_share is not None:
        return params.cold_share
    rate = params.files_per_minute
    if rate <= 0:
        return 1.0
    environments = max(1.0, rate * warm_duration_s / 60)
    idle = math.exp(-rate / environments * params.idle_minutes)
    replaced = min(1.0, environments / (rate * params.lifetime_minutes))
    return 1 - (1 - idle) * (1 - replaced)


@dataclass(frozen=True)
class Workload:
    """What one conversion needs, from measurements.

    Attributes:
        cpu_s: the warm conversion's CPU seconds.
        io_bytes: bytes read from and written to S3.
        peak_rss_bytes: the larger of the cold and the warm peak RSS.
        format: the input format, for the record.
        threads: the conversion's threads.
        init_cpu_s: the INIT phase's CPU seconds (interpreter start and handler import).
        first_call_cpu_s: what a cold invocation's conversion spends beyond a warm one's.

    """

    cpu_s: float
    io_bytes: int
    peak_rss_bytes: int
    format: str = ""
    threads: int = 1
    init_cpu_s: float = 0.0
    first_call_cpu_s: float = 0.0


@dataclass(frozen=True)
class Prediction:
    """One workload at one memory setting: a warm invocation, a cold one, and their blend."""

    memory_mb: int
    threads: int
    duration_s: float
    billed_ms: int
    cost: float
    required_mb: float
    fits_memory: bool
    fits_time: bool
    format: str = ""
    init_s: float = 0.0
    cold_duration_s: float = 0.0
    cold_billed_ms: int = 0
    cold_cost: float = 0.0
    cold_share: float = 0.0

    @property
    def fits(self) -> bool:
        """Both memory and duration fit."""
        return self.fits_memory and self.fits_time

    @property
    def blended_cost(self) -> float:
        """The cost of an average invocation at :attr:`cold_share`."""
        return (1 - self.cold_share) * self.cost + self.cold_share * self.cold_cost

    @property
    def cold_cost_share(self) -> float:
        """The part of :attr:`blended_cost` that cold starts add (0 to 1)."""
        blended = self.blended_cost
        return self.cold_share * (self.cold_cost - self.cost) / blended if blended else 0.0


def _billed(duration_s: float) -> int:
    return math.ceil(duration_s * 1000 - 1e-9)


def predict(work: Workload, memory_mb: int, prices: Prices, params: ModelParams) -> Prediction:
    """Warm and cold duration, billed duration and cost of ``work`` at ``memory_mb``; its fit."""
    share = vcpu_share(memory_mb, work.threads)
    io_s = work.io_bytes / (params.s3_mb_per_s * 1e6)
    gb = memory_mb / 1024
    duration = work.cpu_s / share + io_s
    billed_ms = _billed(duration)
    init_s = work.init_cpu_s / init_share(memory_mb, params)
    first_s = (work.cpu_s + work.first_call_cpu_s) / share + io_s
    cold_billed_ms = _billed(init_s + first_s)
    required = work.peak_rss_bytes / MiB * (1 + params.headroom) + params.overhead_mb
    limit = params.timeout_s * (1 - params.timeout_margin)
    return Prediction(
        memory_mb=memory_mb, threads=work.threads, duration_s=duration, billed_ms=billed_ms,
        cost=prices.gb_second * gb * (billed_ms / 1000) + prices.request,
        required_mb=round(required, 1), fits_memory=required <= memory_mb,
        fits_time=max(duration, first_s) <= limit and init_s <= INIT_LIMIT_S,
        format=work.format, init_s=init_s, cold_duration_s=init_s + first_s,
        cold_billed_ms=cold_billed_ms,
        cold_cost=prices.gb_second * gb * (cold_billed_ms / 1000) + prices.request,
        cold_share=cold_share(params, duration),
    )


@dataclass(frozen=True)
class Fit:
    """``y = intercept + slope * x`` by least squares, with the points it came from."""

    intercept: float
    slope: float
    n: int

    def at(self, x: float) -> float:
        """The fitted value at ``x``."""
        return self.intercept + self.slope * x


def fit_line(points: Iterable[tuple[float, float]]) -> Fit:
    """Least-squares line through ``points`` (one point: a line through it and the origin)."""
    pts = sorted(points)
    if not pts:
        raise ValueError("no points to fit")
    if len({x for x, _ in pts}) == 1:
        x, y = pts[-1]
        return Fit(0.0, y / x if x else 0.0, len(pts))
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    slope = sxy / sxx
    return Fit(my - slope * mx, slope, n)


@dataclass
class Recommendation:
    """The cheapest fitting memory for one size band, and every setting considered.

    ``cost`` is the blended cost of an invocation at ``cold_share``; ``warm_cost`` and
    ``cold_cost`` its parts, ``cold_cost_share`` the part cold starts add. Each figure is the
    worst format's.
    """

    band: str
    max_bytes: int
    memory_mb: int | None
    duration_s: float | None
    cost: float | None
    required_mb: float | None
    worst_format: str | None
    reason: str
    candidates: list[dict[str, Any]] = field(default_factory=list)
    cold_duration_s: float | None = None
    init_s: float | None = None
    warm_cost: float | None = None
    cold_cost: float | None = None
    cold_share: float | None = None
    cold_cost_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def _candidate(memory: int, threads: int, preds: Sequence[Prediction]) -> dict[str, Any]:
    """One memory setting judged on every format: the worst format's figures."""
    worst = max(preds, key=lambda p: (not p.fits, p.blended_cost, p.duration_s))
    return {
        "memory_mb": memory, "threads": threads,
        "duration_s": round(max(p.duration_s for p in preds), 3),
        "cold_duration_s": round(max(p.cold_duration_s for p in preds), 3),
        "init_s": round(max(p.init_s for p in preds), 3),
        "cost": max(p.blended_cost for p in preds),
        "warm_cost": max(p.cost for p in preds),
        "cold_cost": max(p.cold_cost for p in preds),
        "cold_share": max(p.cold_share for p in preds),
        "cold_cost_share": worst.cold_cost_share,
        "required_mb": max(p.required_mb for p in preds),
        "fits": all(p.fits for p in preds),
        "fits_memory": all(p.fits_memory for p in preds),
        "fits_time": all(p.fits_time for p in preds), "worst_format": worst.format,
    }


def recommend(band: str, max_bytes: int, workloads: dict[int, Sequence[Workload]],
              prices: Prices, params: ModelParams,
              memory_settings: Sequence[int] = DEFAULT_MEMORY_SETTINGS) -> Recommendation:
    """The cheapest memory setting (blended cost) at which every format's workload fits.

    Args:
        band: the band's name, e.g. ``"<= 500 MB"``.
        max_bytes: the band's largest input, for the record.
        workloads: per thread count, the band's workloads (one per format) at ``max_bytes``;
            a memory setting is judged on those of :func:`lambda_threads` (or the nearest
            measured thread count when that one was not measured).
        prices: see :func:`load_prices`.
        params: see :class:`ModelParams`.
        memory_settings: the settings considered.

    """
    if not workloads:
        raise ValueError("no workloads to recommend from")
    candidates: list[dict[str, Any]] = []
    for memory in sorted(memory_settings):
        want = lambda_threads(memory)
        threads = min(workloads, key=lambda t: (abs(t - want), t))
        candidates.append(_candidate(memory, threads, [predict(w, memory, prices, params)
                                                       for w in workloads[threads]]))
    fitting = [c for c in candidates if c["fits"]]
    if not fitting:
        return Recommendation(band, max_bytes, None, None, None, None, None,
                              "no setting fits: peak RSS with headroom exceeds every memory "
                              "setting, or the duration exceeds the timeout margin",
                              candidates)
    best = min(fitting, key=lambda c: (c["cost"], c["duration_s"]))
    return Recommendation(
        band, max_bytes, best["memory_mb"], best["duration_s"], best["cost"],
        best["required_mb"], best["worst_format"], "cheapest setting that fits every format",
        candidates, cold_duration_s=best["cold_duration_s"], init_s=best["init_s"],
        warm_cost=best["warm_cost"], cold_cost=best["cold_cost"],
        cold_share=best["cold_share"], cold_cost_share=best["cold_cost_share"])
