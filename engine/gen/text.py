"""A block of generated rows, and how it becomes CSV, NDJSON or JSON-array text.

A dataset yields :class:`Block` objects whose fields are lists of text pieces (:data:`Piece`):
literals shared by every row, or one string per row (an Arrow array, or a :class:`Take` from a
small pool of precomputed strings). Every value is turned into text by Arrow, and one
``binary_join_element_wise`` call glues a block into lines whose data buffer is written as-is,
so no row is ever touched in Python. Adding a dataset needs no change here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "LAYOUTS",
    "Block",
    "Field",
    "Layout",
    "Piece",
    "Take",
    "csv_layout",
    "csv_quote",
    "csv_rows",
    "json_array_elements",
    "ndjson_rows",
    "render",
]

_PRETTY_EVERY = 7  # in the JSON format, every 7th object is indented over several lines


@dataclass(frozen=True)
class Take:
    """A lazily resolved piece: ``pool.take(indices)``."""

    pool: pa.Array
    indices: pa.Array

    def resolve(self) -> pa.Array:
        """Return the pool's strings at the indices."""
        return self.pool.take(self.indices)


Piece = str | pa.Array | Take
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


def csv_quote(value: str) -> str:
    """Quote a CSV field as ``csv.QUOTE_MINIMAL`` does with an LF line terminator.

    Example:
        >>> csv_quote("plain"), csv_quote('say "hi", twice')
        ('plain', '"say ""hi"", twice"')

    """
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


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
        elif isinstance(piece, Take):
            out.append(piece.resolve())
        else:
            out.append(piece)
    return out


def _join(pieces: Sequence[str | pa.Array]) -> pa.Array:
    """Concatenate resolved pieces row by row into one string array."""
    if not any(isinstance(p, pa.Array) for p in pieces):  # pragma: no cover - datasets vary rows
        raise ValueError("a row template needs at least one per-row piece")
    return pc.binary_join_element_wise(*pieces, "")


def render(pieces: Sequence[Piece]) -> pa.Array:
    """Concatenate ``pieces`` row by row into one string array (at least one is per row).

    Example:
        >>> render(["<", pa.array(["a", "b"]), ">"]).to_pylist()
        ['<a>', '<b>']

    """
    return _join(_resolve(pieces))


def _csv_header(columns: Sequence[str], line_end: str = "\n") -> str:
    return ",".join(csv_quote(c) for c in columns) + line_end


def csv_rows(block: Block, line_end: str = "\n") -> pa.Array:
    """One CSV record per row of ``block``, each ending in ``line_end`` (by default a line feed)."""
    pieces: list[Piece] = []
    for i, field in enumerate(block.fields):
        if i:
            pieces.append(",")
        pieces.extend(field.csv)
    pieces.append(line_end)
    return render(pieces)


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


def ndjson_rows(block: Block) -> pa.Array:
    """One compact JSON object per row of ``block``, each ending in a line feed."""
    return render([*_json_object(block.fields, pretty=False), "\n"])


def _json_array_rows(block: Block) -> pa.Array:
    """Render array elements, each led by ``","`` and a newline (nothing before the first)."""
    row_numbers = np.arange(block.first_row + 1, block.first_row + block.rows + 1)
    return json_array_elements(block.fields, row_numbers)


def json_array_elements(fields: Sequence[Field], row_numbers: np.ndarray) -> pa.Array:
    """Render the array elements of the rows numbered ``row_numbers`` (1-based, ascending).

    Row 1 has no lead, every other row is led by a comma and a line feed; every row whose
    number is a multiple of 7 is indented over several lines, the others are compact.
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
class Layout:
    """How one format frames its rows: the text before them, the rows, the text after them."""

    header: Callable[[Sequence[str]], str]
    rows: Callable[[Block], pa.Array]
    trailer: str


LAYOUTS: dict[str, Layout] = {
    "csv": Layout(_csv_header, csv_rows, ""),
    "ndjson": Layout(lambda columns: "", ndjson_rows, ""),
    "json": Layout(lambda columns: "[\n", _json_array_rows, "\n]\n"),
}
"""The layout of each format of :data:`engine.config.TEXT_FORMATS`."""


def csv_layout(line_end: str) -> Layout:
    r"""The CSV layout with records (and the header) ending in ``line_end``, e.g. ``"\r\n"``.

    Line breaks inside quoted fields are the values' own (a note's ``\n``), as spreadsheet
    exports write them.
    """
    if line_end == "\n":
        return LAYOUTS["csv"]
    return Layout(partial(_csv_header, line_end=line_end), partial(csv_rows, line_end=line_end),
                  "")
