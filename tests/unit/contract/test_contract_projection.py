"""``output.partition_projection``: Athena partition projection of the pipeline's catalog table."""

from __future__ import annotations

import pytest
import yaml

from engine.contract import load_contract
from engine.errors import ContractError

BASE = {
    "dataset": "events",
    "columns": {"id": {"type": "int64"}, "day": {"type": "date32"},
                "country": {"type": "string"}},
    "output": {"partition_by": ["day", "country"]},
}


def _load(projection: object) -> object:
    doc = {**BASE, "output": {**BASE["output"], "partition_projection": projection}}
    return load_contract(yaml.safe_dump(doc, sort_keys=False))


def test_every_partition_column_projected_gives_athena_table_properties() -> None:
    contract = _load({
        "day": {"type": "date", "range": ["2024-01-01", "NOW"], "format": "yyyy-MM-dd",
                "interval": 1, "unit": "DAYS"},
        "country": {"type": "enum", "values": ["FR", "DE"]},
    })
    projection = contract.output.partition_projection
    assert projection["day"].table_properties("day") == {
        "projection.day.type": "date", "projection.day.range": "2024-01-01,NOW",
        "projection.day.format": "yyyy-MM-dd", "projection.day.interval": "1",
        "projection.day.interval.unit": "DAYS"}
    assert projection["country"].table_properties("country") == {
        "projection.country.type": "enum", "projection.country.values": "FR,DE"}


@pytest.mark.parametrize(("projection", "message"), [
    ({"day": {"type": "injected"}}, "needs exactly the partition_by columns"),
    ({"day": {"type": "injected"}, "country": {"type": "injected"}, "id": {"type": "injected"}},
     "needs exactly the partition_by columns"),
    ({"day": {"type": "date", "range": ["2024-01-01", "NOW"]},
      "country": {"type": "injected"}}, "needs format"),
    ({"day": {"type": "integer", "range": ["1", "x"]}, "country": {"type": "injected"}},
     "'x' is not a whole number"),
    ({"day": {"type": "enum", "values": ["a"], "digits": 2}, "country": {"type": "injected"}},
     "digits: not a key of a projection of type enum"),
    ({"day": {"type": "enum"}, "country": {"type": "injected"}}, "needs values"),
    ({"day": {"type": "date", "range": ["2024-01-01"], "format": "yyyy"},
      "country": {"type": "injected"}}, "range"),
    ({"day": {"type": "hash"}, "country": {"type": "injected"}}, "type"),
])
def test_a_projection_athena_cannot_use_is_a_contract_error(projection: object,
                                                            message: str) -> None:
    with pytest.raises(ContractError, match=message):
        _load(projection)


def test_without_partitions_there_is_nothing_to_project() -> None:
    doc = {**BASE, "output": {"partition_projection": {"day": {"type": "injected"}}}}
    with pytest.raises(ContractError, match=r"partition_by columns \(none\)"):
        load_contract(yaml.safe_dump(doc))
