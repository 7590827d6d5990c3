"""Deterministic, fast, realistic sample data (the library behind ``chunkwise gen``).

``generate("orders", "orders.csv.gz", size=parse_size("500MB"), seed=0)`` writes rows of the
"orders" dataset as CSV, NDJSON or a JSON array until the *uncompressed* text reaches ``size``
bytes, stopping at the first row boundary at or after it. The same (dataset, size, format, seed)
always gives byte-identical output, compressed or not, and a smaller size gives a prefix of the
rows of a larger one.

Speed comes from never touching a row in Python: each block of rows is drawn with numpy, every
value is turned into text by Arrow (integer casts, or ``take`` from small pools of precomputed
strings: dates, times, cents, countries, notes already quoted for CSV and escaped for JSON), and
one ``binary_join_element_wise`` call glues a block into lines whose data buffer is written as-is.

Datasets live in :data:`DATASETS`; a dataset is a function yielding :class:`Block` objects whose
fields are lists of text pieces, so adding one needs no change to the formatters.

``generate(..., dirty=0.01)`` gives 1 % of the records exactly one known fault each (a
:class:`Fault` of the dataset: wrong type, out of range, bad timestamp, bad enum, ragged CSV row,
invalid JSON, duplicate key) and lists them in ``<path>.injected.ndjson``, so a validator can be
checked record by record. The faulty rows come from a separate random stream and are rendered
again on their own, so the other rows and the speed stay those of clean output.
"""

from __future__ import annotations

import bz2
import contextlib
import datetime as dt
import functools
import gzip
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.config import parse_size

__all__ = [
    "check_arguments",
    "COMPRESSIONS",
    "DATASETS",
    "FAULT_KINDS",
    "FORMATS",
    "Block",
    "Dataset",
    "Fault",
    "Field",
    "GenReport",
    "generate",
    "infer_format",
    "parse_size",
]

FORMATS: tuple[str, ...] = ("csv", "ndjson", "json")
"""Output formats: CSV with a header, newline-delimited JSON, one JSON document holding an array."""

COMPRESSIONS: dict[str, str] = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
"""Compression chosen by the path's last suffix."""

_FORMAT_SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "json",
}

# Rows per block: small first blocks keep tiny outputs cheap; the schedule never depends on the
# requested size, so the rows (and therefore the bytes) are the same whatever the size.
_BLOCK_SCHEDULE: tuple[int, ...] = (1_000, 10_000)
_BLOCK_ROWS = 100_000

_PRETTY_EVERY = 7  # in the JSON format, every 7th object is indented over several lines
_GZIP_LEVEL_ISAL = 1
_GZIP_LEVEL_ZLIB = 1
_BZ2_LEVEL = 9
_ZSTD_LEVEL = 3


# --------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenReport:
    """What :func:`generate` wrote.

    Attributes:
        path: the output path, as given.
        format: ``"csv"``, ``"ndjson"`` or ``"json"``.
        compression: ``"gzip"``, ``"bz2"``, ``"zstd"``, or None for plain text.
        rows: data rows written (the CSV header is not a row).
        bytes_written: size of the uncompressed text, header and closing bracket included.
        seconds: wall time of the whole call.
        injected: records given a fault (``dirty > 0``), each listed in ``injected_path``.
        injected_path: the list of injected records (``<path>.injected.ndjson``), or None when
            ``dirty`` is 0.

    """

    path: str
    format: str
    compression: str | None
    rows: int
    bytes_written: int
    seconds: float
    injected: int = 0
    injected_path: str | None = None


@dataclass(frozen=True)
class _Take:
    """A lazily resolved piece: ``pool.take(indices)``."""

    pool: pa.Array
    indices: pa.Array

    def resolve(self) -> pa.Array:
        """Return the pool's strings at the indices."""
        return self.pool.take(self.indices)


Piece = str | pa.Array | _Take
"""A piece of a field's text: a literal shared by every row, or one string per row."""


@dataclass(frozen=True)
class Field:
    """One column of a block, as text pieces concatenated per row.

    Attributes:
        name: the column name (CSV header, JSON key).
        csv: pieces forming the CSV field, already quoted where RFC 4180 needs it.
        json: pieces forming the JSON value, already encoded (strings with their quotes).

    """

    name: str
    csv: tuple[Piece, ...]
    json: tuple[Piece, ...]


@dataclass(frozen=True)
class Block:
    """Consecutive rows of a dataset.

    Attributes:
        first_row: 0-based index of the block's first row in the whole output.
        rows: number of rows.
        fields: the columns, in output order.

    """

    first_row: int
    rows: int
    fields: tuple[Field, ...]


