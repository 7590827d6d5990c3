"""``chunkwise pipeline``: run the serverless pipeline on files, locally or on a stack.

``chunkwise pipeline run FILE...`` runs the real state machine (``stepfunctions/pipeline.asl.json``)
on moto in this process, with the real Lambda handlers, and needs no AWS account: one execution
per file, in order, in the same local AWS (so the second file of a dataset meets the table the
first one made); ``--out DIR`` copies the processed bucket and the catalog there at the end. With
``--stack NAME`` and ``s3://`` sources it starts and follows executions of a deployed stack.
``--json`` prints one object per file, one per line, each with the dataset's ``catalog`` table.
Exit codes: 0 when every execution succeeded (a duplicate event's ``Skipped`` included), else the
first failed file's: 65 when it failed with a permanent error (routed to the DLQ), 74 when
transient errors exhausted their retries (or the execution timed out), 70 for anything else; 66
for a missing input file, 2 for bad usage. ``run --local`` runs the files on the running local
stack (``chunkwise local up``) instead.

Operating a stack, the local one (``--local``) or a deployed one (``--stack NAME``): ``backfill``
converts every object under a prefix through the backfill state machine (a Distributed Map, one
per-file execution each), ``status`` lists the metadata records by state, ``replay`` runs the
DLQ's files again (see docs/pipeline.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.cli.common import JsonCommand, JsonFlag, choice, print_json, run_job

if TYPE_CHECKING:
    from engine.aws.targets import Target

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Run the serverless pipeline: locally on moto (no AWS account), or on a deployed stack.",
)


@app.callback()
def pipeline() -> None:
    """Run the serverless pipeline: locally on moto (no AWS account), or on a deployed stack."""


def _size(text: str | None, hint: str) -> int | None:
    if text is None:
        return None
    from engine.config import parse_size

    try:
        size = parse_size(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from None
    if size < 1:  # the deployed settings refuse it too, but only once the execution runs
        raise typer.BadParameter(f"must be positive, not {text!r}", param_hint=hint)
    return size


def exit_code(result: dict[str, Any]) -> int:
    """The exit code for a run's result: see the module docstring."""
    from engine.aws.local.asl import error_exit_code

    status = result.get("status")
    if status == "SUCCEEDED":
        return 0
    if status == "TIMED_OUT":
        return 74
    return error_exit_code((result.get("error") or {}).get("type"))


