"""Every input of the bad-input corpus through ``chunkwise transform --json``, in a child process.

For each row of ``expectations.csv``: the exit code and the typed error, or the row counts and
``rows_in == rows_out + rows_rejected``; nothing published on failure (no Parquet, no rejects
file, no temp file left in the output directory); no Python traceback on stderr; and the
child's peak RSS within the memory budget: the kernel's ``ru_maxrss``, measured by
:func:`engine.sizing.measure.launch` (the launcher ``tests/unit/test_memory.py`` uses). The large
inputs (200 MB lines, 100,000 columns) are generated into a temporary directory for their test
and deleted after it.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from engine.sizing.measure import launch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_corpus  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "chunkwise_test_memory", HERE.parent / "unit" / "test_memory.py")
assert _spec is not None and _spec.loader is not None
_memory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_memory)
without_pandas = _memory.without_pandas  # the Lambda layer has no pandas: measure without it

MiB = 1024**2
#: The memory budget of docs/memory.md, for every input whatever its size.
BUDGET = 256 * MiB
#: The console script's entry point (``python -m engine.cli.app`` would do as well).
CLI = [sys.executable, "-c", "from engine.cli.app import main; main()"]


def expectations() -> list[dict[str, str]]:
    with open(HERE / "expectations.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


ROWS = expectations()


def test_the_table_and_the_generator_name_the_same_inputs():
    named = [row["file"] for row in ROWS]
    assert len(named) == len(set(named))
    assert sorted(named) == sorted(list(make_corpus.SMALL) + list(make_corpus.LARGE))


def test_the_generator_is_deterministic(tmp_path: Path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    for name in make_corpus.SMALL:
        a = make_corpus.write(name, first).read_bytes()
        b = make_corpus.write(name, second).read_bytes()
        assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest(), name


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("corpus")
    for name in make_corpus.SMALL:
        make_corpus.write(name, directory)
    return directory


def check(row: dict[str, str], src: Path, out: Path) -> dict[str, Any]:
    dst, rejects = out / "out.parquet", out / "rejects.ndjson"
    # Killed past twice the budget, as Lambda would: a regression must not take the CI box down.
    launched = launch([*CLI, "transform", str(src), str(dst), "--json", "--rejects", str(rejects),
                       *shlex.split(row["args"])], cap_bytes=2 * BUDGET, sample_interval=0)
    code, peak, stderr, text = (launched.exit_code, launched.peak_rss_bytes, launched.stderr,
                                launched.stdout)
    report = json.loads(text)  # exactly one JSON object on stdout: this fails on anything else
    assert text.count("\n") == 1, text
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert code == int(row["exit"]), (code, report)
    assert peak <= BUDGET, f"{row['file']}: peak RSS {peak / MiB:.0f} MiB"
    left = sorted(p.name for p in out.iterdir())
    if code:
        assert report["status"] == "failed"
        assert report["error"]["type"] == row["error"], report["error"]
        assert left == [], f"a failed run left {left}"
    else:
        counts = [report["rows_in"], report["rows_out"], report["rows_rejected"]]
        assert counts == [int(row["rows_in"]), int(row["rows_out"]), int(row["rows_rejected"])]
        assert report["rows_in"] == (report["rows_out"] + report["rows_rejected"]
                                     + report["rows_filtered"])
        assert left == ["out.parquet", "rejects.ndjson"], left  # no temp file next to them
        assert pq.read_metadata(dst).num_rows == report["rows_out"]
        assert rejects.read_bytes().count(b"\n") == report["rows_rejected"]
    result = {"file": row["file"], "exit": code, "peak_mib": round(peak / MiB),
              "error": (report.get("error") or {}).get("type"),
              "rows": None if code else [report["rows_in"], report["rows_out"],
                                         report["rows_rejected"]]}
    log = os.environ.get("CHUNKWISE_RELIABILITY_LOG")  # figures for docs/RELIABILITY.md
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"suite": "corpus", **result}) + "\n")
    return result


@pytest.mark.parametrize("row", [r for r in ROWS if r["file"] in make_corpus.SMALL],
                         ids=lambda r: r["file"])
def test_small_input(row: dict[str, str], small_corpus: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    check(row, small_corpus / row["file"], out)


@pytest.mark.parametrize("row", [r for r in ROWS if r["file"] in make_corpus.LARGE],
                         ids=lambda r: r["file"])
def test_large_input(row: dict[str, str], tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    src = make_corpus.write(row["file"], tmp_path)
    try:
        check(row, src, out)
    finally:
        src.unlink()
