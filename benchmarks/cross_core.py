"""What handing data to the other core costs the stage that reads it next (issue 17, bar 4).

At default threads a conversion reads and parses on worker threads and encodes on the calling
one, so every block of text and every table crosses from one core to the other before the next
stage reads it. This measures that cost alone, with everything else equal: each round, a thread
pinned to core 1 makes the data, and a thread pinned to core 1 again ("same") or to core 0
("cross") runs the stage on it, alternately; the figure is the stage thread's own CPU time
(``time.thread_time``), median of ``--rounds``, and the ratio cross ÷ same.

- **encode**: a table parsed from ``--mib`` MiB of CSV, written as Parquet (zstd) to memory;
- **parse**: ``--mib`` MiB of CSV text copied into a new buffer, parsed with the table's types.

    python benchmarks/cross_core.py [--data orders.csv] [--mib 16] [--rounds 24] [--json]

Without ``--data`` it generates orders (``engine.gen``) in a temporary directory. Needs two
usable cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

MiB = 1 << 20


def on_core(core: int, work: Callable[[], Any]) -> tuple[Any, float]:
    """``work()`` on a new thread pinned to ``core``: its result and the thread's CPU seconds."""
    out: list[Any] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            os.sched_setaffinity(0, {core})  # 0: the calling thread
            started = time.thread_time()
            result = work()
            out.extend((result, time.thread_time() - started))
        except BaseException as exc:  # raised in the caller
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return out[0], out[1]


def load(path: Path, mib: int) -> tuple[list[str], bytes, pa.Schema]:
    """The header's names, ``mib`` MiB of whole records after it, and their types."""
    with open(path, "rb") as fh:
        data = fh.read(mib * MiB + (1 << 16))
    header = data[:data.index(b"\n") + 1]
    body = data[len(header):len(header) + mib * MiB]
    body = body[:body.rfind(b"\n") + 1]
    names = header.decode().strip().split(",")
    return names, body, parse(names, body, None).schema


def parse(names: list[str], body: bytes, types: pa.Schema | None) -> pa.Table:
    """``body`` as one block on one thread, as the engine parses a piece."""
    return pacsv.read_csv(
        pa.py_buffer(body),
        read_options=pacsv.ReadOptions(use_threads=False, column_names=names,
                                       block_size=len(body) + 1),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=types) if types is not None
        else pacsv.ConvertOptions(),
    )


def encode(table: pa.Table) -> int:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.tell()


def measure(names: list[str], body: bytes, types: pa.Schema, rounds: int) -> dict[str, Any]:
    cpu: dict[str, dict[str, list[float]]] = {
        stage: {"same": [], "cross": []} for stage in ("encode", "parse")}
    for _ in range(rounds):
        # every pair of cores, so that one core being slower (a busy neighbour on the host)
        # weighs on "same" and "cross" alike
        for maker, core in ((1, 1), (1, 0), (0, 0), (0, 1)):
            where = "same" if maker == core else "cross"
            table, _ = on_core(maker, lambda: parse(names, body, types))
            cpu["encode"][where].append(on_core(core, lambda t=table: encode(t))[1])
            del table
            text, _ = on_core(maker, lambda: bytearray(body))  # written there, as a read is
            cpu["parse"][where].append(on_core(core, lambda t=text: parse(names, t, types))[1])
            del text
    out: dict[str, Any] = {"rounds": rounds, "bytes": len(body)}
    for stage, runs in cpu.items():
        same, cross = (statistics.median(runs[w]) for w in ("same", "cross"))
        out[stage] = {"same_ms": same * 1e3, "cross_ms": cross * 1e3, "ratio": cross / same}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a CSV file (default: generated orders)")
    parser.add_argument("--mib", type=int, default=16, help="MiB of text per round")
    parser.add_argument("--rounds", type=int, default=24)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    opts = parser.parse_args()
    if not {0, 1} <= os.sched_getaffinity(0):
        raise SystemExit("needs cores 0 and 1 (os.sched_getaffinity)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(opts.data) if opts.data else Path(tmp) / "orders.csv"
        if not opts.data:
            from engine.gen import generate

            generate("orders", path, size=opts.mib * MiB + (1 << 20), seed=0)
        result = measure(*load(path, opts.mib), opts.rounds)
    result["data"] = opts.data or f"generated orders, {opts.mib} MiB"
    if opts.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    print(f"{result['data']}: {result['bytes'] / MiB:.1f} MiB, {opts.rounds} rounds, "
          "CPU of the stage's thread, median")
    print("| stage | data made on the same core | on the other core | other ÷ same |")
    print("|---|---|---|---|")
    for stage in ("parse", "encode"):
        r = result[stage]
        print(f"| {stage} | {r['same_ms']:.1f} ms | {r['cross_ms']:.1f} ms | {r['ratio']:.2f}× |")


if __name__ == "__main__":
    main()
