"""The pipeline's validate and plan steps on inputs that are not text: Parquet, spreadsheets."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.aws import steps
from engine.aws.planning import plan_byte_ranges
from engine.errors import InputFormatError

CSV_CONTRACT = """\
dataset: orders
match: "orders/*"
format: csv
columns:
  order_id: {type: int64}
"""


def _parquet(rows: int = 3) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"order_id": list(range(rows)), "note": ["x"] * rows}), out)
    return out.getvalue()


def _xlsx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/workbook.xml", "<workbook/>")
    return out.getvalue()


def _validate(aws: Any, key: str, data: bytes) -> dict[str, Any]:
    state = steps.ingest(aws.put(key, data), aws.settings, aws.clients)
    return steps.validate_head(state, aws.settings, aws.clients)


def test_validate_reads_a_parquet_schema_from_its_footer(aws: Any) -> None:
    state = _validate(aws, "drop/a.parquet", _parquet())
    assert state["format"] == "parquet" and state["columns"] == ["order_id", "note"]


def test_validate_names_a_spreadsheet_instead_of_its_bytes(aws: Any) -> None:
    with pytest.raises(InputFormatError, match=r"Excel workbook \(.xlsx") as info:
        _validate(aws, "drop/a.csv", _xlsx())
    assert "utf-8" not in info.value.message


def test_a_parquet_file_under_a_csv_contract_is_refused_by_name(aws: Any) -> None:
    aws.put_contract("orders.yaml", CSV_CONTRACT)
    with pytest.raises(InputFormatError, match="a Parquet file, not csv"):
        _validate(aws, "orders/a.parquet", _parquet())


def test_a_parquet_file_is_never_split_into_byte_ranges(tmp_path: Any) -> None:
    path = tmp_path / "big.parquet"
    path.write_bytes(_parquet(50_000))
    size = path.stat().st_size
    assert plan_byte_ranges(str(path), "parquet", size, 1024) == [
        {"index": 0, "start": 0, "end": size}]
