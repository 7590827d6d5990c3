"""Load: a few hundred files through the local pipeline, back to back and 8 at a time (issue 7, 5).

A generated corpus of mixed sizes (mostly a few kB, some up to a MB, a handful of 2-4 MB), gzip'd
or not, under the orders contract or none, and some bad on purpose: a wrong header, invalid
UTF-8 in the head or past the first MiB, too many rejects for the contract, a truncated gzip.
Every file must end SUCCEEDED or in the DLQ with the reason it was built to fail with, and the
counts must reconcile across the DynamoDB records, the manifests, the Parquet files themselves
(row counts read from their footers), the rejects files and the DLQ, against the generator's
own ground truth (rows written, faults injected, cancelled orders among the clean rows).

``CHUNKWISE_LOAD_FILES`` sets the corpus size (default 48, so CI stays within its budget;
``CHUNKWISE_LOAD_FILES=200`` is the full run). Durations are printed, never asserted.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from fault_injection import multipart_uploads, objects
from test_pipeline_paths import REPO, _contract

from engine.aws.local.runner import LocalPipeline
from engine.gen import generate
from engine.plan import source_id
from engine.sink.dataset import run_tag

FILES = int(os.environ.get("CHUNKWISE_LOAD_FILES", "48"))
PROCESSED = "chunkwise-processed"
COUNTS = ("rows_in", "rows_out", "rows_rejected", "rows_filtered")


@dataclass
class Spec:
    """One file of the corpus and what must become of it."""

    name: str  # the object key
    path: Path
    kind: str
    error: str | None = None  # the DLQ reason, or None for a file that must succeed
    rows: int = 0  # data records written
    rejected: int = 0  # records given a fault (each breaks one check of the contract)
    filtered: int = 0  # clean records the contract's filter drops (status cancelled)
    contract: bool = True

    @property
    def stem(self) -> str:
        return self.name.rsplit("/", 1)[-1].split(".", 1)[0]

    @property
    def folder(self) -> str:
        return "orders" if self.contract else self.name.rsplit("/", 1)[0]


def _truth(spec: Spec, text: bytes, injected: Path | None) -> None:
    """Rows, faults and cancelled (or status-less) clean orders of a generated CSV."""
    bad: set[int] = set()
    if injected is not None and injected.exists():
        bad = {json.loads(line)["record"] for line in injected.read_text().splitlines()}
    rows = list(csv.DictReader(io.StringIO(text.decode("utf-8"), newline="")))
    spec.rows = len(rows)
    spec.rejected = len(bad)
    # the contract's filter is status != 'cancelled', and a null counts as false: an empty
    # status (null by options.null_values, as --dirty writes some) is filtered out too
    spec.filtered = sum(1 for i, r in enumerate(rows, 1)
                        if i not in bad and r.get("status") in ("cancelled", ""))


def build_corpus(directory: Path, n: int, seed: int = 2025) -> list[Spec]:
    """``n`` files: about 70 % clean orders, 8 % orders with a few rejects, 7 % without a
    contract, 15 % bad; sizes mostly 2-64 kB, one in ten up to 1 MB, ``max(1, n // 50)`` of
    2-4 MB. Deterministic for (``n``, ``seed``)."""
    rng = random.Random(seed)
    bad_kinds = ["wrong_header", "utf8_head", "too_many_rejects", "truncated_gzip"]
    n_bad = max(len(bad_kinds) + 1, round(n * 0.15))
    n_large = max(1, n // 50)
    n_rejects = max(1, round(n * 0.08))
    n_plain = max(1, round(n * 0.07))
    kinds = (["large"] * n_large + [bad_kinds[i % len(bad_kinds)] for i in range(n_bad - 1)]
             + ["utf8_tail"] + ["rejects"] * n_rejects + ["plain"] * n_plain)
    kinds += ["clean"] * (n - len(kinds))
    rng.shuffle(kinds)
    specs: list[Spec] = []
    for i, kind in enumerate(kinds[:n]):
        size = rng.randint(2_000, 64_000) if rng.random() < 0.9 else rng.randint(64_000, 1_000_000)
        gz = kind in ("clean", "large") and rng.random() < 0.15 or kind == "truncated_gzip"
        if kind == "plain":
            name = f"incoming/p{i:04d}.ndjson"
        else:
            name = f"orders/o{i:04d}.csv" + (".gz" if gz else "")
        path = directory / name.replace("/", "_")
        spec = Spec(name, path, kind, contract=kind != "plain")
        text_path = directory / f"{spec.stem}.text"
        fmt = "ndjson" if kind == "plain" else "csv"
        dirty = {"rejects": 0.004, "too_many_rejects": 0.05}.get(kind, 0.0)
        if kind == "large":
            size = rng.randint(2_000_000, 4_000_000)
        elif kind == "rejects":
            size = max(size, 100_000)  # enough rows that 0.4 % stays under max_ratio 1 %
        elif kind == "too_many_rejects":
            size = max(size, 30_000)
        elif kind == "utf8_tail":
            size = 1_300_000  # the bad byte lies past validate's 1 MiB head
        report = generate("orders", text_path, size=size, seed=seed + i, dirty=dirty, fmt=fmt)
        text = text_path.read_bytes()
        injected = Path(str(text_path) + ".injected.ndjson") if dirty else None
        if kind == "plain":
            spec.rows = report.rows
        else:
            _truth(spec, text, injected)
        if kind == "wrong_header":
            header, rest = text.split(b"\n", 1)
            text = header.replace(b"customer_id", b"client_id") + b"\n" + rest
            spec.error = "SchemaError"
        elif kind in ("utf8_head", "utf8_tail"):
            at = text.index(b"\n", 200 if kind == "utf8_head" else 1_200_000) + 1
            text = text[:at] + text[at:].replace(b",", b",\xff", 1)
            spec.error = "InputFormatError"
        elif kind == "too_many_rejects":
            spec.error = "ValidationError"
        data = gzip.compress(text, mtime=0) if gz else text
        if kind == "truncated_gzip":
            data = data[: len(data) * 2 // 3]
            spec.error = "InputFormatError"
        path.write_bytes(data)
        text_path.unlink()
        specs.append(spec)
    return specs


@dataclass
class Outcome:
    """One pass over the corpus: results, what the bucket holds, figures."""

    concurrency: int
    results: list[dict[str, Any]]
    objects: dict[str, bytes]
    uploads: list[str]
    records: list[dict[str, Any]]
    unmatched_dlq: list[Any]
    seconds: float
    #: each file's output name (engine.plan.source_id: the object's key and this run's version)
    names: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def canonical(self) -> dict[str, bytes]:
        """The objects with each file's output name as its key, the same in every run."""
        out = dict(self.objects)
        for name, key, version in zip(self.names, self.extra["keys"], self.extra["versions"],
                                      strict=True):
            tag = run_tag(version, 0)  # the engine's tag of a partition file's first run
            out = {k.replace(name, key.replace("/", "_")).replace(tag, "v"): v
                   for k, v in out.items()}
        return out


def _run(specs: list[Spec], contract: Path, concurrency: int) -> Outcome:
    with LocalPipeline(contract=contract) as pipe:
        uploaded = [pipe.upload(s.path, key=s.name) for s in specs]
        started = time.perf_counter()
        results = pipe.run_many(uploaded, concurrency=concurrency)
        seconds = time.perf_counter() - started
        ddb = pipe.client("dynamodb")
        from engine.aws.executions import plain_item

        records = [plain_item(i) for page in ddb.get_paginator("scan").paginate(
            TableName="chunkwise-metadata", ConsistentRead=True) for i in page["Items"]]
        names = [source_id(f"s3://{o['bucket']}/{o['key']}", version=o["version"])
                 for o in uploaded]
        return Outcome(concurrency, results, objects(pipe), multipart_uploads(pipe), records,
                       list(pipe.unmatched_dlq), seconds, names,
                       {"keys": [s.name for s in specs],
                        "versions": [o["version"] for o in uploaded]})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Spec], Path]:
    tmp = tmp_path_factory.mktemp("load")
    # one aggregate per file (the shipped contract writes every file's to one fixed key)
    aggregate = yaml.safe_load((REPO / "contracts" / "orders.yaml").read_text())["aggregate"]
    contract = _contract(tmp, aggregate={**aggregate, "path": "_aggregates/"})
    return build_corpus(tmp, FILES), contract


