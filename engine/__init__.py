"""chunkwise: streaming, bounded-memory CSV/JSON → Parquet for AWS Lambda.

The public API is re-exported here and imported on first use, so ``import engine`` stays cheap
for the parts (CLI, Lambda handlers) that need only some of it.

Example:
    >>> import engine
    >>> report = engine.transform("orders.csv", "orders.parquet")  # doctest: +SKIP
    >>> report.rows_in == report.rows_out + report.rows_rejected   # doctest: +SKIP
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from engine.errors import (
    EngineError,
    InputFormatError,
    InputNotFoundError,
    PermanentError,
    SchemaError,
    TransientError,
    ValidationError,
)

if TYPE_CHECKING:
    from engine.config import ReadOptions, RunOptions, WriteOptions
    from engine.run import RunReport, read_batches, transform

__all__ = [
    "EngineError",
    "InputFormatError",
    "InputNotFoundError",
    "PermanentError",
    "ReadOptions",
    "RunOptions",
    "RunReport",
    "SchemaError",
    "TransientError",
    "ValidationError",
    "WriteOptions",
    "read_batches",
    "transform",
]

__version__ = "0.1.0"

_LAZY = {
    "ReadOptions": "engine.config", "RunOptions": "engine.config", "WriteOptions": "engine.config",
    "RunReport": "engine.run", "read_batches": "engine.run", "transform": "engine.run",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
