"""Output: commit the conversion: write the manifest, record SUCCEEDED."""

from __future__ import annotations

from typing import Any

from engine.runtime import process

process.configure()  # before the engine's imports load pyarrow: allocator, BLAS threads

from engine.aws import steps
from engine.aws.observability import logger, metrics, observe


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@observe("output")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Write the manifest and the final record; see :func:`steps.output`."""
    return steps.output(event)
