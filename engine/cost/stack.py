"""What ``template.yaml`` declares that the bill depends on: memory, routing, fixed items.

Read once by ``chunkwise cost --measure`` (:mod:`engine.cost.measure`) and stored with the
measurements, so ``chunkwise cost`` needs no template (an installed wheel has none);
``tests/unit/cost`` checks the stored figures against the template.

- the functions' memory: ``TransformMemorySize`` for the transform, ``StepMemorySize`` (the
  ``Globals``) for the others, and the architecture;
- the routing: ``MaxSingleBytes`` (larger objects go to the Map) and ``RangeBytes`` (a Map
  part's size);
- the fixed monthly items: interface endpoints and the subnets (one per AZ) each has, KMS keys,
  CloudWatch alarms and the metrics each watches, VPC flow logs;
- ``MonthlyBudgetLimit``, the per-stack budget (ADR-007);
- the global secondary indexes of the metadata table (``MetadataTable``): a write to the table
  is a write to each of them too.

A resource with a ``Condition`` counts when the condition holds at the parameters' defaults
(the ``execute-api`` endpoint, for instance, only with ``EnrichApiPrivateEndpoint=true``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ContractError

__all__ = ["StackFacts", "read_stack"]


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (``!Ref``, ``!Sub``, ...) read as plain values."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tagged)


@dataclass(frozen=True)
class StackFacts:
    """The template's figures the cost model needs (see the module docstring)."""

    architecture: str
    transform_memory_mb: int
    step_memory_mb: int
    max_single_bytes: int
    range_bytes: int
    monthly_budget_usd: float
    interface_endpoints: dict[str, int]
    kms_keys: int
    alarms: int
    alarm_metrics: int
    flow_logs: list[dict[str, Any]]
    table_indexes: int

    @property
    def endpoint_az_count(self) -> int:
        """Interface endpoints × the AZs (subnets) each is in: what is billed per hour."""
        return sum(self.interface_endpoints.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StackFacts:
        """The inverse of :meth:`to_dict`."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def _default(params: Mapping[str, Any], name: str) -> Any:
    try:
        return params[name]["Default"]
    except (KeyError, TypeError):
        raise ContractError(f"template.yaml: no default for parameter {name!r}") from None


def _resolve(value: Any, params: Mapping[str, Any]) -> Any:
    """A literal, or ``!Ref Parameter`` resolved to the parameter's default."""
    if isinstance(value, Mapping) and set(value) == {"Ref"}:
        return _default(params, value["Ref"])
    return value


class _Conditions:
    """The template's ``Conditions`` at the parameters' defaults (none: the value ``None``)."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.raw: Mapping[str, Any] = doc.get("Conditions") or {}
        self.defaults = {name: spec.get("Default") if isinstance(spec, Mapping) else None
                         for name, spec in (doc.get("Parameters") or {}).items()}

    def holds(self, name: str | None) -> bool:
        """Whether the condition ``name`` holds (no condition: always)."""
        return True if name is None else bool(self._value(self.raw[name]))

    def _value(self, node: Any) -> Any:
        if not isinstance(node, Mapping):
            return node
        if len(node) != 1:
            raise ContractError(f"template.yaml: cannot evaluate the condition {node!r}")
        ((function, arg),) = node.items()
        if function == "Ref":
            return self.defaults.get(arg)
        if function == "Condition":
            return self.holds(arg)
        if function == "Fn::Equals":
            return self._value(arg[0]) == self._value(arg[1])
        if function == "Fn::Not":
            return not self._value(arg[0])
        if function == "Fn::And":
            return all(self._value(a) for a in arg)
        if function == "Fn::Or":
            return any(self._value(a) for a in arg)
        raise ContractError(f"template.yaml: cannot evaluate the condition {node!r}")


def read_stack(template: str | Path) -> StackFacts:
    """Read the figures of :class:`StackFacts` from a SAM template.

    Raises:
        ContractError: a parameter the model needs has no default, or a resource's condition
            uses a function this reader does not evaluate.

    """
    # _CfnLoader is a SafeLoader subclass (it adds only the CloudFormation tags): safe.
    doc = yaml.load(Path(template).read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506  # nosec B506
    params = doc.get("Parameters", {})
    resources: dict[str, Any] = doc.get("Resources", {})
    globals_ = doc.get("Globals", {}).get("Function", {})
    transform = resources.get("TransformFunction", {}).get("Properties", {})
    architectures = transform.get("Architectures") or globals_.get("Architectures") or ["x86_64"]

    conditions = _Conditions(doc)

    def of_type(kind: str) -> dict[str, dict[str, Any]]:
        return {name: r.get("Properties", {}) for name, r in resources.items()
                if r.get("Type") == kind and conditions.holds(r.get("Condition"))}

    endpoints = {name: len(p.get("SubnetIds", []))
                 for name, p in of_type("AWS::EC2::VPCEndpoint").items()
                 if p.get("VpcEndpointType") == "Interface"}
    alarms = of_type("AWS::CloudWatch::Alarm")
    metrics = sum(sum(1 for m in p["Metrics"] if "MetricStat" in m) if "Metrics" in p else 1
                  for p in alarms.values())
    flow_logs = [{"name": name, "traffic_type": p.get("TrafficType"),
                  "destination": p.get("LogDestinationType", "cloud-watch-logs"),
                  "aggregation_s": int(p.get("MaxAggregationInterval", 600))}
                 for name, p in of_type("AWS::EC2::FlowLog").items()]
    return StackFacts(
        architecture=str(architectures[0]),
        transform_memory_mb=int(_resolve(transform.get("MemorySize"), params)),
        step_memory_mb=int(_resolve(globals_.get("MemorySize"), params)),
        max_single_bytes=int(_default(params, "MaxSingleBytes")),
        range_bytes=int(_default(params, "RangeBytes")),
        monthly_budget_usd=float(_default(params, "MonthlyBudgetLimit")),
        interface_endpoints=dict(sorted(endpoints.items())),
        kms_keys=len(of_type("AWS::KMS::Key")),
        alarms=len(alarms), alarm_metrics=metrics, flow_logs=flow_logs,
        table_indexes=len(resources.get("MetadataTable", {}).get("Properties", {})
                          .get("GlobalSecondaryIndexes") or []),
    )
