"""The results of ``chunkwise size`` and ``chunkwise profile`` as Markdown, JSON and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import MiB
from engine.sizing.model import INIT_BILLING_SOURCE, INIT_LIMIT_S

if TYPE_CHECKING:
    from engine.sizing.remote import RemoteResult
    from engine.sizing.sweep import SweepConfig, SweepResult

__all__ = ["cold_share_text", "remote_markdown", "sweep_markdown", "table", "write_outputs"]


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _usd(x: float | None) -> str:
    return "-" if x is None else f"${x:.7f}"


def _per_1000(x: float | None) -> str:
    return "-" if x is None else f"${x * 1000:.5f}"


def _pct(x: float | None) -> str:
    """A share as a percentage with two significant digits below 10 %."""
    if x is None:
        return "-"
    pct = x * 100
    return f"{pct:.0f} %" if pct >= 10 else f"{pct:.2g} %"


def _or_dash(x: Any) -> Any:
    return "-" if x is None else x


def _mib(n: int | None) -> Any:
    return "-" if n is None else round(n / MiB, 1)


def cold_share_text(params: dict[str, Any]) -> str:
    """Where the cold share comes from, in a sentence (``params``: the model's, as a dict)."""
    if params.get("cold_share") is not None:
        return f"given: {_pct(params['cold_share'])} of invocations (`--cold-share`)"
    return (f"estimated for {params['files_per_minute']:g} files a minute arriving steadily, "
            f"idle environments kept {params['idle_minutes']:g} min and busy ones replaced "
            f"every {params['lifetime_minutes']:g} min (estimates: AWS publishes neither; "
            "bursts start more environments: measure the deployed function's share and give "
            "it with `--cold-share`)")


def _init_share_text(params: dict[str, Any]) -> str:
    share = params.get("init_vcpu_share")
    return ("min(memory / 1769, 1), the documented proportional rule (AWS documents no INIT "
            "share of its own)" if share is None else f"{share:g} vCPU (`--init-vcpu-share`)")


def sweep_markdown(result: SweepResult) -> str:
    """The sweep as a markdown page: recommendation, fits, candidates, measurements."""
    cfg, mach, p = result.config, result.machine, result.prices
    params = cfg["params"]
    recs = result.recommendations
    out = [
        "# Lambda memory sizing (`chunkwise size`)\n",
        f"Measured {mach['date']} on {mach['machine']} ({mach['cpu'] or 'unknown CPU'}, "
        f"{mach['cores']} cores), Python {mach['python']}, pyarrow {mach['pyarrow']}; "
        f"{len(result.measurements)} runs in {result.seconds:.0f} s, I/O "
        f"{cfg.get('io', 'local')}. Contract: "
        f"`{cfg['contract'] or 'none'}`.\n",
        f"Prices: {p.architecture} {p.region}, ${p.gb_second}/GB-s + ${p.request}/request "
        f"(recorded {p.recorded}; {p.source}).\n",
        "Model: each run lives as a Lambda execution environment does: INIT (the transform "
        "handler's import), a cold conversion of the file, a warm-up conversion of another file, "
        "a warm conversion of the file. A warm invocation lasts warm CPU s / min(memory / 1769, "
        f"threads) + S3 bytes / {params['s3_mb_per_s']:g} MB/s; a cold one adds INIT, INIT CPU "
        f"s / {_init_share_text(params)}, billed like the invocation ({INIT_BILLING_SOURCE}), "
        "and what the first call loads. Fits when the larger of the cold and warm peak RSS x "
        f"{1 + params['headroom']:.2f} + {params['overhead_mb']:g} MB runtime overhead <= "
        f"memory, both invocations <= {params['timeout_s']:g} s x "
        f"{1 - params['timeout_margin']:.2f} and INIT <= {INIT_LIMIT_S:g} s. One thread below "
        "1,769 MB, two from there.\n",
        f"Cold share: {cold_share_text(params)}.\n",
        "## Recommendation\n",
        table(["band", "memory MB", "warm s", "cold s", "cold share", "warm / 1,000 files",
               "cold / 1,000 files", "blended / 1,000 files", "cold starts' part", "needs MB",
               "worst format"],
              [[r.band, r.memory_mb or "none fits", r.duration_s, r.cold_duration_s,
                _pct(r.cold_share), _per_1000(r.warm_cost), _per_1000(r.cold_cost),
                _per_1000(r.cost), _pct(r.cold_cost_share), r.required_mb,
                r.worst_format or "-"] for r in recs]),
    ]
    chosen = [r for r in recs if r.memory_mb is not None]
    if chosen:
        out.append("\nAt the cold share above, cold starts are "
                   + ", ".join(f"{_pct(r.cold_cost_share)} of the {r.band} band's cost"
                               for r in chosen) + ".\n")
    out.append(f"\nThe transform function's `TransformMemorySize`: **{result.chosen_mb} MB** "
               "(the largest band's; `chunkwise size --apply` writes it into `template.yaml` "
               "and `samconfig.toml`).\n")
    if result.flags:
        out.append("\n**Flags:** " + "; ".join(result.flags) + "\n")
    out += [
        "\n## Fits (default block size)\n",
        "RSS slope: peak RSS (the process's: the larger of the cold and warm peaks; then each "
        "path's own) against "
        f"input size over inputs of at least {cfg['tail_min_bytes'] / 1e6:g} MB (below that the "
        "bounded buffers are still filling); flagged at "
        f"{cfg['max_slope_mb_per_100mb']:g} MB per 100 MB. CPU: the warm conversion's per GB; "
        "INIT's and the first call's extra (cold minus warm conversion), medians.\n\n",
        table(["format", "threads", "RSS slope MB/100 MB", "cold path", "warm path",
               "(all sizes)", "max RSS MiB", "RSS MiB per block MiB", "warm CPU s/GB",
               "INIT CPU s", "first call CPU s", "INIT peak MiB", "grows"],
              [[f["format"], f["threads"], _or_dash(f["rss_slope_mb_per_100mb"]),
                _or_dash(f.get("rss_slope_cold_mb_per_100mb")),
                _or_dash(f.get("rss_slope_warm_mb_per_100mb")),
                f["rss_slope_all_sizes_mb_per_100mb"], f["rss_max_mib"],
                "-" if f["rss_mib_per_block_mib"] is None else f["rss_mib_per_block_mib"],
                f["cpu_s_per_gb"], f["init_cpu_s"], f["first_call_cpu_s"], f["init_peak_mib"],
                "yes" if f["grows"] else "no"]
               for f in result.fits]),
    ]
    if result.verify:
        out += ["\n## Verify (the largest input, cold then warm, under a hard cap, as Lambda "
                "kills)\n\n",
                table(["format", "MB", "memory MB", "cap MiB", "threads", "cold peak MiB",
                       "warm peak MiB", "cold path", "warm path"],
                      [[v["format"], v["size_bytes"] / 1e6, v["memory_mb"], v["cap_mib"],
                        v["threads"], v["cold_peak_mib"], v["warm_peak_mib"],
                        "pass" if v["cold_passed"] else "FAIL (killed)",
                        "pass" if v["warm_passed"] else "FAIL (killed)"]
                       for v in result.verify])]
    last = recs[-1] if recs else None
    if last is not None:
        out += [f"\n## Every setting, band {last.band}\n\n",
                table(["memory MB", "threads", "warm s", "cold s", "INIT s", "warm / invocation",
                       "cold / invocation", "cold share", "blended / invocation", "needs MB",
                       "fits"],
                      [[c["memory_mb"], c["threads"], c["duration_s"], c["cold_duration_s"],
                        c["init_s"], _usd(c["warm_cost"]), _usd(c["cold_cost"]),
                        _pct(c["cold_share"]), _usd(c["cost"]), c["required_mb"],
                        "yes" if c["fits"] else ("memory" if not c["fits_memory"] else "time")]
                       for c in last.candidates])]
    out += ["\n## Measurements\n\n",
            "CPU seconds per phase (INIT: interpreter start and handler import; the process's "
            "total also holds the warm-up), peak RSS per phase (warm: above its baseline at "
            "the start of the warm conversion).\n\n",
            table(["format", "MB", "block MiB", "threads", "INIT CPU s", "cold CPU s",
                   "warm CPU s", "process CPU s", "INIT peak MiB", "cold peak MiB",
                   "warm baseline MiB", "warm peak MiB", "Arrow peak MiB", "warm wall s",
                   "rows"],
                  [[m.format, m.size_bytes / 1e6, m.block_size // MiB, m.threads,
                    m.init_cpu_s, m.cold_cpu_s, m.warm_cpu_s, m.cpu_s,
                    _mib(m.init_peak_rss_bytes), _mib(m.cold_peak_rss_bytes),
                    _mib(m.warm_baseline_rss_bytes), _mib(m.warm_peak_rss_bytes),
                    round(m.report.get("arrow_peak_bytes", 0) / MiB, 1), m.warm_wall_s,
                    m.report.get("rows_in", "-")] for m in result.measurements])]
    out.append("\nReproduce: `chunkwise size` with the options in `config` of the JSON file "
               "next to this one.\n")
    return "".join(out)


def remote_markdown(result: RemoteResult) -> str:
    """A deployed function measured at each memory (``chunkwise size --function-name``)."""
    p, params = result.prices, result.params
    rows = [[r.memory_mb, len(r.reports), r.kept, round(r.duration_ms, 1), round(r.billed_ms, 1),
             r.max_memory_used_mb,
             next((x.init_ms for x in r.reports if x.init_ms is not None), "-"), _usd(r.cost),
             "yes" if r.fits else ("memory" if not r.fits_memory else "time")]
            for r in result.runs]
    return "".join([
        f"# Lambda memory sizing on AWS: `{result.function_name}`\n\n",
        f"Prices: {p.architecture} {p.region}, ${p.gb_second}/GB-s + ${p.request}/request "
        f"(recorded {p.recorded}; {p.source}). Fits when Max Memory Used x "
        f"{1 + params.headroom:.2f} <= memory and the mean duration <= {params.timeout_s:g} s x "
        f"{1 - params.timeout_margin:.2f}. Durations are means of the kept invocations (the "
        "fastest and slowest 20 % dropped).\n\n",
        table(["memory MB", "invocations", "kept", "duration ms", "billed ms",
               "max used MB", "init ms", "cost / invocation", "fits"], rows),
        f"\nCheapest that fits: **{result.memory_mb or 'none'} MB**; the function was restored "
        f"to {result.original_memory_mb} MB.\n",
    ])


def write_outputs(result: SweepResult, cfg: SweepConfig) -> dict[str, Path]:
    """``<name>.json``, ``<name>.md`` and ``<name>.png`` in ``cfg.out_dir``."""
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": cfg.out_dir / f"{cfg.name}.json", "md": cfg.out_dir / f"{cfg.name}.md",
             "png": cfg.out_dir / f"{cfg.name}.png"}
    paths["json"].write_text(json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
    paths["md"].write_text(sweep_markdown(result), encoding="utf-8")
    from engine.sizing.plot import plot_sweep  # matplotlib: only when writing a sweep

    plot_sweep(result, paths["png"])
    return paths
