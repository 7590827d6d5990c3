"""The pipeline refuses a contract that reads or writes outside the configured buckets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.aws.conversion import check_locations
from engine.aws.settings import Settings
from engine.contract import load_contract
from engine.errors import ContractError

SETTINGS = Settings(processed_bucket="processed", contracts_uri="s3://raw/_contracts/")
STATE = {"bucket": "landing", "key": "orders/orders.csv"}
DST = "s3://processed/orders/orders.parquet"

CONTRACT = """
dataset: orders
columns:
  customer_id: {type: int64}
transforms:
%s
rejects: %s
"""


def contract(tmp_path: Path, enrich: str | None = None, rejects: str = "_rejects/",
             aggregate: str | None = None) -> Any:
    steps = f"  - enrich: {{path: '{enrich}', on: customer_id, format: csv}}"
    text = CONTRACT % (steps if enrich else "  - select: [customer_id]",
                       f"{{path: '{rejects}'}}")
    if aggregate:
        text += (f"aggregate: {{path: '{aggregate}', by: [customer_id], "
                 "metrics: {n: {count: customer_id}}}\n")
    path = tmp_path / "orders.yaml"
    path.write_text(text)
    return load_contract(path)


@pytest.mark.parametrize("path", [
    "s3://raw/_contracts/customers.csv",   # the contracts' bucket
    "s3://processed/reference/customers.parquet",
    "s3://landing/ref/customers.csv",      # the bucket the event came from
])
def test_enrich_from_a_configured_bucket_is_accepted(tmp_path: Path, path: str):
    check_locations(STATE, contract(tmp_path, enrich=path), DST, SETTINGS, "orders")


@pytest.mark.parametrize("path", [
    "s3://someone-elses-bucket/customers.csv",
    "/proc/self/environ",                  # the Lambda's credentials, joined into the output
    "file:///etc/passwd",
    "customers.csv",                       # relative to a local contract: outside S3
])
def test_enrich_from_anywhere_else_is_a_contract_error(tmp_path: Path, path: str):
    with pytest.raises(ContractError, match=r"transforms\[0\]\.enrich\.path: .* outside the "
                                            r"configured buckets") as info:
        check_locations(STATE, contract(tmp_path, enrich=path), DST, SETTINGS, "orders")
    assert info.value.uri == str(tmp_path / "orders.yaml")


def test_relative_enrich_next_to_an_s3_contract_is_in_its_bucket(tmp_path: Path):
    loaded = contract(tmp_path, enrich="customers.csv")
    loaded._source_path = "s3://raw/_contracts/orders.yaml"
    check_locations(STATE, loaded, DST, SETTINGS, "orders")


@pytest.mark.parametrize("field,value,where", [
    ("rejects", "s3://elsewhere/rejects/", "rejects.path"),
    ("rejects", "/tmp/rejects/", "rejects.path"),
    ("aggregate", "s3://elsewhere/agg.parquet", "aggregate.path"),
])
def test_outputs_outside_the_processed_bucket_are_a_contract_error(tmp_path: Path, field: str,
                                                                   value: str, where: str):
    with pytest.raises(ContractError, match=rf"{where}: .* outside the processed bucket"):
        check_locations(STATE, contract(tmp_path, **{field: value}), DST, SETTINGS, "orders")


def test_relative_outputs_land_in_the_processed_bucket(tmp_path: Path):
    check_locations(STATE, contract(tmp_path, rejects="_rejects/", aggregate="_agg/"), DST,
                    SETTINGS, "orders")
    check_locations(STATE, None, DST, SETTINGS, "orders")


def test_a_local_contracts_directory_allows_files_under_it_only(tmp_path: Path):
    settings = Settings(processed_bucket="processed", contracts_uri=str(tmp_path))
    (tmp_path / "customers.csv").write_text("customer_id,segment\n1,a\n")
    check_locations(STATE, contract(tmp_path, enrich="customers.csv"), DST, settings, "orders")
    with pytest.raises(ContractError):
        check_locations(STATE, contract(tmp_path, enrich="../outside.csv"), DST, settings,
                        "orders")


def test_no_processed_bucket_refuses_every_output(tmp_path: Path):
    with pytest.raises(ContractError, match="PROCESSED_BUCKET is not set"):
        Settings().check_output(DST, "output")


@pytest.mark.parametrize("field,value,where", [
    ("rejects", "rejects/", "rejects.path"),
    ("aggregate", "agg/", "aggregate.path"),
    ("aggregate", "s3://processed/orders/summary.parquet", "aggregate.path"),
])
def test_rejects_and_aggregates_among_the_data_are_a_contract_error(
        tmp_path: Path, field: str, value: str, where: str):
    """Inside the table location only under a folder starting with _: query engines read
    every other object there as data (issue 15)."""
    with pytest.raises(ContractError, match=rf"{where}: .* is inside the table location "
                                            r"s3://processed/orders/"):
        check_locations(STATE, contract(tmp_path, **{field: value}), DST, SETTINGS, "orders")
    # under a _ folder at any depth, or outside the table location: not read as data
    for hidden in ("_x/", "country=FR/_rejects/", "s3://processed/other/"):
        check_locations(STATE, contract(tmp_path, **{field: hidden}), DST, SETTINGS, "orders")
