"""Run the real state machine on moto, or start and follow one on a deployed stack.

Local runs (:func:`run_local`, :class:`LocalPipeline`) execute ``stepfunctions/pipeline.asl.json``
as written on moto's own ASL interpreter (``mock_aws`` with ``execute_state_machine``). Its Lambda
task states reach the real handlers in ``lambda/<step>/handler.py`` in-process: a botocore
``before-call.lambda.Invoke`` hook, registered in ``botocore.handlers.BUILTIN_HANDLERS`` before
``mock_aws`` starts, calls ``handler(event, context)`` and answers the way the Lambda service does
(the result as the payload, or the Python runtime's ``{"errorType", "errorMessage",
"stackTrace"}`` with ``FunctionError: Unhandled``, which is what the ASL's ``ErrorEquals``
matches). Nothing leaves the process: moto intercepts every AWS call, with fake credentials set
for the duration of the run; a retry waits its interval (``IntervalSeconds × BackoffRate^n``)
times ``time_scale`` (0 by default), and the intervals asked for are reported. Executions (see
:meth:`LocalPipeline.run_many`) and Map iterations run on moto's worker threads, so they overlap
and their states interleave; the handlers' bodies run one at a time (on AWS each concurrent
invocation has a sandbox of its own, here they share one process), with one environment.

The definition is a template: every ``${Name}`` is a CloudFormation ``DefinitionSubstitutions``
key. ``${MapMaxConcurrency}`` stands *unquoted* where ASL needs a number (``MaxConcurrency``
must be a JSON integer: a quoted ``"10"`` is rejected by Step Functions and by statelint), so the
file is JSON only once substituted; :func:`render_definition` does that for local runs and for
linting (``statelint --ignore=URI,FLOAT`` on the rendered text).

:func:`run_remote` starts an execution on a deployed stack (its resources found through
CloudFormation), follows it and returns the same shape as a local run.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib.util
import json
import os
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = [
    "ACCOUNT",
    "FUNCTIONS",
    "LOCAL_NAMES",
    "PERMANENT_ERRORS",
    "REGION",
    "TRANSIENT_ERRORS",
    "LocalContext",
    "LocalPipeline",
    "asl_path",
    "error_exit_code",
    "lambda_dir",
    "object_created_event",
    "render_definition",
    "run_local",
    "run_remote",
    "substitutions",
]

REGION = "us-east-1"
ACCOUNT = "123456789012"

#: The template's function logical ids → the ``lambda/<step>`` directory of their handler.
FUNCTIONS: dict[str, str] = {
    "IngestFunction": "ingest",
    "ValidateFunction": "validate",
    "PlanFunction": "plan",
    "TransformFunction": "transform",
    "OutputFunction": "output",
    "ErrorHandlerFunction": "error_handler",
    "DLQRouteFunction": "dlq_route",
}

#: Fixed names of the resources a local run creates (the template's logical ids in brackets).
LOCAL_NAMES: dict[str, str] = {
    "raw_bucket": "chunkwise-raw",  # RawBucket
    "processed_bucket": "chunkwise-processed",  # ProcessedBucket
    "contracts_prefix": "_contracts/",  # in the raw bucket, as the template's CONTRACTS_URI
    "table": "chunkwise-metadata",  # MetadataTable
    "queue": "chunkwise-dlq",  # DeadLetterQueue
    "state_machine": "chunkwise-pipeline",
}

#: Errors routed to the DLQ (the ASL's first Catch): a failed run with one of these exits 65.
PERMANENT_ERRORS = frozenset(
    {"ValidationError", "SchemaError", "InputFormatError", "ContractError", "InputNotFoundError"}
)
#: Errors the ASL retries: a failed run with one of these has exhausted its retries (exit 74).
TRANSIENT_ERRORS = frozenset(
    {
        "States.Timeout",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "Lambda.Unknown",
        "DynamoDB.ProvisionedThroughputExceededException",
        "TransientError",
    }
)

_TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:]+)\}")
_RETRIER_MODULE = "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl"

# Environment set for the duration of a local run: fake credentials, one region, and nothing
# that could send a call elsewhere (endpoint overrides, profiles, config files).
_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_CLEARED_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_SFN",
    "AWS_ENDPOINT_URL_LAMBDA",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CA_BUNDLE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "MOTO_PORT",
)

Handler = Callable[[dict[str, Any], Any], Any]


# ---------------------------------------------------------------------------------------------
# Where things are
# ---------------------------------------------------------------------------------------------


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _locate(env: str, relative: str) -> Path:
    """``$env``, else ``relative`` beside ``engine/`` (a checkout), else under the cwd."""
    given = os.environ.get(env)
    if given:
        return Path(given)
    beside = _repo_root() / relative
    if beside.exists():
        return beside
    here = Path.cwd() / relative
    return here if here.exists() else beside


def asl_path() -> Path:
    """The state machine definition (``$CHUNKWISE_ASL``, or the checkout's or cwd's)."""
    return _locate("CHUNKWISE_ASL", "stepfunctions/pipeline.asl.json")


def lambda_dir() -> Path:
    """The handlers' ``lambda/`` (``$CHUNKWISE_LAMBDA_DIR``, or the checkout's or cwd's)."""
    return _locate("CHUNKWISE_LAMBDA_DIR", "lambda")


