"""The pipeline on local AWS (moto): the real state machine, the real handlers, no account.

:class:`LocalPipeline` (and :func:`run_local`, for one file) executes
``stepfunctions/pipeline.asl.json`` as written on moto's own ASL interpreter. It creates what the
template would (raw and processed buckets, the metadata table, the DLQ, the state machine, the
contracts under ``CONTRACTS_URI``, the Glue database of the datasets' tables) inside
:func:`~engine.aws.local.sandbox.moto_sandbox`, whose
Lambda hook (:mod:`engine.aws.local.lambdas`) answers the task states with the real handlers in
``lambda/<step>/handler.py``, in-process. Nothing leaves the process: moto intercepts every AWS
call, with fake credentials set for the duration of the run; a retry waits its interval
(``IntervalSeconds × BackoffRate^n``) times ``time_scale`` (0 by default), and the intervals
asked for are reported. Executions (see :meth:`LocalPipeline.run_many`) and Map iterations run
on moto's worker threads, so they overlap and their states interleave; the handlers' bodies
run one at a time (on AWS each concurrent invocation has a sandbox of its own, here they share
one process), with one environment.

A run's result is built by :mod:`engine.aws.executions`, as a run on a deployed stack's is
(:func:`engine.aws.remote.run_remote`), with the dataset's catalog table as it stands after the
execution (``catalog``). The transform's ``peak_rss_bytes`` is its own growth over the process's
RSS at its start (``PEAK_RSS_SCOPE=growth``): moto and every handler share this process.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.aws.executions import (
    TERMINAL,
    dataset_table,
    duration,
    object_created_event,
    published_outputs,
    read_history,
    read_record,
    run_result,
    wait_for,
)
from engine.aws.local.asl import ACCOUNT, FUNCTIONS, REGION
from engine.aws.local.inputs import contract_key, settings_env
from engine.aws.local.lambdas import Handler, lambda_dir, load_handler
from engine.aws.local.sandbox import handler_environment, moto_sandbox
from engine.aws.local.stack import LOCAL_NAMES, create, handler_env
from engine.errors import InstallationError

__all__ = ["LOCAL_NAMES", "LocalPipeline", "run_files", "run_local"]

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
        map_max_concurrency: how many ranges the Map converts at once: the plan step's
            ``MAP_MAX_CONCURRENCY``, which it hands the Map in the state. Default: the one in
            ``settings``, else 4.
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
        map_max_concurrency: int | None = None,
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
        if map_max_concurrency is not None and map_max_concurrency < 1:
            raise ValueError(f"map_max_concurrency must be at least 1, got {map_max_concurrency}")
        self.settings_env = settings_env(settings)
        self.time_scale = time_scale
        self.overrides = dict(handlers or {})
        self.map_max_concurrency = map_max_concurrency
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.names = dict(LOCAL_NAMES)
        self.waits: list[float] = []
        self._stack: contextlib.ExitStack | None = None
        self.state_machine_arn = ""
        self.backfill_state_machine_arn = ""
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
        directory = lambda_dir() if set(overrides) != set(FUNCTIONS) else Path()
        if set(overrides) != set(FUNCTIONS) and not directory.is_dir():
            raise InstallationError(f"the Lambda handlers are not at {directory}: unset "
                                    "CHUNKWISE_LAMBDA_DIR, or point it at a lambda/ folder",
                                    uri=str(directory))
        handlers: dict[str, Handler] = {}
        for logical, step in FUNCTIONS.items():
            if logical in overrides:
                handlers[logical] = overrides[logical]
            elif (directory / step / "handler.py").is_file():
                handlers[logical] = load_handler(step, directory)
        return handlers

    def handler_env(self) -> dict[str, str]:
        """The environment the handlers see (the template's function environment, locally)."""
        return handler_env(self.names, self.queue_url, self.settings_env,
                           map_max_concurrency=self.map_max_concurrency)

    def __enter__(self) -> LocalPipeline:
        stack = contextlib.ExitStack()
        try:
            dispatcher = stack.enter_context(moto_sandbox(
                time_scale=self.time_scale, waits=self.waits, quiet=self.quiet,
                memory_mb=self.memory_mb, timeout_s=self.timeout_s))
            self._create()
            stack.enter_context(handler_environment(self.handler_env()))
            dispatcher.handlers = self._handlers()
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, *exc: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def client(self, service: str) -> Any:
        """A boto3 client on the local (moto) account."""
        import boto3

        return boto3.client(service, region_name=REGION)

    def _create(self) -> None:
        made = create(self.client, self.contracts, names=self.names)
        self.queue_url = made["queue_url"]
        self.state_machine_arn = made["state_machine_arn"]
        self.backfill_state_machine_arn = made["backfill_state_machine_arn"]

    # -- running ---------------------------------------------------------------------------

    def contract_key(self, filename: str) -> str:
        """The key a file is uploaded under so that the (last given) contract selects it.

        Raises:
            ValueError: no ``match`` glob of the contract can select this file name.
        """
        return contract_key(filename, self.contracts[-1] if self.contracts else None)

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
        return self.execute(_event(obj), timeout=timeout)

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
        desc = wait_for(sfn, arn, poll=0.02, timeout=timeout, sleep=time.sleep)
        hist = read_history(sfn, arn)
        record = read_record(self.client("dynamodb"), self.names["table"], hist.file_id)
        outputs = [f"s3://{processed}/{k}" for k in _keys(s3, processed) if k not in before]
        result = run_result(desc, hist, record=record, outputs=outputs, dlq=self._drain_dlq(),
                            waits=self.waits[waits_before:])
        result["catalog"] = self.catalog(dataset_table(hist))
        return result

    def catalog(self, table: tuple[str, str] | None) -> dict[str, Any] | None:
        """The catalog table ``(database, table)`` as a result shows it; ``None`` if none."""
        from engine.aws import catalog

        return catalog.describe(self.client("glue"), *table) if table else None

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
        :class:`~engine.aws.local.lambdas.Dispatcher`): on AWS each invocation has a sandbox of
        its own, here they share one process, so this tests the pipeline's shared state (claims,
        records, keys, the DLQ) under concurrency, not the engine's parallel throughput.

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
                running[self.start(_event(obj))] = (index, time.monotonic())
            for arn, (index, started) in list(running.items()):
                desc = sfn.describe_execution(executionArn=arn)
                if desc["status"] in TERMINAL:
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
            hist = read_history(sfn, arn)
            record = read_record(ddb, self.names["table"], hist.file_id)
            output = None
            with contextlib.suppress(TypeError, ValueError):
                output = json.loads(desc.get("output") or "null")
            result = run_result(desc, hist, record=record, outputs=published_outputs(output),
                                dlq=[])
            result["file_id"] = hist.file_id
            result["seconds"] = duration(desc)
            result["catalog"] = self.catalog(dataset_table(hist))
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


