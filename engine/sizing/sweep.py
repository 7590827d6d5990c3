"""``chunkwise size``: sweep file size x format x block size x threads, fit, recommend, verify.

Every case is one measured child process (:func:`engine.sizing.measure.measure`) on a generated
``orders`` file, cached by format, size and seed so a second sweep generates nothing. The child
lives as a Lambda execution environment does: INIT (it imports the packaged transform handler,
:func:`engine.resources.handler_dir`), a cold conversion of the file, a warm-up conversion of
another file (:data:`WARMUP_BYTES`, the next seed) and a warm conversion of the file. From the
measurements, per format and thread count:

- **peak RSS against file size** (the process's, the larger of the cold and warm peaks): the
  slope over the inputs of at least ``tail_min_bytes`` (below that size the bounded buffers are
  still filling, so RSS rises to its bound); a slope of ``max_slope_mb_per_100mb`` or more is
  flagged as growth;
- **peak RSS against block size** (at the largest input): the slope per MiB of block;
- **warm CPU seconds against file size**: CPU s/GB (the slope); INIT's CPU seconds and what the
  first call adds (cold minus warm conversion), as medians.

Each size band's workload is then the warm CPU at the band's largest size (interpolated between
the measured sizes, extrapolated by the fitted line beyond them), INIT's and the first call's
CPU, the measured output ratio, and the largest peak RSS among inputs up to that size (all at
the engine's default block size when it was swept); :func:`engine.sizing.model.recommend`
picks the memory.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import DEFAULT_BLOCK_SIZE, MiB
from engine.sizing.measure import Measurement, WarmRun, measure
from engine.sizing.model import (
    DEFAULT_MEMORY_SETTINGS,
    ModelParams,
    Prices,
    Recommendation,
    Workload,
    fit_line,
    lambda_threads,
    recommend,
)

__all__ = ["DEFAULT_BANDS", "WARMUP_BYTES", "SweepConfig", "SweepResult", "data_file",
           "run_sweep"]

#: Size bands a recommendation is made for: (name, largest input in bytes).
DEFAULT_BANDS = (("<= 10 MB", 10 * 10**6), ("<= 100 MB", 100 * 10**6), ("<= 500 MB", 500 * 10**6))
#: The size of the other file a measured child converts between the cold and the warm run.
WARMUP_BYTES = 100_000
#: The conversions of a measured child, each writing its own output.
_PHASES = ("cold", "warmup", "warm")
_SUFFIX = {"csv": "csv", "ndjson": "ndjson", "json": "json"}


@dataclass
class SweepConfig:
    """What ``chunkwise size`` measures and how it judges the result."""

    formats: Sequence[str] = ("csv", "ndjson", "json")
    sizes: Sequence[int] = (10**6, 10 * 10**6, 100 * 10**6, 500 * 10**6)
    block_sizes: Sequence[int] = (1 * MiB, DEFAULT_BLOCK_SIZE)
    threads: Sequence[int] = (1, 2)
    contract: str | None = None
    seed: int = 0
    data_dir: Path = field(default_factory=lambda: default_data_dir())
    out_dir: Path = Path("profiles")
    name: str = "sizing"
    bands: Sequence[tuple[str, int]] = DEFAULT_BANDS
    memory_settings: Sequence[int] = DEFAULT_MEMORY_SETTINGS
    params: ModelParams = field(default_factory=ModelParams)
    tail_min_bytes: int = 50 * 10**6
    max_slope_mb_per_100mb: float = 2.0
    sample_interval: float = 0.05
    io: str = "local"


def default_data_dir() -> Path:
    """Where generated sweep inputs are cached (``$CHUNKWISE_DATA`` or the user cache)."""
    base = os.environ.get("CHUNKWISE_DATA") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "chunkwise", "data")
    return Path(base)


def data_file(data_dir: Path, fmt: str, size: int, seed: int) -> Path:
    """The cached ``orders`` file of ``size`` bytes in ``fmt``, generated on first use.

    ``engine.gen.generate`` is deterministic for (dataset, size, format, seed), so a file of the
    right name is the right content; it is written under a temporary name and renamed.
    """
    path = data_dir / f"orders_{size}_seed{seed}.{_SUFFIX[fmt]}"
    if not path.exists():
        from engine.gen import generate

        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            generate("orders", tmp, size=size, fmt=fmt, seed=seed)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


@dataclass
class SweepResult:
    """Measurements, fits and recommendations of one sweep (what ``sizing.json`` holds)."""

    config: dict[str, Any]
    measurements: list[Measurement]
    fits: list[dict[str, Any]]
    recommendations: list[Recommendation]
    prices: Prices
    machine: dict[str, Any]
    seconds: float
    verify: list[dict[str, Any]] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def chosen_mb(self) -> int | None:
        """The setting for the function: the largest band's recommendation (it covers all)."""
        return self.recommendations[-1].memory_mb if self.recommendations else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without timelines."""
        return {
            "config": self.config,
            "machine": self.machine,
            "prices": vars(self.prices),
            "seconds": round(self.seconds, 1),
            "flags": self.flags,
            "fits": self.fits,
            "recommendations": [r.to_dict() for r in self.recommendations],
            "chosen_memory_mb": self.chosen_mb,
            "verify": self.verify,
            "measurements": [m.to_dict(detail=False) for m in self.measurements],
        }


Progress = Callable[[str], None]


def run_sweep(cfg: SweepConfig, prices: Prices, progress: Progress | None = None) -> SweepResult:
    """Measure every case of ``cfg``, fit, and recommend a memory per band."""
    say = progress or (lambda _msg: None)
    started = time.time()
    cases = [(fmt, size, block, threads) for fmt in cfg.formats for size in sorted(cfg.sizes)
             for block in cfg.block_sizes for threads in cfg.threads]
    measurements: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="chunkwise-size-") as tmp, _Storage(cfg.io) as store:
        for i, (fmt, size, block, threads) in enumerate(cases, 1):
            src = data_file(cfg.data_dir, fmt, size, cfg.seed)
            m = _measure_case(src, Path(tmp), fmt, size, block, threads, cfg, store=store)
            measurements.append(m)
            say(f"[{i}/{len(cases)}] {fmt} {size / 1e6:g} MB block {block // MiB} MiB "
                f"threads {threads}: peak {m.peak_rss_bytes / MiB:.0f} MiB, CPU s: INIT "
                f"{m.init_cpu_s:.2f}, cold {m.cold_cpu_s:.2f}, warm {m.warm_or_cold_cpu_s:.2f}")
    fits, flags = fit_measurements(measurements, cfg)
    recs = [recommend(name, limit, band_workloads(measurements, limit, cfg), prices, cfg.params,
                      cfg.memory_settings) for name, limit in cfg.bands]
    largest = max(cfg.sizes)
    for rec in recs:
        if rec.max_bytes > largest:
            rec.reason += (f"; extrapolated: the largest input measured is {largest / 1e6:g} MB, "
                           "so RSS at this band's top is not measured")
            flags.append(f"band {rec.band} is extrapolated beyond the largest input measured "
                         f"({largest / 1e6:g} MB)")
    return SweepResult(config=_config_dict(cfg), measurements=measurements, fits=fits,
                       recommendations=recs, prices=prices, machine=machine_info(),
                       seconds=time.time() - started, flags=flags)


def _measure_case(src: Path, tmp: Path, fmt: str, size: int, block: int, threads: int,
                  cfg: SweepConfig, cap_bytes: int | None = None,
                  store: _Storage | None = None) -> Measurement:
    from engine.resources import handler_dir

    warmup = data_file(cfg.data_dir, fmt, WARMUP_BYTES, cfg.seed + 1)
    directory = cfg.contract is not None
    dst = {phase: str(tmp / phase) + ("/" if directory else ".parquet") for phase in _PHASES}
    uri, warmup_uri, env = str(src), str(warmup), None
    if store is not None and store.endpoint is not None:
        uri, warmup_uri, env = store.put(src), store.put(warmup), store.env
        dst = {phase: store.output_uri(directory, phase) for phase in _PHASES}
    try:
        m = measure(uri, dst["cold"], fmt=fmt, size_bytes=size, block_size=block,
                    threads=threads, contract=cfg.contract, sample_interval=cfg.sample_interval,
                    cap_bytes=cap_bytes, options={"format": fmt}, env=env,
                    handler_dir=str(handler_dir("transform")),
                    warm=WarmRun(warmup_uri, dst["warmup"], dst["warm"]))
    finally:
        for phase in _PHASES:
            shutil.rmtree(tmp / phase, ignore_errors=True)
            Path(str(tmp / phase) + ".parquet").unlink(missing_ok=True)
        if store is not None:
            store.clear_output()
    if m.exit_code != 0 and not m.killed:
        from engine.errors import EngineError

        detail = m.error["message"] if m.error else m.stderr.strip().splitlines()[-1:] or "?"
        raise EngineError(f"the measured conversion of {src} failed (exit {m.exit_code}): "
                          f"{detail}", uri=str(src))
    return m


class _Storage:
    """Where inputs and outputs live: local files, or S3 on a loopback moto server.

    With ``io="s3"`` the measured process reads and writes ``s3://`` through botocore, as the
    Lambda does, so its RSS holds the AWS SDK and its client (the part being uploaded is in the
    spool on local disk) and its CPU the HTTP and checksum work; the server runs in this
    process, on 127.0.0.1.
    """

    BUCKET = "chunkwise-sizing"

    def __init__(self, io: str) -> None:
        if io not in ("local", "s3"):
            from engine.errors import PermanentError

            raise PermanentError(f"unknown --io {io!r}: use local or s3")
        self.io = io
        self.endpoint: str | None = None
        self.env: dict[str, str] | None = None
        self._server: Any = None
        self._client: Any = None
        self._uploaded: dict[Path, str] = {}

    def __enter__(self) -> _Storage:
        if self.io != "s3":
            return self
        try:
            import boto3
            from moto.server import ThreadedMotoServer
        except ImportError:
            from engine.errors import PermanentError

            raise PermanentError("--io s3 needs moto: pip install 'chunkwise[local]'") from None
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on stderr
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        fake = {"AWS_ACCESS_KEY_ID": "sizing", "AWS_SECRET_ACCESS_KEY": "sizing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint}
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("AWS_PROFILE", "AWS_SESSION_TOKEN")} | fake
        self._client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                                    aws_access_key_id="sizing", aws_secret_access_key="sizing")
        self._client.create_bucket(Bucket=self.BUCKET)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()

    def put(self, src: Path) -> str:
        """The ``s3://`` URI of ``src``, uploaded on first use."""
        if src not in self._uploaded:
            key = f"in/{src.name}"
            self._client.upload_file(str(src), self.BUCKET, key)
            self._uploaded[src] = f"s3://{self.BUCKET}/{key}"
        return self._uploaded[src]

    def output_uri(self, directory: bool, phase: str) -> str:
        """Where a measured run's ``phase`` (cold, warmup, warm) writes."""
        return f"s3://{self.BUCKET}/out/{phase}/" + ("" if directory else "out.parquet")

    def clear_output(self) -> None:
        """Delete what the last run wrote (moto keeps objects in this process's memory)."""
        if self._client is None:
            return
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.BUCKET,
                                                                       Prefix="out/")
        for page in pages:
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self._client.delete_objects(Bucket=self.BUCKET, Delete={"Objects": keys})


