"""Run a contract's ``transforms`` on each batch, vectorised with :mod:`pyarrow.compute`.

A :class:`Transformer` runs the steps of one file in order, batch after batch, and keeps the state
that spans batches: the keys ``dedupe`` has seen (:mod:`engine.enforce.keys`), the reference
tables ``enrich`` joins against (:mod:`engine.enforce.enrich`). No step loops over rows in Python
(key columns are hashed vectorised), except ``python`` steps, which run whatever they run.

Failures, each naming the step (``transforms[2] (cast)``) and the input URI:

- :class:`~engine.errors.ContractError`: the contract does not fit the data: a column that is
  not there, a function with no kernel for these types, a ``python`` step that cannot be imported
  or returns something other than a ``RecordBatch``/``Table``.
- :class:`~engine.errors.ValidationError`: a value a step cannot convert (``cast``,
  ``parse_timestamp``, ``derive`` with a ``type``, arithmetic overflow), or a reference table whose
  join key repeats. Validation ran before the transforms, so such a value is a contract bug (the
  column should have been checked) or bad data the checks let through: the file fails, it is not
  rejected row by row.
- Errors reading a reference table keep their class (a missing table is an
  :class:`~engine.errors.InputNotFoundError`, S3 throttling a retryable
  :class:`~engine.errors.TransientError`).

Memory outside the batch, reported by :attr:`Transformer.state_bytes`: ``dedupe`` holds the distinct
keys of the file (:class:`~engine.enforce.keys.SeenValues`: 8 bytes per key, or 16 per interval of
consecutive integer keys); ``enrich`` holds its reference table plus 16 bytes per reference row (the
sorted keys), cached for the life of the process so that warm Lambda invocations reuse them.

Example:
    >>> import pyarrow as pa
    >>> from pydantic import TypeAdapter
    >>> from engine.contract import Step
    >>> steps = TypeAdapter(list[Step]).validate_python([
    ...     {"filter": {"call": "greater", "args": [{"field": "amount"}, {"literal": 5}]}},
    ...     {"dedupe": {"keys": ["order_id"]}}])
    >>> transformer = Transformer(steps, uri=path)
    >>> table, filtered = transformer.apply(pa.table({"order_id": [1, 1, 2, 3],
    ...                                               "amount": [12.5, 12.5, 7.0, 3.25]}))
    >>> table.column("order_id").to_pylist(), filtered
    ([1, 2], 2)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.enforce.coerce import parse_timestamps
from engine.enforce.enrich import Enrich
from engine.enforce.enrich_api import RECORD_COLUMN, EnrichApi
from engine.enforce.keys import SeenValues, is_exact, row_keys, value_keys
from engine.errors import ContractError, EngineError, ValidationError
from engine.io import one_line
from engine.readers.base import Reject

if TYPE_CHECKING:
    from engine.contract import Contract, Expr, Step

__all__ = ["Transformer", "evaluate"]

Value = pa.Array | pa.ChunkedArray | pa.Scalar

# ---------------------------------------------------------------------------------------------
# Expressions
# ---------------------------------------------------------------------------------------------


def evaluate(expr: Expr | dict[str, Any], table: pa.Table) -> Value:
    """Evaluate an expression tree over ``table``.

    ``{field: name}`` is the column (a list is a path into nested structs), ``{literal: value}``
    an Arrow scalar, ``{call: name, args: [...], options: {...}}`` the ``pyarrow.compute``
    function of that name applied to the evaluated arguments, with the options object the
    contract model builds (:meth:`engine.contract.CallExpr.function_options`).

    Args:
        expr: a validated expression model, or the same as a plain mapping.
        table: the batch.

    Returns:
        A column (``ChunkedArray``) or, when no argument reads a column, a scalar.

    Raises:
        ContractError: an unknown column or struct field; no kernel for these argument types.
        ValidationError: the data makes the function fail (overflow, a value that does not cast).

    """
    if isinstance(expr, dict):
        from pydantic import TypeAdapter

        from engine.contract import Expr as ExprType

        try:
            expr = TypeAdapter(ExprType).validate_python(expr)
        except ValueError as exc:
            raise ContractError(f"invalid expression {expr!r}: {exc}") from None
    return _compile(expr)(table)


def _compile(expr: Any) -> Callable[[pa.Table], Value]:
    """Turn an expression model into a function of a table (options are built once)."""
    from engine.contract import CallExpr, FieldExpr, LiteralExpr

    if isinstance(expr, FieldExpr):
        path = expr.path
        return lambda table: _field(table, path)
    if isinstance(expr, LiteralExpr):
        scalar = expr.scalar
        return lambda table: scalar
    if isinstance(expr, CallExpr):
        name = expr.call
        args = [_compile(arg) for arg in expr.args]
        options = expr.function_options()

        def call(table: pa.Table) -> Value:
            values = [arg(table) for arg in args]
            return _call(name, values, options)

        return call
    raise ContractError(f"not an expression: {expr!r}")


def _field(table: pa.Table, path: Sequence[str]) -> pa.ChunkedArray:
    name = path[0]
    if name not in table.column_names:
        raise ContractError(f"no column {name!r}; columns here: {', '.join(table.column_names)}")
    column = table.column(name)
    if len(path) > 1:
        try:
            column = pc.struct_field(column, list(path[1:]))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, KeyError) as exc:
            raise ContractError(f"no field {'.'.join(path)!r}: {one_line(exc)}") from None
    return column


def _call(name: str, values: list[Value], options: pc.FunctionOptions | None) -> Value:
    try:
        return pc.call_function(name, values, options)
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError) as exc:
        types = ", ".join(str(v.type) for v in values)
        raise ContractError(f"{name}({types}): {one_line(exc)}") from None
    except pa.ArrowInvalid as exc:
        raise ValidationError(f"{name}: {one_line(exc)}") from None


# ---------------------------------------------------------------------------------------------
# The transformer
# ---------------------------------------------------------------------------------------------

StepFunction = Callable[[pa.Table], pa.Table]


class Transformer:
    """Applies a contract's transform steps to the batches of one input, in order.

    Create one per input file: ``dedupe`` remembers keys across the batches of the file.

    Args:
        steps: the contract's ``transforms``.
        uri: the input, named in every error.
        resolve: turns an ``enrich`` path into a URI (:meth:`engine.contract.Contract.resolve`,
            so that a relative path is relative to the contract file); by default paths are
            used as written.

    """

    def __init__(
        self,
        steps: Sequence[Step],
        *,
        uri: str,
        resolve: Callable[[str], str] | None = None,
    ) -> None:
        self.steps = list(steps)
        self.uri = uri
        self._resolve = resolve or (lambda path: path)
        self._functions = [self._build(step) for step in self.steps]

    @classmethod
    def from_contract(cls, contract: Contract, *, uri: str, validated: bool = False,
                      ) -> Transformer:
        """The transformer for ``contract``'s steps, resolving paths against the contract file.

        With ``validated`` (its batches have passed the contract's checks, as in a run), a
        ``dedupe`` on one column that the contract declares ``unique`` and not nullable, with
        only ``filter``, ``derive`` (of other columns), ``select`` and ``drop`` before it,
        cannot drop anything: validation already rejected every repeat of that column, keeping
        the first, as ``dedupe`` would. It keeps no keys of its own then, halving the state a
        file's keys take (on 500 MB of orders before keys in order were held as intervals:
        8 bytes per row instead of 16, 50 MiB less).
        """
        transformer = cls(contract.transforms, uri=uri, resolve=contract.resolve)
        if not validated:
            return transformer
        safe_before = {"filter", "select", "drop", "derive"}
        for i, step in enumerate(transformer.steps):
            if step.kind != "dedupe":
                continue
            keys = list(step.dedupe.keys)
            column = contract.columns.get(keys[0]) if len(keys) == 1 else None
            earlier = transformer.steps[:i]
            if (column is not None and column.unique and not column.nullable
                    and all(s.kind in safe_before for s in earlier)
                    and not any(s.kind == "derive" and s.derive.name == keys[0]
                                for s in earlier)):
                transformer._functions[i] = _identity
        return transformer

    def apply(self, table: pa.Table, records: np.ndarray | None = None
              ) -> tuple[pa.Table, int]:
        """Run every step on ``table``.

        Args:
            table: the batch.
            records: the record number of each row, for the steps that reject rows
                (:attr:`wants_records`); they travel as the column ``RECORD_COLUMN``.

        Returns:
            The transformed table, and the number of rows the steps removed (``filter``,
            ``dedupe``, ``enrich`` with ``how: inner``, ``python``): ``rows_filtered``. Rows
            a step rejected are not among them: :meth:`take_rejects` returns those.

        """
        rows, before = table.num_rows, self._rejected()
        if records is not None and self.wants_records:
            table = table.append_column(RECORD_COLUMN, pa.array(records, pa.int64()))
        out = self._run(table)
        if RECORD_COLUMN in out.column_names:
            out = out.drop_columns([RECORD_COLUMN])
        return out, rows - out.num_rows - (self._rejected() - before)

    def _rejected(self) -> int:
        return sum(len(f.rejects) for f in self._functions if isinstance(f, EnrichApi))

    @property
    def wants_records(self) -> bool:
        """Whether a step rejects rows (``enrich_api`` with ``on_missing: reject``)."""
        return any(isinstance(f, EnrichApi) and f.wants_records for f in self._functions)

    def take_rejects(self) -> list[Reject]:
        """The rows steps rejected since the last call (``enrich_api``), in record order."""
        out: list[Reject] = []
        for function in self._functions:
            if isinstance(function, EnrichApi):
                out.extend(function.take_rejects())
        return sorted(out, key=lambda r: r.record)

    def api_stats(self) -> list[dict[str, Any]]:
        """What each ``enrich_api`` step asked of its API: the RunReport's ``enrich_api``."""
        return [{"step": i, "host": f.spec.host, **f.stats.to_dict()}
                for i, f in enumerate(self._functions) if isinstance(f, EnrichApi)]

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        """The schema the steps produce from batches of ``input_schema``.

        Runs the steps on an empty table: this loads ``enrich`` reference tables and imports and
        calls ``python`` functions (with an empty batch).
        """
        return self._run(input_schema.empty_table()).schema

    @property
    def state_bytes(self) -> int:
        """Memory held across batches: ``dedupe`` keys, ``enrich`` tables, API answers."""
        total = 0
        shared: set[int] = set()
        for function in self._functions:
            if isinstance(function, _Dedupe):
                total += function.nbytes
            elif isinstance(function, EnrichApi) and id(function.cache) not in shared:
                shared.add(id(function.cache))
                total += function.nbytes
            elif isinstance(function, Enrich) and function.lookup is not None:
                lookup = function.lookup
                if id(lookup.table) not in shared:
                    shared.add(id(lookup.table))
                    total += lookup.table.nbytes
                total += lookup.nbytes
        return total

    # -- running ---------------------------------------------------------------------------

    def _run(self, table: pa.Table) -> pa.Table:
        for index, (step, function) in enumerate(zip(self.steps, self._functions, strict=True)):
            rows = table.num_rows
            try:
                table = function(table)
            except EngineError as exc:
                raise self._in_step(exc, index, step.kind) from exc
            except Exception as exc:  # trusted python code, or a bug: keep it, say where
                exc.add_note(f"in transforms[{index}] ({step.kind}) on {self.uri}")
                raise
            if table.num_rows > rows:
                raise self._in_step(
                    ContractError(f"the step returned {table.num_rows} rows from {rows}; "
                                  "transforms may remove rows, never add them"),
                    index, step.kind)
        return table

    def _in_step(self, exc: EngineError, index: int, kind: str) -> EngineError:
        """``exc`` again (same class, so the workflow's routing holds), naming step and input."""
        message = f"transforms[{index}] ({kind}): {exc.message}"
        if exc.uri and exc.uri != self.uri:  # a reference table: its name, not its offsets
            message += f" [{exc.uri}]"
            return type(exc)(message, uri=self.uri)
        return type(exc)(message, uri=self.uri, record=exc.record, offset=exc.offset)

    def _build(self, step: Any) -> StepFunction:
        kind = step.kind
        if kind == "rename":
            return _rename(dict(step.rename))
        if kind == "cast":
            return _cast(step.arrow_types)
        if kind == "parse_timestamp":
            spec = step.parse_timestamp
            return _parse_timestamp(spec.column, spec.arrow_type, list(spec.formats),
                                    spec.timezone)
        if kind == "derive":
            spec = step.derive
            return _derive(spec.name, _compile(spec.expr), spec.arrow_type)
        if kind == "filter":
            return _filter(_compile(step.filter))
        if kind == "select":
            return _select(list(step.select))
        if kind == "drop":
            return _drop(list(step.drop))
        if kind == "dedupe":
            return _Dedupe(list(step.dedupe.keys))
        if kind == "enrich":
            spec = step.enrich
            return Enrich(self._resolve(spec.path), spec.reference_format, list(spec.on),
                           None if spec.columns is None else list(spec.columns), spec.how)
        if kind == "enrich_api":
            return EnrichApi(step.enrich_api)
        if kind == "python":
            return _Python(step.python.function)
        raise ContractError(f"unknown transform step {kind!r}", uri=self.uri)