def function_arn(logical_id: str, *, region: str = REGION, account: str = ACCOUNT) -> str:
    """The ARN a local run gives the function with this template logical id."""
    return f"arn:aws:lambda:{region}:{account}:function:{logical_id}"


def substitutions(
    *, map_max_concurrency: int = 10, region: str = REGION, account: str = ACCOUNT
) -> dict[str, str]:
    """The ``DefinitionSubstitutions`` of a local run: function ARNs and the Map concurrency."""
    subs = {f"{name}Arn": function_arn(name, region=region, account=account) for name in FUNCTIONS}
    subs["MapMaxConcurrency"] = str(int(map_max_concurrency))
    return subs


def render_definition(
    subs: Mapping[str, str] | None = None, *, path: str | os.PathLike[str] | None = None
) -> str:
    """Fill the ``${...}`` placeholders of the ASL template, as CloudFormation does.

    Args:
        subs: placeholder name → text; default :func:`substitutions`.
        path: the template; default :func:`asl_path`.

    Returns:
        The definition as JSON text (checked to parse).

    Raises:
        KeyError: a placeholder has no substitution.

    """
    subs = substitutions() if subs is None else subs
    text = Path(path or asl_path()).read_text(encoding="utf-8")
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in subs})
    if missing:
        raise KeyError(f"no substitution for {', '.join(missing)}")
    rendered = _PLACEHOLDER.sub(lambda m: subs[m.group(1)], text)
    json.loads(rendered)
    return rendered


def error_exit_code(error_type: str | None) -> int:
    """Exit code for a failed execution's error name: 65 permanent, 74 transient, else 70."""
    if error_type in PERMANENT_ERRORS:
        return 65
    if error_type in TRANSIENT_ERRORS or (error_type or "").startswith(("Lambda.", "DynamoDB.")):
        return 74
    return 70