def _default_block(measurements: Sequence[Measurement]) -> int:
    blocks = {m.block_size for m in measurements}
    return DEFAULT_BLOCK_SIZE if DEFAULT_BLOCK_SIZE in blocks else min(blocks)


def fit_measurements(measurements: Sequence[Measurement],
                     cfg: SweepConfig) -> tuple[list[dict[str, Any]], list[str]]:
    """Per format and thread count: RSS and CPU against size, RSS against block size."""
    fits: list[dict[str, Any]] = []
    flags: list[str] = []
    block = _default_block(measurements)
    for fmt in sorted({m.format for m in measurements}):
        for threads in sorted({m.threads for m in measurements}):
            at_block = [m for m in measurements
                        if m.format == fmt and m.threads == threads and m.block_size == block]
            if not at_block:
                continue
            tail = [m for m in at_block if m.size_bytes >= cfg.tail_min_bytes]
            enough = len({m.size_bytes for m in tail}) > 1
            rss_all = fit_line((m.size_bytes, m.peak_rss_bytes) for m in at_block)
            cpu = fit_line((m.size_bytes, m.warm_or_cold_cpu_s) for m in at_block)
            largest = max(m.size_bytes for m in measurements if m.format == fmt)
            by_block = [m for m in measurements if m.format == fmt and m.threads == threads
                        and m.size_bytes == largest]
            rss_block = (fit_line((m.block_size / MiB, m.peak_rss_bytes / MiB) for m in by_block)
                         if len({m.block_size for m in by_block}) > 1 else None)
            slope, cold, warm = (
                _rss_slope(tail, key) if enough else None
                for key in ("peak_rss_bytes", "cold_peak_rss_bytes", "warm_peak_rss_bytes"))
            entry = {
                "format": fmt, "threads": threads, "block_size": block,
                "rss_slope_mb_per_100mb": None if slope is None else round(slope, 3),
                "rss_slope_cold_mb_per_100mb": None if cold is None else round(cold, 3),
                "rss_slope_warm_mb_per_100mb": None if warm is None else round(warm, 3),
                "rss_slope_points": len(tail),
                "rss_slope_all_sizes_mb_per_100mb": round(rss_all.slope * 100, 3),
                "rss_max_mib": round(max(m.peak_rss_bytes for m in at_block) / MiB, 1),
                "rss_mib_per_block_mib": None if rss_block is None else round(rss_block.slope, 2),
                "cpu_s_per_gb": round(cpu.slope * 1e9, 3),
                "init_cpu_s": round(statistics.median(m.init_cpu_s for m in at_block), 3),
                "first_call_cpu_s": round(_first_call_cpu(at_block), 3),
                "init_peak_mib": round(max(m.init_peak_rss_bytes for m in at_block) / MiB, 1),
                "grows": slope is not None and slope >= cfg.max_slope_mb_per_100mb,
            }
            fits.append(entry)
            if slope is None:
                flags.append(f"{fmt} threads {threads}: no RSS slope (fewer than two input "
                             f"sizes of at least {cfg.tail_min_bytes / 1e6:g} MB)")
            if entry["grows"]:
                flags.append(f"{fmt} threads {threads}: peak RSS grows {slope:.2f} MB per 100 MB "
                             f"of input (limit {cfg.max_slope_mb_per_100mb:g})")
    return fits, flags