# ---------------------------------------------------------------------------------------------
# Column steps
# ---------------------------------------------------------------------------------------------


def _identity(table: pa.Table) -> pa.Table:
    return table


def _need(table: pa.Table, names: Sequence[str]) -> None:
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise ContractError(f"no column {', '.join(map(repr, missing))}; columns here: "
                            f"{', '.join(table.column_names)}")


def _rename(mapping: dict[str, str]) -> StepFunction:
    def rename(table: pa.Table) -> pa.Table:
        _need(table, list(mapping))
        names = [mapping.get(n, n) for n in table.column_names]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise ContractError(f"renaming gives two columns named {', '.join(clash)}")
        return table.rename_columns(names)

    return rename


def _cast(types: dict[str, pa.DataType]) -> StepFunction:
    def cast(table: pa.Table) -> pa.Table:
        _need(table, list(types))
        for name, target in types.items():
            index = table.column_names.index(name)
            table = table.set_column(index, name, _safe_cast(table.column(index), target, name))
        return table

    return cast


def _safe_cast(values: pa.ChunkedArray, target: pa.DataType, name: str) -> pa.ChunkedArray:
    """Cast ``values``; a value that does not fit is a ValidationError quoting the first one."""
    if values.type.equals(target):
        return values
    try:
        return pc.cast(values, target)
    except pa.ArrowNotImplementedError as exc:
        raise ContractError(f"column {name!r}: cannot cast {values.type} to {target} "
                            f"({one_line(exc)})") from None
    except pa.ArrowInvalid as exc:
        value = _first_uncastable(values, target)
        raise ValidationError(f"column {name!r}: value {value!r} does not convert to {target} "
                              f"({one_line(exc)})") from None


