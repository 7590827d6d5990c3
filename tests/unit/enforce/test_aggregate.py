"""engine.enforce.aggregate: partial aggregates per batch, merged, equal to one group_by."""

from __future__ import annotations

import datetime as dt
import decimal
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.contract import AggregateSpec
from engine.enforce.aggregate import HLL_PRECISION, Aggregator, hll_estimate
from engine.enforce.keys import hash64
from engine.errors import SchemaError, ValidationError

SE = 1.04 / math.sqrt(2**HLL_PRECISION)


def spec(by: list[str], metrics: dict, max_groups: int = 1_000_000) -> AggregateSpec:
    return AggregateSpec.model_validate(
        {"by": by, "metrics": metrics, "max_groups": max_groups, "path": "agg.parquet"}
    )


def run(table: pa.Table, agg_spec, sizes: list[int] | None = None, **kw) -> Aggregator:
    agg = Aggregator(agg_spec, uri="mem://t", **kw)
    for batch in split(table, sizes or [table.num_rows]):
        agg.update(batch)
    return agg


def split(table: pa.Table, sizes: list[int]) -> list[pa.Table]:
    out, off = [], 0
    for size in sizes:
        out.append(table.slice(off, size))
        off += size
    if off < table.num_rows:
        out.append(table.slice(off))
    return out


def random_sizes(rng: np.random.Generator, n: int, batches: int) -> list[int]:
    cuts = np.sort(rng.integers(0, n + 1, batches - 1))
    return list(np.diff(np.concatenate([[0], cuts, [n]])).astype(int))


def direct(table: pa.Table, by: list[str], metrics: dict[str, tuple[str, str]]) -> pa.Table:
    """The reference: one group_by over the whole table, columns named like the Aggregator's."""
    out = table.group_by(by).aggregate([(col, func) for func, col in metrics.values()])
    cols = [out.column(k) for k in by]
    cols += [out.column(f"{col}_{func}") for func, col in metrics.values()]
    res = pa.table(cols, names=by + list(metrics))
    return res.sort_by([(k, "ascending") for k in by]) if by else res


def random_table(rng: np.random.Generator, n: int) -> pa.Table:
    def nulls(arr: np.ndarray, ratio: float) -> np.ndarray:
        return rng.random(len(arr)) < ratio

    ik = rng.integers(-3, 4, n)
    sk = rng.choice(np.array(["a", "bb", "ccc", "", "é"]), n)
    iv = rng.integers(-1000, 1000, n)
    fv = rng.normal(size=n)
    sv = np.array([f"s{x}" for x in rng.integers(0, 40, n)])
    return pa.table(
        {
            "ik": pa.array(ik, mask=nulls(ik, 0.1)),
            "sk": pa.array(sk, mask=nulls(sk, 0.1)),
            "iv": pa.array(iv, mask=nulls(iv, 0.2)),
            "i32": pa.array(iv.astype(np.int32), pa.int32(), mask=nulls(iv, 0.05)),
            "fv": pa.array(fv, mask=nulls(fv, 0.2)),
            "sv": pa.array(sv, mask=nulls(sv, 0.2)),
        }
    )


METRICS = {
    "n": ("count", "iv"),
    "total": ("sum", "iv"),
    "lo": ("min", "iv"),
    "hi": ("max", "iv"),
    "avg": ("mean", "iv"),
    "fsum": ("sum", "fv"),
    "favg": ("mean", "fv"),
    "fmin": ("min", "fv"),
    "smin": ("min", "sv"),
    "smax": ("max", "sv"),
    "sdistinct": ("count_distinct", "sv"),
    "idistinct": ("count_distinct", "i32"),
    "i32sum": ("sum", "i32"),
}
FLOAT_METRICS = {"avg", "fsum", "favg"}


def assert_matches(got: pa.Table, want: pa.Table) -> None:
    assert got.column_names == want.column_names
    assert got.num_rows == want.num_rows
    for name in got.column_names:
        g, w = got.column(name).to_pylist(), want.column(name).to_pylist()
        if name in FLOAT_METRICS:
            assert len(g) == len(w)
            for a, b in zip(g, w, strict=True):
                assert (a is None and b is None) or a == pytest.approx(b, rel=1e-9, abs=1e-9)
        else:
            assert g == w, name


