"""Issue 17: the fixed cost of small files, warm, against bare pyarrow; S3 requests per file.

Most of the traffic is files of 1 to 10 MB, converted by a warm Lambda: what matters there is the
cost of one conversion in a process that has already imported everything. For each generated
orders input (1 MB and 10 MB; CSV, NDJSON, JSON array) this runs, in this one process, after two
warm-up runs each, ``--repeat`` rounds of:

- **bare**: what pyarrow alone does with the file: ``pyarrow.csv.read_csv`` /
  ``pyarrow.json.read_json`` (a JSON array: ``json.load`` and ``pa.Table.from_pylist``, pyarrow
  reads no arrays) and ``pyarrow.parquet.write_table(compression="zstd")``: no inference
  samples, no rejects, no bounded memory, no atomic publish;
- **chunkwise**: ``engine.transform`` of the same file,

alternately, and prints the medians of wall time and CPU time (``time.process_time``: every
thread of the process) with the ratios chunkwise / bare. Each writes a new local file, as a
conversion does (chunkwise refuses to replace one, and bare pyarrow would truncate it):
removing it after the run is not timed. The bar: CSV and NDJSON at 1 MB within
1.3× bare pyarrow's wall time.

With ``--s3``, the same inputs are put in a loopback moto server (``ThreadedMotoServer`` on
127.0.0.1, a free port) and converted S3 → S3; bare is then one ``GetObject``, the parse, and
one ``PutObject`` of the Parquet bytes. The table adds the S3 requests chunkwise sent per file,
by kind, from the run's report (``RunReport.s3_requests``). Time on moto is loopback HTTP, not
AWS's tens of milliseconds a request: the request count is the figure that carries over.

With ``--pipeline``, each input also goes through the local pipeline (the real state machine
and handlers on moto, :class:`engine.aws.local.runner.LocalPipeline`) ``--pipeline-runs`` times:
the median execution time, how much of it the conversion itself took (the transform's
``seconds``), the states entered and the Lambda invocations per file, and the S3 requests the
file's record gives.

    python benchmarks/small_files.py [--sizes 1MB,10MB] [--formats csv,ndjson,json]
                                     [--repeat 15] [--s3] [--threads N] [--data-dir DIR] [--json]
                                     [--pipeline] [--pipeline-runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

import engine
from engine.gen import generate

HERE = Path(__file__).resolve().parent
COMPRESSION = "zstd"


def parse_size(text: str) -> int:
    from engine.config import parse_size as parse

    return parse(text)


def bare_table(data: Any, fmt: str) -> pa.Table:
    """pyarrow alone: ``data`` is a path or a buffer."""
    if fmt == "csv":
        return pacsv.read_csv(data, parse_options=pacsv.ParseOptions(newlines_in_values=True))
    if fmt == "ndjson":
        return pajson.read_json(data)
    if isinstance(data, str):
        with open(data, "rb") as fh:
            return pa.Table.from_pylist(json.load(fh))
    return pa.Table.from_pylist(json.loads(data.to_pybytes()))


def timed(run: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU seconds of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def compare(bare: Callable[[], Any], ours: Callable[[], Any], repeat: int,
            cleanup: Callable[[], Any] = lambda: None) -> dict[str, float]:
    """Both, alternately, after two warm-up runs each; medians in milliseconds and the ratios.

    ``cleanup`` runs after each, untimed (removing an output: not part of either conversion).
    """
    for _ in range(2):
        for run in (bare, ours):
            run()
            cleanup()
    runs: dict[str, list[tuple[float, float]]] = {"bare": [], "ours": []}
    for _ in range(repeat):
        for name, run in (("bare", bare), ("ours", ours)):
            runs[name].append(timed(run))
            cleanup()
    out = {}
    for name, values in runs.items():
        out[f"{name}_ms"] = statistics.median(v[0] for v in values) * 1e3
        out[f"{name}_cpu_ms"] = statistics.median(v[1] for v in values) * 1e3
    out["wall_ratio"] = out["ours_ms"] / out["bare_ms"]
    out["cpu_ratio"] = out["ours_cpu_ms"] / out["bare_cpu_ms"]
    return out


def local_case(path: Path, fmt: str, out_dir: Path, repeat: int,
               threads: int | None) -> dict[str, Any]:
    bare_out, ours_out = out_dir / "bare.parquet", out_dir / "ours.parquet"

    def bare() -> None:
        pq.write_table(bare_table(str(path), fmt), bare_out, compression=COMPRESSION)

    def ours() -> None:
        engine.transform(path, ours_out, threads=threads)

    def cleanup() -> None:  # each writes a new file, as a conversion does
        bare_out.unlink(missing_ok=True)
        ours_out.unlink(missing_ok=True)

    return compare(bare, ours, repeat, cleanup)


def s3_case(client: Any, path: Path, fmt: str, repeat: int,
            threads: int | None) -> dict[str, Any]:
    key = path.name
    client.upload_file(str(path), "raw", key)
    runs = iter(range(10**9))
    requests: list[dict[str, int]] = []

    def bare() -> None:
        body = client.get_object(Bucket="raw", Key=key)["Body"].read()
        sink = io.BytesIO()
        pq.write_table(bare_table(pa.py_buffer(body), fmt), sink, compression=COMPRESSION)
        client.put_object(Bucket="out", Key=f"bare/{key}.parquet", Body=sink.getvalue())

    def ours() -> None:
        report = engine.transform(f"s3://raw/{key}", f"s3://out/ours/{key}.{next(runs)}.parquet",
                                  threads=threads)
        requests.append(report.s3_requests)

    result = compare(bare, ours, repeat)
    result["s3_requests"] = requests[-1]
    result["s3_requests_total"] = sum(requests[-1].values())
    return result


def pipeline_case(pipe: Any, path: Path, runs: int) -> dict[str, Any]:
    """``runs`` executions of the local pipeline for ``path``, each under a new key."""
    walls, engine_seconds, last = [], [], {}
    for i in range(runs + 1):  # the first warms the handlers up, as a warm Lambda is
        started = time.perf_counter()
        last = pipe.run(path, key=f"drop/run{i}/{path.name}")
        if last["status"] != "SUCCEEDED":
            raise SystemExit(f"{path}: {last['status']} {last.get('error')}")
        if i:
            walls.append(time.perf_counter() - started)
            parts = (last.get("output") or {}).get("parts") or []
            engine_seconds.append(sum(float(p.get("seconds") or 0) for p in parts))
    wall, ours = statistics.median(walls), statistics.median(engine_seconds)
    return {"execution_ms": wall * 1e3, "conversion_ms": ours * 1e3,
            "conversion_share": ours / wall, "states": len(last["states"]),
            "invocations": sum(last["attempts"].values()),
            "s3_requests": (last.get("record") or {}).get("s3_requests") or {}}


def start_moto() -> tuple[Any, Any]:
    """A loopback moto server, the engine pointed at it; returns the server and a client."""
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    engine.io.reset_s3_client()
    client = boto3.client("s3")
    for bucket in ("raw", "out"):
        client.create_bucket(Bucket=bucket)
    return server, client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1MB,10MB")
    parser.add_argument("--formats", default="csv,ndjson,json")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--s3", action="store_true", help="also S3 → S3 on a loopback moto")
    parser.add_argument("--threads", type=int, default=None, help="chunkwise's threads")
    parser.add_argument("--data-dir", default=str(HERE / "data"))
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--pipeline", action="store_true", help="also the local pipeline")
    parser.add_argument("--pipeline-runs", type=int, default=5)
    opts = parser.parse_args()
    data = Path(opts.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    cases = []
    for size in opts.sizes.split(","):
        for fmt in opts.formats.split(","):
            path = data / f"orders_{parse_size(size) // 10**6}mb_seed0.{fmt}"
            if not path.exists():
                generate("orders", path, size=parse_size(size), seed=0)
            cases.append((path, fmt))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for path, fmt in cases:
            result = local_case(path, fmt, Path(tmp), opts.repeat, opts.threads)
            results.append({"input": path.name, "where": "local", **result})
            print(_row(results[-1]), file=sys.stderr)
    if opts.s3:
        server, client = start_moto()
        try:
            for path, fmt in cases:
                result = s3_case(client, path, fmt, opts.repeat, opts.threads)
                results.append({"input": path.name, "where": "s3", **result})
                print(_row(results[-1]), file=sys.stderr)
        finally:
            server.stop()
    pipeline = []
    if opts.pipeline:
        import logging

        from engine.aws.local.runner import LocalPipeline

        logging.disable(logging.CRITICAL)
        # the handlers print their metrics (CloudWatch's embedded format) on stdout
        with LocalPipeline() as pipe, open(os.devnull, "w") as quiet:
            for path, _ in cases:
                with contextlib.redirect_stdout(quiet):
                    row = pipeline_case(pipe, path, opts.pipeline_runs)
                pipeline.append({"input": path.name, **row})
                print(pipeline[-1], file=sys.stderr)
    if opts.json:
        print(json.dumps({"conversions": results, "pipeline": pipeline}, indent=2))
    else:
        print(_table(results))
        if pipeline:
            print()
            print(_pipeline_table(pipeline))


def _row(r: dict[str, Any]) -> str:
    requests = r.get("s3_requests")
    return (f"{r['input']} {r['where']}: chunkwise {r['ours_ms']:.1f} ms "
            f"(CPU {r['ours_cpu_ms']:.1f}), bare {r['bare_ms']:.1f} ms "
            f"(CPU {r['bare_cpu_ms']:.1f}); {r['wall_ratio']:.2f}x time, "
            f"{r['cpu_ratio']:.2f}x CPU" + (f"; requests {requests}" if requests else ""))


def _table(results: list[dict[str, Any]]) -> str:
    lines = ["| input | where | chunkwise ms (CPU) | bare pyarrow ms (CPU) | time × | CPU × "
             "| S3 requests |", "|---|---|---|---|---|---|---|"]
    for r in results:
        requests = r.get("s3_requests")
        kinds = ", ".join(f"{k} {v}" for k, v in requests.items()) if requests else ""
        lines.append(
            f"| {r['input']} | {r['where']} | {r['ours_ms']:.1f} ({r['ours_cpu_ms']:.1f}) "
            f"| {r['bare_ms']:.1f} ({r['bare_cpu_ms']:.1f}) | {r['wall_ratio']:.2f} "
            f"| {r['cpu_ratio']:.2f} | {kinds} |")
    return "\n".join(lines)


def _pipeline_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| input | execution ms | conversion ms (share) | states | Lambda invocations "
             "| S3 requests (record) |", "|---|---|---|---|---|---|"]
    for r in rows:
        kinds = ", ".join(f"{k} {v}" for k, v in r["s3_requests"].items())
        lines.append(f"| {r['input']} | {r['execution_ms']:.0f} | {r['conversion_ms']:.0f} "
                     f"({r['conversion_share']:.0%}) | {r['states']} | {r['invocations']} "
                     f"| {kinds} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