@app.command()
def run(
    srcs: Annotated[list[str], typer.Argument(
        metavar="FILE...", help="Local files (a local run, one execution each, in order), or "
                                "s3://bucket/key objects with --stack.")],
    contract: Annotated[str | None, typer.Option(
        help="Dataset contract (YAML) to deploy with the local run; the object key is chosen "
             "so that its `match` glob selects the file.")] = None,
    contracts_dir: Annotated[str | None, typer.Option(
        help="A directory of contracts to deploy with the local run.")] = None,
    key: Annotated[str | None, typer.Option(
        help="Object key in the local raw bucket [default: from the contract's match].")] = None,
    max_single_bytes: Annotated[str | None, typer.Option(
        help="Local run: objects larger than this take the Map of byte ranges "
             "[default: 500MB].")] = None,
    range_bytes: Annotated[str | None, typer.Option(
        help="Local run: target size of one Map range [default: 256MB].")] = None,
    map_concurrency: Annotated[int, typer.Option(
        help="Local run: the Map's MaxConcurrency.")] = 4,
    stack: Annotated[str | None, typer.Option(
        help="Run on this deployed CloudFormation stack instead (SRC must be s3://).")] = None,
    local: Annotated[bool, typer.Option(
        "--local", help="Run on the running local stack (`chunkwise local up`): the files "
                        "and --contract are uploaded to it, and stay.")] = False,
    region: Annotated[str | None, typer.Option(help="AWS region of --stack.")] = None,
    out: Annotated[str | None, typer.Option(
        help="Local run: when it ends, copy the processed bucket (keys as paths) and the Glue "
             "catalog (_catalog/) into this directory.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run files through ingest → validate → transform → output and show what happened."""
    results = run_job(as_json, lambda: _execute(
        srcs, contract=contract, contracts_dir=contracts_dir, key=key,
        max_single_bytes=_size(max_single_bytes, "--max-single-bytes"),
        range_bytes=_size(range_bytes, "--range-bytes"), map_concurrency=map_concurrency,
        stack=stack, local=local, region=region, out=out), _failed_run)
    for n, result in enumerate(results):
        if as_json:
            print_json(result)
        else:
            if len(results) > 1:
                from rich.console import Console

                Console(highlight=False).rule(f"{n + 1}/{len(results)}  {srcs[n]}")
            show(result)
    codes = [exit_code(r) for r in results]
    raise typer.Exit(next((c for c in codes if c), 0))


def _execute(srcs: list[str], *, contract: str | None, contracts_dir: str | None,
             key: str | None, max_single_bytes: int | None, range_bytes: int | None,
             map_concurrency: int, stack: str | None, local: bool, region: str | None,
             out: str | None) -> list[dict[str, Any]]:
    if local:
        return _run_local_stack(srcs, contract=contract, key=key, stack=stack, given={
            "--contracts-dir": contracts_dir, "--max-single-bytes": max_single_bytes,
            "--range-bytes": range_bytes, "--out": out})
    if stack:
        if not all(src.startswith("s3://") for src in srcs):
            raise typer.BadParameter("with --stack, each FILE is an s3://bucket/key URI in the "
                                     "stack's raw bucket", param_hint="FILE")
        local_only = {"--contract": contract, "--contracts-dir": contracts_dir, "--key": key,
                      "--max-single-bytes": max_single_bytes, "--range-bytes": range_bytes,
                      "--out": out}
        given = [name for name, value in local_only.items() if value is not None]
        if given:
            raise typer.BadParameter(f"{', '.join(given)} only apply to a local run: a stack "
                                     "uses its deployed contracts and settings")
        from engine.aws.remote import run_remote

        with contextlib.redirect_stdout(sys.stderr):
            return [run_remote(src, stack=stack, region=region) for src in srcs]
    if any(src.startswith("s3://") for src in srcs):
        raise typer.BadParameter("a local run takes local files; to run s3:// objects on "
                                 "AWS, add --stack NAME", param_hint="FILE")
    for src in srcs:
        if not os.path.isfile(src):
            from engine.errors import InputNotFoundError

            raise InputNotFoundError("no such file", uri=src)
    if map_concurrency < 1:
        raise typer.BadParameter("at least 1", param_hint="--map-concurrency")
    settings: dict[str, str] = {}
    if max_single_bytes is not None:
        settings["MAX_SINGLE_BYTES"] = str(max_single_bytes)
    if range_bytes is not None:
        settings["RANGE_BYTES"] = str(range_bytes)
    from engine.aws.local import run_files

    try:
        # Handlers log (Powertools: JSON lines and EMF metrics) to stdout, as on Lambda; here
        # stdout is this command's output, so their lines go to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            return run_files(list(srcs), contract=contract, contracts_dir=contracts_dir,
                             settings=settings or None, key=key,
                             map_max_concurrency=map_concurrency, out=out)
    except ValueError as exc:  # the file name does not match the contract's glob
        raise typer.BadParameter(str(exc)) from None


def _run_local_stack(srcs: list[str], *, contract: str | None, key: str | None,
                     stack: str | None, given: dict[str, Any]) -> list[dict[str, Any]]:
    """``run --local``: upload each file (and the contract) to the local stack, run it there."""
    not_here = [name for name, value in given.items() if value is not None]
    if stack or not_here:
        raise typer.BadParameter(f"{', '.join(not_here or ['--stack'])} do not apply to "
                                 "--local: the local stack has its own settings")
    from engine.aws.local.inputs import contract_key
    from engine.aws.remote import run_on

    target = _target(True, None, None)
    for src in srcs:
        if src.startswith("s3://") or not os.path.isfile(src):
            from engine.errors import InputNotFoundError

            raise InputNotFoundError("no such local file", uri=src)
    if contract:
        _upload_contract(target, contract)
    results = []
    with _aws_errors():
        for src in srcs:
            try:
                object_key = key or contract_key(os.path.basename(src),
                                                 Path(contract) if contract else None)
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from None
            target.client("s3").upload_file(src, target.require("raw_bucket"), object_key)
            results.append(run_on(f"s3://{target.raw_bucket}/{object_key}", target.targets(),
                                  target.client, region=target.region, poll=0.1))
    return results


def _failed_run(error: dict[str, Any]) -> dict[str, Any]:
    """A run that failed before or around the execution, shaped as a result."""
    return {"status": "FAILED", "states": [], "error": error, "record": None, "outputs": [],
            "dlq": [], "catalog": None}


_MAX_LISTED = 20


def _path(states: list[str]) -> str:
    """State names joined by arrows, repeats (Map iterations) folded: ``TransformPart ×3``."""
    folded: list[str] = []
    count = 0
    for i, name in enumerate(states):
        count += 1
        if i + 1 < len(states) and states[i + 1] == name:
            continue
        folded.append(f"{name} ×{count}" if count > 1 else name)
        count = 0
    return " → ".join(folded)


def show(result: dict[str, Any]) -> None:
    """Print a run's result for a person: path, error, record, outputs, DLQ messages."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    status = result.get("status", "?")
    ok = status == "SUCCEEDED"
    label = "skipped (duplicate event)" if result.get("skipped") else status.lower()
    console.print(f"[bold {'green' if ok else 'red'}]{label}[/] {result.get('execution_arn', '')}")
    console.print(f"[bold]path[/]    {_path(result.get('states') or [])}")
    retried = {s: n for s, n in (result.get("attempts") or {}).items()
               if n > 1 and s != "TransformPart"}
    if retried:
        console.print("[bold]retries[/] " + ", ".join(f"{s}: {n} attempts"
                                                    for s, n in retried.items()))
    error = result.get("error")
    if error:
        console.print(f"[bold red]error[/]   {error.get('type')}: {error.get('message')}")
    record = result.get("record")
    if record:
        table = Table("attribute", "value", title="metadata record", title_justify="left")
        for name in sorted(record):
            table.add_row(name, json.dumps(record[name], default=str)
                          if not isinstance(record[name], str) else record[name])
        console.print(table)
    else:
        console.print("[bold]record[/]  none")
    outputs = result.get("outputs") or []
    console.print(f"[bold]outputs[/] {len(outputs)}")
    # manifests first, then data; a partitioned or split file can write hundreds of objects
    ordered = sorted(outputs, key=lambda u: (not u.endswith("manifest.json"), u))
    for uri in ordered[:_MAX_LISTED]:
        console.print(f"  {uri}")
    if len(ordered) > _MAX_LISTED:
        console.print(f"  … and {len(ordered) - _MAX_LISTED} more (--json lists them all)")
    table_info = result.get("catalog")
    if table_info and table_info.get("columns") is not None:
        keys = ", ".join(k["name"] for k in table_info.get("partition_keys") or [])
        console.print(f"[bold]catalog[/] {table_info['database']}.{table_info['table']} at "
                      f"{table_info.get('location')}: {len(table_info['columns'])} columns"
                      + (f", partitioned by {keys} ({len(table_info.get('partitions') or [])} "
                         "partitions)" if keys else ""))
        console.print("  " + ", ".join(f"{c['name']} {c['type']}"
                                       for c in table_info["columns"]))
    dlq = result.get("dlq") or []
    console.print(f"[bold]DLQ[/]     {len(dlq)} message{'s' if len(dlq) != 1 else ''}")
    for message in dlq:
        console.print("  " + json.dumps(message, default=str, indent=2).replace("\n", "\n  "))


# -- operating a stack: backfill, replay, status (on --local or --stack) ---------------------

LocalFlag = Annotated[bool, typer.Option(
    "--local", help="Act on the running local stack (`chunkwise local up`).")]
StackOption = Annotated[str | None, typer.Option(
    help="Act on this deployed CloudFormation stack.")]
RegionOption = Annotated[str | None, typer.Option(help="AWS region of --stack.")]


def _target(local: bool, stack: str | None, region: str | None) -> Target:
    """The stack a command acts on: exactly one of ``--local`` and ``--stack``."""
    if local == bool(stack):
        raise typer.BadParameter("give exactly one of --local (the local stack) and --stack NAME",
                                 param_hint="--local/--stack")
    from engine.errors import UsageError

    try:
        if local:
            if region is not None:
                raise typer.BadParameter("the local stack has its own region",
                                         param_hint="--region")
            from engine.aws.local.server import find
            from engine.aws.targets import local_target

            return local_target(find())
        from engine.aws.targets import stack_target

        with _aws_errors():
            return stack_target(str(stack), region=region)
    except LookupError as exc:
        raise UsageError(str(exc)) from None


@contextlib.contextmanager
def _aws_errors() -> Iterator[None]:
    """An AWS call's failure as a typed error (exit 74), not a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    from engine.errors import TransientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise TransientError(f"AWS: {exc}") from None


def _upload_contract(target: Target, contract: str) -> str:
    """Check ``contract`` and put it under the raw bucket's ``_contracts/``; its key."""
    from engine.aws.backfill import CONTRACTS_PREFIX
    from engine.contract.loader import load_contract

    load_contract(contract)  # a broken contract fails here, not in every file's execution
    key = CONTRACTS_PREFIX + os.path.basename(contract)
    with _aws_errors():
        target.client("s3").upload_file(contract, target.require("raw_bucket"), key)
    return key


def _folder_prefix(folder: Path, contract: str | None) -> str:
    """A folder's default key prefix: the directory of the contract's match glob, else its name."""
    if contract:
        from engine.aws.local.inputs import contract_globs

        for glob in contract_globs(Path(contract)):
            literal = glob.split("*")[0].split("?")[0].split("[")[0]
            if "/" in literal:
                return literal[:literal.rindex("/") + 1]
    return f"{folder.name}/"


def _backfill_prefix(target: Target, source: str, prefix: str | None,
                     contract: str | None) -> str:
    """The prefix to backfill; a local folder's files are uploaded under it first."""
    if source.startswith("s3://"):
        if prefix is not None:
            raise typer.BadParameter("--prefix names where a folder's files go; an s3:// "
                                     "SOURCE is the prefix itself", param_hint="--prefix")
        bucket, _, key_prefix = source[5:].partition("/")
        if bucket != target.require("raw_bucket"):
            raise typer.BadParameter(f"the backfill lists the stack's raw bucket "
                                     f"{target.raw_bucket!r}, not {bucket!r}", param_hint="SOURCE")
        return key_prefix
    if not target.local:
        raise typer.BadParameter("with --stack, SOURCE is s3://RAW_BUCKET/prefix/",
                                 param_hint="SOURCE")
    folder = Path(source)
    if not folder.is_dir():
        from engine.errors import InputNotFoundError

        raise InputNotFoundError("no such folder", uri=source)
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    key_prefix = _folder_prefix(folder, contract) if prefix is None else prefix
    if key_prefix and not key_prefix.endswith("/"):
        key_prefix += "/"
    from engine.aws.backfill import check_prefix

    try:
        check_prefix(key_prefix)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--prefix") from None
    s3, bucket = target.client("s3"), target.require("raw_bucket")
    with _aws_errors():
        for path in files:
            _upload_once(s3, path, bucket, key_prefix + path.relative_to(folder).as_posix())
    return key_prefix


def _upload_once(s3: Any, path: Path, bucket: str, key: str) -> None:
    """Upload ``path`` unless the object already holds it (its SHA-256 in the metadata).

    The raw bucket is versioned: uploading the same file again would make a new version, a new
    file for the pipeline, and a second backfill of the folder would convert it again.
    """
    import hashlib

    from botocore.exceptions import ClientError

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    sha256 = digest.hexdigest()
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
        if head.get("Metadata", {}).get("chunkwise-sha256") == sha256:
            return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    s3.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {"chunkwise-sha256": sha256}})


