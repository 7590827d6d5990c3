"""Plan: split an object over the single-Lambda ceiling into record-aligned byte ranges."""

from __future__ import annotations

from typing import Any

from engine.runtime import process

process.configure()  # before the engine's imports load pyarrow: allocator, BLAS threads

from engine.aws import steps
from engine.aws.observability import logger, metrics, observe


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@observe("plan")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Add ``ranges`` and ``map_max_concurrency`` to the state; see :func:`steps.plan`."""
    return steps.plan(event, remaining_ms=context.get_remaining_time_in_millis)
