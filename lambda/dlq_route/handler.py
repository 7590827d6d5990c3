"""DLQ route: record FAILED and send a permanent failure to the DLQ, ready to replay."""

from __future__ import annotations

from typing import Any

from engine.runtime import process

process.configure()  # before the engine's imports load pyarrow: allocator, BLAS threads

from engine.aws import steps
from engine.aws.observability import logger, metrics, observe


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@observe("dlq_route")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Record the caught error and queue the replay message; see :func:`steps.route_to_dlq`."""
    return steps.route_to_dlq(event)
