"""Error handler: record FAILED for any error that is not a permanent data error."""

from __future__ import annotations

from typing import Any

from engine.runtime import process

process.configure()  # before the engine's imports load pyarrow: allocator, BLAS threads

from engine.aws import steps
from engine.aws.observability import logger, metrics, observe


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@observe("error_handler")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Record the caught error (``$.error``); see :func:`steps.handle_error`."""
    return steps.handle_error(event)
