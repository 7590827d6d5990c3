"""The accounting guard on S3 (moto in-process): a lost row publishes no object, leaves no upload.

The same breakages as ``tests/unit/test_run_accounting.py``, with the output in a bucket: the
run raises :class:`~engine.errors.AccountingError`; no object exists under the output (the
rotated files it had published are deleted), no multipart upload is left open, and the footer
check never reads an output back (no GetObject on the output bucket).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import engine.io
from engine.errors import AccountingError
from engine.run import transform
from engine.sink.parquet import ParquetSink

ROWS = 3_000


@pytest.fixture
def buckets(s3: Any) -> Any:
    for name in ("raw", "processed"):
        s3.create_bucket(Bucket=name)
    body = "id,country,amount\n" + "".join(f"{i},{'FR DE US'.split()[i % 3]},{i / 4}\n"
                                          for i in range(ROWS))
    s3.put_object(Bucket="raw", Key="orders.csv", Body=body.encode())
    return s3


def keys(client: Any) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket="processed").get("Contents", []))


def open_uploads(client: Any) -> list[Any]:
    return client.list_multipart_uploads(Bucket="processed").get("Uploads", [])


def requests(operation: str) -> list[str]:
    """The bucket of every ``operation`` call the engine's S3 client makes from now on."""
    buckets: list[str] = []
    engine.io.s3_client().meta.events.register(
        f"before-parameter-build.s3.{operation}",
        lambda params, **_: buckets.append(params["Bucket"]))
    return buckets


def losing(original: Callable[..., Any], call: int) -> Callable[..., Any]:
    """``original(self, table, ...)``, given the table without its first row on call ``call``."""
    calls = {"n": 0}

    def wrapper(self: Any, table: pa.Table, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == call:
            table = table.slice(1)
        return original(self, table, *args, **kwargs)

    return wrapper


def test_a_row_lost_before_the_sink_publishes_nothing(buckets: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ParquetSink, "write", losing(ParquetSink.write, 1))
    with pytest.raises(AccountingError, match=f"{ROWS} records read, but {ROWS - 1} written"):
        transform("s3://raw/orders.csv", "s3://processed/orders.parquet",
                  rejects_uri="s3://processed/orders.rejects.ndjson")
    assert keys(buckets) == []
    assert open_uploads(buckets) == []


def test_a_short_footer_after_rotation_deletes_what_was_published(
        buckets: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pq.ParquetWriter, "write_table", losing(pq.ParquetWriter.write_table, 3))
    gets = requests("GetObject")
    deletes = requests("DeleteObject")
    with pytest.raises(AccountingError, match="footer") as info:
        transform("s3://raw/orders.csv", "s3://processed/orders.parquet", max_rows_per_file=500,
                  row_group_rows=500, block_size=4096,
                  rejects_uri="s3://processed/orders.rejects.ndjson")
    failed = info.value.uri
    assert failed.startswith("s3://processed/orders-") and failed.endswith(".parquet")
    published = int(failed.removeprefix("s3://processed/orders-").removesuffix(".parquet"))
    assert published >= 1  # files were published before the short one, and are deleted now
    assert deletes.count("processed") == published
    assert "processed" not in gets  # the footers were checked without reading anything back
    assert keys(buckets) == []
    assert open_uploads(buckets) == []


def test_the_same_run_unbroken_publishes_every_row(buckets: Any) -> None:
    report = transform("s3://raw/orders.csv", "s3://processed/orders.parquet",
                       max_rows_per_file=500, row_group_rows=500, block_size=4096,
                       rejects_uri="s3://processed/orders.rejects.ndjson")
    assert report.rows_out == ROWS
    assert keys(buckets) == [f"orders-{i:05d}.parquet" for i in range(ROWS // 500)] + [
        "orders.rejects.ndjson"]
    assert open_uploads(buckets) == []
