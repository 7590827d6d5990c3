"""Issue 3's bar: a realistic contract costs <= 30 % more CPU per GB than the bare conversion.

Runs ``chunkwise transform`` with and without ``benchmarks/contracts/orders_realistic.yaml``
(every column typed, 3 checks, 2 transforms, 10 output columns) on generated orders CSVs of two
sizes, each in a child process, and reports CPU seconds from the kernel (``wait4``). "Per GB" is
the slope between the two sizes, so one-time costs (imports, loading the contract) drop out;
the whole-run ratio on the large file is reported too.

    python benchmarks/contract_overhead.py [--sizes 50MB,500MB] [--repeat 3] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTRACT = HERE / "contracts" / "orders_realistic.yaml"


def parse_size(text: str) -> int:
    from engine.config import parse_size as parse

    return parse(text)


def cpu_seconds(args: list[str]) -> tuple[float, int, dict]:
    """User+system CPU seconds and peak RSS of one child run of the CLI."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-m", "engine.cli.app", *args, "--json"],
                                stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        report = json.loads(out.read())
    if proc.returncode != 0:
        raise SystemExit(f"failed: {args}: {report}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50MB,500MB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", default=str(HERE / "data"))
    opts = parser.parse_args()
    data = Path(opts.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    small, big = (parse_size(s) for s in opts.sizes.split(","))
    files = {}
    for size in (small, big):
        path = data / f"orders_{size // 10**6}mb_seed0.csv"
        if not path.exists():
            subprocess.run([sys.executable, "-m", "engine.cli.app", "gen", "orders", "--size",
                            str(size), "-o", str(path)], check=True, capture_output=True)
        files[size] = path
    out = Path(tempfile.mkdtemp())
    results: dict[str, dict[int, float]] = {"bare": {}, "contract": {}}
    rss: dict[str, int] = {}
    for kind in results:
        for size, path in files.items():
            args = ["transform", str(path), str(out / f"{kind}.parquet")]
            if kind == "contract":
                args += ["--contract", str(CONTRACT)]
            runs = [cpu_seconds(args) for _ in range(opts.repeat)]
            results[kind][size] = statistics.median(r[0] for r in runs)
            rss[f"{kind}@{size // 10**6}MB"] = max(r[1] for r in runs) >> 20
            print(f"{kind:8} {size / 1e6:6.0f} MB: {results[kind][size]:.2f} CPU s "
                  f"(runs {[round(r[0], 2) for r in runs]})", file=sys.stderr)
    gb = (big - small) / 1e9
    slope = {k: (v[big] - v[small]) / gb for k, v in results.items()}
    summary = {
        "cpu_s_per_gb": {k: round(v, 3) for k, v in slope.items()},
        "per_gb_ratio": round(slope["contract"] / slope["bare"], 3),
        "whole_run_ratio_big": round(results["contract"][big] / results["bare"][big], 3),
        "peak_rss_mib": rss,
        "bar": "per_gb_ratio <= 1.30",
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
