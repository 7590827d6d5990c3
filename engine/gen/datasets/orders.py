"""The "orders" dataset: e-commerce orders, with the messy text real exports have.

Ids, UTC timestamps (a few late ones), customers (a fifth of them regulars), countries with a
skewed mix (``NA``, Namibia, is the null-marker trap), money as decimals with two places,
quantities, statuses and free-text notes holding commas, quotes, newlines, non-ASCII text and
emoji. Values are drawn with numpy and turned into text by Arrow from small pools of precomputed
strings (dates, times, cents, countries, notes already quoted for CSV and escaped for JSON).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.gen.faults import Fault
from engine.gen.text import Block, Field, Take, csv_quote

__all__ = ["ORDERS_COLUMNS", "ORDERS_DESCRIPTION", "ORDERS_FAULTS", "ORDERS_NULLS",
           "ORDERS_OFFSETS_DESCRIPTION", "orders_blocks"]

ORDERS_DESCRIPTION = (
    "e-commerce orders: ids, UTC timestamps, customers, countries (incl. 'NA'), money, "
    "quantities, statuses and messy free-text notes"
)
ORDERS_OFFSETS_DESCRIPTION = (
    "orders with timestamps at +02:00 or -05:00 instead of Z, and CSV records ending in CRLF"
)

#: The UTC offsets of ``orders_offsets``' timestamps, drawn half and half.
_OFFSETS = ("+02:00", "-05:00")

# Rows per block: small first blocks keep tiny outputs cheap; the schedule never depends on the
# requested size, so the rows (and therefore the bytes) are the same whatever the size.
_BLOCK_SCHEDULE: tuple[int, ...] = (1_000, 10_000)
_BLOCK_ROWS = 100_000

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
def _time_pool(zones: tuple[str, ...] = ("Z",)) -> pa.Array:
    """``"HH:MM:SS"`` and a zone for every second of a day, a day per zone of ``zones``."""
    return pa.array(
        [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{zone}"
         for zone in zones for s in range(86_400)], pa.string()
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


def orders_blocks(seed: int, *, offsets: bool = False) -> Iterator[Block]:
    """Yield the endless "orders" stream for ``seed``.

    ``offsets``: each timestamp ends in one of :data:`_OFFSETS` (drawn per row from a stream
    of its own) instead of ``Z``; every other value is the same as without.
    """
    # A third stream for the zones, so "orders_offsets" has "orders"' rows (the first two
    # children are the same whatever the count spawned)
    notes_seq, rows_seq, zones_seq = np.random.SeedSequence(seed).spawn(3)
    zones_rng = np.random.default_rng(zones_seq)
    note_rng = np.random.default_rng(notes_seq)
    notes = ["", *(_make_note(note_rng) for _ in range(_NOTE_POOL_SIZE - 1))]
    notes_csv = pa.array([csv_quote(n) for n in notes], pa.string())
    notes_json = pa.array([json.dumps(n, ensure_ascii=False) for n in notes], pa.string())
    countries, statuses, cents_pool = _small_pools()
    country_p, status_p = _weights(_COUNTRIES), _weights(_STATUSES)
    times = _time_pool(_OFFSETS if offsets else ("Z",))
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
        zone = zones_rng.integers(0, len(_OFFSETS), n) if offsets else 0
        clock = float(clock_steps[-1])

        seconds = np.floor(clock_steps).astype(np.int64) - np.where(late, lateness, 0)
        day, second = np.divmod(seconds, 86_400)
        while int(day.max()) >= date_days:
            date_days *= 2
        dates = _date_pool(date_days)

        ids = np.arange(first + 1, first + n + 1, dtype=np.int64)
        order_id = pc.cast(pa.array(ids), pa.string())
        created = (Take(dates, pa.array(day)), Take(times, pa.array(second + 86_400 * zone)))
        customer_s = pc.cast(pa.array(customer.astype(np.int64)), pa.string())
        country_t = Take(countries, pa.array(country))
        dollars = pc.cast(pa.array(cents // 100), pa.string())
        amount = (dollars, Take(cents_pool, pa.array(cents % 100)))
        quantity_s = pc.cast(pa.array(quantity.astype(np.int64)), pa.string())
        status_t = Take(statuses, pa.array(status))
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
                Field("note", (Take(notes_csv, note_idx),), (Take(notes_json, note_idx),)),
            ),
        )
        first += n


_JSON_FORMATS = ("ndjson", "json")

#: The nullable columns of contracts/orders.yaml and the share of their values dirty data writes
#: as null (an empty CSV field, a JSON null): quantity is also where type faults go, so a chunk
#: holding a type fault holds nulls in the same column.
ORDERS_NULLS: tuple[tuple[str, float], ...] = (
    ("country", 0.01), ("quantity", 0.03), ("status", 0.02), ("note", 0.02),
)

# A note longer than the contract's max_length (2000): a pasted e-mail thread.
_LONG_NOTE = ("Customer wrote: please deliver between 9 and 5, the side gate is open. " * 30)[:2100]

# Each fault breaks exactly one check of contracts/orders.yaml and leaves the record otherwise
# clean. Values never collide with the contract's null markers ("") but for the nulls in
# non-nullable columns, and stay parseable where only a range is broken (two decimals for
# amount, so decimal128(12, 2) holds them).
ORDERS_FAULTS: tuple[Fault, ...] = (
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
    *(Fault("null", "set", column, "", json="null")
      for column in ("created_at", "customer_id", "amount")),
    Fault("too_long", "set", "note", _LONG_NOTE),
)