def _first_uncastable(values: pa.ChunkedArray, target: pa.DataType) -> Any:
    """The first value ``cast`` refuses (an error path: O(n) casts of halving slices)."""
    array = values.combine_chunks()
    lo, hi = 0, len(array)
    while hi - lo > 1:  # invariant: array[lo:hi] holds the first bad value
        mid = (lo + hi) // 2
        try:
            pc.cast(array.slice(lo, mid - lo), target)
            lo = mid
        except pa.ArrowInvalid:
            hi = mid
    return array[lo].as_py() if len(array) else None


def _parse_timestamp(column: str, target: pa.DataType, formats: list[str],
                     timezone: str) -> StepFunction:
    def parse(table: pa.Table) -> pa.Table:
        _need(table, [column])
        index = table.column_names.index(column)
        raw = table.column(index)
        try:
            parsed, bad = parse_timestamps(raw, target, formats, timezone)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ContractError(f"column {column!r} ({raw.type}): {one_line(exc)}") from None
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValidationError(f"column {column!r}: {raw[first].as_py()!r} matches none of "
                                  f"the formats {formats} ({int(bad.sum())} such value(s))")
        return table.set_column(index, column, parsed)

    return parse


def _derive(name: str, compute: Callable[[pa.Table], Value],
            target: pa.DataType | None) -> StepFunction:
    def derive(table: pa.Table) -> pa.Table:
        value = compute(table)
        if isinstance(value, pa.Scalar):
            value = pa.repeat(value, table.num_rows)
        if isinstance(value, pa.Array):
            value = pa.chunked_array([value], type=value.type)
        if len(value) != table.num_rows:
            raise ContractError(f"the expression gives {len(value)} values for "
                                f"{table.num_rows} rows")
        if target is not None:
            value = _safe_cast(value, target, name)
        if name in table.column_names:
            return table.set_column(table.column_names.index(name), name, value)
        return table.append_column(name, value)

    return derive