@pytest.mark.parametrize("by", [["ik"], ["sk"], ["sk", "ik"], []])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 3000), batches=st.integers(1, 30))
def test_merged_partials_equal_one_group_by(by: list[str], seed: int, n: int, batches: int):
    rng = np.random.default_rng(seed)
    table = random_table(rng, n)
    metrics = {name: {func: col} for name, (func, col) in METRICS.items()}
    agg = run(table, spec(by, metrics), random_sizes(rng, n, batches))
    got = agg.result()
    want = direct(table, by, METRICS)
    if not by:  # one group even for an empty input
        assert got.num_rows == 1
    assert_matches(got, want)
    assert agg.groups == want.num_rows
    assert got.schema.field("n").type == pa.int64()
    assert got.schema.field("sdistinct").type == pa.int64()
    assert got.schema.field("avg").type == pa.float64()


def test_count_counts_non_null_values_and_null_keys_form_a_group():
    table = pa.table(
        {
            "k": pa.array(["x", None, "x", None, "y"]),
            "v": pa.array([1, 2, None, None, None]),
        }
    )
    got = run(
        table,
        spec(["k"], {"n": {"count": "v"}, "s": {"sum": "v"}, "m": {"mean": "v"},
                     "lo": {"min": "v"}, "d": {"count_distinct": "v"},
                     "a": {"count_distinct": "v", "approximate": True}}),
        [2, 1, 2],
    ).result()
    assert got.to_pydict() == {
        "k": ["x", "y", None],  # sorted, nulls last
        "n": [1, 0, 1],
        "s": [1, None, 2],
        "m": [1.0, None, 2.0],
        "lo": [1, None, 2],
        "d": [1, 0, 1],
        "a": [1, 0, 1],
    }


def test_multi_key_nulls_and_sorting():
    table = pa.table(
        {
            "a": pa.array([2, 1, None, 1, None, 2], pa.int32()),
            "b": pa.array(["q", None, "p", "p", "p", "q"]),
            "v": pa.array([1, 2, 3, 4, 5, 6]),
        }
    )
    got = run(table, spec(["a", "b"], {"s": {"sum": "v"}}), [1, 1, 1, 1, 1, 1]).result()
    assert got.to_pydict() == {
        "a": [1, 1, 2, None],
        "b": ["p", None, "q", "p"],
        "s": [4, 2, 7, 8],
    }
    assert got.schema.field("a").type == pa.int32()


def test_dictionary_keys_and_values_across_batches_with_different_dictionaries():
    b1 = pa.table({"c": pa.array(["DE", "FR", "DE"]).dictionary_encode(),
                   "s": pa.array(["paid", "new", "paid"]).dictionary_encode()})
    b2 = pa.table({"c": pa.array(["US", "DE"]).dictionary_encode(),
                   "s": pa.array(["new", "shipped"]).dictionary_encode()})
    agg = Aggregator(spec(["c"], {"n": {"count": "s"}, "d": {"count_distinct": "s"},
                                  "hi": {"max": "s"}}), uri="t")
    agg.update(b1)
    agg.update(b2)
    got = agg.result()
    assert pa.types.is_dictionary(got.schema.field("c").type)
    assert got.column("c").to_pylist() == ["DE", "FR", "US"]
    assert got.column("n").to_pylist() == [3, 1, 1]
    assert got.column("d").to_pylist() == [2, 1, 1]
    assert got.column("hi").to_pylist() == ["shipped", "new", "new"]


