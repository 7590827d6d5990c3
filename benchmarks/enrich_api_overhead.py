"""What an ``enrich_api`` step costs per 100k rows, with 1k distinct keys, against a loopback API.

Converts generated orders CSVs of two sizes with two contracts that differ only by the step: both
derive ``key`` (the last three digits of ``customer_id``: 1,000 distinct values), one then adds
``region`` and ``vat_rate`` from a lookup API served on 127.0.0.1 by a thread of this process
(``protocol: batch``, default ``batch_size`` 500: two requests per cold process). Each run is a
child process (``chunkwise transform --json``), so its cache starts cold, as in a cold Lambda;
CPU seconds come from the kernel (``wait4``) and do not include the server's. "Per 100k rows" is
the slope between the two sizes, so the one-time costs (the requests, importing urllib3) drop out;
they are reported apart, as the difference on the small file.

    python benchmarks/enrich_api_overhead.py [--sizes 8MB,80MB] [--repeat 3] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

BASE = """\
dataset: orders
columns:
  customer_id: {type: int64}
transforms:
  - derive:
      name: key
      expr:
        call: utf8_slice_codeunits
        args:
          - call: utf8_lpad
            args: [{call: cast, args: [{field: customer_id}], options: {target_type: string}}]
            options: {width: 3, padding: "0"}
        options: {start: -3, stop: 1000}
"""
STEP = """\
  - enrich_api:
      url: "%s"
      on: [key]
      columns: {region: string, vat_rate: "decimal128(5, 4)"}
"""


class LookupApi(BaseHTTPRequestHandler):
    """Answers every key: ``region`` from the key, ``vat_rate`` from its digits."""

    protocol_version = "HTTP/1.1"
    requests = 0

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        type(self).requests += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        results = [{"key": k["key"], "region": f"R{k['key'][0]}",
                    "vat_rate": int(k["key"]) / 10_000} for k in body["keys"]]
        data = json.dumps({"results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def run(args: list[str]) -> tuple[float, float, int, dict[str, Any]]:
    """Wall seconds, user+system CPU seconds, peak RSS and the report of one child run."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "engine.cli.app", *args, "--json"],
                                stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        report = json.loads(out.read())
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {args}: {report}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8MB,80MB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", default=str(HERE / "data"))
    opts = parser.parse_args()
    from engine.config import parse_size

    data = Path(opts.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    sizes = [parse_size(s) for s in opts.sizes.split(",")]
    files = {}
    for size in sizes:
        path = data / f"orders_{size // 10**6}mb_seed0.csv"
        if not path.exists():
            subprocess.run([sys.executable, "-m", "engine.cli.app", "gen", "orders", "--size",
                            str(size), "-o", str(path)], check=True, capture_output=True)
        files[size] = path

    server = ThreadingHTTPServer(("127.0.0.1", 0), LookupApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    work = Path(tempfile.mkdtemp())
    contracts = {"base": work / "base.yaml", "enrich_api": work / "enrich_api.yaml"}
    contracts["base"].write_text(BASE)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/lookup"
    contracts["enrich_api"].write_text(BASE + STEP % url)

    rows: dict[int, int] = {}
    med: dict[str, dict[int, dict[str, float]]] = {k: {} for k in contracts}
    api: dict[int, dict[str, Any]] = {}
    for size, path in files.items():
        for kind, contract in contracts.items():  # interleaved, so load drifts hit both alike
            runs = [run(["transform", str(path), str(work / f"{kind}.parquet"),
                         "--contract", str(contract)]) for _ in range(opts.repeat)]
            rows[size] = runs[0][3]["rows_in"]
            med[kind][size] = {"wall_s": statistics.median(r[0] for r in runs),
                               "cpu_s": statistics.median(r[1] for r in runs),
                               "peak_rss_mib": max(r[2] for r in runs) / 2**20}
            if kind == "enrich_api":
                api[size] = runs[-1][3]["enrich_api"][0]
            print(f"{kind:10} {rows[size]:>9,} rows: wall {[round(r[0], 2) for r in runs]} "
                  f"cpu {[round(r[1], 2) for r in runs]}", file=sys.stderr)
    server.shutdown()

    small, big = sizes
    per = (rows[big] - rows[small]) / 100_000

    def slope(kind: str, what: str) -> float:
        return (med[kind][big][what] - med[kind][small][what]) / per

    summary = {
        "rows": rows,
        "distinct_keys": api[big]["keys_requested"],
        "requests_per_file": api[big]["requests"],
        "per_100k_rows": {
            what: {"base": round(slope("base", what), 4),
                   "enrich_api": round(slope("enrich_api", what), 4),
                   "overhead": round(slope("enrich_api", what) - slope("base", what), 4),
                   "ratio": round(slope("enrich_api", what) / slope("base", what), 3)}
            for what in ("wall_s", "cpu_s")},
        "fixed_on_small_file": {
            what: round(med["enrich_api"][small][what] - med["base"][small][what]
                        - slope("enrich_api", what) * rows[small] / 100_000
                        + slope("base", what) * rows[small] / 100_000, 3)
            for what in ("wall_s", "cpu_s")},
        "api_wait_s": {rows[s]: a["wait_seconds"] for s, a in api.items()},
        "peak_rss_mib": {k: {rows[s]: round(v["peak_rss_mib"], 1) for s, v in m.items()}
                         for k, m in med.items()},
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
