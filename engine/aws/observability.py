"""Structured logs and CloudWatch metrics for every handler, with Powertools.

Handlers stack three decorators::

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    @observe("transform")
    def handler(event, context): ...

:func:`observe` logs one JSON line per invocation (``step succeeded`` / ``step failed`` with the
file and the error) and adds EMF metrics with a ``step`` dimension: ``Duration`` (ms) and
``PeakMemory`` (bytes) always, ``Errors`` on failure, and ``RowsIn``, ``RowsOut``,
``RowsRejected``, ``RowsFiltered``, ``BytesIn``, ``BytesOut`` when the step's result carries them
(``RowsIn = RowsOut + RowsRejected + RowsFiltered``: a contract's ``filter`` drops rows on
purpose, and without its count the others would not add up).

Powertools writes both logs and metrics to stdout, as Lambda expects: a local runner that prints
its own output there should redirect stdout around handler calls, or set
``POWERTOOLS_METRICS_DISABLED=true`` and give the logger another stream.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from engine.aws.settings import METRICS_NAMESPACE, SERVICE_NAME
from engine.errors import EngineError
from engine.runtime.memory import peak_rss_bytes

__all__ = ["logger", "metrics", "observe", "step_metrics"]

_SERVICE = os.environ.get(SERVICE_NAME) or "chunkwise"

#: The one Logger all handlers share (structured JSON).
logger = Logger(service=_SERVICE)
#: The one Metrics all handlers share (CloudWatch EMF).
metrics = Metrics(namespace=os.environ.get(METRICS_NAMESPACE) or "chunkwise", service=_SERVICE)

Handler = Callable[[Any, Any], Any]

_COUNTS = (("rows_in", "RowsIn"), ("rows_out", "RowsOut"), ("rows_rejected", "RowsRejected"),
           ("rows_filtered", "RowsFiltered"))


def step_metrics(result: Any) -> dict[str, float]:
    """The row and byte counts a step's result carries, by metric name.

    A Map part (a parts entry), the transform state (its ``parts``), the output state (its
    ``output``), or the ingest state (``size``: BytesIn).
    """
    if not isinstance(result, Mapping):
        return {}
    source: Mapping[str, Any] | None = None
    if "rows_out" in result:
        source = result
    elif isinstance(result.get("output"), Mapping):
        source = result["output"]
    elif isinstance(result.get("parts"), list) and result["parts"]:
        parts = [p for p in result["parts"] if isinstance(p, Mapping)]
        source = {key: sum(p.get(key) or 0 for p in parts)
                  for key in (*(key for key, _ in _COUNTS), "bytes_out")}
    out: dict[str, float] = {}
    if source is not None:
        for key, name in _COUNTS:
            if isinstance(source.get(key), int):
                out[name] = source[key]
        if isinstance(source.get("bytes_out"), int):
            out["BytesOut"] = source["bytes_out"]
    elif isinstance(result.get("size"), int) and "route" in result:
        out["BytesIn"] = result["size"]
    return out


def _file_of(event: Any) -> str | None:
    if isinstance(event, Mapping):
        state = event.get("state") if isinstance(event.get("state"), Mapping) else event
        value = state.get("file_id") if isinstance(state, Mapping) else None
        return str(value) if value else None
    return None


def observe(step: str) -> Callable[[Handler], Handler]:
    """Decorate a handler: log its outcome and add its metrics (see the module docstring)."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(event: Any, context: Any) -> Any:
            started = time.perf_counter()
            logger.append_keys(step=step, file_id=_file_of(event))
            metrics.add_dimension(name="step", value=step)
            try:
                result = handler(event, context)
            except Exception as exc:
                metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
                details = {"error_type": type(exc).__name__, "error_message": str(exc)}
                if isinstance(exc, EngineError):
                    logger.warning("step failed", extra=details)
                else:  # not one of ours: a bug or a deployment problem, keep the traceback
                    logger.exception("step failed", extra=details)
                raise
            else:
                counts = step_metrics(result)
                for name, value in counts.items():
                    unit = MetricUnit.Bytes if name.startswith("Bytes") else MetricUnit.Count
                    metrics.add_metric(name=name, unit=unit, value=value)
                logger.info("step succeeded", extra={"counts": counts} if counts else None)
                return result
            finally:
                elapsed_ms = (time.perf_counter() - started) * 1000
                metrics.add_metric(name="Duration", unit=MetricUnit.Milliseconds,
                                   value=round(elapsed_ms, 1))
                metrics.add_metric(name="PeakMemory", unit=MetricUnit.Bytes,
                                   value=peak_rss_bytes())

        return run

    return decorate
