"""NdjsonReader: blank lines, bad lines, nested values, widening, new fields."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.config import ReadOptions
from engine.errors import InputFormatError
from engine.readers.base import Sample, SchemaWidening
from engine.readers.ndjson import NdjsonReader

BLOCKS = [16, 100, 4 << 20]


def read_all(data: bytes, widen: str = "continue", sample: bytes | None = None, **opts):
    reader = NdjsonReader("mem.ndjson", ReadOptions(**opts))
    head = Sample(sample, True, False) if sample is not None else Sample(data, True, True)
    schema = reader.infer_schema([head])
    chunks = list(reader.read(io.BytesIO(data), schema, widen=widen))
    tables = [c.table for c in chunks]  # "continue" widens mid-stream: promote earlier chunks
    table = pa.concat_tables(tables, promote_options="permissive") if chunks \
        else schema.empty_table()
    rejects = [r for c in chunks for r in c.rejects]
    assert sum(c.records for c in chunks) == table.num_rows + len(rejects)
    return table, rejects, reader


@pytest.mark.parametrize("block_size", BLOCKS)
def test_rows_and_nested_values(block_size):
    rows = [
        {"id": 1, "tags": ["a", "b"], "geo": {"lat": 1.5, "lon": 2.0}, "s": 'q"uote\\'},
        {"id": 2, "tags": [], "geo": {"lat": 3.0, "lon": 4.0}, "s": "café\n日本"},
    ]
    data = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode() + b"\n"
    table, rejects, _ = read_all(data, block_size=block_size)
    assert rejects == []
    assert table.to_pylist() == rows
    assert pa.types.is_struct(table.schema.field("geo").type)


@pytest.mark.parametrize("block_size", BLOCKS)
def test_bad_lines_are_rejected_with_record_numbers(block_size):
    lines = [b'{"a": 1}', b'{"a": tru}', b"", b'{"a": 3}', b"[1, 2]", b'{"a": 5}', b'{"a":']
    data = b"\n".join(lines) + b"\n"
    table, rejects, _ = read_all(data, block_size=block_size, sample=b'{"a": 1}\n')
    assert table.column("a").to_pylist() == [1, 3, 5]
    assert [r.record for r in rejects] == [2, 4, 6]
    assert [r.raw for r in rejects] == ['{"a": tru}', "[1, 2]", '{"a":']
    assert rejects[0].offset == data.index(b'{"a": tru}')


def test_widening_int_float_string_and_new_field():
    data = b'{"a": 1}\n{"a": 2.5}\n{"a": "x", "b": true}\n'
    reader = NdjsonReader("mem.ndjson", ReadOptions(block_size=12))
    schema = pa.schema([("a", pa.int64())])
    chunks = list(reader.read(io.BytesIO(data), schema, widen="continue"))
    assert [c.table.schema.field("a").type for c in chunks] == [pa.int64(), pa.float64(),
                                                                 pa.string()]
    assert chunks[-1].table.to_pylist() == [{"a": "x", "b": True}]
    assert [(w.column, w.to_type, w.record) for w in reader.widened] == [
        ("a", "double", 2), ("a", "string", 3), ("b", "bool", 3)]


def test_widening_restart_mode_raises():
    reader = NdjsonReader("mem.ndjson", ReadOptions())
    schema = pa.schema([("a", pa.int64())])
    with pytest.raises(SchemaWidening) as info:
        list(reader.read(io.BytesIO(b'{"a": 1}\n{"a": 1.5}\n'), schema))
    assert info.value.schema.field("a").type == pa.float64()


def test_object_in_a_string_column_keeps_its_json_text():
    data = b'{"a": "x"}\n{"a": {"k": 1}}\n'
    table, rejects, _ = read_all(data, sample=b'{"a": "x"}\n')
    assert rejects == []
    assert table.column("a").to_pylist() == ["x", '{"k": 1}']


def test_line_longer_than_limit():
    data = b'{"a": "' + b"x" * 4000 + b'"}\n'
    with pytest.raises(InputFormatError, match="max_record_bytes"):
        read_all(data, block_size=256, max_record_bytes=1024, sample=b'{"a": "x"}\n')


def test_no_objects_at_all():
    reader = NdjsonReader("mem.ndjson", ReadOptions())
    with pytest.raises(InputFormatError, match="no JSON object"):
        reader.infer_schema([Sample(b"not json\n", True, True)])


def test_missing_final_newline():
    table, _, _ = read_all(b'{"a": 1}\n{"a": 2}')
    assert table.column("a").to_pylist() == [1, 2]


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
@pytest.mark.parametrize("rows", [
    [{"id": 1, "n": [1, "a"]}, {"id": 2, "n": [2]}],
    [{"id": 1, "n": [2]}, {"id": 2, "n": [1, "a"]}],
    [{"id": 1, "n": [1, "a"]}],
    [{"id": 1, "n": [1]}, {"id": 2, "n": ["a"]}],
    [{"id": 1, "n": {"k": 1}}, {"id": 2, "n": {"k": "a"}}],
])
def test_a_value_arrow_cannot_type_is_json_text(tmp_path, fmt, rows):
    """Issue 14: these were rejects (or "no JSON object found" alone); valid JSON is kept."""
    from engine.run import transform

    src = tmp_path / f"mixed.{fmt}"
    body = ("\n".join(json.dumps(r) for r in rows) + "\n") if fmt == "ndjson" else json.dumps(rows)
    src.write_text(body)
    for block_size in (16, 1 << 20):
        out = tmp_path / f"out{block_size}.parquet"
        report = transform(str(src), str(out), block_size=block_size)
        assert report.rows_rejected == 0 and report.rows_out == len(rows)
        table = pq.read_table(out)
        assert table.schema.field("n").type == pa.string()
        assert [json.loads(v) for v in table.column("n").to_pylist()] == [r["n"] for r in rows]


def test_first_key_group_is_the_first_of_the_key_groups() -> None:
    import random

    from engine.readers import ndjson

    rng = random.Random(3)
    for _ in range(200):
        lines = [b"{" + b",".join(b'"k%d":1' % rng.randrange(40)
                                  for _ in range(rng.choice([0, 2, 900, 5200]))) + b"}"
                 for _ in range(rng.randrange(1, 14))]
        data = b"\n".join(lines)
        groups = ndjson._key_groups(data)
        assert ndjson._first_key_group(data) == (groups[0], b"\n".join(groups[1:]))


@pytest.mark.parametrize(("late", "column", "expected"), [
    (b'{"id":7,"v":1}', "v", pa.int64()),             # same keys and types: one parse
    (b'{"id":7,"v":1.5}', "v", pa.float64()),         # a wider value after the first group
    (b'{"id":7,"v":1,"new":"x"}', "new", pa.string()),  # a key the first group lacks
    (b'{"id":7,"v":{"a":1}}', "v", None),             # mixed kinds: each group's own schema
])
def test_inference_beyond_the_first_key_group(late: bytes, column: str,
                                             expected: pa.DataType | None) -> None:
    from engine.config import MAX_COLUMNS
    from engine.readers.ndjson import NdjsonReader

    first = b'{"id":1,"v":2}\n' * (MAX_COLUMNS // 2 + 10)  # more colons than one group holds
    schemas, table = NdjsonReader._infer(first + late + b"\n")
    assert table is None
    # the whole input: the same schemas, and the parse of all of it when one schema fits it
    entire, table = NdjsonReader._infer(first + late + b"\n", entire=True)
    assert entire == schemas
    assert (table is not None) == (len(schemas) == 1)
    if table is not None:
        assert table.num_rows == MAX_COLUMNS // 2 + 11 and table.schema.equals(schemas[0])
    if expected is None:
        assert {str(s.field("v").type) for s in schemas} >= {"int64", "struct<a: int64>"}
    else:
        assert any(column in s.names and s.field(column).type == expected for s in schemas)
        if late == b'{"id":7,"v":1}':
            assert len(schemas) == 1


def test_a_whole_input_is_parsed_once_and_converted_as_parsing_it_again_would():
    from engine.config import MAX_COLUMNS

    rows = b"".join(b'{"id":%d,"v":%d.5,"t":"2025-01-0%dT10:00:00"}\n' % (i, i, i % 9 + 1)
                    for i in range(MAX_COLUMNS))  # more than one key group
    data = rows + b'null\n{"id":1,"v":NaN,"t":"2025-01-01T10:00:00"}\n' + rows
    table, rejects, reader = read_all(data)
    assert reader._whole is None  # inference's parse was taken, not kept
    again, again_rejects, _ = read_all(data, sample=data[:-1])  # not whole: parsed again
    assert table.equals(again)
    assert [(r.record, r.offset, r.reason) for r in rejects] == \
        [(r.record, r.offset, r.reason) for r in again_rejects]
    assert [r.record for r in rejects] == [MAX_COLUMNS + 1, MAX_COLUMNS + 2]


@pytest.mark.parametrize("data", [
    b'{"id":1,"t":"2025-01-02","v":1.5}\n{"id":2,"t":"2025-01-03","v":2}\n',  # dates
    b'{"id":1,"t":"2025-01-02T10:00:00"}\n{"id":2,"t":"2025-01-03T00:00:00"}\n',
    b'{"id":1,"s":{"a":[1,2]}}\n{"id":2,"s":null}\n',
    b'{"id":1,"v":NaN}\n{"id":2,"v":1.5}\n',  # a refused value: no table to take
])
def test_an_input_within_the_first_key_group_is_parsed_once(data):
    from engine.readers.json_common import parse_json_objects

    schemas, table = NdjsonReader._infer(data, entire=True)
    if b"NaN" in data:
        assert table is None
        return
    assert len(schemas) == 1
    assert table.equals(parse_json_objects(data, schemas[0], fields="error"))
    if b'-02"' in data:  # dates alone are dates in either parse
        assert table.schema.field("t").type == pa.date32()
