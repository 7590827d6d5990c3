r"""Split a large object into record-aligned byte ranges, one per Map iteration.

Objects over ``MAX_SINGLE_BYTES`` are converted by a Map of Lambdas, each taking a range of about
``RANGE_BYTES`` whose boundaries are record boundaries, so that every record is in exactly one
range and the parts together hold exactly the rows of a single-pass conversion:

- **NDJSON**: a raw line break cannot occur inside a JSON string, so the boundary is just past the
  first ``\n`` at or after the nominal cut: one small ranged read per cut.
- **CSV with quoting** (the default): a line break ends a record only outside quotes, and whether
  a byte is inside quotes depends on everything before it. With RFC 4180 quoting (quotes doubled
  inside quoted fields, the assumption :func:`engine.readers.csv.quote_aware_cut` makes for every
  chunk), a line break is a record boundary exactly when the number of quote characters before
  it is even. Local heuristics (does the text after a candidate parse as records of the header's
  width?) can be fooled by a quoted field that holds CSV text, and a wrong guess would silently
  corrupt rows; so the object is scanned once, sequentially, counting quotes
  (``bytes.count``: memory speed; the scan costs one read of the object). CSV without a quote
  character is split like NDJSON.
- **JSON arrays**: boundaries are the commas between elements at the array's depth, which
  needs the string and nesting state from the document's start: the object is scanned once with
  the engine's element splitter (:mod:`engine.readers.json_split`), without parsing. A range
  holds whole elements and their separating commas, without the array's brackets: its
  conversion reads ``[`` + range + ``]``.

Only plain objects are split: a compressed stream cannot be entered at a byte offset, and in
encodings other than UTF-8 and single-byte ASCII supersets a ``\n`` or ``"`` byte may be part
of another character. Such objects get one range covering the whole object (see
:func:`splittable`), i.e. a single conversion; ingest routes them ``single`` in the first place.
"""

from __future__ import annotations

import codecs
from typing import Any

import numpy as np

from engine import io
from engine.aws.deadline import Deadline
from engine.config import MiB, ReadOptions
from engine.errors import InputFormatError
from engine.readers.json_split import find_elements, locate_array, path_keys
from engine.readers.streams import UTF8_BOM

__all__ = [
    "SCAN_BLOCK_BYTES",
    "SPLITTABLE_ENCODINGS",
    "WINDOW_BYTES",
    "plan_byte_ranges",
    "splittable",
]

#: Bytes per ranged read when looking for the line break after a nominal cut (NDJSON, CSV
#: without quoting); more windows are read for longer records, up to ``max_record_bytes``.
WINDOW_BYTES = 1 * MiB

#: Bytes per read of the sequential scans (quoted CSV, JSON arrays): the scan's memory.
SCAN_BLOCK_BYTES = 8 * MiB

#: Encodings in which the bytes ``\n``, ``"``, ``,`` and ``\\`` only ever stand for themselves
#: (codec names as :func:`codecs.lookup` spells them).
SPLITTABLE_ENCODINGS = frozenset(
    {"utf-8", "utf-8-sig", "ascii", "iso8859-1", "iso8859-15", "cp1252"}
)

_WS = b" \t\r\n"


def splittable(uri: str, options: ReadOptions | None = None) -> bool:
    """Whether ``uri`` can be split into byte ranges: uncompressed, in an ASCII-safe encoding."""
    read = options or ReadOptions()
    compression = read.input_compression or io.infer_compression(uri)
    if compression != "none":
        return False
    return codecs.lookup(read.encoding).name in SPLITTABLE_ENCODINGS  # known: ReadOptions checks


