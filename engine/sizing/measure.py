"""Conversions in a child process, measured the way Lambda bills and limits them.

Peak RSS comes from the kernel: ``ru_maxrss`` of the child from ``wait4``, the figure Lambda's
"Max Memory Used" is closest to. ``ru_maxrss`` survives ``execve``, so a child forked straight
from a large parent would start at the parent's high-water mark; a tiny launcher process
(:data:`LAUNCHER`, ~10 MiB) forks the measured command instead and reports its rusage.

While the child runs, its RSS is sampled with memory-profiler (:func:`memory_profiler.memory_usage`
on the child's pid) for a timeline, and an optional watchdog kills it with ``SIGKILL`` the moment
its RSS passes a cap, as Lambda does at its memory setting. A run whose ``ru_maxrss`` ends above
the cap counts as killed too: the watchdog polls, the kernel's high-water mark does not miss.

:func:`measure` runs :mod:`engine.sizing.child`, which records each phase's figures itself
(INIT, the cold conversion, the warm one) and resets the kernel's high-water mark between them;
the process's peak is the largest of the phases' and the launcher's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LAMBDA_ABSENT", "LAUNCHER", "Launched", "Measurement", "WarmRun", "launch", "measure"]


#: Modules the Lambda layer does not carry that pyarrow imports when they are installed.
LAMBDA_ABSENT = ("pandas",)

#: Forks the command in ``argv[3:]`` with stdout/stderr to ``argv[1]``/``argv[2]``; prints the
#: child's pid, then ``exit_code ru_maxrss_bytes user_s sys_s`` when it ends.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.dup2(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
        os.dup2(os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
        os.execv(sys.argv[3], sys.argv[3:])
    finally:
        os._exit(127)
print(pid, flush=True)
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024, usage.ru_utime, usage.ru_stime,
      flush=True)
"""


@dataclass
class Launched:
    """What the kernel says about one child process."""

    exit_code: int
    peak_rss_bytes: int
    cpu_s: float
    wall_s: float
    killed: bool = False
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (epoch s, RSS MiB)
    started: float = 0.0
    stdout: str = ""
    stderr: str = ""


def launch(cmd: list[str], *, cap_bytes: int | None = None, sample_interval: float = 0.02,
           env: dict[str, str] | None = None, workdir: str | None = None) -> Launched:
    """Run ``cmd`` through :data:`LAUNCHER`; sample its RSS and enforce ``cap_bytes``.

    Args:
        cmd: the command (its first element an absolute executable path).
        cap_bytes: kill the child with ``SIGKILL`` when its RSS passes this (``None``: no cap).
        sample_interval: seconds between timeline samples (0 turns the timeline off).
        env: the child's environment (default: this process's).
        workdir: where the child's captured stdout and stderr go (default: a temporary dir).

    """
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
        started = time.time()
        launcher = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", LAUNCHER, str(out), str(err), *cmd],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        assert launcher.stdout is not None
        pid = int(launcher.stdout.readline())
        killed = threading.Event()
        watchdog = None
        if cap_bytes is not None:
            watchdog = threading.Thread(target=_watch, args=(pid, cap_bytes, killed), daemon=True)
            watchdog.start()
        timeline = _sample(pid, sample_interval) if sample_interval > 0 else []
        code, peak, user, system = launcher.stdout.readline().split()
        launcher.wait()
        wall = time.time() - started
        if watchdog is not None:
            watchdog.join()
        over = cap_bytes is not None and int(peak) > cap_bytes
        return Launched(
            exit_code=int(code), peak_rss_bytes=int(peak), cpu_s=float(user) + float(system),
            wall_s=wall, killed=killed.is_set() or over, timeline=timeline, started=started,
            stdout=out.read_text(errors="replace"), stderr=err.read_text(errors="replace"),
        )


def _sample(pid: int, interval: float) -> list[tuple[float, float]]:
    """RSS samples (epoch seconds, MiB) of ``pid`` until it exits, with memory-profiler."""
    import psutil
    from memory_profiler import memory_usage

    samples: list[tuple[float, float]] = []
    while True:
        try:  # one sample per call: memory_usage(pid) cannot wait for a grandchild to end
            got = memory_usage(pid, interval=interval, timeout=interval, timestamps=True)
        except psutil.Error:  # exited (a zombie until the launcher reaps it) or gone
            return samples
        samples.extend((t, m) for m, t in got)


def _rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _watch(pid: int, cap_bytes: int, killed: threading.Event) -> None:
    """Poll ``pid``'s RSS every 2 ms; ``SIGKILL`` it above ``cap_bytes`` (as Lambda does)."""
    while (rss := _rss_bytes(pid)) is not None:
        if rss > cap_bytes:
            killed.set()
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        time.sleep(0.002)