def _filter(compute: Callable[[pa.Table], Value]) -> StepFunction:
    def keep(table: pa.Table) -> pa.Table:
        mask = compute(table)
        if not pa.types.is_boolean(mask.type):
            raise ContractError(f"a filter must be boolean; the expression gives {mask.type}")
        if isinstance(mask, pa.Scalar):
            return table if mask.as_py() else table.slice(0, 0)
        return table.filter(mask, null_selection_behavior="drop")

    return keep


def _select(names: list[str]) -> StepFunction:
    def select(table: pa.Table) -> pa.Table:
        _need(table, names)
        # The record numbers a later enrich_api rejects by are not the contract's to select.
        hidden = [RECORD_COLUMN] if RECORD_COLUMN in table.column_names else []
        return table.select(names + hidden)

    return select


def _drop(names: list[str]) -> StepFunction:
    # Lenient: with ``extra_columns: keep`` a column may be in some files only.
    def drop(table: pa.Table) -> pa.Table:
        return table.drop_columns([n for n in names if n in table.column_names])

    return drop


# ---------------------------------------------------------------------------------------------
# Dedupe
# ---------------------------------------------------------------------------------------------


class _Dedupe:
    """Drops rows whose key tuple appeared earlier in the file (``keep: first``).

    One key column of an exact type (integers, booleans, dates, times, timestamps) is exact.
    Other keys are hashed to 64 bits with a seed drawn per process
    (:func:`engine.enforce.keys.row_keys`), so no input can be written to make two meet: two
    different key tuples share a hash with probability about n² / 2**65 for n distinct keys
    (1e-7 for 2 million), and then the later row is dropped as a duplicate. Nulls are values:
    two rows with null keys are duplicates (as ``SELECT DISTINCT`` has it).
    """

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.seen = SeenValues()
        self.seen_null = False

    @property
    def nbytes(self) -> int:
        return self.seen.nbytes

    def __call__(self, table: pa.Table) -> pa.Table:
        _need(table, self.keys)
        if not table.num_rows:
            return table
        columns = [table.column(k) for k in self.keys]
        if len(columns) == 1 and is_exact(columns[0].type):
            keys, valid = value_keys(columns[0])
            dup = self.seen.add_keys(keys, valid)
            nulls = np.flatnonzero(~valid)
            if len(nulls):
                dup[nulls] = True
                if not self.seen_null:
                    dup[nulls[0]] = False
                    self.seen_null = True
        else:
            dup = self.seen.add_keys(row_keys(columns))
        return table.filter(pa.array(~dup)) if dup.any() else table