def plan_byte_ranges(uri: str, fmt: str, size: int, target: int, *,
                     options: ReadOptions | None = None,
                     deadline: Deadline | None = None) -> list[dict[str, int]]:
    """Record-aligned byte ranges of about ``target`` bytes covering the records of ``uri``.

    Args:
        uri: the object (``s3://`` or a local path).
        fmt: ``csv``, ``ndjson`` or ``json`` (a JSON array); ``parquet`` is never split.
        size: the object's size in bytes.
        target: the wanted range size; ranges are longer by up to one record.
        options: read options (CSV quote character, ``json_path``, ``max_record_bytes``,
            encoding, compression), e.g. from the contract.
        deadline: checked during the sequential scans.

    Returns:
        ``[{"index": 0, "start": 0, "end": e0}, {"index": 1, "start": e0, "end": e1}, ...]``,
        ends exclusive. CSV and NDJSON ranges tile ``[0, size)``: the first holds the CSV
        header. JSON ranges tile the array's inside, between its brackets. A single range
        ``[0, size)`` is returned for an object not over ``target`` or not :func:`splittable`:
        its conversion is the whole-object one.

    Raises:
        InputFormatError: no record boundary within ``max_record_bytes`` of a cut (an unbalanced
            quote?), or a JSON document that is not an array where expected.
        TransientError: S3 failures, or the deadline.
    """
    if target <= 0:
        raise ValueError(f"target must be positive, got {target}")
    read = options or ReadOptions()
    if size <= target or fmt == "parquet" or not splittable(uri, read):  # Parquet: read whole
        return [{"index": 0, "start": 0, "end": size}]
    if fmt == "json":
        spans = _json_spans(uri, size, target, read, deadline)
    else:
        if fmt == "csv" and read.quote_char:
            bounds = _quoted_bounds(uri, size, target, read, deadline)
        elif fmt in ("csv", "ndjson"):
            bounds = _line_bounds(uri, size, target, read.max_record_bytes)
        else:
            raise ValueError(f"unknown format {fmt!r}")
        edges = [0, *bounds, size]
        spans = list(zip(edges[:-1], edges[1:], strict=True))
    return [{"index": i, "start": start, "end": end} for i, (start, end) in enumerate(spans)]


# ---------------------------------------------------------------------------------------------
# Line-delimited: NDJSON, CSV without quoting


def _line_bounds(uri: str, size: int, target: int, limit: int) -> list[int]:
    """Starts of the lines that begin at or after each nominal cut (one ranged read each)."""
    bounds: list[int] = []
    cut = target
    while cut < size:
        bound = _next_line_start(uri, cut, size, limit)
        if bound is None or bound >= size:
            break
        bounds.append(bound)
        cut = bound + target
    return bounds


def _next_line_start(uri: str, cut: int, size: int, limit: int) -> int | None:
    r"""The first offset ``>= cut`` that follows a ``\n`` (``None``: no line break after cut)."""
    pos = cut - 1  # a line break just before the cut makes the cut itself a boundary
    while pos < size:
        window = io.read_range(uri, pos, WINDOW_BYTES)
        if not window:
            return None
        found = window.find(b"\n")
        if found >= 0:
            return pos + found + 1
        pos += len(window)
        if pos - cut > limit:
            raise InputFormatError(
                f"no line break within max_record_bytes ({limit} bytes) after byte {cut}: "
                "cannot split here", uri=uri, offset=cut)
    return None


# ---------------------------------------------------------------------------------------------
# Quoted CSV: one sequential scan counting quotes


def _quoted_bounds(uri: str, size: int, target: int, read: ReadOptions,
                   deadline: Deadline | None) -> list[int]:
    """Record starts at or after each nominal cut, from the quote parity since byte 0."""
    quote = read.quote_char.encode()
    bounds: list[int] = []
    cut = target
    offset = 0  # stream offset of block[0]
    parity = 0  # quote characters in [0, offset + pos), mod 2
    with io.open_input(uri, "none") as stream:
        while cut < size:
            block = stream.read(SCAN_BLOCK_BYTES)
            if not block:
                break
            pos = 0
            while cut < size:
                start = max(cut - 1 - offset, pos)
                newline = block.find(b"\n", start) if start < len(block) else -1
                if newline < 0:
                    break
                parity ^= block.count(quote, pos, newline) & 1
                pos = newline + 1
                if parity == 0:  # outside quotes: a record ends here
                    bound = offset + pos
                    if bound >= size:
                        cut = size
                        break
                    bounds.append(bound)
                    cut = bound + target
            parity ^= block.count(quote, pos) & 1
            offset += len(block)
            if cut < size and offset - cut > read.max_record_bytes:
                raise InputFormatError(
                    f"no record boundary within max_record_bytes ({read.max_record_bytes} "
                    f"bytes) after byte {cut}: an unbalanced quote?", uri=uri, offset=cut)
            if deadline is not None:
                deadline.progress(offset, size)
    return bounds


