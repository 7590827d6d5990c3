"""Through the real state machine: a contract reaching outside the configured buckets is refused.

A reference table in another bucket (one the function could read) or a rejects path in another
bucket fails the file with ContractError before a byte is read: DLQ, no output anywhere. The
same contract with the table next to it, in the contracts' bucket, converts.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from engine.aws.local.runner import LocalPipeline
from engine.gen import generate

REPO = Path(__file__).resolve().parents[3]
CUSTOMERS = "customer_id,segment\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(1, 100_001))


@pytest.fixture(scope="module")
def orders_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("locations") / "orders.csv"
    generate("orders", path, size=100_000, seed=5)
    return path


def contract(tmp_path: Path, enrich: str, rejects: str = "_rejects/") -> Path:
    doc = yaml.safe_load((REPO / "contracts" / "orders.yaml").read_text())
    doc["transforms"].append({"enrich": {"path": enrich, "on": "customer_id",
                                         "columns": ["segment"]}})
    doc["rejects"]["path"] = rejects
    path = tmp_path / "contracts" / "orders.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run(tmp_path: Path, orders_csv: Path, **kwargs: Any) -> tuple[dict[str, Any], list[str]]:
    with LocalPipeline(contract=contract(tmp_path, **kwargs)) as pipe:
        s3 = pipe.client("s3")
        s3.put_object(Bucket="chunkwise-raw", Key="_contracts/customers.csv", Body=CUSTOMERS)
        s3.create_bucket(Bucket="elsewhere")
        s3.put_object(Bucket="elsewhere", Key="customers.csv", Body=CUSTOMERS)
        result = pipe.run(orders_csv)
        elsewhere = [o["Key"] for o in s3.list_objects_v2(Bucket="elsewhere").get("Contents", [])]
        if result["status"] == "SUCCEEDED":
            uri = next(u for u in result["outputs"] if "/country=" in u)  # partitioned data
            body = s3.get_object(Bucket=uri[5:].split("/", 1)[0],
                                 Key=uri[5:].split("/", 1)[1])["Body"].read()
            result["table"] = pq.read_table(io.BytesIO(body))
    return result, elsewhere


def test_enrich_next_to_the_contract_converts(tmp_path: Path, orders_csv: Path):
    result, _ = run(tmp_path, orders_csv, enrich="customers.csv")
    assert result["status"] == "SUCCEEDED", result["error"]
    assert "segment" in result["table"].column_names


@pytest.mark.parametrize("changes,where", [
    ({"enrich": "s3://elsewhere/customers.csv"}, "transforms[3].enrich.path"),
    ({"enrich": "customers.csv", "rejects": "s3://elsewhere/rejects/"}, "rejects.path"),
])
def test_a_contract_reaching_outside_the_buckets_goes_to_the_dlq(tmp_path: Path,
                                                                  orders_csv: Path,
                                                                  changes: dict[str, str],
                                                                  where: str):
    result, elsewhere = run(tmp_path, orders_csv, **changes)
    assert result["status"] == "FAILED"
    assert result["error"]["type"] == "ContractError"
    assert where in result["error"]["message"]
    assert "outside" in result["error"]["message"]
    assert result["attempts"]["Transform"] == 1  # permanent: not retried
    (message,) = result["dlq"]
    assert "ContractError" in str(message)
    assert result["outputs"] == []
    assert elsewhere == ["customers.csv"]  # nothing written there
