"""Ingest: EventBridge "Object Created" event → claimed file, contract and route."""

from __future__ import annotations

from typing import Any

from engine.runtime import process

process.configure()  # before the engine's imports load pyarrow: allocator, BLAS threads

from engine.aws import steps
from engine.aws.observability import logger, metrics, observe


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@observe("ingest")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Parse the event, pick the contract, claim the file; see :func:`steps.ingest`."""
    return steps.ingest(event)
