"""Convert text to Arrow types, row by row in outcome but vectorised in execution.

``pyarrow.compute.cast`` fails a whole array on one bad value. :func:`convert_strings` finds the
values that do not convert (a regular-expression pre-check for the common types, then bisection
with pyarrow's own ``cast`` for the rest, so the result is exactly what ``cast`` accepts) and
converts the others, so one ``"N/A"`` rejects one row rather than a batch.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["convert_strings", "parse_timestamps"]

_INT = r"^[+-]?[0-9]+$"
_FLOAT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$|^[+-]?(inf|Inf|INF|nan|NaN|NAN)$"
_DECIMAL = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$"
_BOOL = r"^(true|false|True|False|TRUE|FALSE|1|0)$"


def _pattern(target: pa.DataType) -> str | None:
    if pa.types.is_integer(target):
        return _INT
    if pa.types.is_floating(target):
        return _FLOAT
    if pa.types.is_decimal(target):
        return _DECIMAL
    if pa.types.is_boolean(target):
        return _BOOL
    return None


def _as_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def convert_strings(
    values: pa.Array | pa.ChunkedArray, target: pa.DataType
) -> tuple[pa.Array, np.ndarray]:
    """Cast string ``values`` to ``target``; return the result and a mask of bad values.

    Bad values become null in the result. Nulls in the input stay null and are not bad.
    """
    array = _as_array(values)
    if pa.types.is_dictionary(target):
        converted, bad = convert_strings(array, target.value_type)
        return pc.dictionary_encode(converted).cast(target), bad
    if pa.types.is_string(target) or pa.types.is_large_string(target):
        return array.cast(target), np.zeros(len(array), dtype=bool)
    try:
        return pc.cast(array, target), np.zeros(len(array), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    bad = np.zeros(len(array), dtype=bool)
    pattern = _pattern(target)
    if pattern is not None:
        ok = pc.match_substring_regex(array, pattern)
        bad |= _false_where_valid(ok)
    _bisect(array, target, bad, 0, len(array))
    cleaned = pc.if_else(pa.array(bad), pa.scalar(None, array.type), array)
    return pc.cast(cleaned, target), bad


def _false_where_valid(mask: pa.Array) -> np.ndarray:
    """True where ``mask`` is false (null stays not-bad)."""
    return np.asarray(pc.fill_null(pc.invert(mask), False).to_numpy(zero_copy_only=False),
                      dtype=bool)


def _bisect(array: pa.Array, target: pa.DataType, bad: np.ndarray, lo: int, hi: int) -> None:
    """Mark in ``bad`` the values of ``array[lo:hi]`` (not yet marked) that ``cast`` rejects."""
    if lo >= hi:
        return
    part = array.slice(lo, hi - lo)
    if bad[lo:hi].any():
        part = pc.if_else(pa.array(bad[lo:hi]), pa.scalar(None, array.type), part)
    try:
        pc.cast(part, target)
        return
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if hi - lo == 1:
            bad[lo] = True
            return
    mid = (lo + hi) // 2
    _bisect(array, target, bad, lo, mid)
    _bisect(array, target, bad, mid, hi)


def parse_timestamps(
    values: pa.Array | pa.ChunkedArray,
    target: pa.DataType,
    formats: list[str] | None,
    timezone: str | None,
) -> tuple[pa.Array, np.ndarray]:
    """Parse text timestamps with ``formats`` tried in order; mark the values none of them parse.

    A format without ``%z`` gives a naive time, taken to be in ``timezone`` (default UTC) when
    ``target`` has a time zone. ``target`` is a ``timestamp`` or ``date32`` type.
    """
    array = _as_array(values)
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        return pc.cast(array, target), np.zeros(len(array), dtype=bool)
    if not formats:
        return convert_strings(array, target)
    is_date = pa.types.is_date(target)
    unit = "s" if is_date else target.unit
    tz = None if is_date else target.tz
    result: pa.Array | None = None
    for fmt in formats:
        parsed = pc.strptime(array, format=fmt, unit=unit, error_is_null=True)
        if parsed.type.tz is None and tz is not None:
            parsed = pc.assume_timezone(parsed, timezone or "UTC", ambiguous="earliest",
                                        nonexistent="earliest")
        if parsed.type.tz is not None and tz is not None:
            parsed = parsed.cast(pa.timestamp(unit, tz))
        elif parsed.type.tz is not None:
            parsed = parsed.cast(pa.timestamp(unit))  # UTC wall time for a naive target
        result = parsed if result is None else pc.coalesce(result, parsed)
    assert result is not None
    bad = np.asarray(
        pc.and_(pc.is_valid(array), pc.is_null(result)).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    return (result.cast(target) if is_date else result), bad
