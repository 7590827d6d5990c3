"""Peak RSS of a child ``chunkwise transform`` stays bounded and flat in the input size.

Marked ``memory``: each case generates a >= 200 MB file (a few seconds). The bar from the issue is
<= 200 MiB at default settings and within 16 MiB of the peak on a 50 MB file of the same shape
(the highest of four runs of it: :data:`SMALL_RUNS`).
Every case prints its measured peak and growth against those bars, pass or fail, so that the
margin is in the CI log (``memory: json peak 189.0 MiB of 200 (margin 11.0) ...``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import DEFAULT_PART_SIZE
from engine.sizing.measure import launch

MiB = 1024**2
BIG = 200 * 10**6
SMALL = 50 * 10**6
LIMIT = 200 * MiB
FLATNESS = 16 * MiB
#: Runs of the 50 MB input whose highest peak the 200 MB input's is held against. At default
#: threads what is in flight at an encode (the row group, the chunks parsed ahead of it) depends
#: on how the two threads' work falls, so one run's peak moves by up to ~12 MiB from the next
#: (CSV at 50 MB: 141 and 153 MiB in two CI runs; six runs of each size by hand, 146–153 at
#: 50 MB and 143–157 at 200). The 200 MB input has four times the row groups, so four times the
#: chances to meet its worst moment; four runs of the 50 MB one give its side as many. The
#: growth compared is then the input's, not the timing's.
SMALL_RUNS = 4


def probe_rss(env: dict[str, str]) -> tuple[float, float]:
    """File-backed and anonymous RSS (MiB) of a child once it has imported what converts."""
    probe = ("import engine.cli.app, engine.run, pyarrow.parquet, pyarrow.csv\n"
             "status = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
             "print(status['RssFile'].split()[0], status['RssAnon'].split()[0])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, env=env)
    file_kib, anon_kib = map(int, done.stdout.split())
    return file_kib / 1024, anon_kib / 1024


@pytest.fixture(scope="module", autouse=True)
def children_path(measured_site: Path, request: pytest.FixtureRequest) -> Iterator[None]:
    """The measured children import from ``measured_site`` first (tests/conftest.py): no
    pandas, and pyarrow and numpy as a read caches them. The log gives the libraries'
    file-backed RSS at import both ways, as installed and as the children load them."""
    installed = probe_rss(dict(os.environ))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(measured_site) + (os.pathsep + old if old else "")
    copied = probe_rss(dict(os.environ))
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # in the log, pass or fail, as log_margin
        print(f"\nmemory: after imports, the libraries map {installed[0]:.1f} MiB (file-backed) "
              f"as installed, {copied[0]:.1f} MiB as the measured children load them; "
              f"{copied[1]:.1f} MiB anonymous")
    yield
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def child_peak_rss(src: Path, dst: Path) -> tuple[int, dict]:
    """Run the CLI in a child process; return its peak RSS (the kernel's ru_maxrss) and report.

    :func:`engine.sizing.measure.launch` forks it from a small launcher: ru_maxrss survives
    execve, so a child forked from this (large) pytest process would report the parent's RSS.
    """
    cmd = [sys.executable, "-m", "engine.cli.app", "transform", str(src), str(dst), "--json"]
    launched = launch(cmd, sample_interval=0)
    report = json.loads(launched.stdout)
    assert launched.exit_code == 0, report
    return launched.peak_rss_bytes, report


def log_margin(capsys: pytest.CaptureFixture[str], text: str) -> None:
    """Print ``text`` to the terminal even when the test passes (pytest captures otherwise)."""
    with capsys.disabled():
        print(f"\nmemory: {text}")


def generate_in_child(path: Path, size: int, fmt: str) -> None:
    """Generate outside this process, so that its memory does not grow by the generator's."""
    subprocess.run([sys.executable, "-m", "engine.cli.app", "gen", "orders", "--size", str(size),
                    "--format", fmt, "--seed", "1", "-o", str(path)], check=True,
                   capture_output=True)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("memory")


@pytest.mark.memory
@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_peak_rss_is_bounded_and_flat(data_dir: Path, fmt: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    big = data_dir / f"big.{fmt}"
    small = data_dir / f"small.{fmt}"
    generate_in_child(big, BIG, fmt)
    generate_in_child(small, SMALL, fmt)
    peak_big, report = child_peak_rss(big, data_dir / f"big-{fmt}.parquet")
    peak_small = max(child_peak_rss(small, data_dir / f"small-{fmt}-{run}.parquet")[0]
                     for run in range(SMALL_RUNS))
    big.unlink()
    grown = peak_big - peak_small
    log_margin(capsys, f"{fmt} peak {peak_big / MiB:.1f} MiB of {LIMIT / MiB:.0f} (margin "
                       f"{(LIMIT - peak_big) / MiB:.1f}); grew {grown / MiB:.1f} MiB from 50 to "
                       f"200 MB of {FLATNESS / MiB:.0f} (margin {(FLATNESS - grown) / MiB:.1f})")
    assert report["rows_in"] == report["rows_out"] > 0
    assert peak_big <= LIMIT, f"{fmt}: peak RSS {peak_big / MiB:.0f} MiB > {LIMIT / MiB:.0f}"
    assert peak_big - peak_small <= FLATNESS, (
        f"{fmt}: peak grew {(peak_big - peak_small) / MiB:.1f} MiB from 50 MB to 200 MB input"
    )


@pytest.mark.memory
def test_contract_run_stays_within_the_core_budget(data_dir: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Validation and transforms work on the chunk in flight: same budget as a bare run."""
    contract = Path(__file__).resolve().parents[2] / "benchmarks/contracts/orders_realistic.yaml"
    big = data_dir / "contract-big.csv"
    generate_in_child(big, BIG, "csv")
    out = data_dir / "contract-big.parquet"
    launched = launch([sys.executable, "-m", "engine.cli.app", "transform", str(big), str(out),
                       "--json", "--contract", str(contract)], sample_interval=0)
    peak, report = launched.peak_rss_bytes, json.loads(launched.stdout)
    big.unlink()
    log_margin(capsys, f"contract peak {peak / MiB:.1f} MiB of {LIMIT / MiB:.0f} (margin "
                       f"{(LIMIT - peak) / MiB:.1f})")
    assert launched.exit_code == 0, report
    assert report["rows_in"] == report["rows_out"] + report["rows_rejected"] + report[
        "rows_filtered"]
    assert peak <= LIMIT, f"contract run: peak RSS {peak / MiB:.0f} MiB"


#: The orders contract (unique and dedupe on order_id, an aggregate with an approximate
#: count_distinct, 30 country partitions) on one thread, local: 213 MiB at 50 MB and 224 at 200
#: MB measured (before issue 23's compact keys and sketches: 237 and 289, 60 MB of state at
#: 500 MB). Its S3 -> S3 bar is 300 MiB at 500 MB (docs/memory.md); this local run is held to the
#: design's 256 MiB for any input and to the flatness bar.
ORDERS_CONTRACT_LIMIT = 256 * MiB


@pytest.mark.memory
def test_orders_contract_state_does_not_grow_with_the_file(
        data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """unique/dedupe keys issued in order and the aggregate's sketches stay flat in rows."""
    contract = Path(__file__).resolve().parents[2] / "contracts/orders.yaml"
    peaks, reports = {}, {}
    for name, size in (("small", SMALL), ("big", BIG)):
        src = data_dir / f"orders-{name}.csv"
        generate_in_child(src, size, "csv")
        launched = launch([sys.executable, "-m", "engine.cli.app", "transform", str(src),
                           str(data_dir / f"orders-{name}") + "/", "--json", "--threads", "1",
                           "--contract", str(contract)], sample_interval=0)
        src.unlink()
        reports[name] = json.loads(launched.stdout)
        assert launched.exit_code == 0, reports[name]
        peaks[name] = launched.peak_rss_bytes
    grown = peaks["big"] - peaks["small"]
    state = reports["big"]["state_bytes"]
    log_margin(capsys, f"orders contract peak {peaks['big'] / MiB:.1f} MiB of "
                       f"{ORDERS_CONTRACT_LIMIT / MiB:.0f}; grew {grown / MiB:.1f} MiB from 50 to "
                       f"200 MB of {FLATNESS / MiB:.0f}; state {state / MiB:.2f} MiB")
    for report in reports.values():
        assert report["rows_in"] == (report["rows_out"] + report["rows_rejected"]
                                     + report["rows_filtered"]) > 0
    assert state <= 2 * MiB, f"state_bytes {state}: keys or sketches grew with the rows"
    assert peaks["big"] <= ORDERS_CONTRACT_LIMIT, f"peak RSS {peaks['big'] / MiB:.0f} MiB"
    assert grown <= FLATNESS, f"peak grew {grown / MiB:.1f} MiB from 50 MB to 200 MB"


@pytest.mark.memory
def test_parquet_input_is_bounded_and_flat(data_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """An existing Parquet file converted again, row group by row group: the CSV bar holds.

    The files are the engine's own conversions of 200 MB and 50 MB of CSV (16 MiB row groups),
    and the 200 MB one rewritten as a single row group (as Spark's 128 MiB groups, or larger),
    which is read through per-column buffers instead of whole column chunks.
    """
    peaks = {}
    for name, size in (("big", BIG), ("small", SMALL)):
        text = data_dir / f"pq-{name}.csv"
        generate_in_child(text, size, "csv")
        child_peak_rss(text, data_dir / f"pq-{name}.parquet")
        text.unlink()
        for run in range(1 if name == "big" else SMALL_RUNS):  # the small one's highest
            peak, report = child_peak_rss(data_dir / f"pq-{name}.parquet",
                                          data_dir / f"pq-{name}-again-{run}.parquet")
            assert report["format"] == "parquet" and report["rows_in"] == report["rows_out"] > 0
            peaks[name] = max(peaks.get(name, 0), peak)
    one_group = data_dir / "pq-one-group.parquet"
    subprocess.run([sys.executable, "-c", "import sys, pyarrow.parquet as pq; t = pq.read_table("
                    "sys.argv[1]); pq.write_table(t, sys.argv[2], row_group_size=len(t))",
                    str(data_dir / "pq-big.parquet"), str(one_group)], check=True)
    peaks["one group"], report = child_peak_rss(one_group, data_dir / "pq-one-again.parquet")
    assert report["rows_in"] == report["rows_out"] > 0
    grown = peaks["big"] - peaks["small"]
    log_margin(capsys, f"parquet peak {peaks['big'] / MiB:.1f} MiB, one row group "
                       f"{peaks['one group'] / MiB:.1f} MiB, of {LIMIT / MiB:.0f}; grew "
                       f"{grown / MiB:.1f} MiB from 50 to 200 MB of {FLATNESS / MiB:.0f}")
    assert max(peaks.values()) <= LIMIT, {k: round(v / MiB) for k, v in peaks.items()}
    assert grown <= FLATNESS


#: What a partitioned output may cost beyond one file: its open Parquet writers' encoder scratch
#: (32 uncompressed here: ~40 MiB measured; ~45 since the one file spools its part too). Part
#: buffers held in memory would add up to four 8 MiB parts more (the in-memory cap): measured
#: +89 MiB, against +40 with the spool (issue 23).
PARTITION_ALLOWANCE = 56 * MiB

PARTITION_CONTRACT = """dataset: orders
format: csv
columns:
  order_id: {type: int64}
  country: {type: string}
output:
  compression: none
"""


@pytest.mark.memory
@pytest.mark.s3server
def test_partitioned_s3_output_holds_its_parts_on_disk(
        moto_server: str, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """S3 → S3: 32 open partition files cost no part buffers in memory (the spool has them).

    The moto server runs in this process, the measured conversion in a child: the server's
    memory is not counted. Uncompressed output, so that the partition files hold more than
    the four parts an in-memory buffer would be capped at.
    """
    import boto3

    from engine.sink.spool import spool_bytes_needed

    big = data_dir / "s3-big.csv"
    generate_in_child(big, BIG, "csv")
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    client.create_bucket(Bucket="raw")
    client.create_bucket(Bucket="out")
    client.upload_file(str(big), "raw", "orders.csv")
    big.unlink()
    peaks, reports = {}, {}
    for name, output in (("one file", ""), ("partitioned", "  partition_by: [country]\n")):
        contract = data_dir / f"s3-{name.replace(' ', '-')}.yaml"
        contract.write_text(PARTITION_CONTRACT + output)
        cmd = [sys.executable, "-m", "engine.cli.app", "transform", "s3://raw/orders.csv",
               f"s3://out/{name.replace(' ', '-')}/", "--json", "--contract", str(contract)]
        launched = launch(cmd, sample_interval=0)
        reports[name] = json.loads(launched.stdout)
        assert launched.exit_code == 0, reports[name]
        peaks[name] = launched.peak_rss_bytes
    partitioned = reports["partitioned"]
    assert partitioned["rows_in"] == partitioned["rows_out"] == reports["one file"]["rows_out"]
    # the spool held more than the in-memory cap of four parts, within its formula
    assert 4 * DEFAULT_PART_SIZE < partitioned["ephemeral_bytes"] <= spool_bytes_needed(
        32, DEFAULT_PART_SIZE)
    extra = peaks["partitioned"] - peaks["one file"]
    log_margin(capsys, f"s3 partitioned peak {peaks['partitioned'] / MiB:.1f} MiB, one file "
                       f"{peaks['one file'] / MiB:.1f}: +{extra / MiB:.1f} of "
                       f"{PARTITION_ALLOWANCE / MiB:.0f}; spool "
                       f"{partitioned['ephemeral_bytes'] / MiB:.1f} MiB")
    assert extra <= PARTITION_ALLOWANCE


@pytest.mark.memory
@pytest.mark.s3server
@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_plain_s3_conversion_is_bounded_and_flat(
        moto_server: str, data_dir: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    """S3 → S3 at default settings, no contract: the bar of the local runs (issue 23).

    The S3 side costs botocore and its client (~22 MiB), no part buffer: the Parquet output's
    part is held in its spool file on local disk. The moto server runs in this process, the
    measured conversion in a child: the server's memory is not counted. Measured at 200 MB
    (medians of three): CSV 191 MiB, NDJSON 173, JSON array 188 (docs/memory.md).
    """
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    client.create_bucket(Bucket="raw")
    client.create_bucket(Bucket="out")
    peaks = {}
    for name, size in (("big", BIG), ("small", SMALL)):
        path = data_dir / f"s3-plain-{name}.{fmt}"
        generate_in_child(path, size, fmt)
        client.upload_file(str(path), "raw", path.name)
        path.unlink()
        for run in range(1 if name == "big" else SMALL_RUNS):  # the small one's highest
            cmd = [sys.executable, "-m", "engine.cli.app", "transform",
                   f"s3://raw/{path.name}", f"s3://out/{name}-{run}.parquet", "--json"]
            launched = launch(cmd, sample_interval=0)
            report = json.loads(launched.stdout)
            assert launched.exit_code == 0, report
            assert report["rows_in"] == report["rows_out"] > 0
            assert 0 < report["ephemeral_bytes"] <= DEFAULT_PART_SIZE  # the part, on disk
            peaks[name] = max(peaks.get(name, 0), launched.peak_rss_bytes)
        client.delete_object(Bucket="raw", Key=path.name)  # moto holds objects in memory
    grown = peaks["big"] - peaks["small"]
    log_margin(capsys, f"s3 {fmt} peak {peaks['big'] / MiB:.1f} MiB of {LIMIT / MiB:.0f} "
                       f"(margin {(LIMIT - peaks['big']) / MiB:.1f}); grew {grown / MiB:.1f} "
                       f"MiB from 50 to 200 MB of {FLATNESS / MiB:.0f}")
    assert peaks["big"] <= LIMIT, f"s3 {fmt}: peak RSS {peaks['big'] / MiB:.0f} MiB"
    assert grown <= FLATNESS