FAULT_KINDS: tuple[str, ...] = (
    "wrong_type",
    "out_of_range",
    "bad_timestamp",
    "bad_enum",
    "ragged",
    "invalid_json",
    "duplicate",
)
"""Kinds of injected faults, in the order a dataset's faults are grouped."""

_RECORD_KINDS = frozenset({"ragged", "invalid_json"})
"""Kinds that break the record as a whole: the injected list names no column for them."""

_FAULT_ACTIONS: tuple[str, ...] = ("set", "append", "duplicate", "drop_last", "truncate")


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

    """

    kind: str
    action: str
    field: str | None = None
    value: str = ""
    json: str | None = None
    formats: tuple[str, ...] = FORMATS

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
            return _csv_quote(self.value)
        return self.json if self.json is not None else json.dumps(self.value, ensure_ascii=False)


@dataclass(frozen=True)
class Dataset:
    """A registered dataset.

    Attributes:
        name: registry key.
        columns: column names in output order.
        blocks: ``blocks(seed)`` yields an endless, deterministic stream of :class:`Block`.
        description: one line for help texts.
        faults: the ways ``generate(..., dirty=...)`` may break a record; each must leave the
            record with exactly one violation of the dataset's contract.

    """

    name: str
    columns: tuple[str, ...]
    blocks: Callable[[int], Iterator[Block]]
    description: str = ""
    faults: tuple[Fault, ...] = ()


# --------------------------------------------------------------------------------------------
# Sizes and formats
# --------------------------------------------------------------------------------------------


def infer_format(path: str | os.PathLike[str]) -> tuple[str | None, str | None]:
    """Infer ``(format, compression)`` from a path's suffixes.

    The compression suffix (``.gz``, ``.bz2``, ``.zst``) is stripped first, then ``.csv``,
    ``.ndjson``/``.jsonl`` or ``.json`` names the format.

    Args:
        path: the output path.

    Returns:
        The format (None when the suffix names none) and the compression (None for plain text).

    """
    name = Path(os.fspath(path)).name.lower()
    stem, suffix = os.path.splitext(name)
    compression = COMPRESSIONS.get(suffix)
    if compression is not None:
        suffix = os.path.splitext(stem)[1]
    return _FORMAT_SUFFIXES.get(suffix), compression


# --------------------------------------------------------------------------------------------
# Text assembly
# --------------------------------------------------------------------------------------------


def _resolve(pieces: Sequence[Piece]) -> list[str | pa.Array]:
    """Resolve lazy pieces and merge adjacent literals."""
    out: list[str | pa.Array] = []
    for piece in pieces:
        if isinstance(piece, str):
            if not piece:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += piece
            else:
                out.append(piece)
        elif isinstance(piece, _Take):
            out.append(piece.resolve())
        else:
            out.append(piece)
    return out


def _join(pieces: Sequence[str | pa.Array]) -> pa.Array:
    """Concatenate resolved pieces row by row into one string array."""
    if not any(isinstance(p, pa.Array) for p in pieces):  # pragma: no cover - datasets vary rows
        raise ValueError("a row template needs at least one per-row piece")
    return pc.binary_join_element_wise(*pieces, "")


def _csv_header(columns: Sequence[str]) -> str:
    return ",".join(_csv_quote(c) for c in columns) + "\n"


def _csv_rows(block: Block) -> pa.Array:
    pieces: list[Piece] = []
    for i, field in enumerate(block.fields):
        if i:
            pieces.append(",")
        pieces.extend(field.csv)
    pieces.append("\n")
    return _join(_resolve(pieces))


def _json_object(fields: Sequence[Field], *, pretty: bool) -> list[Piece]:
    """Pieces of one JSON object: compact (``{"k":v,...}``) or indented over several lines."""
    pieces: list[Piece] = ["{\n  " if pretty else "{"]
    for i, field in enumerate(fields):
        if i:
            pieces.append(",\n  " if pretty else ",")
        pieces.append(json.dumps(field.name, ensure_ascii=False) + (": " if pretty else ":"))
        pieces.extend(field.json)
    pieces.append("\n}" if pretty else "}")
    return pieces


def _ndjson_rows(block: Block) -> pa.Array:
    return _join(_resolve([*_json_object(block.fields, pretty=False), "\n"]))


def _json_array_rows(block: Block) -> pa.Array:
    """Render array elements, each led by ``","`` and a newline (nothing before the first)."""
    row_numbers = np.arange(block.first_row + 1, block.first_row + block.rows + 1)
    return _json_array_elements(block.fields, row_numbers)


def _json_array_elements(fields: Sequence[Field], row_numbers: np.ndarray) -> pa.Array:
    """Render the array elements of the rows numbered ``row_numbers`` (1-based, ascending).

    Row 1 has no lead; every row whose number is a multiple of ``_PRETTY_EVERY`` is indented.
    """
    lead: Piece = ",\n"
    if row_numbers[0] == 1:
        lead = pa.array(["", *([",\n"] * (len(row_numbers) - 1))], pa.string())
    compact = _resolve([lead, *_json_object(fields, pretty=False)])
    text = _join(compact)
    pretty_mask = row_numbers % _PRETTY_EVERY == 0
    if not pretty_mask.any():
        return text
    mask = pa.array(pretty_mask)
    pretty = [
        p if isinstance(p, str) else p.filter(mask)
        for p in _resolve([lead, *_json_object(fields, pretty=True)])
    ]
    return pc.replace_with_mask(text, mask, _join(pretty))


@dataclass(frozen=True)
class _Layout:
    header: Callable[[Sequence[str]], str]
    rows: Callable[[Block], pa.Array]
    trailer: str


_LAYOUTS: dict[str, _Layout] = {
    "csv": _Layout(_csv_header, _csv_rows, ""),
    "ndjson": _Layout(lambda columns: "", _ndjson_rows, ""),
    "json": _Layout(lambda columns: "[\n", _json_array_rows, "\n]\n"),
}


# --------------------------------------------------------------------------------------------
# Output sinks
# --------------------------------------------------------------------------------------------


def _gzip_file(raw: BinaryIO) -> BinaryIO:
    """Open a gzip writer without file name and with mtime 0, so the bytes are reproducible."""
    try:
        from isal import igzip
    except ImportError:  # pragma: no cover - isal is a dependency, the fallback is a safety net
        return gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL_ZLIB, mtime=0
        )
    return igzip.IGzipFile(
        filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL_ISAL, mtime=0
    )


@contextlib.contextmanager
def _open_sink(path: Path, compression: str | None) -> Iterator[BinaryIO]:
    """Open ``path`` for writing, compressing as asked."""
    with open(path, "wb") as raw:
        if compression is None:
            yield raw
        elif compression == "gzip":
            with _gzip_file(raw) as sink:
                yield sink
        elif compression == "bz2":
            with bz2.BZ2File(raw, "wb", compresslevel=_BZ2_LEVEL) as sink:
                yield sink
        elif compression == "zstd":
            import zstandard

            writer = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).stream_writer(raw, closefd=False)
            with writer as sink:
                yield sink  # type: ignore[misc]
        else:  # pragma: no cover - callers only pass values of COMPRESSIONS
            raise ValueError(f"unknown compression {compression!r}")


# --------------------------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------------------------

DIRTY_MAX = 0.5
"""Largest ``dirty`` ratio :func:`generate` accepts."""

_DUP_WINDOW = 1_000  # a duplicate repeats the id of one of the ~1000 records before it
_FAULT_STREAM = 0xFA17  # spawn key of the fault stream: independent of the dataset's streams
_SET, _APPEND, _DUPLICATE, _DROP_LAST, _TRUNCATE = range(5)
_json_string: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]
"""A string as JSON text, non-ASCII kept (json.dumps(s, ensure_ascii=False) without overhead)."""


def _subset_pieces(pieces: Sequence[Piece], idx: pa.Array) -> list[Piece]:
    """The pieces of the rows at ``idx``."""
    out: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, _Take):
            out.append(_Take(piece.pool, piece.indices.take(idx)))
        elif isinstance(piece, pa.Array):
            out.append(piece.take(idx))
        else:
            out.append(piece)
    return out


def _field_text(field: Field, fmt: str, idx: pa.Array) -> pa.Array:
    """One string per row at ``idx``: the field's text as ``fmt`` writes it."""
    return _join(_resolve(_subset_pieces(field.csv if fmt == "csv" else field.json, idx)))