def _rss_slope(measurements: Sequence[Measurement], key: str) -> float:
    """MB of ``key`` (a peak RSS field; the process's where a phase is missing) per 100 MB."""
    return fit_line((m.size_bytes, getattr(m, key) or m.peak_rss_bytes)
                    for m in measurements).slope * 100


def _first_call_cpu(measurements: Sequence[Measurement]) -> float:
    """Median CPU seconds a cold conversion spends beyond the warm one of the same file."""
    return statistics.median(max(0.0, m.cold_cpu_s - m.warm_or_cold_cpu_s)
                             for m in measurements)


def value_at(points: Sequence[tuple[float, float]], x: float) -> float:
    """The value at ``x``: interpolated between the measured ``(x, y)`` points, else extended.

    Repeated ``x`` are averaged. Below the smallest measured ``x`` the smallest one's value
    holds; above the largest, the least-squares line through all points, never below the
    largest one's value.

    Example:
        >>> value_at([(1, 0.1), (10, 1.0), (100, 4.0)], 55)
        2.5
        >>> value_at([(1, 0.1), (10, 1.0)], 0.5), round(value_at([(1, 0.1), (10, 1.0)], 20), 6)
        (0.1, 2.0)

    """
    by_x: dict[float, list[float]] = {}
    for px, py in points:
        by_x.setdefault(px, []).append(py)
    xs = sorted(by_x)
    ys = [sum(by_x[px]) / len(by_x[px]) for px in xs]
    if x <= xs[0]:
        return ys[0]
    if x > xs[-1]:
        return max(fit_line(points).at(x), ys[-1])
    i = next(i for i, px in enumerate(xs) if px >= x)
    if xs[i] == x:
        return ys[i]
    return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - xs[i - 1]) / (xs[i] - xs[i - 1])


