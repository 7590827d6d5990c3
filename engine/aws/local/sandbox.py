"""What a local run changes in this process, and puts back: moto, fake AWS, the Lambda hook.

:func:`moto_sandbox` starts ``mock_aws`` (with moto's ASL interpreter executing state machines)
inside an environment of fake credentials and one region, with nothing left that could send a
call elsewhere (endpoint overrides, profiles, web identity); registers the Lambda
:class:`~engine.aws.local.lambdas.Dispatcher` as a botocore built-in handler, so the
interpreter's clients invoke the real handlers; and swaps the ``time`` of moto's retrier for one
that records each retry interval and waits it scaled; and completes moto's Step Functions
service integration (:mod:`engine.aws.local.sfn_integration`). :func:`server_sandbox` does the
same for the local stack's server process, where the calls go to moto's server over loopback
instead of ``mock_aws``. :func:`handler_environment` then sets the handlers' environment and makes
the engine forget clients and contracts an earlier run cached. Everything is undone on exit, in
reverse order. One local run at a time per process.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from engine.aws.local import sfn_integration
from engine.aws.local.asl import REGION
from engine.aws.local.lambdas import Dispatcher

__all__ = ["RETRIER_MODULE", "handler_environment", "moto_sandbox", "server_sandbox"]

#: The module of moto's ASL interpreter whose ``time.sleep`` waits between retries.
RETRIER_MODULE = "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl"

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
    "AWS_ENDPOINT_URL_GLUE",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CA_BUNDLE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "MOTO_PORT",
)

# One hook object for the process: botocore sessions copy BUILTIN_HANDLERS when created, so
# the same (handler) entry is added and removed, never a new one per run.
_DISPATCHER = Dispatcher()
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
def _patched_env(values: Mapping[str, str], cleared: tuple[str, ...] = ()) -> Iterator[None]:
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


def _patch_retrier(stack: contextlib.ExitStack, time_scale: float, waits: list[float]) -> None:
    module = importlib.import_module(RETRIER_MODULE)
    original = module.time
    module.time = _ScaledTime(time_scale, waits)
    stack.callback(setattr, module, "time", original)


def _hook_and_patches(stack: contextlib.ExitStack, *, time_scale: float, waits: list[float],
                      quiet: bool, memory_mb: int, timeout_s: float) -> None:
    """The Lambda hook, the retrier's time and moto's Step Functions integration, for a run."""
    import botocore.handlers

    if _HOOK not in botocore.handlers.BUILTIN_HANDLERS:
        botocore.handlers.BUILTIN_HANDLERS.append(_HOOK)
        stack.callback(botocore.handlers.BUILTIN_HANDLERS.remove, _HOOK)
    # Sessions read BUILTIN_HANDLERS when created: drop boto3's default session (as mock_aws
    # does, except when it is nested in another mock) so the interpreter's clients get the
    # hook; and again on the way out, so none keeps it.
    _reset_default_session()
    stack.callback(_reset_default_session)
    _DISPATCHER.handlers = {}
    _DISPATCHER.memory_mb, _DISPATCHER.timeout_s = memory_mb, timeout_s
    stack.callback(setattr, _DISPATCHER, "handlers", {})
    _reset_engine_clients()
    stack.callback(_reset_engine_clients)
    _patch_retrier(stack, time_scale, waits)
    sfn_integration.patch(stack)
    if quiet:
        _quiet_logger(stack, "moto.stepfunctions.parser")


@contextlib.contextmanager
def moto_sandbox(*, time_scale: float, waits: list[float], quiet: bool, memory_mb: int,
                 timeout_s: float) -> Iterator[Dispatcher]:
    """Start moto, its state machine interpreter, fake AWS and the Lambda hook, for one run.

    Args:
        time_scale: retries wait ``IntervalSeconds × BackoffRate^n × time_scale`` seconds.
        waits: receives each retry interval the interpreter asks for, in seconds.
        quiet: silence moto's interpreter log (it logs every caught task error at ERROR).
        memory_mb: the memory the emulated contexts report.
        timeout_s: the function timeout behind ``get_remaining_time_in_millis()``.

    Yields:
        The dispatcher: set its ``handlers`` once the resources exist (emptied on exit).

    Raises:
        RuntimeError: another local run is in progress in this process.
    """
    if not _RUN_LOCK.acquire(blocking=False):
        raise RuntimeError("a local pipeline is already running in this process")
    with contextlib.ExitStack() as stack:
        stack.callback(_RUN_LOCK.release)
        stack.enter_context(_patched_env(_FAKE_ENV, _CLEARED_ENV))
        from moto import mock_aws

        # mock_aws resets boto3's default session on entry: the hook goes in first
        _hook_and_patches(stack, time_scale=time_scale, waits=waits, quiet=quiet,
                          memory_mb=memory_mb, timeout_s=timeout_s)
        stack.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
        yield _DISPATCHER


@contextlib.contextmanager
def server_sandbox(port: int, *, quiet: bool, memory_mb: int,
                   timeout_s: float) -> Iterator[Dispatcher]:
    """This process as the local stack's server: every AWS call to moto's server on ``port``.

    The server (a ``ThreadedMotoServer`` on 127.0.0.1:``port``, started by the caller) executes
    state machines; its interpreter's clients reach it at ``localhost:$MOTO_PORT``, the
    handlers' at ``$AWS_ENDPOINT_URL``; the Lambda hook answers their invocations in this
    process. Retries do not wait (their intervals are not recorded).

    Yields:
        The dispatcher: set its ``handlers`` once the resources exist.

    Raises:
        RuntimeError: another local run is in progress in this process.
    """
    from moto.core.config import default_user_config

    if not _RUN_LOCK.acquire(blocking=False):
        raise RuntimeError("a local pipeline is already running in this process")
    endpoint = f"http://127.0.0.1:{port}"
    env = {**_FAKE_ENV, "AWS_ENDPOINT_URL": endpoint, "MOTO_PORT": str(port)}
    with contextlib.ExitStack() as stack:
        stack.callback(_RUN_LOCK.release)
        stack.enter_context(_patched_env(env, _CLEARED_ENV))
        sfn_config = default_user_config.setdefault("stepfunctions", {})
        stack.callback(sfn_config.update, dict(sfn_config))
        sfn_config["execute_state_machine"] = True
        _hook_and_patches(stack, time_scale=0, waits=[], quiet=quiet, memory_mb=memory_mb,
                          timeout_s=timeout_s)
        yield _DISPATCHER


@contextlib.contextmanager
def handler_environment(env: Mapping[str, str]) -> Iterator[None]:
    """The handlers' environment, with no client or contract cached from before it was set."""
    with _patched_env(env):
        _reset_engine_clients()
        _clear_contract_cache()
        try:
            yield
        finally:
            _clear_contract_cache()