def test_decimal_and_timestamp_metrics():
    d = decimal.Decimal
    ts = [dt.datetime(2025, 3, 1, h, tzinfo=dt.UTC) for h in (5, 1, 9, 3)]
    table = pa.table(
        {
            "k": ["a", "a", "b", "b"],
            "amount": pa.array([d("1.10"), d("2.25"), None, d("0.05")], pa.decimal128(12, 2)),
            "at": pa.array(ts, pa.timestamp("ms", tz="UTC")),
        }
    )
    got = run(
        table,
        spec(["k"], {"rev": {"sum": "amount"}, "avg": {"mean": "amount"},
                     "first": {"min": "at"}, "last": {"max": "at"},
                     "amounts": {"count_distinct": "amount", "approximate": True},
                     "times": {"count_distinct": "at", "approximate": True}}),
        [1, 2, 1],
    ).result()
    assert got.column("rev").to_pylist() == [d("3.35"), d("0.05")]
    assert got.column("avg").to_pylist() == pytest.approx([1.675, 0.05])
    assert got.column("first").to_pylist() == [ts[1], ts[3]]
    assert got.column("last").to_pylist() == [ts[0], ts[2]]
    assert got.column("amounts").to_pylist() == [2, 1]
    assert got.column("times").to_pylist() == [2, 2]
    assert got.schema.field("first").type == pa.timestamp("ms", tz="UTC")


@pytest.mark.parametrize("kind", ["int", "string"])
def test_approximate_count_distinct_within_three_standard_errors(kind: str):
    rng = np.random.default_rng(7)
    groups, per_group = 4, 50_000
    values = rng.permutation(groups * per_group).astype(np.int64)
    keys = np.repeat(np.arange(groups), per_group)
    # every value appears twice, in shuffled order: duplicates must not count
    order = rng.permutation(2 * len(values))
    keys = np.concatenate([keys, keys])[order]
    values = np.concatenate([values, values])[order]
    col = pa.array(values) if kind == "int" else pa.array([f"user-{v}@example.com" for v in values])
    table = pa.table({"g": keys, "v": col})
    metrics = {"approx": {"count_distinct": "v", "approximate": True},
               "exact": {"count_distinct": "v"}}
    agg = run(table, spec(["g"], metrics), random_sizes(rng, table.num_rows, 17))
    got = agg.result()
    assert got.column("exact").to_pylist() == [per_group] * groups
    for estimate in got.column("approx").to_pylist():
        assert abs(estimate - per_group) <= 3 * SE * per_group


def test_approximate_count_distinct_over_the_range_of_cardinalities():
    rng = np.random.default_rng(3)
    for n in (1, 2, 10, 100, 1_000, 5_000, 12_000, 30_000, 100_000):
        values = rng.integers(0, 2**62, n)
        agg = run(pa.table({"v": values}), spec([], {"u": {"count_distinct": "v",
                                                           "approximate": True}}))
        estimate = agg.result().column("u")[0].as_py()
        true = len(np.unique(values))
        assert abs(estimate - true) <= max(3 * SE * true, 1), (n, estimate)


def test_hll_estimate_of_empty_sketch_is_zero():
    got = hll_estimate(np.array([0, 1]), np.array([0.0, 0.5]), np.array([0, 0]))
    assert got[0] == 0.0
    assert got[1] == pytest.approx(1.0, abs=0.01)


def test_hash64_equal_values_equal_hashes_and_no_collisions():
    strings = [f"k{i}" for i in range(200_000)]
    h = hash64(pa.array(strings))
    assert len(np.unique(h)) == len(strings)
    tricky = ["", "a", "a\x00", "ab", "abcdefgh", "abcdefgh\x00", "abcdefghi", "x" * 99 + "y"]
    h = hash64(pa.array(tricky))
    assert len(set(h.tolist())) == len(tricky)
    np.testing.assert_array_equal(hash64(pa.array(tricky, pa.large_string())), h)
    np.testing.assert_array_equal(hash64(pa.array(tricky, pa.binary())), h)
    np.testing.assert_array_equal(hash64(pa.array(tricky).slice(3)), h[3:])
    chunked = pa.chunked_array([tricky[:2], tricky[2:]])
    np.testing.assert_array_equal(hash64(chunked), h)
    ints = np.arange(100_000)
    assert len(np.unique(hash64(pa.array(ints)))) == len(ints)
    np.testing.assert_array_equal(hash64(pa.array(ints, pa.int32())), hash64(pa.array(ints)))
    assert hash64(pa.array([0.0]))[0] == hash64(pa.array([-0.0]))[0]


