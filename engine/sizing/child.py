"""The measured process: ``python -m engine.sizing.child SPEC.json`` runs one conversion.

The spec (written by :mod:`engine.sizing.measure`) names the input, output, options, contract,
the modules to hide (pandas: the Lambda layer has none, and pyarrow imports it when installed,
+29 MiB and 0.12 CPU s on a contract run), and where to write the result: the run's report,
the stage spans, the time the imports took, and (with ``python_profile``) a pyinstrument or
cProfile report of the hot path. A failed conversion writes its typed error instead of a report
and exits with its exit code.
"""

from __future__ import annotations

import importlib.abc
import json
import sys
import time

STARTED = time.time()  # before the engine's imports: start-up is part of what Lambda bills


def main(spec_path: str) -> int:
    """Run the conversion the spec at ``spec_path`` describes; return the exit code."""
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    hidden = frozenset(spec.get("hide_modules", ()))
    if hidden:  # absent from the Lambda layer: absent here
        sys.meta_path.insert(0, _Hidden(hidden))
    import engine
    from engine.runtime import process

    process.configure(spec.get("options", {}).get("threads"))  # as the CLI: before pyarrow
    import engine.run  # noqa: F401  (the engine's own imports, timed as start-up)
    from engine.errors import EngineError, exit_code_for
    from engine.runtime.timing import CLOCK, StageClock

    imported = time.time()
    clock = StageClock(trace=bool(spec.get("trace")))
    CLOCK.set(clock)
    result: dict = {"started": STARTED, "imported": imported}
    profiler = _profiler(spec.get("python_profile"))
    code = 0
    try:
        if profiler is not None:
            profiler.start()
        report = engine.transform(spec["src"], spec["dst"], contract=spec.get("contract"),
                                  **spec.get("options", {}))
        result["report"] = report.to_dict()
    except EngineError as exc:
        result["error"] = {"type": type(exc).__name__, "message": str(exc)}
        code = exit_code_for(exc)
    finally:
        if profiler is not None:
            profiler.stop(spec["python_profile_out"])
    result["finished"] = time.time()
    result["spans"] = clock.spans or []
    with open(spec["result"], "w", encoding="utf-8") as f:
        json.dump(result, f)
    return code


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
        if kind == "pyinstrument":
            from pyinstrument import Profiler

            self._impl = Profiler(interval=0.001)
        else:
            import cProfile

            self._impl = cProfile.Profile()

    def start(self) -> None:
        self._impl.enable() if self.kind == "cprofile" else self._impl.start()

    def stop(self, out: str) -> None:
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