class _Injector:
    """Picks the faulty records of each block and renders them.

    Per block, from its own random stream (so the clean rows do not change): the number of
    faulty rows (``dirty × rows``, rounded at random), which rows, a kind for each (uniform over
    the kinds valid for the format), a fault of that kind (uniform), and for duplicates the
    earlier clean row whose key they repeat. Only the faulty rows are rendered again, with the
    block's own layout, and put in place with one ``replace_with_mask``.
    """

    def __init__(self, spec: Dataset, fmt: str, dirty: float, seed: int) -> None:
        faults = [f for f in spec.faults if fmt in f.formats]
        kinds = [k for k in FAULT_KINDS if any(f.kind == k for f in faults)]
        if not kinds:
            raise ValueError(f"dataset {spec.name!r} defines no faults for {fmt}")
        faults.sort(key=lambda f: kinds.index(f.kind))  # stable: a kind's faults stay in order
        self.faults = faults
        self.fmt = fmt
        self.dirty = dirty
        self.kinds = kinds
        count = np.array([sum(f.kind == k for f in faults) for k in kinds], np.int64)
        self.kind_count = count
        self.kind_start = np.concatenate([[0], np.cumsum(count)[:-1]])
        self.action = np.array([_FAULT_ACTIONS.index(f.action) for f in faults], np.int64)
        names = list(spec.columns)
        self.field = np.array(
            [names.index(f.field) if f.field is not None else -1 for f in faults], np.int64
        )
        self.text = pa.array([f.text(fmt) for f in faults], pa.string())
        self.raw = pa.array([f.value for f in faults], pa.string())
        self.prefix = [
            f'"kind": {json.dumps(f.kind)}, '
            f'"column": {json.dumps(None if f.kind in _RECORD_KINDS else f.field)}, "value": '
            for f in faults
        ]
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
        if k == 0:
            return text, rows, []
        action, field = self.action[fault], self.field[fault]
        fault_idx = pa.array(fault)

        idx = pa.array(rows)
        values: list[pa.Array] = [_field_text(f, self.fmt, idx) for f in block.fields]
        raw = self.raw.take(fault_idx)
        for col in np.unique(field[field >= 0]).tolist():
            new = values[col]
            for act in (_SET, _APPEND, _DUPLICATE):
                m = (field == col) & (action == act)
                if not m.any():
                    continue
                mask = pa.array(m)
                if act == _SET:
                    vals = self.text.take(fault_idx.filter(mask))
                elif act == _APPEND:
                    vals = pc.binary_join_element_wise(
                        new.filter(mask), self.text.take(fault_idx.filter(mask)), ""
                    )
                    raw = pc.replace_with_mask(raw, mask, vals)
                else:
                    vals = _field_text(block.fields[col], self.fmt, pa.array(source[m]))
                    raw = pc.replace_with_mask(raw, mask, vals)
                new = pc.replace_with_mask(new, mask, vals)
            values[col] = new
        fields = tuple(Field(f.name, (v,), (v,)) for f, v in zip(block.fields, values, strict=True))
        sub = Block(first_row=0, rows=k, fields=fields)
        if self.fmt == "csv":
            rendered = _csv_rows(sub)
            m = action == _DROP_LAST
            if m.any():
                mask = pa.array(m)
                short = _csv_rows(Block(first_row=0, rows=k, fields=fields[:-1]))
                rendered = pc.replace_with_mask(rendered, mask, short.filter(mask))
        elif self.fmt == "ndjson":
            rendered = _ndjson_rows(sub)
        else:
            rendered = _json_array_elements(fields, block.first_row + rows + 1)
        m = action == _TRUNCATE
        if m.any():
            mask = pa.array(m)
            lines = [line[:-1] for line in rendered.filter(mask).to_pylist()]
            cuts = 1 + (cut[m] * np.array([len(x) - 1 for x in lines])).astype(np.int64)
            cut_lines = [x[:c] + "\n" for x, c in zip(lines, cuts.tolist(), strict=True)]
            rendered = pc.replace_with_mask(rendered, mask, pa.array(cut_lines, pa.string()))

        mask = np.zeros(n, bool)
        mask[rows] = True
        text = pc.replace_with_mask(text, pa.array(mask), rendered)

        whole = np.isin(fault, [i for i, f in enumerate(self.faults) if f.kind in _RECORD_KINDS])
        if whole.any():
            rows_text = rendered.filter(pa.array(whole))
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


