"""engine.enforce.transforms: each step on small tables, expressions, enrichment and its cache."""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pydantic import TypeAdapter

import engine.enforce.enrich as enrich
from engine.contract import Step, load_contract
from engine.enforce.enrich import clear_reference_cache
from engine.enforce.keys import row_keys
from engine.enforce.transforms import Transformer, evaluate
from engine.errors import ContractError, InputFormatError, InputNotFoundError, ValidationError

URI = "s3://in/orders.csv"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Any:
    clear_reference_cache()
    yield
    clear_reference_cache()


def make(*steps: dict[str, Any], **kwargs: Any) -> Transformer:
    parsed = TypeAdapter(list[Step]).validate_python(list(steps))
    return Transformer(parsed, uri=URI, **kwargs)


def orders() -> pa.Table:
    return pa.table({
        "order_id": pa.array([1, 2, 3, 4], pa.int64()),
        "country": ["FR", "DE", None, "FR"],
        "amount": pa.array([Decimal("1.50"), Decimal("20.00"), Decimal("0.05"), None],
                           pa.decimal128(12, 2)),
        "status": ["paid", "cancelled", None, "shipped"],
    })


# -- expressions --------------------------------------------------------------------------------


def test_evaluate_field_literal_and_nested_calls() -> None:
    table = orders()
    assert evaluate({"field": "order_id"}, table).to_pylist() == [1, 2, 3, 4]
    assert evaluate({"literal": 7}, table) == pa.scalar(7)
    expr = {"call": "add", "args": [
        {"call": "multiply", "args": [{"field": "order_id"}, {"literal": 10}]}, {"literal": 1}]}
    assert evaluate(expr, table).to_pylist() == [11, 21, 31, 41]


def test_evaluate_options_and_struct_paths() -> None:
    table = pa.table({"s": ["abcdef", None], "ctx": [{"page": "/a"}, {"page": "/b"}]})
    sliced = {"call": "utf8_slice_codeunits", "args": [{"field": "s"}],
              "options": {"start": 1, "stop": 3}}
    assert evaluate(sliced, table).to_pylist() == ["bc", None]
    assert evaluate({"field": ["ctx", "page"]}, table).to_pylist() == ["/a", "/b"]
    member = {"call": "is_in", "args": [{"field": "s"}], "options": {"value_set": ["abcdef"]}}
    assert evaluate(member, table).to_pylist() == [True, False]


def test_evaluate_errors() -> None:
    table = orders()
    with pytest.raises(ContractError, match="no column 'nope'"):
        evaluate({"field": "nope"}, table)
    with pytest.raises(ContractError, match="utf8_upper"):
        evaluate({"call": "utf8_upper", "args": [{"field": "order_id"}]}, table)
    big = pa.table({"x": pa.array([2**62], pa.int64())})
    with pytest.raises(ValidationError, match="overflow"):
        evaluate({"call": "multiply_checked", "args": [{"field": "x"}, {"literal": 4}]}, big)
    with pytest.raises(ContractError, match="invalid expression"):
        evaluate({"call": "no_such_function", "args": []}, table)


# -- column steps -------------------------------------------------------------------------------


def test_rename_select_drop() -> None:
    t = make({"rename": {"order_id": "id", "status": "state"}},
             {"select": ["state", "id", "country"]}, {"drop": ["country", "not_here"]})
    out, removed = t.apply(orders())
    assert out.column_names == ["state", "id"]
    assert out.column("id").to_pylist() == [1, 2, 3, 4]
    assert removed == 0


def test_rename_errors_name_the_step_and_input() -> None:
    with pytest.raises(ContractError) as info:
        make({"drop": ["amount"]}, {"rename": {"nope": "x"}}).apply(orders())
    assert "transforms[1] (rename)" in str(info.value) and "'nope'" in str(info.value)
    assert info.value.uri == URI
    with pytest.raises(ContractError, match="two columns named country"):
        make({"rename": {"status": "country"}}).apply(orders())
    with pytest.raises(ContractError, match=r"transforms\[0\] \(select\).*'missing'"):
        make({"select": ["order_id", "missing"]}).apply(orders())


def test_cast() -> None:
    table = pa.table({"a": ["1", "2", None], "b": [1, 2, 3]})
    out, _ = make({"cast": {"a": "int32", "b": "string"}}).apply(table)
    assert out.schema.field("a").type == pa.int32()
    assert out.column("a").to_pylist() == [1, 2, None]
    assert out.column("b").to_pylist() == ["1", "2", "3"]
    dictionary, _ = make({"cast": {"b": "dictionary"}}).apply(
        pa.table({"b": ["x", "y", "x"]}))
    assert pa.types.is_dictionary(dictionary.schema.field("b").type)


