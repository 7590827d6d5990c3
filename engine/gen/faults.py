"""Dirty data: the faults a dataset declares, and the injector that writes them.

``generate(..., dirty=0.01)`` gives 1 % of the records exactly one known fault each (a
:class:`Fault` of the dataset: wrong type, out of range, bad timestamp, bad enum, ragged CSV row,
invalid JSON, duplicate key, a null where none is allowed, a value too long) and lists them in
``<path>.injected.ndjson``, so a validator can be checked record by record. Dirty data has what
real data has besides: nulls in the nullable columns (an empty CSV field, a JSON ``null``), at the
dataset's rates, in the same blocks and columns as the faults; they are no faults and are not
listed. The faulty and null rows come from a separate random stream and are rendered again on
their own, so the other rows and the speed stay those of clean output.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.config import TEXT_FORMATS
from engine.gen.text import (
    Block,
    Field,
    Piece,
    Take,
    csv_quote,
    csv_rows,
    json_array_elements,
    ndjson_rows,
    render,
)

__all__ = ["DIRTY_MAX", "FAULT_KINDS", "Fault", "Injector"]

FAULT_KINDS: tuple[str, ...] = (
    "wrong_type",
    "out_of_range",
    "bad_timestamp",
    "bad_enum",
    "ragged",
    "invalid_json",
    "duplicate",
    "null",
    "too_long",
)
"""Kinds of injected faults, in the order a dataset's faults are grouped."""

DIRTY_MAX = 0.5
"""Largest ``dirty`` ratio :func:`engine.gen.generate` accepts."""

_RECORD_KINDS = frozenset({"ragged", "invalid_json"})
"""Kinds that break the record as a whole: the injected list names no column for them."""

_FAULT_ACTIONS: tuple[str, ...] = ("set", "append", "duplicate", "drop_last", "truncate")
_SET, _APPEND, _DUPLICATE, _DROP_LAST, _TRUNCATE = range(5)

_DUP_WINDOW = 1_000  # a duplicate repeats the id of one of the ~1000 records before it
_FAULT_STREAM = 0xFA17  # spawn key of the fault stream: independent of the dataset's streams
_json_string: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]
"""A string as JSON text, non-ASCII kept (json.dumps(s, ensure_ascii=False) without overhead)."""


@dataclass(frozen=True)
class Fault:
    """One way to break a record (see ``generate(..., dirty=...)``).

    Attributes:
        kind: one of :data:`FAULT_KINDS`; it names the fault in the injected list.
        action: ``"set"`` replaces the field's text by ``value``; ``"append"`` appends ``value``
            to the field's text (as written, CSV quoting or JSON encoding included);
            ``"duplicate"`` gives the field the text it has in an earlier clean record;
            ``"drop_last"`` writes the record without its last field (CSV); ``"truncate"`` cuts
            the record's text short (NDJSON).
        field: the field the action changes; None for ``drop_last`` and ``truncate``.
        value: the raw value for ``set`` (CSV-quoted when written as CSV), the text for
            ``append``.
        json: the JSON text for ``set`` when it is not ``value`` as a JSON string (numbers,
            bare tokens).
        formats: the formats the fault applies to.

    Example:
        >>> fault = Fault("wrong_type", "set", "quantity", "N/A, maybe")
        >>> fault.text("csv"), fault.text("ndjson")
        ('"N/A, maybe"', '"N/A, maybe"')

    """

    kind: str
    action: str
    field: str | None = None
    value: str = ""
    json: str | None = None
    formats: tuple[str, ...] = TEXT_FORMATS

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.action not in _FAULT_ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}")
        if (self.field is None) != (self.action in ("drop_last", "truncate")):
            raise ValueError(f"fault action {self.action!r} and field {self.field!r} disagree")

    def text(self, fmt: str) -> str:
        """The text ``set`` writes or ``append`` appends, in ``fmt``."""
        if self.action == "append":
            return self.value
        if fmt == "csv":
            return csv_quote(self.value)
        return self.json if self.json is not None else json.dumps(self.value, ensure_ascii=False)


def _subset_pieces(pieces: Sequence[Piece], idx: pa.Array) -> list[Piece]:
    """The pieces of the rows at ``idx``."""
    out: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, Take):
            out.append(Take(piece.pool, piece.indices.take(idx)))
        elif isinstance(piece, pa.Array):
            out.append(piece.take(idx))
        else:
            out.append(piece)
    return out


