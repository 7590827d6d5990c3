"""What every ``chunkwise`` command shares: the ``--json`` flag, sizes, typed failures.

A user's mistake or a failed run becomes one line on stderr (and, with ``--json``, one JSON
object on stdout) and the exit code of its error class, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Annotated, Any, NoReturn

import click
import typer
from typer.core import TyperCommand

from engine.errors import EngineError, exit_code_for

__all__ = ["JsonCommand", "JsonFlag", "choice", "fail", "print_json", "run_job", "size_option"]

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def choice(values: Sequence[str]) -> click.Choice:
    """An option's choices (case-insensitive), listed in ``--help`` as ``[a|b|c]``.

    Another value is a usage error (exit 2) naming the choices.
    """
    return click.Choice(list(values), case_sensitive=False)


def size_option(text: str) -> int:
    """Parse a size option (``4MiB``), or fail as a usage error naming the problem."""
    from engine.config import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def print_json(data: dict[str, Any]) -> None:
    """Print a command's ``--json`` object on one line, with the chunkwise ``version`` in it."""
    from engine import __version__

    print(json.dumps({**data, "version": data.get("version", __version__)}, default=str))


#: The ``--json`` output of a failed command: ``{"status": "failed", "error": ...}``.
Envelope = Callable[[dict[str, Any]], dict[str, Any]]


def _failed(error: dict[str, Any]) -> dict[str, Any]:
    return {"status": "failed", "error": error}


def fail(exc: BaseException, as_json: bool, envelope: Envelope = _failed) -> NoReturn:
    """Report ``exc`` (typed errors as themselves, anything else as an internal error); exit.

    A missing local file the engine did not name (a contract, a schema) is an
    ``InputNotFoundError`` (exit 66). ``envelope`` wraps the error in the command's JSON.
    """
    code = exit_code_for(exc)
    if isinstance(exc, EngineError):
        error: dict[str, Any] = exc.to_dict()
        text = f"error: {type(exc).__name__}: {exc}"
    elif isinstance(exc, FileNotFoundError):
        code = 66
        error = {"type": "InputNotFoundError", "message": str(exc), "uri": exc.filename,
                 "record": None, "offset": None}
        text = f"error: {exc}"
    else:
        error = {"type": "InternalError", "message": f"{type(exc).__name__}: {exc}",
                 "uri": None, "record": None, "offset": None}
        text = f"internal error: {type(exc).__name__}: {exc} (a bug: please report it)"
        if os.environ.get("CHUNKWISE_DEBUG"):
            traceback.print_exc()
    if as_json:
        print_json(envelope(error))
    print(text, file=sys.stderr)
    raise typer.Exit(code)


def _usage_error(exc: click.UsageError) -> dict[str, Any]:
    return {"type": "UsageError", "message": exc.format_message(), "uri": None, "record": None,
            "offset": None}


class JsonCommand(TyperCommand):
    """A command whose parsing errors also print, with ``--json``, the failure object on stdout.

    An unknown option, a value not among an option's choices or text for a number is found by
    click before the command runs; its own checks' errors print the object in :func:`run_job`.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse ``args``; a usage error with ``--json`` among them prints the object too."""
        as_json = "--json" in args
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            if as_json:
                print_json(_failed(_usage_error(exc)))
            raise


def run_job(as_json: bool, job: Callable[[], Any], envelope: Envelope = _failed) -> Any:
    """Run ``job``; a failure becomes a message and its exit code, never a traceback."""
    try:
        return job()
    except typer.Exit:
        raise
    except typer.BadParameter as exc:  # a bad option: typer prints it and exits 2
        if as_json:
            print_json(envelope(_usage_error(exc)))
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise typer.Exit(130) from None
    except Exception as exc:  # every failure becomes a typed message and an exit code
        fail(exc, as_json, envelope)


#: The option that sets an engine field, where the names differ.
_OPTION_OF = {"row_group_bytes": "--row-group-size", "null_values": "--null-value"}


def checked_options(kwargs: dict[str, Any], hints: dict[str, str] | None = None,
                    ) -> dict[str, Any]:
    """``kwargs``, once the engine has built its options from them.

    A value the engine refuses (``UsageError``: a block size of 0, an unknown encoding) is then
    a usage error naming its option (exit 2), not an internal error halfway through a run.
    ``hints`` names the option of a field where the command's differs from ``--field-name``.
    """
    from engine.config import build_options

    try:
        build_options(None, **kwargs)
    except ValueError as exc:
        name, _, problem = str(exc).partition(" ")
        hint = {**_OPTION_OF, **(hints or {})}.get(name, "--" + name.replace("_", "-"))
        raise typer.BadParameter(problem, param_hint=hint) from None
    return kwargs
