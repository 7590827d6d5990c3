"""Two ways to put a CSV → Parquet conversion on two threads, against one (issue 17, bar 4).

chunkwise's worker threads are a pipeline: one thread reads and parses, the other encodes, so
every table crosses from one core to the other (``benchmarks/cross_core.py`` measures what the
encoder pays for that). The other layout keeps each table on the core that made it: two
symmetric workers, each reading a row group's text in turn, parsing it and encoding it itself,
the encodings taken in order (one Parquet writer). This measures the two with pyarrow alone, no
engine, the same blocks, types and writer settings for all three:

- **one**: one thread parses each block and encodes each row group;
- **pipeline**: a worker parses, up to ``--ahead`` tables ahead; the calling thread encodes;
- **symmetric**: two workers, each taking the next row group's text (``--row-group`` MiB), parsing
  it block by block and encoding it when its turn comes.

Each conversion is a child process (``--run MODE``), the three alternated ``--rounds`` times;
the report gives each one's wall, CPU (user + system) and peak RSS, medians, and the ratios to
one thread round by round.

    python benchmarks/worker_layouts.py --data orders.csv [--rounds 6] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MiB = 1 << 20
MODES = ("one", "pipeline", "symmetric")


def convert(path: str, out: str, mode: str, block: int, row_group: int, ahead: int) -> int:
    """Convert ``path`` on ``mode``'s threads; return the rows written."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from engine.readers.csv import quote_aware_cut

    with open(path, "rb") as src, contextlib.ExitStack() as stack:
        header = src.readline()
        names = header.decode().strip().split(",")
        head = src.read(MiB)
        src.seek(len(header))
        parse_options = pacsv.ParseOptions(newlines_in_values=True)
        types = pacsv.read_csv(pa.py_buffer(header + head[:quote_aware_cut(head)]),
                               parse_options=parse_options).schema
        carry = b""

        def next_block() -> bytes | None:
            nonlocal carry
            data = src.read(block)
            if not data:
                last, carry = carry, b""
                return last or None
            data = carry + data
            cut = quote_aware_cut(data)
            carry = data[cut:]
            return data[:cut]

        def parse(text: bytes) -> pa.Table:
            return pacsv.read_csv(
                pa.py_buffer(text),
                read_options=pacsv.ReadOptions(use_threads=False, column_names=names,
                                               block_size=len(text) + 1),
                parse_options=parse_options,
                convert_options=pacsv.ConvertOptions(column_types=types))

        writer = stack.enter_context(pq.ParquetWriter(
            out, types, compression="zstd", use_dictionary=["country", "quantity", "status"]))
        rows = 0

        def encode(tables: list[pa.Table]) -> None:
            nonlocal rows
            if tables:
                table = pa.concat_tables(tables)
                writer.write_table(table)
                rows += table.num_rows

        {"one": one, "pipeline": pipeline, "symmetric": symmetric}[mode](
            next_block, parse, encode, row_group=row_group, ahead=ahead)
    return rows


def one(next_block: Callable[[], bytes | None], parse: Callable[[bytes], Any],
        encode: Callable[[list[Any]], None], *, row_group: int, ahead: int) -> None:
    """One thread parses each block and encodes each row group."""
    tables: list[Any] = []
    while (text := next_block()) is not None:
        tables.append(parse(text))
        if sum(t.nbytes for t in tables) >= row_group:
            encode(tables)
            tables = []
    encode(tables)


