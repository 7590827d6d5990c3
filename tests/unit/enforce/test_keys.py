"""engine.enforce.keys: exact keys, the one 64-bit hash, row keys and the set of seen keys."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from engine.enforce import keys
from engine.enforce.keys import SeenValues, hash64, is_exact, row_keys, value_keys
from engine.errors import ContractError


def test_exact_types_are_their_own_keys() -> None:
    big = 2**63 + 5  # a uint64 beyond int64: its bits, not a failed cast
    cases = [
        (pa.array([3, None, -1], pa.int8()), [3, 0, -1]),
        (pa.array([big, 1], pa.uint64()), [big - 2**64, 1]),
        (pa.array([True, False, None]), [1, 0, 0]),
        (pa.array([dt.date(1970, 1, 2), None]), [1, 0]),
        (pa.array([5, -7], pa.timestamp("us")), [5, -7]),
        (pa.array([4, 9, 4], pa.int16()).dictionary_encode(), [4, 9, 4]),
    ]
    for values, expected in cases:
        assert is_exact(values.type)
        keys, valid = value_keys(values)
        assert keys.view(np.int64).tolist() == expected, values.type
        assert valid.tolist() == values.is_valid().to_pylist()


def test_floats_hash_by_value_zero_and_nan_alike() -> None:
    payload = np.array([0x7FF8000000000001, 0x7FF8000000000002], np.uint64).view(np.float64)
    floats = pa.array(np.concatenate([[0.0, -0.0, 1.5, 2.5], payload]))
    h = hash64(floats)
    assert h[0] == h[1] and h[4] == h[5]
    assert len({h[0], h[2], h[3], h[4]}) == 4
    np.testing.assert_array_equal(hash64(pa.array([1.5], pa.float32())), h[2:3])
    assert not is_exact(floats.type)


def test_hashed_keys_are_hash64_of_the_values_and_nulls_are_zero() -> None:
    strings = pa.chunked_array([["x", None], ["yy", "x"]])
    got, valid = value_keys(strings)
    assert valid.tolist() == [True, False, True, True]
    assert got[1] == 0
    np.testing.assert_array_equal(got[valid], hash64(pa.array(["x", "yy", "x"]), keys._KEY_SEED))


def test_key_seed_is_drawn_per_process_and_the_sketch_hash_is_fixed() -> None:
    """Keys that only meet keys of their own process are seeded at random (no collision can be
    written in advance); hash64's default, which count_distinct's sketches use, is fixed."""
    import subprocess
    import sys

    code = ("import pyarrow as pa; from engine.enforce import keys; "
            "print(int(keys._KEY_SEED), int(keys.hash64(pa.array(['x']))[0]))")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(2)]
    assert runs[0][0] != runs[1][0]
    assert runs[0][1] == runs[1][1] == str(int(hash64(pa.array(["x"]))[0]))


def test_a_collision_written_for_the_fixed_seed_is_none_now() -> None:
    """(1, 1) and (2, 593103626439154712) shared a row key when row keys had a fixed seed:
    dedupe on two integer columns dropped the second, valid, row (found in review)."""
    pairs = [pa.array([1, 2], pa.int64()), pa.array([1, 593103626439154712], pa.int64())]
    got = row_keys(pairs)
    assert got[0] != got[1]


@pytest.mark.parametrize("typ", [pa.decimal32(5, 1), pa.decimal64(12, 1), pa.decimal128(20, 1),
                                 pa.decimal256(40, 1)])
def test_decimals_of_every_width_have_distinct_keys(typ: pa.DataType) -> None:
    values = pa.array([Decimal("1.5"), Decimal("2.5"), Decimal("-1.5"), Decimal("1.5")], typ)
    keys, _ = value_keys(values)
    assert len(set(keys.tolist())) == 3 and keys[0] == keys[3]


def test_nested_values_are_not_keys() -> None:
    with pytest.raises(ContractError, match="scalar"):
        value_keys(pa.array([[1], [2]]))
    with pytest.raises(pa.ArrowNotImplementedError):
        hash64(pa.array([[1], [2]]))  # the aggregate reports it as a SchemaError


def test_row_keys_take_null_as_a_value() -> None:
    a = pa.array([None, None, "", "x"])
    b = pa.array([1, 1, 1, None])
    keys = row_keys([a, b])
    assert keys[0] == keys[1]
    assert len(set(keys.tolist())) == 3
    assert row_keys([pa.array([1, 2])])[0] != row_keys([pa.array([2, 1])])[0]


def test_seen_values_across_batches() -> None:
    seen = SeenValues()
    assert seen.add(pa.array(["a", "b", "a", None])).tolist() == [False, False, True, False]
    assert seen.add(pa.array(["b", "c", None])).tolist() == [True, False, False]
    high = 0
    for start in range(0, 5000, 500):  # many overlapping batches: runs are merged on the way
        batch = np.arange(start, start + 700, dtype=np.uint64)
        assert seen.add_keys(batch).tolist() == [i < high for i in range(start, start + 700)]
        high = start + 700
    assert seen.nbytes == 8 * 3 + 16  # three hashed keys, and 0..5199 as one interval
    assert seen.add_keys(np.array([7, 7], np.uint64), np.array([False, True])).tolist() == [
        False, True]


@pytest.mark.parametrize("page", [5, 256, keys.PAGE_KEYS])
def test_seen_values_match_a_set_on_keys_in_order_out_of_order_and_hashed(
        page: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every mix of intervals and pages of single keys answers as a Python set would."""
    monkeypatch.setattr(keys, "PAGE_KEYS", page)  # small pages: merges stream across many
    rng = np.random.default_rng(5 + page)
    top = np.uint64(2**64 - 1)
    for trial in range(25):
        seen, reference = SeenValues(), set()
        start = int(rng.integers(0, 2**64 - 10**6, dtype=np.uint64)) if trial % 4 else 0
        for _ in range(int(rng.integers(5, 40))):
            kind = rng.integers(0, 4)
            n = int(rng.integers(1, 3000))
            if kind == 0:  # identifiers in order, with gaps
                batch = start + np.cumsum(rng.integers(1, 3, n)).astype(np.uint64)
                start = int(batch[-1])
            elif kind == 1:  # hashed: anywhere
                batch = rng.integers(0, 2**64, n, dtype=np.uint64)
            elif kind == 2:  # repeats of earlier keys and some neighbours of them
                pool = np.array(sorted(reference) or [5], dtype=np.uint64)
                batch = pool[rng.integers(0, len(pool), n)] + rng.integers(0, 2, n).astype(
                    np.uint64)
            else:  # a block out of order, and the extremes
                batch = np.concatenate([rng.permutation(np.arange(n, dtype=np.uint64)) + np.uint64(
                    start // 2), np.array([0, top, top - np.uint64(1)], np.uint64)])
            valid = rng.random(len(batch)) > 0.05
            expected, batch_seen = [], set()
            for key, ok in zip(batch.tolist(), valid.tolist(), strict=True):
                expected.append(ok and (key in reference or key in batch_seen))
                if ok:
                    batch_seen.add(key)
            reference |= batch_seen
            assert seen.add_keys(batch, valid).tolist() == expected
        assert seen.nbytes <= 8 * len(reference)
        pages = [p for run in seen._singles for p in run]
        assert all(len(p) and np.all(p[1:] > p[:-1]) for p in pages)
        if page < 100:  # pages of several merges stream: each within a few pages' size
            assert max(map(len, pages), default=0) <= 4 * page + 3000


def test_seen_values_of_identifiers_in_order_hold_their_gaps_not_their_keys() -> None:
    seen = SeenValues()
    for start in range(1, 1_000_000, 10_000):
        ids = np.arange(start, start + 10_000, dtype=np.int64)
        ids = ids[ids % 100_000 != 0]  # a gap every 100,000
        assert not seen.add(pa.array(ids)).any()
    assert seen.add(pa.array([1, 99_999, 100_000, 100_001])).tolist() == [True, True, False, True]
    assert seen.nbytes <= 16 * 12
