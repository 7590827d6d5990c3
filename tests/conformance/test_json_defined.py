"""The implementation-defined JSON cases (json_cases.py) never crash, and end as pinned.

Every case runs in a child process, so that a crash (a signal from C++ code, which no ``except``
catches) is a failed test naming its case rather than a dead test run: the child converts one
input after another, saying which it starts and how each ended; if it dies, the case it was on
is a crash, and a new child goes on with the rest.

Each case is a field's value (``{"v": TEXT}``) on an NDJSON line and as a JSON-array element,
alone and between two neighbour records, at the default block size and at a 3-byte one. Its
``verdict`` says how it must end: ``accept`` (read back as ``expected``), ``reject`` (the record
a reject, its neighbours written; alone, a ``SchemaError``: the input has no column to write;
in a JSON array, a value that leaves a string open or its brackets unbalanced may instead fail
the document with an ``InputFormatError``), or an error
class (the input fails with it and nothing is written). Beside text neighbours the field is a
JSON-text column, where a number beyond int64 keeps every digit of its text; alone, it is the
double ``expected`` says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from json_cases import CASES, UNSET, JsonCase
from test_json_conformance import breaks_the_document, same

DEFINED = [c for c in CASES if c.outcome == "defined"]
TINY_BLOCK = 3
NEIGHBOUR = b'{"v": "neighbour"}'

#: The child: reads the jobs as JSON on stdin, prints a line when it starts one and a line
#: with the outcome when it ends it.
CHILD = r"""
import json, sys
from pathlib import Path

import pyarrow.parquet as pq

from engine import transform
from engine.errors import EngineError

for job in json.loads(sys.stdin.read()):
    print(json.dumps({"start": job["id"]}), flush=True)
    src = Path(job["src"])
    out, rejects = src.with_suffix(".parquet"), src.with_suffix(".rejects")
    try:
        report = transform(str(src), str(out), rejects_uri=str(rejects),
                           block_size=job["block_size"])
    except EngineError as exc:
        left = sorted(p.name for p in src.parent.iterdir() if p != src)
        result = {"error": type(exc).__name__, "message": str(exc), "left": left}
    else:
        lines = [json.loads(line) for line in rejects.read_text().splitlines()]
        result = {"rows_in": report.rows_in, "rows_out": report.rows_out,
                  "rows": pq.read_table(out).to_pylist(), "rejects": lines}
    print(json.dumps({"end": job["id"], **result}, default=str), flush=True)
"""


def jobs_for(case: JsonCase, directory: Path) -> list[dict[str, Any]]:
    """The inputs of ``case``: both formats, alone and between neighbours, both block sizes."""
    record = b'{"v": %s}' % case.text
    jobs = []
    for fmt in ("ndjson", "json"):
        for where, texts in (("alone", [record]), ("neighbours", [NEIGHBOUR, record, NEIGHBOUR])):
            data = (b"".join(t + b"\n" for t in texts) if fmt == "ndjson"
                    else b"[" + b",\n".join(texts) + b"]")
            for block in (None, TINY_BLOCK):
                job_id = f"{case.id}-{fmt}-{where}-{block or 'default'}"
                folder = directory / job_id.replace("/", "_")
                folder.mkdir()
                src = folder / f"in.{fmt}"
                src.write_bytes(data)
                jobs.append({"id": job_id, "src": str(src), "block_size": block,
                             "fmt": fmt, "where": where})
    return jobs


def run_jobs(jobs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each job's outcome; a job whose child died is ``{"crash": <exit status>}``."""
    results: dict[str, dict[str, Any]] = {}
    todo = list(jobs)
    while todo:
        child = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(todo),
                               capture_output=True, text=True, timeout=1800)
        started = None
        for line in child.stdout.splitlines():
            event = json.loads(line)
            if "start" in event:
                started = event["start"]
            else:
                results[event.pop("end")] = event
                started = None
        if started is not None:  # died on this one
            results[started] = {"crash": child.returncode, "stderr": child.stderr[-2000:]}
        elif child.returncode != 0:
            raise AssertionError(f"the child failed between jobs: {child.stderr[-2000:]}")
        todo = [job for job in todo if job["id"] not in results]
    return results


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("defined")
    jobs = [job for case in DEFINED for job in jobs_for(case, directory)]
    results = run_jobs(jobs)
    return {job["id"]: (job, results[job["id"]]) for job in jobs}


@pytest.mark.parametrize("case", DEFINED, ids=lambda c: c.id)
def test_implementation_defined_case_never_crashes_and_ends_as_pinned(
        outcomes: dict[str, Any], case: JsonCase):
    for job_id, (job, result) in outcomes.items():
        if not job_id.startswith(f"{case.id}-"):
            continue
        assert "crash" not in result, (job_id, result)
        neighbours = job["where"] == "neighbours"
        verdict = case.array_verdict if job["fmt"] == "json" and case.array_verdict else (
            case.verdict)
        if verdict == "accept":
            expected = json.loads(case.text) if case.expected is UNSET else case.expected
            assert "error" not in result, (job_id, result)
            rows = result["rows"]
            assert result["rejects"] == [] and len(rows) == (3 if neighbours else 1), job_id
            got = rows[1 if neighbours else 0]["v"]
            # in a JSON-text column (beside text neighbours) a number keeps every digit
            assert same(got, expected) or (isinstance(got, str) and same(
                got, json.loads(case.text))), (job_id, rows)
        elif verdict == "reject":
            if "error" in result:
                assert result["left"] == [], (job_id, result)
                if job["fmt"] == "json" and breaks_the_document(case.text):
                    assert result["error"] == "InputFormatError", (job_id, result)
                else:  # alone: the input's only record is a reject, so it has no column
                    assert not neighbours and result["error"] == "SchemaError", (job_id, result)
                continue
            assert [r["record"] for r in result["rejects"]] == [2], (job_id, result)
            assert result["rows"] == [{"v": "neighbour"}] * 2, job_id
        else:
            assert result.get("error") == verdict, (job_id, result)
            assert result["left"] == [], (job_id, result)


def test_a_byte_order_mark_starts_a_file_or_is_no_json(tmp_path: Path):
    """RFC 8259 lets a parser ignore a BOM before a JSON text: chunkwise drops the file's own."""
    bom = b"\xef\xbb\xbf"
    ndjson = tmp_path / "bom"
    ndjson.mkdir()
    (ndjson / "in.ndjson").write_bytes(bom + b'{"v": 1}\n' + bom + b'{"v": 2}\n{"v": 3}\n')
    array = tmp_path / "bom-array"
    array.mkdir()
    (array / "in.json").write_bytes(bom + b'[{"v": 1}, ' + bom + b'{"v": 2}, {"v": 3}]')
    results = run_jobs([{"id": "ndjson", "src": str(ndjson / "in.ndjson"), "block_size": None},
                        {"id": "json", "src": str(array / "in.json"), "block_size": None}])
    for result in results.values():
        assert result["rows"] == [{"v": 1}, {"v": 3}], result
        assert [r["record"] for r in result["rejects"]] == [2]
        assert "BOM" in result["rejects"][0]["reason"]
