"""The errors ``chunkwise layer build`` raises: each names the target and what to do about it.

::

    EngineError
    ├── LayerError                  exit 70 unless a subclass says otherwise
    │   ├── LayerTargetError        exit 2: an unknown architecture or Python version
    │   ├── LayerPinsError          exit 78: the pins file is missing, malformed or incomplete
    │   ├── WheelNotFoundError      exit 69: a pinned package has no wheel for the target
    │   ├── LayerTooLargeError      exit 73: the trimmed layer is over its size budget
    │   └── LayerCheckError         exit 70: a shared object is for another machine or misses a
    │                               library (the trim rules removed something still needed)
    └── TransientError
        └── LayerDownloadError      exit 74: the package index could not be reached
"""

from __future__ import annotations

from engine.errors import EngineError, TransientError

__all__ = [
    "LayerCheckError",
    "LayerDownloadError",
    "LayerError",
    "LayerPinsError",
    "LayerTargetError",
    "LayerTooLargeError",
    "WheelNotFoundError",
]


class LayerError(EngineError):
    """Building the Lambda layer failed."""


class LayerTargetError(LayerError):
    """The target (Python version, architecture, glibc) is not one Lambda runs."""

    exit_code = 2  # usage


class LayerPinsError(LayerError):
    """The pins file is missing or malformed, or the resolver needed a package it does not pin."""

    exit_code = 78  # EX_CONFIG


class WheelNotFoundError(LayerError):
    """A pinned package has no binary wheel for the target platform and Python."""

    exit_code = 69  # EX_UNAVAILABLE


class LayerTooLargeError(LayerError):
    """The trimmed layer is over its unzipped or zipped size budget; no zip was written."""

    exit_code = 73  # EX_CANTCREAT


class LayerCheckError(LayerError):
    """A shared object in the layer is for another machine, or needs a library nobody provides."""


class LayerDownloadError(TransientError):
    """pip could not reach the package index (and the wheel cache could not serve the pins)."""
