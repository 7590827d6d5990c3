"""``chunkwise profile`` and ``chunkwise size``, registered on the app by :mod:`engine.cli.app`.

Heavy imports (pyarrow, matplotlib, boto3, memory-profiler) happen inside the commands. Results
go to the user's cache (:func:`default_out_dir`) unless ``--out-dir`` names a folder (the
repository's committed results: ``--out-dir profiles``); each command says where it wrote them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.common import JsonFlag, checked_options, choice, print_json, run_job, size_option
from engine.config import FORMATS, TEXT_FORMATS
from engine.errors import EngineError

__all__ = ["default_out_dir", "profile", "size"]

Arch = Annotated[str, typer.Option("--arch", help="Lambda architecture whose prices apply: "
                                   "arm64 or x86_64.")]
Headroom = Annotated[float, typer.Option(help="Share added on top of the measured peak RSS.")]
Overhead = Annotated[float, typer.Option("--overhead-mb", help="Memory Lambda counts beyond "
                                         "the measured process (an estimate).")]
OutDir = Annotated[Path | None, typer.Option(
    "--out-dir", help="Where results are written [default: $XDG_CACHE_HOME/chunkwise/profiles, "
                      "else ~/.cache/chunkwise/profiles]; the repository's: --out-dir profiles")]


def default_out_dir() -> Path:
    """Where ``profile`` and ``size`` write without ``--out-dir``: a folder of the user's cache.

    Example:
        >>> default_out_dir().parts[-2:]
        ('chunkwise', 'profiles')

    """
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache, "chunkwise", "profiles")


class MissingExtraError(EngineError):
    """An optional dependency group (an extra of the package) is not installed."""

    exit_code = 69  # EX_UNAVAILABLE


#: The Python profilers ``profile --python-profile`` runs.
_PROFILERS = ("pyinstrument", "cprofile")

#: What ``profile`` and ``size`` import, from the ``sizing`` extra.
_SIZING_MODULES = ("psutil", "memory_profiler", "matplotlib", "ruamel.yaml", "tomlkit")


def _need_sizing_extra() -> None:
    """Fail with a typed error (exit 69) when the ``sizing`` extra is not installed."""
    import importlib.util

    missing = [m for m in _SIZING_MODULES if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        raise MissingExtraError(f"this command needs the sizing extra ({', '.join(missing)} "
                                "missing): pip install 'chunkwise[sizing]'")


def _csv(text: str, convert: Any, hint: str) -> list[Any]:
    try:
        values = [convert(part.strip()) for part in text.split(",") if part.strip()]
    except (ValueError, typer.BadParameter) as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from None
    if not values:
        raise typer.BadParameter("give at least one value", param_hint=hint)
    return values


def _params(headroom: float, overhead_mb: float, timeout: float = 900.0,
            timeout_margin: float = 0.5, s3_mbps: float = 90.0, **lifecycle: Any) -> Any:
    """The model's assumptions; ``lifecycle``: the cold-start fields of ``ModelParams``."""
    from engine.sizing.model import ModelParams

    if headroom < 0 or overhead_mb < 0 or timeout <= 0 or not 0 <= timeout_margin < 1 \
            or s3_mbps <= 0:
        raise typer.BadParameter("headroom, overhead and margin must be >= 0 (margin < 1); "
                                 "timeout and S3 throughput > 0")
    share = lifecycle.get("cold_share")
    if share is not None and not 0 <= share <= 1:
        raise typer.BadParameter("must be from 0 to 1", param_hint="--cold-share")
    for name in ("init_vcpu_share", "files_per_minute", "idle_minutes", "lifetime_minutes"):
        value = lifecycle.get(name)
        if value is not None and value <= 0:
            raise typer.BadParameter("must be > 0", param_hint="--" + name.replace("_", "-"))
    return ModelParams(headroom=headroom, overhead_mb=overhead_mb, timeout_s=timeout,
                       timeout_margin=timeout_margin, s3_mb_per_s=s3_mbps,
                       **{k: v for k, v in lifecycle.items() if v is not None})


