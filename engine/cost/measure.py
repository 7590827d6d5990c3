"""``chunkwise cost --measure``: count what one file costs on the local pipeline, once.

The real state machine runs on moto with the real handlers (:mod:`engine.aws.local`), their AWS
calls recorded per function by :class:`~engine.aws.local.calls.CallRecorder` (the IAM test's
recorder). For each *contract set* (``orders``: ``contracts/orders.yaml``, file-wide, so never
split; ``none``: no contract) and each route a file can take, one execution is measured after a
warm-up file of the same dataset (so its catalog table exists, as it does in steady state):

- ``single``: a generated orders CSV at each of :data:`SINGLE_SIZES`, converted by one
  transform (two sizes, so the counts that grow with the file, multipart uploads, are seen);
- ``map``: a file over ``MAX_SINGLE_BYTES`` split into :data:`MAP_PARTS` ranges (locally the
  threshold is lowered, :data:`MAP_SETTINGS`), only for a contract that can be split;
- ``failure``: a file that fails for good and goes to the DLQ: for ``orders``, 2 % of rows
  rejected against the contract's 1 % threshold (a ``ValidationError`` in the transform); with
  no contract, a binary file the validate step refuses.

Each measured execution stores the states it entered (``GetExecutionHistory``'s
``*StateEntered`` events) and the state transitions Step Functions bills (one per state entered,
plus one per retry of a task), the Lambda invocations and their wall seconds per function, and
the AWS calls per function and operation. With them: the template's figures
(:func:`engine.cost.stack.read_stack`) and, per contract set, the sizing profile's measurements
the transform's cost comes from (``profiles/sizing-orders.json`` for ``orders``,
``profiles/sizing.json`` for ``none``), trimmed to what the model reads. The result is
``profiles/cost.json``, which ``chunkwise cost`` reads (offline, in well under a second).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.cost.stack import read_stack

__all__ = ["MAP_PARTS", "MAP_SETTINGS", "SINGLE_SIZES", "measure", "measure_contract_set",
           "sizing_points"]

#: The sizes of the files measured on the single route (bytes of generated orders CSV).
SINGLE_SIZES = (200_000, 2_000_000)
#: Locally, objects over 100 kB go to the Map in ~100 kB ranges.
MAP_SETTINGS = {"MAX_SINGLE_BYTES": "100000", "RANGE_BYTES": "100000"}
#: The Map file is this many ranges.
MAP_PARTS = 4
#: The generator's seed for every measured file.
SEED = 16
#: The contract sets: name → (the example contract, or None; the sizing profile's file name).
CONTRACT_SETS: dict[str, tuple[str | None, str]] = {
    "orders": ("orders", "sizing-orders.json"),
    "none": (None, "sizing.json"),
}
#: The measurement fields of a sizing profile the cost model reads.
_SIZING_FIELDS = ("format", "size_bytes", "block_size", "threads", "peak_rss_bytes",
                  "init_cpu_s", "cold_cpu_s", "warm_cpu_s")

Say = Callable[[str], None]


def sizing_points(profile: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A sizing profile's measurements, trimmed to what the cost model reads.

    Example:
        >>> m = {"format": "csv", "size_bytes": 10, "block_size": 4, "threads": 1,
        ...      "peak_rss_bytes": 5, "init_cpu_s": 0.2, "cold_cpu_s": 0.3, "warm_cpu_s": 0.1,
        ...      "exit_code": 0, "killed": False, "report": {"bytes_in": 10, "bytes_out": 3}}
        >>> sizing_points({"measurements": [m]})[0]["bytes_out"]
        3

    """
    points = []
    for m in profile["measurements"]:
        if m.get("exit_code") != 0 or m.get("killed"):
            continue
        report = m.get("report") or {}
        points.append({**{k: m.get(k) for k in _SIZING_FIELDS},
                       "bytes_in": report.get("bytes_in") or m["size_bytes"],
                       "bytes_out": report.get("bytes_out", 0)})
    return points


def _part_states() -> list[str]:
    """The states inside the pipeline's Map (run once per part)."""
    from engine.resources import resource

    definition = json.loads(resource("stepfunctions/pipeline.asl.json").read_text("utf-8"))
    return sorted(name for state in definition["States"].values() if state.get("Type") == "Map"
                  for name in (state.get("ItemProcessor") or state["Iterator"])["States"])


def _transitions(states: list[str], attempts: Mapping[str, int]) -> int:
    """State transitions as Step Functions bills them: each state entered, each task retry."""
    entered = Counter(states)
    return len(states) + sum(max(0, n - entered[state]) for state, n in attempts.items())


