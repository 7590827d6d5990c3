"""``chunkwise profile FILE``: where one conversion's memory and time go.

One transform runs in a measured child process (:mod:`engine.sizing.measure`): peak RSS from the
kernel, an RSS timeline, CPU and wall seconds per stage, throughput, the Arrow memory pool's
peak and, with ``python_profile``, a pyinstrument (or cProfile) report of the hot path. The
result goes to ``<out_dir>/<name>.json`` and ``<name>.png``, with the smallest Lambda memory
setting the run fits in under the sizing model: its predicted duration is the conversion's
(the process's start-up and the engine's imports are INIT, ``init_cpu_s``, which a warm
invocation does not pay), and ``fits_cold_duration_s`` adds INIT.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from engine.config import MiB
from engine.errors import EngineError, InputNotFoundError
from engine.io import input_stem
from engine.runtime.threads import worker_threads
from engine.sizing.measure import measure
from engine.sizing.model import (
    DEFAULT_MEMORY_SETTINGS,
    ModelParams,
    Prices,
    Workload,
    predict,
)

__all__ = ["run_profile"]


def run_profile(src: str, *, out_dir: Path, name: str | None = None,
                contract: str | None = None, threads: int | None = None,
                block_size: int | None = None, options: dict[str, Any] | None = None,
                python_profile: str | None = None, prices: Prices,
                params: ModelParams | None = None, sample_interval: float = 0.02,
                plot: bool = True) -> dict[str, Any]:
    """Profile one conversion of ``src``; write ``<name>.json`` (and ``.png``); return it."""
    from engine import io
    from engine.config import default_block_size

    params = params or ModelParams()
    if not io.is_s3(src) and not Path(src).exists():
        raise InputNotFoundError(f"no such file: {src}", uri=src)
    name = name or input_stem(src, default="profile")
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = worker_threads(threads)
    block = block_size or default_block_size(threads)  # as a run chooses it
    profile_out = str(out_dir / f"{name}.{python_profile}.txt") if python_profile else None
    with tempfile.TemporaryDirectory(prefix="chunkwise-profile-") as tmp:
        dst = os.path.join(tmp, "out") + ("/" if contract else ".parquet")
        m = measure(src, dst, fmt="", size_bytes=0, block_size=block, threads=threads,
                    contract=contract, options=options, trace=True,
                    sample_interval=sample_interval, python_profile=python_profile,
                    python_profile_out=profile_out)
        shutil.rmtree(os.path.join(tmp, "out"), ignore_errors=True)
    if m.exit_code != 0:
        detail = m.error["message"] if m.error else (m.stderr.strip().splitlines() or ["?"])[-1]
        raise EngineError(f"the profiled conversion failed (exit {m.exit_code}): {detail}",
                          uri=src)
    report = m.report
    size = report.get("bytes_in", 0)
    work = Workload(cpu_s=m.cold_cpu_s, io_bytes=size + report.get("bytes_out", 0),
                    peak_rss_bytes=m.peak_rss_bytes, format=report.get("format", ""),
                    threads=threads, init_cpu_s=m.init_cpu_s)
    fits = next((p for p in (predict(work, mem, prices, params)
                             for mem in DEFAULT_MEMORY_SETTINGS) if p.fits_memory), None)
    convert_s = report.get("seconds", 0.0)
    profile = {
        "name": name, "src": src, "format": report.get("format"), "size_mb": size / 1e6,
        "contract": contract, "threads": threads, "block_size": block,
        "rows_in": report.get("rows_in"), "rows_out": report.get("rows_out"),
        "rows_rejected": report.get("rows_rejected"),
        "peak_rss_mib": round(m.peak_rss_bytes / MiB, 1),
        "arrow_peak_mib": round(report.get("arrow_peak_bytes", 0) / MiB, 1),
        "cpu_s": m.cpu_s, "wall_s": m.wall_s, "import_s": m.import_s,
        "init_cpu_s": m.init_cpu_s, "convert_cpu_s": m.cold_cpu_s,
        "convert_s": convert_s,
        "mb_per_s": round(size / 1e6 / m.wall_s, 1) if m.wall_s else None,
        "mb_per_s_excl_startup": round(size / 1e6 / convert_s, 1) if convert_s else None,
        "stages": report.get("stages", {}),
        "fits_mb": fits.memory_mb if fits else None,
        "fits_needs_mb": fits.required_mb if fits else None,
        "fits_duration_s": round(fits.duration_s, 3) if fits else None,
        "fits_cold_duration_s": round(fits.cold_duration_s, 3) if fits else None,
        "fits_cost": fits.cost if fits else None,
        "model": vars(params), "prices": vars(prices),
        "python_profile": profile_out,
        "started": m.started, "timeline": m.timeline, "spans": m.spans,
    }
    (out_dir / f"{name}.json").write_text(json.dumps(profile, indent=1) + "\n", encoding="utf-8")
    if plot:
        from engine.sizing.plot import plot_profile

        plot_profile(profile, out_dir / f"{name}.png")
    return profile


