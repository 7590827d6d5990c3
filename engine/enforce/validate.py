"""Enforce a dataset contract on each chunk, vectorised with pyarrow.compute.

A record that fails a check becomes a :class:`~engine.readers.base.Reject` naming the record, the
column, the check and the raw value; the rest of its chunk is written. Checks: types (via the
reader's strict mode and :mod:`engine.enforce.coerce`), ``nullable``, ``min``/``max``, ``in``,
``regex``, ``max_length`` and ``unique`` (within the file, among the records that pass every
other check: a record rejected for another reason is not written, so it is nobody's original).

A value is judged alone, whatever else is in its chunk: a CSV chunk whose values all fit arrives
typed, the reader having read its null markers as nulls; one holding a misfit arrives with the
contract's columns as text, and the same markers are read as nulls here before converting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.enforce.coerce import convert_strings, parse_timestamps
from engine.enforce.keys import SeenValues
from engine.errors import SchemaError
from engine.readers.base import Chunk, Reject
from engine.types import parse_type

__all__ = ["Validator"]

#: Examples kept per (column, check) for the ``validate`` summary.
EXAMPLES_PER_CHECK = 3


class Validator:
    """Checks chunks against a contract and converts them to its types.

    Args:
        contract: an :class:`engine.contract.Contract`.
        uri: the input, for error messages.
        null_markers: the text the reader reads as null in a column that is not a string (a
            CSV reader's ``null_values``, or pyarrow's defaults); ``None`` for formats whose
            text values are never null markers (JSON: ``null`` is null).
    """

    def __init__(self, contract: Any, uri: str,
                 null_markers: Sequence[str] | None = None) -> None:
        self.contract = contract
        self.uri = uri
        self.null_markers = (None if not null_markers
                             else pa.array(sorted(set(null_markers)), pa.string()))
        self.specs = dict(contract.columns)
        self.types = {name: parse_type(spec.type) for name, spec in self.specs.items()}
        self.unique = {name: SeenValues() for name, spec in self.specs.items() if spec.unique}
        self.counts: Counter[tuple[str, str]] = Counter()
        self.examples: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.input_names: list[str] = []

    # -- schema ----------------------------------------------------------------------------

    def reader_schema(self, inferred: pa.Schema) -> tuple[pa.Schema, frozenset[str]]:
        """The schema the reader parses with, and the columns whose types it must not widen.

        Raises :class:`SchemaError` (before anything is written) for a missing required column
        or, with ``extra_columns: reject``, for columns the contract does not name.
        """
        names = inferred.names
        missing = [n for n, s in self.specs.items() if s.required and n not in names]
        if missing:
            raise SchemaError(f"required column(s) missing from the input: {missing}; "
                              f"found {names}", uri=self.uri)
        extra = [n for n in names if n not in self.specs]
        if extra and self.contract.extra_columns == "reject":
            raise SchemaError(f"column(s) not in the contract: {extra} (extra_columns: reject)",
                              uri=self.uri)
        fields = []
        for f in inferred:
            if f.name not in self.specs:
                fields.append(f)
                continue
            target = self.types[f.name]
            if pa.types.is_temporal(target) and self.specs[f.name].formats:
                target = pa.string()  # parsed with the contract's formats by apply()
            elif pa.types.is_dictionary(target):
                target = target.value_type
            fields.append(pa.field(f.name, target))
        self.input_names = names
        strict = frozenset(n for n in names if n in self.specs)
        return pa.schema(fields), strict

    def output_schema(self) -> pa.Schema:
        """Declared columns in contract order (typed), then kept extra columns."""
        fields = [pa.field(n, self.types[n], nullable=s.nullable) for n, s in self.specs.items()]
        return pa.schema(fields)

    # -- checks ----------------------------------------------------------------------------

    def apply(self, chunk: Chunk, *, keep_text: bool = False) -> tuple[pa.Table, list[Reject]]:
        """Convert and check one chunk.

        Returns the good rows (contract columns, then kept extras) and a reject per bad record
        (its first failing check), at its record's offset; then lets the chunk's kept text
        (:attr:`~engine.readers.base.Chunk.starts`) go, so it is not held while the rows are
        transformed and written, unless ``keep_text`` (a later step rejects rows too).
        """
        table = chunk.table
        n = table.num_rows
        bad = np.zeros(n, dtype=bool)
        reason: list[tuple[str, str, Any] | None] = [None] * n
        columns: dict[str, pa.Array] = {}

        def flag(mask: np.ndarray, column: str, check: str, raw: pa.Array | None) -> None:
            new = mask & ~bad
            if not new.any():
                return
            values = raw if raw is not None else table.column(column)
            for i in np.flatnonzero(new):
                reason[i] = (column, check, values[int(i)].as_py())
            bad[:] |= new

        for name, spec in self.specs.items():
            target = self.types[name]
            if name not in table.column_names:
                columns[name] = pa.nulls(n, target)
                if not spec.nullable:
                    flag(np.ones(n, dtype=bool), name, "nullable", pa.nulls(n))
                continue
            raw = table.column(name)
            values, failed = self._convert(raw, target, spec)
            flag(failed, name, "type", raw)
            columns[name] = values
            self._checks(values, raw, name, spec, flag)
        for name in self.unique:
            values = columns[name]
            keep = ~bad
            dup = np.zeros(n, dtype=bool)
            dup[keep] = self.unique[name].add(values.filter(pa.array(keep)))
            flag(dup, name, "unique", table.column(name) if name in table.column_names else None)

        names = list(self.specs)
        kept = [c for c in table.column_names if c not in self.specs]
        if self.contract.extra_columns == "keep":
            for c in kept:
                columns[c] = table.column(c)
            names += kept
        out = pa.table([columns[c] for c in names], names=names)
        rejects = self._rejects(chunk, bad, reason)
        if not keep_text:
            chunk.starts = None  # the text its reader kept for the rejects' offsets: done with
        if bad.any():
            out = out.filter(pa.array(~bad))
        return out, rejects

    def _convert(self, raw: pa.ChunkedArray, target: pa.DataType, spec: Any
                 ) -> tuple[pa.Array, np.ndarray]:
        if pa.types.is_temporal(target) and spec.formats:
            # Always text (parsed here): a null marker fails every format, so only the values
            # that failed are looked up, which costs nothing in a chunk without them.
            values, failed = parse_timestamps(raw, target, list(spec.formats), spec.timezone)
            if failed.any() and self.null_markers is not None:
                failed &= ~_np(pc.is_in(raw, value_set=self.null_markers))
            return values, failed
        if raw.type.equals(target):
            array = raw.combine_chunks() if raw.num_chunks != 1 else raw.chunk(0)
            return array, np.zeros(len(raw), dtype=bool)
        if pa.types.is_string(raw.type):
            if self.null_markers is not None and not _is_text(target):
                # The reader's fallback for a chunk holding a misfit: text, markers and all
                # (with null_values unset, pyarrow reads markers as null in typed columns
                # only). Read them as null as the typed parse would have ("nan" too).
                raw = pc.if_else(pc.is_in(raw, value_set=self.null_markers),
                                 pa.scalar(None, raw.type), raw)
            return convert_strings(raw, target)
        try:
            return pc.cast(raw, target).combine_chunks(), np.zeros(len(raw), dtype=bool)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return convert_strings(pc.cast(raw, pa.string()), target)

    def _checks(self, values: pa.Array, raw: Any, name: str, spec: Any, flag: Any) -> None:
        # Bounds and sets come from the contract as Arrow values of the column's value type
        # (a naive timestamp bound is read in the column's timezone there).
        target = values.type
        if not spec.nullable:
            flag(_np(values.is_null()), name, "nullable", raw)
        plain = values.dictionary_decode() if pa.types.is_dictionary(target) else values
        if spec.min is not None:
            flag(_np(pc.less(plain, spec.min_value)), name, "min", raw)
        if spec.max is not None:
            flag(_np(pc.greater(plain, spec.max_value)), name, "max", raw)
        if spec.allowed is not None:
            allowed = spec.allowed_values
            flag(_np(pc.invert(pc.is_in(plain, value_set=allowed))) & _np(plain.is_valid()),
                 name, "in", raw)
        if spec.regex is not None:
            flag(_np(pc.invert(pc.match_substring_regex(plain, spec.regex))), name, "regex", raw)
        if spec.max_length is not None:
            flag(_np(pc.greater(pc.utf8_length(plain), spec.max_length)), name, "max_length",
                 raw)

    def _rejects(self, chunk: Chunk, bad: np.ndarray,
                 reason: list[tuple[str, str, Any] | None]) -> list[Reject]:
        if not bad.any():
            return []
        records = chunk.row_records()
        starts = chunk.record_offsets()
        out = []
        for i in np.flatnonzero(bad):
            column, check, value = reason[i]  # type: ignore[misc]
            detail = _describe(check, value, self.specs[column], self.types[column])
            record = int(records[i])
            offset = (chunk.offset if starts is None
                      else int(starts[record - chunk.first_record]))
            reject = Reject.make(record, offset, f"{column}: {detail}",
                                 "" if value is None else str(value), column=column,
                                 check=check)
            out.append(reject)
            key = (column, check)
            self.counts[key] += 1
            examples = self.examples.setdefault(key, [])
            if len(examples) < EXAMPLES_PER_CHECK:
                examples.append({"record": reject.record, "value": reject.raw})
        return out

    def note_reader_rejects(self, rejects: list[Reject]) -> None:
        """Count the reader's own rejects (malformed records) in the summary."""
        for reject in rejects:
            key = (reject.column or "(record)", reject.check or "format")
            self.counts[key] += 1
            examples = self.examples.setdefault(key, [])
            if len(examples) < EXAMPLES_PER_CHECK:
                examples.append({"record": reject.record, "value": reject.raw[:200]})

    @property
    def state_bytes(self) -> int:
        """Memory held by ``unique`` checks (grows with distinct values, not chunk size)."""
        return sum(seen.nbytes for seen in self.unique.values())


def _is_text(target: pa.DataType) -> bool:
    """Whether pyarrow parses ``target`` as a string column (markers stay text when unset)."""
    value = target.value_type if pa.types.is_dictionary(target) else target
    return (pa.types.is_string(value) or pa.types.is_large_string(value)
            or pa.types.is_binary(value) or pa.types.is_large_binary(value))


def _np(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _describe(check: str, value: Any, spec: Any, target: pa.DataType) -> str:
    shown = "null" if value is None else repr(value if not isinstance(value, str)
                                              else value[:80])
    return {
        "type": f"{shown} is not {target}"
        + (f" in formats {list(spec.formats)}" if getattr(spec, "formats", None) else ""),
        "nullable": "null in a non-nullable column",
        "min": f"{shown} is below the minimum {spec.min}",
        "max": f"{shown} is above the maximum {spec.max}",
        "in": f"{shown} is not one of {list(spec.allowed) if spec.allowed else []}",
        "regex": f"{shown} does not match {spec.regex!r}",
        "max_length": f"{shown} is longer than {spec.max_length} characters",
        "unique": f"{shown} repeats an earlier record",
    }[check]
