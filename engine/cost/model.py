"""The monthly bill of the pipeline for a workload, from the measured per-file figures.

Everything here is arithmetic on ``profiles/cost.json`` (:mod:`engine.cost.measure`) and the
prices (:mod:`engine.cost.prices`); nothing is measured or fetched, so ``chunkwise cost`` runs
offline in well under a second. A month is 730 hours (AWS's convention for hourly prices), so
``files_per_month = files_per_day × 730 / 24``.

Per file of size ``s`` (each size of the mix, weighted; a share ``failure_rate`` of the files
take the failure route):

- **route**: ``single`` when ``s <= MaxSingleBytes`` or the contract is file-wide (an
  aggregate, ``unique`` or ``dedupe`` needs the whole file in one transform), else ``map`` with
  ``ceil(s / RangeBytes)`` parts;
- **Lambda, transform**: GB-seconds and requests of :func:`engine.sizing.model.predict` at the
  template's ``TransformMemorySize`` on the workload the sizing profile gives for ``s`` (or a
  part's size), warm and cold blended at the cold share the files per minute imply; a failed
  file is charged a whole conversion (an upper bound: the transform may stop early);
- **Lambda, the other steps**: the measured invocations per route × (request + GB-seconds at
  ``StepMemorySize`` × the median measured duration, rounded up to the ms);
- **Step Functions**: the route's measured state transitions (a Map file: the fixed ones plus
  the per-part ones × parts);
- **S3, DynamoDB, SQS, Glue**: the route's measured calls per operation (on the single route
  interpolated in the file's size between the measured sizes, held beyond them; a Map file:
  the fixed ones plus the per-part ones × parts), priced per request class; a DynamoDB write
  also writes the metadata table's global secondary indexes (:data:`_DYNAMODB_INDEX_WRITES`);
- **fixed**: interface endpoints × AZs × 730 h, KMS keys, CloudWatch alarm metrics, and the VPC
  flow log's records (:data:`FLOW_RECORDS_PER_CALL` per AWS call of the functions, which all
  run in the VPC, :data:`FLOW_RECORD_BYTES` each: an estimate, flow logs are not recorded
  locally).

Left out (not in the template's request counts, or not a function of the files): S3 storage
and data transfer, interface endpoint data processing, KMS requests, CloudWatch Logs ingestion,
X-Ray traces, free tiers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.cost.prices import CostPrices
from engine.cost.stack import StackFacts

__all__ = ["CATEGORIES", "FLOW_RECORDS_PER_CALL", "FLOW_RECORD_BYTES", "HOURS_PER_MONTH",
           "CostResult", "Workload", "estimate", "per_file"]

#: AWS's hours in a month for hourly prices.
HOURS_PER_MONTH = 730
#: The lines of the bill, in the order ``--json``'s ``breakdown`` gives them.
CATEGORIES = ("lambda", "step_functions", "s3", "dynamodb", "sqs", "glue", "fixed")
#: A flow log record per direction of a connection: one connection per AWS call is the upper
#: bound (connections are reused, and the 10-minute aggregation merges repeated flows).
FLOW_RECORDS_PER_CALL = 2
#: Bytes of one record in the default (version 2) format, 14 space-separated fields.
FLOW_RECORD_BYTES = 130

#: S3 operations billed as PUT, COPY, POST or LIST requests; DELETE and abort are free; the
#: rest (GET, HEAD, ...) is billed as GET and all other requests.
_S3_PUT_CLASS = frozenset({
    "PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "UploadPartCopy",
    "CompleteMultipartUpload", "ListObjects", "ListObjectsV2", "ListObjectVersions",
    "ListMultipartUploads", "ListParts", "PutObjectTagging", "PutObjectAcl", "RestoreObject"})
_S3_FREE = frozenset({"DeleteObject", "DeleteObjects", "AbortMultipartUpload"})
#: DynamoDB operations that write (one write request unit per call: the metadata items are
#: under 1 KB; a transaction's write costs two). Every other call is read as one read unit
#: (items under 4 KB, strongly consistent: the upper bound).
_DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"})
#: Writes to each global secondary index per table write: a new item is put in the index; an
#: update deletes the index entry and puts the new one, because every update of the metadata
#: record sets ``updated_at``, the ``by_status`` index's sort key; a delete deletes it.
_DYNAMODB_INDEX_WRITES = {"PutItem": 1, "UpdateItem": 2, "DeleteItem": 1}
_DYNAMODB_TRANSACT = frozenset({"TransactWriteItems", "TransactGetItems"})
#: Control-plane calls that are not billed per request.
_DYNAMODB_FREE = frozenset({"DescribeTable", "DescribeTimeToLive"})


@dataclass(frozen=True)
class Workload:
    """What the pipeline is asked to do in a month.

    Attributes:
        files_per_day: files landing in the raw bucket per day, steadily.
        size_mix: ``(bytes, weight)`` of the files; weights need not sum to 1.
        format: the files' format (``csv``, ``ndjson``, ``json``): the sizing profile's CPU.
        contract: the measured contract set (``orders``, ``none``).
        failure_rate: the share of files that fail for good (the failure route, the DLQ).

    """

    files_per_day: float
    size_mix: tuple[tuple[int, float], ...] = ((10 * 10**6, 1.0),)
    format: str = "csv"
    contract: str = "orders"
    failure_rate: float = 0.0

    @property
    def files_per_month(self) -> float:
        """Files per month of :data:`HOURS_PER_MONTH` hours."""
        return self.files_per_day * HOURS_PER_MONTH / 24

    @property
    def median_bytes(self) -> float:
        """The weighted median file size of the mix."""
        total = sum(w for _, w in self.size_mix)
        seen = 0.0
        for size, weight in sorted(self.size_mix):
            seen += weight
            if seen >= total / 2:
                return float(size)
        return float(max(s for s, _ in self.size_mix))


@dataclass
class CostResult:
    """A workload's monthly bill, per line, and what one file counts."""

    workload: Workload
    monthly_usd: float
    breakdown: dict[str, float]
    per_file_usd: float
    budget_usd: float
    per_file: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, float] = field(default_factory=dict)

    @property
    def within_budget(self) -> bool:
        """The projection is at most the budget."""
        return self.monthly_usd <= self.budget_usd


