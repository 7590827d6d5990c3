"""The state machine definition: its states, retry and catch policy, substitutions and lint."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from engine import errors
from engine.aws.local.asl import (
    FUNCTIONS,
    PERMANENT_ERRORS,
    TRANSIENT_ERRORS,
    asl_path,
    render_definition,
    substitutions,
)


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return json.loads(render_definition(substitutions()))


def _tasks(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for name, state in states.items():
        if state["Type"] == "Task":
            found[name] = state
        if state["Type"] == "Map":
            found.update(_tasks(state["ItemProcessor"]["States"]))
    return found


def test_definition_is_json_as_committed_with_arn_placeholders_in_strings() -> None:
    text = asl_path().read_text(encoding="utf-8")
    assert "arn:aws" not in text  # no account, region or function baked in
    placeholders = set(re.findall(r"\$\{([^}]+)\}", text))
    assert placeholders == {f"{name}Arn" for name in FUNCTIONS}
    raw = json.loads(text)  # editors, the AWS Toolkit graph and statelint read the file itself
    resources = {task["Resource"] for task in _tasks(raw["States"]).values()}
    assert resources == {f"${{{name}Arn}}" for name in FUNCTIONS}  # each one whole JSON string
    with pytest.raises(KeyError, match="IngestFunctionArn"):
        render_definition({f"{name}Arn": "x" for name in FUNCTIONS if name != "IngestFunction"})


def test_error_lists_are_the_hierarchy_of_engine_errors() -> None:
    # every class deriving from PermanentError (the base too: it is raised as such), by name
    assert PERMANENT_ERRORS == {"PermanentError", "ValidationError", "SchemaError",
                                "InputFormatError", "InputNotFoundError", "ContractError",
                                "UsageError"}
    for name in PERMANENT_ERRORS:
        assert issubclass(getattr(errors, name), errors.PermanentError), name
    engine_transient = {n for n in TRANSIENT_ERRORS if not n.startswith(("States.", "Lambda.",
                                                                         "DynamoDB."))}
    assert engine_transient == {"TransientError"}
    assert not PERMANENT_ERRORS & TRANSIENT_ERRORS
    # AccountingError is neither: a defect goes to the error handler (States.ALL), as do the rest
    assert "AccountingError" not in PERMANENT_ERRORS | TRANSIENT_ERRORS


def test_states_and_transitions(asl: dict[str, Any]) -> None:
    states = asl["States"]
    assert asl["StartAt"] == "Ingest"
    assert set(states) == {"Ingest", "IsDuplicate", "Skipped", "Validate", "SizeRoute",
                           "Transform", "Plan", "TransformRanges", "Output", "Done", "DLQRoute",
                           "ErrorHandler", "Failed"}
    assert states["Ingest"]["Next"] == "IsDuplicate"
    assert states["IsDuplicate"]["Choices"] == [
        {"Variable": "$.route", "StringEquals": "skip", "Next": "Skipped"}]
    assert states["IsDuplicate"]["Default"] == "Validate"
    assert states["Skipped"]["Type"] == "Succeed"
    assert states["Validate"]["Next"] == "SizeRoute"
    assert states["SizeRoute"]["Choices"] == [
        {"Variable": "$.route", "StringEquals": "map", "Next": "Plan"}]
    assert states["SizeRoute"]["Default"] == "Transform"
    assert states["Transform"]["Next"] == "Output"
    assert states["Plan"]["Next"] == "TransformRanges"
    assert states["TransformRanges"]["Next"] == "Output"
    assert states["Output"]["Next"] == "Done"
    assert states["Done"]["Type"] == "Succeed"
    assert states["DLQRoute"]["Next"] == states["ErrorHandler"]["Next"] == "Failed"
    assert states["Failed"]["Type"] == "Fail"
    # the execution fails with the caught error's name, which is what decides the exit code
    assert states["Failed"]["ErrorPath"] == "$.error.Error"
    assert states["Failed"]["CausePath"] == "$.error.Cause"


def test_map_of_ranges(asl: dict[str, Any]) -> None:
    m = asl["States"]["TransformRanges"]
    assert m["Type"] == "Map"
    assert m["ItemsPath"] == "$.ranges"
    assert m["ItemSelector"]["range.$"] == "$$.Map.Item.Value"
    assert "state.$" in m["ItemSelector"] or "state" in m["ItemSelector"]
    # the template's MapMaxConcurrency reaches the Map through the state: Plan puts it there
    assert m["MaxConcurrencyPath"] == "$.map_max_concurrency"
    assert "MaxConcurrency" not in m
    assert m["ResultPath"] == "$.parts"
    proc = m["ItemProcessor"]
    assert proc["ProcessorConfig"] == {"Mode": "INLINE"}
    assert proc["StartAt"] == "TransformPart"
    part = proc["States"]["TransformPart"]
    assert part["Resource"].endswith(":function:TransformFunction")
    assert part.get("End") is True
    assert "Retry" not in m  # retrying the Map would redo every range: each part retries itself
    assert [c["Next"] for c in m["Catch"]] == ["DLQRoute", "ErrorHandler"]


def test_every_task_retries_transient_errors_and_catches_the_rest(asl: dict[str, Any]) -> None:
    tasks = _tasks(asl["States"])
    assert set(tasks) == {"Ingest", "Validate", "Plan", "Transform", "TransformPart", "Output",
                          "DLQRoute", "ErrorHandler"}
    for name, task in tasks.items():
        [retry] = task["Retry"]
        assert set(retry.pop("ErrorEquals")) == TRANSIENT_ERRORS, name
        assert retry == {"IntervalSeconds": 2, "BackoffRate": 2.0, "MaxAttempts": 3}, name
        assert task["Resource"].startswith("arn:aws:lambda:us-east-1:123456789012:function:")
    for name in ("Ingest", "Validate", "Plan", "Transform", "Output"):
        permanent, rest = tasks[name]["Catch"]
        assert set(permanent.pop("ErrorEquals")) == PERMANENT_ERRORS, name
        assert permanent == {"ResultPath": "$.error", "Next": "DLQRoute"}, name
        assert rest == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                        "Next": "ErrorHandler"}, name
        assert tasks[name]["ResultPath"] == "$"
    # the error tasks cannot loop into themselves, and keep the caught error for the Fail state
    # (their own failures are kept apart, so the execution still fails with the first error)
    assert tasks["DLQRoute"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.dlq_error", "Next": "ErrorHandler"}]
    assert tasks["ErrorHandler"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.handler_error", "Next": "Failed"}]
    assert tasks["DLQRoute"]["ResultPath"] is None
    assert tasks["ErrorHandler"]["ResultPath"] is None
    assert "Catch" not in tasks["TransformPart"]  # the Map catches for its iterations


def _statelint() -> str | None:
    return os.environ.get("STATELINT") or shutil.which("statelint")


def test_statelint(tmp_path: Path) -> None:
    statelint = _statelint()
    if statelint is None:
        pytest.skip("statelint is not installed (pip install statelint; or set STATELINT)")
    rendered = tmp_path / "pipeline.asl.json"
    rendered.write_text(render_definition())
    for path in (asl_path(), rendered):  # the file as committed, and as deployed
        done = subprocess.run([statelint, "--ignore=URI,FLOAT", str(path)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (path, done.stdout + done.stderr)
    # and it does catch what moto would only find at run time
    broken = tmp_path / "broken.asl.json"
    broken.write_text(render_definition().replace('"Next": "Done"', '"Next": "Nowhere"'))
    done = subprocess.run([statelint, "--ignore=URI,FLOAT", str(broken)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "Nowhere" in done.stdout + done.stderr


def test_moto_runs_the_map_at_the_concurrency_plan_hands_it(tmp_path: Path) -> None:
    from test_pipeline_runner import STUBS, _plan

    from engine.aws.local import run_local

    src = tmp_path / "small.csv"
    src.write_text("a,b\n1,2\n3,4\n")
    route_map = {"key": "in/small.csv", "settings": {"MAX_SINGLE_BYTES": "1"}}
    seen: list[Any] = []

    def plan(state: dict[str, Any], context: Any) -> dict[str, Any]:
        planned = _plan(state, context)
        seen.append(planned["map_max_concurrency"])
        return planned

    result = run_local(src, handlers={**STUBS, "plan": plan}, map_max_concurrency=2, **route_map)
    assert result["status"] == "SUCCEEDED", result["error"]
    assert result["states"].count("TransformPart") == 3 and seen == [2]
    # the interpreter really reads the path: a value that is no count fails the execution
    result = run_local(src, handlers={**STUBS, "plan": lambda s, c: {
        **_plan(s, c), "map_max_concurrency": "lots"}}, **route_map)
    assert result["status"] == "FAILED"
    assert result["error"]["type"] == "States.Runtime"
    assert "TransformPart" not in result["states"]  # the Map failed before any iteration
