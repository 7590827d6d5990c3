"""Pipeline faults on the local pipeline: the real ASL on moto, the real handlers (issue 7, part 4).

- A transform attempt that dies at a random batch or output commit is retried by the state
  machine, and the retry publishes exactly what a clean run publishes, byte for byte, with no
  partial object and no open multipart upload left behind.
- The same S3 event delivered twice, both executions running at once: one converts, one skips.
- DynamoDB throttling (and a lost response) on the metadata writes: retried by botocore, then by
  the state machine; the final status and counts are right, and a file whose retries run out is
  FAILED with nothing of it published.

Faults come from ``fault_injection`` (patches from the test, no production hooks). Parse blocks
are 64 KiB here (``block_size``, clean and faulty runs alike), so a 600 kB file has ten batches.
Output names carry the object's version (``engine.plan.source_id``), which each run's moto gives
anew: runs are compared with that name replaced by ``<id>``.
``CHUNKWISE_FAULT_SEEDS`` (default 6) sets how many random positions each scenario tries; run
with ``-s`` to see where each fault fired.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fault_injection import DynamoFaults, TransformFault, keys, multipart_uploads, objects
from test_pipeline_paths import HAPPY, _contract

import engine.plan
import engine.run
from engine.aws.local.runner import LocalPipeline
from engine.gen import generate
from engine.plan import source_id
from engine.sink.dataset import run_tag

BLOCK = 64 * 1024
RUNS = int(os.environ.get("CHUNKWISE_FAULT_SEEDS", "6"))
SEEDS = range(RUNS)
COUNTS = ("rows_in", "rows_out", "rows_rejected", "rows_filtered", "bytes_out")


def _small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (engine.run, engine.plan):  # where a run's options are built
        real = module.build_options
        monkeypatch.setattr(module, "build_options", lambda options, _real=real, **kw: _real(
            options, **{"block_size": BLOCK, **kw}))


def _named(keys: Any, record: dict[str, Any]) -> Any:
    """``keys`` (or a key → body mapping) with the run's output name replaced by ``<id>`` and
    the engine's tag of the object's version (a first run's) by ``<v>``."""
    name = source_id(f"s3://{record['bucket']}/{record['key']}", version=record["version"])
    tag = run_tag(record["version"], 0)

    def named(key: str) -> str:
        return key.replace(name, "<id>").replace(tag, "<v>")

    if isinstance(keys, dict):
        return {named(k): v for k, v in keys.items()}
    return [named(k) for k in keys]


@dataclass
class Clean:
    """A clean run of the file: what it published, its record, where a fault can go."""

    contract: Path
    path: Path
    objects: dict[str, bytes]
    record: dict[str, Any]
    batches: int
    commits: int

    @property
    def positions(self) -> int:
        return self.batches + self.commits

    @property
    def parquet(self) -> dict[str, bytes]:
        return {k: v for k, v in self.objects.items() if k.endswith(".parquet")}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clean]:
    tmp = tmp_path_factory.mktemp("faults")
    path = tmp / "orders.csv"
    report = generate("orders", path, size=600_000, seed=7, dirty=0.004)
    assert report.injected > 0  # rejects too: the rejects file is an output like the others
    contract = _contract(tmp)
    with pytest.MonkeyPatch.context() as mp:
        _small_blocks(mp)
        counter = TransformFault(mp)
        with LocalPipeline(contract=contract) as pipe:
            result = pipe.run(path)
            assert result["status"] == "SUCCEEDED", result["error"]
            published = _named(objects(pipe), result["record"])
            assert multipart_uploads(pipe) == []
    assert counter.batches >= 8 and counter.commits >= 3
    yield Clean(contract, path, published, result["record"], counter.batches, counter.commits)


def _assert_same_as_clean(pipe: LocalPipeline, result: dict[str, Any], clean: Clean) -> None:
    """One output, byte-identical to the clean run's; nothing partial; the record right."""
    assert result["status"] == "SUCCEEDED", result["error"]
    assert result["states"] == HAPPY
    record = result["record"]
    published = _named(objects(pipe), record)
    assert sorted(published) == sorted(clean.objects)
    assert [k for k in published if k.endswith(".manifest.json")] == [
        "orders/_manifests/<id>.manifest.json"]
    for key, body in clean.parquet.items():
        assert published[key] == body, f"{key} differs from the clean run's"
    rejects = "orders/_rejects/<id>.rejects.ndjson"
    assert published[rejects] == clean.objects[rejects]
    assert record["status"] == "SUCCEEDED"
    assert {k: record[k] for k in COUNTS} == {k: clean.record[k] for k in COUNTS}
    assert record["rows_in"] == (record["rows_out"] + record["rows_rejected"]
                                 + record["rows_filtered"])
    assert _named([record["manifest"]], record) == [
        "s3://chunkwise-processed/orders/_manifests/<id>.manifest.json"]
    assert result["dlq"] == []


