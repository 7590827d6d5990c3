"""``chunkwise cost``'s output: the JSON object, the text against the ADRs' criteria, the plot.

The text puts the projection against ADR-007's budget (the template's ``MonthlyBudgetLimit``,
$500 a month, alerting at 80 % and 100 %; revisit above 120 %) and against the revisit criteria
of ADR-001 (state transitions a noticeable share of the budget), ADR-003 (Lambda the largest
line of the bill; the median file past ~1 GB) and ADR-006 (the table's cost noticeable in the
budget). The ADRs give no number for "noticeable": this command reads it as
:data:`NOTICEABLE_SHARE` of the budget and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.cost.model import CostResult

__all__ = ["NOTICEABLE_SHARE", "Criterion", "budget_reached_at", "criteria", "curve", "plot",
           "text", "to_json"]

#: "A noticeable share of the budget" (ADR-001, ADR-006), as this command reads it.
NOTICEABLE_SHARE = 0.10
#: ADR-007's alerts (the AWS Budget's notifications) and its revisit line.
BUDGET_ALERTS = (0.8, 1.0)
BUDGET_REVISIT = 1.2
#: ADR-003: "the median file passes ~1 GB".
MEDIAN_FILE_LIMIT = 10**9

_LABELS = {"lambda": "Lambda", "step_functions": "Step Functions", "s3": "S3 requests",
           "dynamodb": "DynamoDB", "sqs": "SQS", "glue": "Glue catalog",
           "fixed": "fixed (endpoints, KMS, alarms, flow logs)"}


@dataclass(frozen=True)
class Criterion:
    """One revisit criterion of an ADR, against the projection."""

    adr: str
    criterion: str
    value: str
    reached: bool


def criteria(result: CostResult) -> list[Criterion]:
    """The ADRs' criteria (see the module docstring) against ``result``."""
    budget, b = result.budget_usd, result.breakdown
    noticeable = NOTICEABLE_SHARE * budget
    largest = max(b, key=lambda k: b[k])
    median = result.workload.median_bytes
    share = result.monthly_usd / budget if budget else float("inf")
    return [
        Criterion("ADR-007", f"spend over budget by more than {BUDGET_REVISIT - 1:.0%} "
                  f"(alerts at {BUDGET_ALERTS[0]:.0%} and {BUDGET_ALERTS[1]:.0%})",
                  f"${result.monthly_usd:,.2f} = {share:.1%} of ${budget:,.0f}",
                  result.monthly_usd > BUDGET_REVISIT * budget),
        Criterion("ADR-001", f"state transitions a noticeable share of the budget "
                  f"(read as >= {NOTICEABLE_SHARE:.0%}: ${noticeable:,.0f})",
                  f"${b['step_functions']:,.2f}", b["step_functions"] >= noticeable),
        Criterion("ADR-003", "Lambda the largest line of the bill",
                  f"Lambda ${b['lambda']:,.2f}; largest: {_LABELS[largest]}",
                  largest == "lambda" and b["lambda"] > 0),
        Criterion("ADR-003", f"the median file past ~{MEDIAN_FILE_LIMIT / 1e9:g} GB",
                  f"median {median / 1e6:,.1f} MB", median > MEDIAN_FILE_LIMIT),
        Criterion("ADR-006", f"the table's cost noticeable in the budget "
                  f"(read as >= {NOTICEABLE_SHARE:.0%}: ${noticeable:,.0f})",
                  f"${b['dynamodb']:,.2f}", b["dynamodb"] >= noticeable),
    ]


def budget_reached_at(estimate_at: Callable[[float], CostResult], budget_usd: float
                      ) -> float | None:
    """The files per day at which the monthly cost reaches ``budget_usd`` (same size mix).

    The cost is close to linear in the files (the cold share and the flow logs bend it a
    little), so a few secant steps from 0 and 1,000 files a day find it to a cent. ``0.0``
    when the fixed items alone reach it; ``None`` when it is never reached (nothing per file).
    """
    x0, y0 = 0.0, estimate_at(0.0).monthly_usd - budget_usd
    if y0 >= 0:
        return 0.0
    x1, y1 = 1000.0, estimate_at(1000.0).monthly_usd - budget_usd
    for _ in range(20):
        if abs(y1) < 0.005:
            break
        if y1 == y0:
            return None
        x0, y0, x1 = x1, y1, max(0.0, x1 - y1 * (x1 - x0) / (y1 - y0))
        y1 = estimate_at(x1).monthly_usd - budget_usd
    return x1


