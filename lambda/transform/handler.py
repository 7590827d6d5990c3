"""Transform: the engine's streaming conversion of the object, or of one Map range, to Parquet."""

from __future__ import annotations

from typing import Any

from engine.runtime import process

process.configure()  # before the engine's imports load pyarrow: allocator, BLAS threads

from engine.aws import steps
from engine.aws.observability import logger, metrics, observe


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@observe("transform")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Convert, stopping cleanly when time runs short; see :func:`steps.transform`."""
    return steps.transform(event, remaining_ms=context.get_remaining_time_in_millis)