def test_cast_failure_quotes_the_first_bad_value() -> None:
    table = pa.table({"a": ["1", "2", "3", "N/A", "x", "6"]})
    with pytest.raises(ValidationError) as info:
        make({"cast": {"a": "int64"}}).apply(table)
    message = str(info.value)
    assert "transforms[0] (cast)" in message and "column 'a'" in message
    assert "'N/A'" in message and info.value.uri == URI
    with pytest.raises(ValidationError, match="300"):
        make({"cast": {"n": "int8"}}).apply(pa.table({"n": [1, 300, 2]}))


def test_parse_timestamp_two_formats_and_a_timezone() -> None:
    table = pa.table({"at": ["2025-03-01 10:00:00", "01/03/2025 11:30", None]})
    t = make({"parse_timestamp": {"column": "at", "formats": ["%Y-%m-%d %H:%M:%S",
                                                              "%d/%m/%Y %H:%M"],
                                  "timezone": "Europe/Paris", "unit": "s"}})
    out, _ = t.apply(table)
    assert out.schema.field("at").type == pa.timestamp("s", tz="Europe/Paris")
    utc = [v.astimezone(dt.UTC) if v else None for v in out.column("at").to_pylist()]
    assert utc == [dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC),
                   dt.datetime(2025, 3, 1, 10, 30, tzinfo=dt.UTC), None]
    with pytest.raises(ValidationError, match=r"parse_timestamp.*'yesterday'"):
        t.apply(pa.table({"at": ["2025-03-01 10:00:00", "yesterday"]}))


def test_derive_cast_string_function_and_broadcast() -> None:
    t = make(
        {"derive": {"name": "amount_cents", "type": "int64",
                    "expr": {"call": "multiply", "args": [{"field": "amount"},
                                                          {"literal": 100}]}}},
        {"derive": {"name": "status", "expr": {"call": "utf8_upper",
                                               "args": [{"field": "status"}]}}},
        {"derive": {"name": "source", "expr": {"literal": "batch"}}},
    )
    out, removed = t.apply(orders())
    assert out.column("amount_cents").to_pylist() == [150, 2000, 5, None]
    assert out.schema.field("amount_cents").type == pa.int64()
    assert out.column_names.index("status") == 3  # replaced in place
    assert out.column("status").to_pylist() == ["PAID", "CANCELLED", None, "SHIPPED"]
    assert out.column("source").to_pylist() == ["batch"] * 4
    assert removed == 0


def test_derive_cast_failure() -> None:
    t = make({"derive": {"name": "n", "type": "int64", "expr": {"field": "s"}}})
    with pytest.raises(ValidationError, match=r"transforms\[0\] \(derive\).*'n'.*'x'"):
        t.apply(pa.table({"s": ["1", "x"]}))


def test_filter_drops_false_and_null() -> None:
    t = make({"filter": {"call": "not_equal", "args": [{"field": "status"},
                                                      {"literal": "cancelled"}]}})
    out, removed = t.apply(orders())
    assert out.column("order_id").to_pylist() == [1, 4]  # 2 is cancelled, 3 has no status
    assert removed == 2


def test_filter_on_a_scalar_and_a_non_boolean() -> None:
    never = {"call": "equal", "args": [{"literal": 1}, {"literal": 2}]}
    out, removed = make({"filter": never}).apply(orders())
    assert (out.num_rows, removed) == (0, 4)
    with pytest.raises(ContractError, match="must be boolean"):
        make({"filter": {"field": "order_id"}}).apply(orders())


# -- dedupe -------------------------------------------------------------------------------------


def test_dedupe_across_batches_keeps_the_first() -> None:
    t = make({"dedupe": {"keys": ["order_id"]}})
    first, removed = t.apply(pa.table({"order_id": [1, 2, 2, None, 3], "v": list("abcde")}))
    assert first.column("v").to_pylist() == ["a", "b", "d", "e"]
    assert removed == 1
    second, removed = t.apply(pa.table({"order_id": [3, 4, None, 1, 4], "v": list("fghij")}))
    assert second.column("v").to_pylist() == ["g"]  # None repeats the earlier null key
    assert removed == 4
    assert 0 < t.state_bytes <= 4 * 8  # keys 1..4: one interval