@pytest.fixture(scope="module")
def outcomes(corpus: tuple[list[Spec], Path]) -> dict[int, Outcome]:
    specs, contract = corpus
    return {c: _run(specs, contract, c) for c in (1, 8)}


def _report(outcome: Outcome, specs: list[Spec]) -> str:
    secs = sorted(r["seconds"] for r in outcome.results if r["seconds"] is not None)
    kinds = Counter(s.kind for s in specs)
    return (f"\n{len(specs)} files ({dict(kinds)}), concurrency {outcome.concurrency}: "
            f"{outcome.seconds:.1f} s wall, {outcome.seconds / len(specs):.3f} s/file; execution "
            f"median {statistics.median(secs):.3f} s, p95 {secs[int(len(secs) * 0.95) - 1]:.3f}"
            f" s, max {secs[-1]:.3f} s; {len(outcome.objects)} objects, "
            f"{sum(len(r['dlq']) for r in outcome.results)} DLQ messages")


def _same_rows(key: str, one: bytes, other: bytes) -> bool:
    """Files of the dataset without a contract: the same rows in the same columns.

    Its schema is its first file's (docs/datasets.md), and which file is first depends on the
    order the executions reach the output step: a file read with its own inferred types
    (``timestamp[s]``) or with the dataset's (``timestamp[ms]``) holds the same values and Glue
    types, with other Arrow metadata in its footer.
    """
    if not key.startswith("incoming/") or not key.endswith(".parquet"):
        return False
    return pq.read_table(io.BytesIO(one)).equals(pq.read_table(io.BytesIO(other)))


