"""The readers' checks on parsed values: infinities and NaN (nonfinite_rows), and inferred
timestamps that may be dates alone (midnight_columns)."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest

from engine.readers.json_types import midnight_columns
from engine.readers.schema import nonfinite_rows

INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(("values", "nan", "rows"), [
    ([1.0, 2.5, None], True, None),
    ([1.0, INF, None, -INF], False, [1, 3]),
    ([1.0, NAN], False, None),                  # NaN is no infinity
    ([1.0, NAN, None], True, [1]),
    (["big", "big", -5.0], True, None),         # the sum overflows; no value is infinite
    (["big", "big", INF], False, [2]),
    ([None, None], True, None),
    ([], True, None),
])
def test_rows_with_infinities_and_nan_are_found_whatever_the_sum(values, nan, rows):
    for typ, big in ((pa.float64(), 1e308), (pa.float32(), 3e38)):
        given = [big if v == "big" else v for v in values]
        table = pa.table({"id": pa.array(range(len(values)), pa.int64()),
                          "f": pa.array(given, typ)})
        found = nonfinite_rows(table, nan=nan)
        assert (None if found is None else [i for i, bad in enumerate(found) if bad]) == rows


def test_rows_with_infinities_inside_structs_and_lists_are_found():
    table = pa.table({"s": [{"x": 1.0}, {"x": INF}, None],
                      "l": [[1e308, 1e308], [], [2.0, NAN]]})
    found = nonfinite_rows(table, nan=True)
    assert found is not None and found.tolist() == [False, True, True]


def test_a_timestamp_column_is_a_date_candidate_only_when_every_value_is_a_midnight():
    day, late = datetime(2025, 1, 1), datetime(2025, 1, 1, 10, 30)
    table = pa.table({
        "dates": pa.array([day, None, datetime(2025, 3, 9)], pa.timestamp("s")),
        "times": pa.array([late, day, day], pa.timestamp("s")),     # told by its first value
        "late": pa.array([day, day, late], pa.timestamp("s")),      # only by the whole check
        "null_first": pa.array([None, late, day], pa.timestamp("s")),
        "zoned": pa.array([day, day, day], pa.timestamp("s", tz="UTC")),
        "nested": pa.array([{"t": day}, {"t": None}, None],
                           pa.struct([("t", pa.timestamp("s"))])),
    })
    assert midnight_columns(table, None) == {"dates": [()], "nested": [("t",)]}
    assert midnight_columns(table, pa.schema([("dates", pa.timestamp("s"))])) == \
        {"nested": [("t",)]}