def test_dedupe_on_several_keys_with_strings() -> None:
    t = make({"dedupe": {"keys": ["country", "customer"]}})
    a = pa.table({"country": ["FR", "FR", "DE", None, "FR"],
                  "customer": [1, 2, 1, 1, 1], "v": list("abcde")})
    out, removed = t.apply(a)
    assert out.column("v").to_pylist() == ["a", "b", "c", "d"]
    assert removed == 1
    b = pa.table({"country": ["DE", "DE", None, "FR"], "customer": [2, 1, 1, 3],
                  "v": list("fghi")})
    out, removed = t.apply(b.slice(0))
    assert out.column("v").to_pylist() == ["f", "i"]
    assert removed == 2


def test_dedupe_on_floats_decimals_and_dictionaries() -> None:
    t = make({"dedupe": {"keys": ["f", "d", "c"]}})
    table = pa.table({
        "f": [0.0, -0.0, float("nan"), float("nan"), 1.5],
        "d": pa.array([Decimal("1.10")] * 4 + [Decimal("2")], pa.decimal128(5, 2)),
        "c": pa.array(["x", "x", "y", "y", "x"]).dictionary_encode(),
    })
    out, removed = t.apply(table)
    assert removed == 2  # -0.0 repeats 0.0, and NaN repeats NaN
    assert out.column("c").to_pylist() == ["x", "y", "x"]
    assert out.column("d").to_pylist() == [Decimal("1.10"), Decimal("1.10"), Decimal("2.00")]


def test_row_keys_are_equal_for_equal_values_in_any_layout() -> None:
    strings = pa.array(["alpha", "beta", None, "gamma"])
    whole = row_keys([strings, pa.array([1, 2, 3, 4])])
    sliced = row_keys([strings.slice(1), pa.array([2, 3, 4])])
    assert list(whole[1:]) == list(sliced)
    keys = row_keys([pa.array([f"k{i}" for i in range(10_000)])])
    assert len(np.unique(keys)) == 10_000


# -- enrich -------------------------------------------------------------------------------------


def write_reference(tmp_path: Path, table: pa.Table, name: str) -> str:
    path = tmp_path / name
    if name.endswith(".parquet"):
        pq.write_table(table, path)
    else:
        pacsv.write_csv(table, path)
    return str(path)


def customers() -> pa.Table:
    return pa.table({"country": ["DE", "FR", "IT"], "region": ["EMEA-C", "EMEA-W", "EMEA-S"],
                     "vat": [0.19, 0.20, 0.22]})


@pytest.mark.parametrize("name", ["countries.csv", "countries.parquet"])
def test_enrich_left_keeps_order_and_unmatched_rows(tmp_path: Path, name: str) -> None:
    path = write_reference(tmp_path, customers(), name)
    t = make({"enrich": {"path": path, "on": "country", "columns": ["region"]}})
    data = pa.table({"order_id": [1, 2, 3, 4, 5], "country": ["FR", "DE", None, "ES", "FR"]})
    out, removed = t.apply(data)
    assert out.column_names == ["order_id", "country", "region"]
    assert out.column("order_id").to_pylist() == [1, 2, 3, 4, 5]
    assert out.column("region").to_pylist() == ["EMEA-W", "EMEA-C", None, None, "EMEA-W"]
    assert removed == 0
    assert t.state_bytes > 0


@pytest.mark.parametrize("name", ["countries.csv", "countries.parquet"])
def test_enrich_inner_drops_unmatched_rows(tmp_path: Path, name: str) -> None:
    path = write_reference(tmp_path, customers(), name)
    t = make({"enrich": {"path": path, "on": ["country"], "how": "inner"}})
    data = pa.table({"order_id": [1, 2, 3, 4, 5], "country": ["IT", "ES", None, "FR", "IT"]})
    out, removed = t.apply(data)
    assert out.column("order_id").to_pylist() == [1, 4, 5]
    assert out.column("vat").to_pylist() == [0.22, 0.20, 0.22]
    assert out.column_names == ["order_id", "country", "region", "vat"]
    assert removed == 2


def test_enrich_on_several_keys_and_mismatched_key_types(tmp_path: Path) -> None:
    reference = pa.table({"shop": ["a", "a", "b"], "sku": ["1", "2", "1"],
                          "price": [10, 20, 30]})
    path = write_reference(tmp_path, reference, "prices.parquet")
    t = make({"enrich": {"path": path, "on": ["shop", "sku"]}})
    data = pa.table({"shop": ["b", "a", "a", "c"], "sku": pa.array([1, 2, 1, 1], pa.int32())})
    out, _ = t.apply(data)
    assert out.column("price").to_pylist() == [30, 20, 10, None]


