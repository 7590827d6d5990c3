"""Process-wide settings for a conversion, made at an entry point before pyarrow loads.

Two settings are read once, when numpy and pyarrow load, so they cannot be changed by the code
that converts: whoever starts the process sets them, by calling :func:`configure` first.

- ``MIMALLOC_PURGE_DELAY``: how soon pyarrow's allocator returns freed pages
  (:mod:`engine.runtime.allocator`).
- ``OPENBLAS_NUM_THREADS``: numpy (imported by pyarrow) starts an OpenBLAS thread pool whose
  threads spin; the engine does no linear algebra. One thread cut a 5 MB conversion from 0.37
  to 0.28 CPU s (``benchmarks/``).

While an entry point loads what converts (pyarrow, numpy, the engine), the cyclic garbage
collector is off (:func:`loading`).

The entry points are the ``chunkwise`` CLI (:func:`engine.cli.app.main`), every Lambda handler in
``lambda/``, and the sizing child (:mod:`engine.sizing.child`). ``import engine`` and the library
calls change nothing: a program using the Python API keeps its own settings. A value already in
the environment always wins.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator

from engine.runtime import allocator

__all__ = ["BLAS_THREADS_VARIABLE", "configure", "loading"]

BLAS_THREADS_VARIABLE = "OPENBLAS_NUM_THREADS"


def configure(threads: int | None = None) -> None:
    """Set the allocator's purge delay for ``threads`` and one BLAS thread, unless already set.

    ``threads`` is the conversion's thread count when known (``None``: the Lambda's, from its
    memory size, or the worker threads' default). Does nothing to the allocator once pyarrow
    is loaded.
    """
    allocator.configure(threads)
    os.environ.setdefault(BLAS_THREADS_VARIABLE, "1")


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """No cyclic garbage collection while the conversion's modules load; then freeze them.

    Importing pyarrow, numpy and the engine makes a few hundred thousand long-lived objects
    (modules, classes, functions) and no garbage, yet the collector ran ~50 times over them
    (~15 ms of CPU, about 2 % of a 60 MB gzip conversion on one core). ``gc.freeze`` then
    moves all that loaded out of the collector's sight, as the :mod:`gc` documentation advises
    for a process set up for its work, so no later collection walks it again; the collector is
    on again for what the conversion allocates. A collector the caller turned off stays off.

    Once per process: a later call (a program that runs the CLI's commands in-process, as the
    tests do) loads nothing new, and freezing again would make whatever garbage is alive by
    then permanent.
    """
    global _loaded
    if _loaded or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        _loaded = True
        gc.freeze()
        gc.enable()


_loaded = False
