"""The results of ``chunkwise size`` and ``chunkwise profile`` as Markdown, JSON and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import MiB

if TYPE_CHECKING:
    from engine.sizing.remote import RemoteResult
    from engine.sizing.sweep import SweepConfig, SweepResult

__all__ = ["remote_markdown", "sweep_markdown", "table", "write_outputs"]


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _usd(x: float | None) -> str:
    return "-" if x is None else f"${x:.7f}"


def sweep_markdown(result: SweepResult) -> str:
    """The sweep as a markdown page: recommendation, fits, candidates, measurements."""
    cfg, mach, p = result.config, result.machine, result.prices
    params = cfg["params"]
    out = [
        "# Lambda memory sizing (`chunkwise size`)\n",
        f"Measured {mach['date']} on {mach['machine']} ({mach['cpu'] or 'unknown CPU'}, "
        f"{mach['cores']} cores), Python {mach['python']}, pyarrow {mach['pyarrow']}; "
        f"{len(result.measurements)} runs in {result.seconds:.0f} s, I/O "
        f"{cfg.get('io', 'local')}. Contract: "
        f"`{cfg['contract'] or 'none'}`.\n",
        f"Prices: {p.architecture} {p.region}, ${p.gb_second}/GB-s + ${p.request}/request "
        f"(recorded {p.recorded}; {p.source}).\n",
        f"Model: fits when peak RSS x {1 + params['headroom']:.2f} + {params['overhead_mb']:g} "
        f"MB runtime overhead <= memory and predicted duration <= {params['timeout_s']:g} s x "
        f"{1 - params['timeout_margin']:.2f}; duration = CPU s / min(memory / 1769, threads) + "
        f"S3 bytes / {params['s3_mb_per_s']:g} MB/s. One thread below 1,769 MB, two from "
        "there.\n",
        "## Recommendation\n",
        table(["band", "memory MB", "predicted s", "cost / invocation", "cost / 1,000 files",
               "needs MB", "worst format"],
              [[r.band, r.memory_mb or "none fits", r.duration_s, _usd(r.cost),
                _usd(None if r.cost is None else r.cost * 1000), r.required_mb,
                r.worst_format or "-"] for r in result.recommendations]),
        f"\nThe transform function's `TransformMemorySize`: **{result.chosen_mb} MB** (the "
        "largest band's; `chunkwise size --apply` writes it into `template.yaml` and "
        "`samconfig.toml`).\n",
    ]
    if result.flags:
        out.append("\n**Flags:** " + "; ".join(result.flags) + "\n")
    out += [
        "\n## Fits (default block size)\n",
        "RSS slope: peak RSS against input size over inputs of at least "
        f"{cfg['tail_min_bytes'] / 1e6:g} MB (below that the bounded buffers are still "
        f"filling); flagged at {cfg['max_slope_mb_per_100mb']:g} MB per 100 MB.\n\n",
        table(["format", "threads", "RSS slope MB/100 MB", "(all sizes)", "max RSS MiB",
               "RSS MiB per block MiB", "CPU s/GB", "start-up CPU s", "grows"],
              [[f["format"], f["threads"], "-" if f["rss_slope_mb_per_100mb"] is None
                else f["rss_slope_mb_per_100mb"],
                f["rss_slope_all_sizes_mb_per_100mb"], f["rss_max_mib"],
                "-" if f["rss_mib_per_block_mib"] is None else f["rss_mib_per_block_mib"],
                f["cpu_s_per_gb"], f["startup_cpu_s"], "yes" if f["grows"] else "no"]
               for f in result.fits]),
    ]
    if result.verify:
        out += ["\n## Verify (the largest input under a hard cap, as Lambda kills)\n\n",
                table(["format", "MB", "memory MB", "cap MiB", "threads", "peak RSS MiB",
                       "result"],
                      [[v["format"], v["size_bytes"] / 1e6, v["memory_mb"], v["cap_mib"],
                        v["threads"], v["peak_rss_mib"],
                        "pass" if v["passed"] else "FAIL (killed)"] for v in result.verify])]
    last = result.recommendations[-1] if result.recommendations else None
    if last is not None:
        out += [f"\n## Every setting, band {last.band}\n\n",
                table(["memory MB", "threads", "predicted s", "cost / invocation", "needs MB",
                       "fits"],
                      [[c["memory_mb"], c["threads"], c["duration_s"], _usd(c["cost"]),
                        c["required_mb"],
                        "yes" if c["fits"] else ("memory" if not c["fits_memory"] else "time")]
                       for c in last.candidates])]
    out += ["\n## Measurements\n\n",
            table(["format", "MB", "block MiB", "threads", "peak RSS MiB", "Arrow peak MiB",
                   "CPU s", "wall s", "MB/s", "rows"],
                  [[m.format, m.size_bytes / 1e6, m.block_size // MiB, m.threads,
                    round(m.peak_rss_bytes / MiB, 1),
                    round(m.report.get("arrow_peak_bytes", 0) / MiB, 1), m.cpu_s, m.wall_s,
                    round(m.size_bytes / 1e6 / m.wall_s, 1) if m.wall_s else "-",
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