# ---------------------------------------------------------------------------------------------
# A transform attempt that dies part-way


@pytest.mark.parametrize("seed", SEEDS)
def test_transform_failing_at_a_random_point_is_replayed_identically(
        clean: Clean, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's own failure path: it aborts its uploads and deletes what it published."""
    position = random.Random(seed).randrange(clean.positions)
    _small_blocks(monkeypatch)
    fault = TransformFault(monkeypatch, position=position, batches=clean.batches)
    with LocalPipeline(contract=clean.contract) as pipe:
        result = pipe.run(clean.path)
        assert len(fault.fired) == 1, f"position {position} never reached"
        print(f"\nfailed at {fault.fired[0]} of {clean.batches} batches + {clean.commits} "
              "commits, replayed")
        assert result["attempts"]["Transform"] == 2
        assert result["retry_waits"] == [2.0]
        _assert_same_as_clean(pipe, result, clean)
        assert multipart_uploads(pipe) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_killed_transform_is_replayed_identically(
        clean: Clean, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed process runs no cleanup: its open uploads stay open, its published files stay.

    The retry overwrites every key with the same bytes; the dead attempt's multipart uploads are
    never completed (invisible, reaped by the bucket's AbortIncompleteMultipartUpload rule).
    The kill is reported as an error the ASL retries (see the Lambda.Unknown test below for the
    name AWS gives an out-of-memory or timed-out function).
    """
    position = random.Random(1000 + seed).randrange(clean.positions)
    _small_blocks(monkeypatch)
    fault = TransformFault(monkeypatch, position=position, batches=clean.batches, hard=True)
    with LocalPipeline(contract=clean.contract) as pipe:
        result = pipe.run(clean.path)
        assert len(fault.fired) == 1
        assert result["attempts"]["Transform"] == 2
        _assert_same_as_clean(pipe, result, clean)
        stale = _named(multipart_uploads(pipe), result["record"])
        print(f"\nkilled at {fault.fired[0]}: {len(stale)} multipart uploads left open")
        # at most one upload per file the dead attempt had open (partition files, rejects), all
        # for keys the retry completed. A file smaller than one part opens no upload at all: it
        # is sent by one PutObject at its commit, so a kill leaves nothing of it behind.
        assert set(stale) <= set(clean.objects)
        assert len(stale) == len(set(stale))


@pytest.mark.parametrize("seed", range(max(3, RUNS // 2)))
def test_killed_lambda_as_aws_reports_it_publishes_nothing_half_done(
        clean: Clean, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """An out-of-memory or timed-out function is ``Lambda.Unknown`` to Step Functions.

    The ASL retries it like a transient error, so the file ends exactly as a clean run. (Were
    it not retried, the file would end FAILED through the error handler, and a kill during the
    commits would leave the files already completed visible.)
    """
    position = random.Random(2000 + seed).randrange(clean.positions)  # reading or committing
    _small_blocks(monkeypatch)
    fault = TransformFault(monkeypatch, position=position, batches=clean.batches, hard=True,
                           error="Lambda.Unknown")
    with LocalPipeline(contract=clean.contract) as pipe:
        result = pipe.run(clean.path)
        assert len(fault.fired) == 1
        print(f"\nLambda.Unknown at {fault.fired[0]}, retried")
        assert result["attempts"]["Transform"] == 2
        _assert_same_as_clean(pipe, result, clean)
        assert set(_named(multipart_uploads(pipe), result["record"])) <= set(clean.objects)


# ---------------------------------------------------------------------------------------------
# The same event twice, at once


@pytest.mark.parametrize("seed", range(max(3, RUNS // 2)))
def test_duplicate_event_delivered_concurrently_converts_once(clean: Clean, seed: int) -> None:
    with LocalPipeline(contract=clean.contract) as pipe:
        obj = pipe.upload(clean.path)
        copies = 2 + seed % 3  # two, three, four deliveries of one event, started at once
        results = pipe.run_many([obj] * copies, concurrency=copies)
        published = objects(pipe)
        uploads = multipart_uploads(pipe)
    converted = [r for r in results if not r["skipped"]]
    skipped = [r for r in results if r["skipped"]]
    assert len(converted) == 1 and len(skipped) == copies - 1
    assert converted[0]["status"] == "SUCCEEDED" and converted[0]["states"] == HAPPY
    for r in skipped:
        assert r["status"] == "SUCCEEDED"
        assert r["states"] == ["Ingest", "IsDuplicate", "Skipped"]
        assert r["dlq"] == [] and r["outputs"] == []
    assert len({r["file_id"] for r in results}) == 1
    assert len({r["execution_arn"] for r in results}) == copies
    published = _named(published, converted[0]["record"])
    assert sorted(published) == sorted(clean.objects)
    for key, body in clean.parquet.items():
        assert published[key] == body
    assert uploads == []
    record = converted[0]["record"]
    assert record["status"] == "SUCCEEDED"
    assert {k: record[k] for k in COUNTS} == {k: clean.record[k] for k in COUNTS}
    assert pipe.unmatched_dlq == []


# ---------------------------------------------------------------------------------------------
# DynamoDB throttling on the metadata writes

#: The metadata writes of a happy run, in order (request numbers when nothing is retried).
WRITES = ("Ingest", "Validate", "Transform", "Output")  # claim, VALIDATED, TRANSFORMED, SUCCEEDED
SDK_ATTEMPTS = 3  # engine.aws.clients.client_config: standard mode, total_max_attempts 3


@pytest.mark.parametrize("seed", range(RUNS + 2))
def test_throttled_metadata_writes_are_retried(
        clean: Clean, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``n`` throttled requests in a row from the ``k``-th write: botocore retries each call
    (three attempts), then the state machine retries the step; the file still succeeds."""
    rng = random.Random(seed)
    k = rng.randrange(len(WRITES))
    n = rng.randint(1, 11)  # 12 would exhaust the step's four attempts
    code = rng.choice(["throttle", "throttling"])
    _small_blocks(monkeypatch)
    with LocalPipeline(contract=clean.contract) as pipe:
        faults = DynamoFaults(monkeypatch, {k + 1 + i: code for i in range(n)})
        result = pipe.run(clean.path)
        _assert_same_as_clean(pipe, result, clean)
        assert multipart_uploads(pipe) == []
    print(f"\n{n} x {code} from write {k + 1}: {result['attempts']}")
    assert faults.count(code) == n
    state = WRITES[k]
    assert result["attempts"][state] == 1 + n // SDK_ATTEMPTS
    assert len(result["retry_waits"]) == n // SDK_ATTEMPTS
    assert len(faults.delays) == n - n // SDK_ATTEMPTS  # botocore's own retries
    assert all(a == 1 for s, a in result["attempts"].items() if s != state)


@pytest.mark.parametrize("k", range(len(WRITES)))
def test_metadata_write_throttled_beyond_every_retry_fails_cleanly(
        clean: Clean, k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twelve throttles in a row exhaust botocore's and the state machine's retries of the k-th
    write: the file is FAILED (the error handler's write gets through), nothing is published."""
    _small_blocks(monkeypatch)
    exhausted = SDK_ATTEMPTS * 4
    with LocalPipeline(contract=clean.contract) as pipe:
        faults = DynamoFaults(monkeypatch, {k + 1 + i: "throttle" for i in range(exhausted)})
        result = pipe.run(clean.path)
        left, uploads = keys(pipe), multipart_uploads(pipe)
    state = WRITES[k]
    assert faults.count("throttle") == exhausted
    assert result["status"] == "FAILED"
    assert result["states"][-3:] == [state, "ErrorHandler", "Failed"]
    assert result["attempts"][state] == 4
    assert result["error"]["type"] == "TransientError"
    assert "ProvisionedThroughputExceededException" in result["error"]["message"]
    assert result["record"]["status"] == "FAILED"
    assert result["record"]["error_type"] == "TransientError"
    assert result["dlq"] == []
    assert left == [] and uploads == []


def test_lost_response_to_the_claim_does_not_skip_the_file(
        clean: Clean, monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim is applied but its response is lost (a 500): botocore sends the conditional put
    again, which now finds the record. That is this ingest's own claim, not a duplicate."""
    _small_blocks(monkeypatch)
    with LocalPipeline(contract=clean.contract) as pipe:
        faults = DynamoFaults(monkeypatch, {1: "lost"})
        result = pipe.run(clean.path)
        _assert_same_as_clean(pipe, result, clean)
    assert faults.requests[:2] == [("PutItem", "lost"), ("PutItem", "ok")]
    assert result["attempts"]["Ingest"] == 1


@pytest.mark.parametrize("write", [2, 3, 4])
def test_lost_response_to_a_status_update_is_harmless(
        clean: Clean, write: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Status updates are plain SETs: applying one twice changes nothing."""
    _small_blocks(monkeypatch)
    with LocalPipeline(contract=clean.contract) as pipe:
        faults = DynamoFaults(monkeypatch, {write: "lost"})
        result = pipe.run(clean.path)
        _assert_same_as_clean(pipe, result, clean)
    assert faults.count("lost") == 1
    assert all(a == 1 for a in result["attempts"].values())