# --------------------------------------------------------------------------------------------
# generate()
# --------------------------------------------------------------------------------------------


def _string_offsets(text: pa.Array) -> np.ndarray:
    """Return the ``len(text) + 1`` value offsets of a string array, as numpy int32."""
    count = len(text) + 1
    return np.frombuffer(text.buffers()[1], dtype=np.int32, count=count, offset=4 * text.offset)


def check_arguments(
    dataset: str,
    path: str | os.PathLike[str],
    *,
    size: int,
    fmt: str | None = None,
    seed: int = 0,
    dirty: float = 0.0,
) -> tuple[Dataset, str, str | None]:
    """Check :func:`generate`'s arguments before anything is written.

    Returns:
        The dataset, the format and the compression the arguments name.

    Raises:
        ValueError: see :func:`generate`.

    """
    spec = DATASETS.get(dataset)
    if spec is None:
        raise ValueError(f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}")
    inferred, compression = infer_format(path)
    if fmt is None:
        if inferred is None:
            raise ValueError(
                f"cannot infer the format of {os.fspath(path)!r} from its suffix; use .csv, "
                ".ndjson, .jsonl or .json (optionally followed by .gz, .bz2 or .zst) or pass "
                f"fmt= one of {', '.join(FORMATS)}"
            )
        fmt = inferred
    fmt = fmt.lower()
    if fmt not in _LAYOUTS:
        raise ValueError(f"unknown format {fmt!r}; known formats: {', '.join(FORMATS)}")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be a positive number of bytes, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if (
        isinstance(dirty, bool)
        or not isinstance(dirty, int | float | np.integer | np.floating)
        or not 0 <= dirty <= DIRTY_MAX
    ):
        raise ValueError(f"dirty must be a ratio from 0 to {DIRTY_MAX}, got {dirty!r}")
    return spec, fmt, compression


