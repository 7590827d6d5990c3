"""``chunkwise cost``: the pipeline's monthly bill for a workload, from measured per-file figures.

``chunkwise cost --files-per-day 5000 --size-mix 1MB:70,50MB:25,400MB:5`` prices the workload
from ``profiles/cost.json`` (shipped in the package) and prints each line of the bill against
ADR-007's budget and the revisit criteria of ADR-001, ADR-003 and ADR-006; ``--json`` prints
``{"monthly_usd", "per_file_usd", "breakdown": {...}, "budget_usd", "within_budget", ...}``,
``--plot FILE.png`` draws the monthly cost against files per day with the budget line.
``chunkwise cost --measure`` (in a checkout: it reads ``template.yaml`` and ``profiles/``) runs
the local pipeline once per route and writes that file again (:mod:`engine.cost.measure`).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.common import JsonFlag, choice, print_json, run_job

__all__ = ["cost", "parse_size_mix"]


def parse_size_mix(text: str) -> tuple[tuple[int, float], ...]:
    """``SIZE[:WEIGHT],...`` (``1MB:70,50MB:25,400MB:5``) as ``((bytes, weight), ...)``.

    Example:
        >>> parse_size_mix("1MB:70, 2GB:5")
        ((1000000, 70.0), (2000000000, 5.0))
        >>> parse_size_mix("10MB")
        ((10000000, 1.0),)

    """
    from engine.config import parse_size

    mix = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        size, _, weight = item.partition(":")
        try:
            entry = (parse_size(size.strip()), float(weight) if weight.strip() else 1.0)
        except ValueError as exc:
            raise typer.BadParameter(f"{item!r}: {exc}", param_hint="--size-mix") from None
        if entry[0] <= 0 or entry[1] < 0:
            raise typer.BadParameter(f"{item!r}: a size above 0 and a weight of 0 or more",
                                     param_hint="--size-mix")
        mix.append(entry)
    if not mix or sum(w for _, w in mix) <= 0:
        raise typer.BadParameter("no size with a weight above 0", param_hint="--size-mix")
    return tuple(mix)


def _load(profile: Path | None) -> dict[str, Any]:
    if profile is not None:
        return json.loads(profile.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    from engine.resources import resource

    return json.loads(resource("profiles/cost.json").read_text("utf-8"))  # type: ignore[no-any-return]


def _contract_set(contract: str, data: dict[str, Any]) -> str:
    """The measured contract set ``contract`` names: a set's name, or its contract's file.

    A file is a set's when its text is the set's contract (``contracts/orders.yaml`` is
    ``orders``); any other file has not been measured: a :class:`UsageError` says so.
    """
    if contract in data["contracts"]:
        return contract
    path = Path(contract)
    if not path.is_file():
        return contract  # the model's UsageError lists the measured sets
    from engine.errors import UsageError
    from engine.resources import resource

    text = path.read_bytes()
    for name, entry in data["contracts"].items():
        if entry.get("contract") and resource(entry["contract"]).read_bytes() == text:
            return name
    raise UsageError(f"the cost profile measured the example contracts only "
                     f"({', '.join(sorted(data['contracts']))}); price the nearest of them "
                     "(a file-wide contract: orders; one that splits large files: none)",
                     uri=contract)


def _measure(template: Path, profiles: Path, out: Path, as_json: bool) -> dict[str, Any]:
    from engine.cost.measure import measure
    from engine.errors import InputNotFoundError

    for path in (template, profiles):
        if not path.exists():
            raise InputNotFoundError("not found: run --measure in a checkout (or give "
                                     "--template)", uri=str(path))

    def say(message: str) -> None:
        if not as_json:
            print(message, file=sys.stderr)

    # the handlers log to stdout, as on Lambda; here stdout is this command's output
    with contextlib.redirect_stdout(io.StringIO()):
        data = measure(template, profiles, say=say)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return data


def cost(
    files_per_day: Annotated[float | None, typer.Option(
        "--files-per-day", min=0, help="Files landing per day, steadily.")] = None,
    size_mix: Annotated[str, typer.Option(
        "--size-mix", help="File sizes and their weights: SIZE[:WEIGHT],... e.g. "
        "1MB:70,50MB:25,400MB:5.")] = "10MB",
    fmt: Annotated[str, typer.Option(
        "--format", click_type=choice(["csv", "ndjson", "json"]),
        help="The files' format (the sizing profile's CPU per byte).")] = "csv",
    contract: Annotated[str, typer.Option(
        "--contract", help="The measured contract set: orders (contracts/orders.yaml, "
        "file-wide, never split; the file is accepted too) or none (no contract).")
    ] = "orders",
    failure_rate: Annotated[float, typer.Option(
        "--failure-rate", min=0, max=1,
        help="Share of the files that fail for good (the failure route, the DLQ).")] = 0.0,
    budget: Annotated[float | None, typer.Option(
        "--budget", min=0, help="Monthly budget in USD [default: the template's "
        "MonthlyBudgetLimit, ADR-007's $500].")] = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Write a PNG of monthly cost against files per day, with the budget.",
        dir_okay=False)] = None,
    profile: Annotated[Path | None, typer.Option(
        "--profile", help="The measured counts [default: the packaged profiles/cost.json]; "
        "with --measure, where to write them [default: profiles/cost.json].",
        dir_okay=False)] = None,
    measure: Annotated[bool, typer.Option(
        "--measure", help="Measure the per-file counts on the local pipeline (moto) and write "
        "them; reads --template and the sizing profiles in profiles/ beside it.")] = False,
    template: Annotated[Path, typer.Option(
        "--template", help="With --measure: the SAM template.")] = Path("template.yaml"),
    as_json: JsonFlag = False,
) -> None:
    """The monthly cost of the pipeline for a workload, from measured per-file figures."""
    if measure:
        out = profile or template.parent / "profiles" / "cost.json"
        data = run_job(as_json, lambda: _measure(template, template.parent / "profiles", out,
                                                 as_json))
        if as_json:
            print_json({"status": "measured", "profile": str(out), "seconds": data["seconds"],
                        "contracts": sorted(data["contracts"])})
        else:
            typer.echo(f"wrote {out} ({data['seconds']:g} s)")
        return
    if files_per_day is None:
        raise typer.BadParameter("give the files per day (or --measure)",
                                 param_hint="--files-per-day")
    mix = parse_size_mix(size_mix)

    def job() -> tuple[Any, dict[str, Any], dict[str, str], float | None]:
        from engine.cost.model import Workload, estimate
        from engine.cost.prices import load_cost_prices

        data = _load(profile)
        prices = load_cost_prices(data["stack"]["architecture"])
        workload = Workload(files_per_day, mix, fmt.lower(), _contract_set(contract, data),
                            failure_rate)
        result = estimate(data, workload, prices, budget_usd=budget)

        def at(n: float) -> Any:
            return estimate(data, replace(workload, files_per_day=n), prices, budget_usd=budget)

        reached_at = report.budget_reached_at(at, result.budget_usd)
        if plot is not None:
            report.plot(report.curve(at, files_per_day), result, plot)
        return result, data, prices.sources(), reached_at

    from dataclasses import replace

    from engine.cost import report

    result, data, sources, reached_at = run_job(as_json, job)
    if as_json:
        print_json(report.to_json(result, data, sources, reached_at))
    else:
        typer.echo(report.text(result, data, reached_at))
        if plot is not None:
            typer.echo(f"plot: {plot}")
