"""``chunkwise local``: a local stack of the pipeline that persists between commands.

``chunkwise local up [--port N]`` starts moto's server on 127.0.0.1 in the background, with the
template's buckets, table, queue, Glue database and state machines in it, and the real Lambda
handlers answering the state machines' invocations in that server's process
(:mod:`engine.aws.local.server`); it returns once the stack answers, printing its endpoint.
``chunkwise pipeline ... --local`` then acts on it. ``local status`` lists the running stacks,
``local down [--port N]`` stops one (every one without ``--port``). Nothing listens beyond the
loopback interface, and the credentials are moto's fake ones.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from engine.cli.common import JsonFlag, print_json, run_job

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  help="A local stack of the pipeline (moto on 127.0.0.1) that persists.")

PortOption = Annotated[int | None, typer.Option(
    help="The stack's loopback port [default: up: a free one; down: every stack].")]


def _usage(job: Any) -> Any:
    """``job()``, with the server module's ``LookupError``/``RuntimeError`` as usage errors."""
    from engine.errors import UsageError

    try:
        return job()
    except (LookupError, RuntimeError) as exc:
        raise UsageError(str(exc)) from None


@app.command()
def up(port: PortOption = None, as_json: JsonFlag = False) -> None:
    """Start a local stack in the background; return when it is ready."""
    from engine.aws.local import server

    if port is not None and not 0 < port < 65536:
        raise typer.BadParameter("a port from 1 to 65535", param_hint="--port")
    info = run_job(as_json, lambda: _usage(lambda: server.up(port or 0)))
    if as_json:
        print_json({"status": "up", **info})
        return
    typer.echo(f"local stack up at {info['endpoint']} (pid {info['pid']}, log {info['log']})")
    typer.echo("  chunkwise pipeline backfill DIR --local --contract C   "
               "chunkwise local down --port " + str(info["port"]))


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """List the running local stacks: port, pid, endpoint, whether the server answers."""
    from engine.aws.local import server

    stacks = run_job(as_json, lambda: [{**info, "answers": server.answers(info)}
                                       for info in server.running()])
    if as_json:
        print_json({"stacks": stacks})
        return
    if not stacks:
        typer.echo("no local stack is running (start one with `chunkwise local up`)")
    for info in stacks:
        state = "up" if info["answers"] else "not answering"
        typer.echo(f"{info['endpoint']}  pid {info['pid']}  {state}  since "
                   f"{info['started_at']}  log {info['log']}")


@app.command()
def down(port: PortOption = None, as_json: JsonFlag = False) -> None:
    """Stop the local stack on --port, or every local stack (its data goes with it)."""
    from engine.aws.local import server

    stopped = run_job(as_json, lambda: _usage(lambda: server.down(port)))
    if as_json:
        print_json({"stopped": stopped})
        return
    typer.echo(f"stopped {', '.join(map(str, stopped))}" if stopped
               else "no local stack was running")