@dataclass
class Measurement:
    """One measured child: the kernel's figures, each phase's, the engine's report, a timeline.

    A sweep's child runs a Lambda's life in small (:mod:`engine.sizing.child`): INIT (the
    handler's import), a cold conversion of the file, a warm-up conversion of another file and a
    warm conversion of the file. ``cpu_s``, ``wall_s`` and ``peak_rss_bytes`` are the whole
    process's; the ``init_``, ``cold_`` and ``warm_`` fields are the phases' own.
    """

    src: str
    format: str
    size_bytes: int
    block_size: int
    threads: int
    contract: str | None
    exit_code: int
    killed: bool
    peak_rss_bytes: int
    cpu_s: float
    wall_s: float
    import_s: float = 0.0
    init_cpu_s: float = 0.0
    init_wall_s: float = 0.0
    init_peak_rss_bytes: int = 0
    cold_cpu_s: float = 0.0
    cold_wall_s: float = 0.0
    cold_peak_rss_bytes: int = 0
    warm_cpu_s: float | None = None
    warm_wall_s: float | None = None
    warm_baseline_rss_bytes: int | None = None
    warm_peak_rss_bytes: int | None = None
    phases_done: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    timeline: list[tuple[float, float]] = field(default_factory=list)
    spans: list[tuple[str, float, float]] = field(default_factory=list)
    started: float = 0.0
    stderr: str = ""

    @property
    def ok(self) -> bool:
        """The conversion finished and was not killed."""
        return self.exit_code == 0 and not self.killed

    @property
    def warm_or_cold_cpu_s(self) -> float:
        """The warm conversion's CPU seconds, or the cold one's when no warm phase ran."""
        return self.cold_cpu_s if self.warm_cpu_s is None else self.warm_cpu_s

    def to_dict(self, *, detail: bool = True) -> dict[str, Any]:
        """JSON-ready; without ``detail`` the timeline, spans and stderr are left out."""
        d = asdict(self)
        if not detail:
            for key in ("timeline", "spans", "stderr"):
                d.pop(key)
        return d


@dataclass(frozen=True)
class WarmRun:
    """After the cold conversion: ``warmup_src`` to ``warmup_dst``, then the file to ``dst``."""

    warmup_src: str
    warmup_dst: str
    dst: str


def measure(src: str, dst: str, *, fmt: str, size_bytes: int, block_size: int, threads: int,
            contract: str | None = None, options: dict[str, Any] | None = None,
            trace: bool = False, sample_interval: float = 0.02, cap_bytes: int | None = None,
            python_profile: str | None = None, python_profile_out: str | None = None,
            env: dict[str, str] | None = None, hide_modules: tuple[str, ...] = LAMBDA_ABSENT,
            handler_dir: str | None = None, warm: WarmRun | None = None) -> Measurement:
    """Convert ``src`` to ``dst`` in a measured child process (see :mod:`engine.sizing.child`).

    ``options`` are :func:`engine.transform` keywords; ``block_size`` and ``threads`` are
    added to them. ``env`` defaults to this process's environment. ``hide_modules`` cannot be
    imported in the child (default: what the Lambda layer leaves out but pyarrow would load).
    ``handler_dir``: the Lambda handler whose import is the INIT phase (default: the engine's
    imports). ``warm``: also a warm-up conversion of another file and a warm one of ``src``.
    """
    runs = [{"phase": "cold", "src": src, "dst": dst}]
    if warm is not None:
        runs += [{"phase": "warmup", "src": warm.warmup_src, "dst": warm.warmup_dst},
                 {"phase": "warm", "src": src, "dst": warm.dst}]
    with tempfile.TemporaryDirectory() as tmp:
        spec = {
            "runs": runs, "contract": contract, "trace": trace, "handler_dir": handler_dir,
            "options": {**(options or {}), "block_size": block_size, "threads": threads},
            "result": str(Path(tmp, "result.json")),
            "python_profile": python_profile, "python_profile_out": python_profile_out,
            "hide_modules": list(hide_modules),
        }
        spec_path = Path(tmp, "spec.json")
        spec_path.write_text(json.dumps(spec))
        launched = launch([sys.executable, "-m", "engine.sizing.child", str(spec_path)],
                          cap_bytes=cap_bytes, sample_interval=sample_interval, env=env)
        result_path = Path(spec["result"])
        result = json.loads(result_path.read_text()) if result_path.exists() else {}
    phases = {p["phase"]: p for p in result.get("phases", [])}
    init = result.get("init", {})
    peak = max(launched.peak_rss_bytes, result.get("peak_rss_bytes", 0))
    cold, warmed = phases.get("cold", {}), phases.get("warm")
    return Measurement(
        src=src, format=fmt, size_bytes=size_bytes, block_size=block_size, threads=threads,
        contract=contract, exit_code=launched.exit_code,
        killed=launched.killed or (cap_bytes is not None and peak > cap_bytes),
        peak_rss_bytes=peak,
        cpu_s=round(launched.cpu_s, 3), wall_s=round(launched.wall_s, 3),
        import_s=round(result["imported"] - launched.started, 3) if result else 0.0,
        init_cpu_s=round(init.get("cpu_s", 0.0), 4), init_wall_s=round(init.get("wall_s", 0.0), 4),
        init_peak_rss_bytes=init.get("peak_rss_bytes", 0),
        cold_cpu_s=round(cold.get("cpu_s", 0.0), 4), cold_wall_s=round(cold.get("wall_s", 0.0), 4),
        cold_peak_rss_bytes=cold.get("peak_rss_bytes", 0),
        warm_cpu_s=None if warmed is None else round(warmed["cpu_s"], 4),
        warm_wall_s=None if warmed is None else round(warmed["wall_s"], 4),
        warm_baseline_rss_bytes=None if warmed is None else warmed["rss_before_bytes"],
        warm_peak_rss_bytes=None if warmed is None else warmed["peak_rss_bytes"],
        phases_done=(["init"] if "init" in result else []) + list(phases),
        report=result.get("report", {}), error=result.get("error"),
        timeline=[(round(t, 4), round(m, 2)) for t, m in launched.timeline],
        spans=[(s, round(a, 4), round(b, 4)) for s, a, b in result.get("spans", [])],
        started=launched.started, stderr=launched.stderr[-4000:],
    )
