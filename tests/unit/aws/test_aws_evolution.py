"""One schema per dataset: the types a file is read with, and how the dataset's schema grows."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from engine.aws.evolution import merge, promotes, read_schema, with_dataset_types
from engine.errors import SchemaError

DATASET = pa.schema([("id", pa.int64()), ("amount", pa.float64()), ("name", pa.string()),
                     ("at", pa.timestamp("ms"))])


@pytest.mark.parametrize(("old", "new", "allowed"), [
    (pa.int8(), pa.int16(), True), (pa.int16(), pa.int64(), True), (pa.int32(), pa.int64(), True),
    (pa.float32(), pa.float64(), True),
    (pa.timestamp("s"), pa.timestamp("ms"), True), (pa.timestamp("ms"), pa.timestamp("ns"), True),
    (pa.timestamp("ms", tz="UTC"), pa.timestamp("us", tz="UTC"), True),
    # not promotions: narrower, another kind, another zone, text to numbers
    (pa.int64(), pa.int32(), False), (pa.int64(), pa.float64(), False),
    (pa.float64(), pa.float32(), False), (pa.int32(), pa.float32(), False),
    (pa.timestamp("ms"), pa.timestamp("us", tz="UTC"), False),
    (pa.timestamp("us"), pa.timestamp("ms"), False), (pa.string(), pa.int64(), False),
    (pa.int64(), pa.string(), False), (pa.date32(), pa.timestamp("ms"), False),
    (pa.decimal128(10, 2), pa.decimal128(12, 2), False),
])
def test_promotions(old: pa.DataType, new: pa.DataType, allowed: bool) -> None:
    assert promotes(old, new) is allowed


def test_a_file_is_read_with_the_dataset_types_in_its_own_column_order() -> None:
    file = pa.schema([("name", pa.int64()), ("ID", pa.int64()), ("amount", pa.int64()),
                      ("extra", pa.bool_())])
    read = read_schema(DATASET, file, dataset_name="d")
    # names and order as the file has them (the CSV header), the dataset's types; new: its own
    assert read == pa.schema([("name", pa.string()), ("ID", pa.int64()),
                              ("amount", pa.float64()), ("extra", pa.bool_())])


def test_a_promotion_reads_the_file_with_the_wider_type() -> None:
    dataset = pa.schema([("n", pa.int32()), ("x", pa.float32()), ("at", pa.timestamp("ms"))])
    file = pa.schema([("n", pa.int64()), ("x", pa.float64()), ("at", pa.timestamp("ns"))])
    assert read_schema(dataset, file, dataset_name="d") == file
    merged, changes = merge(dataset, file, dataset_name="d")
    assert merged == file
    assert changes == ["n: int32 → int64", "x: float → double",
                       "at: timestamp[ms] → timestamp[ns]"]


def test_the_dataset_grows_by_new_columns_at_the_end() -> None:
    written = pa.schema([("extra", pa.string()), ("id", pa.int64())])
    merged, changes = merge(DATASET, written, dataset_name="d")
    assert merged.names == ["id", "amount", "name", "at", "extra"]
    assert changes == ["extra: added (string)"]
    # a column the file lacks stays; a file narrower than the dataset changes nothing
    narrower = pa.schema([("id", pa.int32()), ("at", pa.timestamp("s"))])
    assert merge(DATASET, narrower, dataset_name="d") == (DATASET, [])


def test_the_first_file_is_the_dataset_schema_with_its_encodings_undone() -> None:
    written = pa.schema([("c", pa.dictionary(pa.int32(), pa.string())), ("n", pa.int64())])
    merged, changes = merge(None, written, dataset_name="d")
    assert merged == pa.schema([("c", pa.string()), ("n", pa.int64())]) and changes == []


@pytest.mark.parametrize(("column", "kind", "words"), [
    ("id", pa.float64(), "has it as int64 (Glue bigint), this file as double"),
    ("name", pa.int64(), "has it as string (Glue string), this file as int64"),
    ("at", pa.timestamp("ms", tz="UTC"), "has it as timestamp[ms] (Glue timestamp), this file "
                                        "as timestamp[ms, tz=UTC]"),
])
def test_anything_else_is_a_schema_error_naming_the_column_and_both_types(
        column: str, kind: pa.DataType, words: str) -> None:
    written = pa.schema([(column, kind)])
    expected = re.escape(f"column '{column}': the dataset 'sales' {words}")
    with pytest.raises(SchemaError, match=expected):
        merge(DATASET, written, dataset_name="sales")


def test_nested_types_do_not_evolve() -> None:
    dataset = pa.schema([("s", pa.struct([("a", pa.int64())])), ("l", pa.list_(pa.int64()))])
    same = pa.schema([("s", pa.struct([pa.field("a", pa.int64(), nullable=False)])),
                      ("l", pa.list_(pa.field("element", pa.int64())))])
    assert read_schema(dataset, same, dataset_name="d") == dataset  # Glue-equal: the dataset's
    assert merge(dataset, same, dataset_name="d") == (dataset, [])
    grown = pa.schema([("s", pa.struct([("a", pa.int64()), ("b", pa.string())]))])
    with pytest.raises(SchemaError, match=r"column 's'.*struct<a: int64>.*struct<a: int64, b"):
        read_schema(dataset, grown, dataset_name="d")
    with pytest.raises(SchemaError, match="column 'l'"):
        merge(dataset, pa.schema([("l", pa.list_(pa.int32()))]), dataset_name="d")


def test_the_engine_misfit_is_told_in_the_dataset_terms() -> None:
    file = pa.schema([("id", pa.string())])
    error = SchemaError("column 'id' holds a value that is not int64", uri="s3://b/k.csv",
                        record=7)
    mapped = with_dataset_types(error, DATASET, file, dataset_name="sales")
    assert mapped.record == 7 and mapped.uri == "s3://b/k.csv"
    assert mapped.message.startswith("column 'id': the dataset 'sales' has it as int64 (Glue "
                                     "bigint), this file as string: a value is not int64")
    other = SchemaError("the header [a] does not match")
    assert with_dataset_types(other, DATASET, file, dataset_name="sales") is other
