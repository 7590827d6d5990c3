"""Issue 17, bar 4: what worker threads cost in CSV CPU per GB, default threads against one.

The bar: CSV CPU per GB at default threads ≤ 1.1× its CPU at ``--threads 1``, on data with
timezone offsets as well as on orders data. Each conversion is a whole ``chunkwise transform``
process (the ``chunkwise`` next to this script's Python), its output deleted before it runs and
its output and messages discarded; the kernel gives its CPU (user + system), system time, peak
RSS and minor faults (``wait4``), and the wall time is taken around it.

For each data file, a start-up input is cut from it: its first 1,000,000 bytes up to and with
the last ``\\n`` in them, as docs/performance.md cuts it (that ``\\n`` can be a quoted line
break). Then ``--pairs`` pairs, each of four conversions: the file at default threads,
the file at ``--threads 1``, the head at default threads, the head at ``--threads 1``; even
pairs run default threads first and odd pairs one thread first (A B B A), so drift in the
machine's load falls on both alike. Per GB is, pair by pair,

    (CPU default, file − CPU default, head) ÷ (CPU one thread, file − CPU one thread, head)

so start-up (imports, inference, the Parquet footer) drops out. chunkwise converts an input of
a block or two on one thread whatever ``--threads`` says, so the head runs on one thread at
both settings, and what starting the worker threads costs stays in the per-GB figure. The
table gives its median and interquartile range, the pair-by-pair medians of default ÷ one
thread for the whole process (CPU and wall time), the medians of each of the four cases, and
the per-GB median against the bar. With ``--pin CPUS`` every conversion runs under ``taskset
-c CPUS``: pinned to one core, both thread counts share it, and what is left of the difference
is the software cost of handing chunks between threads, not the cost of two cores running at
once.

    python benchmarks/threads_cost.py --generate 200MB --dir /tmp/tc [--pairs 11] [--pin 0]
                                      [--json /tmp/tc/threads_cost.json]
    python benchmarks/threads_cost.py --data orders=orders.csv --data offsets=offsets.csv

``--generate SIZE`` writes, unless they are already there, ``DIR/orders.csv``
(``chunkwise gen orders --size SIZE``) and ``DIR/offsets.csv`` (``chunkwise gen orders`` of
185/200 of SIZE, rewritten by ``benchmarks/offsets_csv.py``: ``+02:00``/``-05:00`` offsets,
CRLF, more unicode; about SIZE). The heads go to DIR, or to a temporary directory with
``--data`` alone. MB = 10^6 bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHUNKWISE = Path(sys.executable).with_name("chunkwise")
BAR = 1.1
HEAD_BYTES = 1_000_000
CASES = ("default", "one", "head_default", "head_one")


def parse_size(text: str) -> int:
    from engine.config import parse_size as parse

    return parse(text)


def data_arg(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def generate(size: str, out: Path) -> dict[str, Path]:
    """``out/orders.csv`` and ``out/offsets.csv`` of about ``size``, unless already there."""
    out.mkdir(parents=True, exist_ok=True)
    orders, offsets = out / "orders.csv", out / "offsets.csv"
    if not orders.exists():
        tmp = out / ".orders.tmp.csv"
        _gen(size, tmp)
        tmp.replace(orders)
    if not offsets.exists():
        o185, tmp = out / "o185.csv", out / ".offsets.tmp.csv"
        _gen(str(parse_size(size) * 185 // 200), o185)
        subprocess.run([sys.executable, str(HERE / "offsets_csv.py"), str(o185), str(tmp)],
                       check=True, stdout=subprocess.DEVNULL)
        o185.unlink()
        tmp.replace(offsets)
    return {"orders": orders, "offsets": offsets}


def _gen(size: str, path: Path) -> None:
    subprocess.run([str(CHUNKWISE), "gen", "orders", "--size", size, "-o", str(path)],
                   check=True, stdout=subprocess.DEVNULL)


def write_head(src: Path, dst: Path, limit: int = HEAD_BYTES) -> int:
    """The first ``limit`` bytes of ``src`` up to and with the last ``\\n``; its size."""
    with open(src, "rb") as fh:
        data = fh.read(limit)
    data = data[:data.rfind(b"\n") + 1]
    dst.write_bytes(data)
    return len(data)


def run(src: Path, out: Path, *, one_thread: bool, pin: str | None) -> dict[str, float]:
    """One whole-process conversion: CPU, user, system and wall seconds, peak RSS, faults."""
    command = [str(CHUNKWISE), "transform", str(src), str(out)]
    if one_thread:
        command += ["--threads", "1"]
    if pin is not None:
        command = ["taskset", "-c", pin, *command]
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"exit {proc.returncode}: {' '.join(command)}")
    out.unlink(missing_ok=True)
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "user_s": usage.ru_utime,
            "sys_s": usage.ru_stime, "wall_s": wall, "maxrss_kib": usage.ru_maxrss,
            "minflt": usage.ru_minflt}


def measure(big: Path, head: Path, out: Path, pairs: int,
            pin: str | None) -> list[dict[str, Any]]:
    """``pairs`` pairs of the four cases, A B B A; one row per conversion."""
    inputs = {"default": (big, False), "one": (big, True),
              "head_default": (head, False), "head_one": (head, True)}
    rows = []
    for pair in range(pairs):
        order = CASES if pair % 2 == 0 else ("one", "default", "head_one", "head_default")
        for case in order:
            src, one_thread = inputs[case]
            rows.append({"pair": pair, "case": case,
                         **run(src, out, one_thread=one_thread, pin=pin)})
    return rows


def summarize(rows: list[dict[str, Any]], big_bytes: int, head_bytes: int) -> dict[str, Any]:
    """Medians per case; default ÷ one thread pair by pair, whole process and per GB."""
    by_pair: dict[int, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_pair.setdefault(row["pair"], {})[row["case"]] = row
    pairs = [by_pair[p] for p in sorted(by_pair)]
    median = statistics.median
    cases = {case: {key: median(p[case][key] for p in pairs)
                    for key in ("cpu_s", "user_s", "sys_s", "wall_s", "maxrss_kib", "minflt")}
             for case in CASES}
    slopes = {threads: [p[threads]["cpu_s"] - p[f"head_{threads}"]["cpu_s"] for p in pairs]
              for threads in ("default", "one")}
    per_gb = [d / o for d, o in zip(slopes["default"], slopes["one"], strict=True)]
    q1, q3 = _quartiles(per_gb)
    gb = (big_bytes - head_bytes) / 1e9
    return {
        "pairs": len(pairs),
        "cases": cases,
        "cpu_ratio": median(p["default"]["cpu_s"] / p["one"]["cpu_s"] for p in pairs),
        "wall_ratio": median(p["default"]["wall_s"] / p["one"]["wall_s"] for p in pairs),
        "per_gb_ratios": per_gb,
        "per_gb_ratio": median(per_gb),
        "per_gb_q1": q1,
        "per_gb_q3": q3,
        "cpu_s_per_gb": {t: median(s) / gb for t, s in slopes.items()},
        "against_bar": median(per_gb) / BAR,
        "verdict": _verdict(median(per_gb), q1, q3),
    }


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def _verdict(mid: float, q1: float, q3: float) -> str:
    if q3 <= BAR:
        return "met"
    if mid <= BAR:
        return "met by the median, not by the upper quartile"
    if q1 <= BAR:
        return "not met by the median, met by the lower quartile"
    return "not met"


def table(results: dict[str, dict[str, Any]], pin: str | None) -> str:
    names = list(results)
    first = results[names[0]]["summary"]["pairs"]
    where = f", pinned to CPU {pin}" if pin is not None else ""
    lines = [f"| {first} pairs{where} | " + " | ".join(
                 f"{n}, {results[n]['bytes'] / 1e6:.0f} MB" for n in names) + " |",
             "|---|" + "---|" * len(names)]

    def row(label: str, cell: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(results[n]["summary"]) for n in names)
                     + " |")

    def both(key: str, default: str, one: str, fmt: str) -> Any:
        scale = 1 / 1024 if key == "maxrss_kib" else 1  # KiB → MiB
        return lambda s: " / ".join(format(s["cases"][case][key] * scale, fmt)
                                    for case in (default, one))

    row("CPU s, default / one thread", both("cpu_s", "default", "one", ".2f"))
    row("system s, default / one thread", both("sys_s", "default", "one", ".2f"))
    row("wall s, default / one thread", both("wall_s", "default", "one", ".2f"))
    row("peak RSS MiB, default / one thread", both("maxrss_kib", "default", "one", ".0f"))
    row("minor faults, default / one thread", both("minflt", "default", "one", ",.0f"))
    row("1 MB head: CPU s, default / one thread",
        both("cpu_s", "head_default", "head_one", ".2f"))
    row("1 MB head: wall s, default / one thread",
        both("wall_s", "head_default", "head_one", ".2f"))
    row("1 MB head: peak RSS MiB, default / one thread",
        both("maxrss_kib", "head_default", "head_one", ".0f"))
    row("CPU, default ÷ one thread, pair by pair", lambda s: f"{s['cpu_ratio']:.3f}×")
    row("wall, default ÷ one thread, pair by pair", lambda s: f"{s['wall_ratio']:.3f}×")
    row("CPU s per GB, default / one thread",
        lambda s: f"{s['cpu_s_per_gb']['default']:.2f} / {s['cpu_s_per_gb']['one']:.2f}")
    row("**CPU per GB, default ÷ one thread, pair by pair (IQR)**",
        lambda s: f"**{s['per_gb_ratio']:.3f}×** ({s['per_gb_q1']:.3f}–{s['per_gb_q3']:.3f})")
    row(f"per GB ÷ the bar ({BAR}×)", lambda s: f"{s['against_bar']:.3f}: {s['verdict']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=data_arg, action="append", default=[],
                        metavar="NAME=PATH", help="a CSV to measure (repeatable)")
    parser.add_argument("--generate", metavar="SIZE",
                        help="generate DIR/orders.csv and DIR/offsets.csv of SIZE, e.g. 200MB")
    parser.add_argument("--dir", help="where --generate writes, and the 1 MB heads go")
    parser.add_argument("--pairs", type=int, default=11)
    parser.add_argument("--pin", metavar="CPUS", help="run every conversion under taskset -c")
    parser.add_argument("--json", metavar="PATH", help="write every run and the summary here")
    opts = parser.parse_args()
    if opts.generate and not opts.dir:
        parser.error("--generate needs --dir")
    if opts.pairs < 1:
        parser.error("--pairs must be at least 1")
    data = dict(opts.data)
    if opts.generate:
        data = {**generate(opts.generate, Path(opts.dir)), **data}
    if not data:
        parser.error("give --data NAME=PATH or --generate SIZE --dir DIR")
    for path in data.values():
        if not path.is_file():
            parser.error(f"no such file: {path}")
    load = os.getloadavg()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        heads = Path(opts.dir) if opts.dir else Path(tmp)
        heads.mkdir(parents=True, exist_ok=True)
        for name, path in data.items():
            head = heads / f"{path.stem}.head1mb{path.suffix}"
            head_bytes = write_head(path, head)
            big_bytes = path.stat().st_size
            rows = measure(path, head, Path(tmp) / "out.parquet", opts.pairs, opts.pin)
            results[name] = {"path": str(path), "bytes": big_bytes, "head": str(head),
                             "head_bytes": head_bytes, "runs": rows,
                             "summary": summarize(rows, big_bytes, head_bytes)}
    print(table(results, opts.pin))
    if opts.json:
        document = {"bar": BAR, "pairs": opts.pairs, "pin": opts.pin, "chunkwise": str(CHUNKWISE),
                    "cpus": os.cpu_count(), "load_before": load, "load_after": os.getloadavg(),
                    "data": results}
        Path(opts.json).write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
