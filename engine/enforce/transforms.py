"""Run a contract's ``transforms`` on each batch, vectorised with :mod:`pyarrow.compute`.

A :class:`Transformer` runs the steps of one file in order, batch after batch, and keeps the state
that spans batches: the keys ``dedupe`` has seen, the reference tables ``enrich`` joins against.
No step loops over rows in Python (string key columns are hashed by the vectorised
:func:`engine.enforce.aggregate.hash64`), except ``python`` steps, which run whatever they run.

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

Memory outside the batch, reported by :attr:`Transformer.state_bytes`: ``dedupe`` holds 8 bytes per
distinct key in the file; ``enrich`` holds its reference table plus 16 bytes per reference row (the
sorted keys), cached for the life of the process so that warm Lambda invocations reuse them.

Example:
    >>> from engine.contract import load_contract
    >>> contract = load_contract("contracts/orders.yaml")             # doctest: +SKIP
    >>> transformer = Transformer.from_contract(contract, uri="orders.csv")  # doctest: +SKIP
    >>> table, filtered = transformer.apply(batch_table)                # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.enforce.coerce import parse_timestamps
from engine.enforce.validate import SeenValues
from engine.errors import ContractError, EngineError, InputFormatError, ValidationError
from engine.io import is_s3, object_size, open_input, s3_client

if TYPE_CHECKING:
    from engine.contract import Contract, Expr, Step

__all__ = ["Transformer", "clear_reference_cache", "evaluate"]

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
            raise ContractError(f"no field {'.'.join(path)!r}: {_one_line(exc)}") from None
    return column


def _call(name: str, values: list[Value], options: pc.FunctionOptions | None) -> Value:
    try:
        return pc.call_function(name, values, options)
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError) as exc:
        types = ", ".join(str(v.type) for v in values)
        raise ContractError(f"{name}({types}): {_one_line(exc)}") from None
    except pa.ArrowInvalid as exc:
        raise ValidationError(f"{name}: {_one_line(exc)}") from None


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
        file's keys take (8 bytes per row instead of 16; 50 MiB less on 500 MB of orders).
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

    def apply(self, table: pa.Table) -> tuple[pa.Table, int]:
        """Run every step on ``table``.

        Returns:
            The transformed table, and the number of rows the steps removed (``filter``,
            ``dedupe``, ``enrich`` with ``how: inner``, ``python``): ``rows_filtered``.

        """
        out = self._run(table)
        return out, table.num_rows - out.num_rows

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        """The schema the steps produce from batches of ``input_schema``.

        Runs the steps on an empty table: this loads ``enrich`` reference tables and imports and
        calls ``python`` functions (with an empty batch).
        """
        return self._run(input_schema.empty_table()).schema

    @property
    def state_bytes(self) -> int:
        """Memory held across batches: ``dedupe`` keys and ``enrich`` reference tables."""
        total = 0
        shared: set[int] = set()
        for function in self._functions:
            if isinstance(function, _Dedupe):
                total += function.nbytes
            elif isinstance(function, _Enrich) and function.lookup is not None:
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
            return _Enrich(self._resolve(spec.path), spec.reference_format, list(spec.on),
                           None if spec.columns is None else list(spec.columns), spec.how)
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
                            f"({_one_line(exc)})") from None
    except pa.ArrowInvalid as exc:
        value = _first_uncastable(values, target)
        raise ValidationError(f"column {name!r}: value {value!r} does not convert to {target} "
                              f"({_one_line(exc)})") from None


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
            raise ContractError(f"column {column!r} ({raw.type}): {_one_line(exc)}") from None
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
        return table.select(names)

    return select


def _drop(names: list[str]) -> StepFunction:
    # Lenient: with ``extra_columns: keep`` a column may be in some files only.
    def drop(table: pa.Table) -> pa.Table:
        return table.drop_columns([n for n in names if n in table.column_names])

    return drop


# ---------------------------------------------------------------------------------------------
# 64-bit row keys (dedupe and enrich)
# ---------------------------------------------------------------------------------------------

_U64 = np.uint64
_SEED = _U64(0x9E3779B97F4A7C15)
#: Stands for a null in a hashed key (a value hashing to it is a 2**-64 event).
_NULL_MARK = _U64(0x6A09E667F3BCC909)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection on uint64 that spreads every input bit."""
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def _as_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def _is_exact(t: pa.DataType) -> bool:
    """Whether a value of ``t`` is its own 64-bit key (no hashing, no collisions)."""
    if pa.types.is_dictionary(t):
        return _is_exact(t.value_type)
    return (pa.types.is_integer(t) or pa.types.is_boolean(t)
            or (pa.types.is_temporal(t) and t.bit_width in (32, 64)))


