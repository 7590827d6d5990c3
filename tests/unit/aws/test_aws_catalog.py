"""The dataset's Glue table on moto: created, grown, partitioned, projected, shared, refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pyarrow as pa
import pytest

from engine.aws import catalog
from engine.aws.settings import SettingsError
from engine.contract import ProjectionSpec
from engine.errors import SchemaError, TransientError, UsageError

DB = "chunkwise_test"
WIDE = pa.schema([
    ("id", pa.int64()), ("amount", pa.decimal128(12, 2)), ("at", pa.timestamp("ms", tz="UTC")),
    ("day", pa.date32()), ("tags", pa.list_(pa.string())),
    ("who", pa.struct([("name", pa.string()), ("age", pa.int32())])), ("t", pa.time32("ms")),
])


@pytest.fixture
def glue(s3: Any) -> Iterator[Any]:
    import boto3

    client = boto3.client("glue", region_name="us-east-1")
    client.create_database(DatabaseInput={"Name": DB})
    yield client


def _dataset(name: str = "orders") -> dict[str, Any]:
    return catalog.snapshot(None, DB, name, f"s3://processed/{name}/", schema=False)


def _table(glue: Any, name: str = "orders") -> dict[str, Any]:
    return glue.get_table(DatabaseName=DB, Name=name)["Table"]


def test_the_first_file_creates_a_parquet_table_of_its_columns(glue: Any) -> None:
    done = catalog.publish(glue, _dataset(), WIDE, contract=False)
    assert done == {"database": DB, "table": "orders", "location": "s3://processed/orders/",
                    "created": True, "changes": [], "partitions_added": 0}
    table = _table(glue)
    sd = table["StorageDescriptor"]
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["Parameters"]["classification"] == "parquet"
    assert sd["Location"] == "s3://processed/orders/"
    assert sd["SerdeInfo"]["SerializationLibrary"] == catalog.PARQUET_SERDE
    assert (sd["InputFormat"], sd["OutputFormat"]) == (catalog.PARQUET_INPUT_FORMAT,
                                                       catalog.PARQUET_OUTPUT_FORMAT)
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == [
        ("id", "bigint"), ("amount", "decimal(12,2)"), ("at", "timestamp"), ("day", "date"),
        ("tags", "array<string>"), ("who", "struct<name:string,age:int>"), ("t", "bigint")]
    assert sd["Columns"][-1]["Comment"].startswith("time of day: ms")
    assert table["PartitionKeys"] == []
    assert catalog.table_schema(table) == WIDE  # the Arrow types, exactly (from the parameter)


def test_partitions_are_registered_once_whatever_the_retries(glue: Any) -> None:
    keys = [pa.field("country", pa.string()), pa.field("year", pa.int32())]
    partitions = [([c, str(y)], f"s3://processed/orders/country={c}/year={y}/")
                  for c in ("FR", "DE", "__HIVE_DEFAULT_PARTITION__") for y in (2024, 2025)]
    written = pa.schema([("id", pa.int64())])
    first = catalog.publish(glue, _dataset(), written, partition_keys=keys,
                            partitions=partitions + partitions[:2], contract=True)
    assert first["partitions_added"] == 6
    again = catalog.publish(glue, _dataset(), written, partition_keys=keys,
                            partitions=partitions, contract=True)  # a retried output step
    assert again["partitions_added"] == 0 and not again["created"]
    assert [(k["Name"], k["Type"]) for k in _table(glue)["PartitionKeys"]] == [
        ("country", "string"), ("year", "int")]
    found = glue.get_partitions(DatabaseName=DB, TableName="orders")["Partitions"]
    assert sorted(p["Values"] for p in found) == sorted(v for v, _ in partitions)
    where = {tuple(p["Values"]): p["StorageDescriptor"]["Location"] for p in found}
    assert where[("FR", "2025")] == "s3://processed/orders/country=FR/year=2025/"
    assert all(p["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
               == catalog.PARQUET_SERDE for p in found)


def test_more_partitions_than_one_call_takes(glue: Any) -> None:
    partitions = [([str(i)], f"s3://processed/orders/n={i}/") for i in range(250)]
    done = catalog.publish(glue, _dataset(), pa.schema([("id", pa.int64())]),
                           partition_keys=[pa.field("n", pa.int64())], partitions=partitions,
                           contract=True)
    assert done["partitions_added"] == 250


def test_a_dataset_without_contract_grows_by_its_rules(glue: Any) -> None:
    catalog.publish(glue, _dataset(), pa.schema([("id", pa.int32()), ("v", pa.string())]),
                    contract=False)
    grown = catalog.publish(glue, _dataset(), pa.schema([("id", pa.int64()),
                                                         ("note", pa.string())]), contract=False)
    assert grown["changes"] == ["id: int32 → int64", "note: added (string)"]
    columns = _table(glue)["StorageDescriptor"]["Columns"]
    assert [(c["Name"], c["Type"]) for c in columns] == [
        ("id", "bigint"), ("v", "string"), ("note", "string")]
    assert catalog.publish(glue, _dataset(), pa.schema([("v", pa.string())]),
                           contract=False)["changes"] == []  # nothing to update
    with pytest.raises(SchemaError, match="column 'v': the dataset 'orders' has it as string"):
        catalog.publish(glue, _dataset(), pa.schema([("v", pa.int64())]), contract=False)


def test_with_a_contract_the_contract_is_the_schema(glue: Any) -> None:
    catalog.publish(glue, _dataset(), pa.schema([("id", pa.int32())]), contract=True)
    changed = catalog.publish(glue, _dataset(), pa.schema([("id", pa.string())]), contract=True)
    assert changed["changes"] == ["columns: the contract's output"]
    assert _table(glue)["StorageDescriptor"]["Columns"] == [{"Name": "id", "Type": "string"}]
    with pytest.raises(SchemaError, match="partitioned by nothing, this file by"):
        catalog.publish(glue, _dataset(), pa.schema([("id", pa.string())]),
                        partition_keys=[pa.field("day", pa.date32())], contract=True)


def test_partition_projection_sets_the_table_properties_and_registers_nothing(glue: Any) -> None:
    projection = {"day": ProjectionSpec(type="date", range=["2024-01-01", "NOW"],
                                        format="yyyy-MM-dd", unit="DAYS"),
                  "country": ProjectionSpec(type="enum", values=["FR", "DE"])}
    keys = [pa.field("day", pa.date32()), pa.field("country", pa.string())]
    done = catalog.publish(glue, _dataset(), pa.schema([("id", pa.int64())]),
                           partition_keys=keys, contract=True, projection=projection,
                           partitions=[(["2025-01-02", "FR"], "s3://x/")])
    assert done["partitions_added"] == 0
    assert glue.get_partitions(DatabaseName=DB, TableName="orders")["Partitions"] == []
    params = _table(glue)["Parameters"]
    assert params["projection.enabled"] == "true"
    assert params["projection.day.type"] == "date"
    assert params["projection.day.range"] == "2024-01-01,NOW"
    assert params["projection.day.format"] == "yyyy-MM-dd"
    assert params["projection.day.interval.unit"] == "DAYS"
    assert params["projection.country.values"] == "FR,DE"
    assert params["storage.location.template"] == (
        "s3://processed/orders/day=${day}/country=${country}/")
    # the contract drops projection: its properties go, the owner's own stay
    glue.update_table(DatabaseName=DB, TableInput={
        **{k: v for k, v in _table(glue).items() if k in ("Name", "StorageDescriptor",
                                                           "PartitionKeys", "TableType")},
        "Parameters": {**params, "owner.note": "kept"}})
    catalog.publish(glue, _dataset(), pa.schema([("id", pa.int64())]), partition_keys=keys,
                    contract=True)
    params = _table(glue)["Parameters"]
    assert not any(k.startswith(("projection.", "storage.")) for k in params)
    assert params["owner.note"] == "kept"


def test_a_table_of_another_location_or_an_overlapping_one_is_refused(glue: Any) -> None:
    catalog.publish(glue, _dataset("logs"), pa.schema([("id", pa.int64())]), contract=False)
    elsewhere = {**_dataset("logs"), "location": "s3://processed/logs-2/"}
    with pytest.raises(UsageError, match="describes s3://processed/logs/, not s3://processed/"
                                         "logs-2/"):
        catalog.publish(glue, elsewhere, pa.schema([("id", pa.int64())]), contract=False)
    with pytest.raises(UsageError, match="describes"):
        catalog.snapshot(glue, DB, "logs", "s3://processed/logs-2/", schema=True)
    with pytest.raises(UsageError, match=r"logs/2025/ and the Glue table chunkwise_test.logs "
                                         r"\(s3://processed/logs/\) overlap"):
        catalog.publish(glue, _dataset("logs/2025"), pa.schema([("id", pa.int64())]),
                        contract=False)
    with pytest.raises(UsageError, match="overlap"):  # a parent of an existing table
        catalog.publish(glue, {**_dataset("all"), "location": "s3://processed/"},
                        pa.schema([("id", pa.int64())]), contract=False)


class _Racing:
    """A Glue client whose first create or update fails: it lost a race to another execution,
    or Glue throttled it (``error``)."""

    def __init__(self, glue: Any, error: str, times: int = 1) -> None:
        self.glue, self.error, self.times = glue, error, times
        self.updates: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.glue, name)

    def _lose(self, operation: str) -> None:
        if self.times:
            self.times -= 1
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": self.error, "Message": "lost a race"}}, operation)

    def create_table(self, **kwargs: Any) -> Any:
        if self.error == "AlreadyExistsException" and self.times:
            # another execution made the table of its own file in the meantime
            self.glue.create_table(DatabaseName=DB, TableInput={
                "Name": kwargs["TableInput"]["Name"], "TableType": "EXTERNAL_TABLE",
                "StorageDescriptor": {"Location": "s3://processed/orders/", "Columns": [
                    {"Name": "other", "Type": "string"}]}})
            self._lose("CreateTable")
        return self.glue.create_table(**kwargs)

    def update_table(self, **kwargs: Any) -> Any:
        self.updates.append(kwargs)
        if self.error != "AlreadyExistsException":
            self._lose("UpdateTable")
        return self.glue.update_table(**kwargs)


def test_two_executions_creating_one_table_merge_their_columns(glue: Any) -> None:
    racing = _Racing(glue, "AlreadyExistsException")
    done = catalog.publish(racing, _dataset(), pa.schema([("id", pa.int64())]), contract=False)
    assert done["changes"] == ["id: added (int64)"]
    assert [c["Name"] for c in _table(glue)["StorageDescriptor"]["Columns"]] == ["other", "id"]


def test_an_update_names_the_version_it_read_and_retries_when_it_lost(glue: Any) -> None:
    catalog.publish(glue, _dataset(), pa.schema([("id", pa.int64())]), contract=False)
    racing = _Racing(glue, "ConcurrentModificationException")
    catalog.publish(racing, _dataset(), pa.schema([("v", pa.int64())]), contract=False)
    assert len(racing.updates) == 2 and all(u.get("VersionId") for u in racing.updates)
    forever = _Racing(glue, "ConcurrentModificationException", times=10)
    with pytest.raises(TransientError, match="kept changing"):
        catalog.publish(forever, _dataset(), pa.schema([("w", pa.int64())]), contract=False)


def test_throttling_is_transient_and_a_missing_database_a_setting(glue: Any) -> None:
    throttled = _Racing(glue, "ThrottlingException")
    catalog.publish(glue, _dataset(), pa.schema([("id", pa.int64())]), contract=False)
    with pytest.raises(TransientError, match="Glue ThrottlingException"):
        catalog.publish(throttled, _dataset(), pa.schema([("v", pa.int64())]), contract=False)
    with pytest.raises(SettingsError, match="GLUE_DATABASE"):
        catalog.publish(glue, {**_dataset(), "database": "nope"},
                        pa.schema([("id", pa.int64())]), contract=False)


def test_a_table_made_by_hand_is_read_as_its_glue_types_say(glue: Any) -> None:
    glue.create_table(DatabaseName=DB, TableInput={
        "Name": "orders", "StorageDescriptor": {"Location": "s3://processed/orders/", "Columns": [
            {"Name": "id", "Type": "int"}, {"Name": "tags", "Type": "array<varchar(3)>"}]}})
    entry = catalog.snapshot(glue, DB, "orders", "s3://processed/orders/", schema=True)
    assert catalog.decode_schema(entry["schema"]) == pa.schema(
        [("id", pa.int32()), ("tags", pa.list_(pa.string()))])
    # once chunkwise keeps it, a column changed by hand still wins over the stored schema
    catalog.publish(glue, _dataset(), pa.schema([("id", pa.int64())]), contract=False)
    table = _table(glue)
    table["StorageDescriptor"]["Columns"][0]["Type"] = "string"
    assert catalog.table_schema(table).field("id").type == pa.string()


def test_describe(glue: Any) -> None:
    assert catalog.describe(glue, DB, "orders") is None
    catalog.publish(glue, _dataset(), pa.schema([("id", pa.int64())]),
                    partition_keys=[pa.field("c", pa.string())],
                    partitions=[(["FR"], "s3://processed/orders/c=FR/")], contract=True)
    assert catalog.describe(glue, DB, "orders") == {
        "database": DB, "table": "orders", "location": "s3://processed/orders/",
        "columns": [{"name": "id", "type": "bigint"}],
        "partition_keys": [{"name": "c", "type": "string"}], "partitions": [["FR"]],
        "projection": False}
