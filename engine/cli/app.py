"""The ``chunkwise`` command: the app, its commands, and the console script's entry point.

``--json`` prints one JSON object on stdout and nothing else; without it, a progress bar on a TTY
and a short summary. Logs and errors go to stderr. Exit codes follow sysexits: 0 ok, 2 usage,
65 data error, 66 input not found, 72 incomplete installation, 74 I/O, 70 internal error.

The commands live in :mod:`engine.cli.transform` (transform, validate, infer),
:mod:`engine.cli.inspect`, :mod:`engine.cli.gen`, :mod:`engine.cli.sizing` (profile, size),
:mod:`engine.cli.pipeline`, :mod:`engine.cli.local`, :mod:`engine.cli.layer`,
:mod:`engine.cli.contracts` and :mod:`engine.cli.cost`; each imports what it needs when it runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

import engine
from engine.cli import contracts, cost, gen, inspect, layer, local, pipeline, sizing, transform
from engine.cli.common import JsonCommand

__all__ = ["app", "main"]

app = typer.Typer(
    no_args_is_help=True, pretty_exceptions_enable=False,
    help="Streaming, bounded-memory CSV/JSON → Parquet.",
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"chunkwise {engine.__version__}")
        raise typer.Exit()


@app.callback()
def chunkwise(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print the version and exit.")] = False,
) -> None:
    """Streaming, bounded-memory CSV/JSON → Parquet."""


app.command(cls=JsonCommand)(transform.transform)
app.command(cls=JsonCommand)(transform.validate)
app.command()(transform.infer)  # no --json: it prints YAML
app.command(cls=JsonCommand)(inspect.inspect)
app.command(cls=JsonCommand)(gen.gen)
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(local.app, name="local")
app.add_typer(layer.app, name="layer")
app.add_typer(contracts.app, name="contracts")
app.command(cls=JsonCommand)(sizing.profile)
app.command(cls=JsonCommand)(sizing.size)
app.command(cls=JsonCommand)(cost.cost)


def main() -> None:
    """Entry point of the ``chunkwise`` console script."""
    from engine.runtime import process

    process.configure()  # before any command loads pyarrow; transform refines it by --threads
    app()


if __name__ == "__main__":
    main()