def profile(
    file: Annotated[str, typer.Argument(help="Input file (local path or s3:// URI).")],
    contract: Annotated[str | None, typer.Option(help="Dataset contract (YAML).")] = None,
    name: Annotated[str | None, typer.Option(help="Result name [default: the file's stem]")]
    = None,
    out_dir: OutDir = None,
    threads: Annotated[int | None, typer.Option(help="Threads [default: the engine's]")] = None,
    block_size: Annotated[str | None, typer.Option(help="Bytes per chunk [default: 4MiB]")]
    = None,
    fmt: Annotated[str | None, typer.Option("--format", click_type=choice(FORMATS),
                                            help="Input format [default: detected]")] = None,
    json_path: Annotated[str | None, typer.Option(help="ijson prefix of the array")] = None,
    python_profile: Annotated[bool, typer.Option("--python-profile", help="Also profile the "
                                                 "Python hot path (pyinstrument)")] = False,
    profiler: Annotated[str, typer.Option(click_type=choice(_PROFILERS),
                                          help="Python profiler of --python-profile")]
    = "pyinstrument",
    arch: Arch = "arm64",
    headroom: Headroom = 0.25,
    overhead_mb: Overhead = 30.0,
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Write the PNG")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Profile one conversion: peak RSS, RSS timeline, time per stage, smallest Lambda that fits.

    Writes OUT_DIR/NAME.json and OUT_DIR/NAME.png (RSS over time with the stages below).
    """
    out_dir = out_dir or default_out_dir()
    block = size_option(block_size) if block_size else None
    options = {k: v for k, v in {"format": fmt, "json_path": json_path}.items() if v}
    params = _params(headroom, overhead_mb)

    def job() -> dict[str, Any]:
        _need_sizing_extra()
        from engine.sizing.model import load_prices
        from engine.sizing.profile import run_profile

        checked_options({k: v for k, v in {"threads": threads, "block_size": block, **options}
                         .items() if v is not None})

        return run_profile(file, out_dir=out_dir, name=name, contract=contract,
                           threads=threads, block_size=block, options=options,
                           python_profile=profiler if python_profile else None,
                           prices=load_prices(arch), params=params, plot=plot)

    result = run_job(as_json, job)
    if as_json:
        print_json({**{k: v for k, v in result.items() if k not in ("timeline", "spans")},
                    "outputs": _profile_outputs(result, out_dir)})
        return
    _profile_summary(result, out_dir)


def _profile_outputs(p: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """The files ``profile`` wrote, by kind."""
    paths = {"json": out_dir / f"{p['name']}.json", "png": out_dir / f"{p['name']}.png"}
    outputs = {kind: str(path) for kind, path in paths.items() if path.exists()}
    if p["python_profile"]:
        outputs["python_profile"] = str(p["python_profile"])
    return outputs


def _profile_summary(p: dict[str, Any], out_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{p['name']}[/]: {p['size_mb']:.1f} MB {p['format']}, "
                  f"{p['rows_in']:,} rows in, {p['rows_out']:,} out, threads {p['threads']}")
    console.print(f"wall {p['wall_s']:.2f} s ({p['mb_per_s']} MB/s; start-up "
                  f"{p['import_s']:.2f} s, conversion {p['convert_s']:.2f} s = "
                  f"{p['mb_per_s_excl_startup']} MB/s), CPU {p['cpu_s']:.2f} s (start-up "
                  f"{p['init_cpu_s']:.2f}, conversion {p['convert_cpu_s']:.2f})")
    console.print(f"peak RSS {p['peak_rss_mib']:.0f} MiB (kernel), Arrow pool peak "
                  f"{p['arrow_peak_mib']:.0f} MiB")
    table = Table("stage", "wall s", "CPU s", "CPU share")
    total = sum(s["cpu_s"] for s in p["stages"].values()) or 1.0
    for stage, t in p["stages"].items():
        table.add_row(stage, f"{t['wall_s']:.3f}", f"{t['cpu_s']:.3f}",
                      f"{t['cpu_s'] / total:.0%}")
    console.print(table)
    if p["fits_mb"]:
        console.print(f"smallest Lambda memory that fits: [bold]{p['fits_mb']} MB[/] (needs "
                      f"{p['fits_needs_mb']} MB with headroom; predicted {p['fits_duration_s']} s"
                      f" warm, {p['fits_cold_duration_s']} s cold, ${p['fits_cost']:.7f} per "
                      f"file warm on {p['prices']['architecture']})")
    else:
        console.print("[red]no Lambda memory setting fits this run[/]")
    console.print(f"wrote {', '.join(_profile_outputs(p, out_dir).values())}", soft_wrap=True)


def size(
    formats: Annotated[str, typer.Option(help=f"Formats to sweep, of {', '.join(TEXT_FORMATS)}")]
    = ",".join(TEXT_FORMATS),
    sizes: Annotated[str, typer.Option(help="Input sizes to sweep")] = "1MB,10MB,100MB,500MB",
    block_sizes: Annotated[str, typer.Option(help="Block sizes to sweep")] = "1MiB,4MiB",
    threads: Annotated[str, typer.Option(help="Thread counts to sweep (Lambda uses 1 below "
                                         "1,769 MB, 2 from there)")] = "1,2",
    contract: Annotated[str | None, typer.Option(help="Dataset contract (YAML) every run "
                                                 "applies (its format is overridden)")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated inputs")] = 0,
    io: Annotated[str, typer.Option("--io", click_type=choice(("local", "s3")),
                                    help="local files, or s3 on a loopback moto server (the "
                                    "SDK and part buffers in the measurement, as on Lambda)")]
    = "local",
    data_dir: Annotated[Path | None, typer.Option(help="Cache of generated inputs [default: "
                                                  "$CHUNKWISE_DATA or ~/.cache/chunkwise/data]")]
    = None,
    out_dir: OutDir = None,
    name: Annotated[str, typer.Option(help="Result name (NAME.json, .md, .png)")] = "sizing",
    memory: Annotated[str | None, typer.Option(help="Memory settings (MB) to consider; with "
                                               "--function-name, the ones to try")] = None,
    arch: Arch = "arm64",
    gb_second_price: Annotated[float | None, typer.Option(help="Override: USD per GB-second")]
    = None,
    request_price: Annotated[float | None, typer.Option(help="Override: USD per request")]
    = None,
    prices_file: Annotated[str | None, typer.Option("--prices", help="Prices JSON (the "
                                                    "bundled prices.json's shape)")] = None,
    headroom: Headroom = 0.25,
    overhead_mb: Overhead = 30.0,
    timeout: Annotated[float, typer.Option(help="Function timeout, s")] = 900.0,
    timeout_margin: Annotated[float, typer.Option(help="Share of the timeout kept free")] = 0.5,
    s3_mbps: Annotated[float, typer.Option(help="Assumed S3 MB/s for the I/O time")] = 90.0,
    cold_share: Annotated[float | None, typer.Option(
        help="Share of invocations that are cold, 0 to 1 [default: estimated from "
             "--files-per-minute, --idle-minutes and --lifetime-minutes]")] = None,
    files_per_minute: Annotated[float, typer.Option(
        help="Files arriving per minute, steadily, for the cold share")] = 100.0,
    idle_minutes: Annotated[float, typer.Option(
        help="How long Lambda keeps an idle environment (an estimate: AWS publishes none)")]
    = 5.0,
    lifetime_minutes: Annotated[float, typer.Option(
        help="How often Lambda replaces a busy environment (AWS: every few hours)")] = 120.0,
    init_vcpu_share: Annotated[float | None, typer.Option(
        help="vCPUs the INIT phase runs on [default: memory / 1769, at most 1, the documented "
             "rule; 1 models the burst others report]")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Rerun the largest input under a "
                                         "hard cap at the recommendation")] = False,
    apply: Annotated[bool, typer.Option("--apply", help="Write the chosen memory into the "
                                        "template and samconfig")] = False,
    template: Annotated[Path, typer.Option(help="SAM template for --apply")]
    = Path("template.yaml"),
    samconfig: Annotated[Path, typer.Option(help="samconfig.toml for --apply")]
    = Path("samconfig.toml"),
    function_name: Annotated[str | None, typer.Option(help="Measure this deployed function "
                                                      "on AWS instead (Power Tuning's way)")]
    = None,
    payload: Annotated[Path | None, typer.Option(help="Event JSON for --function-name")] = None,
    invocations: Annotated[int, typer.Option(help="Invocations per memory setting")] = 5,
    as_json: JsonFlag = False,
) -> None:
    """Choose the Lambda memory from measurements: sweep, fit, model cost, recommend.

    Locally: every (format, size, block size, threads) case runs in a measured child process
    as a Lambda environment lives: INIT (the handler's import), a cold conversion, a warm one;
    warm and cold invocations are priced apart and blended at the cold share. Writes
    OUT_DIR/NAME.json, .md and .png. With --function-name: invokes the deployed function at
    each --memory (needs AWS credentials) and restores its setting.
    """
    params = _params(headroom, overhead_mb, timeout, timeout_margin, s3_mbps,
                     cold_share=cold_share, files_per_minute=files_per_minute,
                     idle_minutes=idle_minutes, lifetime_minutes=lifetime_minutes,
                     init_vcpu_share=init_vcpu_share)
    out_dir = out_dir or default_out_dir()
    from engine.config import parse_size

    memories = _csv(memory, int, "--memory") if memory else None
    if function_name is not None:
        if payload is None or memories is None:
            raise typer.BadParameter("--function-name needs --payload and --memory")
        run_job(as_json, lambda: _remote(function_name, memories, payload, invocations, arch,
                                      gb_second_price, request_price, prices_file, params,
                                      out_dir, name, as_json))
        return
    fmts = _csv(formats, str, "--formats")
    if bad := [f for f in fmts if f not in TEXT_FORMATS]:
        raise typer.BadParameter(f"unknown format(s) {bad}; use {', '.join(TEXT_FORMATS)}",
                                 param_hint="--formats")

    def job() -> Any:
        _need_sizing_extra()
        from engine.sizing.model import DEFAULT_MEMORY_SETTINGS, load_prices
        from engine.sizing.report import write_outputs
        from engine.sizing.sweep import SweepConfig, default_data_dir, run_sweep
        from engine.sizing.sweep import verify as run_verify

        swept = {"block_sizes": _csv(block_sizes, parse_size, "--block-sizes"),
                 "threads": _csv(threads, int, "--threads")}
        for block in swept["block_sizes"]:
            checked_options({"block_size": block}, {"block_size": "--block-sizes"})
        for count in swept["threads"]:
            checked_options({"threads": count})
        cfg = SweepConfig(
            formats=fmts, sizes=_csv(sizes, parse_size, "--sizes"),
            block_sizes=swept["block_sizes"], threads=swept["threads"], contract=contract,
            seed=seed,
            data_dir=data_dir or default_data_dir(), out_dir=out_dir, name=name,
            memory_settings=memories or DEFAULT_MEMORY_SETTINGS, params=params, io=io,
        )
        prices = load_prices(arch, gb_second=gb_second_price, request=request_price,
                             path=prices_file)
        say = (lambda _m: None) if as_json else (lambda m: typer.echo(m, err=True))
        result = run_sweep(cfg, prices, progress=say)
        if verify and result.chosen_mb is not None:
            result.verify = run_verify(result, cfg, result.chosen_mb, progress=say)
        paths = write_outputs(result, cfg)
        applied = []
        if apply:
            from engine.sizing.apply import apply_memory

            if result.chosen_mb is None:
                from engine.errors import PermanentError

                raise PermanentError("no memory setting fits: nothing to apply")
            if result.verify and not all(v["passed"] for v in result.verify):
                from engine.errors import PermanentError

                raise PermanentError(f"--verify failed at {result.chosen_mb} MB: not applied")
            applied = apply_memory(result.chosen_mb, template, samconfig)
        return result, paths, applied

    result, paths, applied = run_job(as_json, job)
    failed_verify = any(not v["passed"] for v in result.verify)
    if as_json:
        print_json({
            "status": "failed" if failed_verify else "succeeded",
            "chosen_memory_mb": result.chosen_mb,
            "recommendations": [{k: v for k, v in r.to_dict().items() if k != "candidates"}
                                for r in result.recommendations],
            "fits": result.fits, "flags": result.flags, "verify": result.verify,
            "applied": [vars(a) for a in applied],
            "outputs": {k: str(v) for k, v in paths.items()},
            "seconds": round(result.seconds, 1)})
    else:
        typer.echo(paths["md"].read_text().split("## Fits")[0].rstrip())
        for a in applied:
            typer.echo(f"{a.path} {a.where}: {a.before} -> {a.after}"
                       + ("" if a.changed else " (unchanged)"))
        typer.echo(f"wrote {', '.join(str(p) for p in paths.values())}")
    if failed_verify:
        raise typer.Exit(1)


def _remote(function_name: str, memories: list[int], payload: Path, invocations: int,
            arch: str, gb_second: float | None, request: float | None, prices_file: str | None,
            params: Any, out_dir: Path, name: str, as_json: bool) -> None:
    import boto3

    from engine.errors import InputNotFoundError
    from engine.sizing.model import load_prices
    from engine.sizing.remote import run_remote

    if not payload.exists():
        raise InputNotFoundError(f"no such payload file: {payload}", uri=str(payload))
    result = run_remote(boto3.client("lambda"), function_name, memories, payload.read_bytes(),
                        invocations=invocations, prices=load_prices(
                            arch, gb_second=gb_second, request=request, path=prices_file),
                        params=params)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-remote.json"
    path.write_text(json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
    from engine.sizing.report import remote_markdown

    (out_dir / f"{name}-remote.md").write_text(remote_markdown(result), encoding="utf-8")
    if as_json:
        print_json({**result.to_dict(), "outputs": {
            "json": str(path), "md": str(path.with_suffix(".md"))}})
        return
    for r in result.runs:
        typer.echo(f"{r.memory_mb:>6} MB: {r.duration_ms:9.1f} ms (billed {r.billed_ms:.0f}), "
                   f"max used {r.max_memory_used_mb} MB, ${r.cost:.7f}"
                   + ("" if r.fits else "  does not fit"))
    typer.echo(f"cheapest that fits: {result.memory_mb or 'none'} MB "
               f"(restored {result.original_memory_mb} MB); wrote {path} and "
               f"{path.with_suffix('.md')}")
