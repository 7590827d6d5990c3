"""The AWS calls each Lambda function of a local run makes, recorded under the function's name.

A :class:`CallRecorder` wraps the real handlers (:meth:`CallRecorder.handlers`, given to
:class:`~engine.aws.local.runner.LocalPipeline` as ``handlers=``) and, while its patches are
applied (:meth:`CallRecorder.recording`, or a test's monkeypatch over
:meth:`CallRecorder.patches`), records every botocore call a handler makes as a :class:`Call`:
its function's logical id, the service, the operation and the parameters that name what it
touched. Two users share it: the IAM test (``tests/functional/aws/test_pipeline_iam.py``),
which checks each call against the template's policies, and ``chunkwise cost --measure``
(:mod:`engine.cost.measure`), which counts them per file.

A call is a function's when it is made on the thread running its handler or on a thread that
handler started (the engine reads S3 on a read-ahead thread). Calls made by the caller (set-up,
uploads, listings, Step Functions) belong to no function and are not recorded; a call from any
other thread must be moto's Lambda invocation, and anything else is noted in
:attr:`CallRecorder.problems`, so a call that escapes attribution is seen, not lost.

Each handler runs as in a cold sandbox of its own function: the contract and reference-table
caches the handlers share in this one process are cleared before every invocation (on AWS a
cold function reads the contract itself; here the cache another function filled would hide
that read).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.aws.local.asl import FUNCTIONS
from engine.aws.local.lambdas import Handler, load_handler

__all__ = ["Call", "CallRecorder", "glob_match", "kept_params"]


def glob_match(pattern: str, text: str) -> bool:
    """IAM-style wildcard match: ``*`` any run of characters (``/`` included), ``?`` one.

    Example:
        >>> glob_match("orders/_rejects/*", "orders/_rejects/a/b.parquet")
        True
        >>> glob_match("Get?bject", "PutObject")
        False

    """
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text) is not None


@dataclass(frozen=True)
class Call:
    """One AWS API call a handler made (the parameters that name what it touched)."""

    function: str
    service: str
    operation: str
    params: Mapping[str, Any] = field(default_factory=dict)
    secure: bool = True  # sent over HTTPS

    def __str__(self) -> str:
        named = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.service}:{self.operation}({named})"


_KEPT = ("Bucket", "Key", "VersionId", "Prefix", "CopySource", "TableName", "IndexName",
         "QueueUrl", "QueueName", "DatabaseName", "Name", "SecretId")


def kept_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that name what a call touches (not bodies, not item values).

    Example:
        >>> kept_params({"Bucket": "b", "Key": "k", "Body": b"..."})
        {'Bucket': 'b', 'Key': 'k'}

    """
    kept = {k: params[k] for k in _KEPT if k in params}
    if "RequestItems" in params:
        kept["RequestItems"] = sorted(params["RequestItems"])
    if "Delete" in params:
        kept["Delete"] = [{k: o[k] for k in ("Key", "VersionId") if o.get(k)}
                          for o in params["Delete"].get("Objects", [])]
    if isinstance(params.get("TableInput"), Mapping):  # Glue's CreateTable, UpdateTable
        kept["TableInput"] = {"Name": params["TableInput"].get("Name")}
    if "TransactItems" in params:
        kept["TransactItems"] = [(kind, body.get("TableName"))
                                 for item in params["TransactItems"] for kind, body in item.items()]
    return kept


def _cold_sandbox() -> None:
    """Forget what another function's invocation cached in this shared process."""
    import engine.enforce.enrich
    import engine.enforce.enrich_api
    from engine.aws import routing

    routing.clear_cache()
    engine.enforce.enrich.clear_reference_cache()
    engine.enforce.enrich_api.clear_api_cache()  # the API's answers and the secret