def band_workloads(measurements: Sequence[Measurement], limit: int,
                   cfg: SweepConfig) -> dict[int, list[Workload]]:
    """Per thread count, one workload per format at the band's largest input ``limit``."""
    block = _default_block(measurements)
    out: dict[int, list[Workload]] = {}
    for threads in sorted({m.threads for m in measurements}):
        for fmt in sorted({m.format for m in measurements}):
            ms = [m for m in measurements
                  if m.format == fmt and m.threads == threads and m.block_size == block]
            if not ms:
                continue
            within = [m for m in ms if m.size_bytes <= limit] or [min(ms, key=lambda m:
                                                                       m.size_bytes)]
            largest = max(ms, key=lambda m: m.size_bytes)
            bytes_in = largest.report.get("bytes_in") or largest.size_bytes
            ratio = (largest.report.get("bytes_out", 0) / bytes_in) if bytes_in else 0.0
            out.setdefault(threads, []).append(Workload(
                cpu_s=value_at([(m.size_bytes, m.warm_or_cold_cpu_s) for m in ms], limit),
                io_bytes=int(limit * (1 + ratio)),
                peak_rss_bytes=max(m.peak_rss_bytes for m in within),
                format=fmt, threads=threads,
                init_cpu_s=statistics.median(m.init_cpu_s for m in ms),
                first_call_cpu_s=_first_call_cpu(within),
            ))
    return out


