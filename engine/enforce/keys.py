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

There is one mixing function (:func:`_mix`) and one seed: word chains (decimals, row tuples)
start at it, and the keys of string word positions count up from it, those of string lengths
down from it.

>>> import pyarrow as pa
>>> value_keys(pa.array([3, None, -1]))[0].view("int64").tolist()  # integers: their own keys
[3, 0, -1]
>>> h = hash64(pa.array(["a", "b", "a"]))
>>> bool(h[0] == h[2]), bool(h[0] == h[1])
(True, False)
"""

from __future__ import annotations

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
#: The seed of every hash here (digits of pi).
_SEED = _U64(0x243F6A8885A308D3)
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


def hash64(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit hashes of ``values`` (no nulls), vectorised, equal for equal values of one type.

    Integers, booleans and temporals hash their integer value, floats their float64 bits
    (``-0.0`` as ``0.0``, every NaN alike), each through the splitmix64 finaliser; decimals and
    other fixed-width types their bytes; strings and binaries their bytes, eight at a time
    (:func:`_hash_bytes`, processed in slices of bounded size). Anything else is cast to a
    string first (``pyarrow.ArrowNotImplementedError`` for nested types).
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
        return _hash_fixed_width(values)
    if not (pa.types.is_binary(t) or pa.types.is_string(t) or pa.types.is_large_binary(t)
            or pa.types.is_large_string(t) or pa.types.is_binary_view(t)
            or pa.types.is_string_view(t)):
        values = values.cast(pa.large_string())  # ArrowNotImplementedError for nested types
    values = values.cast(pa.large_binary())
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64, count=len(values) + 1,
                            offset=values.offset * 8)
    cuts = np.searchsorted(offsets, np.arange(offsets[0], offsets[-1], _HASH_SLICE_BYTES)[1:])
    bounds = [0, *sorted(set(int(c) for c in cuts) - {0, len(values)}), len(values)]
    return np.concatenate([_hash_bytes(values.slice(lo, hi - lo))
                           for lo, hi in zip(bounds, bounds[1:], strict=False)])


def _hash_bytes(arr: pa.Array) -> np.ndarray:
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
    keys = _mix(np.arange(int(nwords.max(initial=0)), dtype=_U64) + _SEED)
    mixed = _mix(words ^ keys[j])
    acc = np.zeros(n, dtype=_U64)
    nonempty = nwords > 0
    if total:
        acc[nonempty] = np.bitwise_xor.reduceat(mixed, first[nonempty])
    return _mix(acc ^ _mix(_SEED - _U64(1) - lengths.astype(_U64)))


def _hash_fixed_width(arr: pa.Array) -> np.ndarray:
    """64-bit hashes of a fixed-width array (decimals) without nulls: a chain of its words."""
    width = arr.type.byte_width
    buf = arr.buffers()[1]
    raw = np.frombuffer(buf, dtype=np.uint8, count=len(arr) * width, offset=arr.offset * width)
    if width % 8:
        pad = np.zeros((len(arr), 8 - width % 8), dtype=np.uint8)
        raw = np.concatenate([raw.reshape(len(arr), width), pad], axis=1)
    words = np.ascontiguousarray(raw).view("<u8").reshape(len(arr), -1)
    h = np.full(len(arr), _SEED, dtype=_U64)
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
        return hash64(array), valid
    keys = np.zeros(len(array), dtype=_U64)
    keys[valid] = hash64(array.drop_null())
    return keys, valid


def row_keys(columns: Sequence[pa.Array | pa.ChunkedArray]) -> np.ndarray:
    """One uint64 per row for the tuple of ``columns``; a null is a value like any other.

    Raises:
        ContractError: a column does not hold scalars.
    """
    h = np.full(len(columns[0]), _SEED, dtype=_U64)
    for column in columns:
        keys, valid = value_keys(column)
        h = _mix(h ^ np.where(valid, _mix(keys), _NULL_MARK))
    return h


#: A run of :class:`SeenValues`: (lo, hi) intervals, sorted and disjoint; hi is None for a run
#: of single keys (hi == lo).
_Run = tuple[np.ndarray, np.ndarray | None]


class SeenValues:
    """The keys seen so far in a file: ``unique`` checks and ``dedupe`` steps.

    The keys are held in a few sorted *runs* (merged as they come, each key merged O(log n)
    times). A run is either its keys, 8 bytes each, or, where that is smaller, its maximal
    intervals of consecutive keys, 16 bytes per interval: integer identifiers issued in order
    (``order_id``) cost 16 bytes per gap in the sequence, not 8 per key; hashed keys (strings,
    tuples of columns) stay 8 bytes per key. Either way :attr:`nbytes` (reported as
    ``state_bytes``) is what is held. Keys are those of :func:`value_keys` or
    :func:`row_keys`: exact for one column of an exact type, otherwise hashed, so two distinct
    values collide with probability ~n²/2⁶⁵ (the later one is then taken for a repeat).

    >>> seen = SeenValues()
    >>> seen.add(pa.array([1, 2, 1])).tolist(), seen.add(pa.array([2, None, 3])).tolist()
    ([False, False, True], [True, False, False])
    """

    def __init__(self) -> None:
        self._runs: list[_Run] = []

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return sum(lo.nbytes + (hi.nbytes if hi is not None else 0) for lo, hi in self._runs)

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
            self._runs.append(_run(fresh))
            self._compact()
        return dup

    def _lookup(self, ordered: np.ndarray, repeat: np.ndarray) -> None:
        """Set ``repeat`` where the sorted keys ``ordered`` are in a run."""
        for lo, hi in self._runs:
            # only the keys within the run's range are looked up (few, for keys issued in order)
            first = int(np.searchsorted(ordered, lo[0], side="left"))
            last = int(np.searchsorted(ordered, (hi if hi is not None else lo)[-1], side="right"))
            if first >= last:
                continue
            probe = ordered[first:last]
            pos = np.searchsorted(lo, probe, side="right") - 1  # >= 0: probe >= lo[0]
            repeat[first:last] |= (probe <= hi[pos]) if hi is not None else (lo[pos] == probe)

    def _compact(self) -> None:
        # Merge the newest runs while a run is not much larger than the one after it: few runs,
        # each key merged O(log n) times.
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            pair = self._runs[-2:]
            del self._runs[-2:]
            self._runs.append(_merge(pair))


def _run(keys: np.ndarray) -> _Run:
    """Sorted distinct ``keys`` as a run: as intervals if that is smaller, else as they are."""
    if 2 * _interval_count(keys) >= len(keys):  # counted first: hashed keys allocate nothing
        return keys, None
    starts = np.flatnonzero(np.append(True, keys[1:] - keys[:-1] != _U64(1)))
    ends = np.append(starts[1:] - 1, len(keys) - 1)
    return keys[starts], keys[ends]


def _interval_count(keys: np.ndarray, piece: int = 1 << 18) -> int:
    """How many intervals of consecutive keys sorted distinct ``keys`` make.

    Counted a piece at a time, so the temporaries stay small whatever the length.
    """
    count = 1 if len(keys) else 0
    for lo in range(1, len(keys), piece):
        hi = min(lo + piece, len(keys))
        count += int(np.count_nonzero(keys[lo:hi] - keys[lo - 1:hi - 1] != _U64(1)))
    return count


def _merge(pair: list[_Run]) -> _Run:
    """One run of the keys of the two disjoint runs in ``pair``.

    ``pair`` is emptied, so that the inputs are freed once copied, before the sort.
    """
    (a, a_hi), (b, b_hi) = pair
    pair.clear()
    if a_hi is None and b_hi is None:
        merged = np.concatenate([a, b])
        del a, b
        merged.sort(kind="stable")  # two sorted runs: one timsort merge
        return _run(merged)
    # at least one run of intervals: merge the intervals, joining those that touch
    lo = np.concatenate([a, b])
    hi = np.concatenate([a if a_hi is None else a_hi, b if b_hi is None else b_hi])
    del a, b, a_hi, b_hi
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    del order
    starts = np.flatnonzero(np.append(True, lo[1:] - hi[:-1] != _U64(1)))
    ends = np.append(starts[1:] - 1, len(lo) - 1)
    lo, hi = lo[starts], hi[ends]
    keys = int((hi - lo).sum(dtype=_U64)) + len(lo)  # uint64 wraps only past 2**64 keys
    if keys <= 2 * len(lo):  # as single keys it is no larger
        return _expand(lo, hi), None
    return lo, hi


def _expand(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Every key of the intervals ``lo..hi``."""
    lengths = (hi - lo).astype(np.int64) + 1
    first = np.cumsum(lengths) - lengths
    step = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(first, lengths)
    return np.repeat(lo, lengths) + step.astype(_U64)
