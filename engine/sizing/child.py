"""The measured process: ``python -m engine.sizing.child SPEC.json`` runs a Lambda's life in small.

The spec (written by :mod:`engine.sizing.measure`) names the conversions to run, in order, the
options and contract, the modules to hide (pandas: the Lambda layer has none, and pyarrow imports
it when installed, +29 MiB and 0.12 CPU s on a contract run), and where to write the result.

The phases, each with its own CPU seconds, wall seconds and RSS from the kernel:

1. **init**, a cold start's INIT phase: the interpreter's start and the import of the transform
   handler (``handler_dir``: its folder first on ``sys.path``, then ``import handler``, as the
   Lambda runtime does and as ``benchmarks/cold_start.py`` measures it). Without
   ``handler_dir`` the engine's own imports stand in (``chunkwise profile``).
2. **cold**: the first conversion: a cold invocation's, paying what the engine and boto3 load
   on first use. Its peak RSS is the process's through INIT and this conversion.
3. **warmup**, then **warm** (when the spec lists them): another file, then the measured file
   again in the same process, as a warm invocation finds it. The kernel's high-water mark is
   reset before each (``/proc/self/clear_refs``), so each phase's peak is its own; the RSS at its
   start is the warm baseline.

CPU seconds are the whole process's (every thread: ``time.process_time``). The result file is
rewritten after every phase, so a run the watchdog kills still says which phases finished. A
failed conversion writes its typed error and the process exits with its exit code.
"""

from __future__ import annotations

import importlib
import importlib.abc
import json
import os
import sys
import time

STARTED = time.time()  # before the engine's imports: INIT is billed from the runtime's start


def main(spec_path: str) -> int:
    """Run the phases the spec at ``spec_path`` describes; return the exit code."""
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    hidden = frozenset(spec.get("hide_modules", ()))
    if hidden:  # absent from the Lambda layer: absent here
        sys.meta_path.insert(0, _Hidden(hidden))
    options = spec.get("options", {})
    from engine.runtime import process
    from engine.runtime.memory import peak_rss_bytes, rss_bytes

    process.configure(options.get("threads"))  # as the CLI and the handler: before pyarrow
    if spec.get("handler_dir"):
        sys.path.insert(0, spec["handler_dir"])
        importlib.import_module("handler")  # the transform handler's module: the INIT phase
    else:  # the engine's own imports stand in for INIT
        importlib.import_module("engine.run")
    import engine  # the handler defers engine.run, pyarrow.parquet, boto3 to its first call
    from engine.errors import EngineError, exit_code_for
    from engine.runtime.timing import CLOCK, StageClock

    imported = time.time()
    init_peak = peak_rss_bytes()
    result: dict = {
        "started": STARTED, "imported": imported,
        "init": {"cpu_s": time.process_time(), "wall_s": imported - STARTED,
                 "rss_bytes": rss_bytes(), "peak_rss_bytes": init_peak},
        "phases": [], "peak_rss_bytes": init_peak,
    }
    _write(spec["result"], result)
    profiler = _profiler(spec.get("python_profile"))
    code = 0
    for i, run in enumerate(spec["runs"]):
        reset = i > 0 and _reset_peak(result)
        clock = StageClock(trace=bool(spec.get("trace")))
        token = CLOCK.set(clock)
        phase = {"phase": run["phase"], "rss_before_bytes": rss_bytes(),
                 "peak_reset": reset}
        cpu, wall = time.process_time(), time.time()
        try:
            if profiler is not None and i == len(spec["runs"]) - 1:
                profiler.start()
            report = engine.transform(run["src"], run["dst"], contract=spec.get("contract"),
                                      **options)
        except EngineError as exc:
            result["error"] = {"type": type(exc).__name__, "message": str(exc),
                               "phase": run["phase"]}
            code = exit_code_for(exc)
        finally:
            if profiler is not None and profiler.running:
                profiler.stop(spec["python_profile_out"])
            CLOCK.reset(token)
        if code:
            break
        # The kernel's high-water mark, reset just before the phase, can end below the RSS read
        # after the reset (the reading's own pages, then memory handed back with madvise,
        # which does not raise the mark): a phase's peak is at least the RSS it started at.
        phase.update(cpu_s=time.process_time() - cpu, wall_s=time.time() - wall,
                     peak_rss_bytes=max(peak_rss_bytes(), phase["rss_before_bytes"]))
        result["phases"].append(phase)
        result["peak_rss_bytes"] = max(result["peak_rss_bytes"], phase["peak_rss_bytes"])
        result["report"] = report.to_dict()  # the last phase's: the measured file, warm
        result["spans"] = clock.spans or []
        _write(spec["result"], result)
    result["finished"] = time.time()
    _write(spec["result"], result)
    return code


def _reset_peak(result: dict) -> bool:
    """Reset the kernel's peak RSS to the current RSS; keep the process's peak so far.

    Writing 5 to ``/proc/self/clear_refs`` (Linux 4.0+) resets ``VmHWM`` and with it the
    ``ru_maxrss`` the launcher reads at exit, so the peak so far is kept in ``result``.
    """
    from engine.runtime.memory import peak_rss_bytes, reset_peak_rss

    result["peak_rss_bytes"] = max(result["peak_rss_bytes"], peak_rss_bytes())
    # not Linux, or not allowed: each phase's peak is the process's so far
    return reset_peak_rss()


def _write(path: str, result: dict) -> None:
    """Replace the result file whole, so a killed run leaves the last phase it finished."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(tmp, path)


class _Hidden(importlib.abc.MetaPathFinder):
    """Makes ``import`` of the named top-level packages fail as if they were not installed."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in self.names:
            raise ImportError(f"{name} is hidden: the Lambda layer does not carry it",
                              name=name)
        return None


class _Profiler:
    """pyinstrument when installed (a statistical profile, low overhead), else cProfile."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.running = False
        if kind == "pyinstrument":
            from pyinstrument import Profiler

            self._impl = Profiler(interval=0.001)
        else:
            import cProfile

            self._impl = cProfile.Profile()

    def start(self) -> None:
        self.running = True
        self._impl.enable() if self.kind == "cprofile" else self._impl.start()

    def stop(self, out: str) -> None:
        self.running = False
        if self.kind == "cprofile":
            import pstats

            self._impl.disable()
            with open(out, "w", encoding="utf-8") as f:
                pstats.Stats(self._impl, stream=f).sort_stats("cumulative").print_stats(40)
        else:
            self._impl.stop()
            with open(out, "w", encoding="utf-8") as f:
                f.write(self._impl.output_text(unicode=True, color=False, show_all=False))


def _profiler(kind: str | None) -> _Profiler | None:
    return None if not kind else _Profiler(kind)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
