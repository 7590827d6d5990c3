"""Arrow types as Glue (Hive) column types: every type the engine writes, and back."""

from __future__ import annotations

import pyarrow as pa
import pytest

from engine.aws.glue_types import (
    arrow_type,
    column_comment,
    glue_type,
    partition_key_type,
    plain_type,
)
from engine.errors import SchemaError


@pytest.mark.parametrize(("kind", "hive"), [
    (pa.bool_(), "boolean"),
    (pa.int8(), "tinyint"), (pa.int16(), "smallint"), (pa.int32(), "int"), (pa.int64(), "bigint"),
    (pa.uint8(), "smallint"), (pa.uint16(), "int"), (pa.uint32(), "bigint"),
    (pa.float32(), "float"), (pa.float64(), "double"),
    (pa.decimal128(12, 2), "decimal(12,2)"), (pa.decimal128(38, 0), "decimal(38,0)"),
    (pa.decimal256(20, 4), "decimal(20,4)"),
    (pa.string(), "string"), (pa.large_string(), "string"), (pa.string_view(), "string"),
    (pa.dictionary(pa.int32(), pa.string()), "string"),
    (pa.binary(), "binary"), (pa.large_binary(), "binary"), (pa.binary(16), "binary"),
    (pa.date32(), "date"), (pa.date64(), "date"),
    (pa.timestamp("s"), "timestamp"), (pa.timestamp("ms", tz="UTC"), "timestamp"),
    (pa.timestamp("ns", tz="Europe/Paris"), "timestamp"),
    (pa.time32("ms"), "bigint"), (pa.time64("us"), "bigint"),
    (pa.list_(pa.int64()), "array<bigint>"), (pa.large_list(pa.string()), "array<string>"),
    (pa.list_(pa.float32(), 3), "array<float>"),
    (pa.map_(pa.string(), pa.decimal128(9, 3)), "map<string,decimal(9,3)>"),
    (pa.struct([("id", pa.int64()), ("tags", pa.list_(pa.string())),
                ("at", pa.timestamp("us", tz="UTC"))]),
     "struct<id:bigint,tags:array<string>,at:timestamp>"),
    (pa.list_(pa.struct([("k", pa.dictionary(pa.int8(), pa.string()))])),
     "array<struct<k:string>>"),
])
def test_glue_type_of_every_arrow_type_the_engine_writes(kind: pa.DataType, hive: str) -> None:
    assert glue_type(kind, "c") == hive


@pytest.mark.parametrize("kind", [pa.uint64(), pa.float16(), pa.decimal256(40, 2),
                                  pa.duration("s"), pa.struct([("u", pa.uint64())])])
def test_types_no_glue_type_reads_are_refused_naming_the_column(kind: pa.DataType) -> None:
    with pytest.raises(SchemaError, match="column 'amount'.*no Glue Data Catalog type"):
        glue_type(kind, "amount")


def test_a_time_of_day_says_its_unit_in_the_comment() -> None:
    assert column_comment(pa.time32("ms")) == (
        "time of day: ms since midnight (Parquet TIME)")
    assert column_comment(pa.int64()) is None


@pytest.mark.parametrize(("kind", "hive"), [
    (pa.int32(), "int"), (pa.dictionary(pa.int32(), pa.string()), "string"),
    (pa.date32(), "date"), (pa.decimal128(5, 1), "decimal(5,1)"), (pa.bool_(), "boolean"),
    (pa.timestamp("ms", tz="UTC"), "string"),  # the folder says 2025-03-01T09:00:00Z
    (pa.float64(), "string"), (pa.time32("s"), "string"),
])
def test_partition_keys_take_the_type_hive_parses_from_the_folder(
        kind: pa.DataType, hive: str) -> None:
    assert partition_key_type(kind) == hive


@pytest.mark.parametrize(("hive", "kind"), [
    ("bigint", pa.int64()), ("INT", pa.int32()), ("integer", pa.int32()),
    ("varchar(20)", pa.string()), ("char(2)", pa.string()), ("decimal", pa.decimal128(10, 0)),
    ("decimal(12, 2)", pa.decimal128(12, 2)), ("timestamp", pa.timestamp("us")),
    ("array<struct<a:int,`b c`:array<string>>>",
     pa.list_(pa.struct([("a", pa.int32()), ("b c", pa.list_(pa.string()))]))),
    ("map<string,double>", pa.map_(pa.string(), pa.float64())),
])
def test_hive_type_names_are_read_back_as_arrow(hive: str, kind: pa.DataType) -> None:
    assert arrow_type(hive) == kind


@pytest.mark.parametrize("hive", ["uniontype<int,string>", "array<int", "struct<a int>",
                                  "decimal(12,2", "bigint bigint"])
def test_unknown_or_broken_hive_types_are_schema_errors(hive: str) -> None:
    with pytest.raises(SchemaError, match="cannot read the Glue type"):
        arrow_type(hive)


def test_every_arrow_type_round_trips_through_its_glue_type() -> None:
    """What the catalog says a column is, read back, has the same Glue type."""
    kinds = [pa.int16(), pa.float32(), pa.decimal128(7, 3), pa.date32(), pa.binary(),
             pa.list_(pa.map_(pa.string(), pa.int64())),
             pa.struct([("x", pa.bool_()), ("y", pa.list_(pa.timestamp("ms")))])]
    for kind in kinds:
        assert glue_type(arrow_type(glue_type(kind))) == glue_type(kind)


def test_plain_type_undoes_encodings_inside_nested_types() -> None:
    nested = pa.struct([("s", pa.dictionary(pa.int8(), pa.large_string())),
                        ("l", pa.large_list(pa.field("element", pa.string_view())))])
    assert plain_type(nested) == pa.struct([("s", pa.string()), ("l", pa.list_(pa.string()))])
