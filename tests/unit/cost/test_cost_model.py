"""engine.cost.model: the bill of a known workload, worked out by hand from the counted calls."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from engine.cost.model import (
    CATEGORIES,
    FLOW_RECORD_BYTES,
    FLOW_RECORDS_PER_CALL,
    HOURS_PER_MONTH,
    Workload,
    estimate,
    per_file,
)
from engine.cost.prices import load_cost_prices
from engine.errors import UsageError
from engine.sizing.measure import Measurement
from engine.sizing.model import ModelParams, predict
from engine.sizing.sweep import SweepConfig, band_workloads

ROOT = Path(__file__).resolve().parents[3]

#: How AWS bills each operation the measured runs make, written out here on purpose (not taken
#: from the model): a new operation in the counts fails the test until it is priced here too.
S3_CLASS = {"PutObject": "put_copy_post_list", "ListObjectsV2": "put_copy_post_list",
            "CompleteMultipartUpload": "put_copy_post_list", "UploadPart": "put_copy_post_list",
            "CreateMultipartUpload": "put_copy_post_list",
            "GetObject": "get_and_other", "HeadObject": "get_and_other",
            "DeleteObject": "delete_and_cancel"}
DYNAMODB_UNIT = {"PutItem": "write_request_unit", "UpdateItem": "write_request_unit",
                 "DeleteItem": "write_request_unit", "GetItem": "read_request_unit",
                 "Query": "read_request_unit"}
#: Writes to each of the table's global secondary indexes per call: a new item enters the
#: index; an update sets ``updated_at``, the index's sort key, so its entry is deleted and put.
INDEX_WRITES = {"PutItem": 1, "UpdateItem": 2, "DeleteItem": 1}


@pytest.fixture(scope="module")
def data() -> dict:
    return json.loads((ROOT / "profiles" / "cost.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def prices():
    return load_cost_prices()


def _by_hand(run: dict, prices, data: dict, contract: str, fmt: str, files_per_day: float
             ) -> dict[str, float]:
    """One file of the measured ``run``, priced from its counted calls."""
    lines = dict.fromkeys(("s3", "dynamodb", "sqs", "glue"), 0.0)
    for ops in run["calls"].values():
        for name, n in ops.items():
            service, op = name.split(":")
            if service == "s3":
                lines["s3"] += n * prices.price("s3", S3_CLASS[op])
            elif service == "dynamodb":
                units = 1 + data["stack"]["table_indexes"] * INDEX_WRITES.get(op, 0)
                lines["dynamodb"] += n * units * prices.price("dynamodb", DYNAMODB_UNIT[op])
            elif service == "sqs":
                lines["sqs"] += n * prices.price("sqs", "request")
            else:
                assert service == "glue", name
                lines["glue"] += n * prices.price("glue", "catalog_request")
    lines["step_functions"] = run["transitions"] * prices.price("step_functions",
                                                                "state_transition")
    # the steps: each invocation at StepMemorySize for the median measured duration
    stack, routes = data["stack"], data["contracts"][contract]["routes"]
    runs = [*routes["single"], routes["failure"], *([routes["map"]] if "map" in routes else [])]
    lam = 0.0
    for fn, n in run["invocations"].items():
        if fn == "TransformFunction":
            continue
        seconds = sorted(s for r in runs for s in r["seconds"].get(fn, []))
        mid = len(seconds) // 2
        median = seconds[mid] if len(seconds) % 2 else (seconds[mid - 1] + seconds[mid]) / 2
        billed = math.ceil(median * 1000 - 1e-9) / 1000
        lam += n * (prices.lambda_.request
                    + stack["step_memory_mb"] / 1024 * billed * prices.lambda_.gb_second)
    # the transform: the sizing model's blended cost at the template's memory
    if run["invocations"].get("TransformFunction"):
        points = [p for p in data["contracts"][contract]["sizing"] if p["format"] == fmt]
        ms = [Measurement(src="", format=p["format"], size_bytes=p["size_bytes"],
                          block_size=p["block_size"], threads=p["threads"], contract=None,
                          exit_code=0, killed=False, peak_rss_bytes=p["peak_rss_bytes"],
                          cpu_s=0, wall_s=0, init_cpu_s=p["init_cpu_s"],
                          cold_cpu_s=p["cold_cpu_s"], warm_cpu_s=p["warm_cpu_s"],
                          report={"bytes_in": p["bytes_in"], "bytes_out": p["bytes_out"]})
              for p in points]
        (work,) = band_workloads(ms, run["bytes"], SweepConfig())[1]
        pred = predict(work, stack["transform_memory_mb"], prices.lambda_,
                       ModelParams(files_per_minute=files_per_day / 1440))
        lam += run["invocations"]["TransformFunction"] * pred.blended_cost
    lines["lambda"] = lam
    return lines


@pytest.mark.parametrize("contract", ["orders", "none"])
def test_a_measured_file_is_priced_from_its_counted_calls(data: dict, prices, contract: str
                                                          ) -> None:
    run = data["contracts"][contract]["routes"]["single"][0]
    workload = Workload(1000, ((run["bytes"], 1.0),), "csv", contract)
    result = estimate(data, workload, prices)
    files = 1000 * HOURS_PER_MONTH / 24
    hand = _by_hand(run, prices, data, contract, "csv", 1000)
    for line, per_file_usd in hand.items():
        assert result.breakdown[line] == pytest.approx(per_file_usd * files, rel=1e-9), line
    assert result.per_file_usd == pytest.approx(sum(hand.values()), rel=1e-9)
    # the fixed items, from the template's counts
    stack = data["stack"]
    calls = sum(n for ops in run["calls"].values() for n in ops.values())
    fixed = (sum(stack["interface_endpoints"].values()) * HOURS_PER_MONTH * 0.01
             + stack["kms_keys"] * 1.0 + stack["alarm_metrics"] * 0.10
             + calls * files * FLOW_RECORDS_PER_CALL * FLOW_RECORD_BYTES / 1e9 * 0.25)
    assert result.breakdown["fixed"] == pytest.approx(fixed, rel=1e-9)
    assert tuple(result.breakdown) == CATEGORIES
    assert sum(result.breakdown.values()) == pytest.approx(result.monthly_usd, rel=1e-12)
    assert result.budget_usd == 500 and result.within_budget


def test_a_failure_is_priced_from_the_failure_routes_calls(data: dict, prices) -> None:
    run = data["contracts"]["orders"]["routes"]["failure"]
    good = data["contracts"]["orders"]["routes"]["single"][0]
    mixed = estimate(data, Workload(1000, ((run["bytes"], 1.0),), failure_rate=0.25), prices)
    files = 1000 * HOURS_PER_MONTH / 24
    assert mixed.breakdown["sqs"] == pytest.approx(
        0.25 * files * run["calls"]["DLQRouteFunction"]["sqs:SendMessage"] * 4e-7)
    assert mixed.per_file["state_transitions"] == pytest.approx(
        0.75 * good["transitions"] + 0.25 * run["transitions"])


def test_a_map_file_of_the_measured_parts_is_the_measured_file(data: dict) -> None:
    measured = {**data["contracts"]["none"], "stack": data["stack"]}
    run = measured["routes"]["map"]
    size = run["parts"] * data["stack"]["range_bytes"]  # as many parts as were measured
    counts = per_file(measured, size, "map")
    assert counts["parts"] == run["parts"]
    assert counts["transitions"] == pytest.approx(run["transitions"])
    assert counts["invocations"] == pytest.approx(run["invocations"])
    for fn, ops in run["calls"].items():
        assert counts["calls"][fn] == pytest.approx(ops), fn
    # twice the parts: the per-part figures twice, the rest once
    double = per_file(measured, 2 * size, "map")
    part_states = sum(run["states"].count(s) for s in run["part_states"])
    assert double["transitions"] == pytest.approx(run["transitions"] + part_states)
    assert double["invocations"]["TransformFunction"] == 2 * run["invocations"][
        "TransformFunction"]
    assert double["invocations"]["PlanFunction"] == run["invocations"]["PlanFunction"]


def test_the_route_follows_the_template_and_the_contract(data: dict, prices) -> None:
    big = 3 * data["stack"]["max_single_bytes"]
    split = estimate(data, Workload(100, ((big, 1.0),), contract="none"), prices)
    whole = estimate(data, Workload(100, ((big, 1.0),), contract="orders"), prices)
    parts = math.ceil(big / data["stack"]["range_bytes"])
    assert split.per_file["lambda_requests"] > parts  # a transform per part, and the steps
    assert whole.per_file["state_transitions"] == data["contracts"]["orders"]["routes"][
        "single"][-1]["transitions"]  # file-wide: one transform, whatever the size


def test_cost_grows_with_files_and_size(data: dict, prices) -> None:
    base = Workload(1000, ((10**6, 1.0),))
    one = estimate(data, base, prices)
    more = estimate(data, replace(base, files_per_day=10_000), prices)
    larger = estimate(data, replace(base, size_mix=((10**8, 1.0),)), prices)
    assert more.monthly_usd - more.breakdown["fixed"] > 9 * (one.monthly_usd
                                                             - one.breakdown["fixed"])
    assert larger.breakdown["lambda"] > one.breakdown["lambda"]
    idle = estimate(data, replace(base, files_per_day=0), prices)
    assert idle.monthly_usd == pytest.approx(idle.breakdown["fixed"]) and idle.monthly_usd > 0


@pytest.mark.parametrize("workload", [
    Workload(10, contract="unmeasured"), Workload(10, format="xml"),
    Workload(10, failure_rate=1.5), Workload(-1), Workload(10, size_mix=())])
def test_what_cannot_be_priced_is_a_usage_error(data: dict, prices, workload: Workload) -> None:
    with pytest.raises(UsageError):
        estimate(data, workload, prices)