def to_json(result: CostResult, data: dict[str, Any], sources: dict[str, str],
            reached_at: float | None = None) -> dict[str, Any]:
    """``--json``'s object: the issue's keys, then the workload, counts and criteria.

    ``reached_at``: :func:`budget_reached_at`'s files per day, as ``budget_files_per_day``.
    """
    w = result.workload
    return {
        "monthly_usd": result.monthly_usd,
        "per_file_usd": result.per_file_usd,
        "breakdown": dict(result.breakdown),
        "budget_usd": result.budget_usd,
        "within_budget": result.within_budget,
        "budget_files_per_day": reached_at,
        "workload": {"files_per_day": w.files_per_day, "files_per_month": w.files_per_month,
                     "size_mix": [{"bytes": s, "weight": x} for s, x in w.size_mix],
                     "format": w.format, "contract": w.contract,
                     "failure_rate": w.failure_rate},
        "per_file": result.per_file,
        "fixed": result.fixed,
        "criteria": [asdict(c) for c in criteria(result)],
        "measured": {"date": data.get("measured"), "command": data.get("command"),
                     "stack": data.get("stack")},
        "sources": sources,
    }


def text(result: CostResult, data: dict[str, Any], reached_at: float | None = None) -> str:
    """The summary ``chunkwise cost`` prints without ``--json``.

    ``reached_at``: :func:`budget_reached_at`'s files per day, said after the budget.
    """
    w, b = result.workload, result.breakdown
    mix = ", ".join(f"{s / 1e6:g} MB × {x:g}" for s, x in w.size_mix)
    lines = [
        f"{w.files_per_day:,.0f} files a day ({w.files_per_month:,.0f} a month), sizes {mix}, "
        f"{w.format}, contract {w.contract}, {w.failure_rate:.1%} failing",
        "",
    ]
    for key, value in b.items():
        share = value / result.monthly_usd if result.monthly_usd else 0.0
        lines.append(f"  {_LABELS[key]:<44} ${value:>12,.2f}  {share:>6.1%}")
    lines += [
        f"  {'total a month':<44} ${result.monthly_usd:>12,.2f}",
        f"  {'per file (without the fixed items)':<44} ${result.per_file_usd:>12.8f}",
        "",
        f"budget (ADR-007): ${result.budget_usd:,.0f} a month: "
        + ("within" if result.within_budget else "OVER") + _reached(reached_at),
    ]
    for c in criteria(result):
        mark = "REVISIT" if c.reached else "ok"
        lines.append(f"  [{mark:>7}] {c.adr}: {c.criterion}: {c.value}")
    lines.append(f"measured {data.get('measured')} by `{data.get('command')}` on the local "
                 "pipeline; prices and what is left out: docs/cost.md")
    return "\n".join(lines)


def _reached(files_per_day: float | None) -> str:
    if files_per_day is None:
        return ""
    if files_per_day == 0:
        return " (the fixed items alone reach it)"
    return f" (reached at about {files_per_day:,.0f} files a day of these sizes)"


def curve(estimate_at: Callable[[float], CostResult], files_per_day: float,
          points: int = 41) -> list[tuple[float, float]]:
    """``(files per day, monthly USD)`` from 1/100 to 100 times ``files_per_day``, log-spaced."""
    centre = max(files_per_day, 1.0)
    xs = [centre * 10 ** (-2 + 4 * i / (points - 1)) for i in range(points)]
    return [(x, estimate_at(x).monthly_usd) for x in xs]


def plot(series: Sequence[tuple[float, float]], result: CostResult, path: Path) -> None:
    """A PNG of monthly cost against files per day, with the budget line and the workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    xs, ys = zip(*series, strict=True)
    ax.plot(xs, ys, label="projected monthly cost")
    ax.axhline(result.budget_usd, color="red", linestyle="--",
               label=f"budget (ADR-007) ${result.budget_usd:,.0f}")
    ax.scatter([result.workload.files_per_day], [result.monthly_usd], color="black", zorder=3,
               label=f"this workload: ${result.monthly_usd:,.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("files per day")
    ax.set_ylabel("USD per month")
    w = result.workload
    ax.set_title(f"chunkwise pipeline, contract {w.contract}, {w.format}, "
                 f"median file {w.median_bytes / 1e6:g} MB")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