def pipeline(next_block: Callable[[], bytes | None], parse: Callable[[bytes], Any],
             encode: Callable[[list[Any]], None], *, row_group: int, ahead: int) -> None:
    """A worker parses up to ``ahead`` tables ahead; this thread encodes. A failure on either
    side ends both: the worker's is raised here, and the worker stops when this one fails."""
    parsed: queue.Queue[Any] = queue.Queue(ahead)
    stop = threading.Event()

    def parser() -> None:
        try:
            while not stop.is_set() and (text := next_block()) is not None:
                put(parse(text))
            put(None)
        except BaseException as exc:  # raised in the encoding thread
            put(exc)

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                parsed.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=parser, daemon=True)
    worker.start()
    try:
        tables: list[Any] = []
        while (item := parsed.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            tables.append(item)
            if sum(t.nbytes for t in tables) >= row_group:
                encode(tables)
                tables = []
        encode(tables)
    finally:
        stop.set()
        worker.join()


def symmetric(next_block: Callable[[], bytes | None], parse: Callable[[bytes], Any],
              encode: Callable[[list[Any]], None], *, row_group: int, ahead: int) -> None:
    """Two workers, each taking the next row group's text in turn, parsing it and encoding it
    when its turn comes. The first failure stops both and is raised here."""
    read_lock, turn = threading.Lock(), threading.Condition()
    order = {"read": 0, "write": 0}
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            while not failures:
                with read_lock:  # a row group's text, in order
                    mine = order["read"]
                    order["read"] += 1
                    texts, size, done = [], 0, False
                    while size < row_group:
                        text = next_block()
                        if text is None:
                            done = True
                            break
                        texts.append(text)
                        size += len(text)
                tables = []
                while texts:
                    tables.append(parse(texts.pop(0)))
                with turn:
                    turn.wait_for(lambda m=mine: order["write"] == m or bool(failures))
                if failures:
                    return
                encode(tables)
                del tables
                with turn:
                    order["write"] += 1
                    turn.notify_all()
                if done:
                    return
        except BaseException as exc:
            with turn:
                failures.append(exc)
                turn.notify_all()

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failures:
        raise failures[0]


def child(mode: str, opts: argparse.Namespace, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--run", mode, "--data", opts.data, "--out", str(out),
           "--block", str(opts.block), "--row-group", str(opts.row_group),
           "--ahead", str(opts.ahead)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    rows = int(proc.stdout.read()) if proc.stdout else 0
    if status:
        raise SystemExit(f"{mode} failed: status {status}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "rss_mib": usage.ru_maxrss / 1024, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a CSV of orders (chunkwise gen orders)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--block", type=int, default=2, help="MiB of text per parse")
    parser.add_argument("--row-group", type=int, default=16, help="MiB per row group")
    parser.add_argument("--ahead", type=int, default=4, help="pipeline: tables parsed ahead")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--run", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.run:
        print(convert(opts.data, opts.out, opts.run, opts.block * MiB, opts.row_group * MiB,
                      opts.ahead))
        return
    out = Path(opts.data).with_suffix(".layouts.parquet")
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    try:
        for _ in range(opts.rounds):
            for mode in MODES:
                runs[mode].append(child(mode, opts, out))
    finally:
        out.unlink(missing_ok=True)
    if len({r["rows"] for rs in runs.values() for r in rs}) != 1:
        raise SystemExit("the layouts wrote different row counts")
    result: dict[str, Any] = {"data": opts.data, "rounds": opts.rounds, "modes": {}}
    for mode, rs in runs.items():
        entry = {key: statistics.median(r[key] for r in rs) for key in ("wall", "cpu", "rss_mib")}
        for key in ("wall", "cpu"):
            entry[f"{key}_to_one"] = statistics.median(
                r[key] / one[key] for r, one in zip(rs, runs["one"], strict=True))
        result["modes"][mode] = entry
    if opts.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    print(f"{opts.data}, {opts.rounds} rounds, medians; ratios to one thread round by round")
    print("| layout | wall s | CPU s | peak RSS MiB | wall ÷ one | CPU ÷ one |")
    print("|---|---|---|---|---|---|")
    for mode, e in result["modes"].items():
        print(f"| {mode} | {e['wall']:.2f} | {e['cpu']:.2f} | {e['rss_mib']:.0f} | "
              f"{e['wall_to_one']:.2f} | {e['cpu_to_one']:.2f} |")


if __name__ == "__main__":
    main()