def _field_text(field: Field, fmt: str, idx: pa.Array) -> pa.Array:
    """One string per row at ``idx``: the field's text as ``fmt`` writes it."""
    return render(_subset_pieces(field.csv if fmt == "csv" else field.json, idx))


class Injector:
    """Picks the faulty records of each block and renders them.

    Per block, from its own random stream (so the clean rows do not change): the number of
    faulty rows (``dirty × rows``, rounded at random), which rows, a kind for each (uniform over
    the kinds valid for the format), a fault of that kind (uniform), and for duplicates the
    earlier clean row whose key they repeat. Only the faulty rows are rendered again, with the
    block's own layout, and put in place with one ``replace_with_mask``.

    Then, per nullable column, the rows whose value is null (each with the column's rate): those
    rows are rendered again too, with an empty field (CSV) or ``null`` (JSON); a fault in the
    same row is applied after, so it stands.

    Args:
        faults: the dataset's faults (those for other formats are left out).
        columns: the dataset's columns, in output order.
        fmt: the format written.
        dirty: share of records given a fault, above 0.
        seed: seed of the output; the fault stream is spawned from it.
        nulls: ``(column, rate)`` of each nullable column: the share of its values written as
            null.

    Raises:
        ValueError: none of ``faults`` applies to ``fmt``.

    """

    def __init__(self, faults: Sequence[Fault], columns: Sequence[str], fmt: str, dirty: float,
                 seed: int, nulls: Sequence[tuple[str, float]] = ()) -> None:
        usable = [f for f in faults if fmt in f.formats]
        kinds = [k for k in FAULT_KINDS if any(f.kind == k for f in usable)]
        if not kinds:
            raise ValueError(f"no faults for {fmt}")
        usable.sort(key=lambda f: kinds.index(f.kind))  # stable: a kind's faults stay in order
        self.faults = usable
        self.fmt = fmt
        self.dirty = dirty
        self.kinds = kinds
        count = np.array([sum(f.kind == k for f in usable) for k in kinds], np.int64)
        self.kind_count = count
        self.kind_start = np.concatenate([[0], np.cumsum(count)[:-1]])
        self.action = np.array([_FAULT_ACTIONS.index(f.action) for f in usable], np.int64)
        names = list(columns)
        self.field = np.array(
            [names.index(f.field) if f.field is not None else -1 for f in usable], np.int64
        )
        self.text = pa.array([f.text(fmt) for f in usable], pa.string())
        self.raw = pa.array([f.value for f in usable], pa.string())
        self.prefix = [
            f'"kind": {json.dumps(f.kind)}, '
            f'"column": {json.dumps(None if f.kind in _RECORD_KINDS else f.field)}, "value": '
            for f in usable
        ]
        self.null_columns = [names.index(column) for column, _ in nulls]
        self.null_rates = [rate for _, rate in nulls]
        self.null_text = pa.scalar("" if fmt == "csv" else "null", pa.string())
        self.rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_FAULT_STREAM,)))

    def apply(self, block: Block, text: pa.Array) -> tuple[pa.Array, np.ndarray, list[str]]:
        """Inject faults into the rendered ``text`` of ``block``.

        Returns:
            The new text, the block-local indices of the faulty rows (ascending) and one line
            of the injected list per faulty row.

        """
        n, rng = block.rows, self.rng
        # Draw order is part of the output: never reorder these lines.
        k = min(n, int(self.dirty * n + rng.random()))
        rows = np.sort(rng.choice(n, k, replace=False))
        kind = rng.integers(0, len(self.kinds), k)
        pick = rng.random(k)
        back = rng.random(k)
        cut = rng.random(k)
        fault = self.kind_start[kind] + (pick * self.kind_count[kind]).astype(np.int64)
        source = np.full(k, -1, np.int64)
        dup = self.action[fault] == _DUPLICATE
        if dup.any():
            clean = np.ones(n, bool)
            clean[rows] = False
            last_clean = np.maximum.accumulate(np.where(clean, np.arange(n), -1))
            # The nearest clean row at or before a row drawn from the _DUP_WINDOW before it.
            reach = np.minimum(rows, _DUP_WINDOW)
            before = rows - 1 - (back * reach).astype(np.int64)
            source = np.where(before >= 0, last_clean[np.maximum(before, 0)], -1)
            keep = ~dup | (source >= 0)  # a duplicate needs a clean row before it in its block
            if not keep.all():
                rows, fault, source, cut = rows[keep], fault[keep], source[keep], cut[keep]
                k = len(rows)
        null_rows = [np.flatnonzero(rng.random(n) < rate) for rate in self.null_rates]
        every = np.union1d(rows, np.concatenate([rows, *null_rows])).astype(np.int64)
        if every.size == 0:
            return text, rows, []
        at = np.searchsorted(every, rows)  # where each faulty row is among the rows rendered

        def spread(m: np.ndarray) -> pa.Array:
            """A mask over the faulty rows as a mask over the rows rendered."""
            out = np.zeros(every.size, bool)
            out[at[m]] = True
            return pa.array(out)

        action, field = self.action[fault], self.field[fault]
        fault_idx = pa.array(fault)

        idx = pa.array(every)
        values: list[pa.Array] = [_field_text(f, self.fmt, idx) for f in block.fields]
        for col, nulled in zip(self.null_columns, null_rows, strict=True):
            if nulled.size:
                mask = pa.array(np.isin(every, nulled))
                values[col] = pc.if_else(mask, self.null_text, values[col])
        raw = self.raw.take(fault_idx)
        for col in np.unique(field[field >= 0]).tolist():
            new = values[col]
            for act in (_SET, _APPEND, _DUPLICATE):
                m = (field == col) & (action == act)
                if not m.any():
                    continue
                mask = pa.array(m)
                wide = spread(m)
                if act == _SET:
                    vals = self.text.take(fault_idx.filter(mask))
                elif act == _APPEND:
                    vals = pc.binary_join_element_wise(
                        new.filter(wide), self.text.take(fault_idx.filter(mask)), ""
                    )
                    raw = pc.replace_with_mask(raw, mask, vals)
                else:
                    vals = _field_text(block.fields[col], self.fmt, pa.array(source[m]))
                    raw = pc.replace_with_mask(raw, mask, vals)
                new = pc.replace_with_mask(new, wide, vals)
            values[col] = new
        fields = tuple(Field(f.name, (v,), (v,)) for f, v in zip(block.fields, values, strict=True))
        sub = Block(first_row=0, rows=int(every.size), fields=fields)
        if self.fmt == "csv":
            rendered = csv_rows(sub)
            m = action == _DROP_LAST
            if m.any():
                wide = spread(m)
                short = csv_rows(Block(first_row=0, rows=int(every.size), fields=fields[:-1]))
                rendered = pc.replace_with_mask(rendered, wide, short.filter(wide))
        elif self.fmt == "ndjson":
            rendered = ndjson_rows(sub)
        else:
            rendered = json_array_elements(fields, block.first_row + every + 1)
        m = action == _TRUNCATE
        if m.any():
            wide = spread(m)
            lines = [line[:-1] for line in rendered.filter(wide).to_pylist()]
            cuts = 1 + (cut[m] * np.array([len(x) - 1 for x in lines])).astype(np.int64)
            cut_lines = [x[:c] + "\n" for x, c in zip(lines, cuts.tolist(), strict=True)]
            rendered = pc.replace_with_mask(rendered, wide, pa.array(cut_lines, pa.string()))

        mask = np.zeros(n, bool)
        mask[every] = True
        text = pc.replace_with_mask(text, pa.array(mask), rendered)
        if k == 0:
            return text, rows, []

        whole = np.isin(fault, [i for i, f in enumerate(self.faults) if f.kind in _RECORD_KINDS])
        if whole.any():
            rows_text = rendered.filter(spread(whole))
            if self.fmt == "json":
                rows_text = pc.utf8_ltrim(rows_text, ",\n")
            else:
                rows_text = pc.utf8_rtrim(rows_text, "\n")
            raw = pc.replace_with_mask(raw, pa.array(whole), rows_text)
        # One line per record: json.dumps(..., ensure_ascii=False) of {record, kind, column,
        # value}, assembled from per-fault prefixes so only the value is encoded per row.
        prefix = self.prefix
        lines = [
            f'{{"record": {r}, {prefix[f]}{_json_string(v)}}}'
            for r, f, v in zip(
                (block.first_row + rows + 1).tolist(), fault.tolist(), raw.to_pylist(), strict=True
            )
        ]
        return text, rows, lines
