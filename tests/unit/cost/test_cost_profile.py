"""Artefact checks: ``profiles/cost.json`` agrees with the template and the sizing profiles.

``chunkwise cost`` prices what ``chunkwise cost --measure`` stored; these fail when the template
(memory, routing, endpoints, alarms, ...) or a sizing profile changed since, and pass again once
the file is measured again. Whether the stored *counts* still hold is re-measured on moto by
``tests/functional/cost/test_cost_measure.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cost.measure import CONTRACT_SETS, sizing_points
from engine.cost.stack import read_stack
from engine.resources import resource

pytestmark = pytest.mark.artefact

ROOT = Path(__file__).resolve().parents[3]
STORED = ROOT / "profiles" / "cost.json"
REMEASURE = "run `chunkwise cost --measure` in the checkout (docs/cost.md)"


@pytest.fixture(scope="module")
def stored() -> dict:
    if not STORED.exists():
        pytest.fail(f"{STORED} is missing: {REMEASURE}")
    return json.loads(STORED.read_text(encoding="utf-8"))


def test_the_package_carries_the_checkouts_file(stored: dict) -> None:
    assert json.loads(resource("profiles/cost.json").read_text("utf-8")) == stored


def test_the_stack_is_the_templates(stored: dict) -> None:
    assert stored["stack"] == read_stack(ROOT / "template.yaml").to_dict(), \
        f"template.yaml changed since the cost profile was measured: {REMEASURE}"


def test_the_sizing_points_are_the_committed_profiles(stored: dict) -> None:
    for name, (_, profile) in CONTRACT_SETS.items():
        entry = stored["contracts"][name]
        assert entry["sizing_profile"] == f"profiles/{profile}"
        committed = json.loads((ROOT / "profiles" / profile).read_text(encoding="utf-8"))
        assert entry["sizing"] == sizing_points(committed), \
            f"profiles/{profile} changed since the cost profile was measured: {REMEASURE}"


def test_every_route_was_measured(stored: dict) -> None:
    orders, plain = stored["contracts"]["orders"], stored["contracts"]["none"]
    assert orders["file_wide"] and "map" not in orders["routes"]  # never split
    assert not plain["file_wide"] and plain["routes"]["map"]["parts"] >= 2
    for entry in (orders, plain):
        assert [r["status"] for r in entry["routes"]["single"]] == ["SUCCEEDED"] * 2
        assert entry["routes"]["failure"]["status"] == "FAILED"
        assert entry["routes"]["failure"]["calls"]["DLQRouteFunction"]["sqs:SendMessage"] == 1
    assert stored["command"] == "chunkwise cost --measure"