def _event(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The "Object Created" event for an uploaded object (:meth:`LocalPipeline.upload`)."""
    return object_created_event(obj["bucket"], obj["key"], size=obj["size"], etag=obj["etag"],
                                version=obj.get("version"), region=REGION, account=ACCOUNT)


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
    map_max_concurrency: int | None = None,
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
        map_max_concurrency: how many ranges the Map converts at once (see
            :class:`LocalPipeline`).
        timeout: seconds to wait for the execution.

    Returns:
        ``{"status": "SUCCEEDED"|"FAILED", "states": [names entered, in order], "error": None
        or {"type", "message", "cause"}, "record": the DynamoDB item or None, "outputs":
        [s3:// URIs written to the processed bucket], "dlq": [DLQ message bodies],
        "execution_arn", "attempts": {state: Lambda invocations}, "skipped": bool,
        "retry_waits": [seconds the retries asked for], "output": final state or None,
        "catalog": the dataset's Glue table after the execution
        (:func:`engine.aws.catalog.describe`), or None}``.
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


def run_files(
    paths: list[str | os.PathLike[str]],
    *,
    contract: str | os.PathLike[str] | None = None,
    contracts_dir: str | os.PathLike[str] | None = None,
    settings: Any = None,
    key: str | None = None,
    map_max_concurrency: int | None = None,
    out: str | os.PathLike[str] | None = None,
    timeout: float | None = 600,
) -> list[dict[str, Any]]:
    """Run the pipeline for several local files in one local AWS, one execution each, in order.

    The files share the buckets, table, queue and catalog, so the second file of a dataset
    meets the table the first one made. With ``out``, the processed bucket and the catalog are
    copied there when the last execution ends (:func:`engine.aws.local.export.export`).

    Returns:
        One result per file, as :func:`run_local`'s.

    Raises:
        ValueError: a file name the contract's ``match`` cannot select (and no ``key``).
    """
    with LocalPipeline(contract=contract, contracts_dir=contracts_dir, settings=settings,
                       map_max_concurrency=map_max_concurrency) as pipe:
        results = [pipe.run(path, key=key, timeout=timeout) for path in paths]
        if out is not None:
            from engine.aws.local.export import export

            export(pipe, out)
    return results
