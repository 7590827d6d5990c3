"""CsvReader: quoting, line endings, BOM, encodings, null markers, ragged rows, widening."""

from __future__ import annotations

import io
import random

import pyarrow as pa
import pytest

from engine.config import ReadOptions
from engine.errors import InputFormatError, SchemaError
from engine.readers.base import Sample, SchemaWidening
from engine.readers.csv import (
    _COUNT_SLICE,
    _ZEROS_SLICE,
    CsvReader,
    count_byte,
    may_hold_leading_zeros,
    quote_aware_cut,
)
from engine.readers.streams import utf8_stream

BLOCKS = [7, 64, 4 << 20]


def read_all(data: bytes, widen: str = "restart", **opts):
    options = ReadOptions(**opts)
    reader = CsvReader("mem.csv", options)
    text = utf8_stream(io.BytesIO(data), options.encoding, "mem.csv").read()
    schema = reader.infer_schema([Sample(text, True, True)])
    stream = utf8_stream(io.BytesIO(data), options.encoding, "mem.csv")
    chunks = list(reader.read(stream, schema, widen=widen))
    table = pa.concat_tables([c.table for c in chunks]) if chunks else schema.empty_table()
    rejects = [r for c in chunks for r in c.rejects]
    assert sum(c.records for c in chunks) == table.num_rows + len(rejects)
    return table, rejects, chunks, reader


@pytest.mark.parametrize(
    ("buf", "expected"),
    [
        (b"a,b\n1,2\n", 8),
        (b"a,b\n1,2", 4),
        (b'a,"b\nc"\n1,2', 8),
        (b'a,"b\nc', 0),
        (b'"x""\ny"\n', 8),
        (b"no newline", 0),
    ],
)
def test_quote_aware_cut(buf, expected):
    assert quote_aware_cut(buf) == expected


