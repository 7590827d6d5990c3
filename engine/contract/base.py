"""Shared pieces of the contract models: the base model, annotated types, type and zone helpers."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import pyarrow as pa
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)
from pydantic_core import PydanticCustomError

from engine.config import parse_size
from engine.io.uri import one_line
from engine.types import parse_type

#: Prefixes of the tags pydantic inserts into an error's location for the step and expression
#: unions; they are not YAML keys, so they are dropped when an error is mapped to a line.
_STEP_TAG = "step:"
_EXPR_TAG = "expr:"

Loc = tuple[int | str, ...]


class _Model(BaseModel):
    """Base of every contract model: unknown keys are errors, values are not coerced."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True
    )


NonEmptyStr = Annotated[str, Field(min_length=1)]


def _wrap_str(value: Any) -> Any:
    """Accept a single string where a list of strings is expected."""
    return [value] if isinstance(value, str) else value


StrList = Annotated[list[NonEmptyStr], BeforeValidator(_wrap_str)]


def _size(value: Any) -> Any:
    """A size given as an int (bytes) or a string such as ``16MiB``."""
    if isinstance(value, str):
        try:
            return parse_size(value)
        except ValueError as exc:
            raise PydanticCustomError("size", str(exc)) from None
    return value


Size = Annotated[int, BeforeValidator(_size), Field(gt=0)]


# ---------------------------------------------------------------------------------------------
# Types and values
# ---------------------------------------------------------------------------------------------

_FIXED_OFFSET = re.compile(r"^[+-]\d{2}:?\d{2}$")


def _check_zone(name: str) -> None:
    """Raise ValueError unless ``name`` is an IANA zone (``Europe/Paris``) or an offset."""
    if _FIXED_OFFSET.match(name):
        return
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(
            f"unknown timezone {name!r}: use an IANA name such as 'UTC' or 'Europe/Paris', "
            "or an offset such as '+01:00'"
        ) from None


def _tzinfo(name: str) -> Any:
    if _FIXED_OFFSET.match(name):
        sign = -1 if name[0] == "-" else 1
        digits = name[1:].replace(":", "")
        minutes = sign * (int(digits[:2]) * 60 + int(digits[2:]))
        return timezone(timedelta(minutes=minutes))
    return ZoneInfo(name)


def _parse_arrow_type(name: str) -> pa.DataType:
    """``parse_type`` that also checks a timestamp's time zone."""
    arrow_type = parse_type(name)
    if pa.types.is_timestamp(arrow_type) and arrow_type.tz:
        _check_zone(arrow_type.tz)
    return arrow_type


def _value_type(arrow_type: pa.DataType) -> pa.DataType:
    """The type of the values: a dictionary's value type, else the type itself."""
    return arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type


def _is_numeric(arrow_type: pa.DataType) -> bool:
    t = _value_type(arrow_type)
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _is_temporal(arrow_type: pa.DataType) -> bool:
    t = _value_type(arrow_type)
    return pa.types.is_date(t) or pa.types.is_timestamp(t)


def _is_string(arrow_type: pa.DataType) -> bool:
    t = _value_type(arrow_type)
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _to_python(value: Any, arrow_type: pa.DataType, zone: str | None = None) -> Any:
    """Convert a YAML value to the Python value Arrow takes for ``arrow_type``.

    Numbers may be written as numbers or numeric strings; dates and timestamps as ISO 8601
    strings. A naive timestamp is taken in ``zone``, else the type's zone, else UTC.

    Raises:
        ValueError: the value does not fit the type.

    """
    t = _value_type(arrow_type)
    if value is None:
        raise ValueError("null is not a value here")
    if isinstance(value, bool) and not pa.types.is_boolean(t):
        raise ValueError(f"{value!r} is a boolean, the column is {t}")
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        if not isinstance(value, int | float | str):
            raise ValueError(f"{value!r} is not a number")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
        if not number.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
        if pa.types.is_decimal(t):
            out: Any = number
        elif pa.types.is_integer(t):
            if number != number.to_integral_value():
                raise ValueError(f"{value!r} is not an integer, the column is {t}")
            out = int(number)
        else:
            out = float(number)
    elif pa.types.is_date(t) or pa.types.is_timestamp(t):
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not an ISO 8601 date or timestamp string")
        try:
            if pa.types.is_date(t):
                out = date.fromisoformat(value)
            else:
                out = datetime.fromisoformat(value)
        except ValueError:
            kind = "date (YYYY-MM-DD)" if pa.types.is_date(t) else "timestamp"
            raise ValueError(f"{value!r} is not an ISO 8601 {kind}") from None
        if isinstance(out, datetime):
            assumed = zone or t.tz or "UTC"
            if out.tzinfo is None:
                out = out.replace(tzinfo=_tzinfo(assumed))
            if not t.tz:  # a naive column holds wall-clock times in the assumed zone
                out = out.astimezone(_tzinfo(assumed)).replace(tzinfo=None)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string (the column is {t}): quote it in YAML")
        out = value
    else:
        out = value
    try:
        pa.scalar(out, type=t)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{value!r} does not fit {t}: {one_line(exc)}") from None
    return out



def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_tag(part: int | str) -> bool:
    return isinstance(part, str) and part.startswith((_STEP_TAG, _EXPR_TAG))


def _dotted(loc: Loc) -> str:
    """``("transforms", 0, "derive", "expr")`` → ``transforms[0].derive.expr``."""
    text = ""
    for part in loc:
        if _is_tag(part):
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text
