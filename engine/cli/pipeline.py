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
for a missing input file, 2 for bad usage.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Annotated, Any

import typer

from engine.cli.common import JsonFlag, print_json, run_job

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
        stack=stack, region=region, out=out), _failed_run)
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
             map_concurrency: int, stack: str | None, region: str | None,
             out: str | None) -> list[dict[str, Any]]:
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
