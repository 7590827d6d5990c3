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

import importlib
import sys
from typing import Annotated, Any

import typer

import engine
from engine.cli.common import JsonCommand

__all__ = ["app", "build", "main"]

app: typer.Typer  # the app with every command: built on first use, by __getattr__ below

#: The commands in ``--help`` order: name → (module under ``engine.cli``, what it registers:
#: a function, or ``app`` for a group of subcommands; whether it takes ``--json``).
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "transform": ("transform", "transform", True),
    "validate": ("transform", "validate", True),
    "infer": ("transform", "infer", False),  # no --json: it prints YAML
    "inspect": ("inspect", "inspect", True),
    "gen": ("gen", "gen", True),
    "pipeline": ("pipeline", "app", False),
    "local": ("local", "app", False),
    "layer": ("layer", "app", False),
    "contracts": ("contracts", "app", False),
    "profile": ("sizing", "profile", True),
    "size": ("sizing", "size", True),
    "cost": ("cost", "cost", True),
}


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"chunkwise {engine.__version__}")
        raise typer.Exit()


def chunkwise(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print the version and exit.")] = False,
) -> None:
    """Streaming, bounded-memory CSV/JSON → Parquet."""


def build(only: str | None = None) -> typer.Typer:
    """The ``chunkwise`` app with every command, or with the one named ``only``.

    Typer turns every registered function's signature into click parameters before it parses
    the command line (~40 ms for all of them, and the imports of their modules): the console
    script registers only the command it was asked for, when the first argument names one.
    """
    app = typer.Typer(
        no_args_is_help=True, pretty_exceptions_enable=False,
        help="Streaming, bounded-memory CSV/JSON → Parquet.",
    )
    app.callback()(chunkwise)
    for name, (module_name, attr, takes_json) in COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(f"engine.cli.{module_name}"), attr)
        if attr == "app":
            app.add_typer(target, name=name)
        elif takes_json:
            app.command(cls=JsonCommand)(target)
        else:
            app.command()(target)
    return app


def __getattr__(name: str) -> Any:
    """``app``: the app with every command, built on first use (tests, ``python -m``)."""
    if name == "app":
        globals()["app"] = full = build()
        return full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Entry point of the ``chunkwise`` console script."""
    from engine.runtime import process

    process.configure()  # before any command loads pyarrow; transform refines it by --threads
    first = sys.argv[1] if len(sys.argv) > 1 else None
    build(first if first in COMMANDS else None)()


if __name__ == "__main__":
    main()