def generate(
    dataset: str,
    path: str | os.PathLike[str],
    *,
    size: int,
    fmt: str | None = None,
    seed: int = 0,
    dirty: float = 0.0,
) -> GenReport:
    """Write sample rows of ``dataset`` to ``path`` until the text reaches ``size`` bytes.

    Output stops at the first row boundary at or after ``size`` bytes of *uncompressed* text
    (header and, for ``json``, the closing bracket counted), so ``size <= bytes_written <
    size + one row``. Output is byte-identical for the same (dataset, size, format, seed); gzip
    output has no file name and mtime 0 so it is identical too.

    Formats: ``csv`` (header row, LF line ends, fields quoted only when they hold a comma,
    quote or newline, quotes doubled), ``ndjson`` (one compact object per line, UTF-8 unescaped),
    ``json`` (one array; most objects compact one per line, every 7th indented over several).

    Args:
        dataset: a key of :data:`DATASETS`, e.g. ``"orders"``.
        path: output file. A ``.gz``, ``.bz2`` or ``.zst`` suffix compresses (gzip via isal).
        size: target uncompressed size in bytes (see :func:`parse_size`); at least 1.
        fmt: ``"csv"``, ``"ndjson"`` or ``"json"``; None infers it from the suffix before the
            compression suffix (``.csv``, ``.ndjson``/``.jsonl``, ``.json``).
        seed: seed of the random stream.
        dirty: share of records given exactly one fault each, from 0 to :data:`DIRTY_MAX`.
            The faults come from the dataset's :attr:`Dataset.faults`; for ``orders`` each
            breaks exactly one check of ``contracts/orders.yaml`` (wrong_type, out_of_range,
            bad_timestamp, bad_enum, ragged for CSV, invalid_json for NDJSON and JSON,
            duplicate: a repeat of an earlier clean record's ``order_id``). Faulty records are
            drawn from their own random stream, so every other record is the one ``dirty=0``
            writes; ``dirty=0`` writes the same bytes as before faults existed. When ``dirty``
            is above 0, the faulty records are listed in ``<path>.injected.ndjson``, one JSON
            object per line in record order: ``{"record": N, "kind": ..., "column": ... or
            null, "value": ...}`` where ``N`` is the 1-based data record (CSV header not
            counted), ``value`` the raw value written (for ragged and invalid_json records the
            record's text). With ``dirty=0`` a stale list at that path is removed.

    Returns:
        A :class:`GenReport`.

    Raises:
        ValueError: unknown dataset or format, a format that cannot be inferred, size < 1, a
            negative seed, or ``dirty`` outside ``[0, DIRTY_MAX]``.

    """
    started = time.perf_counter()
    spec, fmt, compression = check_arguments(dataset, path, size=size, fmt=fmt, seed=seed,
                                             dirty=dirty)
    size = int(size)
    injector = _Injector(spec, fmt, float(dirty), seed) if dirty > 0 else None
    layout = _LAYOUTS[fmt]
    header = layout.header(spec.columns).encode()
    trailer = layout.trailer.encode()
    out = Path(os.fspath(path))
    listing = Path(os.fspath(path) + ".injected.ndjson")

    rows = 0
    injected = 0
    written = len(header)
    try:
        with contextlib.ExitStack() as stack:
            sink = stack.enter_context(_open_sink(out, compression))
            faults = None
            if injector is None:
                listing.unlink(missing_ok=True)
            else:
                faults = stack.enter_context(open(listing, "w", encoding="utf-8", newline=""))
            sink.write(header)
            blocks = spec.blocks(seed)
            while written + len(trailer) < size:
                block = next(blocks)
                text = layout.rows(block)
                if injector is not None:
                    text, faulty, lines = injector.apply(block, text)
                offsets = _string_offsets(text)
                ends = offsets[1:] - offsets[0]
                need = size - len(trailer) - written
                take = len(text)
                if int(ends[-1]) >= need:
                    take = int(np.searchsorted(ends, need, side="left")) + 1
                nbytes = int(ends[take - 1])
                start = int(offsets[0])
                sink.write(memoryview(text.buffers()[2])[start : start + nbytes])
                if faults is not None:
                    listed = int(np.searchsorted(faulty, take))
                    if listed:
                        faults.write("\n".join(lines[:listed]) + "\n")
                    injected += listed
                rows += take
                written += nbytes
            sink.write(trailer)
            written += len(trailer)
    except BaseException:
        out.unlink(missing_ok=True)
        if injector is not None:
            listing.unlink(missing_ok=True)
        raise
    return GenReport(
        path=os.fspath(path),
        format=fmt,
        compression=compression,
        rows=rows,
        bytes_written=written,
        seconds=time.perf_counter() - started,
        injected=injected,
        injected_path=None if injector is None else os.fspath(listing),
    )


