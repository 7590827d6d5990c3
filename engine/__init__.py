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
import os
from typing import TYPE_CHECKING, Any

from engine import allocator  # no imports of its own: pyarrow is not loaded yet

# pyarrow's allocator (mimalloc) returns freed pages after MIMALLOC_PURGE_DELAY ms: 1 ms with
# worker threads (peak RSS), 50 ms on one thread (fewer page faults); see engine.allocator. It
# is read when pyarrow loads, so it is set here, before any pyarrow import; the CLI refines it
# from --threads, and an explicit setting in the environment wins.
os.environ.setdefault(allocator.VARIABLE, allocator.purge_delay())
# numpy (imported by pyarrow) starts an OpenBLAS thread pool whose threads spin; the engine does
# no linear algebra. One thread cut a 5 MB conversion from 0.37 to 0.28 CPU s (benchmarks/).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from engine.errors import (
    ContractError,
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
    from engine.contract import Contract, load_contract
    from engine.infer import infer_contract
    from engine.run import RunReport, read_batches, transform, validate

__all__ = [
    "Contract",
    "ContractError",
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
    "infer_contract",
    "load_contract",
    "read_batches",
    "transform",
    "validate",
]

__version__ = "0.1.0"

_LAZY = {
    "ReadOptions": "engine.config", "RunOptions": "engine.config", "WriteOptions": "engine.config",
    "RunReport": "engine.run", "read_batches": "engine.run", "transform": "engine.run",
    "validate": "engine.run", "Contract": "engine.contract", "load_contract": "engine.contract",
    "infer_contract": "engine.infer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