@pytest.mark.parametrize("size", [0, 1, _COUNT_SLICE - 1, _COUNT_SLICE, 3 * _COUNT_SLICE + 17])
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_count_byte_matches_bytes_count(size, kind):
    rng = random.Random(size)
    data = bytes(rng.choice(b'ab"\n') for _ in range(size))
    buf = kind(bytearray(data)) if kind is memoryview else kind(data)
    for start, end in [(0, None), (0, size), (size // 3, size - size // 5), (5, 5)]:
        start, stop = min(start, size), size if end is None else min(end, size)
        assert count_byte(buf, b'"', start, end if end is None else stop) == \
            data.count(b'"', start, stop)


@pytest.mark.parametrize("block_size", BLOCKS)
def test_quoted_newlines_commas_and_doubled_quotes(block_size):
    data = (
        b'id,note\n1,"hello, world"\n2,"line one\nline two"\n3,"she said ""hi"""\n'
        b'4,"multi\n\nblank"\n5,plain\n'
    )
    table, rejects, _, _ = read_all(data, block_size=block_size)
    assert rejects == []
    assert table.column("note").to_pylist() == [
        "hello, world", "line one\nline two", 'she said "hi"', "multi\n\nblank", "plain",
    ]
    assert table.column("id").to_pylist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("block_size", BLOCKS)
def test_crlf_and_bom(block_size):
    data = b"\xef\xbb\xbfid,name\r\n1,caf\xc3\xa9\r\n2,\xe6\x97\xa5\xe6\x9c\xac\r\n"
    table, _, _, _ = read_all(data, block_size=block_size)
    assert table.schema.names == ["id", "name"]
    assert table.column("name").to_pylist() == ["café", "日本"]


def test_no_trailing_newline():
    table, _, _, _ = read_all(b"a,b\n1,2\n3,4")
    assert table.to_pylist() == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]


def test_other_delimiter_and_quote():
    data = b"a;b\n1;'x;y'\n2;'it''s'\n"
    table, _, _, _ = read_all(data, delimiter=";", quote_char="'")
    assert table.column("b").to_pylist() == ["x;y", "it's"]


def test_no_header_generates_names():
    table, _, _, _ = read_all(b"1,x\n2,y\n", header=False)
    assert table.schema.names == ["column_1", "column_2"]
    assert table.num_rows == 2


def test_no_header_with_names():
    table, _, _, _ = read_all(b"1,x\n2,y\n", header=False, column_names=("id", "v"))
    assert table.schema.names == ["id", "v"]


def test_duplicate_and_empty_header_names():
    table, _, _, _ = read_all(b"a,a,\n1,2,3\n")
    assert table.schema.names == ["a", "a_2", "column_3"]


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-16"])
def test_other_encodings(encoding):
    data = "id,city\n1,Zürich\n2,Besançon\n".encode(encoding)
    table, _, _, _ = read_all(data, encoding=encoding)
    assert table.column("city").to_pylist() == ["Zürich", "Besançon"]


def test_invalid_utf8_is_input_format_error():
    with pytest.raises(InputFormatError, match="UTF-8") as info:
        read_all(b"a,b\n1,ok\n2,\xff\xfe bad\n")
    assert info.value.record == 2


def test_invalid_utf8_after_inference_is_input_format_error():
    data = b"a,b\n" + b"1,ok\n" * 20 + b"2,\xff\xfe bad\n"
    reader = CsvReader("mem.csv", ReadOptions(block_size=32))
    schema = reader.infer_schema([Sample(data[:30], True, False)])
    with pytest.raises(InputFormatError, match="UTF-8"):
        list(reader.read(io.BytesIO(data), schema))


def test_default_null_markers_keep_strings():
    table, _, _, _ = read_all(b"n,country\n1,NA\nNA,FR\n,DE\n")
    assert table.column("country").to_pylist() == ["NA", "FR", "DE"]
    assert table.column("n").to_pylist() == [1, None, None]


def test_explicit_null_markers_apply_to_strings():
    table, _, _, _ = read_all(b"n,s\n1,-\n-,x\n", null_values=("-",))
    assert table.to_pylist() == [{"n": 1, "s": None}, {"n": None, "s": "x"}]


@pytest.mark.parametrize("block_size", BLOCKS)
def test_ragged_rows_are_rejects_with_record_numbers(block_size):
    data = b"a,b,c\n1,2,3\n4,5\n6,7,8\n9,10,11,12\n13,14,15\n"
    table, rejects, _, _ = read_all(data, block_size=block_size)
    assert table.column("a").to_pylist() == [1, 6, 13]
    assert [(r.record, r.raw) for r in rejects] == [(2, "4,5"), (4, "9,10,11,12")]
    assert all("fields" in r.reason for r in rejects)
    assert rejects[0].offset == data.index(b"4,5")


def test_unterminated_quote_at_eof():
    with pytest.raises(InputFormatError, match="unterminated"):
        read_all(b'a,b\n1,"open\n2,3\n')


def test_record_longer_than_limit():
    data = b'a,b\n1,"' + b"x" * 5000 + b"\n"
    with pytest.raises(InputFormatError, match="max_record_bytes"):
        read_all(data, block_size=256, max_record_bytes=1024)


def test_header_mismatch_is_schema_error():
    reader = CsvReader("mem.csv", ReadOptions())
    schema = pa.schema([("x", pa.int64())])
    with pytest.raises(SchemaError, match="header"):
        list(reader.read(io.BytesIO(b"a\n1\n"), schema))


def test_widening_restart_and_continue():
    data = b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(50)) + b"2.5,y\nabc,z\n"
    options = ReadOptions(block_size=64)
    reader = CsvReader("mem.csv", options)
    schema = reader.infer_schema([Sample(data[:40], True, False)])
    assert schema.field("a").type == pa.int64()
    with pytest.raises(SchemaWidening) as info:
        list(reader.read(io.BytesIO(data), schema))
    assert info.value.changes[0].column == "a"
    chunks = list(reader.read(io.BytesIO(data), schema, widen="continue"))
    assert sum(c.table.num_rows for c in chunks) == 52
    assert [(w.column, w.to_type) for w in reader.widened] == [("a", "string")]
    assert reader.widened[0].record <= 51


def test_inference_across_samples():
    head = b"a,b\n1,x\n2,y\n"
    middle = b"partial\n3.5,z\n4,w\n"
    reader = CsvReader("mem.csv", ReadOptions())
    schema = reader.infer_schema([Sample(head, True, False), Sample(middle, False, False)])
    assert schema.field("a").type == pa.float64()


def test_empty_column_infers_string():
    table, _, _, _ = read_all(b"a,b\n1,\n2,\n")
    assert table.schema.field("b").type == pa.string()


# -- CR-only line endings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("buf", "expected"),
    [(b"a,b\r1,2\r", 8), (b"a,b\r1,2", 4), (b'a,"b\rc"\r1,2', 8), (b'a,"b\rc', 0),
     (b"a,b\r\n1,2\r\n", 9)],  # CRLF cut at its CR leaves the LF to the next piece: pyarrow
)                               # skips that empty line
def test_quote_aware_cut_at_cr(buf, expected):
    assert quote_aware_cut(buf, newline=b"\r") == expected