# --------------------------------------------------------------------------------------------
# The "orders" dataset
# --------------------------------------------------------------------------------------------

ORDERS_COLUMNS: tuple[str, ...] = (
    "order_id",
    "created_at",
    "customer_id",
    "country",
    "amount",
    "quantity",
    "status",
    "note",
)

_ORDERS_START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
_ORDERS_MEAN_GAP_S = 5.0  # ≈ 6.3 M orders a year
_ORDERS_LATE_SHARE = 0.03  # share of rows stamped up to 15 minutes before their predecessors
_ORDERS_LATE_MAX_S = 900

# ISO 3166-1 alpha-2 codes with a skewed mix; "NA" (Namibia) is the null-marker trap.
_COUNTRIES: tuple[tuple[str, float], ...] = (
    ("US", 22.0), ("GB", 9.0), ("DE", 8.0), ("FR", 7.0), ("IN", 6.0), ("CA", 5.0),
    ("JP", 5.0), ("BR", 4.0), ("AU", 3.5), ("ES", 3.0), ("IT", 3.0), ("NL", 2.5),
    ("MX", 2.0), ("SE", 1.5), ("PL", 1.5), ("CH", 1.2), ("BE", 1.2), ("AT", 1.0),
    ("IE", 1.0), ("DK", 0.8), ("NO", 0.8), ("NA", 0.8), ("FI", 0.7), ("PT", 0.7),
    ("NZ", 0.6), ("SG", 0.6), ("ZA", 0.6), ("KR", 0.6), ("AR", 0.5), ("CL", 0.4),
)  # fmt: skip
_STATUSES: tuple[tuple[str, float], ...] = (
    ("delivered", 45.0), ("shipped", 20.0), ("paid", 15.0), ("pending", 12.0),
    ("cancelled", 5.0), ("refunded", 3.0),
)  # fmt: skip

_NOTE_POOL_SIZE = 4096
_NOTE_EMPTY_SHARE = 0.23
_NOTE_PHRASES = (
    "please leave at the front door", "call before delivery", "gift wrap please",
    "fragile, handle with care", "ring the bell twice", "use the back entrance",
    "no signature required", "deliver after 5pm", "leave with reception", "neighbour will collect",
    "box arrived damaged", "customer asked for an invoice", "express shipping", "weekend only",
    "side gate is open", "parcel locker 12", "second floor, apartment 4B", "door code 4471",
    "missing item, replacement sent", "refund pending", "address updated by phone",
    "repeat buyer", "birthday present", "do not bend", "leave with the concierge",
    "wrong size, exchange requested", "paid by bank transfer", "deliver to the office",
    "hold at depot", "back order", "no plastic packaging", "dog in the garden",
)  # fmt: skip
_NOTE_UNICODE = (
    "café", "naïve", "Zürich", "São Paulo", "München", "crème brûlée", "jalapeño", "Ελλάδα",
    "Москва", "日本", "東京都", "配達", "ありがとう", "北京", "서울", "façade", "Øresund", "Łódź",
)  # fmt: skip
_NOTE_UNICODE_TEMPLATES = (
    "ship to the {} office", "{} order", "customer from {}", "label says {}", "{}",
)  # fmt: skip
_NOTE_QUOTED = ("ASAP", "fragile", "gift", "urgent", "VIP", "do not stack", "this side up")
_NOTE_QUOTE_TEMPLATES = ("customer wrote {}", "marked {}", "box says {}", "{} on the label")
_NOTE_EMOJI = ("🎁", "📦", "🚚", "✅", "😀", "🙏", "🎉", "❤️")
_NOTE_ODD = ("N/A", "-", "none", "?", "null")


