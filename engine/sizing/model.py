"""Lambda's CPU share, duration and cost at each memory setting, from measured runs.

The model (all of it here, so a test can check it by hand):

- **CPU share.** Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB,
  up to six at 10,240 MB. The engine runs one thread below 1,769 MB and two from there
  (:func:`engine.runtime.threads.lambda_threads`), so the share it can use is
  ``min(memory / 1769, threads, 6)``.
- **Duration** = measured CPU seconds of the whole process (start-up included: Lambda bills the
  INIT phase of on-demand functions) ÷ that share + I/O seconds (bytes to and from S3 at an
  assumed S3 throughput; a local measurement has no network time of its own).
- **Cost** per invocation = price per GB-second × memory (GB = MB / 1024) × billed duration
  (rounded up to the millisecond) + the request price. Prices are data (:file:`prices.json`)
  with their date and source, and can be overridden.
- **Fits** when peak RSS × (1 + headroom) + the runtime's overhead ≤ memory, and the predicted
  duration ≤ timeout × (1 - margin).

The recommendation for a size band is the cheapest setting that fits for every format; a tie
goes to the faster one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from typing import Any

from engine.config import FULL_VCPU_MB, MiB
from engine.runtime.threads import lambda_threads

__all__ = [
    "DEFAULT_MEMORY_SETTINGS",
    "FULL_VCPU_MB",
    "Fit",
    "ModelParams",
    "Prediction",
    "Prices",
    "Recommendation",
    "Workload",
    "fit_line",
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

    """

    headroom: float = 0.25
    overhead_mb: float = 30.0
    timeout_s: float = 900.0
    timeout_margin: float = 0.5
    s3_mb_per_s: float = 90.0


def vcpu_share(memory_mb: int, threads: int) -> float:
    """The CPUs a run of ``threads`` threads can use at ``memory_mb``."""
    return min(memory_mb / FULL_VCPU_MB, float(threads), float(MAX_VCPUS))


@dataclass(frozen=True)
class Workload:
    """What one conversion needs, from measurements: CPU seconds, S3 bytes, peak RSS."""

    cpu_s: float
    io_bytes: int
    peak_rss_bytes: int
    format: str = ""
    threads: int = 1


@dataclass(frozen=True)
class Prediction:
    """One workload at one memory setting."""

    memory_mb: int
    threads: int
    duration_s: float
    billed_ms: int
    cost: float
    required_mb: float
    fits_memory: bool
    fits_time: bool
    format: str = ""

    @property
    def fits(self) -> bool:
        """Both memory and duration fit."""
        return self.fits_memory and self.fits_time


def predict(work: Workload, memory_mb: int, prices: Prices, params: ModelParams) -> Prediction:
    """Duration, billed duration, cost and fit of ``work`` at ``memory_mb``."""
    share = vcpu_share(memory_mb, work.threads)
    io_s = work.io_bytes / (params.s3_mb_per_s * 1e6)
    duration = work.cpu_s / share + io_s
    billed_ms = math.ceil(duration * 1000 - 1e-9)
    cost = prices.gb_second * (memory_mb / 1024) * (billed_ms / 1000) + prices.request
    required = work.peak_rss_bytes / MiB * (1 + params.headroom) + params.overhead_mb
    return Prediction(
        memory_mb=memory_mb, threads=work.threads, duration_s=duration,
        billed_ms=billed_ms, cost=cost, required_mb=round(required, 1),
        fits_memory=required <= memory_mb,
        fits_time=duration <= params.timeout_s * (1 - params.timeout_margin),
        format=work.format,
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
    """The cheapest fitting memory for one size band, and every setting considered."""

    band: str
    max_bytes: int
    memory_mb: int | None
    duration_s: float | None
    cost: float | None
    required_mb: float | None
    worst_format: str | None
    reason: str
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def recommend(band: str, max_bytes: int, workloads: dict[int, Sequence[Workload]],
              prices: Prices, params: ModelParams,
              memory_settings: Sequence[int] = DEFAULT_MEMORY_SETTINGS) -> Recommendation:
    """The cheapest memory setting at which every format's workload fits.

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
    best: tuple[float, float, int, Prediction] | None = None
    for memory in sorted(memory_settings):
        want = lambda_threads(memory)
        threads = min(workloads, key=lambda t: (abs(t - want), t))
        preds = [predict(w, memory, prices, params) for w in workloads[threads]]
        worst = max(preds, key=lambda p: (not p.fits, p.cost, p.duration_s))
        fits = all(p.fits for p in preds)
        cost = max(p.cost for p in preds)
        duration = max(p.duration_s for p in preds)
        required = max(p.required_mb for p in preds)
        candidates.append({
            "memory_mb": memory, "threads": threads, "duration_s": round(duration, 3),
            "cost": cost, "required_mb": required, "fits": fits,
            "fits_memory": all(p.fits_memory for p in preds),
            "fits_time": all(p.fits_time for p in preds), "worst_format": worst.format,
        })
        if fits and (best is None or (cost, duration) < (best[0], best[1])):
            best = (cost, duration, memory, replace(worst, cost=cost, duration_s=duration,
                                                    required_mb=required))
    if best is None:
        return Recommendation(band, max_bytes, None, None, None, None, None,
                              "no setting fits: peak RSS with headroom exceeds every memory "
                              "setting, or the duration exceeds the timeout margin",
                              candidates)
    _, _, memory, pred = best
    return Recommendation(band, max_bytes, memory, round(pred.duration_s, 3), pred.cost,
                          pred.required_mb,
                          pred.format, "cheapest setting that fits every format", candidates)
