"""The one 64-bit hash of values and rows, and the keys that dedupe, unique and enrich keep.

Every value becomes one ``uint64``, vectorised with numpy (no Python per value):

- :func:`value_keys`: values of exact types (integers, booleans, and dates, times, timestamps
  and durations of 32 or 64 bits) are their own key, so two distinct values never share one;
  other values are their :func:`hash64`.
- :func:`hash64`: exact types through the splitmix64 finaliser (a bijection: still no two
  alike), floats by their bits the same way (``-0.0`` as ``0.0``, every NaN alike), decimals and
  other fixed-width values a chain of their 64-bit words, strings and binaries eight bytes at a
  time (:func:`_hash_bytes`). Also the hash of ``count_distinct``'s HyperLogLog sketches.
- :func:`row_keys`: a tuple of columns folded into one key; a null is a value like any other.

A hashed key is shared by two distinct values with probability about n² / 2⁶⁵ among n distinct
values (1e-7 for 2 million). Users that must be exact compare the values behind equal keys
(``enrich``); ``dedupe`` and ``unique`` document the chance, and are exact for one column of an
exact type. :class:`SeenValues` keeps the keys a file has shown, for ``unique`` and ``dedupe``.

There is one mixing function (:func:`_mix`). Word chains (decimals, row tuples) start at a
seed, and the keys of string word positions count up from it, those of string lengths down from
it. :func:`hash64` has a fixed seed: what it feeds (``count_distinct``'s sketches) is the same
on every run. The keys of :func:`value_keys` and :func:`row_keys` only meet other keys of the
same process, and are seeded at random when the process starts, as Python seeds ``hash()``:
the mixing is invertible, so with a fixed seed two values that share a key could be written on
purpose (a valid row then rejected by ``unique`` or dropped by ``dedupe``); with an unknown
seed a shared key is the chance above and nothing more.

>>> import pyarrow as pa
>>> value_keys(pa.array([3, None, -1]))[0].view("int64").tolist()  # integers: their own keys
[3, 0, -1]
>>> h = hash64(pa.array(["a", "b", "a"]))
>>> bool(h[0] == h[2]), bool(h[0] == h[1])
(True, False)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from engine.errors import ContractError

__all__ = ["SeenValues", "as_array", "cheap_to_hash", "hash64", "is_exact", "row_keys",
           "value_keys"]

#: Bytes of string data hashed at once, bounding the temporaries of :func:`hash64` (~10x this).
_HASH_SLICE_BYTES = 1 << 22

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_MUL1 = _U64(0xBF58476D1CE4E5B9)
_MUL2 = _U64(0x94D049BB133111EB)
#: The seed of :func:`hash64` (digits of pi): the same on every run.
_SEED = _U64(0x243F6A8885A308D3)
#: The seed of :func:`value_keys` and :func:`row_keys`: drawn once per process (module doc).
_KEY_SEED = _U64(int.from_bytes(os.urandom(8), "little"))
#: Stands for a null in a row key (a value whose key mixes to it is a 2**-64 event).
_NULL_MARK = _U64(0x6A09E667F3BCC909)


def _mix(x: np.ndarray) -> np.ndarray:
    """A step of splitmix64: add the golden gamma, then the finaliser; a bijection on uint64."""
    z = x + _GOLDEN
    z = (z ^ (z >> _U64(30))) * _MUL1
    z = (z ^ (z >> _U64(27))) * _MUL2
    return z ^ (z >> _U64(31))


def as_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``values`` as one ``Array`` (a single chunk is taken as is, not copied)."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def is_exact(t: pa.DataType) -> bool:
    """Whether a value of ``t`` is its own 64-bit key (no hashing, no collisions)."""
    if pa.types.is_dictionary(t):
        return is_exact(t.value_type)
    return (pa.types.is_integer(t) or pa.types.is_boolean(t)
            or (pa.types.is_temporal(t) and t.bit_width in (32, 64)))


def cheap_to_hash(t: pa.DataType) -> bool:
    """Whether :func:`hash64` of ``t`` is a few integer operations per value."""
    return is_exact(t) or pa.types.is_floating(t)


def _exact_keys(array: pa.Array) -> np.ndarray:
    """The values of an exact type (:func:`is_exact`, not dictionary) as uint64; nulls as 0."""
    t = array.type
    if pa.types.is_temporal(t):
        ints = array.view(pa.int64() if t.bit_width == 64 else pa.int32())
    elif pa.types.is_uint64(t):
        ints = array.view(pa.int64())  # its bits: a cast would refuse values over 2**63 - 1
    else:
        ints = array.cast(pa.int64())
    if ints.null_count:
        ints = ints.fill_null(0)
    out = np.asarray(ints.to_numpy(zero_copy_only=False))
    return out.astype(np.int64, copy=False).view(_U64)


def hash64(values: pa.Array | pa.ChunkedArray, seed: np.uint64 = _SEED) -> np.ndarray:
    """64-bit hashes of ``values`` (no nulls), vectorised, equal for equal values of one type.

    Integers, booleans and temporals hash their integer value, floats their float64 bits
    (``-0.0`` as ``0.0``, every NaN alike), each through the splitmix64 finaliser; decimals and
    other fixed-width types their bytes; strings and binaries their bytes, eight at a time
    (:func:`_hash_bytes`, processed in slices of bounded size). Anything else is cast to a
    string first (``pyarrow.ArrowNotImplementedError`` for nested types). ``seed`` seeds the
    strings', decimals' and fixed-width values' hashes (the others are bijections already).
    """
    values = as_array(values)
    t = values.type
    if pa.types.is_dictionary(t):
        values, t = values.cast(t.value_type), t.value_type
    if len(values) == 0:
        return np.zeros(0, dtype=_U64)
    if is_exact(t):
        return _mix(_exact_keys(values))
    if pa.types.is_floating(t):
        floats = np.asarray(values.cast(pa.float64()).to_numpy(zero_copy_only=False)) + 0.0
        floats = np.where(np.isnan(floats), np.nan, floats)
        return _mix(floats.view(_U64))
    if pa.types.is_decimal(t) or pa.types.is_fixed_size_binary(t):
        return _hash_fixed_width(values, seed)
    if not (pa.types.is_binary(t) or pa.types.is_string(t) or pa.types.is_large_binary(t)
            or pa.types.is_large_string(t) or pa.types.is_binary_view(t)
            or pa.types.is_string_view(t)):
        values = values.cast(pa.large_string())  # ArrowNotImplementedError for nested types
    values = values.cast(pa.large_binary())
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64, count=len(values) + 1,
                            offset=values.offset * 8)
    cuts = np.searchsorted(offsets, np.arange(offsets[0], offsets[-1], _HASH_SLICE_BYTES)[1:])
    bounds = [0, *sorted(set(int(c) for c in cuts) - {0, len(values)}), len(values)]
    return np.concatenate([_hash_bytes(values.slice(lo, hi - lo), seed)
                           for lo, hi in zip(bounds, bounds[1:], strict=False)])


def _hash_bytes(arr: pa.Array, seed: np.uint64) -> np.ndarray:
    """64-bit hashes of a large_binary array without nulls, eight bytes at a time.

    Word ``j`` of a value (little-endian, zero-padded) is XORed with a key for position ``j`` and
    mixed; the words of a value are combined by XOR (tabulation-style hashing, splitmix64 standing
    in for the random tables) and the result is mixed once more with a key for the length.
    """
    n = len(arr)
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    base = int(offsets[0])
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, "u1")
    data = np.concatenate([data[base:int(offsets[-1])], np.zeros(8, np.uint8)])
    lengths = np.diff(offsets)
    nwords = (lengths + 7) // 8
    total = int(nwords.sum())
    first = np.cumsum(nwords) - nwords  # index of each value's first word
    word = np.arange(total, dtype=np.int64)
    pos = np.repeat(offsets[:-1] - base - 8 * first, nwords) + 8 * word  # byte offset of a word
    j = word - np.repeat(first, nwords)  # position of the word in its value
    window = np.lib.stride_tricks.sliding_window_view(data, 8)
    words = np.ascontiguousarray(window[pos]).view("<u8").ravel()
    # the last word of a value may run into the next one: keep only its own bytes
    partial = np.flatnonzero(lengths % 8)
    tail = (lengths[partial] % 8).astype(_U64) * _U64(8)
    words[first[partial] + nwords[partial] - 1] &= (_U64(1) << tail) - _U64(1)
    keys = _mix(np.arange(int(nwords.max(initial=0)), dtype=_U64) + seed)
    mixed = _mix(words ^ keys[j])
    acc = np.zeros(n, dtype=_U64)
    nonempty = nwords > 0
    if total:
        acc[nonempty] = np.bitwise_xor.reduceat(mixed, first[nonempty])
    return _mix(acc ^ _mix(seed - _U64(1) - lengths.astype(_U64)))


def _hash_fixed_width(arr: pa.Array, seed: np.uint64) -> np.ndarray:
    """64-bit hashes of a fixed-width array (decimals) without nulls: a chain of its words."""
    width = arr.type.byte_width
    buf = arr.buffers()[1]
    raw = np.frombuffer(buf, dtype=np.uint8, count=len(arr) * width, offset=arr.offset * width)
    if width % 8:
        pad = np.zeros((len(arr), 8 - width % 8), dtype=np.uint8)
        raw = np.concatenate([raw.reshape(len(arr), width), pad], axis=1)
    words = np.ascontiguousarray(raw).view("<u8").reshape(len(arr), -1)
    h = np.full(len(arr), seed, dtype=_U64)
    for k in range(words.shape[1]):
        h = _mix(h ^ words[:, k])
    return h


def value_keys(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A uint64 key per value, and the validity mask (the key of a null is 0).

    Values of exact types (:func:`is_exact`) are their own keys; floats, decimals, strings and
    binaries their :func:`hash64`.

    Raises:
        ContractError: ``values`` are not scalars (lists, structs, maps...).
    """
    array = as_array(values)
    t = array.type
    if pa.types.is_dictionary(t):  # each entry of the dictionary keyed once, not each row
        entry_keys, entry_valid = value_keys(array.dictionary)
        indices = array.indices
        valid = np.asarray(indices.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        picks = np.asarray(indices.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.intp)
        if not len(entry_keys):
            return np.zeros(len(array), dtype=_U64), np.zeros(len(array), dtype=bool)
        valid &= entry_valid[picks]
        return np.where(valid, entry_keys[picks], _U64(0)), valid
    valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if is_exact(t):
        return _exact_keys(array), valid
    if not (pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_fixed_size_binary(t)
            or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or pa.types.is_string_view(t)
            or pa.types.is_binary_view(t)):
        raise ContractError(f"a key column must hold scalar values, not {t}")
    if not array.null_count:
        return hash64(array, _KEY_SEED), valid
    keys = np.zeros(len(array), dtype=_U64)
    keys[valid] = hash64(array.drop_null(), _KEY_SEED)
    return keys, valid


def row_keys(columns: Sequence[pa.Array | pa.ChunkedArray]) -> np.ndarray:
    """One uint64 per row for the tuple of ``columns``; a null is a value like any other.

    Raises:
        ContractError: a column does not hold scalars.
    """
    h = np.full(len(columns[0]), _KEY_SEED, dtype=_U64)
    for column in columns:
        keys, valid = value_keys(column)
        h = _mix(h ^ np.where(valid, _mix(keys), _NULL_MARK))
    return h


#: Keys per page of a run of single keys: a merge streams page by page, so its transient is a
#: few pages (1 MiB each), not a second copy of the runs.
PAGE_KEYS = 1 << 17


class SeenValues:
    """The keys seen so far in a file: ``unique`` checks and ``dedupe`` steps.

    Keys that come in intervals of consecutive values (integer identifiers issued in order,
    ``order_id``) are held as those intervals, 16 bytes each: such keys cost 16 bytes per gap in
    the sequence, not 8 per key. Other keys (hashed ones: strings, tuples of columns) are held
    as they are, 8 bytes each. Either kind is kept in a few sorted *runs*, merged as they come
    (each key merged O(log n) times); a run of single keys is a list of pages of
    :data:`PAGE_KEYS`, merged page by page, so a merge holds a few pages more than the keys,
    never both runs and their union at once. :attr:`nbytes` (reported as ``state_bytes``) is
    what is held. Keys are those of :func:`value_keys` or :func:`row_keys`: exact for one
    column of an exact type, otherwise hashed, so two distinct values collide with probability
    ~n²/2⁶⁵ (the later one is then taken for a repeat).

    >>> seen = SeenValues()
    >>> seen.add(pa.array([1, 2, 1])).tolist(), seen.add(pa.array([2, None, 3])).tolist()
    ([False, False, True], [True, False, False])
    """

    def __init__(self) -> None:
        #: runs of intervals lo..hi (both inclusive), each sorted and disjoint from the others
        self._intervals: list[tuple[np.ndarray, np.ndarray]] = []
        #: runs of single keys, each a list of sorted pages in order
        self._singles: list[list[np.ndarray]] = []

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return (sum(lo.nbytes + hi.nbytes for lo, hi in self._intervals)
                + sum(page.nbytes for run in self._singles for page in run))

    def add(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Record ``values``; return a mask of those seen before (in the file or earlier here).

        Nulls are never repeats.
        """
        return self.add_keys(*value_keys(values))

    def add_keys(self, keys: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Record the uint64 ``keys`` (where ``valid``); a mask of those seen before."""
        dup = np.zeros(len(keys), dtype=bool)
        idx = np.flatnonzero(valid) if valid is not None else np.arange(len(keys))
        if not len(idx):
            return dup
        k = keys[idx]
        # Sort-based, not np.unique (hash-based in numpy 2, 10x slower here): a stable sort
        # keeps the earliest of equal keys first, so later copies in this batch are repeats.
        order = np.argsort(k, kind="stable")
        ordered = k[order]
        repeat = np.zeros(len(k), dtype=bool)
        repeat[1:] = ordered[1:] == ordered[:-1]
        self._lookup(ordered, repeat)
        fresh = ordered[~repeat]
        dup[idx[order]] = repeat
        if len(fresh):
            self._insert(fresh)
        return dup

    def _lookup(self, ordered: np.ndarray, repeat: np.ndarray) -> None:
        """Set ``repeat`` where the sorted keys ``ordered`` are held."""
        for lo, hi in self._intervals:
            first, last = _within(ordered, lo[0], hi[-1])
            if first < last:
                probe = ordered[first:last]
                pos = np.searchsorted(lo, probe, side="right") - 1  # >= 0: probe >= lo[0]
                repeat[first:last] |= probe <= hi[pos]
        for run in self._singles:
            for page in run:
                # only the keys within a page's range are looked up there
                first, last = _within(ordered, page[0], page[-1])
                if first < last:
                    probe = ordered[first:last]
                    pos = np.searchsorted(page, probe)  # < len(page): probe <= page[-1]
                    repeat[first:last] |= page[pos] == probe

    def _insert(self, fresh: np.ndarray) -> None:
        """Hold the sorted new keys ``fresh``: intervals of two or more apart from the rest."""
        starts = np.flatnonzero(np.append(True, fresh[1:] - fresh[:-1] != _U64(1)))
        lengths = np.diff(np.append(starts, len(fresh)))
        long = lengths > 1
        if long.any():
            self._intervals.append((fresh[starts[long]], fresh[(starts + lengths - 1)[long]]))
            self._compact_intervals()
        if not long.all():
            self._singles.append([fresh[np.repeat(~long, lengths)]])
            self._compact_singles()

    def _compact_intervals(self) -> None:
        # Merge the newest runs while a run is not much larger than the one after it: few runs,
        # each entry merged O(log n) times.
        runs = self._intervals
        while len(runs) > 1 and len(runs[-2][0]) <= 2 * len(runs[-1][0]):
            pair = runs[-2:]
            del runs[-2:]
            runs.append(_merge_intervals(pair))

    def _compact_singles(self) -> None:
        runs = self._singles
        while len(runs) > 1 and _count(runs[-2]) <= 2 * _count(runs[-1]):
            pair = runs[-2:]
            del runs[-2:]
            runs.append(_merge_pages(pair))
            if 2 * _interval_count(runs[-1]) < _count(runs[-1]):  # dense after all: intervals
                self._intervals.append(_pages_to_intervals(runs.pop()))
                self._compact_intervals()


def _within(ordered: np.ndarray, low: np.uint64, high: np.uint64) -> tuple[int, int]:
    """The slice of the sorted ``ordered`` between ``low`` and ``high`` (both inclusive)."""
    return (int(np.searchsorted(ordered, low, side="left")),
            int(np.searchsorted(ordered, high, side="right")))


def _count(run: list[np.ndarray]) -> int:
    return sum(len(page) for page in run)


def _merge_intervals(pair: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """One run of the intervals of the two disjoint runs in ``pair``, joining those that touch.

    ``pair`` is emptied, so that the inputs are freed once placed.
    """
    (a_lo, a_hi), (b_lo, b_hi) = pair
    pair.clear()
    n = len(a_lo) + len(b_lo)
    at = np.searchsorted(a_lo, b_lo) + np.arange(len(b_lo))  # where b's intervals go
    from_b = np.zeros(n, dtype=bool)
    from_b[at] = True
    lo, hi = np.empty(n, dtype=_U64), np.empty(n, dtype=_U64)
    lo[at], hi[at] = b_lo, b_hi
    del b_lo, b_hi, at
    lo[~from_b], hi[~from_b] = a_lo, a_hi
    del a_lo, a_hi, from_b
    touch = lo[1:] - hi[:-1] == _U64(1)  # disjoint and sorted: lo[i] > hi[i - 1]
    if not touch.any():
        return lo, hi
    starts = np.flatnonzero(np.append(True, ~touch))
    ends = np.append(starts[1:] - 1, n - 1)
    return lo[starts], hi[ends]


def _merge_pages(pair: list[list[np.ndarray]]) -> list[np.ndarray]:
    """One paged run of the keys of the two disjoint paged runs in ``pair``.

    Streams: each step merges the keys of both up to the smaller of their current pages' last
    keys, so the inputs' pages are freed as they are consumed and the transient is a few pages.
    ``pair`` is emptied.
    """
    a_pages, b_pages = pair[0][::-1], pair[1][::-1]  # popped from the end: in key order
    pair.clear()
    out: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    held = 0

    def emit(piece: np.ndarray) -> None:
        # Into pages of PAGE_KEYS, each its own array (a view would keep a larger one alive).
        nonlocal held
        pending.append(piece)
        held += len(piece)
        if held < PAGE_KEYS:
            return
        joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
        pending.clear()
        full = len(joined) - len(joined) % PAGE_KEYS
        if full == len(joined) and full == PAGE_KEYS:
            out.append(joined)
        else:
            out.extend(joined[i:i + PAGE_KEYS].copy() for i in range(0, full, PAGE_KEYS))
            if full < len(joined):
                pending.append(joined[full:].copy())
        held = len(joined) - full

    a = a_pages.pop()
    b = b_pages.pop()
    while True:
        cut = min(a[-1], b[-1])
        na = int(np.searchsorted(a, cut, side="right"))
        nb = int(np.searchsorted(b, cut, side="right"))
        piece = np.concatenate([a[:na], b[:nb]])
        piece.sort(kind="stable")  # two sorted runs: one timsort merge
        emit(piece)
        a, b = a[na:], b[nb:]
        if not len(a):
            if not a_pages:
                break
            a = a_pages.pop()
        if not len(b):
            if not b_pages:
                break
            b = b_pages.pop()
    rest, rest_pages = (a, a_pages) if len(a) else (b, b_pages)
    if len(rest):
        emit(rest.copy() if rest.base is not None else rest)  # not a view of a larger page
    while rest_pages:
        emit(rest_pages.pop())
    if pending:
        out.append(np.concatenate(pending) if len(pending) > 1 else pending[0])
    return out


def _interval_count(run: list[np.ndarray], piece: int = 1 << 18) -> int:
    """How many intervals of consecutive keys the sorted distinct keys of ``run`` make.

    Counted a piece at a time, so the temporaries stay small whatever the length.
    """
    count, previous = 0, None
    for page in run:
        if not len(page):
            continue
        count += 1 if previous is None or page[0] - previous != _U64(1) else 0
        for lo in range(1, len(page), piece):
            hi = min(lo + piece, len(page))
            count += int(np.count_nonzero(page[lo:hi] - page[lo - 1:hi - 1] != _U64(1)))
        previous = page[-1]
    return count


def _pages_to_intervals(run: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The intervals of consecutive keys of a paged run (sorted, distinct); ``run`` is emptied."""
    los, his = [], []
    while run:
        page = run.pop(0)
        starts = np.flatnonzero(np.append(True, page[1:] - page[:-1] != _U64(1)))
        los.append(page[starts])
        his.append(page[np.append(starts[1:] - 1, len(page) - 1)])
        del page
    lo, hi = np.concatenate(los), np.concatenate(his)
    del los, his
    touch = lo[1:] - hi[:-1] == _U64(1)  # an interval that runs on into the next page
    if not touch.any():
        return lo, hi
    starts = np.flatnonzero(np.append(True, ~touch))
    return lo[starts], hi[np.append(starts[1:] - 1, len(lo) - 1)]