def test_enrich_survives_hash_collisions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    reference = pa.table({"k": [f"key{i}" for i in range(50)], "v": list(range(50))})
    path = write_reference(tmp_path, reference, "ref.parquet")
    real = enrich.row_keys
    monkeypatch.setattr(enrich, "row_keys", lambda cols: real(cols) % np.uint64(4))
    t = make({"enrich": {"path": path, "on": "k"}})
    data = pa.table({"k": ["key7", "key49", "nope", "key0", None]})
    out, _ = t.apply(data)
    assert out.column("v").to_pylist() == [7, 49, None, 0, None]


def test_enrich_duplicate_reference_keys(tmp_path: Path) -> None:
    reference = pa.table({"country": ["FR", "DE", "FR"], "region": ["x", "y", "z"]})
    path = write_reference(tmp_path, reference, "dup.csv")
    with pytest.raises(ValidationError) as info:
        make({"enrich": {"path": path, "on": "country"}}).apply(
            pa.table({"country": ["DE"]}))
    assert "transforms[0] (enrich)" in str(info.value)
    assert "country='FR'" in str(info.value) and path in str(info.value)
    ints = pa.table({"id": [5, 6, 5], "name": ["a", "b", "c"]})
    path = write_reference(tmp_path, ints, "dup.parquet")
    with pytest.raises(ValidationError, match="id=5"):
        make({"enrich": {"path": path, "on": "id"}}).apply(pa.table({"id": [1]}))