def _csv_quote(value: str) -> str:
    """Quote a CSV field as ``csv.QUOTE_MINIMAL`` does with an LF line terminator."""
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(0, len(options)))]


def _make_note(rng: np.random.Generator) -> str:
    """Make one non-empty note; some hold commas, quotes, newlines or non-ASCII text."""
    if rng.random() < 0.02:
        return _pick(rng, _NOTE_ODD)
    clauses: list[str] = []
    for _ in range(1 if rng.random() < 0.6 else int(rng.integers(2, 4))):
        draw = rng.random()
        if draw < 0.12:
            clause = _pick(rng, _NOTE_UNICODE_TEMPLATES).format(_pick(rng, _NOTE_UNICODE))
        elif draw < 0.22:
            quoted = '"' + _pick(rng, _NOTE_QUOTED) + '"'
            clause = _pick(rng, _NOTE_QUOTE_TEMPLATES).format(quoted)
        else:
            clause = _pick(rng, _NOTE_PHRASES)
        clauses.append(clause)
    text = clauses[0]
    for clause in clauses[1:]:
        draw = rng.random()
        sep = ", " if draw < 0.3 else "\n" if draw < 0.5 else ". " if draw < 0.85 else " - "
        text += sep + (clause[0].upper() + clause[1:] if sep in (". ", "\n") else clause)
    text = text[0].upper() + text[1:]
    if rng.random() < 0.05:
        text += " " + _pick(rng, _NOTE_EMOJI)
    return text


