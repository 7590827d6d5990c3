"""JsonArrayReader: numpy splitter, guessed separators, json_path, fallbacks, errors, widening."""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import ReadOptions
from engine.errors import InputFormatError
from engine.readers import json_split
from engine.readers.base import Chunk, Sample, SchemaWidening
from engine.readers.json_array import JsonArrayReader
from engine.readers.json_split import path_keys

BLOCKS = [64, 1000, 1 << 20]


@pytest.fixture(params=["guess", "exact"])
def split(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with guessed separators, and again with the exact splitter only."""
    if request.param == "exact":
        monkeypatch.setattr(json_split, "guess_elements", lambda a, scratch: None)
    return request.param


def read_chunks(
    data: bytes, *, schema: pa.Schema | None = None, widen: str = "restart", **opts: Any
) -> tuple[list[Chunk], JsonArrayReader]:
    reader = JsonArrayReader("mem.json", ReadOptions(**opts))
    if schema is None:
        schema = reader.infer_schema([Sample(data, True, True)])
    chunks = list(reader.read(io.BytesIO(data), schema, widen=widen))
    for chunk in chunks:
        assert chunk.records == chunk.table.num_rows + len(chunk.rejects)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.first_record == before.first_record + before.records
        assert after.offset > before.offset
    return chunks, reader


def read_rows(data: bytes, **opts: Any) -> list[dict[str, Any]]:
    chunks, _ = read_chunks(data, **opts)
    assert not [r for c in chunks for r in c.rejects]
    return [row for c in chunks for row in c.table.to_pylist()]


def with_all_keys(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` as Arrow returns them: every column in every row, missing values as None."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k) for k in names} for r in rows]


ORDERS = [
    {"id": i, "amount": i * 1.25, "country": ["DE", "US", "JP"][i % 3], "qty": i % 7,
     "note": ["plain", 'say "hi", ok', "back\\slash", "[1, {2}]", "日本語 ✓ café", ""][i % 6]}
    for i in range(200)
]


# ---------------------------------------------------------------------------------------------
# Layouts and block boundaries


@pytest.mark.parametrize("block_size", BLOCKS)
@pytest.mark.parametrize("layout", [{}, {"indent": 2}, {"separators": (",", ":")},
                                    {"indent": "\t"}])
def test_array_layouts_across_block_sizes(split, block_size, layout):
    data = json.dumps(ORDERS, ensure_ascii=False, **layout).encode()
    assert read_rows(data, block_size=block_size) == ORDERS


@pytest.mark.parametrize("block_size", BLOCKS)
def test_one_element_per_line_as_written_by_hand(split, block_size):
    data = ("[\n" + ",\n".join(json.dumps(r) for r in ORDERS) + "\n]\n").encode()
    assert read_rows(data, block_size=block_size) == ORDERS


def test_chunks_start_at_element_boundaries(split):
    data = json.dumps(ORDERS, indent=2).encode()
    chunks, _ = read_chunks(data, block_size=500)
    assert len(chunks) > 10
    for chunk in chunks:
        element = data[chunk.offset:].lstrip()
        first = ORDERS[chunk.first_record - 1]
        assert json.JSONDecoder().raw_decode(element.decode())[0] == first


@pytest.mark.parametrize("block_size", BLOCKS)
def test_escapes_and_structural_bytes_inside_strings(split, block_size):
    rows = [
        {"s": 'a"b', "t": "x"},
        {"s": "a\\", "t": "ends in one backslash"},
        {"s": "a\\\\", "t": "ends in two backslashes"},
        {"s": '\\"', "t": "backslash quote"},
        {"s": "},{", "t": "}, {"},
        {"s": '"},{"s": "fake"}, {"', "t": "a fake separator inside a string"},
        {"s": "[[[", "t": "]]]}}}"},
        {"s": "{\n}", "t": ",,,,"},
        {"s": "\\u0041 is not A here", "t": "\u0000\u001f control"},
    ]
    for ensure_ascii in (True, False):
        data = json.dumps(rows, ensure_ascii=ensure_ascii).encode()
        assert read_rows(data, block_size=block_size) == rows


@pytest.mark.parametrize("block_size", BLOCKS)
def test_nested_objects_lists_and_unicode(split, block_size):
    rows = [
        {"id": 1, "geo": {"lat": 1.5, "lon": -2.0}, "tags": ["a", "b"], "name": "Zoë 日本 😀"},
        {"id": 2, "geo": {"lat": 3.0, "lon": 4.5}, "tags": [], "name": "ascii"},
        {"id": 3, "geo": {"lat": 0.5, "lon": 0.0}, "tags": ["c"], "name": "\u2028 sep"},
    ] * 20
    data = json.dumps(rows, ensure_ascii=False, indent=2).encode()
    chunks, _ = read_chunks(data, block_size=block_size)
    table = pa.concat_tables(c.table for c in chunks)
    assert pa.types.is_struct(table.schema.field("geo").type)
    assert pa.types.is_list(table.schema.field("tags").type)
    assert table.to_pylist() == rows


@pytest.mark.parametrize("block_size", [64, 1 << 20])
def test_nested_arrays_of_objects_defeat_the_guess_safely(split, block_size):
    rows = [{"id": i, "items": [{"sku": f"s{i}", "n": 1}, {"sku": "x", "n": 2}]} for i in range(50)]
    for layout in ({}, {"indent": 2}, {"separators": (",", ":")}):
        data = json.dumps(rows, **layout).encode()
        assert read_rows(data, block_size=block_size) == rows


def test_timestamps_are_inferred():
    rows = [{"at": "2024-06-05T12:41:03Z", "n": 1}, {"at": "2024-02-14T13:04:15Z", "n": 2}]
    chunks, _ = read_chunks(json.dumps(rows).encode())
    assert pa.types.is_timestamp(chunks[0].table.schema.field("at").type)


@pytest.mark.parametrize("data", [b"[]", b"  [ \n ]  \n", b"\n[\n]"])
def test_empty_array_gives_no_rows(split, data):
    chunks, _ = read_chunks(data, block_size=64)
    assert sum(c.table.num_rows for c in chunks) == 0


# ---------------------------------------------------------------------------------------------
# json_path


@pytest.mark.parametrize("block_size", [1, 7, 64, 1 << 20])
def test_json_path_with_siblings_before_and_after(split, block_size):
    rows = ORDERS[:20]
    doc = {"meta": {"x": [1, 2], "s": "data: [not this]", "data": "no"}, "data": rows,
           "tail": "]", "more": [{"a": "}"}, {"b": '\\"]'}]}
    for layout in ({}, {"indent": 2}):
        data = json.dumps(doc, **layout).encode()
        assert read_rows(data, block_size=block_size, json_path="data.item") == rows


def test_deeper_json_path(split):
    rows = [{"a": i} for i in range(30)]
    doc = {"status": "ok", "result": {"count": 30, "rows": rows, "next": None}}
    data = json.dumps(doc, indent=2).encode()
    assert read_rows(data, block_size=64, json_path="result.rows.item") == rows


def test_json_path_key_with_escapes():
    doc = {'we"ird': 1, "d\u00e9j\u00e0": [{"a": 1}]}
    data = json.dumps(doc).encode()
    assert read_rows(data, json_path="d\u00e9j\u00e0.item") == [{"a": 1}]


@pytest.mark.parametrize(("doc", "message"), [
    ({"other": [{"a": 1}]}, "'data' is not in the document"),
    ({"data": {"a": 1}}, "is not an array"),
    ({"data": [1], "x": {"data": []}}, None),
])
def test_json_path_errors(doc, message):
    data = json.dumps(doc).encode()
    if message is None:
        assert read_rows(data, json_path="data.item") == [{"value": 1}]
        return
    with pytest.raises(InputFormatError, match=message):
        read_chunks(data, json_path="data.item")


def test_json_path_needs_an_object_document():
    with pytest.raises(InputFormatError, match="needs a JSON object"):
        read_chunks(b'[{"a": 1}]', json_path="data.item")


def test_json_path_not_found_within_max_record_bytes():
    data = json.dumps({"meta": "x" * 5000, "data": [{"a": 1}]}).encode()
    reader = JsonArrayReader("mem.json", ReadOptions(json_path="data.item", block_size=64,
                                                     max_record_bytes=1000))
    with pytest.raises(InputFormatError, match="not found in the first 1000 bytes"):
        list(reader.read(io.BytesIO(data), pa.schema([("a", pa.int64())])))


def test_path_keys():
    assert path_keys(None) == path_keys("item") == []
    assert path_keys("result.rows.item") == ["result", "rows"]
    with pytest.raises(ValueError, match="must name an array"):
        path_keys("data")
    with pytest.raises(InputFormatError, match="must name an array"):
        JsonArrayReader("mem.json", ReadOptions(json_path="data..item"))


# ---------------------------------------------------------------------------------------------
# Elements that are not objects


@pytest.mark.parametrize("block_size", BLOCKS)
def test_array_of_scalars_becomes_a_value_column(split, block_size):
    values = list(range(300))
    chunks, _ = read_chunks(json.dumps(values).encode(), block_size=block_size)
    table = pa.concat_tables(c.table for c in chunks)
    assert table.schema == pa.schema([("value", pa.int64())])
    assert table.column("value").to_pylist() == values


def test_mixed_scalars_become_json_text():
    data = b'[1, 2.5, "x", null, [1, 2], true]'
    assert read_rows(data) == [{"value": v} for v in ["1", "2.5", "x", None, "[1, 2]", "true"]]


@pytest.mark.parametrize("block_size", BLOCKS)
def test_a_value_among_objects_is_a_reject(split, block_size):
    """Issue 14: a scalar among objects added a ``value`` column, a ``null`` crashed pyarrow."""
    elements = [b'{"a": 1}', b"5", b"null", b'{"a": 2}', b'"x"', b"true", b"[1]", b"[]",
                b'{"a": 3}']
    data = b"[" + b", ".join(elements) + b"]"
    schema = pa.schema([("a", pa.int64())])
    chunks, _ = read_chunks(data, schema=schema, block_size=block_size)
    rows = [r for c in chunks for r in c.table.to_pylist()]
    rejects = [r for c in chunks for r in c.rejects]
    assert rows == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert [(r.record, r.reason) for r in rejects] == [
        (2, "not a JSON object: a top-level number"), (3, "not a JSON object: a top-level null"),
        (5, "not a JSON object: a top-level string"),
        (6, "not a JSON object: a top-level boolean"),
        (7, "not a JSON object: a top-level array"), (8, "not a JSON object: a top-level array")]
    reader = JsonArrayReader("mem.json", ReadOptions())
    assert reader.infer_schema([Sample(data, True, True)]) == schema


@pytest.mark.parametrize("first", [b"null", b"1", b'"x"', b"[]"])
def test_the_first_element_decides_an_array_of_values(first):
    """An array that starts with a value is read as values, its objects included."""
    data = b"[" + first + b', {"a": 1}, 2]'
    assert [list(r) for r in read_rows(data)] == [["value"]] * 3
    assert read_rows(data)[1] == {"value": '{"a": 1}'}


# ---------------------------------------------------------------------------------------------
# Bad elements and bad documents


@pytest.mark.parametrize("block_size", BLOCKS)
def test_bad_elements_are_rejected_with_record_numbers(split, block_size):
    elements = [b'{"a": 1}', b'{"a": tru}', b'{"a": 3}', b"", b'{"a": 5}{"a": 6}', b'{"a": 7}',
                b'{"a": "x" "y"}', b'{"a": 9}']
    data = b"[" + b",\n ".join(elements) + b"]"
    schema = pa.schema([("a", pa.int64())])
    chunks, _ = read_chunks(data, schema=schema, block_size=block_size)
    rows = [r for c in chunks for r in c.table.to_pylist()]
    rejects = [r for c in chunks for r in c.rejects]
    assert rows == [{"a": 1}, {"a": 3}, {"a": 7}, {"a": 9}]
    assert [r.record for r in rejects] == [2, 4, 5, 7]
    assert [r.raw for r in rejects] == ['{"a": tru}', "", '{"a": 5}{"a": 6}', '{"a": "x" "y"}']
    assert rejects[0].offset == data.index(b'{"a": tru}')
    assert "invalid JSON" in rejects[0].reason
    assert "empty array element" in rejects[1].reason
    assert sum(c.records for c in chunks) == len(elements)


@pytest.mark.parametrize("block_size", BLOCKS)
def test_missing_comma_between_objects_is_a_reject(split, block_size):
    data = b'[{"a": 1}, {"a": 5}{"a": 6}, {"a": 7}, {"a": 8} {"a": 9}]'
    chunks, _ = read_chunks(data, schema=pa.schema([("a", pa.int64())]), block_size=block_size)
    assert [r for c in chunks for r in c.table.to_pylist()] == [{"a": 1}, {"a": 7}]
    assert [(r.record, r.raw) for c in chunks for r in c.rejects] == [
        (2, '{"a": 5}{"a": 6}'), (4, '{"a": 8} {"a": 9}')]


def test_trailing_comma_is_a_reject():
    chunks, _ = read_chunks(b'[{"a": 1}, {"a": 2},]', schema=pa.schema([("a", pa.int64())]))
    assert [r.record for c in chunks for r in c.rejects] == [3]


def test_a_bad_element_among_many_keeps_the_rest(split):
    rows = [{"a": i, "s": "x" * (i % 13)} for i in range(500)]
    text = json.dumps(rows).replace('{"a": 250,', '{"a": 250 ,,')
    chunks, _ = read_chunks(text.encode(), block_size=1 << 20,
                            schema=pa.schema([("a", pa.int64()), ("s", pa.string())]))
    got = [r for c in chunks for r in c.table.to_pylist()]
    assert got == rows[:250] + rows[251:]
    assert [r.record for c in chunks for r in c.rejects] == [251]


@pytest.mark.parametrize("data", [
    b'[{"a": 1}, {"a": 2}',
    b'[{"a": 1}, {"a": 2},',
    b'[{"a": 1}, {"a": "x',
    b'[{"a": 1}, {"a": "x\\"}]',
    b"[",
    b'{"data": [{"a": 1}]',
    b'{"data": [{"a": 1}], "tail": "]}',
    b'{"data": [{"a": 1}], "tail": "\\"}',
])
@pytest.mark.parametrize("block_size", [1, 5, 64, 1 << 20])
def test_truncated_documents_are_errors(data, block_size):
    path = "data.item" if data.startswith(b"{") else None
    with pytest.raises(InputFormatError, match="unterminated JSON document"):
        read_chunks(data, schema=pa.schema([("a", pa.int64())]), block_size=block_size,
                    json_path=path)


@pytest.mark.parametrize("block_size", [1, 3, 64, 1 << 20])
def test_tail_strings_with_escapes_across_block_boundaries(block_size):
    doc = b'{"data": [{"a": 1}], "t": "x\\\\\\"}]\\\\", "u": ["}", {"v": "\\\\"}]}\n'
    assert json.loads(doc)["t"] == 'x\\"}]\\'
    assert read_rows(doc, block_size=block_size, json_path="data.item") == [{"a": 1}]


@pytest.mark.parametrize(("data", "message"), [
    (b'{"a": 1}', "top-level value is an object.*--json-path.*--format ndjson"),
    (b'{"a": 1}\n{"a": 2}\n', "top-level value is an object"),
    (b"42", "top-level value is not an array"),
    (b"", "the input is empty"),
    (b"  \n\t ", "the input is empty"),
    (b'[{"a": 1}] [{"a": 2}]', "trailing data after the JSON document"),
    (b'{"data": [{"a": 1}]} x', "trailing data after the JSON document"),
    (b'[{"a": 1}}', "malformed JSON document"),
])
def test_documents_that_are_not_an_array_of_objects(data, message):
    path = "data.item" if data.startswith(b'{"data"') else None
    reader = JsonArrayReader("mem.json", ReadOptions(json_path=path))
    with pytest.raises(InputFormatError, match=message):
        list(reader.read(io.BytesIO(data), pa.schema([("a", pa.int64())])))


def test_element_longer_than_max_record_bytes(split):
    rows = [{"a": 1}, {"a": 2, "big": "x" * 5000}, {"a": 3}]
    data = json.dumps(rows).encode()
    for block_size in (64, 1 << 20):
        with pytest.raises(InputFormatError, match="longer than max_record_bytes") as info:
            read_chunks(data, schema=pa.schema([("a", pa.int64())]), block_size=block_size,
                        max_record_bytes=1000)
        assert info.value.record == 2


def test_unterminated_string_is_bounded_by_max_record_bytes():
    data = b'[{"a": "' + b"x" * 10_000
    with pytest.raises(InputFormatError, match="longer than max_record_bytes"):
        read_chunks(data, schema=pa.schema([("a", pa.string())]), block_size=64,
                    max_record_bytes=1000)


# ---------------------------------------------------------------------------------------------
# Widening


def widening_data() -> bytes:
    rows = [{"a": i, "b": "x"} for i in range(40)] + [{"a": 2.5, "b": "y"}]
    rows += [{"a": i, "b": "z"} for i in range(40)] + [{"a": "text", "b": "w"}]
    return json.dumps(rows).encode()


def test_widening_restart_raises_until_the_schema_fits(split):
    data = widening_data()
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    seen = []
    while True:
        try:
            chunks, _ = read_chunks(data, schema=schema, block_size=200)
            break
        except SchemaWidening as exc:
            seen.append([(c.column, c.from_type, c.to_type, c.record) for c in exc.changes])
            schema = exc.schema
    assert seen == [[("a", "int64", "double", 41)], [("a", "double", "string", 82)]]
    table = pa.concat_tables(c.table for c in chunks)
    assert table.column("a").to_pylist()[40:42] == ["2.5", "0"]
    assert table.column("a").to_pylist()[-1] == "text"


def test_widening_continue_gives_one_table(split):
    data = widening_data()
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    chunks, reader = read_chunks(data, schema=schema, widen="continue", block_size=200)
    assert [(w.column, w.to_type, w.record) for w in reader.widened] == [
        ("a", "double", 41), ("a", "string", 82)]
    final = chunks[-1].table.schema
    table = pa.concat_tables(c.table.cast(final) for c in chunks)
    expected = [str(r["a"]) for r in json.loads(data)]
    assert table.column("a").to_pylist() == expected
    assert table.num_rows == 82


def test_new_field_widens(split):
    data = json.dumps([{"a": 1}] * 50 + [{"a": 2, "b": True}]).encode()
    schema = pa.schema([("a", pa.int64())])
    with pytest.raises(SchemaWidening) as info:
        read_chunks(data, schema=schema, block_size=1 << 20)
    assert info.value.schema == pa.schema([("a", pa.int64()), ("b", pa.bool_())])
    assert [(c.column, c.from_type, c.record) for c in info.value.changes] == [
        ("b", "absent", 51)]


# ---------------------------------------------------------------------------------------------
# Schema inference


def test_infer_schema_from_a_head_sample():
    rows = [{"a": i, "b": None, "c": 1.5, "d": {"x": "y"}} for i in range(100)]
    data = json.dumps(rows, indent=2).encode()
    reader = JsonArrayReader("mem.json", ReadOptions())
    schema = reader.infer_schema([Sample(data[:700], True, False),
                                  Sample(data[2000:3000], False, False)])
    assert schema == pa.schema([("a", pa.int64()), ("b", pa.string()), ("c", pa.float64()),
                                ("d", pa.struct([("x", pa.string())]))])


def test_infer_schema_skips_bad_elements_and_scalars():
    reader = JsonArrayReader("mem.json", ReadOptions())
    schema = reader.infer_schema([Sample(b'[{"a": 1}, {"a": tru}, 3, {"b": "x"}]', True, True)])
    assert schema == pa.schema([("a", pa.int64()), ("b", pa.string())])


def test_infer_schema_when_the_array_starts_past_the_sample():
    data = json.dumps({"meta": "m" * 100, "data": [{"a": 1}]}).encode()
    reader = JsonArrayReader("mem.json", ReadOptions(json_path="data.item"))
    schema = reader.infer_schema([Sample(data[:50], True, False)])
    assert schema == pa.schema([])
    with pytest.raises(SchemaWidening):
        list(reader.read(io.BytesIO(data), schema))


# ---------------------------------------------------------------------------------------------
# Property: whatever json.dumps writes reads back equal

TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from('"\\[]{},:/ \n\t'),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=12,
)
COLUMNS = {"i": pa.int64(), "j": pa.int64(), "f": pa.float64(), "s": pa.string(),
           "t": pa.string()}
VALUES = {
    "i": st.integers(-(2**63), 2**63 - 1), "j": st.integers(-5, 5),
    "f": st.floats(allow_nan=False, allow_infinity=False), "s": TEXT, "t": TEXT,
}
ROW = st.fixed_dictionaries({}, optional={k: st.one_of(st.none(), v) for k, v in VALUES.items()})
LAYOUTS = [{}, {"indent": 2}, {"separators": (",", ":")}, {"indent": 0}]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, max_size=40), layout=st.sampled_from(LAYOUTS),
       ascii_only=st.booleans(), block_size=st.sampled_from([16, 64, 257, 1 << 20]))
def test_property_round_trip(rows, layout, ascii_only, block_size):
    data = json.dumps(rows, ensure_ascii=ascii_only, **layout).encode()
    schema = pa.schema(list(COLUMNS.items()))
    got = read_rows(data, schema=schema, block_size=block_size)
    assert got == [{k: r.get(k) for k in COLUMNS} for r in rows]


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({"n": st.integers(0, 9), "s": TEXT}), min_size=1,
                     max_size=30),
       block_size=st.sampled_from([16, 64, 1 << 20]))
def test_property_exact_splitter_alone(rows, block_size):
    data = json.dumps(rows, ensure_ascii=False).encode()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(json_split, "guess_elements", lambda a, scratch: None)
        got = read_rows(data, schema=pa.schema([("n", pa.int64()), ("s", pa.string())]),
                        block_size=block_size)
    assert got == with_all_keys(rows)
