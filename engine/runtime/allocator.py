"""pyarrow's allocator (mimalloc) tuned for the conversion's thread count, before pyarrow loads.

mimalloc returns freed pages to the system after ``MIMALLOC_PURGE_DELAY`` ms. Every parsed chunk
is freed once its row group is written, so the delay trades peak RSS against page faults:

- **50 ms** on one thread: the pages are reused instead of faulted in again. Measured on 500 MB
  (``benchmarks/results/``): NDJSON 3.08 → 2.80 s, CSV 3.02 → 2.87 s, a 200 MB JSON array 1.46 →
  1.33 s, at 2-7 MiB more peak RSS; system time drops by 0.1-0.25 s.
- **50 ms** with worker threads too, since their default block is 2 MiB
  (:data:`~engine.config.THREADED_BLOCK_SIZE`). At 1 ms, with 4 MiB blocks, the second thread
  faulted ~20,000 more pages per 200 MB of CSV than one thread (53,000 against 31,000): the
  parsed chunks' pages, purged as soon as their row group was written and faulted in again by
  the next chunk, most of the CPU it added (issue 17). 50 ms alone cost 8-10 MiB of peak RSS
  and took the S3 → S3 runs to the 200 MiB bar (CSV 198, JSON array 201 MiB); the smaller
  blocks in flight give back more than that (S3 CSV 188, JSON array 174; local CSV 151).

mimalloc reads the variable once, when pyarrow's library loads, so :func:`configure` only acts
before the first ``import pyarrow``; a value the user set in the environment always wins.
"""

from __future__ import annotations

import os
import sys

from engine.runtime.threads import worker_threads

__all__ = ["PURGE_DELAY_MS", "VARIABLE", "configure", "purge_delay"]

#: ``MIMALLOC_PURGE_DELAY`` for one thread and for worker threads.
PURGE_DELAY_MS = {1: 50, 2: 50}

VARIABLE = "MIMALLOC_PURGE_DELAY"
_users = VARIABLE in os.environ  # set before the engine was imported: the user's choice


def configure(threads: int | None = None) -> None:
    """Set ``MIMALLOC_PURGE_DELAY`` for a conversion on ``threads`` threads.

    ``None`` uses the engine's own choice (:func:`~engine.runtime.threads.worker_threads`: one
    in a Lambda under one vCPU). Does nothing once pyarrow is loaded, or when the user set the
    variable.
    """
    if _users or "pyarrow" in sys.modules:
        return
    os.environ[VARIABLE] = purge_delay(threads)


def purge_delay(threads: int | None = None) -> str:
    """The ``MIMALLOC_PURGE_DELAY`` for ``threads`` (``None``: the engine's choice)."""
    return str(PURGE_DELAY_MS[1 if worker_threads(threads) == 1 else 2])