# ---------------------------------------------------------------------------------------------
# Python steps
# ---------------------------------------------------------------------------------------------


class _Python:
    """Calls ``module:function`` with each ``RecordBatch``: trusted code, run in-process.

    The function is imported at the first batch; it returns a ``RecordBatch`` or a ``Table``
    with the same columns for every batch, and may drop rows (counted as filtered) but not add
    them.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._function: Callable[[pa.RecordBatch], Any] | None = None

    def _load(self) -> Callable[[pa.RecordBatch], Any]:
        module_name, _, attribute = self.name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ContractError(f"cannot import {module_name!r} for {self.name!r}: "
                                f"{one_line(exc)}") from None
        function = getattr(module, attribute, None)
        if not callable(function):
            raise ContractError(f"{module_name!r} has no function {attribute!r}")
        return function  # type: ignore[no-any-return]

    def __call__(self, table: pa.Table) -> pa.Table:
        if self._function is None:
            self._function = self._load()
        batches = table.to_batches() or [
            pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in table.schema],
                                       schema=table.schema)]
        parts = []
        for batch in batches:
            result = self._function(batch)
            if isinstance(result, pa.RecordBatch):
                result = pa.Table.from_batches([result])
            elif not isinstance(result, pa.Table):
                raise ContractError(f"{self.name} returned {type(result).__name__}, not a "
                                    "pyarrow.RecordBatch or Table")
            parts.append(result)
        try:
            return pa.concat_tables(parts)
        except pa.ArrowInvalid as exc:
            raise ContractError(f"{self.name} returned batches with different schemas: "
                                f"{one_line(exc)}") from None