def _run(pipe: Any, recorder: Any, path: Path, route: str, expect: str) -> dict[str, Any]:
    """Run ``path`` through ``pipe`` and return what the execution counted."""
    mark = recorder.mark()
    invocations = Counter(recorder.invocations)
    seconds_from = {fn: len(v) for fn, v in recorder.seconds.items()}
    result = pipe.run(path)
    if result["status"] != expect:
        raise RuntimeError(f"the {route} route's measured file ended {result['status']}, not "
                           f"{expect}: {result['error']}")
    if recorder.problems:
        raise RuntimeError("calls not attributed to a function: " + "; ".join(recorder.problems))
    ran = {fn: n - invocations[fn] for fn, n in recorder.invocations.items()
           if n - invocations[fn]}
    return {
        "route": route, "bytes": path.stat().st_size, "status": result["status"],
        "states": result["states"], "attempts": result["attempts"],
        "transitions": _transitions(result["states"], result["attempts"]),
        "invocations": dict(sorted(ran.items())),
        "seconds": {fn: [round(s, 4) for s in v[seconds_from.get(fn, 0):]]
                    for fn, v in sorted(recorder.seconds.items())
                    if v[seconds_from.get(fn, 0):]},
        "calls": recorder.counts(since=mark),
    }


def _files(folder: Path, contract: str | None) -> dict[str, Path]:
    """The generated inputs: warm-up, single sizes, Map file, failing file."""
    from engine.gen import generate

    files: dict[str, Path] = {}
    for name, size in [("warmup", 50_000), *((f"single-{s}", s) for s in SINGLE_SIZES),
                       ("map", int(MAP_PARTS * 100_000 * 0.95))]:
        files[name] = folder / f"{name}.csv"
        generate("orders", files[name], size=size, seed=SEED)
    failing = folder / "failure.csv"
    if contract is None:
        failing.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64)
    else:
        report = generate("orders", failing, size=200_000, seed=SEED)
        bad = max(1, report.rows // 50)  # 2 % of the rows, over the contract's 1 %
        with failing.open("a", encoding="utf-8") as out:
            for i in range(bad):
                out.write(f"{9_000_000 + i},2025-01-02T00:00:00Z,1,FR,-5.00,1,paid,rejected\n")
    return files | {"failure": failing}


def measure_contract_set(name: str, *, say: Say | None = None) -> dict[str, Any]:
    """Measure every route of the contract set ``name`` (see :data:`CONTRACT_SETS`)."""
    from engine.aws.local.calls import CallRecorder
    from engine.aws.local.runner import LocalPipeline
    from engine.aws.steps import file_wide
    from engine.contract import load_contract
    from engine.resources import resource

    say = say or (lambda _msg: None)
    example, _ = CONTRACT_SETS[name]
    contract = str(resource(f"contracts/{example}.yaml")) if example else None
    splits = not file_wide(load_contract(contract) if contract else None)
    routes: dict[str, Any] = {"single": []}
    with tempfile.TemporaryDirectory(prefix="chunkwise-cost-") as tmp:
        folder = Path(tmp) / (example or "incoming")
        folder.mkdir()
        files = _files(folder, contract)
        recorder = CallRecorder()
        with recorder.recording():
            with LocalPipeline(contract=contract, handlers=recorder.handlers()) as pipe:
                pipe.run(files["warmup"])
                for size in SINGLE_SIZES:
                    say(f"{name}: single route, {size / 1e6:g} MB")
                    routes["single"].append(_run(pipe, recorder, files[f"single-{size}"],
                                                 "single", "SUCCEEDED"))
                say(f"{name}: failure route")
                routes["failure"] = _run(pipe, recorder, files["failure"], "failure", "FAILED")
            if splits:
                say(f"{name}: map route, {MAP_PARTS} ranges")
                with LocalPipeline(contract=contract, settings=MAP_SETTINGS,
                                   handlers=recorder.handlers()) as pipe:
                    pipe.run(files["warmup"])
                    routes["map"] = _run(pipe, recorder, files["map"], "map", "SUCCEEDED")
                    part_states = _part_states()
                    routes["map"]["part_states"] = part_states
                    routes["map"]["parts"] = sum(routes["map"]["states"].count(s)
                                                 for s in part_states)
                    routes["map"]["part_bytes"] = int(MAP_SETTINGS["RANGE_BYTES"])
    return {"contract": f"contracts/{example}.yaml" if example else None,
            "file_wide": not splits, "routes": routes}


def measure(template: Path, profiles: Path, *, say: Say | None = None,
            sets: tuple[str, ...] = tuple(CONTRACT_SETS)) -> dict[str, Any]:
    """Everything ``chunkwise cost`` reads: the stack, the sizing points, the measured routes.

    Args:
        template: the SAM template (``template.yaml``).
        profiles: the folder of the committed sizing profiles (``profiles/``).
        say: progress messages.
        sets: the contract sets to measure (:data:`CONTRACT_SETS`).

    """
    from engine import __version__

    started = time.monotonic()
    stack = read_stack(template)
    out: dict[str, Any] = {
        "measured": datetime.now(UTC).strftime("%Y-%m-%d"),
        "command": "chunkwise cost --measure",
        "chunkwise": __version__,
        "stack": stack.to_dict(),
        "contracts": {},
    }
    for name in sets:
        profile_name = CONTRACT_SETS[name][1]
        profile = json.loads((profiles / profile_name).read_text(encoding="utf-8"))
        entry = measure_contract_set(name, say=say)
        entry["sizing_profile"] = f"profiles/{profile_name}"
        entry["sizing"] = sizing_points(profile)
        out["contracts"][name] = entry
    out["seconds"] = round(time.monotonic() - started, 1)
    return out
