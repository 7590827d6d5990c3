"""``chunkwise layer``: build the Lambda layer ``template.yaml`` deploys (``build/layer.zip``).

``chunkwise layer build`` downloads the versions pinned in ``layer/requirements.txt`` as
manylinux wheels for the target (python3.13 arm64 by default), adds the ``engine`` package, trims
what the runtime never loads, strips pyarrow, checks every shared object and writes a
deterministic zip, then prints a size table per package. Exit codes: 0 built within budget,
2 bad usage or an unknown target, 69 a pin has no wheel for the target, 73 over budget (no zip
written), 74 the package index was unreachable, 78 the pins are incomplete or malformed,
70 anything else.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.common import JsonFlag, fail, print_json, run_job

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Build the Lambda layer: the engine and its pinned dependencies, trimmed.",
)



@app.callback()
def layer() -> None:
    """Build the Lambda layer: the engine and its pinned dependencies, trimmed."""


def _limit(text: str, hint: str) -> int | None:
    if text.strip().lower() in ("none", "0", "off"):
        return None
    from engine.config import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from None


def default_pins() -> Path:
    """The installed ``layer/requirements.txt`` (the checkout's own, in a checkout)."""
    from engine import resources

    return Path(str(resources.resource("layer/requirements.txt")))


@app.command()
def build(
    python: Annotated[str, typer.Option(help="Python version of the Lambda runtime.")] = "3.13",
    arch: Annotated[str, typer.Option(help="Lambda architecture: arm64 or x86_64.")] = "arm64",
    glibc: Annotated[str | None, typer.Option(
        help="Newest glibc a wheel may need [default: the runtime's OS: 2.34 on Amazon Linux "
             "2023, 2.26 on Amazon Linux 2].")] = None,
    host: Annotated[bool, typer.Option(
        "--host", help="Build for this machine instead (its Python, architecture and glibc): "
                       "a layer to test locally, not to deploy.")] = False,
    output: Annotated[Path, typer.Option("--output", "-o", help="The zip to write.")]
    = Path("build/layer.zip"),
    requirements: Annotated[Path | None, typer.Option(
        help="The pins [default: layer/requirements.txt].")] = None,
    cache_dir: Annotated[Path | None, typer.Option(
        help="Wheel cache [default: ~/.cache/chunkwise-layer].")] = None,
    strip: Annotated[bool, typer.Option(
        "--strip/--no-strip", help="Strip pyarrow's shared objects (needs binutils for the "
                                   "target, e.g. aarch64-linux-gnu-strip).")] = True,
    bytecode: Annotated[bool, typer.Option(
        "--bytecode/--no-bytecode", help="Ship bytecode of the modules a cold start imports, "
                                         "compiled by a Python of the target's version.")] = True,
    max_unzipped: Annotated[str | None, typer.Option(
        help="Fail above this unzipped size ('none': no limit) [default: 150MiB; none with "
             "--host, whose layer is for tests, not Lambda].")] = None,
    max_zipped: Annotated[str | None, typer.Option(
        help="Fail above this zipped size ('none': no limit) [default: 50MiB; none with "
             "--host].")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Build the layer zip and print its size per package."""
    from engine.layer import LayerTooLargeError, Target, build_layer

    unzipped_limit = _limit(max_unzipped or ("none" if host else "150MiB"), "--max-unzipped")
    zipped_limit = _limit(max_zipped or ("none" if host else "50MiB"), "--max-zipped")

    def job() -> Any:
        target = Target.host() if host else Target.parse(python, arch, glibc)
        print(f"building the layer for {target}", file=sys.stderr)
        try:
            return build_layer(
                target, output, pins_path=requirements or default_pins(), cache_dir=cache_dir,
                strip=strip, bytecode=bytecode, max_unzipped=unzipped_limit,
                max_zipped=zipped_limit, log=lambda message: print(message, file=sys.stderr))
        except LayerTooLargeError as exc:  # the sizes are the point: show them, then fail
            built = getattr(exc, "report", None)
            sizes = built.to_dict() if built is not None else None
            if built is not None and not as_json:
                print(built.table())
            fail(exc, as_json, lambda error: {"status": "failed", "error": error,
                                              **({"report": sizes} if sizes else {})})

    report = run_job(as_json, job)
    if as_json:
        print_json({"status": "built", **report.to_dict()})
        return
    print(report.table())
    print(f"\n{report.output}: {report.unzipped / 2**20:.1f} MiB unzipped, "
          f"{report.zipped / 2**20:.1f} MiB zipped, sha256 {report.sha256}")
    if report.strip.tool is None:
        print(f"note: {report.strip.note}")
    if report.bytecode.python is None:
        print(f"note: {report.bytecode.note}")
    if report.left_out:
        print(f"left out (the Lambda runtime provides them): {', '.join(report.left_out)}")
