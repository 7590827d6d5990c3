"""Build the Lambda layer: the engine and its pinned dependencies, trimmed, for one runtime.

``chunkwise layer build`` (:mod:`engine.cli.layer`) is the command; :func:`build_layer` the
function behind it. One module per step:

- :mod:`engine.layer.target`: the runtime and architecture, and pip's platform options for it.
- :mod:`engine.layer.pins`: ``layer/requirements.txt``, what the runtime provides, what the CLI
  alone needs.
- :mod:`engine.layer.download`: pip's cross-platform download, with a wheel cache.
- :mod:`engine.layer.trim`: what the runtime never loads, and stripping pyarrow.
- :mod:`engine.layer.elf` and :mod:`engine.layer.check`: every shared object is for the target
  machine and finds the libraries it needs.
- :mod:`engine.layer.package`: the deterministic zip and the size table.
- :mod:`engine.layer.errors`: what can go wrong, as typed errors.

Everything here is standard library plus pip: building a layer imports neither pyarrow nor
anything else it packages.
"""

from __future__ import annotations

from engine.layer.build import MAX_UNZIPPED, MAX_ZIPPED, LayerReport, build_layer
from engine.layer.errors import (
    LayerCheckError,
    LayerDownloadError,
    LayerError,
    LayerPinsError,
    LayerTargetError,
    LayerTooLargeError,
    WheelNotFoundError,
)
from engine.layer.target import Target

__all__ = [
    "MAX_UNZIPPED",
    "MAX_ZIPPED",
    "LayerCheckError",
    "LayerDownloadError",
    "LayerError",
    "LayerPinsError",
    "LayerReport",
    "LayerTargetError",
    "LayerTooLargeError",
    "Target",
    "WheelNotFoundError",
    "build_layer",
]
