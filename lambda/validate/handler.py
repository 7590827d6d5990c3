"""Validate: a cheap contract check on the head of the object, before the expensive step."""

from __future__ import annotations

from typing import Any

from engine.runtime import process

process.configure()  # before the engine's imports load pyarrow: allocator, BLAS threads

from engine.aws import steps
from engine.aws.observability import logger, metrics, observe


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@observe("validate")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Check format, header, columns and encoding; see :func:`steps.validate_head`."""
    return steps.validate_head(event)