def test_long_strings_hash_in_bounded_slices(monkeypatch: pytest.MonkeyPatch):
    import engine.enforce.keys as keys

    values = pa.array([("z" * (i % 300)) + str(i) for i in range(5_000)])
    whole = hash64(values)
    monkeypatch.setattr(keys, "_HASH_SLICE_BYTES", 1000)
    np.testing.assert_array_equal(hash64(values), whole)


def test_max_groups_within_one_batch():
    table = pa.table({"k": np.arange(11), "v": np.ones(11)})
    agg = Aggregator(spec(["k"], {"n": {"count": "v"}}, max_groups=10), uri="s3://b/orders.csv")
    with pytest.raises(ValidationError) as err:
        agg.update(table)
    assert "more than 10 groups (by k)" in str(err.value)
    assert "raise aggregate.max_groups" in str(err.value)
    assert err.value.uri == "s3://b/orders.csv"


def test_max_groups_across_batches():
    agg = Aggregator(spec(["k", "j"], {"n": {"count": "v"}}, max_groups=10), uri="t")
    for start in range(0, 10, 2):  # exactly 10 groups is fine, in any number of batches
        agg.update(pa.table({"k": [start, start + 1], "j": ["x", "x"], "v": [1, 1]}))
        agg.update(pa.table({"k": [start], "j": ["x"], "v": [1]}))
    assert agg.groups == 10
    with pytest.raises(ValidationError, match="more than 10 groups"):
        agg.update(pa.table({"k": [None], "j": ["x"], "v": [1]}))  # a null key is a group
        agg.result()


def test_state_grows_with_groups_not_rows():
    rng = np.random.default_rng(0)
    metrics = {"n": {"count": "v"}, "s": {"sum": "v"}, "m": {"mean": "v"},
               "lo": {"min": "v"}, "u": {"count_distinct": "u", "approximate": True},
               "e": {"count_distinct": "u"}}
    agg = Aggregator(spec(["k"], metrics), uri="t")
    sizes = []
    rows_bytes = 0
    for _ in range(100):
        batch = pa.table({"k": pa.array([f"g{i}" for i in rng.integers(0, 10, 10_000)]),
                          "v": rng.normal(size=10_000),
                          "u": rng.integers(0, 20, 10_000)})
        rows_bytes += batch.nbytes
        agg.update(batch)
        sizes.append(agg.state_bytes)
    assert agg.groups == 10
    assert max(sizes) <= 2 * sizes[0] + 4096
    assert max(sizes) < rows_bytes / 1000
    assert agg.result().column("e").to_pylist() == [20] * 10


def test_missing_column_is_a_schema_error():
    agg = Aggregator(spec(["k"], {"n": {"count": "v"}}), uri="t")
    with pytest.raises(SchemaError, match=r"\['v'\]"):
        agg.update(pa.table({"k": [1]}))


def test_no_batches_and_empty_batches():
    agg = Aggregator(spec(["k"], {"n": {"count": "v"}, "m": {"mean": "v"}}), uri="t")
    empty = agg.result()
    assert empty.num_rows == 0
    assert empty.column_names == ["k", "n", "m"]
    agg.update(pa.table({"k": pa.array([], pa.string()), "v": pa.array([], pa.int64())}))
    got = agg.result()
    assert got.num_rows == 0
    assert got.schema.field("k").type == pa.string()
    assert agg.groups == 0


def test_record_batches_and_plain_dict_spec():
    plain = {"by": ["k"], "metrics": {"s": {"sum": "v"}, "d": {"count_distinct": "v"}},
             "max_groups": 5}
    agg = Aggregator(plain, uri="t")
    agg.update(pa.record_batch({"k": [1, 2, 1], "v": [5, 6, 5]}))
    assert agg.result().to_pydict() == {"k": [1, 2], "s": [10, 6], "d": [1, 1]}


def test_metric_on_a_group_key_column():
    table = pa.table({"k": ["a", "b", "a", None]})
    got = run(table, spec(["k"], {"n": {"count": "k"}, "d": {"count_distinct": "k"}})).result()
    assert got.to_pydict() == {"k": ["a", "b", None], "n": [2, 1, 0], "d": [1, 1, 0]}


