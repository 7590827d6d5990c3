"""Stop cleanly before Lambda's timeout rather than be killed by it.

A Lambda killed at its timeout reports ``States.Timeout`` after the full timeout was paid for,
with a multipart upload left behind. Instead, a step predicts whether its work fits in the time
left and raises :class:`~engine.errors.TransientError` (``not enough time left ...``) while it can
still clean up: before starting (from the input's size and a conservative throughput), and while
converting (from the throughput measured so far, through the engine's ``progress`` callback; the
engine then aborts its output, so nothing partial is published).

Example:
    >>> deadline = Deadline(lambda: 60_000, min_throughput=20 * 10**6)
    >>> deadline.check_budget(100 * 10**6, "convert")  # 5 s predicted, 60 s left: fine
"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.errors import TransientError

__all__ = ["COMPRESSED_EXPANSION", "DEFAULT_MARGIN_MS", "Deadline"]

#: Time kept in reserve for what follows the work: committing the Parquet upload, hashing the
#: output, writing the metadata record, returning.
DEFAULT_MARGIN_MS = 20_000

#: Assumed decompressed bytes per stored byte of a compressed input (CSV and JSON compress
#: 4-10x with gzip or zstd; the low end errs on the side of predicting too little time).
COMPRESSED_EXPANSION = 5

#: Fraction of the input that must be read before the measured throughput is trusted.
_TRUST_AFTER = 0.05


class Deadline:
    """The time a Lambda invocation has left, and predictions against it.

    Args:
        remaining_ms: ``context.get_remaining_time_in_millis``; ``None`` means no limit (local
            runs, tests).
        min_throughput: conservative bytes per second for the pre-flight prediction.
        margin_ms: time kept in reserve (see :data:`DEFAULT_MARGIN_MS`).
        clock: seconds, monotonic (for tests).
    """

    def __init__(self, remaining_ms: Callable[[], int] | None, *, min_throughput: int = 20 * 10**6,
                 margin_ms: int = DEFAULT_MARGIN_MS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.remaining_ms = remaining_ms
        self.min_throughput = min_throughput
        self.margin_ms = margin_ms
        self._clock = clock
        self._started = clock()

    def left_ms(self) -> float:
        """Milliseconds left before the margin, or infinity without a limit."""
        if self.remaining_ms is None:
            return float("inf")
        return float(self.remaining_ms()) - self.margin_ms

    def check_budget(self, nbytes: int, what: str, *, compressed: bool = False) -> None:
        """Raise unless ``nbytes`` of input can be processed in the time left.

        Raises:
            TransientError: the prediction at ``min_throughput`` exceeds the time left.
        """
        work = nbytes * (COMPRESSED_EXPANSION if compressed else 1)
        predicted_ms = 1000.0 * work / self.min_throughput
        left = self.left_ms()
        if predicted_ms > left:
            raise TransientError(
                f"not enough time left to {what}: {nbytes:,} bytes predicted to take "
                f"{predicted_ms / 1000:.0f} s at {self.min_throughput / 1e6:g} MB/s, "
                f"{max(left, 0) / 1000:.0f} s left before the {self.margin_ms / 1000:.0f} s "
                "margin; give the function a longer timeout or lower MAX_SINGLE_BYTES/RANGE_BYTES"
            )

    def restart(self) -> None:
        """Start measuring throughput from now (e.g. after a pre-step such as a download)."""
        self._started = self._clock()

    def progress(self, done: int, total: int | None) -> None:
        """The engine's progress callback: raise when the rest cannot finish in time.

        Raises:
            TransientError: the time left is used up, or (after 5 % of the input) the rest of
                it, at the throughput measured so far, would not fit.
        """
        left = self.left_ms()
        if left == float("inf"):
            return
        if left <= 0:
            raise TransientError(f"not enough time left: stopped after {done:,} bytes, before "
                                 f"the {self.margin_ms / 1000:.0f} s margin ran out")
        if not total or done < total * _TRUST_AFTER:
            return
        elapsed = self._clock() - self._started
        if elapsed <= 0 or done <= 0:
            return
        rest_ms = 1000.0 * elapsed * (total - done) / done
        if rest_ms > left:
            raise TransientError(
                f"not enough time left: {done:,} of {total:,} bytes in {elapsed:.0f} s, the rest "
                f"predicted to take {rest_ms / 1000:.0f} s with {left / 1000:.0f} s left"
            )