def verify(result: SweepResult, cfg: SweepConfig, memory_mb: int,
           progress: Progress | None = None) -> list[dict[str, Any]]:
    """Rerun the largest input of each format, cold then warm, under a hard cap at ``memory_mb``.

    The cap is the memory minus the runtime's overhead (the part of Lambda's memory the
    measured process does not get), in MiB as Lambda's MB are; the watchdog kills the child
    above it, as Lambda does. One child runs both paths, as one environment would: INIT and the
    cold conversion (the cold path), then a warm-up and the warm conversion (the warm path), so
    the warm path carries what the cold one left behind. Threads are what the engine uses at
    that memory.
    """
    say = progress or (lambda _msg: None)
    cap = int((memory_mb - cfg.params.overhead_mb) * MiB)
    threads = lambda_threads(memory_mb)
    largest = max(cfg.sizes)
    rows = []
    with tempfile.TemporaryDirectory(prefix="chunkwise-verify-") as tmp, _Storage(cfg.io) as store:
        for fmt in cfg.formats:
            src = data_file(cfg.data_dir, fmt, largest, cfg.seed)
            m = _measure_case(src, Path(tmp), fmt, largest, _default_block(result.measurements),
                              threads, cfg, cap_bytes=cap, store=store)
            cold = m.ok or {"init", "cold"} <= set(m.phases_done)
            warm = m.ok and "warm" in m.phases_done
            row = {"format": fmt, "size_bytes": largest, "memory_mb": memory_mb,
                   "cap_mib": round(cap / MiB, 1), "threads": threads,
                   "cold_peak_mib": round(m.cold_peak_rss_bytes / MiB, 1),
                   "warm_peak_mib": round((m.warm_peak_rss_bytes or 0) / MiB, 1),
                   "peak_rss_mib": round(m.peak_rss_bytes / MiB, 1), "killed": m.killed,
                   "cold_passed": cold, "warm_passed": warm, "passed": cold and warm,
                   "wall_s": m.wall_s}
            rows.append(row)
            say(f"verify {fmt} {largest / 1e6:g} MB under {row['cap_mib']} MiB: cold "
                f"{_verdict(cold)}, warm {_verdict(warm)}; peak {row['peak_rss_mib']} MiB")
    return rows


def _verdict(passed: bool) -> str:
    return "pass" if passed else "FAIL (killed)"


def machine_info() -> dict[str, Any]:
    """Where the sweep ran: CPU, cores, Python and the engine's library versions."""
    import pyarrow

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
    except OSError:
        pass
    return {"machine": platform.machine(), "cpu": model, "cores": cores,
            "python": platform.python_version(), "pyarrow": pyarrow.__version__,
            "platform": sys.platform, "date": time.strftime("%Y-%m-%d")}


def _config_dict(cfg: SweepConfig) -> dict[str, Any]:
    return {
        "formats": list(cfg.formats), "sizes": list(cfg.sizes),
        "block_sizes": list(cfg.block_sizes), "threads": list(cfg.threads),
        "contract": cfg.contract, "seed": cfg.seed, "io": cfg.io,
        "bands": [list(b) for b in cfg.bands],
        "memory_settings": list(cfg.memory_settings), "params": vars(cfg.params),
        "tail_min_bytes": cfg.tail_min_bytes,
        "max_slope_mb_per_100mb": cfg.max_slope_mb_per_100mb,
    }
