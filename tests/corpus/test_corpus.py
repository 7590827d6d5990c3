"""Every input of the bad-input corpus through ``chunkwise transform --json``, in a child process.

For each row of ``expectations.csv``: the exit code and the typed error with its record number
(``none``: the reader cannot know it), its byte offset and a phrase of its message; or the row
counts, ``rows_in == rows_out + rows_rejected``, each reject's record number and a phrase of
its reason (``rejects``: ``record:phrase|...``), and for the inputs whose claim is about the
data (a NUL kept, an integer widened, a surrogate pair kept) the values written
(:data:`VALUES`); nothing published on failure (no Parquet, no rejects file, no temp file left
in the output directory); no Python traceback on stderr; and the child's peak RSS within the
memory budget: the kernel's ``ru_maxrss``, measured by
:func:`engine.sizing.measure.launch` (the launcher ``tests/unit/test_memory.py`` uses). The large
inputs (200 MB lines, 100,000 columns) are generated into a temporary directory for their test
and deleted after it.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
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
# measured as test_memory measures: no pandas (the Lambda layer has none), pyarrow and numpy
# loaded as a read caches them, not as the installer wrote them (docs/memory.md, Traps)
children_path = _memory.children_path

MiB = 1024**2
#: The memory budget of docs/memory.md, for every input whatever its size.
BUDGET = 256 * MiB
#: The console script's entry point (``python -m engine.cli.app`` would do as well).
CLI = [sys.executable, "-c", "from engine.cli.app import main; main()"]


def expectations() -> list[dict[str, str]]:
    with open(HERE / "expectations.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


ROWS = expectations()

#: What converted inputs must hold, column by column: the claims of docs/RELIABILITY.md about
#: the data itself (a NUL is data, a big integer widens to float64, a surrogate pair is kept,
#: a reject's neighbours are written).
VALUES: dict[str, dict[str, list[Any]]] = {
    "nul-in-field.csv": {"id": [1, 2], "name": ["a\x00b", "c"]},
    "ragged.csv": {"id": [1, 4], "name": ["a", "d"]},
    "header-only.csv": {"id": [], "name": []},
    "int-beyond-int64.csv": {"a": [1.0, 1e23]},
    "int-beyond-int64.ndjson": {"a": [1.0, 1e23]},
    "float-beyond-float64.csv": {"a": [1.5, math.inf, 2.5]},
    "float-beyond-float64.ndjson": {"a": [1.5, 2.5]},
    "float-beyond-float64.json": {"a": [1.5, 2.5]},
    "lone-surrogate.ndjson": {"a": ["x", "\U0001f600"]},
    "lone-surrogate.json": {"a": ["x", "\U0001f600"]},
    "duplicate-keys.ndjson": {"a": [1, 3]},
    "duplicate-keys.json": {"a": [1, 3]},
    "nul-in-string.ndjson": {"a": ["x", "w"]},
    "ndjson-with-array.ndjson": {"a": [1, 3]},
    "deep-object.ndjson": {"a": [1, 2]},
    "deep-object.json": {"a": [1, 2]},
    "deep-path.json": {"a": [1, 2]},
}
#: Columns whose type is the claim (integers beyond int64 widen to float64, as documented).
TYPES = {"int-beyond-int64.csv": {"a": "double"}, "int-beyond-int64.ndjson": {"a": "double"}}


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
        error = report["error"]
        assert error["type"] == row["error"], error
        assert error["record"] == (None if row["record"] == "none" else int(row["record"])), error
        assert error["offset"] == int(row["offset"]), error
        assert row["message"] in error["message"], error
        assert left == [], f"a failed run left {left}"
    else:
        counts = [report["rows_in"], report["rows_out"], report["rows_rejected"]]
        assert counts == [int(row["rows_in"]), int(row["rows_out"]), int(row["rows_rejected"])]
        assert report["rows_in"] == (report["rows_out"] + report["rows_rejected"]
                                     + report["rows_filtered"])
        assert left == ["out.parquet", "rejects.ndjson"], left  # no temp file next to them
        assert pq.read_metadata(dst).num_rows == report["rows_out"]
        lines = [json.loads(line) for line in rejects.read_text("utf-8").split("\n")[:-1]]
        assert len(lines) == report["rows_rejected"]
        expected = [entry.split(":", 1) for entry in row["rejects"].split("|") if entry]
        assert [r["record"] for r in lines] == [int(n) for n, _ in expected], lines
        for line, (_, phrase) in zip(lines, expected, strict=True):
            assert phrase in line["reason"], line
        check_values(row["file"], pq.read_table(dst))
    result = {"file": row["file"], "exit": code, "peak_mib": round(peak / MiB),
              "error": (report.get("error") or {}).get("type"),
              "rows": None if code else [report["rows_in"], report["rows_out"],
                                         report["rows_rejected"]]}
    log = os.environ.get("CHUNKWISE_RELIABILITY_LOG")  # figures for docs/RELIABILITY.md
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"suite": "corpus", **result}) + "\n")
    return result


def check_values(name: str, table: pa.Table) -> None:
    """The values (and types) :data:`VALUES` and :data:`TYPES` claim for ``name``."""
    for column, values in VALUES.get(name, {}).items():
        assert table.column(column).to_pylist() == values, (name, column)
    for column, kind in TYPES.get(name, {}).items():
        assert str(table.column(column).type) == kind, (name, column)


def test_every_value_claim_names_a_converted_input() -> None:
    converted = {r["file"] for r in ROWS if r["exit"] == "0"}
    assert set(VALUES) | set(TYPES) <= converted


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