@functools.cache
def _time_pool() -> pa.Array:
    """``"HH:MM:SSZ"`` for every second of a day."""
    return pa.array(
        [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z" for s in range(86_400)], pa.string()
    )


@functools.cache
def _date_pool(days: int) -> pa.Array:
    """``"YYYY-MM-DDT"`` for ``days`` days from the start of the orders calendar."""
    start = _ORDERS_START.date()
    return pa.array(
        [(start + dt.timedelta(days=d)).isoformat() + "T" for d in range(days)], pa.string()
    )


@functools.cache
def _small_pools() -> tuple[pa.Array, pa.Array, pa.Array]:
    """Countries, statuses and ``".cc"`` cents suffixes."""
    countries = pa.array([c for c, _ in _COUNTRIES], pa.string())
    statuses = pa.array([s for s, _ in _STATUSES], pa.string())
    cents = pa.array([f".{c:02d}" for c in range(100)], pa.string())
    return countries, statuses, cents


def _weights(pairs: Sequence[tuple[str, float]]) -> np.ndarray:
    w = np.array([p for _, p in pairs], dtype=np.float64)
    return w / w.sum()


def _orders_blocks(seed: int) -> Iterator[Block]:
    """Yield the endless "orders" stream for ``seed``."""
    notes_seq, rows_seq = np.random.SeedSequence(seed).spawn(2)
    note_rng = np.random.default_rng(notes_seq)
    notes = ["", *(_make_note(note_rng) for _ in range(_NOTE_POOL_SIZE - 1))]
    notes_csv = pa.array([_csv_quote(n) for n in notes], pa.string())
    notes_json = pa.array([json.dumps(n, ensure_ascii=False) for n in notes], pa.string())
    countries, statuses, cents_pool = _small_pools()
    country_p, status_p = _weights(_COUNTRIES), _weights(_STATUSES)
    times = _time_pool()
    date_days = 1024

    rng = np.random.default_rng(rows_seq)
    clock = 3600.0  # seconds after the start; an hour of headroom for late rows
    first = 0
    schedule = iter(_BLOCK_SCHEDULE)
    while True:
        n = next(schedule, _BLOCK_ROWS)
        # Draw order is part of the output: never reorder these lines.
        clock_steps = np.cumsum(rng.exponential(_ORDERS_MEAN_GAP_S, n)) + clock
        late = rng.random(n) < _ORDERS_LATE_SHARE
        lateness = rng.integers(1, _ORDERS_LATE_MAX_S + 1, n)
        regular = rng.random(n) < 0.2
        customer = np.where(regular, rng.integers(1, 1_001, n), rng.integers(1, 250_001, n))
        country = rng.choice(len(country_p), n, p=country_p)
        cents = np.clip(np.rint(rng.lognormal(3.2, 1.0, n) * 100), 1, 9_999_999).astype(np.int64)
        quantity = np.minimum(rng.geometric(0.55, n), 50)
        status = rng.choice(len(status_p), n, p=status_p)
        note = rng.integers(1, _NOTE_POOL_SIZE, n)
        note[rng.random(n) < _NOTE_EMPTY_SHARE] = 0
        clock = float(clock_steps[-1])

        seconds = np.floor(clock_steps).astype(np.int64) - np.where(late, lateness, 0)
        day, second = np.divmod(seconds, 86_400)
        while int(day.max()) >= date_days:
            date_days *= 2
        dates = _date_pool(date_days)

        ids = np.arange(first + 1, first + n + 1, dtype=np.int64)
        order_id = pc.cast(pa.array(ids), pa.string())
        created = (_Take(dates, pa.array(day)), _Take(times, pa.array(second)))
        customer_s = pc.cast(pa.array(customer.astype(np.int64)), pa.string())
        country_t = _Take(countries, pa.array(country))
        dollars = pc.cast(pa.array(cents // 100), pa.string())
        amount = (dollars, _Take(cents_pool, pa.array(cents % 100)))
        quantity_s = pc.cast(pa.array(quantity.astype(np.int64)), pa.string())
        status_t = _Take(statuses, pa.array(status))
        note_idx = pa.array(note)
        yield Block(
            first_row=first,
            rows=n,
            fields=(
                Field("order_id", (order_id,), (order_id,)),
                Field("created_at", created, ('"', *created, '"')),
                Field("customer_id", (customer_s,), (customer_s,)),
                Field("country", (country_t,), ('"', country_t, '"')),
                Field("amount", amount, amount),
                Field("quantity", (quantity_s,), (quantity_s,)),
                Field("status", (status_t,), ('"', status_t, '"')),
                Field("note", (_Take(notes_csv, note_idx),), (_Take(notes_json, note_idx),)),
            ),
        )
        first += n


_JSON_FORMATS = ("ndjson", "json")

# Each fault breaks exactly one check of contracts/orders.yaml and leaves the record otherwise
# clean. Values never collide with the contract's null markers ("") and stay parseable where
# only a range is broken (two decimals for amount, so decimal128(12, 2) holds them).
_ORDERS_FAULTS: tuple[Fault, ...] = (
    *(
        Fault("wrong_type", "set", column, value)
        for column in ("quantity", "customer_id")
        for value in ("N/A", "abc", "12x", "one")
    ),
    *(
        Fault("out_of_range", "set", "amount", value, json=value)
        for value in ("-12.50", "-0.01", "100000.01", "250000.00")
    ),
    *(
        Fault("out_of_range", "set", "quantity", value, json=value)
        for value in ("0", "1001", "5000")
    ),
    Fault("out_of_range", "set", "customer_id", "0", json="0"),
    *(
        Fault("bad_timestamp", "set", "created_at", value)
        for value in (
            "2025-13-45T99:61:00Z",
            "yesterday",
            "2025/03/01 10:00",
            "01/03/2025 10:00:00",
        )
    ),
    # Two characters, so only the regex (not max_length) fails for country.
    *(
        Fault("bad_enum", "set", "status", value)
        for value in ("PAID", "shipped?", "unknown", "Paid")
    ),
    *(Fault("bad_enum", "set", "country", value) for value in ("us", "U1", "1A", "Gb")),
    # One field too many (after the note) or too few (no note): the other fields stay valid.
    Fault("ragged", "append", "note", ",extra", formats=("csv",)),
    Fault("ragged", "drop_last", formats=("csv",)),
    # Balanced braces and quotes, so a splitter still finds the element's boundaries.
    *(
        Fault("invalid_json", "set", column, value, json=value, formats=_JSON_FORMATS)
        for column, value in (("amount", "tru"), ("quantity", "nul"), ("status", "undefined"))
    ),
    Fault("invalid_json", "append", "note", ",", formats=_JSON_FORMATS),  # trailing comma
    Fault("invalid_json", "truncate", formats=("ndjson",)),  # a line cut short
    Fault("duplicate", "duplicate", "order_id"),
)


DATASETS: dict[str, Dataset] = {
    "orders": Dataset(
        name="orders",
        columns=ORDERS_COLUMNS,
        blocks=_orders_blocks,
        description=(
            "e-commerce orders: ids, UTC timestamps, customers, countries (incl. 'NA'), money, "
            "quantities, statuses and messy free-text notes"
        ),
        faults=_ORDERS_FAULTS,
    ),
}
"""Registered datasets by name."""
