"""The steps keep a dataset: its Glue table, one schema, a new version replacing the old one."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.aws import catalog, metadata, steps
from engine.errors import SchemaError
from engine.runtime.memory import peak_rss_bytes

DB = "chunkwise_unit"


@pytest.fixture
def glue_aws(aws: Any) -> Any:
    import boto3

    boto3.client("glue", region_name="us-east-1").create_database(DatabaseInput={"Name": DB})
    aws.settings = replace(aws.settings, glue_database=DB)
    return aws


def _run(aws: Any, key: str, data: bytes) -> dict[str, Any]:
    """Ingest → validate → transform → output, as the state machine's single route does."""
    state = steps.ingest(aws.put(key, data), aws.settings, aws.clients)
    state = steps.validate_head(state, aws.settings, aws.clients)
    state = steps.transform(state, aws.settings, aws.clients)
    return steps.output(state, aws.settings, aws.clients)


def _keys(aws: Any, prefix: str = "") -> list[str]:
    listed = aws.s3.list_objects_v2(Bucket=aws.processed, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def _parquet(aws: Any, uri: str) -> pa.Table:
    return pq.read_table(io.BytesIO(aws.get(uri)))


def test_validate_names_the_table_and_output_makes_it(glue_aws: Any) -> None:
    aws = glue_aws
    state = steps.ingest(aws.put("drop/zone/a.csv", b"id,v\n1,1.5\n"), aws.settings, aws.clients)
    state = steps.validate_head(state, aws.settings, aws.clients)
    assert state["dataset"] == {"name": "drop/zone", "database": DB, "table": "drop_zone",
                                "location": f"s3://{aws.processed}/drop/zone/", "schema": None}
    done = steps.output(steps.transform(state, aws.settings, aws.clients), aws.settings,
                        aws.clients)
    assert done["output"]["catalog"]["created"] is True
    described = catalog.describe(aws.clients.glue, DB, "drop_zone")
    assert described["columns"] == [{"name": "id", "type": "bigint"},
                                    {"name": "v", "type": "double"}]


def test_a_later_file_is_read_with_the_dataset_types(glue_aws: Any) -> None:
    aws = glue_aws
    _run(aws, "in/a.csv", b"id,v\n1,1.5\n")
    second = _run(aws, "in/b.csv", b"id,v,note\n2,3\n3,4\n")  # v looks like int64 alone
    (uri,) = second["output"]["files"]
    assert _parquet(aws, uri).schema == pa.schema(
        [("id", pa.int64()), ("v", pa.float64()), ("note", pa.string())])
    table = catalog.describe(aws.clients.glue, DB, "in")
    assert [c["name"] for c in table["columns"]] == ["id", "v", "note"]  # added at the end
    assert second["output"]["catalog"]["changes"] == ["note: added (string)"]


def test_a_value_the_dataset_type_cannot_hold_fails_naming_both_types(glue_aws: Any) -> None:
    aws = glue_aws
    _run(aws, "in/a.csv", b"id,v\n1,10\n")
    before = _keys(aws)
    state = steps.validate_head(steps.ingest(aws.put("in/b.csv", b"id,v\n2,ten\n"),
                                             aws.settings, aws.clients),
                                aws.settings, aws.clients)
    with pytest.raises(SchemaError) as info:
        steps.transform(state, aws.settings, aws.clients)
    assert "column 'v': the dataset 'in' has it as int64 (Glue bigint), this file as string" \
        in info.value.message
    assert info.value.record == 1
    assert _keys(aws) == before  # nothing published


def test_a_new_version_of_a_key_replaces_the_old_one_once_committed(glue_aws: Any) -> None:
    aws = glue_aws
    first = _run(aws, "in/a.csv", b"id\n1\n2\n")
    old = set(_keys(aws))
    # a bad new version fails: the old version's files stay, whole
    bad = steps.ingest(aws.put("in/a.csv", b"id\nx\n"), aws.settings, aws.clients)
    with pytest.raises(SchemaError):
        steps.transform(steps.validate_head(bad, aws.settings, aws.clients), aws.settings,
                        aws.clients)
    steps.route_to_dlq({**bad, "error": {"Error": "SchemaError", "Cause": "{}"}}, aws.settings,
                       aws.clients)
    assert set(_keys(aws)) == old
    second = _run(aws, "in/a.csv", b"id\n3\n")
    assert second["output"]["superseded"] == [first["output"]["manifest"]]
    assert not old & set(_keys(aws))  # the first version's data and manifest are gone
    rows = [_parquet(aws, u).column("id").to_pylist() for u in second["output"]["files"]]
    assert rows == [[3]]


def test_the_transform_peak_is_its_growth_when_the_process_holds_more(glue_aws: Any) -> None:
    aws = glue_aws
    aws.settings = replace(aws.settings, peak_rss_scope="growth")
    rows = "".join(f"{i},{'x' * 50}\n" for i in range(50_000)).encode()
    done = _run(aws, "in/big.csv", b"id,text\n" + rows)
    grown = done["parts"][0]["peak_rss_bytes"]
    assert 0 < grown < peak_rss_bytes()  # not the interpreter, pyarrow and moto held before
    assert metadata.record(aws.table, done["file_id"])["peak_rss_bytes"] == grown


def test_a_contract_partitions_the_table_or_projects_them(glue_aws: Any) -> None:
    aws = glue_aws
    contract = """\
dataset: {name}
match: "{name}/*.csv"
columns:
  id: {{type: int64}}
  country: {{type: string}}
output:
  partition_by: [country]
{projection}"""
    aws.put_contract("a.yaml", contract.format(name="registered", projection=""))
    aws.put_contract("b.yaml", contract.format(name="projected", projection=(
        "  partition_projection: {country: {type: enum, values: [FR, DE]}}\n")))
    data = b"id,country\n1,FR\n2,DE\n3,\n"
    registered = _run(aws, "registered/x.csv", data)["output"]["catalog"]
    projected = _run(aws, "projected/x.csv", data)["output"]["catalog"]
    assert registered["partitions_added"] == 3 and projected["partitions_added"] == 0
    table = catalog.describe(aws.clients.glue, DB, "registered")
    assert table["partitions"] == [["DE"], ["FR"], ["__HIVE_DEFAULT_PARTITION__"]]
    assert table["columns"] == [{"name": "id", "type": "bigint"}]  # the files' columns
    assert table["partition_keys"] == [{"name": "country", "type": "string"}]
    projected_table = catalog.describe(aws.clients.glue, DB, "projected")
    assert projected_table["projection"] is True and projected_table["partitions"] == []