def _column_keys(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A uint64 key per value, and the validity mask (keys of nulls are meaningless).

    Integers, booleans, dates and times are their own keys; floats their bits (``-0.0`` is
    ``0.0``, every NaN the same); decimals a mix of their 128/256 bits; strings and binaries
    :func:`engine.enforce.aggregate.hash64` (vectorised, eight bytes at a time).
    """
    array = _as_array(values)
    t = array.type
    if pa.types.is_dictionary(t):
        array, t = array.cast(t.value_type), t.value_type
    n = len(array)
    valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        ints = array.view(pa.int64()) if pa.types.is_uint64(t) else array.cast(pa.int64())
        keys = np.asarray(ints.fill_null(0).to_numpy(zero_copy_only=False)).view(_U64)
    elif pa.types.is_temporal(t) and t.bit_width in (32, 64):
        ints = array.view(pa.int64()) if t.bit_width == 64 else array.view(pa.int32())
        keys = np.asarray(ints.fill_null(0).to_numpy(zero_copy_only=False)).astype(np.int64)
        keys = keys.view(_U64)
    elif pa.types.is_floating(t):
        floats = np.asarray(array.cast(pa.float64()).fill_null(0).to_numpy(zero_copy_only=False))
        floats = np.where(np.isnan(floats), np.nan, floats + 0.0)
        keys = _mix(floats.view(_U64))
    elif pa.types.is_decimal(t):
        words = t.byte_width // 8
        raw = np.frombuffer(array.buffers()[1], dtype=_U64)
        raw = raw[array.offset * words:(array.offset + n) * words].reshape(n, words)
        keys = np.full(n, _SEED, dtype=_U64)
        for w in range(words):
            keys = _mix(keys ^ raw[:, w])
    elif (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
          or pa.types.is_large_binary(t)):
        from engine.enforce.aggregate import hash64  # vectorised: no per-value Python

        keys = np.zeros(n, dtype=_U64)
        keys[valid] = hash64(array.drop_null())
    else:
        raise ContractError(f"a key column must hold scalar values, not {t}")
    return np.where(valid, keys, _U64(0)), valid


def _row_keys(columns: Sequence[pa.Array | pa.ChunkedArray]) -> np.ndarray:
    """One uint64 per row for the tuple of ``columns``; a null is a value like any other."""
    h = np.full(len(columns[0]), _SEED, dtype=_U64)
    for column in columns:
        keys, valid = _column_keys(column)
        h = _mix(h ^ np.where(valid, _mix(keys), _NULL_MARK))
    return h


class _Dedupe:
    """Drops rows whose key tuple appeared earlier in the file (``keep: first``).

    One integer-like key is exact. Other keys are hashed to 64 bits: two different key tuples
    share a hash with probability about n² / 2**65 for n distinct keys (1e-7 for 2 million), and
    then the later row is dropped as a duplicate. Nulls are values: two rows with null keys are
    duplicates (as ``SELECT DISTINCT`` has it).
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
        if len(columns) == 1 and _is_exact(columns[0].type):
            keys, valid = _column_keys(columns[0])
            dup = self.seen.add(pa.array(keys.view(np.int64), mask=~valid))
            nulls = np.flatnonzero(~valid)
            if len(nulls):
                dup[nulls] = True
                if not self.seen_null:
                    dup[nulls[0]] = False
                    self.seen_null = True
        else:
            dup = self.seen.add(pa.array(_row_keys(columns).view(np.int64)))
        return table.filter(pa.array(~dup)) if dup.any() else table


# ---------------------------------------------------------------------------------------------
# Enrichment
# ---------------------------------------------------------------------------------------------


@dataclass
class _Reference:
    """A reference table as read, and the version it was read at."""

    version: tuple[Any, ...]
    table: pa.Table


@dataclass
class _Lookup:
    """A reference table ready for joins on some key columns.

    ``sorted_keys[i]`` is the 64-bit key of reference row ``order[i]``; rows with a null key are
    left out (they match nothing). ``key_columns`` are the reference key columns cast to the
    data's key types, compared with the data's values to confirm a hashed match.
    """

    table: pa.Table
    key_columns: list[pa.Array]
    sorted_keys: np.ndarray
    order: np.ndarray
    exact: bool
    as_string: bool
    #: the most reference rows sharing one 64-bit key: 1, but after a hash collision
    longest_run: int

    @property
    def nbytes(self) -> int:
        return int(self.sorted_keys.nbytes + self.order.nbytes
                   + sum(c.nbytes for c in self.key_columns))


#: Reference tables by (uri, format), with the version (size, mtime or ETag) they were read at.
_TABLES: dict[tuple[str, str], _Reference] = {}
#: Prepared lookups by (uri, format, version, keys, the data's key types).
_LOOKUPS: dict[tuple[Any, ...], _Lookup] = {}


def clear_reference_cache() -> None:
    """Forget every cached reference table (tests; a long-lived process that must reload)."""
    _TABLES.clear()
    _LOOKUPS.clear()


def _version(uri: str) -> tuple[Any, ...]:
    """What identifies the stored bytes: (size, ETag) on S3, (size, mtime) locally."""
    if is_s3(uri):
        from engine.io.s3 import head_object  # boto3 loads only for a file on S3

        head = head_object(s3_client(), uri)
        return int(head["ContentLength"]), head.get("ETag")
    size = object_size(uri)
    path = uri[7:] if uri.startswith("file://") else uri
    return size, os.stat(path).st_mtime_ns


def _read_reference(uri: str, fmt: str) -> pa.Table:
    """Read a whole reference table (the bytes stream through :func:`engine.io.open_input`)."""
    with open_input(uri) as stream:
        try:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                # Parquet needs random access: the stored bytes are held while decoding.
                return pq.read_table(pa.BufferReader(stream.read()))
            import pyarrow.csv as pacsv

            return pacsv.read_csv(stream)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputFormatError(f"cannot read the reference table as {fmt}: "
                                   f"{_one_line(exc)}", uri=uri) from None


def _reference(uri: str, fmt: str) -> tuple[tuple[Any, ...], pa.Table]:
    """The reference table, from the cache when the stored version has not changed."""
    version = _version(uri)
    cached = _TABLES.get((uri, fmt))
    if cached is None or cached.version != version:
        for key in [k for k in _LOOKUPS if k[:2] == (uri, fmt)]:
            del _LOOKUPS[key]  # an older version: let it go
        _TABLES.pop((uri, fmt), None)
        cached = _TABLES[(uri, fmt)] = _Reference(version, _read_reference(uri, fmt))
    return cached.version, cached.table


class _Enrich:
    """Adds reference columns to each row by key, keeping the rows' order.

    The reference keys are reduced to 64-bit keys and sorted once; each batch is a
    ``searchsorted`` (O(rows · log reference rows), where ``pc.index_in`` would rebuild a hash
    table of the whole reference for every batch), and hashed matches are confirmed by comparing
    the key values themselves.
    """

    def __init__(self, uri: str, fmt: str, on: list[str], columns: list[str] | None,
                 how: str) -> None:
        self.uri, self.fmt, self.on, self.columns, self.how = uri, fmt, on, columns, how
        self.lookup: _Lookup | None = None
        self.added: list[str] = []

    def __call__(self, table: pa.Table) -> pa.Table:
        _need(table, self.on)
        if self.lookup is None:
            self.lookup = self._prepare(table.schema)
        lookup = self.lookup
        left = [_as_array(table.column(k)) for k in self.on]
        left = [pc.cast(c, pa.string()) if lookup.as_string else
                c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in left]
        index = self._match(left, lookup)
        added = lookup.table.select(self.added).take(index)
        out = table
        for name in self.added:
            out = out.append_column(name, added.column(name))
        if self.how == "inner":
            out = out.filter(index.is_valid())
        return out

    def _match(self, left: list[pa.Array], lookup: _Lookup) -> pa.Array:
        """The reference row of each data row (null: no match)."""
        n = len(left[0])
        valid = np.ones(n, dtype=bool)
        for column in left:
            valid &= np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        keys = _column_keys(left[0])[0] if lookup.exact else _row_keys(left)
        found = np.zeros(n, dtype=bool)
        rows = np.zeros(n, dtype=np.int64)
        size = len(lookup.sorted_keys)
        start = np.searchsorted(lookup.sorted_keys, keys)
        for step in range(lookup.longest_run if size else 0):
            pos = start + step
            inside = pos < size
            pos[~inside] = 0
            hit = valid & ~found & inside & (lookup.sorted_keys[pos] == keys)
            if not hit.any():
                break
            candidate = lookup.order[pos]
            if not lookup.exact:  # equal hashes: confirm that the values are equal
                taken = pa.array(candidate, mask=~hit)
                for mine, theirs in zip(left, lookup.key_columns, strict=True):
                    same = pc.fill_null(pc.equal(mine, theirs.take(taken)), False)
                    hit &= np.asarray(same.to_numpy(zero_copy_only=False), dtype=bool)
            rows[hit] = candidate[hit]
            found |= hit
        return pa.array(rows, mask=~found)

    def _prepare(self, schema: pa.Schema) -> _Lookup:
        version, reference = _reference(self.uri, self.fmt)
        missing = [k for k in self.on if k not in reference.column_names]
        if missing:
            raise ContractError(f"the reference table has no key column {missing}; it has "
                                f"{', '.join(reference.column_names)}", uri=self.uri)
        if self.columns is None:
            self.added = [c for c in reference.column_names if c not in self.on]
        else:
            _need(reference, self.columns)
            self.added = list(self.columns)
        clash = [c for c in self.added if c in schema.names]
        if clash:
            raise ContractError(f"the reference column(s) {clash} already exist in the data; "
                                "rename them first or list the columns to add")
        left_types = tuple(str(schema.field(k).type) for k in self.on)
        cache_key = (self.uri, self.fmt, version, tuple(self.on), left_types)
        if cache_key not in _LOOKUPS:
            _LOOKUPS[cache_key] = self._index(reference, schema)
        return _LOOKUPS[cache_key]

    def _index(self, reference: pa.Table, schema: pa.Schema) -> _Lookup:
        keys, as_string = _aligned_keys([reference.column(k) for k in self.on],
                                        [schema.field(k).type for k in self.on])
        exact = len(keys) == 1 and _is_exact(keys[0].type)
        row_keys = _column_keys(keys[0])[0] if exact else _row_keys(keys)
        valid = np.ones(reference.num_rows, dtype=bool)
        for column in keys:
            valid &= np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        rows = np.flatnonzero(valid)  # a null key matches nothing
        order = rows[np.argsort(row_keys[rows], kind="stable")]
        sorted_keys = row_keys[order]
        starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
        runs = np.diff(np.append(starts, len(sorted_keys)))
        for first, length in zip(starts[runs > 1], runs[runs > 1], strict=True):
            # Equal 64-bit keys: equal values are a repeated key; otherwise a hash collision
            # (about 1e-7 for 2 million keys), which _match resolves by comparing values.
            members = [int(r) for r in order[first:first + length]]
            for i, a in enumerate(members):
                for b in members[i + 1:]:
                    if all(c[a] == c[b] for c in keys):
                        shown = ", ".join(f"{k}={c[a].as_py()!r}"
                                          for k, c in zip(self.on, keys, strict=True))
                        raise ValidationError(f"the reference table repeats the key ({shown}); "
                                              "a lookup key must be unique", uri=self.uri)
        longest = int(runs.max()) if len(runs) else 1
        return _Lookup(reference, keys, sorted_keys, order, exact, as_string, longest)


def _aligned_keys(columns: list[pa.ChunkedArray], types: list[pa.DataType]
                  ) -> tuple[list[pa.Array], bool]:
    """Reference key columns in the data's key types; as strings (both sides) if that fails."""
    out = []
    try:
        for column, target in zip(columns, types, strict=True):
            plain = target.value_type if pa.types.is_dictionary(target) else target
            out.append(_as_array(column).cast(plain))
        return out, False
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return [_as_array(column).cast(pa.string()) for column in columns], True


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
                                f"{_one_line(exc)}") from None
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
                                f"{_one_line(exc)}") from None


def _one_line(text: object) -> str:
    return " ".join(str(text).split())