class CallRecorder:
    """Records the AWS calls of the handlers, each under its function's logical id.

    Attributes:
        calls: every call recorded, in order.
        problems: calls it could not attribute to a function (empty when all is well).
        invocations: Lambda invocations per function.
        seconds: per function, the wall seconds of each invocation (its handler's body).

    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.problems: list[str] = []
        self.invocations: Counter[str] = Counter()
        self.seconds: dict[str, list[float]] = {}
        self.running: str | None = None
        self._local = threading.local()
        self._harness = threading.current_thread()
        self._lock = threading.Lock()

    def patches(self) -> list[tuple[Any, str, Any]]:
        """``(owner, attribute, replacement)`` for botocore's call and for thread start/run.

        Apply them with :meth:`recording`, or with a test's ``monkeypatch.setattr``.
        """
        import botocore.client

        recorder, real_call = self, botocore.client.BaseClient._make_api_call
        real_start, real_run = threading.Thread.start, threading.Thread.run

        def make_api_call(client: Any, operation: str, params: Any) -> Any:
            recorder._record(client, operation, params)
            return real_call(client, operation, params)

        def start(thread: threading.Thread) -> None:
            # a thread started by a handler makes its calls for the handler's function
            thread._iam_function = getattr(recorder._local, "function", None)  # type: ignore[attr-defined]
            real_start(thread)

        def run(thread: threading.Thread) -> None:
            if getattr(thread, "_iam_function", None):
                recorder._local.function = thread._iam_function  # type: ignore[attr-defined]
            real_run(thread)

        return [(botocore.client.BaseClient, "_make_api_call", make_api_call),
                (threading.Thread, "start", start), (threading.Thread, "run", run)]

    @contextlib.contextmanager
    def recording(self) -> Iterator[CallRecorder]:
        """Apply :meth:`patches` for the duration of the block, then restore the originals."""
        patches = self.patches()
        originals = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
        try:
            for owner, name, value in patches:
                setattr(owner, name, value)
            yield self
        finally:
            for owner, name, value in originals:
                setattr(owner, name, value)

    def handlers(self) -> dict[str, Handler]:
        """The real handlers, each recording its calls (``LocalPipeline(handlers=...)``).

        Importing a handler is its function's init phase: calls made then are its too.
        """
        wrapped = {}
        for name, step in FUNCTIONS.items():
            self.running = self._local.function = name
            try:
                wrapped[name] = self._wrap(name, load_handler(step))
            finally:
                self.running = self._local.function = None
        return wrapped

    def _wrap(self, name: str, handler: Handler) -> Callable[[dict[str, Any], Any], Any]:
        def invoke(event: dict[str, Any], context: Any) -> Any:
            if self.running is not None:  # the local run calls the handlers' bodies one at a time
                self.problems.append(f"{name} started while {self.running} was running")
            self.running = name
            self.invocations[name] += 1
            self._local.function = name
            _cold_sandbox()
            started = time.perf_counter()
            try:
                return handler(event, context)
            finally:
                self.seconds.setdefault(name, []).append(time.perf_counter() - started)
                self._local.function = None
                self.running = None

        return invoke

    def _record(self, client: Any, operation: str, params: Any) -> None:
        try:
            service = client.meta.service_model.service_name
            function = getattr(self._local, "function", None)
            thread = threading.current_thread()
            if function is None:
                if thread is not self._harness and (service, operation) != ("lambda", "Invoke"):
                    self.problems.append(f"{service}:{operation} on thread {thread.name!r}, "
                                         "neither the caller's nor a handler's: not checked")
                return
            if function != self.running:
                self.problems.append(f"{service}:{operation} on thread {thread.name!r} of "
                                     f"{function}, made after its invocation ended")
            call = Call(function, service, operation, kept_params(params or {}),
                        secure=str(client.meta.endpoint_url).startswith("https://"))
            with self._lock:
                self.calls.append(call)
        except Exception as exc:  # noqa: BLE001 - never break the handler; report it instead
            self.problems.append(f"could not record {operation}: {exc!r}")

    def mark(self) -> int:
        """A position in :attr:`calls`, for :meth:`made`'s ``since``."""
        return len(self.calls)

    def made(self, function: str, service: str, operation: str, since: int = 0,
             **params: str) -> list[Call]:
        """The calls of ``function`` (from ``since``) whose operation and parameters match."""
        return [c for c in self.calls[since:]
                if (c.function, c.service) == (function, service)
                and glob_match(operation, c.operation)
                and all(glob_match(v, str(c.params.get(k))) for k, v in params.items())]

    def wrote(self, function: str, bucket: str, key: str) -> list[Call]:
        """The objects ``function`` wrote (in one request or a multipart upload)."""
        return [c for op in ("PutObject", "CompleteMultipartUpload")
                for c in self.made(function, "s3", op, Bucket=bucket, Key=key)]

    def counts(self, since: int = 0) -> dict[str, dict[str, int]]:
        """Per function, the number of calls of each ``service:Operation`` (from ``since``)."""
        out: dict[str, Counter[str]] = {}
        for c in self.calls[since:]:
            out.setdefault(c.function, Counter())[f"{c.service}:{c.operation}"] += 1
        return {fn: dict(sorted(ops.items())) for fn, ops in sorted(out.items())}
