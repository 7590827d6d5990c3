"""The property every fuzz target checks, and the settings they share.

:func:`check` runs one drawn document through :func:`engine.transform` and
:func:`engine.read_batches` and asserts, whatever the bytes:

- the only exceptions are the engine's typed errors; a failed run leaves the output directory
  empty; a run that succeeds adds up (``rows_in = rows_out + rows_rejected + rows_filtered``),
  its Parquet holds ``rows_out`` rows, its rejects file ``rows_rejected`` lines, and
  ``read_batches`` yields as many rows;

and, against what the generator wrote (:mod:`fuzz_documents`), not against the engine's count:

- a well-formed document converts: ``rows_in`` is the number of records generated, the rejects
  are exactly the records generated as rejects (by record number), and every column has its
  kind's type and the generated values, in order;
- a mutated document, if it converts, still has every record no edit touched somewhere in its
  output or its rejects (an id token found in a value or a reject's raw text).

Reproducible in CI: with ``CI`` set (``.ci/run`` sets it) hypothesis is derandomized, the same
examples every run, with no example database; elsewhere it draws new examples and keeps the
failures it finds in ``.hypothesis/``. Either way a failure prints the ``@reproduce_failure``
blob that replays it (``print_blob``); ``--hypothesis-seed=N`` replays a random run.
``CHUNKWISE_FUZZ_EXAMPLES`` sets the examples per target (default 300).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from fuzz_documents import JSON_TEXT_KINDS, KIND_TYPES, Doc
from hypothesis import HealthCheck, example, settings

import engine
from engine.errors import EngineError

EXAMPLES = int(os.environ.get("CHUNKWISE_FUZZ_EXAMPLES", "300"))
#: CI: derandomized (the same examples on every run, so a red run is a change, not luck).
DERANDOMIZE = os.environ.get("CI") is not None
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example,
                                       HealthCheck.filter_too_much])

EXTENSION = {"csv": ".csv", "ndjson": ".ndjson", "json": ".json", "json-path": ".json"}
SUFFIX = {"gzip": ".gz", "bz2": ".bz2", "zstd": ".zst"}


def raw(data: bytes, fmt: str) -> Doc:
    """Bytes with nothing promised about their records (noise, a corpus input)."""
    return Doc(data, fmt, {}, {}, [], 0, [], [], [], exact=False)


def check(doc: Doc, data: bytes | None = None, compression: str | None = None, *,
          may_fail: bool = False, **options: Any) -> None:
    """Run ``doc`` (stored as ``data``: compressed, or damaged) through the engine; assert.

    ``options`` are the target's drawn read options; a well-formed document's own (its
    delimiter, its ``json_path``) take precedence. A well-formed document must convert unless
    ``may_fail`` (its compressed bytes were damaged: then, if it converts, it is whole).
    """
    work = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        src = work / ("in" + EXTENSION[doc.fmt] + (SUFFIX[compression] if compression else ""))
        src.write_bytes(doc.data if data is None else data)
        out = work / "out"
        out.mkdir()
        dst, rejects = out / "out.parquet", out / "rejects.ndjson"
        kwargs: dict[str, Any] = {"format": "json" if doc.fmt == "json-path" else doc.fmt,
                                  "threads": 1, **options}
        if doc.fmt == "json-path":
            kwargs["json_path"] = "data.item"
        if doc.exact or doc.untouched:
            kwargs.update(doc.options)
        try:
            report = engine.transform(str(src), str(dst), rejects_uri=str(rejects), **kwargs)
        except EngineError as exc:
            assert sorted(p.name for p in out.iterdir()) == []
            assert may_fail or not doc.exact, f"a well-formed document failed: {exc!r}"
            report = None
        if report is not None:
            assert report.rows_in == report.rows_out + report.rows_rejected + report.rows_filtered
            assert pq.read_metadata(dst).num_rows == report.rows_out
            assert rejects.read_bytes().count(b"\n") == report.rows_rejected
            assert sorted(p.name for p in out.iterdir()) == ["out.parquet", "rejects.ndjson"]
            # One record a line: split at "\n" only (a value may hold U+2028, which splitlines
            # would take for a line break).
            lines = [json.loads(line) for line in rejects.read_text("utf-8").split("\n")[:-1]]
            if doc.exact:
                assert_as_generated(doc, report, dst, lines)
            elif doc.untouched:
                assert_still_there(doc.untouched, dst, lines)
        try:
            rows = sum(batch.num_rows for batch in engine.read_batches(str(src), **kwargs))
        except EngineError:
            rows = None
        if report is not None and rows is not None:
            assert rows == report.rows_out
    finally:
        shutil.rmtree(work)


def assert_as_generated(doc: Doc, report: Any, dst: Path, rejects: list[dict[str, Any]]) -> None:
    """The output is what the generator wrote: every record, every value, every reject."""
    assert report.rows_in == doc.records, "records read != records generated"
    assert [r["record"] for r in rejects] == doc.rejects, "rejects != the records generated bad"
    table = pq.read_table(dst)
    assert sorted(table.column_names) == sorted(doc.kinds)
    assert table.num_rows == len(doc.rows)
    for name, kind in doc.kinds.items():
        column = table.column(name)
        assert KIND_TYPES[kind](column.type), f"{name!r} ({kind}) read as {column.type}"
        got = column.to_pylist()
        if kind in JSON_TEXT_KINDS:
            got = [None if v is None else json.loads(v) for v in got]
        want = [row[name] for row in doc.rows]
        assert got == want, first_difference(name, got, want)


def first_difference(name: str, got: list[Any], want: list[Any]) -> str:
    at = next((i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w), None)
    return f"column {name!r}, row {at}: {got[at]!r} written, {want[at]!r} generated"


def assert_still_there(ids: list[str], dst: Path, rejects: list[dict[str, Any]]) -> None:
    """Every id is in the output (a value, or a column name: a cut header makes the first
    record the header) or in the raw text of a reject."""
    table = pq.read_table(dst)
    haystack = "\n".join([json.dumps(table.to_pylist(), default=str, ensure_ascii=False),
                          *table.column_names, *(r["raw"] for r in rejects)])
    lost = [i for i in ids if i not in haystack]
    assert not lost, f"records neither written nor rejected: {lost}"


def with_examples(docs: list[Doc], **fixed: Any) -> Callable[[Any], Any]:
    """Run the test on each of ``docs`` (as ``doc``, with ``fixed``) on every run."""

    def decorate(test: Any) -> Any:
        for doc in docs:
            test = example(doc=doc, **fixed)(test)
        return test

    return decorate