def test_result_does_not_depend_on_batching_for_floats_within_rounding():
    rng = np.random.default_rng(11)
    table = pa.table({"k": rng.integers(0, 50, 20_000), "v": rng.normal(size=20_000)})
    metrics = {"s": {"sum": "v"}, "m": {"mean": "v"}, "hi": {"max": "v"}}
    one = run(table, spec(["k"], metrics)).result()
    many = run(table, spec(["k"], metrics), [7] * 3000).result()
    assert one.column("hi").equals(many.column("hi"))
    np.testing.assert_allclose(one.column("s").to_numpy(), many.column("s").to_numpy(),
                               rtol=1e-9, atol=1e-9)
    want = table.group_by("k").aggregate([("v", "mean")]).sort_by("k").column("v_mean")
    np.testing.assert_allclose(many.column("m").to_numpy(), want.to_numpy(), rtol=1e-9)
    assert pc.all(pc.equal(many.column("k"), pa.array(np.arange(50)))).as_py()


def test_unsupported_column_type_is_a_schema_error():
    table = pa.table({"k": [1, 2], "v": pa.array([[1], [2]])})
    for metric in ({"count_distinct": "v", "approximate": True}, {"min": "v"}):
        agg = Aggregator(spec(["k"], {"m": metric}), uri="t")
        with pytest.raises(SchemaError, match="aggregate: "):
            agg.update(table)


def test_approximate_sketches_hold_at_most_a_dense_row_per_group() -> None:
    """Few values: 8 bytes each; many: one row of 2**p ranks, however many values come."""
    rng = np.random.default_rng(11)
    metrics = {"u": {"count_distinct": "v", "approximate": True}, "n": {"count": "v"}}
    agg = Aggregator(spec(["k"], metrics), uri="t")
    for _ in range(20):
        agg.update(pa.table({"k": pa.array(["big"] * 50_000 + ["small"] * 10),
                             "v": rng.integers(0, 2**62, 50_010)}))
    sketch = agg._sketches[0]
    assert sketch.dense_rows == 1  # "big" went dense, "small" stays sparse
    assert sketch.nbytes <= 2**HLL_PRECISION + 8 * 200 + 1024
    got = agg.result()
    assert got.column("k").to_pylist() == ["big", "small"]
    big, small = got.column("u").to_pylist()
    assert abs(big - 1_000_000) <= 3 * SE * 1_000_000
    assert abs(small - 200) <= 3 * SE * 200


def test_colliding_group_hashes_fail_rather_than_mix_sketches(monkeypatch) -> None:
    from engine.enforce import aggregate

    monkeypatch.setattr(aggregate, "_group_hashes", lambda columns, rows: np.zeros(rows, np.uint64))
    agg = run(pa.table({"k": ["a", "b"], "v": [1, 2]}),
              spec(["k"], {"u": {"count_distinct": "v", "approximate": True}}))
    with pytest.raises(ValidationError, match="share a 64-bit key hash"):
        agg.result()


@pytest.mark.parametrize("float_type", [pa.float64(), pa.float32()])
def test_float_keys_that_arrow_groups_apart_keep_their_own_sketches(float_type) -> None:
    """0.0 and -0.0, and NaNs of different bits, are separate groups in Arrow's group_by: the
    approximate count_distinct gives each its own count instead of failing on a shared hash."""
    bits = np.array([0, 0x8000000000000000, 0x7FF8000000000000, 0x7FF8000000000001,
                     0xFFF8000000000000], dtype=np.uint64)
    keys = pa.array(bits.view(np.float64)).cast(float_type, safe=False)
    keys = pa.concat_arrays([keys, keys, pa.array([1.5, None], float_type)])
    table = pa.table({"k": keys, "v": pa.array(list(range(12)))})
    metrics = {"a": {"count_distinct": "v", "approximate": True},
               "d": {"count_distinct": "v"}}
    got = run(table, spec(["k"], metrics), [3, 4, 5]).result()
    assert got.num_rows == table.group_by("k").aggregate([("v", "count")]).num_rows
    assert got.column("a").to_pylist() == got.column("d").to_pylist()