# ---------------------------------------------------------------------------------------------
# Lambda emulation
# ---------------------------------------------------------------------------------------------


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
        raise FileNotFoundError(f"no handler for step {step!r}: {path}")
    spec = importlib.util.spec_from_file_location(f"chunkwise_lambda_{step}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler  # type: ignore[no-any-return]


def _runtime_error(exc: BaseException) -> dict[str, Any]:
    """The payload the Python Lambda runtime returns for an unhandled exception."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": "",
        # Frames from the handler down, as the runtime shows them (not the dispatcher's own).
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:]),
    }


class _Dispatcher:
    """The ``before-call.lambda.Invoke`` hook: sends invocations of known names to handlers."""

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
            return _invoke_response(json.dumps(_runtime_error(exc)).encode(), error=True)
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


_DISPATCHER = _Dispatcher()
_HOOK = ("before-call.lambda.Invoke", _DISPATCHER)
_RUN_LOCK = threading.Lock()


class _ScaledTime:
    """Stands in for the ``time`` module of moto's retrier: waits scaled, and recorded."""

    def __init__(self, scale: float, waits: list[float]) -> None:
        self._scale = scale
        self._waits = waits

    def sleep(self, seconds: float) -> None:
        self._waits.append(seconds)
        if self._scale > 0:
            time.sleep(seconds * self._scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextlib.contextmanager
def _patched_env(values: Mapping[str, str], cleared: tuple[str, ...]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in (*values, *cleared)}
    try:
        for k in cleared:
            os.environ.pop(k, None)
        os.environ.update(values)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _reset_default_session() -> None:
    import boto3

    boto3.DEFAULT_SESSION = None


def _quiet_logger(stack: contextlib.ExitStack, name: str) -> None:
    import logging

    logger = logging.getLogger(name)
    stack.callback(logger.setLevel, logger.level)
    logger.setLevel(logging.CRITICAL)


def _reset_engine_clients() -> None:
    """Forget cached clients (the engine's S3 one, the steps' DynamoDB/SQS ones)."""
    with contextlib.suppress(ImportError):
        import engine.io

        engine.io.reset_s3_client()
    with contextlib.suppress(ImportError):
        from engine.aws import clients

        reset = getattr(clients, "reset_clients", None)
        if callable(reset):
            reset()


def _clear_contract_cache() -> None:
    """Forget contracts a previous run cached (same CONTRACTS_URI, another moto account)."""
    try:
        from engine.aws import routing
    except ImportError:
        return
    clear = getattr(routing, "clear_cache", None)
    if callable(clear):
        clear()


def _plain(value: Any) -> Any:
    """DynamoDB values (Decimal, sets, bytes) as plain JSON-able Python."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    return value


def _item(raw: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: _plain(deserializer.deserialize(v)) for k, v in raw.items()}


def object_created_event(
    bucket: str,
    key: str,
    *,
    size: int,
    etag: str,
    version: str | None = None,
    region: str = REGION,
    account: str = ACCOUNT,
) -> dict[str, Any]:
    """An EventBridge "Object Created" event for an S3 object, as S3 sends it."""
    now = datetime.now(UTC)
    obj: dict[str, Any] = {"key": key, "size": size, "etag": etag.strip('"'),
                           "sequencer": f"{time.time_ns():X}"}
    if version:
        obj["version-id"] = version
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": account,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": account,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject",
        },
    }


# ---------------------------------------------------------------------------------------------
# Following an execution (shared by local and remote runs)
# ---------------------------------------------------------------------------------------------


@dataclass
class _History:
    states: list[str] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)  # state name → last task output
    file_id: str | None = None


def _history(sfn: Any, execution_arn: str) -> _History:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page.get("events", []))
        token = page.get("nextToken")
        if not token:
            break
        kwargs["nextToken"] = token
    out = _History()
    current: str | None = None
    for event in events:
        kind = event.get("type", "")
        if kind.endswith("StateEntered"):
            current = event["stateEnteredEventDetails"]["name"]
            out.states.append(current)
        elif kind in ("LambdaFunctionScheduled", "TaskScheduled") and current:
            out.attempts[current] = out.attempts.get(current, 0) + 1
        elif kind in ("LambdaFunctionSucceeded", "TaskSucceeded") and current:
            details = event.get("lambdaFunctionSucceededEventDetails") or event.get(
                "taskSucceededEventDetails") or {}
            with contextlib.suppress(TypeError, ValueError):
                output = json.loads(details.get("output") or "null")
                out.outputs[current] = output
                if out.file_id is None and isinstance(output, dict):
                    # a state's file_id, or (ingest failed) the one the error tasks recorded
                    failure = output.get("failure")
                    out.file_id = output.get("file_id") or (
                        failure.get("file_id") if isinstance(failure, dict) else None)
    return out


def _wait(sfn: Any, execution_arn: str, *, poll: float, timeout: float | None,
          sleep: Callable[[float], None]) -> dict[str, Any]:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        desc = sfn.describe_execution(executionArn=execution_arn)
        if desc["status"] in _TERMINAL:
            return desc  # type: ignore[no-any-return]
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"execution {execution_arn} still {desc['status']} after "
                               f"{timeout:.0f} s")
        sleep(poll)


def _error(desc: Mapping[str, Any]) -> dict[str, Any] | None:
    if desc["status"] == "SUCCEEDED":
        return None
    error_type = desc.get("error") or desc["status"]
    cause = desc.get("cause")
    message = cause or ""
    with contextlib.suppress(TypeError, ValueError):
        parsed = json.loads(cause or "")
        if isinstance(parsed, dict) and "errorMessage" in parsed:
            message = parsed["errorMessage"]
    return {"type": error_type, "message": message, "cause": cause}


def _record(ddb: Any, table: str | None, file_id: str | None) -> dict[str, Any] | None:
    if not (table and file_id):
        return None
    item = ddb.get_item(TableName=table, Key={"file_id": {"S": file_id}},
                        ConsistentRead=True).get("Item")
    return _item(item) if item else None


def _final_outputs(output: Any) -> list[str]:
    """Output URIs named by a succeeded execution's final state: parts and manifest."""
    uris: list[str] = []
    if not isinstance(output, dict):
        return uris
    for part in output.get("parts") or []:
        if isinstance(part, dict) and isinstance(part.get("uri"), str):
            uris.append(part["uri"])
    manifest = (output.get("output") or {}).get("manifest") if isinstance(
        output.get("output"), dict) else None
    if isinstance(manifest, str):
        uris.append(manifest)
    return uris


def _result(desc: Mapping[str, Any], hist: _History, *, record: Any, outputs: list[str],
            dlq: list[Any], waits: list[float] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "status": desc["status"],
        "states": hist.states,
        "error": _error(desc),
        "record": record,
        "outputs": outputs,
        "dlq": dlq,
        "execution_arn": desc["executionArn"],
        "attempts": hist.attempts,
        "skipped": "Skipped" in hist.states,
    }
    if waits is not None:
        result["retry_waits"] = waits
    output = desc.get("output")
    with contextlib.suppress(TypeError, ValueError):
        result["output"] = json.loads(output) if output else None
    return result


# ---------------------------------------------------------------------------------------------
# Local runs
# ---------------------------------------------------------------------------------------------


_RESOURCE_ENV = ("METADATA_TABLE", "PROCESSED_BUCKET", "DLQ_URL")


def _settings_env(settings: Any) -> dict[str, str]:
    """Environment variables from ``settings``: a mapping of names, or a ``Settings`` object.

    A :class:`engine.aws.settings.Settings` gives each field that is set under the environment
    name its module defines for it (``max_single_bytes`` → ``MAX_SINGLE_BYTES``,
    ``service_name`` → ``POWERTOOLS_SERVICE_NAME``).

    Raises:
        ValueError: the table, bucket or queue is set: a local run creates its own.
    """
    if settings is None:
        return {}
    if isinstance(settings, Mapping):
        env = {str(k): str(v) for k, v in settings.items() if v is not None}
    else:
        import dataclasses

        import engine.aws.settings as names

        if not dataclasses.is_dataclass(settings):
            raise TypeError(f"settings: a mapping or a Settings, not {type(settings).__name__}")
        env = {}
        for f in dataclasses.fields(settings):
            value = getattr(settings, f.name)
            if value is not None:
                env[str(getattr(names, f.name.upper(), f.name.upper()))] = str(value)
    given = sorted(k for k in _RESOURCE_ENV if k in env)
    if given:
        raise ValueError(f"a local run creates its own table, bucket and queue: do not set "
                         f"{', '.join(given)}")
    return env


def _contract_globs(path: Path) -> list[str]:
    import yaml

    with contextlib.suppress(OSError, yaml.YAMLError):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        match = doc.get("match") if isinstance(doc, dict) else None
        if isinstance(match, str):
            return [match]
        if isinstance(match, list):
            return [str(m) for m in match]
    return []


def key_for(filename: str, match: str | None) -> str:
    """An object key for ``filename`` that the contract glob ``match`` selects.

    The glob's directory part up to its first wildcard is kept (``orders/*.csv*`` →
    ``orders/<filename>``); without a glob the key is ``incoming/<filename>``.
    """
    if not match:
        return f"incoming/{filename}"
    fixed = re.split(r"[*?\[]", match, maxsplit=1)[0]
    prefix = fixed.rsplit("/", 1)[0] + "/" if "/" in fixed else ""
    return f"{prefix}{filename}"


class LocalPipeline:
    """The pipeline's AWS resources and state machine on moto, in this process.

    ``with LocalPipeline(...) as pipe:`` starts moto, creates the buckets, table, queue and state
    machine and uploads the contracts; :meth:`run` uploads a file and runs one execution;
    :meth:`run_object` runs another execution for an object already uploaded (a duplicate
    event). The hook, fake environment and retrier patch are undone on exit.

    Args:
        contract: one contract YAML to upload (its ``match`` decides the object key).
        contracts_dir: a directory of contract YAMLs to upload (``*.yaml``/``*.yml``).
        settings: handler environment overrides: a mapping (``{"MAX_SINGLE_BYTES": "200KB"}``)
            or an :class:`engine.aws.settings.Settings` (its fields that are set). The table,
            buckets and queue are the run's own and cannot be overridden.
        time_scale: retries wait ``IntervalSeconds × BackoffRate^n × time_scale`` seconds.
        handlers: function logical id or step name → ``handler(event, context)`` overriding
            the one in ``lambda/<step>/handler.py`` (tests wrap or stub steps with it).
        map_max_concurrency: the ``${MapMaxConcurrency}`` substitution.
        memory_mb: the memory the emulated context reports.
        timeout_s: the function timeout behind ``get_remaining_time_in_millis()``.
        quiet: silence moto's interpreter log (it logs every caught task error at ERROR).
    """

    def __init__(
        self,
        *,
        contract: str | os.PathLike[str] | None = None,
        contracts_dir: str | os.PathLike[str] | None = None,
        settings: Any = None,
        time_scale: float = 0,
        handlers: Mapping[str, Handler] | None = None,
        map_max_concurrency: int = 4,
        memory_mb: int = 1024,
        timeout_s: float = 900.0,
        quiet: bool = True,
    ) -> None:
        self.quiet = quiet
        self.contracts: list[Path] = []
        if contracts_dir is not None:
            directory = Path(contracts_dir)
            self.contracts += sorted(p for p in directory.iterdir()
                                     if p.suffix in (".yaml", ".yml") and p.is_file())
        if contract is not None:
            self.contracts.append(Path(contract))
        for p in self.contracts:
            if not p.is_file():
                raise FileNotFoundError(f"no contract file {p}")
        self.settings_env = _settings_env(settings)
        self.time_scale = time_scale
        self.overrides = dict(handlers or {})
        self.map_max_concurrency = map_max_concurrency
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.names = dict(LOCAL_NAMES)
        self.waits: list[float] = []
        self._stack: contextlib.ExitStack | None = None
        self.state_machine_arn = ""
        self.queue_url = ""
        #: DLQ messages the last :meth:`run_many` could not match to one of its executions.
        self.unmatched_dlq: list[Any] = []

    # -- set-up ----------------------------------------------------------------------------

    def _handlers(self) -> dict[str, Handler]:
        by_step = {step: name for name, step in FUNCTIONS.items()}
        overrides: dict[str, Handler] = {}
        for name, fn in self.overrides.items():
            logical = by_step.get(name, name)
            if logical not in FUNCTIONS:
                raise KeyError(f"unknown function {name!r}: one of {sorted(FUNCTIONS)} or a step "
                               f"name {sorted(by_step)}")
            overrides[logical] = fn
        directory = lambda_dir()
        if not directory.is_dir() and set(overrides) != set(FUNCTIONS):
            raise FileNotFoundError(
                f"the Lambda handlers are not at {directory}: run from a checkout of the "
                "repository or set CHUNKWISE_LAMBDA_DIR to its lambda/ directory")
        handlers: dict[str, Handler] = {}
        for logical, step in FUNCTIONS.items():
            if logical in overrides:
                handlers[logical] = overrides[logical]
            elif (directory / step / "handler.py").is_file():
                handlers[logical] = load_handler(step, directory)
        return handlers

    def handler_env(self) -> dict[str, str]:
        """The environment the handlers see (the template's function environment, locally)."""
        n = self.names
        env = {
            "METADATA_TABLE": n["table"],
            "PROCESSED_BUCKET": n["processed_bucket"],
            "DLQ_URL": self.queue_url,
            "CONTRACTS_URI": f"s3://{n['raw_bucket']}/{n['contracts_prefix']}",
            "POWERTOOLS_SERVICE_NAME": "chunkwise",
            "POWERTOOLS_METRICS_NAMESPACE": "chunkwise",
        }
        env.update(self.settings_env)
        return env

    def __enter__(self) -> LocalPipeline:
        import botocore.handlers

        if not _RUN_LOCK.acquire(blocking=False):
            raise RuntimeError("a local pipeline is already running in this process")
        stack = contextlib.ExitStack()
        stack.callback(_RUN_LOCK.release)
        try:
            stack.enter_context(_patched_env(_FAKE_ENV, _CLEARED_ENV))
            if _HOOK not in botocore.handlers.BUILTIN_HANDLERS:
                botocore.handlers.BUILTIN_HANDLERS.append(_HOOK)
                stack.callback(botocore.handlers.BUILTIN_HANDLERS.remove, _HOOK)
            # Sessions read BUILTIN_HANDLERS when created: drop boto3's default session (as
            # mock_aws does, except when it is nested in another mock) so the interpreter's
            # clients get the hook; and again on the way out, so none keeps it.
            _reset_default_session()
            stack.callback(_reset_default_session)
            _DISPATCHER.handlers = {}
            _DISPATCHER.memory_mb, _DISPATCHER.timeout_s = self.memory_mb, self.timeout_s
            stack.callback(setattr, _DISPATCHER, "handlers", {})

            from moto import mock_aws

            _reset_engine_clients()
            stack.callback(_reset_engine_clients)
            stack.enter_context(
                mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
            self._patch_retrier(stack)
            if self.quiet:
                _quiet_logger(stack, "moto.stepfunctions.parser")
            self._create()
            stack.enter_context(_patched_env(self.handler_env(), ()))
            _reset_engine_clients()
            _clear_contract_cache()
            stack.callback(_clear_contract_cache)
            _DISPATCHER.handlers = self._handlers()
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, *exc: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def _patch_retrier(self, stack: contextlib.ExitStack) -> None:
        import importlib

        module = importlib.import_module(_RETRIER_MODULE)
        original = module.time
        module.time = _ScaledTime(self.time_scale, self.waits)
        stack.callback(setattr, module, "time", original)

    def client(self, service: str) -> Any:
        """A boto3 client on the local (moto) account."""
        import boto3

        return boto3.client(service, region_name=REGION)

    def _create(self) -> None:
        n = self.names
        s3 = self.client("s3")
        for bucket in (n["raw_bucket"], n["processed_bucket"]):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=n["raw_bucket"],
                                 VersioningConfiguration={"Status": "Enabled"})
        for path in self.contracts:
            s3.put_object(Bucket=n["raw_bucket"], Key=f"{n['contracts_prefix']}{path.name}",
                          Body=path.read_bytes())
        ddb = self.client("dynamodb")
        ddb.create_table(
            TableName=n["table"],
            AttributeDefinitions=[{"AttributeName": "file_id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "file_id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.update_time_to_live(TableName=n["table"], TimeToLiveSpecification={
            "Enabled": True, "AttributeName": "expires_at"})
        sqs = self.client("sqs")
        self.queue_url = sqs.create_queue(QueueName=n["queue"], Attributes={
            "MessageRetentionPeriod": "1209600", "SqsManagedSseEnabled": "true"})["QueueUrl"]
        iam = self.client("iam")
        role = iam.create_role(
            RoleName="chunkwise-pipeline-local",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}),
        )["Role"]["Arn"]
        definition = render_definition(substitutions(map_max_concurrency=self.map_max_concurrency))
        self.state_machine_arn = self.client("stepfunctions").create_state_machine(
            name=n["state_machine"], definition=definition, roleArn=role, type="STANDARD",
        )["stateMachineArn"]

    # -- running ---------------------------------------------------------------------------

    def contract_key(self, filename: str) -> str:
        """The key a file is uploaded under so that the (last given) contract selects it.

        Raises:
            ValueError: no ``match`` glob of the contract can select this file name.
        """
        globs = _contract_globs(self.contracts[-1]) if self.contracts else []
        if not globs:
            return key_for(filename, None)
        for glob in globs:
            key = key_for(filename, glob)
            if fnmatch.fnmatchcase(key, glob):
                return key
        raise ValueError(f"the file name {filename!r} does not match the contract's match "
                         f"glob {' or '.join(repr(g) for g in globs)}: rename the file or give "
                         "a key")

    def upload(self, path: str | os.PathLike[str], key: str | None = None) -> dict[str, Any]:
        """Put a local file into the raw bucket; returns its bucket, key, size, etag, version."""
        path = Path(path)
        key = key or self.contract_key(path.name)
        bucket = self.names["raw_bucket"]
        s3 = self.client("s3")
        with path.open("rb") as body:
            put = s3.put_object(Bucket=bucket, Key=key, Body=body)
        return {"bucket": bucket, "key": key, "size": path.stat().st_size,
                "etag": put["ETag"].strip('"'), "version": put.get("VersionId")}

    def run(self, path: str | os.PathLike[str], *, key: str | None = None,
            timeout: float | None = 600) -> dict[str, Any]:
        """Upload ``path`` and run one execution for it (see :func:`run_local` for the result)."""
        return self.run_object(self.upload(path, key), timeout=timeout)

    def run_object(self, obj: Mapping[str, Any], *, timeout: float | None = 600) -> dict[str, Any]:
        """Run one execution for an uploaded object (``upload``'s result): a new event for it."""
        event = object_created_event(obj["bucket"], obj["key"], size=obj["size"],
                                     etag=obj["etag"], version=obj.get("version"))
        return self.execute(event, timeout=timeout)

    def execute(self, event: Mapping[str, Any], *, timeout: float | None = 600) -> dict[str, Any]:
        """Start an execution with ``event`` as input, wait for it and collect what it did."""
        if self._stack is None:
            raise RuntimeError("use LocalPipeline as a context manager")
        s3, sfn = self.client("s3"), self.client("stepfunctions")
        processed = self.names["processed_bucket"]
        before = set(_keys(s3, processed))
        waits_before = len(self.waits)
        arn = sfn.start_execution(stateMachineArn=self.state_machine_arn, name=str(uuid.uuid4()),
                                  input=json.dumps(event))["executionArn"]
        desc = _wait(sfn, arn, poll=0.02, timeout=timeout, sleep=time.sleep)
        hist = _history(sfn, arn)
        record = _record(self.client("dynamodb"), self.names["table"], hist.file_id)
        outputs = [f"s3://{processed}/{k}" for k in _keys(s3, processed) if k not in before]
        return _result(desc, hist, record=record, outputs=outputs, dlq=self._drain_dlq(),
                       waits=self.waits[waits_before:])

    def start(self, event: Mapping[str, Any]) -> str:
        """Start an execution with ``event`` as input and return its ARN without waiting.

        moto runs every execution on a thread of its own, so executions started one after the
        other run at the same time (see :meth:`run_many`).
        """
        if self._stack is None:
            raise RuntimeError("use LocalPipeline as a context manager")
        return self.client("stepfunctions").start_execution(  # type: ignore[no-any-return]
            stateMachineArn=self.state_machine_arn, name=str(uuid.uuid4()),
            input=json.dumps(event))["executionArn"]

    def run_many(self, objects: list[Mapping[str, Any]], *, concurrency: int = 8,
                 timeout: float | None = 600, poll: float = 0.05) -> list[dict[str, Any]]:
        """Run one execution per uploaded object, ``concurrency`` of them in flight at a time.

        Each object (``upload``'s result) gets a new event, as :meth:`run_object` gives it; the
        next execution starts as soon as one finishes. Executions really overlap: moto runs each
        on its own thread, and their states interleave (one execution's Transform between
        another's Ingest and Validate). The handlers' *bodies* still run one at a time (see
        :class:`_Dispatcher`): on AWS each invocation has a sandbox of its own, here they share
        one process, so this tests the pipeline's shared state (claims, records, keys, the DLQ)
        under concurrency, not the engine's parallel throughput.

        Returns:
            One result per object, in order, shaped as :meth:`execute`'s, except that
            ``outputs`` are the objects the execution's final state names (manifest, data files,
            rejects), not a listing of what changed in the bucket (other executions write there
            at the same time), there are no ``retry_waits`` (not attributable), and ``seconds``
            is the execution's duration (start to stop, as Step Functions reports it). DLQ
            messages are matched to executions by ``file_id``; any that match none are left in
            :attr:`unmatched_dlq`.

        Raises:
            ValueError: ``concurrency`` below 1.
            TimeoutError: an execution did not finish within ``timeout`` seconds of its start.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        sfn = self.client("stepfunctions")
        pending = list(enumerate(objects))
        pending.reverse()
        running: dict[str, tuple[int, float]] = {}  # ARN → (index, monotonic start)
        done: dict[int, tuple[str, dict[str, Any]]] = {}
        while pending or running:
            while pending and len(running) < concurrency:
                index, obj = pending.pop()
                event = object_created_event(obj["bucket"], obj["key"], size=obj["size"],
                                             etag=obj["etag"], version=obj.get("version"))
                running[self.start(event)] = (index, time.monotonic())
            for arn, (index, started) in list(running.items()):
                desc = sfn.describe_execution(executionArn=arn)
                if desc["status"] in _TERMINAL:
                    done[index] = (arn, desc)
                    del running[arn]
                elif timeout is not None and time.monotonic() - started > timeout:
                    raise TimeoutError(f"execution {arn} still {desc['status']} after "
                                       f"{timeout:.0f} s")
            if running:
                time.sleep(poll)
        ddb = self.client("dynamodb")
        results: list[dict[str, Any]] = []
        for index in range(len(objects)):
            arn, desc = done[index]
            hist = _history(sfn, arn)
            record = _record(ddb, self.names["table"], hist.file_id)
            output = None
            with contextlib.suppress(TypeError, ValueError):
                output = json.loads(desc.get("output") or "null")
            result = _result(desc, hist, record=record, outputs=_published(output), dlq=[])
            result["file_id"] = hist.file_id
            result["seconds"] = _duration(desc)
            results.append(result)
        self.unmatched_dlq = _assign_dlq(results, self._drain_dlq())
        return results

    def _drain_dlq(self) -> list[Any]:
        sqs = self.client("sqs")
        messages: list[Any] = []
        while True:
            got = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                      MessageAttributeNames=["All"]).get("Messages", [])
            if not got:
                return messages
            for msg in got:
                body: Any = msg.get("Body", "")
                with contextlib.suppress(TypeError, ValueError):
                    body = json.loads(body)
                messages.append(body)
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=msg["ReceiptHandle"])


def _published(output: Any) -> list[str]:
    """What a succeeded execution's final state says it published: manifest, files, rejects."""
    if not isinstance(output, dict):
        return []
    uris: list[str] = []
    for part in output.get("parts") or []:
        if not isinstance(part, dict):
            continue
        uris += [f["uri"] for f in part.get("files") or []
                 if isinstance(f, dict) and isinstance(f.get("uri"), str)]
        if isinstance(part.get("rejects_uri"), str):
            uris.append(part["rejects_uri"])
    final = output.get("output")
    if isinstance(final, dict) and isinstance(final.get("manifest"), str):
        uris.append(final["manifest"])
    return sorted(set(uris))


def _duration(desc: Mapping[str, Any]) -> float | None:
    """Seconds from an execution's start to its stop, as ``DescribeExecution`` reports them."""
    start, stop = desc.get("startDate"), desc.get("stopDate")
    if isinstance(start, datetime) and isinstance(stop, datetime):
        return round((stop - start).total_seconds(), 3)
    return None


def _assign_dlq(results: list[dict[str, Any]], messages: list[Any]) -> list[Any]:
    """Give each DLQ message to the execution of its ``file_id``; return those left over.

    A failed execution of the file is preferred (duplicates share a ``file_id``). A message
    without a ``file_id`` (an event that was not understood) goes to a failed execution that
    has none, in order.
    """
    by_file: dict[str, dict[str, Any]] = {}
    for r in results:
        if r["file_id"] and (r["file_id"] not in by_file or r["status"] != "SUCCEEDED"):
            by_file[r["file_id"]] = r
    unknown = [r for r in results if not r["file_id"] and r["status"] != "SUCCEEDED"]
    left: list[Any] = []
    for message in messages:
        file_id = message.get("file_id") if isinstance(message, dict) else None
        target = by_file.get(file_id) if file_id else None
        if target is None and not file_id and unknown:
            target = unknown.pop(0)
        if target is None:
            left.append(message)
        else:
            target["dlq"].append(message)
    return left


def _keys(s3: Any, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(keys)


def run_local(
    path_or_s3_uri: str | os.PathLike[str],
    *,
    contract: str | os.PathLike[str] | None = None,
    contracts_dir: str | os.PathLike[str] | None = None,
    settings: Any = None,
    time_scale: float = 0,
    key: str | None = None,
    handlers: Mapping[str, Handler] | None = None,
    map_max_concurrency: int = 4,
    timeout: float | None = 600,
) -> dict[str, Any]:
    """Run the pipeline for one file on moto, with no AWS account and no network.

    Args:
        path_or_s3_uri: a local file, uploaded to the raw bucket. (An ``s3://`` URI is read
            with the engine's S3 access *before* moto starts, i.e. from real S3.)
        contract: a contract YAML; the object key is chosen so that its ``match`` selects it.
        contracts_dir: a directory of contracts, all uploaded under ``CONTRACTS_URI``.
        settings: handler environment overrides (see :class:`LocalPipeline`).
        time_scale: how much of each retry interval is really waited (0: none).
        key: the object key in the raw bucket (default: from the contract's ``match``).
        handlers: step overrides (see :class:`LocalPipeline`).
        map_max_concurrency: the Map's ``MaxConcurrency``.
        timeout: seconds to wait for the execution.

    Returns:
        ``{"status": "SUCCEEDED"|"FAILED", "states": [names entered, in order], "error": None
        or {"type", "message", "cause"}, "record": the DynamoDB item or None, "outputs":
        [s3:// URIs written to the processed bucket], "dlq": [DLQ message bodies],
        "execution_arn", "attempts": {state: Lambda invocations}, "skipped": bool,
        "retry_waits": [seconds the retries asked for], "output": final state or None}``.
    """
    src = str(path_or_s3_uri)
    tmp: Path | None = None
    if src.startswith("s3://"):
        import tempfile

        import engine.io

        name = src.rsplit("/", 1)[-1] or "object"
        tmp = Path(tempfile.mkdtemp(prefix="chunkwise-pipeline-")) / name
        with engine.io.open_input(src, compression="none") as fin, tmp.open("wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
        src = str(tmp)
    try:
        with LocalPipeline(contract=contract, contracts_dir=contracts_dir, settings=settings,
                           time_scale=time_scale, handlers=handlers,
                           map_max_concurrency=map_max_concurrency) as pipe:
            return pipe.run(src, key=key, timeout=timeout)
    finally:
        if tmp is not None:
            import shutil

            shutil.rmtree(tmp.parent, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Remote runs
# ---------------------------------------------------------------------------------------------


def stack_resources(cfn: Any, stack: str) -> dict[str, dict[str, str]]:
    """Logical id → ``{"type", "id"}`` (physical id) of every resource of ``stack``."""
    found: dict[str, dict[str, str]] = {}
    kwargs: dict[str, Any] = {"StackName": stack}
    while True:
        page = cfn.list_stack_resources(**kwargs)
        for r in page.get("StackResourceSummaries", []):
            found[r["LogicalResourceId"]] = {"type": r["ResourceType"],
                                             "id": r.get("PhysicalResourceId", "")}
        token = page.get("NextToken")
        if not token:
            return found
        kwargs["NextToken"] = token


def _stack_targets(cfn: Any, stack: str) -> dict[str, str | None]:
    """The state machine ARN, table, processed bucket and DLQ URL of a deployed stack.

    The state machine comes from the stack's outputs (any value that is a state machine ARN),
    else from its one ``AWS::StepFunctions::StateMachine`` resource; the rest from the
    template's logical ids (``MetadataTable``, ``ProcessedBucket``, ``DeadLetterQueue``).
    """
    stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    if not stacks:
        raise LookupError(f"no stack {stack!r}")
    arn = None
    for out in stacks[0].get("Outputs", []) or []:
        value = str(out.get("OutputValue", ""))
        if value.startswith("arn:") and ":states:" in value and ":stateMachine:" in value:
            arn = value
            break
    resources = stack_resources(cfn, stack)
    if arn is None:
        machines = [r["id"] for r in resources.values()
                    if r["type"] == "AWS::StepFunctions::StateMachine"]
        if len(machines) != 1:
            raise LookupError(f"stack {stack!r} has {len(machines)} state machines and no "
                              "output naming one")
        arn = machines[0]

    def physical(logical: str) -> str | None:
        r = resources.get(logical)
        return r["id"] if r else None

    return {"state_machine": arn, "table": physical("MetadataTable"),
            "processed_bucket": physical("ProcessedBucket"), "queue": physical("DeadLetterQueue")}


def run_remote(
    uri: str,
    *,
    stack: str,
    clients: Mapping[str, Any] | None = None,
    region: str | None = None,
    poll: float = 2.0,
    timeout: float | None = 3600,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Start an execution of a deployed stack's state machine for ``uri`` and follow it.

    The input is the same EventBridge "Object Created" event S3 sends (built from a
    ``head_object`` of ``uri``). If the upload already started an execution, this one finds the
    file claimed and ends in ``Skipped``. The DLQ is not read (receiving would hide messages
    from operators): ``dlq`` lists what the ``DLQRoute`` step reported, if it ran
    (``{"queue_url", "sent", "message_id", "failure"}``). ``outputs`` are the parts and the
    manifest the final state names (the processed bucket is not listed).

    Args:
        uri: ``s3://bucket/key`` of an object in the stack's raw bucket.
        stack: the CloudFormation stack name.
        clients: ``{"cloudformation", "s3", "stepfunctions", "dynamodb"}`` clients (tests pass
            stubbed ones); default boto3 clients from the environment's credentials.
        region: region of the default clients.
        poll: seconds between ``DescribeExecution`` calls.
        timeout: seconds to follow the execution before giving up (``None``: no limit).
        sleep: the wait between polls (tests pass a no-op).

    Returns:
        The same shape as :func:`run_local`.
    """
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"expected s3://bucket/key, got {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    given = dict(clients or {})

    def client(name: str) -> Any:
        if name not in given:
            import boto3

            given[name] = boto3.client(name, region_name=region)
        return given[name]

    targets = _stack_targets(client("cloudformation"), stack)
    head = client("s3").head_object(Bucket=bucket, Key=key)
    event = object_created_event(
        bucket, key, size=int(head["ContentLength"]), etag=head["ETag"],
        version=head.get("VersionId"),
        region=region or getattr(getattr(client("s3"), "meta", None), "region_name", REGION)
        or REGION,
    )
    sfn = client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=targets["state_machine"], name=str(uuid.uuid4()),
                              input=json.dumps(event))["executionArn"]
    desc = _wait(sfn, arn, poll=poll, timeout=timeout, sleep=sleep)
    hist = _history(sfn, arn)
    record = _record(client("dynamodb"), targets["table"], hist.file_id) if targets["table"] \
        else None
    outputs: list[str] = []
    with contextlib.suppress(TypeError, ValueError):
        outputs = _final_outputs(json.loads(desc.get("output") or "null"))
    dlq: list[Any] = []
    if "DLQRoute" in hist.states:
        routed = hist.outputs.get("DLQRoute")
        entry: dict[str, Any] = {"queue_url": targets["queue"], "sent": routed is not None}
        if isinstance(routed, dict):
            sent = routed.get("dlq")
            if isinstance(sent, dict) and sent.get("message_id"):
                entry["message_id"] = sent["message_id"]
            if isinstance(routed.get("failure"), dict):
                entry["failure"] = routed["failure"]
        dlq.append(entry)
    return _result(desc, hist, record=record, outputs=outputs, dlq=dlq)
