"""Dataset contracts: a dataset's schema, checks, transform steps and output options, in YAML.

A pipeline team describes each dataset once (``contracts/orders.yaml``); the engine enforces it in
the same pass that converts the file. This module only *loads and validates* a contract, before any
data is read; checking rows lives in :mod:`engine.enforce.validate`, running steps in
:mod:`engine.enforce.transforms`, aggregation in :mod:`engine.enforce.aggregate`.

Every problem is a :class:`~engine.errors.ContractError` whose ``uri`` is the contract file and
whose message names the line and the key of each problem, one per line::

    line 14: columns.amount.type: unknown type 'decmal(12,2)': use one of ...

The YAML is read with YAML 1.2 scalars: only ``true``/``false`` are booleans (so ``on:``, ``yes``,
``no`` stay strings), dates stay strings (converted per column type), and numbers with a leading
zero stay strings.

Example:
    >>> from engine.contract import load_contract
    >>> contract = load_contract(contract_path)
    >>> contract.arrow_schema().field("amount").type
    DataType(double)

The package is split by concern: :mod:`~engine.contract.base` (shared types and helpers),
:mod:`~engine.contract.columns`, :mod:`~engine.contract.expressions`,
:mod:`~engine.contract.steps`, :mod:`~engine.contract.output`, :mod:`~engine.contract.model`
(:class:`Contract`), :mod:`~engine.contract.references` (cross-reference checks) and
:mod:`~engine.contract.loader` (YAML loading and error messages).
"""


from engine.contract.base import Loc as Loc
from engine.contract.base import _Model as _Model
from engine.contract.columns import ColumnSpec, FormatOptions, RejectPolicy
from engine.contract.expressions import CallExpr, Expr, FieldExpr, LiteralExpr
from engine.contract.loader import MAX_CONTRACT_BYTES as MAX_CONTRACT_BYTES
from engine.contract.loader import load_contract
from engine.contract.model import Contract
from engine.contract.output import AggregateSpec, MetricSpec, OutputSpec, ProjectionSpec
from engine.contract.steps import (
    CastStep,
    DedupeSpec,
    DedupeStep,
    DeriveSpec,
    DeriveStep,
    DropStep,
    EnrichApiCache,
    EnrichApiSpec,
    EnrichApiStep,
    EnrichSpec,
    EnrichStep,
    FilterStep,
    ParseTimestampSpec,
    ParseTimestampStep,
    PythonSpec,
    PythonStep,
    RenameStep,
    SelectStep,
    Step,
)

__all__ = [
    "AggregateSpec",
    "CallExpr",
    "CastStep",
    "ColumnSpec",
    "Contract",
    "DedupeSpec",
    "DedupeStep",
    "DeriveSpec",
    "DeriveStep",
    "DropStep",
    "EnrichApiCache",
    "EnrichApiSpec",
    "EnrichApiStep",
    "EnrichSpec",
    "EnrichStep",
    "Expr",
    "FieldExpr",
    "FilterStep",
    "FormatOptions",
    "LiteralExpr",
    "MetricSpec",
    "OutputSpec",
    "ParseTimestampSpec",
    "ParseTimestampStep",
    "ProjectionSpec",
    "PythonSpec",
    "PythonStep",
    "RejectPolicy",
    "RenameStep",
    "SelectStep",
    "Step",
    "load_contract",
]
