r"""Vectorised scanning of JSON text: structure outside strings, and nesting depth.

:func:`structure` finds the bytes that shape a JSON text (``"`` ``\`` ``[`` ``]`` ``{`` ``}``
``,``) with a few numpy passes; :mod:`engine.readers.json_split` splits arrays with it.
:func:`deep_records` and :func:`deep_lines` find the records nested deeper than
:data:`engine.config.MAX_JSON_DEPTH` *before* any parser sees them: pyarrow's JSON parser recurses
once per level and overflows its stack (a segfault, not an exception) at about 20,000 levels,
Parquet writing at about 10,000, ``json.loads`` raises ``RecursionError`` at about 1,000, and
Parquet readers refuse a schema nested more than 100 levels (a list takes two).

The depth check costs one comparison pass over the bytes in the common case: a record can only
be that deep if it holds more than ``limit`` opening brackets, which few records do; only those
are scanned exactly (strings skipped).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FILTER_BLOCK", "SCAN_SLICE", "STEP", "LineScan", "Nesting", "Scratch", "deep_lines",
    "deep_records", "keys_outside_strings", "nesting_depth", "scan_lines", "structure",
]

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_LBRACKET, _RBRACKET, _LBRACE, _RBRACE = ord("["), ord("]"), ord("{"), ord("}")

#: Depth change per byte: +1 for ``[ {``, -1 for ``] }``.
STEP = np.zeros(256, np.int8)
STEP[[_LBRACKET, _LBRACE]] = 1
STEP[[_RBRACKET, _RBRACE]] = -1


class Scratch:
    """Byte-sized work arrays reused from block to block.

    Fresh multi-MiB arrays come from ``mmap`` and cost a page fault per 4 KiB on first touch, as
    much again as the arithmetic on them. Up to three arrays of the largest buffer scanned are
    kept, each made when first asked for: a JSON array split by guesses needs the mask alone
    (the other two would hold 8 MiB at 4 MiB blocks for nothing).
    """

    def __init__(self) -> None:
        self._u8 = np.empty(0, np.uint8)
        self._mask = np.empty(0, np.bool_)
        self._tmp = np.empty(0, np.bool_)

    def arrays(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A byte array and two boolean arrays of ``size`` elements (contents undefined)."""
        if self._u8.size < size:
            self._u8 = np.empty(size, np.uint8)
        if self._tmp.size < size:
            self._tmp = np.empty(size, np.bool_)
        return self._u8[:size], self.mask(size), self._tmp[:size]

    def mask(self, size: int) -> np.ndarray:
        """One boolean array of ``size`` elements (contents undefined)."""
        if self._mask.size < size:
            self._mask = np.empty(size, np.bool_)
        return self._mask[:size]


