"""``chunkwise cost --measure`` again, on moto: the stored per-file counts still hold.

Every route of every contract set runs again on the local pipeline (the real state machine and
handlers); the states entered, the state transitions, the invocations and the AWS calls per
function must be the ones ``profiles/cost.json`` holds (the handlers' durations are not
compared: they are timings). A change that adds a call or a state (a new read of the contract,
a retry) fails here until ``chunkwise cost --measure`` is run and its file committed. Then the
bill of a known workload is worked out from the calls counted in this run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cost.measure import CONTRACT_SETS, measure_contract_set
from engine.cost.model import HOURS_PER_MONTH, Workload, estimate
from engine.cost.prices import load_cost_prices

ROOT = Path(__file__).resolve().parents[3]
COUNTED = ("states", "transitions", "invocations", "calls", "status", "bytes")


@pytest.fixture(scope="module")
def stored() -> dict:
    return json.loads((ROOT / "profiles" / "cost.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def remeasured() -> dict[str, dict]:
    return {name: measure_contract_set(name) for name in CONTRACT_SETS}


def _runs(entry: dict) -> dict[str, dict]:
    routes = entry["routes"]
    runs = {f"single-{i}": run for i, run in enumerate(routes["single"])}
    runs["failure"] = routes["failure"]
    if "map" in routes:
        runs["map"] = routes["map"]
    return runs


@pytest.mark.parametrize("name", list(CONTRACT_SETS))
def test_the_stored_counts_still_hold(stored: dict, remeasured: dict[str, dict], name: str
                                      ) -> None:
    now, then = _runs(remeasured[name]), _runs(stored["contracts"][name])
    assert set(now) == set(then)
    for route, run in now.items():
        for key in COUNTED:
            assert run[key] == then[route][key], (
                f"{name} {route}: {key} changed since profiles/cost.json was measured: run "
                f"`chunkwise cost --measure`\n now:    {run[key]}\n stored: {then[route][key]}")
        assert set(run["seconds"]) == set(run["invocations"])
    assert remeasured[name]["file_wide"] == stored["contracts"][name]["file_wide"]


def test_the_bill_of_a_known_workload_from_the_calls_counted_now(
        stored: dict, remeasured: dict[str, dict]) -> None:
    """2,000 files a day, half of them failing, contract orders: the S3, DynamoDB, SQS, Glue
    and Step Functions lines are the calls and states counted in this run, times the prices."""
    data = {**stored, "contracts": {"orders": {**stored["contracts"]["orders"],
                                               "routes": remeasured["orders"]["routes"]}}}
    prices = load_cost_prices()
    good = remeasured["orders"]["routes"]["single"][0]
    bad = remeasured["orders"]["routes"]["failure"]
    result = estimate(data, Workload(2000, ((good["bytes"], 1.0),), failure_rate=0.5), prices)
    files = 2000 * HOURS_PER_MONTH / 24

    def counted(service: str, ops: set[str] | None = None) -> float:
        return sum(0.5 * n for run in (good, bad) for calls in run["calls"].values()
                   for name, n in calls.items()
                   if name.startswith(f"{service}:")
                   and (ops is None or name.split(":")[1] in ops))

    put_class = counted("s3", {"PutObject", "ListObjectsV2"})
    get_class = counted("s3", {"GetObject", "HeadObject"})
    assert put_class + get_class == counted("s3")  # no other S3 operation on these routes
    assert result.breakdown["s3"] == pytest.approx(files * (put_class * 5e-6
                                                            + get_class * 4e-7))
    puts, updates = counted("dynamodb", {"PutItem"}), counted("dynamodb", {"UpdateItem"})
    assert puts + updates == counted("dynamodb")
    # each write also writes the table's indexes (by_status): a put enters one, an update
    # moves its entry (it sets updated_at, the index's sort key)
    indexes = stored["stack"]["table_indexes"]
    assert result.breakdown["dynamodb"] == pytest.approx(
        files * (puts * (1 + indexes) + updates * (1 + 2 * indexes)) * 6.25e-7)
    assert result.breakdown["sqs"] == pytest.approx(files * counted("sqs") * 4e-7)
    assert result.breakdown["glue"] == pytest.approx(files * counted("glue") * 1e-6)
    assert result.breakdown["step_functions"] == pytest.approx(
        files * 0.5 * (good["transitions"] + bad["transitions"]) * 2.5e-5)
    assert sum(result.breakdown.values()) == pytest.approx(result.monthly_usd, rel=1e-12)
