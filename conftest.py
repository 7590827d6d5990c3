"""Names the docstring examples of ``engine/`` use, so that they run as written (doctest).

``path`` is a three-row orders CSV, ``contract_path`` a contract for it, ``tmp`` an empty
directory; each example gets fresh ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _pytest.doctest import DoctestItem

ORDERS_CSV = """order_id,country,amount
1,FR,12.50
2,DE,7.00
3,FR,3.25
"""

ORDERS_CONTRACT = """dataset: orders
format: csv
columns:
  order_id: {type: int64, nullable: false, unique: true}
  country: {type: string}
  amount: {type: double, min: 0}
"""


@pytest.fixture(autouse=True)
def _doctest_files(request: pytest.FixtureRequest) -> None:
    if not isinstance(request.node, DoctestItem):
        return
    doctest_namespace: dict[str, Any] = request.getfixturevalue("doctest_namespace")
    tmp_path: Path = request.getfixturevalue("tmp_path")
    data = tmp_path / "data"
    data.mkdir()
    (data / "orders.csv").write_text(ORDERS_CSV, encoding="utf-8")
    (data / "orders.yaml").write_text(ORDERS_CONTRACT, encoding="utf-8")
    (tmp_path / "out").mkdir()
    doctest_namespace.update(path=str(data / "orders.csv"),
                             contract_path=str(data / "orders.yaml"),
                             tmp=str(tmp_path / "out"))