# -- per-file counts ------------------------------------------------------------------------


def _value_at(points: Sequence[tuple[float, float]], x: float) -> float:
    """Interpolated between measured sizes; held at the nearest one outside them."""
    pts = sorted(points)
    if x <= pts[0][0]:
        return pts[0][1]
    if x >= pts[-1][0]:
        return pts[-1][1]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 > x0 else y1
    return pts[-1][1]  # pragma: no cover - the loop covers every x between the ends


def _calls_at(runs: Sequence[Mapping[str, Any]], size: float) -> dict[str, dict[str, float]]:
    """Per function and operation, the calls of a single-route file of ``size`` bytes."""
    keys = {(fn, op) for run in runs for fn, ops in run["calls"].items() for op in ops}
    out: dict[str, dict[str, float]] = {}
    for fn, op in sorted(keys):
        points = [(run["bytes"], run["calls"].get(fn, {}).get(op, 0)) for run in runs]
        out.setdefault(fn, {})[op] = _value_at(points, size)
    return out


def _scaled(counts: Mapping[str, Mapping[str, float]], factor: float
            ) -> dict[str, dict[str, float]]:
    return {fn: {op: n * factor for op, n in ops.items()} for fn, ops in counts.items()}


def _added(*parts: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for part in parts:
        for fn, ops in part.items():
            for op, n in ops.items():
                out.setdefault(fn, {})[op] = out.get(fn, {}).get(op, 0.0) + n
    return out


def _map_split(run: Mapping[str, Any], part_function: str = "TransformFunction"
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A measured Map file as its fixed figures and one part's (the part function's, /parts)."""
    parts = run["parts"]
    part_states = set(run.get("part_states", ["TransformPart"]))
    entered = sum(1 for s in run["states"] if s in part_states)
    retried = sum(max(0, n - run["states"].count(s)) for s, n in run["attempts"].items()
                  if s in part_states)
    per_part_transitions = (entered + retried) / parts
    part_calls = {part_function: {op: n / parts
                                  for op, n in run["calls"].get(part_function, {}).items()}}
    fixed_calls = {fn: dict(ops) for fn, ops in run["calls"].items() if fn != part_function}
    invocations = dict(run["invocations"])
    part_invocations = invocations.pop(part_function, 0) / parts
    fixed = {"transitions": run["transitions"] - per_part_transitions * parts,
             "calls": fixed_calls, "invocations": invocations}
    part = {"transitions": per_part_transitions, "calls": part_calls,
            "invocations": {part_function: part_invocations}}
    return fixed, part


def per_file(measured: Mapping[str, Any], size: int, route: str) -> dict[str, Any]:
    """One file's state transitions, invocations and calls on ``route`` (measured figures).

    Returns:
        ``{"route", "parts", "transitions", "invocations": {function: n}, "calls":
        {function: {"service:Operation": n}}}``; ``parts`` is the transforms a file needs.

    """
    routes = measured["routes"]
    stack = StackFacts.from_dict(measured["stack"]) if "stack" in measured else None
    if route == "map":
        range_bytes = stack.range_bytes if stack else routes["map"]["part_bytes"]
        parts = max(1, math.ceil(size / range_bytes))
        fixed, part = _map_split(routes["map"])
        return {"route": "map", "parts": parts,
                "transitions": fixed["transitions"] + part["transitions"] * parts,
                "invocations": {**fixed["invocations"],
                                **{fn: n * parts for fn, n in part["invocations"].items()}},
                "calls": _added(fixed["calls"], _scaled(part["calls"], parts))}
    if route == "failure":
        run = routes["failure"]
        return {"route": "failure", "parts": run["invocations"].get("TransformFunction", 0),
                "transitions": float(run["transitions"]),
                "invocations": {k: float(v) for k, v in run["invocations"].items()},
                "calls": _scaled(run["calls"], 1.0)}
    runs = routes["single"]
    return {"route": "single", "parts": 1,
            "transitions": _value_at([(r["bytes"], r["transitions"]) for r in runs], size),
            "invocations": {fn: _value_at([(r["bytes"], r["invocations"].get(fn, 0))
                                           for r in runs], size)
                            for fn in sorted({fn for r in runs for fn in r["invocations"]})},
            "calls": _calls_at(runs, size)}


# -- prices ---------------------------------------------------------------------------------


def _request_costs(calls: Mapping[str, Mapping[str, float]], prices: CostPrices,
                   table_indexes: int = 0) -> dict[str, float]:
    """The calls of one file priced, per service line (``table_indexes``: the table's GSIs)."""
    out = dict.fromkeys(("s3", "dynamodb", "sqs", "glue"), 0.0)
    for ops in calls.values():
        for name, n in ops.items():
            service, _, op = name.partition(":")
            if service == "s3":
                if op in _S3_FREE:
                    continue
                item = "put_copy_post_list" if op in _S3_PUT_CLASS else "get_and_other"
                out["s3"] += n * prices.price("s3", item)
            elif service == "dynamodb":
                if op in _DYNAMODB_FREE:
                    continue
                units = 2 if op in _DYNAMODB_TRANSACT else 1
                units += table_indexes * _DYNAMODB_INDEX_WRITES.get(op, 0)
                item = ("write_request_unit" if op in _DYNAMODB_WRITES or op.startswith(
                    "TransactWrite") else "read_request_unit")
                out["dynamodb"] += n * units * prices.price("dynamodb", item)
            elif service == "sqs":
                out["sqs"] += n * prices.price("sqs", "request")
            elif service == "glue":
                out["glue"] += n * prices.price("glue", "catalog_request")
    return out


def _transform_lambda(measured: Mapping[str, Any], size: float, fmt: str, memory_mb: int,
                      prices: CostPrices, files_per_minute: float) -> dict[str, float]:
    """GB-seconds, requests and dollars of one transform of ``size`` bytes (sizing model)."""
    from engine.sizing.measure import Measurement
    from engine.sizing.model import ModelParams, lambda_threads, predict
    from engine.sizing.sweep import SweepConfig, band_workloads

    points = [p for p in measured["sizing"] if p["format"] == fmt]
    if not points:
        from engine.errors import UsageError

        known = sorted({p["format"] for p in measured["sizing"]})
        raise UsageError(f"the sizing profile has no {fmt!r} measurements; it has: "
                         f"{', '.join(known)}")
    ms = [Measurement(src="", format=p["format"], size_bytes=p["size_bytes"],
                      block_size=p["block_size"], threads=p["threads"], contract=None,
                      exit_code=0, killed=False, peak_rss_bytes=p["peak_rss_bytes"], cpu_s=0.0,
                      wall_s=0.0, init_cpu_s=p["init_cpu_s"], cold_cpu_s=p["cold_cpu_s"],
                      warm_cpu_s=p["warm_cpu_s"],
                      report={"bytes_in": p["bytes_in"], "bytes_out": p["bytes_out"]})
          for p in points]
    by_threads = band_workloads(ms, int(size), SweepConfig())
    want = lambda_threads(memory_mb)
    threads = min(by_threads, key=lambda t: (abs(t - want), t))
    (work,) = by_threads[threads]
    pred = predict(work, memory_mb, prices.lambda_,
                   ModelParams(files_per_minute=files_per_minute))
    billed_s = ((1 - pred.cold_share) * pred.billed_ms + pred.cold_share * pred.cold_billed_ms
                ) / 1000
    gb_s = memory_mb / 1024 * billed_s
    return {"gb_seconds": gb_s, "requests": 1.0,
            "usd": gb_s * prices.lambda_.gb_second + prices.lambda_.request,
            "cold_share": pred.cold_share}


def _step_seconds(measured: Mapping[str, Any]) -> dict[str, float]:
    """Median measured wall seconds of one invocation, per function (every route's runs)."""
    routes = measured["routes"]
    runs = [*routes["single"], routes["failure"], *([routes["map"]] if "map" in routes else [])]
    seconds: dict[str, list[float]] = {}
    for run in runs:
        for fn, values in run["seconds"].items():
            seconds.setdefault(fn, []).extend(values)
    return {fn: statistics.median(v) for fn, v in seconds.items() if v}


def _file_cost(measured: Mapping[str, Any], stack: StackFacts, prices: CostPrices,
               counts: Mapping[str, Any], transform_bytes: float, fmt: str,
               files_per_minute: float) -> dict[str, Any]:
    """Dollars per line, GB-seconds and requests of one file's ``counts``."""
    seconds = _step_seconds(measured)
    step_gb = stack.step_memory_mb / 1024
    step_gb_s = sum(n * step_gb * math.ceil(seconds.get(fn, 0.0) * 1000 - 1e-9) / 1000
                    for fn, n in counts["invocations"].items() if fn != "TransformFunction")
    step_requests = sum(n for fn, n in counts["invocations"].items() if fn != "TransformFunction")
    transforms = counts["invocations"].get("TransformFunction", 0.0)
    transform = _transform_lambda(measured, transform_bytes, fmt, stack.transform_memory_mb,
                                  prices, files_per_minute) if transforms else None
    lam = step_gb_s * prices.lambda_.gb_second + step_requests * prices.lambda_.request
    if transform is not None:
        lam += transforms * transform["usd"]
    lines = {"lambda": lam,
             "step_functions": counts["transitions"] * prices.price("step_functions",
                                                                    "state_transition"),
             **_request_costs(counts["calls"], prices, stack.table_indexes)}
    calls = sum(n for ops in counts["calls"].values() for n in ops.values())
    return {"lines": lines, "calls": calls,
            "lambda_gb_seconds": step_gb_s + (transforms * transform["gb_seconds"]
                                              if transform else 0.0),
            "lambda_requests": step_requests + transforms,
            "cold_share": transform["cold_share"] if transform else None}


def _fixed(stack: StackFacts, prices: CostPrices, calls_per_month: float) -> dict[str, float]:
    """The monthly items of the template (flow logs: by the month's AWS calls)."""
    flow_gb = calls_per_month * FLOW_RECORDS_PER_CALL * FLOW_RECORD_BYTES / 1e9 * len(
        stack.flow_logs)
    return {
        "interface_endpoints": stack.endpoint_az_count * HOURS_PER_MONTH
        * prices.price("interface_endpoint", "az_hour"),
        "kms_keys": stack.kms_keys * prices.price("kms", "key_month"),
        "alarms": stack.alarm_metrics * prices.price("cloudwatch", "alarm_metric_month"),
        "flow_logs": flow_gb * prices.price("flow_logs", "gb_delivered"),
    }


def estimate(data: Mapping[str, Any], workload: Workload, prices: CostPrices, *,
             budget_usd: float | None = None) -> CostResult:
    """The monthly bill of ``workload`` from ``data`` (``profiles/cost.json``).

    Raises:
        UsageError: the contract set or the format was not measured, or the workload is empty.

    """
    from engine.errors import UsageError

    if workload.contract not in data["contracts"]:
        raise UsageError(f"no measurements for contract {workload.contract!r} in the cost "
                         f"profile; measured: {', '.join(sorted(data['contracts']))}")
    if workload.files_per_day < 0 or not workload.size_mix or sum(
            w for _, w in workload.size_mix) <= 0:
        raise UsageError("a workload needs files per day >= 0 and a size mix with weight")
    if not 0 <= workload.failure_rate <= 1:
        raise UsageError(f"failure rate {workload.failure_rate} is not between 0 and 1")
    stack = StackFacts.from_dict(data["stack"])
    measured = {**data["contracts"][workload.contract], "stack": data["stack"]}
    per_minute = workload.files_per_day / 1440
    total_weight = sum(w for _, w in workload.size_mix)
    lines = dict.fromkeys(CATEGORIES[:-1], 0.0)
    gb_s = requests = calls = transitions = 0.0
    for size, weight in workload.size_mix:
        share = weight / total_weight
        splits = not measured["file_wide"] and "map" in measured["routes"]
        route = "map" if splits and size > stack.max_single_bytes else "single"
        outcomes = [(1 - workload.failure_rate, per_file(measured, size, route))]
        if workload.failure_rate:
            outcomes.append((workload.failure_rate, per_file(measured, size, "failure")))
        for p, counts in outcomes:
            part_bytes = size / counts["parts"] if counts["parts"] else size
            cost = _file_cost(measured, stack, prices, counts, part_bytes, workload.format,
                              per_minute)
            for k, v in cost["lines"].items():
                lines[k] += share * p * v
            gb_s += share * p * cost["lambda_gb_seconds"]
            requests += share * p * cost["lambda_requests"]
            calls += share * p * cost["calls"]
            transitions += share * p * counts["transitions"]
    files = workload.files_per_month
    breakdown = {k: v * files for k, v in lines.items()}
    fixed = _fixed(stack, prices, calls * files)
    breakdown["fixed"] = sum(fixed.values())
    monthly = sum(breakdown.values())
    return CostResult(
        workload=workload, monthly_usd=monthly, breakdown=breakdown,
        per_file_usd=sum(lines.values()),
        budget_usd=stack.monthly_budget_usd if budget_usd is None else budget_usd,
        per_file={"lambda_gb_seconds": gb_s, "lambda_requests": requests,
                  "state_transitions": transitions, "aws_calls": calls,
                  **{f"{k}_usd": v for k, v in lines.items()}},
        fixed=fixed)