def test_enrich_cache_is_shared_and_follows_the_file(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_reference(tmp_path, customers(), "countries.csv")
    reads: list[str] = []
    real = enrich._read_reference

    def counting(uri: str, fmt: str) -> pa.Table:
        reads.append(uri)
        return real(uri, fmt)

    monkeypatch.setattr(enrich, "_read_reference", counting)
    step = {"enrich": {"path": path, "on": "country", "columns": ["region"]}}
    data = pa.table({"country": ["FR"]})
    for _ in range(3):  # one Transformer per file, as on warm invocations
        assert make(step).apply(data)[0].column("region").to_pylist() == ["EMEA-W"]
    assert reads == [path]
    changed = pa.table({"country": ["FR"], "region": ["changed, and longer"]})
    write_reference(tmp_path, changed, "countries.csv")
    assert make(step).apply(data)[0].column("region").to_pylist() == ["changed, and longer"]
    assert reads == [path, path]


def test_enrich_path_relative_to_the_contract(tmp_path: Path) -> None:
    (tmp_path / "ref").mkdir()
    write_reference(tmp_path / "ref", customers(), "countries.csv")
    contract_path = tmp_path / "orders.yaml"
    contract_path.write_text(textwrap.dedent("""\
        dataset: orders
        columns:
          country: {type: string}
        transforms:
          - enrich: {path: ref/countries.csv, on: country, columns: [vat]}
        """))
    contract = load_contract(str(contract_path))
    t = Transformer.from_contract(contract, uri=URI)
    out, _ = t.apply(pa.table({"country": ["IT"]}))
    assert out.column("vat").to_pylist() == [0.22]


def test_enrich_errors(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.csv")
    with pytest.raises(InputNotFoundError) as info:
        make({"enrich": {"path": missing, "on": "country"}}).apply(pa.table({"country": ["FR"]}))
    assert "transforms[0] (enrich)" in str(info.value) and missing in str(info.value)
    assert info.value.uri == URI
    path = write_reference(tmp_path, customers(), "countries.csv")
    with pytest.raises(ContractError, match="already exist"):
        make({"enrich": {"path": path, "on": "country"}}).apply(
            pa.table({"country": ["FR"], "vat": [1.0]}))
    with pytest.raises(ContractError, match="no key column"):
        make({"enrich": {"path": path, "on": "city"}}).apply(pa.table({"city": ["x"]}))
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(InputFormatError, match="cannot read the reference table"):
        make({"enrich": {"path": str(bad), "on": "country"}}).apply(
            pa.table({"country": ["FR"]}))


# -- python -------------------------------------------------------------------------------------

PLUGIN = '''
import pyarrow as pa
import pyarrow.compute as pc


def even_only(batch):
    return batch.filter(pc.equal(pc.bit_wise_and(batch.column("n"), 1), 0))


def as_table(batch):
    table = pa.Table.from_batches([batch])
    return table.append_column("twice", pc.multiply(table.column("n"), 2))


def wrong(batch):
    return batch.to_pylist()


def more(batch):
    return pa.concat_batches([batch, batch])


def boom(batch):
    raise RuntimeError("plugin failed")
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "chunkwise_test_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "chunkwise_test_plugin"


def test_python_step_per_batch(plugin: str) -> None:
    table = pa.Table.from_batches([pa.record_batch({"n": [1, 2, 3]}),
                                   pa.record_batch({"n": [4, 5, 6]})])
    out, removed = make({"python": {"function": f"{plugin}:even_only"}}).apply(table)
    assert out.column("n").to_pylist() == [2, 4, 6]
    assert removed == 3
    out, removed = make({"python": {"function": f"{plugin}:as_table"}}).apply(table)
    assert out.column("twice").to_pylist() == [2, 4, 6, 8, 10, 12]
    assert removed == 0


def test_python_step_errors(plugin: str) -> None:
    table = pa.table({"n": [1, 2]})
    with pytest.raises(ContractError, match=r"transforms\[0\] \(python\).*returned list"):
        make({"python": {"function": f"{plugin}:wrong"}}).apply(table)
    with pytest.raises(ContractError, match="never add them"):
        make({"python": {"function": f"{plugin}:more"}}).apply(table)
    with pytest.raises(ContractError, match="cannot import 'no_such_module_xyz'"):
        make({"python": {"function": "no_such_module_xyz:f"}}).apply(table)
    with pytest.raises(ContractError, match="no function 'absent'"):
        make({"python": {"function": f"{plugin}:absent"}}).apply(table)
    with pytest.raises(RuntimeError, match="plugin failed") as info:
        make({"python": {"function": f"{plugin}:boom"}}).apply(table)
    assert any("transforms[0] (python)" in note for note in info.value.__notes__)


# -- the whole pipeline -------------------------------------------------------------------------


def test_output_schema(tmp_path: Path, plugin: str) -> None:
    path = write_reference(tmp_path, customers(), "countries.parquet")
    t = make(
        {"derive": {"name": "amount_cents", "type": "int64",
                    "expr": {"call": "multiply", "args": [{"field": "amount"},
                                                          {"literal": 100}]}}},
        {"dedupe": {"keys": ["order_id"]}},
        {"enrich": {"path": path, "on": "country", "columns": ["vat"]}},
        {"rename": {"order_id": "n"}},
        {"python": {"function": f"{plugin}:as_table"}},
        {"select": ["n", "twice", "amount_cents", "vat"]},
    )
    schema = t.output_schema(orders().schema)
    assert schema.names == ["n", "twice", "amount_cents", "vat"]
    assert [f.type for f in schema] == [pa.int64(), pa.int64(), pa.int64(), pa.float64()]
    out, removed = t.apply(orders())
    assert out.schema == schema
    assert out.column("vat").to_pylist() == [0.20, 0.19, None, 0.20]
    assert removed == 0


def test_orders_contract_example() -> None:
    contract = load_contract("contracts/orders.yaml")
    t = Transformer.from_contract(contract, uri=URI)
    out, removed = t.apply(orders())
    assert out.column("order_id").to_pylist() == [1, 4]  # cancelled, and null status
    assert out.column("amount_cents").to_pylist() == [150, None]
    assert removed == 2
    again, removed = t.apply(orders())
    assert again.num_rows == 0 and removed == 4  # every order_id repeats the first batch


def test_dedupe_of_a_validated_unique_column_keeps_no_keys() -> None:
    """orders.yaml declares order_id unique and not nullable: after validation (which rejects
    every repeat, keeping the first) its dedupe on order_id cannot drop a row, and holds no
    keys. Unvalidated batches still get the real dedupe."""
    contract = load_contract("contracts/orders.yaml")
    validated = Transformer.from_contract(contract, uri=URI, validated=True)
    validated.apply(orders())
    assert validated.state_bytes == 0
    plain = Transformer.from_contract(contract, uri=URI)
    plain.apply(orders())
    assert plain.state_bytes > 0


def test_dedupe_is_kept_when_an_earlier_step_could_change_the_key() -> None:
    contract = load_contract("contracts/orders.yaml")
    steps = [{"derive": {"name": "order_id", "expr": {"literal": 1}, "type": "int64"}},
             {"dedupe": {"keys": ["order_id"]}}]
    from pydantic import TypeAdapter

    from engine.contract.steps import Step

    parsed = [TypeAdapter(Step).validate_python(s) for s in steps]
    changed = contract.model_copy(update={"transforms": parsed})
    t = Transformer.from_contract(changed, uri=URI, validated=True)
    out, removed = t.apply(orders())
    assert out.num_rows == 1 and t.state_bytes > 0