@pytest.mark.parametrize("concurrency", [1, 8])
def test_every_file_ends_succeeded_or_in_the_dlq_and_counts_reconcile(
        corpus: tuple[list[Spec], Path], outcomes: dict[int, Outcome], concurrency: int) -> None:
    specs, _ = corpus
    out = outcomes[concurrency]
    print(_report(out, specs))
    assert len(out.results) == len(specs)
    by_file = {r["file_id"]: r for r in out.results}
    assert len(by_file) == len(specs)  # one execution, one file_id each
    assert out.unmatched_dlq == [] and out.uploads == []
    records = {r["file_id"]: r for r in out.records}
    assert sorted(records) == sorted(by_file)  # a record for every file, and no other

    manifests = {k: json.loads(v) for k, v in out.objects.items()
                 if k.endswith(".manifest.json")}
    listed: set[str] = set()  # objects some manifest names
    totals = Counter()
    for spec, result, name in zip(specs, out.results, out.names, strict=True):
        record = records[result["file_id"]]
        assert record["key"] == spec.name
        manifest_key = f"{spec.folder}/_manifests/{name}.manifest.json"
        mine = {k for k in out.objects if k.startswith(f"{spec.folder}/")
                and k.rsplit("/", 1)[-1].startswith(name)}
        if spec.error is None:
            assert result["status"] == "SUCCEEDED", (spec.name, result["error"])
            assert not result["skipped"] and result["dlq"] == []
            assert record["status"] == "SUCCEEDED"
            counts = {k: record[k] for k in COUNTS}
            expected = {"rows_in": spec.rows, "rows_rejected": spec.rejected,
                        "rows_filtered": spec.filtered,
                        "rows_out": spec.rows - spec.rejected - spec.filtered}
            assert counts == expected, spec.name
            manifest = manifests[manifest_key]
            assert manifest["file_id"] == result["file_id"]
            assert record["manifest"] == f"s3://{PROCESSED}/{manifest_key}"
            assert {k: manifest[k] for k in COUNTS} == counts
            data = [u for u in manifest["checksums"]]
            rows = 0
            for uri in data:
                key = uri.split("/", 3)[3]
                assert key in out.objects, f"{uri} in the manifest, not in the bucket"
                rows += pq.read_metadata(io.BytesIO(out.objects[key])).num_rows
                listed.add(key)
            assert rows == record["rows_out"], spec.name
            assert record["bytes_out"] == sum(len(out.objects[u.split("/", 3)[3]])
                                              for u in data)
            extras = mine - {manifest_key} - {u.split("/", 3)[3] for u in data}
            if spec.contract:
                rejects = f"orders/_rejects/{name}.rejects.ndjson"
                aggregate = f"orders/_aggregates/{name}.parquet"
                engine_manifest = f"orders/_chunkwise/{name}.json"  # partition_by: a directory
                assert extras == {rejects, aggregate, engine_manifest}, spec.name
                assert out.objects[rejects].count(b"\n") == spec.rejected
                listed |= extras
            else:
                assert extras == set()
            listed.add(manifest_key)
            totals.update(counts)
        else:
            assert result["status"] == "FAILED", spec.name
            assert result["states"][-2:] == ["DLQRoute", "Failed"], (spec.name, result["states"])
            assert result["error"]["type"] == spec.error, (spec.name, result["error"])
            (message,) = result["dlq"]
            assert message["error_type"] == spec.error and message["key"] == spec.name
            assert message["replay"]["key"] == spec.name and message["replay"]["replay"]
            assert record["status"] == "FAILED" and record["error_type"] == spec.error
            if spec.error == "ValidationError":  # the rejects file says why; nothing else
                rejects = f"orders/_rejects/{name}.rejects.ndjson"
                assert mine == {rejects}
                assert out.objects[rejects].count(b"\n") > 0.01 * spec.rows
                listed.add(rejects)
            else:
                assert mine == set(), (spec.name, mine)
            totals["failed"] += 1
            totals[f"failed_{spec.error}"] += 1
    assert set(out.objects) == listed  # no object that no file accounts for
    good = [s for s in specs if s.error is None]
    assert totals["rows_in"] == sum(s.rows for s in good)
    assert totals["rows_in"] == (totals["rows_out"] + totals["rows_rejected"]
                                 + totals["rows_filtered"])
    assert totals["failed"] == sum(len(r["dlq"]) for r in out.results) == len(specs) - len(good)
    parquet_rows = sum(pq.read_metadata(io.BytesIO(v)).num_rows for k, v in out.objects.items()
                       if k.endswith(".parquet") and "/_aggregates/" not in k)
    assert parquet_rows == totals["rows_out"]


def test_back_to_back_and_eight_at_a_time_publish_the_same_bytes(
        outcomes: dict[int, Outcome]) -> None:
    serial, concurrent = outcomes[1].canonical(), outcomes[8].canonical()
    assert sorted(serial) == sorted(concurrent)
    differ = [k for k in serial if not k.endswith(".json")  # manifests: times and versions
              and serial[k] != concurrent[k] and not _same_rows(k, serial[k], concurrent[k])]
    assert differ == []
