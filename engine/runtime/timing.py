"""Where a conversion's time goes: wall and CPU seconds per stage, and an optional span trace.

A :class:`StageClock` accumulates, per stage, the wall time and the CPU time of the thread that
ran it (``time.thread_time``), so stages on worker threads are charged their own CPU and not the
consumer's waiting. Nested measurements are exclusive: a stage's time excludes what a stage
measured inside it charged (``encode_write`` excludes the ``upload`` writes it makes), so the
stages' CPU seconds add up to the conversion's.

The stages of a run are ``infer`` (sampling the input and inferring its types), ``read``
(stored bytes: local or S3 reads and decompression), ``parse`` (bytes to Arrow),
``validate_transform`` (a contract's checks and transforms), ``encode_write`` (buffering, Parquet
encoding and compression) and ``upload`` (the output's writes, the multipart upload or local
file, and its commit). With worker threads (``threads > 1``) a stage's wall time
includes its waits for the stage before it; its CPU time never does. An input whose head
sample is all of it is parsed once, by inference, whose table the conversion takes: its
``parse`` is then next to nothing and ``infer`` holds the parse.

:data:`CLOCK` holds the clock of the conversion running in this context; code that is not part of
a run (a bare :class:`engine.sink.parquet.ParquetSink`) sees ``None`` and measures nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["CLOCK", "STAGES", "StageClock", "TimedReads", "TimedWrites"]

T = TypeVar("T")

#: The stages of a conversion, in pipeline order.
STAGES = ("infer", "read", "parse", "validate_transform", "encode_write", "upload")

#: The clock of the conversion running in this context (``None`` outside a run).
CLOCK: ContextVar[StageClock | None] = ContextVar("chunkwise_stage_clock", default=None)


class StageClock:
    """Wall and CPU seconds per stage; with ``trace``, every measured span too.

    Args:
        trace: also record each span as ``(stage, start, end)`` in epoch seconds (``time.time``),
            for a timeline; a 500 MB run records a few thousand.

    """

    def __init__(self, *, trace: bool = False) -> None:
        self.wall: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.cpu: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.spans: list[tuple[str, float, float]] | None = [] if trace else None
        self._local = threading.local()
        self._lock = threading.Lock()

    def measure(self, stage: str) -> _Span:
        """Charge the time spent in the ``with`` block to ``stage``, minus nested stages'.

        A small class, not a generator-based context manager: a run measures every write of
        its output (dozens for a small file), and this is a third of the cost per span.
        """
        return _Span(self, stage)

    def _charge(self, stage: str, wall: float, cpu: float, nested: list[float],
                epoch0: float) -> None:
        """Add a span of ``wall`` and ``cpu`` seconds, less the ``nested`` stages', to ``stage``."""
        with self._lock:
            self.wall[stage] = self.wall.get(stage, 0.0) + wall - nested[0]
            self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu - nested[1]
            if self.spans is not None:
                self.spans.append((stage, epoch0, epoch0 + wall))

    def iterate(self, stage: str, items: Iterable[T]) -> Iterator[T]:
        """Yield from ``items``, charging the time of producing each item to ``stage``."""
        iterator = iter(items)
        try:
            while True:
                with self.measure(stage):
                    try:
                        item = next(iterator)
                    except StopIteration:
                        return
                yield item
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{stage: {"wall_s": ..., "cpu_s": ...}}`` rounded to milliseconds."""
        return {s: {"wall_s": round(self.wall[s], 3), "cpu_s": round(self.cpu[s], 3)}
                for s in self.wall}


class _Span:
    """One measured ``with`` block of :meth:`StageClock.measure`."""

    __slots__ = ("_clock", "_cpu0", "_epoch0", "_frame", "_stack", "_stage", "_wall0")

    def __init__(self, clock: StageClock, stage: str) -> None:
        self._clock = clock
        self._stage = stage

    def __enter__(self) -> None:
        clock = self._clock
        local = clock._local.__dict__
        stack = local.get("stack")
        if stack is None:
            stack = local["stack"] = []
        self._stack = stack
        self._frame = [0.0, 0.0]  # wall and CPU charged to stages nested in this one
        stack.append(self._frame)
        self._epoch0 = time.time() if clock.spans is not None else 0.0
        self._wall0, self._cpu0 = time.perf_counter(), time.thread_time()

    def __exit__(self, *exc: object) -> None:
        wall, cpu = time.perf_counter() - self._wall0, time.thread_time() - self._cpu0
        stack = self._stack
        stack.pop()
        if stack:  # the enclosing stage does not count this time again
            stack[-1][0] += wall
            stack[-1][1] += cpu
        self._clock._charge(self._stage, wall, cpu, self._frame, self._epoch0)


class TimedReads:
    """A binary stream whose ``read``/``readinto`` calls are charged to ``stage``."""

    def __init__(self, stream: Any, clock: StageClock, stage: str = "read") -> None:
        self._stream = stream
        self._clock = clock
        self._stage = stage

    def read(self, size: int = -1) -> bytes:
        """Read from the wrapped stream."""
        with self._clock.measure(self._stage):
            return self._stream.read(size)

    def readinto(self, view: Any) -> int:
        """Read into ``view`` from the wrapped stream."""
        with self._clock.measure(self._stage):
            return self._stream.readinto(view)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class TimedWrites:
    """A binary sink whose ``write`` calls are charged to ``stage`` (Parquet's output file)."""

    def __init__(self, stream: Any, clock: StageClock, stage: str = "upload") -> None:
        self._stream = stream
        self._clock = clock
        self._stage = stage

    def write(self, data: Any) -> int:
        """Write to the wrapped stream."""
        with self._clock.measure(self._stage):
            return self._stream.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