@contextlib.contextmanager
def _progress(show_it: bool, label: str) -> Iterator[Any]:
    """A progress bar on stderr when it is a terminal: ``update(done, total)``; else a no-op."""
    if not show_it:
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total or None)


def _backfill_exit_code(result: dict[str, Any]) -> int:
    if result["status"] == "SUCCEEDED":
        return 65 if result["failed"] else 0
    return {"TIMED_OUT": 74}.get(result["status"], 65 if result["failed"] else 70)


@app.command(cls=JsonCommand)
def backfill(
    source: Annotated[str, typer.Argument(
        metavar="SOURCE", help="s3://RAW_BUCKET/prefix/, or with --local a folder whose files "
                               "are uploaded under --prefix first.")],
    local: LocalFlag = False,
    stack: StackOption = None,
    region: RegionOption = None,
    prefix: Annotated[str | None, typer.Option(
        help="Where a folder's files go in the raw bucket [default: the directory of the "
             "contract's match glob, else the folder's name].")] = None,
    contract: Annotated[str | None, typer.Option(
        help="Upload this contract to _contracts/ first.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Convert every object under a prefix: one per-file execution each (Distributed Map)."""
    from engine.aws.backfill import run_backfill

    def job() -> dict[str, Any]:
        target = _target(local, stack, region)
        if contract:
            _upload_contract(target, contract)
        key_prefix = _backfill_prefix(target, source, prefix, contract)
        with _aws_errors(), _progress(sys.stderr.isatty() and not as_json,
                                      f"backfill {key_prefix}") as update:
            try:
                return run_backfill(target, key_prefix, poll=0.5 if target.local else 5.0,
                                    on_progress=lambda c: update(
                                        sum(c.get(k, 0) for k in ("succeeded", "failed",
                                                                  "timedOut", "aborted")),
                                        c.get("total", 0)))
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="SOURCE") from None

    result = run_job(as_json, job)
    if as_json:
        print_json(result)
    else:
        typer.echo(f"backfill {result['status'].lower()}: {result['items']} files, "
                   f"{result['succeeded']} converted, {result['skipped']} skipped (already "
                   f"converted), {result['failed']} failed")
        if result.get("execution"):
            typer.echo(f"  execution {result['execution']}")
        if result["failed"]:
            typer.echo("  failed files: `chunkwise pipeline status --status FAILED`; after a "
                       "fix, `chunkwise pipeline replay`")
    raise typer.Exit(_backfill_exit_code(result))


@app.command(cls=JsonCommand)
def replay(
    local: LocalFlag = False,
    stack: StackOption = None,
    region: RegionOption = None,
    contract: Annotated[str | None, typer.Option(
        help="Upload this (fixed) contract to _contracts/ first.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the files the DLQ would replay; run nothing.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run each file in the DLQ again; a message goes once its file has an outcome."""
    from engine.aws.replay import replay as replay_dlq

    def job() -> dict[str, Any]:
        target = _target(local, stack, region)
        if contract and not dry_run:
            _upload_contract(target, contract)
        with _aws_errors():
            return replay_dlq(target, dry_run=dry_run, poll=0.2 if target.local else 2.0)

    result = run_job(as_json, job)
    if as_json:
        print_json(result)
    else:
        for entry in result["files"]:
            typer.echo(f"{entry['status']:<9} {entry['key']}")
        typer.echo(f"replayed {result['replayed']}: {result['succeeded']} succeeded, "
                   f"{result['failed']} failed; {result['remaining']} messages in the DLQ")
    raise typer.Exit(65 if result["failed"] else 0)


@app.command(cls=JsonCommand)
def status(
    local: LocalFlag = False,
    stack: StackOption = None,
    region: RegionOption = None,
    state: Annotated[str | None, typer.Option(
        "--status", click_type=choice(("RECEIVED", "VALIDATED", "TRANSFORMED", "SUCCEEDED",
                                       "FAILED")),
        help="Only the files in this state.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Only files updated since: an ISO-8601 date or time, or an age (90m, 24h, 7d).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The metadata table's records: counts by state, and the files, newest first."""
    from engine.aws.status import parse_since, records

    def job() -> dict[str, Any]:
        try:
            moment = parse_since(since) if since is not None else None
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--since") from None
        target = _target(local, stack, region)
        with _aws_errors():
            return records(target, status=state.upper() if state else None, since=moment)

    result = run_job(as_json, job)
    if as_json:
        print_json(result)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    console.print("  ".join(f"{name} {n}" for name, n in sorted(result["counts"].items()))
                  or "no records")
    files = result["files"]
    if files:
        table = Table("key", "status", "rows in", "out", "rejected", "updated", "error")
        for f in files[:_MAX_LISTED]:
            table.add_row(str(f["key"]), str(f["status"]), *(
                "" if f[k] is None else str(f[k]) for k in ("rows_in", "rows_out",
                                                            "rows_rejected")),
                str(f["updated_at"] or ""), f["error"] or "")
        console.print(table)
        if len(files) > _MAX_LISTED:
            console.print(f"… and {len(files) - _MAX_LISTED} more (--json lists them all)")