@pytest.mark.parametrize("block_size", BLOCKS)
def test_cr_only_line_endings_are_records(block_size):
    data = b'id,note\r1,"two\rlines"\r2,"has\nLF"\r3,plain\r'
    table, rejects, chunks, _ = read_all(data, block_size=block_size)
    assert rejects == []
    assert table.to_pylist() == [{"id": 1, "note": "two\rlines"}, {"id": 2, "note": "has\nLF"},
                                 {"id": 3, "note": "plain"}]
    if block_size == 7:
        assert len(chunks) >= 3  # cut at CRs, not read as one record


@pytest.mark.parametrize(("data", "newline"), [
    (b"a,b\r1,2\r", b"\r"), (b"a,b\r\n1,2\r\n", b"\n"), (b"a,b\n1,2\r3,4\n", b"\n"),
    (b'"x\ry",b\n1,2\n', b"\n"),   # a CR inside the quoted header is data
    (b'"x\ny",b\r1,2\r', b"\r"),   # and so is an LF
    (b"a,b\r", b"\r"),             # a header alone, ended by a CR
])
def test_the_first_record_decides_the_line_break(data, newline):
    reader = CsvReader("mem.csv", ReadOptions())
    reader.infer_schema([Sample(data, True, True)])
    assert reader._newline == newline


def test_a_cr_at_the_end_of_a_block_waits_for_the_next_byte():
    reader = CsvReader("mem.csv", ReadOptions())
    assert reader._cut(bytearray(b"a,b\r"), 4) == 0  # CR or CRLF? no record until it is known
    assert reader._newline is None
    assert reader._cut(bytearray(b"a,b\r\n1,2\r\n"), 10) == 10
    assert reader._newline == b"\n"


def test_ragged_rows_in_a_cr_only_file_are_rejects_with_their_numbers():
    table, rejects, _, _ = read_all(b"a,b\r1,2\r3\r4,5,6\r7,8\r", block_size=7)
    assert table.to_pylist() == [{"a": 1, "b": 2}, {"a": 7, "b": 8}]
    assert [r.record for r in rejects] == [2, 3]


# -- leading zeros ------------------------------------------------------------------------------


def test_numbers_with_leading_zeros_infer_as_strings():
    table, _, _, reader = read_all(
        b"zip,n,padded,plain,neg\n08123,1,01.5,0,-0\n00501,2,2.5,0.5,-007\n")
    assert table.schema.field("zip").type == pa.string()
    assert table.schema.field("padded").type == pa.string()
    assert table.schema.field("neg").type == pa.string()
    assert table.schema.field("n").type == pa.int64()
    assert table.schema.field("plain").type == pa.float64()
    assert table.column("zip").to_pylist() == ["08123", "00501"]
    assert [(i.column, i.type) for i in reader.inferences] == [
        ("zip", "string"), ("padded", "string"), ("neg", "string")]
    assert "'08123'" in reader.inferences[0].reason


@pytest.mark.parametrize("value", [b"0", b"-0", b"+0", b"0.5", b"-0.25", b"0e3", b" 0", b"10"])
def test_zero_alone_or_before_a_point_is_a_number(value):
    table, _, _, reader = read_all(b"v\n" + value + b"\n1\n")
    assert pa.types.is_integer(table.schema.field("v").type) or \
        pa.types.is_floating(table.schema.field("v").type)
    assert reader.inferences == []


@pytest.mark.parametrize("value", [b"00", b"007", b"-01", b"+05", b" 012 ", b'"0042"', b"00.0"])
def test_a_zero_before_a_digit_makes_text(value):
    table, _, _, reader = read_all(b"v,w\n1,x\n" + value + b",y\n")
    assert table.schema.field("v").type == pa.string()
    assert [i.column for i in reader.inferences] == ["v"]


@pytest.mark.parametrize("text", [
    b"08", b"1,08", b"1,-08", b"1, 08", b"1,  +08", b'1,"08"', b'1,"0"8',
    b'1," -08"', b"1\n08", b"1\r\n 08", b"x,1,0\n,-0,\n,,00",
])
def test_the_scan_for_leading_zeros_misses_no_field_that_has_them(text):
    import re

    import pyarrow.csv as pacsv

    text += b"\n"
    table = pacsv.read_csv(pa.py_buffer(text), read_options=pacsv.ReadOptions(
        autogenerate_column_names=True), convert_options=pacsv.ConvertOptions(
        column_types={f"f{i}": pa.string() for i in range(4)}))
    fields = [v for column in table.columns for v in column.to_pylist() if v is not None]
    assert any(re.match(r"^\s*[+-]?0[0-9]", v) for v in fields)
    assert may_hold_leading_zeros(text, ",", b'"')