# ---------------------------------------------------------------------------------------------
# JSON arrays: one sequential scan with the engine's element splitter


def _json_spans(uri: str, size: int, target: int, read: ReadOptions,
                deadline: Deadline | None) -> list[tuple[int, int]]:
    """``(start, end)`` spans of whole elements between the array's brackets."""
    keys = path_keys(read.json_path)
    path = read.json_path or "item"
    block = SCAN_BLOCK_BYTES
    with io.open_input(uri, "none") as stream:
        buf = b""
        while True:  # find the array's "["
            data = stream.read(block)
            buf += data
            skip = len(UTF8_BOM) if buf.startswith(UTF8_BOM) else 0
            opener = locate_array(buf[skip:], keys, uri, path, not data)
            if opener is not None:
                break
            if not data:
                raise InputFormatError(f"json_path {path!r} not found in the document", uri=uri)
            if len(buf) > read.max_record_bytes:
                raise InputFormatError(f"json_path {path!r} not found in the first "
                                       f"{read.max_record_bytes} bytes", uri=uri)
        first = skip + opener + 1
        base, buf = first, buf[first:]
        chosen: list[int] = []
        cut = first + target
        while True:
            end, rest = _split_elements(buf, base, cut, chosen, target, uri)
            if end is not None:
                _check_tail(stream, rest, end + 1, keys, uri)
                break
            consumed = len(buf) - len(rest)
            base, buf = base + consumed, rest
            if chosen:
                cut = chosen[-1] + 1 + target
            if not consumed and len(buf) > read.max_record_bytes:
                raise InputFormatError(
                    f"an array element is longer than max_record_bytes ({read.max_record_bytes}"
                    " bytes): an unbalanced quote or bracket?", uri=uri, offset=base)
            data = stream.read(max(block, len(buf)) if not consumed else block)
            if not data:
                raise InputFormatError("unterminated JSON document: the array has no closing "
                                       "']'", uri=uri, offset=base)
            buf += data
            if deadline is not None:
                deadline.progress(base + len(buf), size)
    starts = [first] + [c + 1 for c in chosen]
    return list(zip(starts, [*chosen, end], strict=True))


def _split_elements(buf: bytes, base: int, cut: int, chosen: list[int], target: int,
                    uri: str) -> tuple[int | None, bytes]:
    """Record the separators to cut at in ``buf`` (at stream offset ``base``).

    Appends to ``chosen`` the first separator at or after ``cut``, then the first at or after
    each previous choice + ``target``. Returns the offset of the array's ``]`` if ``buf`` holds
    it, and the bytes after the last complete element (carried into the next read).
    """
    if not buf:
        return None, buf
    try:
        found = find_elements(np.frombuffer(buf, np.uint8))
    except ValueError as exc:
        raise InputFormatError(f"malformed JSON document: {exc}", uri=uri, offset=base) from None
    if not found.seps.size:
        return None, buf
    seps = found.seps.astype(np.int64) + base
    commas = seps[:-1] if found.closed else seps
    k = int(np.searchsorted(commas, cut))
    while k < commas.size:
        chosen.append(int(commas[k]))
        k = int(np.searchsorted(commas, commas[k] + 1 + target))
    last = int(found.seps[-1]) + 1
    return (int(seps[-1]) if found.closed else None), buf[last:]


def _check_tail(stream: Any, rest: bytes, offset: int, keys: list[str], uri: str) -> None:
    """After a top-level array only whitespace may follow (nested arrays: not checked here)."""
    if keys:
        return
    while True:
        extra = rest.lstrip(_WS)
        if extra:
            raise InputFormatError("trailing data after the JSON document", uri=uri,
                                   offset=offset + len(rest) - len(extra))
        offset += len(rest)
        rest = stream.read(SCAN_BLOCK_BYTES)
        if not rest:
            return
