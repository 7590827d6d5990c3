"""The enrich transform against reference tables on S3 (moto in-process)."""

from __future__ import annotations

import gzip
import io
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pydantic import TypeAdapter

import engine.enforce.enrich as enrich_module
from engine.contract import Step
from engine.enforce.enrich import clear_reference_cache
from engine.enforce.transforms import Transformer
from engine.errors import InputNotFoundError

BUCKET = "reference-bucket"
DATA = pa.table({"order_id": [1, 2, 3, 4], "country": ["FR", "XX", "DE", "FR"]})
COUNTRIES = pa.table({"country": ["DE", "FR"], "region": ["EMEA-C", "EMEA-W"]})


@pytest.fixture
def bucket(s3: Any) -> Any:
    clear_reference_cache()
    s3.create_bucket(Bucket=BUCKET)
    yield s3
    clear_reference_cache()


def put_csv(client: Any, key: str, table: pa.Table, *, gzipped: bool = False) -> str:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    body = gzip.compress(sink.getvalue()) if gzipped else sink.getvalue()
    client.put_object(Bucket=BUCKET, Key=key, Body=body)
    return f"s3://{BUCKET}/{key}"


def put_parquet(client: Any, key: str, table: pa.Table) -> str:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    client.put_object(Bucket=BUCKET, Key=key, Body=sink.getvalue())
    return f"s3://{BUCKET}/{key}"


def enrich(uri: str, **spec: Any) -> Transformer:
    steps = TypeAdapter(list[Step]).validate_python([{"enrich": {"path": uri, **spec}}])
    return Transformer(steps, uri="s3://raw/orders/2025-03-01.csv")


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "parquet"])
def test_enrich_from_s3(bucket: Any, kind: str) -> None:
    if kind == "parquet":
        uri = put_parquet(bucket, "ref/countries.parquet", COUNTRIES)
    else:
        uri = put_csv(bucket, f"ref/countries.{kind}", COUNTRIES, gzipped=kind.endswith(".gz"))
    out, removed = enrich(uri, on="country").apply(DATA)
    assert out.column("order_id").to_pylist() == [1, 2, 3, 4]
    assert out.column("region").to_pylist() == ["EMEA-W", None, "EMEA-C", "EMEA-W"]
    assert removed == 0
    inner, removed = enrich(uri, on="country", how="inner").apply(DATA)
    assert inner.column("order_id").to_pylist() == [1, 3, 4]
    assert removed == 1


def test_warm_invocations_reuse_the_table_until_the_object_changes(
    bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = put_parquet(bucket, "ref/countries.parquet", COUNTRIES)
    reads: list[str] = []
    real = enrich_module._read_reference

    def counting(uri: str, fmt: str) -> pa.Table:
        reads.append(uri)
        return real(uri, fmt)

    monkeypatch.setattr(enrich_module, "_read_reference", counting)
    for _ in range(3):
        t = enrich(uri, on="country", columns=["region"])
        assert t.apply(DATA)[0].column("region").to_pylist()[0] == "EMEA-W"
        assert t.state_bytes >= COUNTRIES.nbytes
    assert reads == [uri]
    put_parquet(bucket, "ref/countries.parquet",
                pa.table({"country": ["FR"], "region": ["replaced"]}))
    assert enrich(uri, on="country").apply(DATA)[0].column("region").to_pylist() == [
        "replaced", None, None, "replaced"]
    assert reads == [uri, uri]


def test_missing_reference_object(bucket: Any) -> None:
    uri = f"s3://{BUCKET}/ref/absent.csv"
    with pytest.raises(InputNotFoundError) as info:
        enrich(uri, on="country").apply(DATA)
    assert "transforms[0] (enrich)" in str(info.value) and uri in str(info.value)
    assert info.value.uri == "s3://raw/orders/2025-03-01.csv"