@pytest.mark.parametrize("text", [
    b"1,2025-01-01 09:30:00,-0.5,0\n", b"1,x 08,T09,x-08\n", b"0.5,0,+0,-0.25\n",
])
def test_the_scan_for_leading_zeros_passes_dates_times_and_plain_zeros(text):
    assert not may_hold_leading_zeros(text * 50_000, ",", b'"')  # several slices


@pytest.mark.parametrize("at", [3, _ZEROS_SLICE - 1, _ZEROS_SLICE, _ZEROS_SLICE + 1,
                                _ZEROS_SLICE + 2, 2 * _ZEROS_SLICE + 5])
def test_the_scan_for_leading_zeros_finds_one_at_every_slice_edge(at):
    filler = bytearray(b"12,x-09;\n" * (3 * _ZEROS_SLICE // 9))
    assert not may_hold_leading_zeros(bytes(filler), ",", b'"')
    filler[at:at + 3] = b",07"
    assert may_hold_leading_zeros(bytes(filler), ",", b'"')
    assert not may_hold_leading_zeros(bytes(filler), ";", b"")  # ",07" is in a field there


def test_a_whole_input_is_parsed_once_and_converted_as_parsing_it_again_would():
    data = b"id,zip,n,note\n1,8123,2.5,x\n2,501,3,\n3,4\n4,7,1e3,y\n"
    table, rejects, _, reader = read_all(data)
    again, again_rejects, _, _ = read_all(data, block_size=16)  # no whole-input parse: pieces
    assert table.equals(again)
    assert [(r.record, r.offset, r.reason) for r in rejects] == \
        [(r.record, r.offset, r.reason) for r in again_rejects] == \
        [(3, data.index(b"3,4"), "expected 4 fields, found 2")]
    assert reader._whole is None  # taken by the conversion, not kept


def test_a_whole_input_with_leading_zeros_or_a_null_column_is_parsed_again_as_text():
    table, _, _, _ = read_all(b"zip,empty,n\n08123,,1\n00501,,2\n")
    assert table.column("zip").to_pylist() == ["08123", "00501"]
    assert table.schema.field("empty").type == pa.string()


@pytest.mark.parametrize("name_bytes", [10, (1 << 16) - 6, (1 << 16) - 5, (1 << 16) - 4,
                                        (1 << 16) + 3, 70_000])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_a_header_near_or_beyond_the_first_64_kib_is_read_whole(name_bytes, newline):
    name = "x" * (name_bytes - 8)
    header = b'"' + name.encode() + b'\n",b' + newline  # a quoted line break in the name
    data = header + b"1,2" + newline + b"3,4" + newline
    table, rejects, _, _ = read_all(data)
    assert table.column_names == [name, "b"]  # names are stripped
    assert table.to_pylist() == [{name: 1, "b": 2}, {name: 3, "b": 4}]
    assert rejects == []


def test_leading_zeros_in_any_sample_make_the_column_text():
    head = b"zip\n12345\n90210\n"
    middle = b"partial\n00501\n8123\n"
    reader = CsvReader("mem.csv", ReadOptions())
    schema = reader.infer_schema([Sample(head, True, False), Sample(middle, False, False)])
    assert schema.field("zip").type == pa.string()
    assert reader.inferences[0].reason.startswith("values with leading zeros (e.g. '00501')")


def test_a_widening_chunk_keeps_leading_zeros_as_text():
    data = b"a\n" + b"".join(b"%d\n" % i for i in range(1, 40)) + b"1.5\n007\n"
    reader = CsvReader("mem.csv", ReadOptions(block_size=64))
    schema = reader.infer_schema([Sample(data[:20], True, False)])
    assert schema.field("a").type == pa.int64()
    chunks = list(reader.read(io.BytesIO(data), schema, widen="continue"))
    assert [(w.column, w.to_type) for w in reader.widened] == [("a", "string")]
    assert chunks[-1].table.column("a").to_pylist()[-1] == "007"


def test_leading_zeros_beyond_the_samples_in_a_column_typed_int_read_as_numbers():
    """The documented limit: a value that fits the column's type is not looked at again."""
    data = b"a\n" + b"".join(b"%d\n" % i for i in range(1, 40)) + b"007\n"
    reader = CsvReader("mem.csv", ReadOptions(block_size=64))
    schema = reader.infer_schema([Sample(data[:20], True, False)])
    chunks = list(reader.read(io.BytesIO(data), schema))
    assert chunks[-1].table.column("a").to_pylist()[-1] == 7


def test_an_unterminated_quote_in_the_header_is_input_format_error():
    with pytest.raises(InputFormatError, match="unterminated quoted field in the first"):
        read_all(b'"a,b\n1,2\n')
