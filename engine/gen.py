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
    "COMPRESSIONS",
    "DATASETS",
    "FORMATS",
    "Block",
    "Dataset",
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

    """

    path: str
    format: str
    compression: str | None
    rows: int
    bytes_written: int
    seconds: float


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


@dataclass(frozen=True)
class Dataset:
    """A registered dataset.

    Attributes:
        name: registry key.
        columns: column names in output order.
        blocks: ``blocks(seed)`` yields an endless, deterministic stream of :class:`Block`.
        description: one line for help texts.

    """

    name: str
    columns: tuple[str, ...]
    blocks: Callable[[int], Iterator[Block]]
    description: str = ""


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
    lead: Piece = ",\n"
    if block.first_row == 0:
        lead = pa.array(["", *([",\n"] * (block.rows - 1))], pa.string())
    compact = _resolve([lead, *_json_object(block.fields, pretty=False)])
    text = _join(compact)
    row_numbers = np.arange(block.first_row + 1, block.first_row + block.rows + 1)
    pretty_mask = row_numbers % _PRETTY_EVERY == 0
    if not pretty_mask.any():
        return text
    mask = pa.array(pretty_mask)
    pretty = [
        p if isinstance(p, str) else p.filter(mask)
        for p in _resolve([lead, *_json_object(block.fields, pretty=True)])
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
# generate()
# --------------------------------------------------------------------------------------------


def _string_offsets(text: pa.Array) -> np.ndarray:
    """Return the ``len(text) + 1`` value offsets of a string array, as numpy int32."""
    count = len(text) + 1
    return np.frombuffer(text.buffers()[1], dtype=np.int32, count=count, offset=4 * text.offset)


def generate(
    dataset: str,
    path: str | os.PathLike[str],
    *,
    size: int,
    fmt: str | None = None,
    seed: int = 0,
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

    Returns:
        A :class:`GenReport`.

    Raises:
        ValueError: unknown dataset or format, a format that cannot be inferred, or size < 1.

    """
    started = time.perf_counter()
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
    size = int(size)
    layout = _LAYOUTS[fmt]
    header = layout.header(spec.columns).encode()
    trailer = layout.trailer.encode()
    out = Path(os.fspath(path))

    rows = 0
    written = len(header)
    try:
        with _open_sink(out, compression) as sink:
            sink.write(header)
            blocks = spec.blocks(seed)
            while written + len(trailer) < size:
                block = next(blocks)
                text = layout.rows(block)
                offsets = _string_offsets(text)
                ends = offsets[1:] - offsets[0]
                need = size - len(trailer) - written
                take = len(text)
                if int(ends[-1]) >= need:
                    take = int(np.searchsorted(ends, need, side="left")) + 1
                nbytes = int(ends[take - 1])
                start = int(offsets[0])
                sink.write(memoryview(text.buffers()[2])[start : start + nbytes])
                rows += take
                written += nbytes
            sink.write(trailer)
            written += len(trailer)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return GenReport(
        path=os.fspath(path),
        format=fmt,
        compression=compression,
        rows=rows,
        bytes_written=written,
        seconds=time.perf_counter() - started,
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


DATASETS: dict[str, Dataset] = {
    "orders": Dataset(
        name="orders",
        columns=ORDERS_COLUMNS,
        blocks=_orders_blocks,
        description=(
            "e-commerce orders: ids, UTC timestamps, customers, countries (incl. 'NA'), money, "
            "quantities, statuses and messy free-text notes"
        ),
    ),
}
"""Registered datasets by name."""