def structure(
    a: np.ndarray, *, in_string: bool = False, quotes: bool = False, scratch: Scratch | None = None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Positions and bytes of the brackets, braces and commas of ``a`` that lie outside strings.

    ``a`` must not start right after an unpaired backslash. ``in_string`` says whether it starts
    inside a string. With ``quotes``, the unescaped quotes are returned too (they open and close
    strings alternately). Also returns whether ``a`` ends inside a string. Stray bytes outside
    strings (a backslash, ``|``, control bytes: never valid JSON there) come back as well, so that
    the caller sees the element they are in as malformed.
    """
    # ``byte & 0xDF`` folds { | } onto [ \ ] and " , onto 0x02 0x0C: three compares find every
    # interesting byte in a few passes over the block, and np.flatnonzero keeps ~1 in 5 bytes.
    folded, mask, tmp = (scratch or Scratch()).arrays(a.size)
    np.bitwise_and(a, 0xDF, out=folded)
    np.equal(folded, 0x02, out=mask)
    mask |= np.equal(folded, 0x0C, out=tmp)
    folded -= 0x5B
    mask |= np.less_equal(folded, 2, out=tmp)
    idx = np.flatnonzero(mask)
    ch = a.take(idx)
    quote = ch == _QUOTE
    backslashes = np.flatnonzero(ch == _BACKSLASH)
    if backslashes.size:
        _unescape(idx, backslashes, quote)
    flips = quote.view(np.uint8)
    inside = np.bitwise_xor.accumulate(flips)  # 1 from an opening quote to its closing one
    if in_string:
        inside ^= 1
    ends_inside = bool(inside[-1]) if inside.size else in_string
    if quotes:
        keep = np.flatnonzero((inside == 0) | quote)
    else:
        inside |= flips  # closing quotes too
        keep = np.flatnonzero(inside == 0)
    return idx.take(keep), ch.take(keep), ends_inside


def _unescape(idx: np.ndarray, backslashes: np.ndarray, quote: np.ndarray) -> None:
    """Clear ``quote`` where a quote follows an odd run of backslashes.

    ``idx`` holds the positions of the interesting bytes, ``backslashes`` the indices into it of
    the backslashes, ``quote`` flags the quotes among them.
    """
    pos = idx.take(backslashes)
    ends = np.flatnonzero(np.diff(pos) != 1)  # last backslash of each run but the final one
    ends = np.append(ends, pos.size - 1)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    odd = backslashes.take(ends[(ends - starts) % 2 == 0])  # last backslash of each odd run
    following = odd + 1
    following = following[following < idx.size]
    following = following[idx.take(following) == idx.take(following - 1) + 1]
    quote[following] = False


#: Bytes scanned per step by :class:`Nesting` and :func:`deep_lines`: their work arrays are a few
#: bytes per byte scanned, and glibc keeps freed ones resident, so smaller is cheaper in RSS
#: (measured on 100 MB of NDJSON: 1 MiB slices +10 MiB peak, 256 KiB +6 MiB) and no slower.
SCAN_SLICE = 256 * 1024


class Nesting:
    """Bracket depth through a JSON text fed in pieces of any size, strings skipped.

    The state between pieces is the depth, whether a string is open and whether the next byte
    is escaped, so a text of any length is scanned in :data:`SCAN_SLICE` steps with bounded
    work arrays (:func:`structure` allocates ~12 bytes per byte it scans).

    Attributes:
        depth: the depth after the bytes fed so far.
        deepest: the greatest depth reached.
    """

    def __init__(self, depth: int = 0) -> None:
        self.depth = depth
        self.deepest = depth
        self._in_string = False
        self._escaped = False

    def feed(self, a: np.ndarray, *,
             quotes: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scan the next bytes of the text.

        Returns the positions in ``a``, the bytes, and the depth after each event outside
        strings (brackets, commas and stray bytes; with ``quotes``, the quotes that open and
        close strings too; see :func:`structure`).
        """
        # An odd run of backslashes escapes a quote (or a backslash) right after it, whatever
        # the string state: the rule structure() applies within one piece.
        skip = 1 if self._escaped and a.size and a[0] in (_QUOTE, _BACKSLASH) else 0
        pos, ch, self._in_string = structure(a[skip:], in_string=self._in_string,
                                             quotes=quotes)
        if skip:
            pos += skip
        levels = self.depth + np.cumsum(STEP.take(ch), dtype=np.int64)
        if levels.size:
            self.depth = int(levels[-1])
            self.deepest = max(self.deepest, int(levels.max()))
        rest = a[skip:]
        run = 0
        while run < rest.size and rest[rest.size - 1 - run] == _BACKSLASH:
            run += 1
        self._escaped = run % 2 == 1  # an escape carried in was spent on a[0] (skipped)
        return pos, ch, levels


def nesting_depth(a: np.ndarray, limit: int | None = None) -> int:
    """Deepest bracket nesting in ``a`` (which starts outside strings); strings are skipped.

    Scanned in :data:`SCAN_SLICE` steps; with ``limit``, stops once the depth passes it.
    """
    nesting = Nesting()
    for at in range(0, a.size, SCAN_SLICE):
        nesting.feed(a[at:at + SCAN_SLICE])
        if limit is not None and nesting.deepest > limit:
            break
    return nesting.deepest


def _runs(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For sorted ``ids``: the index where each run of equal values starts, its value, length."""
    first = np.flatnonzero(np.diff(ids, prepend=ids[0] - 1))
    return first, ids[first], np.diff(np.append(first, ids.size))


def deep_records(a: np.ndarray, ends: np.ndarray, limit: int) -> list[int]:
    """Indices of the records of ``a`` nested deeper than ``limit``, in order.

    Record ``i`` is the bytes after ``ends[i - 1]`` (or from 0) up to ``ends[i]``, exclusive:
    ``ends`` are the positions of the separators (``a.size`` may end the last record). Bytes
    after the last end are not examined. Each record must start outside strings.

    As :func:`deep_lines` does, a filter first bounds each record's opening brackets by those
    of the :data:`FILTER_BLOCK`-byte blocks it touches; the few records whose bound passes
    ``limit`` have their brackets counted, and those with more than ``limit`` are scanned
    exactly. Many such records (bracket-dense data) take :func:`_deep_records_exact` instead.
    """
    if not ends.size:
        return []
    stop = min(int(ends[-1]), a.size)
    counts, _, _ = _block_counts(a[:stop], breaks=False)
    total = np.concatenate(([0], np.cumsum(counts)))
    starts = np.concatenate(([0], ends[:-1] + 1))
    last = np.maximum(ends - 1, starts) // FILTER_BLOCK  # an empty record: its start's block
    bound = total[np.minimum(last, counts.size - 1) + 1] - total[np.minimum(
        starts // FILTER_BLOCK, counts.size)]
    dense = np.flatnonzero(bound > limit)
    if dense.size > MAX_DENSE_REGIONS:
        return _deep_records_exact(a, ends, limit)
    found = []
    for i in dense.tolist():
        record = a[int(starts[i]):int(ends[i])]
        if (np.count_nonzero(np.equal(record | 0x20, _LBRACE)) > limit
                and nesting_depth(record, limit) > limit):
            found.append(i)
    return found


def _deep_records_exact(a: np.ndarray, ends: np.ndarray, limit: int) -> list[int]:
    """:func:`deep_records` without the filter: the brackets of every record counted.

    The bytes are taken a slice at a time and only the records with more than ``limit``
    opening brackets are scanned exactly.
    """
    if not ends.size:
        return []
    stop = int(ends[-1])
    suspects: set[int] = set()
    run_record, run_count = -1, 0
    for at in range(0, stop, SCAN_SLICE):
        part = a[at:min(at + SCAN_SLICE, stop)]
        pos = np.flatnonzero(np.equal(part | 0x20, _LBRACE))  # "[" or "{"
        if not pos.size:
            continue
        _, ids, counts = _runs(np.searchsorted(ends, pos + at))
        if ids[0] == run_record:
            counts[0] += run_count
        suspects.update(ids[counts > limit].tolist())
        run_record, run_count = int(ids[-1]), int(counts[-1])
    return [i for i in sorted(suspects)
            if nesting_depth(a[int(ends[i - 1]) + 1 if i else 0:int(ends[i])], limit) > limit]


#: Bytes per block of :func:`deep_lines`' filter: a multiple of 8 up to 2040 (see
#: :func:`_block_counts`).
FILTER_BLOCK = 1024

_local = threading.local()  # a Scratch per thread for _block_counts

#: Beyond this many dense stretches in one piece, :func:`deep_lines` scans it all exactly.
MAX_DENSE_REGIONS = 64


@dataclass(frozen=True)
class LineScan:
    r"""What one pass over NDJSON text found about its lines (:func:`scan_lines`).

    Attributes:
        deep: ``(start, end)`` of each line nested deeper than the limit, in order.
        plain: whether every line starts with ``{`` or ``[`` at its first byte: then no line
            is blank, starts with whitespace, or holds a top-level ``null``, number, string or
            boolean, and every line is a record.
        lines: how many lines ``\n`` ends (a last line without one counts too).
    """

    deep: list[tuple[int, int]]
    plain: bool
    lines: int


def scan_lines(a: np.ndarray, limit: int) -> LineScan:
    r"""The lines of ``a`` nested deeper than ``limit``, and whether each starts with a bracket.

    Lines end at ``\n`` (excluded from a span); the last line need not end with one.

    A line that deep holds more than ``limit`` opening brackets. A filter finds the stretches
    where such a line can be: it counts the brackets and notes the line breaks per
    :data:`FILTER_BLOCK` bytes (three comparisons per byte and a sum, no position of any byte);
    every line lies within the blocks from one block with a line break to the next, so where
    those blocks hold ``limit`` brackets or fewer no line can be too deep. Typical records
    (a few brackets per line) pass it whole. Only the stretches that do not are scanned exactly
    (:func:`_deep_lines_exact`: a position per bracket and line break, then the depth of the
    lines with more than ``limit`` brackets, strings skipped).

    The same pass counts the line breaks and those followed by an opening bracket (two more
    operations per byte on the masks it has, no position): when they agree, every line starts
    with ``{`` or ``[`` (:attr:`LineScan.plain`). pyarrow's JSON parser takes a ``null`` line
    for a row of nulls (and crashes on one that starts its input), so the reader must know.

    >>> found = scan_lines(np.frombuffer(b'{"a": 1}\n[2]\n', np.uint8), 48)
    >>> found.plain, found.lines
    (True, 2)
    >>> scan_lines(np.frombuffer(b'{"a": 1}\nnull', np.uint8), 48).plain
    False
    """
    if not a.size:
        return LineScan([], True, 0)
    counts, breaks, heads = _block_counts(a, heads=True)
    newlines, led = heads
    final = int(a[-1] == 10)
    plain = bool(_OPENER[a[0]]) and led == newlines - final
    found: list[tuple[int, int]] = []
    for start, end in _dense_regions(a, limit, counts, breaks):
        found += [(start + s, start + e) for s, e in _deep_lines_exact(a[start:end], limit)]
    return LineScan(found, plain, newlines + 1 - final)


def deep_lines(a: np.ndarray, limit: int) -> list[tuple[int, int]]:
    r"""``(start, end)`` of each line of ``a`` nested deeper than ``limit``, in order.

    Lines end at ``\n`` (excluded from the span); the last line need not end with one. The
    filter and the exact scan are :func:`scan_lines`'.
    """
    if not a.size:
        return []
    counts, breaks, _ = _block_counts(a)
    found: list[tuple[int, int]] = []
    for start, end in _dense_regions(a, limit, counts, breaks):
        found += [(start + s, start + e) for s, e in _deep_lines_exact(a[start:end], limit)]
    return found


#: Bytes that open a container: ``[`` and ``{``.
_OPENER = np.zeros(256, np.bool_)
_OPENER[[_LBRACKET, _LBRACE]] = True


def _block_counts(
    a: np.ndarray, *, breaks: bool = True, heads: bool = False,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    r"""Per :data:`FILTER_BLOCK` bytes of ``a``: the opening brackets, and whether a ``\n``.

    With ``breaks=False`` the second array is left undefined (not scanned). With ``heads``,
    also the number of ``\n`` bytes and of those followed by ``[`` or ``{`` (else zeros).
    """
    size = FILTER_BLOCK
    blocks = -(-a.size // size)
    counts = np.empty(blocks, np.int64)
    newlines = np.empty(blocks, np.bool_)
    lines = led = 0
    step = max(size, SCAN_SLICE // size * size)  # whole blocks per slice
    scratch = getattr(_local, "scratch", None)
    if scratch is None:
        scratch = _local.scratch = Scratch()
    for at in range(0, a.size, step):
        part = a[at:at + step]
        first, full = at // size, part.size // size
        folded, openers, newline = scratch.arrays(part.size)  # reused: no page faults
        np.equal(np.bitwise_or(part, 0x20, out=folded), _LBRACE, out=openers)  # "[" or "{"
        if breaks or heads:
            np.equal(part, 10, out=newline)
        if heads:
            lines += int(np.count_nonzero(newline))
            both = folded[: part.size - 1].view(np.bool_)  # free once openers is made
            np.logical_and(newline[:-1], openers[1:], out=both)
            led += int(np.count_nonzero(both))
            end = at + part.size
            if newline[-1] and end < a.size and _OPENER[a[end]]:
                led += 1  # the line break ends this slice, the bracket starts the next
        if full:
            # Eight flags per uint64: summing a block's words adds eight byte lanes at once (at
            # most size / 8 <= 255 each, so no carry), then the lanes are added.
            words = openers[:full * size].view(np.uint64).reshape(full, size // 8)
            lanes = words.sum(axis=1, dtype=np.uint64).view(np.uint8).reshape(full, 8)
            counts[first:first + full] = lanes.sum(axis=1)
            if breaks:
                newlines[first:first + full] = newline[:full * size].reshape(
                    full, size).any(axis=1)
        if full * size < part.size:
            counts[first + full] = np.count_nonzero(openers[full * size:])
            newlines[first + full] = breaks and bool(newline[full * size:].any())
    return counts, newlines, (lines, led)


def _dense_regions(a: np.ndarray, limit: int, counts: np.ndarray,
                   breaks: np.ndarray) -> list[tuple[int, int]]:
    """Line-aligned, disjoint, sorted spans of ``a`` holding every line that may be too deep.

    ``counts`` and ``breaks`` are :func:`_block_counts` of ``a``.
    """
    total = np.concatenate(([0], np.cumsum(counts)))
    # every line lies within blocks points[k] .. points[k + 1] for some k
    points = np.concatenate(([0], np.flatnonzero(breaks), [counts.size - 1]))
    dense = np.flatnonzero(total[points[1:] + 1] - total[points[:-1]] > limit)
    if not dense.size:
        return []
    if dense.size > MAX_DENSE_REGIONS:
        return [(0, a.size)]
    regions: list[tuple[int, int]] = []
    for k in dense.tolist():
        start = _line_around(a, int(points[k]) * FILTER_BLOCK)[0]
        end = _line_around(a, min((int(points[k + 1]) + 1) * FILTER_BLOCK, a.size) - 1)[1]
        if regions and start <= regions[-1][1] + 1:
            regions[-1] = (regions[-1][0], max(end, regions[-1][1]))
        else:
            regions.append((start, end))
    return regions


def _deep_lines_exact(a: np.ndarray, limit: int) -> list[tuple[int, int]]:
    r"""``(start, end)`` of each line of ``a`` nested deeper than ``limit``, in order.

    Lines end at ``\n`` (excluded from the span); the last line need not end with one. The
    bytes are taken :data:`SCAN_SLICE` at a time, so the work arrays stay a few MiB whatever
    the piece: two comparisons per byte, a position per bracket and line break, and the exact
    scan only for the lines with more than ``limit`` opening brackets.
    """
    found: dict[int, int] = {}  # line number -> position of an opening bracket in it
    line = 0  # line breaks before the current slice
    run_line, run_count = 0, 0  # the line open at the end of the slice, and its brackets
    for at in range(0, a.size, SCAN_SLICE):
        part = a[at:at + SCAN_SLICE]
        breaks = np.equal(part, 10)
        events = np.equal(part | 0x20, _LBRACE)  # "[" or "{": 0x5B | 0x20 == 0x7B
        events |= breaks
        pos = np.flatnonzero(events)
        if not pos.size:
            continue
        is_break = breaks.take(pos)
        lines = line + np.cumsum(is_break)  # a bracket's line; a break: the line after it
        brackets = ~is_break
        opener_lines = lines[brackets]
        if opener_lines.size:
            first, ids, counts = _runs(opener_lines)
            if ids[0] == run_line:
                counts[0] += run_count
            for k in np.flatnonzero(counts > limit).tolist():
                found.setdefault(int(ids[k]), at + int(pos[brackets][first[k]]))
            run_line, run_count = int(ids[-1]), int(counts[-1])
        line = int(lines[-1])
        if line != run_line:
            run_line, run_count = line, 0
    spans = [_line_around(a, at) for _, at in sorted(found.items())]
    return [(start, end) for start, end in spans if nesting_depth(a[start:end], limit) > limit]


def _line_around(a: np.ndarray, at: int) -> tuple[int, int]:
    """The span of the line holding byte ``at`` (its line break excluded)."""
    start = at
    while start > 0:
        breaks = np.flatnonzero(a[max(0, start - SCAN_SLICE):start] == 10)
        if breaks.size:
            start = max(0, start - SCAN_SLICE) + int(breaks[-1]) + 1
            break
        start = max(0, start - SCAN_SLICE)
    end = at
    while end < a.size:
        breaks = np.flatnonzero(a[end:end + SCAN_SLICE] == 10)
        if breaks.size:
            return start, end + int(breaks[0])
        end += SCAN_SLICE
    return start, a.size


def keys_outside_strings(a: np.ndarray) -> int:
    """How many colons of ``a`` (which starts outside strings) lie outside strings: its keys."""
    pos, ch, _ = structure(a, quotes=True)
    quotes = pos[ch == _QUOTE]
    colons = np.flatnonzero(a == ord(":"))
    inside = np.searchsorted(quotes, colons) & 1  # an odd number of quotes before: in a string
    return int(colons.size - np.count_nonzero(inside))
