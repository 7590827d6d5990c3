"""PNGs for sizing and profiling (matplotlib with the Agg backend, imported only here)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.runtime.timing import STAGES

if TYPE_CHECKING:
    from engine.sizing.sweep import SweepResult

__all__ = ["plot_profile", "plot_sweep"]

_COLOURS = {"startup": "#bbbbbb", "infer": "#76b7b2", "read": "#4e79a7", "parse": "#f28e2b",
            "validate_transform": "#59a14f", "encode_write": "#e15759", "upload": "#b07aa1"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_sweep(result: SweepResult, path: Path) -> None:
    """Blended cost, and warm and cold duration, against memory per band; the choices marked."""
    plt = _pyplot()
    fig, (ax_cost, ax_time) = plt.subplots(1, 2, figsize=(12, 4.8))
    for rec in result.recommendations:
        cands = rec.candidates
        mem = [c["memory_mb"] for c in cands]
        line, = ax_cost.plot(mem, [c["cost"] * 1000 for c in cands], marker=".", label=rec.band)
        ax_time.plot(mem, [c["duration_s"] for c in cands], marker=".", color=line.get_color(),
                     label=f"{rec.band} warm")
        ax_time.plot(mem, [c["cold_duration_s"] for c in cands], ls="--", lw=1,
                     color=line.get_color(), label=f"{rec.band} cold")
        misfit = [c for c in cands if not c["fits"]]
        ax_cost.scatter([c["memory_mb"] for c in misfit], [c["cost"] * 1000 for c in misfit],
                        marker="x", color="black", zorder=3)
        if rec.memory_mb is not None and rec.cost is not None:
            ax_cost.scatter([rec.memory_mb], [rec.cost * 1000], s=120, facecolors="none",
                            edgecolors=line.get_color(), linewidths=2, zorder=4)
            ax_time.scatter([rec.memory_mb], [rec.duration_s], s=120, facecolors="none",
                            edgecolors=line.get_color(), linewidths=2, zorder=4)
    for ax in (ax_cost, ax_time):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Lambda memory (MB)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax_cost.set_ylabel("USD per 1,000 invocations, at the cold share")
    ax_cost.set_title("blended cost (x: does not fit; circle: chosen)")
    ax_time.set_ylabel("predicted duration (s): warm, and cold (dashed)")
    ax_time.set_title(f"duration ({result.prices.architecture})")
    fig.suptitle(f"chunkwise size: {result.machine['date']}, contract "
                 f"{result.config['contract'] or 'none'}; chosen {result.chosen_mb} MB")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_profile(profile: dict[str, Any], path: Path) -> None:
    """RSS over time with start-up shaded, and one lane per stage showing when it ran."""
    plt = _pyplot()
    t0 = profile["started"]
    fig, (ax, lanes) = plt.subplots(2, 1, figsize=(12, 6), sharex=True,
                                    gridspec_kw={"height_ratios": [3, 1.3]})
    timeline = profile["timeline"]
    if timeline:
        ax.plot([t - t0 for t, _ in timeline], [m for _, m in timeline], color="black", lw=1.2,
                label="RSS (memory-profiler)")
    ax.axhline(profile["peak_rss_mib"], color="red", ls="--", lw=0.8,
               label=f"peak RSS (kernel) {profile['peak_rss_mib']:.0f} MiB")
    if profile.get("fits_mb"):
        ax.axhline(profile["fits_mb"], color="grey", ls=":", lw=0.8,
                   label=f"smallest Lambda memory that fits: {profile['fits_mb']} MB")
    ax.axvspan(0, profile["import_s"], color=_COLOURS["startup"], alpha=0.4, label="start-up")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"chunkwise profile: {profile['name']} ({profile['size_mb']:.1f} MB "
                 f"{profile['format']}, threads {profile['threads']})")
    names = [s for s in STAGES if any(span[0] == s for span in profile["spans"])]
    for row, stage in enumerate(names):
        bars = [(a - t0, max(b - a, 1e-4)) for s, a, b in profile["spans"] if s == stage]
        lanes.broken_barh(bars, (row - 0.4, 0.8), color=_COLOURS.get(stage, "#777777"))
    lanes.set_yticks(range(len(names)), names)
    lanes.set_xlabel("seconds since launch")
    lanes.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
