"""Cross-reference checks: the column set simulated through the transform steps."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from engine.contract.base import Loc, _is_numeric
from engine.contract.expressions import CallExpr, FieldExpr
from engine.contract.steps import (
    CastStep,
    DedupeStep,
    DeriveStep,
    DropStep,
    EnrichApiStep,
    EnrichStep,
    FilterStep,
    ParseTimestampStep,
    PythonStep,
    RenameStep,
    SelectStep,
)


class ContractParts(Protocol):
    """What the checks read of a :class:`engine.contract.model.Contract`, which calls them."""

    format: str
    options: Any
    columns: Mapping[str, Any]
    extra_columns: str
    transforms: Sequence[Any]
    aggregate: Any
    output: Any

_CSV_ONLY = ("delimiter", "quote_char", "header", "column_names")


# ---------------------------------------------------------------------------------------------
# Cross-references: the column set through the pipeline
# ---------------------------------------------------------------------------------------------


@dataclass
class _Columns:
    """The columns at one point of the pipeline, as far as the contract tells."""

    types: dict[str, pa.DataType | None]
    #: undeclared columns may be present (``extra_columns: keep``, after ``python`` or an
    #: ``enrich`` without ``columns``)
    open: bool
    #: name → what removed it, for a clearer message
    removed: dict[str, str] = field(default_factory=dict)

    def check(self, name: str, loc: Loc, problems: list[tuple[Loc, str]]) -> bool:
        if name in self.types:
            return True
        if name in self.removed:
            problems.append((loc, f"column {name!r} was {self.removed[name]}"))
            return False
        if self.open:
            return True
        known = ", ".join(self.types) or "none"
        near = difflib.get_close_matches(name, list(self.types), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        problems.append((loc, f"unknown column {name!r}{hint}; columns here: {known}"))
        return False

    def add(self, name: str, arrow_type: pa.DataType | None) -> None:
        self.types[name] = arrow_type
        self.removed.pop(name, None)

    def remove(self, name: str, why: str) -> None:
        self.types.pop(name, None)
        self.removed[name] = why


def _expr_fields(expr: Any, loc: Loc) -> list[tuple[str, Loc]]:
    if isinstance(expr, FieldExpr):
        return [(expr.path[0], (*loc, "field"))]
    if isinstance(expr, CallExpr):
        out: list[tuple[str, Loc]] = []
        for i, arg in enumerate(expr.args):
            out.extend(_expr_fields(arg, (*loc, "args", i)))
        return out
    return []


def check_references(contract: ContractParts) -> list[tuple[Loc, str]]:
    """Problems with the columns and options a contract names, each with its location."""
    problems: list[tuple[Loc, str]] = []
    options = contract.options
    if contract.format in ("ndjson", "json", "parquet"):
        for name in _CSV_ONLY:
            if getattr(options, name) is not None:
                problems.append(
                    (("options", name), f"{name} applies to csv, not {contract.format}")
                )
    if contract.format in ("csv", "ndjson", "parquet") and options.json_path is not None:
        problems.append(
            (("options", "json_path"), f"json_path applies to format json, not {contract.format}")
        )
    if options.column_names is not None:
        for name, spec in contract.columns.items():
            if spec.required and name not in options.column_names:
                problems.append(
                    (
                        ("options", "column_names"),
                        f"required column {name!r} is not in column_names",
                    )
                )

    cols = _Columns(
        types={name: spec.arrow_type for name, spec in contract.columns.items()},
        open=contract.extra_columns == "keep",
    )
    for i, step in enumerate(contract.transforms):
        _simulate(step, cols, ("transforms", i, step.kind), f"transforms[{i}]", problems)

    if contract.aggregate is not None:
        agg = contract.aggregate
        for j, name in enumerate(agg.by):
            cols.check(name, ("aggregate", "by", j), problems)
        for metric_name, metric in agg.metrics.items():
            loc: Loc = ("aggregate", "metrics", metric_name, metric.function)
            if not cols.check(metric.column, loc, problems):
                continue
            arrow_type = cols.types.get(metric.column)
            if metric.function in ("sum", "mean") and arrow_type is not None:
                if not _is_numeric(arrow_type):
                    problems.append(
                        (loc, f"{metric.function} needs a numeric column; "
                              f"{metric.column!r} is {arrow_type}")
                    )
            if metric_name in agg.by:
                problems.append(
                    (("aggregate", "metrics", metric_name), f"metric {metric_name!r} is also a "
                                                            "group-by column")
                )
    for j, name in enumerate(contract.output.partition_by):
        cols.check(name, ("output", "partition_by", j), problems)
    return problems


def _simulate(
    step: Any, cols: _Columns, loc: Loc, where: str, problems: list[tuple[Loc, str]]
) -> None:
    """Check the columns ``step`` names exist, then apply its effect on the column set."""
    if isinstance(step, RenameStep):
        for old, new in step.rename.items():
            if cols.check(old, (*loc, old), problems):
                if new in cols.types and new != old:
                    problems.append(((*loc, old), f"cannot rename {old!r} to {new!r}: "
                                                  "that column already exists"))
                    continue
                arrow_type = cols.types.pop(old, None)
                cols.remove(old, f"renamed to {new!r} by {where}")
                cols.add(new, arrow_type)
    elif isinstance(step, CastStep):
        for name, arrow_type in step.arrow_types.items():
            if cols.check(name, (*loc, name), problems):
                cols.add(name, arrow_type)
    elif isinstance(step, ParseTimestampStep):
        spec = step.parse_timestamp
        if cols.check(spec.column, (*loc, "column"), problems):
            cols.add(spec.column, spec.arrow_type)
    elif isinstance(step, DeriveStep):
        for name, field_loc in _expr_fields(step.derive.expr, (*loc, "expr")):
            cols.check(name, field_loc, problems)
        cols.add(step.derive.name, step.derive.arrow_type)
    elif isinstance(step, FilterStep):
        for name, field_loc in _expr_fields(step.filter, loc):
            cols.check(name, field_loc, problems)
    elif isinstance(step, SelectStep):
        kept = {}
        for j, name in enumerate(step.select):
            if cols.check(name, (*loc, j), problems):
                kept[name] = cols.types.get(name)
        for name in list(cols.types):
            if name not in kept:
                cols.remove(name, f"not selected by {where}")
        cols.types = kept
        cols.open = False
    elif isinstance(step, DropStep):
        for j, name in enumerate(step.drop):
            if cols.check(name, (*loc, j), problems):
                cols.remove(name, f"dropped by {where}")
    elif isinstance(step, DedupeStep):
        for j, name in enumerate(step.dedupe.keys):
            cols.check(name, (*loc, "keys", j), problems)
    elif isinstance(step, EnrichStep):
        spec = step.enrich
        for j, name in enumerate(spec.on):
            cols.check(name, (*loc, "on", j), problems)
        if spec.columns is None:
            cols.open = True
            cols.removed.clear()
        else:
            for j, name in enumerate(spec.columns):
                if name in spec.on:
                    problems.append(((*loc, "columns", j), f"{name!r} is a join key; list only "
                                                           "the columns to add"))
                elif name in cols.types:
                    problems.append(((*loc, "columns", j), f"column {name!r} already exists"))
                else:
                    cols.add(name, None)
    elif isinstance(step, EnrichApiStep):
        spec = step.enrich_api
        for j, name in enumerate(spec.on):
            cols.check(name, (*loc, "on", j), problems)
        for name, arrow_type in spec.arrow_types.items():
            if name in cols.types:
                problems.append(((*loc, "columns", name), f"column {name!r} already exists"))
            else:
                cols.add(name, arrow_type)
    elif isinstance(step, PythonStep):
        cols.open = True
        cols.removed.clear()
