"""The Lambda service of a local run: invocations answered by the real handlers, in-process.

moto's ASL interpreter invokes a task's function through a boto3 Lambda client. The
:class:`Dispatcher` is a botocore ``before-call.lambda.Invoke`` hook: for a function it knows it
calls ``handler(event, context)`` with a :class:`LocalContext` and answers the way the Lambda
service does, with the result as the payload, or with the Python runtime's ``{"errorType",
"errorMessage", "stackTrace"}`` and ``FunctionError: Unhandled`` (what the ASL's ``ErrorEquals``
matches). Any other function is left to moto's own Lambda. Registering the hook, and taking it
away again, is the runner's business (:mod:`engine.aws.local.runner`).

Example:
    >>> context = LocalContext("PlanFunction", timeout_s=60)
    >>> context.invoked_function_arn
    'arn:aws:lambda:us-east-1:123456789012:function:PlanFunction'
    >>> 0 < context.get_remaining_time_in_millis() <= 60_000
    True
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.aws.local.asl import function_arn, locate
from engine.errors import InstallationError

__all__ = [
    "Dispatcher",
    "Handler",
    "LocalContext",
    "lambda_dir",
    "load_handler",
    "runtime_error",
]

#: A Lambda handler: ``handler(event, context)``.
Handler = Callable[[dict[str, Any], Any], Any]


def lambda_dir() -> Path:
    """The handlers' ``lambda/`` (``$CHUNKWISE_LAMBDA_DIR``, else the packaged handlers)."""
    return locate("CHUNKWISE_LAMBDA_DIR", "handlers")


class LocalContext:
    """The parts of the Lambda context object handlers and Powertools read."""

    def __init__(self, function_name: str, *, memory_mb: int = 1024, timeout_s: float = 900.0):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn(function_name)
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the (emulated) function timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler(step: str, directory: Path | None = None) -> Handler:
    """Import ``lambda/<step>/handler.py`` under a private module name; return its ``handler``."""
    path = (directory or lambda_dir()) / step / "handler.py"
    if not path.is_file():
        raise InstallationError(f"no handler for step {step!r} at {path}: the installation is "
                                "incomplete, or CHUNKWISE_LAMBDA_DIR names the wrong folder",
                                uri=str(path))
    spec = importlib.util.spec_from_file_location(f"chunkwise_lambda_{step}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler  # type: ignore[no-any-return]


def runtime_error(exc: BaseException) -> dict[str, Any]:
    """The payload the Python Lambda runtime returns for an unhandled exception."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": "",
        # Frames from the handler down, as the runtime shows them (not the dispatcher's own).
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:]),
    }


class Dispatcher:
    """The ``before-call.lambda.Invoke`` hook: sends invocations of known names to handlers.

    Attributes:
        handlers: function name → handler; empty, every invocation is left to moto.
        memory_mb: the memory the contexts report.
        timeout_s: the function timeout behind ``get_remaining_time_in_millis()``.
    """

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.memory_mb = 1024
        self.timeout_s = 900.0
        # One invocation at a time. On AWS each concurrent invocation has its own sandbox; here
        # they would share one process (Powertools' Metrics and Logger state, cached clients),
        # and concurrent Map iterations would race on it. moto still schedules the Map's
        # iterations concurrently; only the handlers' bodies are serialised.
        self._serial = threading.RLock()

    def __call__(self, params: Any = None, model: Any = None, **_: Any) -> Any:
        """Answer an ``Invoke`` of a known function; ``None`` lets botocore send it on."""
        handlers = self.handlers
        if not handlers or params is None:
            return None
        from urllib.parse import unquote

        match = re.search(r"/functions/([^/]+)/invocations", params.get("url_path", ""))
        if not match:
            return None
        name = unquote(match.group(1)).split(":function:")[-1].split(":")[0]
        handler = handlers.get(name)
        if handler is None:
            return None  # not ours: moto's Lambda answers (ResourceNotFound)
        body = params.get("body") or b"{}"
        event = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
        context = LocalContext(name, memory_mb=self.memory_mb, timeout_s=self.timeout_s)
        try:
            with self._serial:
                result = handler(event, context)
        except Exception as exc:  # noqa: BLE001 - every error becomes the runtime's payload
            return _invoke_response(json.dumps(runtime_error(exc)).encode(), error=True)
        try:
            payload = json.dumps(result).encode()
        except (TypeError, ValueError) as exc:  # what the runtime does with such a result
            marshal = {"errorMessage": f"Unable to marshal response: {exc}",
                       "errorType": "Runtime.MarshalError", "requestId": "", "stackTrace": []}
            return _invoke_response(json.dumps(marshal).encode(), error=True)
        return _invoke_response(payload, error=False)


def _invoke_response(payload: bytes, error: bool) -> tuple[Any, dict[str, Any]]:
    import io

    from botocore.awsrequest import AWSResponse
    from botocore.response import StreamingBody

    headers = {"x-amz-executed-version": "$LATEST"}
    parsed: dict[str, Any] = {
        "StatusCode": 200,
        "ExecutedVersion": "$LATEST",
        "Payload": StreamingBody(io.BytesIO(payload), len(payload)),
        "ResponseMetadata": {"RequestId": str(uuid.uuid4()), "HTTPStatusCode": 200,
                             "HTTPHeaders": headers, "RetryAttempts": 0},
    }
    if error:
        parsed["FunctionError"] = "Unhandled"
        headers["x-amz-function-error"] = "Unhandled"
    return AWSResponse("https://lambda.local/invocations", 200, headers, None), parsed
