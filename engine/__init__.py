"""chunkwise: streaming, bounded-memory CSV/JSON → Parquet for AWS Lambda.

The public API is re-exported here and imported on first use, so ``import engine`` stays cheap
for the parts (CLI, Lambda handlers) that need only some of it. Importing the package changes no
process-wide state: the CLI, the Lambda handlers and the sizing child tune the allocator at
their own entry points (:func:`engine.runtime.process.configure`).

Example:
    >>> import engine
    >>> report = engine.transform(path, f"{tmp}/orders.parquet")
    >>> report.rows_in == report.rows_out + report.rows_rejected + report.rows_filtered
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from engine.errors import (
    AccountingError,
    ContractError,
    EngineError,
    InputFormatError,
    InputNotFoundError,
    PermanentError,
    SchemaError,
    TransientError,
    UsageError,
    ValidationError,
)

if TYPE_CHECKING:
    from engine.config import ReadOptions, RunOptions, WriteOptions
    from engine.contract import Contract, load_contract
    from engine.infer import infer_contract
    from engine.report import RunReport
    from engine.run import read_batches, transform, validate

__all__ = [
    "AccountingError",
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
    "UsageError",
    "ValidationError",
    "WriteOptions",
    "__version__",
    "infer_contract",
    "load_contract",
    "read_batches",
    "transform",
    "validate",
]

#: The package version: its one source (pyproject.toml reads it, `chunkwise --version` prints it).
__version__ = "0.1.0"

#: public name → the module that defines it (imported on first use).
_LAZY = {
    "ReadOptions": "engine.config", "RunOptions": "engine.config", "WriteOptions": "engine.config",
    "RunReport": "engine.report", "read_batches": "engine.run", "transform": "engine.run",
    "validate": "engine.run", "Contract": "engine.contract", "load_contract": "engine.contract",
    "infer_contract": "engine.infer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
