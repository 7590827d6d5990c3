"""Dataset contracts: a dataset's schema, checks, transform steps and output options, in YAML.

A pipeline team describes each dataset once (``contracts/orders.yaml``); the engine enforces it in
the same pass that converts the file. This module only *loads and validates* a contract, before any
data is read; checking rows lives in :mod:`engine.validate`, running steps in
:mod:`engine.transforms`, aggregation in :mod:`engine.aggregate`.

Every problem is a :class:`~engine.errors.ContractError` whose ``uri`` is the contract file and
whose message names the line and the key of each problem, one per line::

    line 14: columns.amount.type: unknown type 'decmal(12,2)': use one of ...

The YAML is read with YAML 1.2 scalars: only ``true``/``false`` are booleans (so ``on:``, ``yes``,
``no`` stay strings), dates stay strings (converted per column type), and numbers with a leading
zero stay strings.

Example:
    >>> from engine.contract import load_contract
    >>> contract = load_contract("contracts/orders.yaml")  # doctest: +SKIP
    >>> contract.arrow_schema().field("amount").type        # doctest: +SKIP
    Decimal128Type(decimal128(12, 2))
"""

from __future__ import annotations

import codecs
import difflib
import fnmatch
import os
import posixpath
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from engine.config import DEFAULT_ROW_GROUP_BYTES, DEFAULT_ROW_GROUP_ROWS, parse_size
from engine.errors import ContractError
from engine.types import parse_type

__all__ = [
    "AggregateSpec",
    "CallExpr",
    "CastStep",
    "ColumnSpec",
    "Contract",
    "DedupeSpec",
    "DedupeStep",
    "DeriveSpec",
    "DeriveStep",
    "DropStep",
    "EnrichSpec",
    "EnrichStep",
    "Expr",
    "FieldExpr",
    "FilterStep",
    "FormatOptions",
    "LiteralExpr",
    "MetricSpec",
    "OutputSpec",
    "ParseTimestampSpec",
    "ParseTimestampStep",
    "PythonSpec",
    "PythonStep",
    "RejectPolicy",
    "RenameStep",
    "SelectStep",
    "Step",
    "load_contract",
]

#: A contract larger than this is not a contract (a data file passed by mistake).
MAX_CONTRACT_BYTES = 1024 * 1024

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
        raise ValueError(f"{value!r} does not fit {t}: {_one_line(exc)}") from None
    return out


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------------------------


class ColumnSpec(_Model):
    """One declared column: its Arrow type, presence, nullability and checks."""

    type: str
    """Arrow type name: ``int64``, ``float64``, ``decimal128(12, 2)``, ``bool``, ``string``,
    ``timestamp[ms, tz=UTC]``, ``date32``, ``dictionary`` (see :func:`engine.types.parse_type`)."""
    required: bool = True
    """The column must be present in the input header (CSV) or fields (JSON); a missing required
    column is a ``SchemaError`` before any row is written. An absent optional column is null."""
    nullable: bool = True
    """Whether a null (or a ``null_values`` marker) is accepted; a null in a non-nullable column
    rejects the row."""
    min: int | float | str | None = None
    """Smallest accepted value (inclusive): a number for numeric and decimal columns, an ISO 8601
    string for date and timestamp columns (a naive one is in ``timezone``)."""
    max: int | float | str | None = None
    """Largest accepted value (inclusive), written like ``min``."""
    allowed: list[Any] | None = Field(default=None, alias="in")
    """YAML key ``in``: the accepted values; any other value rejects the row."""
    regex: str | None = None
    """RE2 regular expression a string value must match (search semantics: anchor it with
    ``^...$`` to match the whole value)."""
    max_length: int | None = Field(default=None, ge=0)
    """Most characters in a string value."""
    unique: bool = False
    """No two rows of the file have the same value (checked within one file; memory grows with
    the number of distinct values). Every repeat after the first is rejected."""
    formats: list[NonEmptyStr] | None = Field(default=None, min_length=1)
    """``strptime`` formats tried in order to parse the input text of a date or timestamp
    column; without them, Arrow's ISO 8601 parser is used."""
    timezone: str | None = None
    """Time zone assumed for timestamp values that carry no offset (IANA name or ``+01:00``);
    values are then stored in the type's zone."""

    @property
    def arrow_type(self) -> pa.DataType:
        """The parsed Arrow type of :attr:`type`."""
        return _parse_arrow_type(self.type)

    @property
    def min_value(self) -> pa.Scalar | None:
        """:attr:`min` as an Arrow scalar of the column's value type, or ``None``."""
        return self._bound(self.min)

    @property
    def max_value(self) -> pa.Scalar | None:
        """:attr:`max` as an Arrow scalar of the column's value type, or ``None``."""
        return self._bound(self.max)

    @property
    def allowed_values(self) -> pa.Array | None:
        """:attr:`allowed` (YAML ``in``) as an Arrow array of the column's value type."""
        if self.allowed is None:
            return None
        value_type = _value_type(self.arrow_type)
        items = [_to_python(v, self.arrow_type, self.timezone) for v in self.allowed]
        return pa.array(items, type=value_type)

    def _bound(self, value: Any) -> pa.Scalar | None:
        if value is None:
            return None
        converted = _to_python(value, self.arrow_type, self.timezone)
        return pa.scalar(converted, type=_value_type(self.arrow_type))

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        _parse_arrow_type(value)
        return value

    @field_validator("min", "max")
    @classmethod
    def _check_bound(cls, value: Any, info: ValidationInfo) -> Any:
        arrow_type = _declared_type(info)
        if value is None or arrow_type is None:
            return value
        if not (_is_numeric(arrow_type) or _is_temporal(arrow_type)):
            raise ValueError(
                f"{info.field_name} applies to numeric, decimal, date and timestamp columns, "
                f"not {arrow_type}"
            )
        converted = _to_python(value, arrow_type)
        low = info.data.get("min")
        if info.field_name == "max" and low is not None:
            try:
                if _to_python(low, arrow_type) > converted:
                    raise ValueError(f"max {value!r} is less than min {low!r}")
            except TypeError:  # aware and naive datetimes: already reported elsewhere
                pass
        return value

    @field_validator("allowed")
    @classmethod
    def _check_allowed(cls, value: list[Any] | None, info: ValidationInfo) -> list[Any] | None:
        arrow_type = _declared_type(info)
        if value is None or arrow_type is None:
            return value
        if not value:
            raise ValueError("in needs at least one value")
        for item in value:
            _to_python(item, arrow_type)
        return value

    @field_validator("regex")
    @classmethod
    def _check_regex(cls, value: str | None, info: ValidationInfo) -> str | None:
        _require_string(info)
        if value is not None:
            try:
                pc.match_substring_regex(pa.array([""], pa.string()), value)
            except pa.ArrowException as exc:
                raise ValueError(f"bad regex {value!r} (RE2): {_one_line(exc)}") from None
        return value

    @field_validator("max_length")
    @classmethod
    def _check_max_length(cls, value: int | None, info: ValidationInfo) -> int | None:
        _require_string(info)
        return value

    @field_validator("formats")
    @classmethod
    def _check_formats(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        arrow_type = _declared_type(info)
        if arrow_type is not None and not _is_temporal(arrow_type):
            raise ValueError(f"formats applies to date and timestamp columns, not {arrow_type}")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None, info: ValidationInfo) -> str | None:
        arrow_type = _declared_type(info)
        if arrow_type is not None and not pa.types.is_timestamp(_value_type(arrow_type)):
            raise ValueError(f"timezone applies to timestamp columns, not {arrow_type}")
        if value is not None:
            _check_zone(value)
        return value


def _declared_type(info: ValidationInfo) -> pa.DataType | None:
    """The column's parsed type during validation, or ``None`` if ``type`` was invalid."""
    name = info.data.get("type")
    if name is None:
        return None
    try:
        return _parse_arrow_type(name)
    except ValueError:
        return None


def _require_string(info: ValidationInfo) -> None:
    arrow_type = _declared_type(info)
    if arrow_type is not None and not _is_string(arrow_type):
        raise ValueError(
            f"{info.field_name} applies to string, large_string and dictionary columns, "
            f"not {arrow_type}"
        )


# ---------------------------------------------------------------------------------------------
# Format options, rejects
# ---------------------------------------------------------------------------------------------


#: An ijson prefix naming an array: ``item`` (top level) or ``key.key.item``.
_JSON_PATH = re.compile(r"^(?:[^.]+\.)*item$")


class FormatOptions(_Model):
    """How to read the input; every key is optional and overrides the reader's default."""

    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    """CSV field delimiter, one character (``","``; write a tab as ``"\\t"``)."""
    quote_char: str | None = Field(default=None, min_length=1, max_length=1)
    """CSV quote character, one character (``'"'``)."""
    encoding: str | None = None
    """Text encoding of the input (``utf-8``); anything else is transcoded while streaming."""
    header: bool | None = None
    """Whether the first CSV record holds the column names (``true``)."""
    null_values: list[str] | None = None
    """Strings read as null, in string columns too (``[""]``); unset keeps pyarrow's defaults
    (``""``, ``NA``, ``NULL``, ``NaN``… for non-string columns only)."""
    json_path: NonEmptyStr | None = None
    """For ``format: json``: ijson prefix of the array of records inside the document, e.g.
    ``data.item`` for ``{"data": [...]}``; unset means the document is a top-level array."""
    column_names: list[NonEmptyStr] | None = None
    """CSV column names to use instead of (or in the absence of) a header."""

    @field_validator("json_path")
    @classmethod
    def _check_json_path(cls, value: str | None) -> str | None:
        if value is not None and not _JSON_PATH.match(value):
            raise ValueError(
                f"json_path {value!r} must name an array as key.key.item, e.g. 'data.item'"
            )
        return value

    @field_validator("encoding")
    @classmethod
    def _check_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r}") from None
        return value

    def read_overrides(self) -> dict[str, Any]:
        """The keys set in the contract, as :class:`engine.config.ReadOptions` keyword arguments.

        Lists become tuples; a key set to ``null`` counts as unset.
        """
        out: dict[str, Any] = {}
        for name in sorted(self.model_fields_set):
            value = getattr(self, name)
            if value is not None:
                out[name] = tuple(value) if isinstance(value, list) else value
        return out


class RejectPolicy(_Model):
    """Where rejected records go, and how many a file may have before it fails."""

    path: NonEmptyStr | None = None
    """Where rejected records are written as NDJSON (one line per reject: record number, byte
    offset, column, check, raw value); relative to the output unless absolute or ``s3://``.
    Unset: rejects are only counted."""
    max_ratio: float | None = Field(default=None, ge=0, le=1)
    """Fail the file (``ValidationError``) when more than this fraction of its rows is rejected."""
    max_count: int | None = Field(default=None, ge=0)
    """Fail the file (``ValidationError``) when more than this many rows are rejected."""


# ---------------------------------------------------------------------------------------------
# Expressions
# ---------------------------------------------------------------------------------------------


class FieldExpr(_Model):
    """``{field: name}``: a column's values; a list is a path into nested structs."""

    field: NonEmptyStr | Annotated[list[NonEmptyStr], Field(min_length=1)]
    """Column name, or ``[struct_column, child, ...]`` for a nested field."""

    @property
    def path(self) -> tuple[str, ...]:
        """The field as a path: ``("amount",)`` or ``("context", "page")``."""
        return (self.field,) if isinstance(self.field, str) else tuple(self.field)


class LiteralExpr(_Model):
    """``{literal: value}``: a constant, typed: ``{literal: "2025-01-01", type: date32}``."""

    literal: Any
    """The value: a number, string, boolean or null."""
    type: str | None = None
    """Arrow type name for the value; unset lets Arrow infer it (int64, double, string, bool)."""

    @property
    def arrow_type(self) -> pa.DataType | None:
        """The parsed :attr:`type`, or ``None``."""
        return None if self.type is None else _parse_arrow_type(self.type)

    @property
    def scalar(self) -> pa.Scalar:
        """The literal as an Arrow scalar."""
        arrow_type = self.arrow_type
        if arrow_type is None:
            return pa.scalar(self.literal)
        if self.literal is None:
            return pa.scalar(None, type=arrow_type)
        return pa.scalar(_to_python(self.literal, arrow_type), type=_value_type(arrow_type))

    @model_validator(mode="after")
    def _check_value(self) -> LiteralExpr:
        if self.type is not None:
            _parse_arrow_type(self.type)
        try:
            self.scalar  # noqa: B018 - building the scalar is the check
        except (pa.ArrowException, TypeError, OverflowError) as exc:
            raise ValueError(f"literal {self.literal!r}: {_one_line(exc)}") from None
        return self


#: pyarrow.compute function kinds an expression may call: element-wise functions, and ``cast``.
#: Vector and aggregate functions would depend on how the file is cut into batches.
_CALLABLE_KINDS = ("scalar",)


class CallExpr(_Model):
    """``{call: function, args: [...], options: {...}}``: a ``pyarrow.compute`` function."""

    call: NonEmptyStr
    """Name of a ``pyarrow.compute`` scalar function (``multiply``, ``equal``, ``strftime``,
    ``if_else``...), or ``cast``."""
    args: list[Expr] = []
    """The arguments, each an expression."""
    options: dict[str, Any] | None = None
    """Keyword arguments of the function's options class, e.g. ``{format: "%Y-%m-%d"}`` for
    ``strftime`` (``StrftimeOptions``). A ``value_set`` list becomes an Arrow array and a
    ``target_type`` name an Arrow type."""

    def function_options(self) -> pc.FunctionOptions | None:
        """The options object to pass to the function, or ``None`` when there are none."""
        if self.options is None:
            return None
        options_class = getattr(pc.get_function(self.call), "_doc", None)
        class_name = getattr(options_class, "options_class", "")
        kwargs: dict[str, Any] = {}
        for key, value in self.options.items():
            if key == "value_set" and isinstance(value, list):
                value = pa.array(value)
            elif key == "target_type" and isinstance(value, str):
                value = _parse_arrow_type(value)
            kwargs[key] = value
        return getattr(pc, class_name)(**kwargs)

    @model_validator(mode="after")
    def _check_call(self) -> CallExpr:
        try:
            function = pc.get_function(self.call)
        except (pa.ArrowException, KeyError):
            near = difflib.get_close_matches(self.call, pc.list_functions(), n=3)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise ValueError(f"unknown pyarrow.compute function {self.call!r}{hint}") from None
        if function.kind not in _CALLABLE_KINDS and self.call != "cast":
            raise ValueError(
                f"{self.call!r} is a {function.kind} function; expressions call scalar "
                "(element-wise) functions only"
            )
        doc = getattr(function, "_doc", None)
        arity = function.arity
        if isinstance(arity, int) and len(self.args) != arity:
            names = ", ".join(getattr(doc, "arg_names", []) or [])
            raise ValueError(
                f"{self.call!r} takes {arity} argument(s) ({names}), got {len(self.args)}"
            )
        if not isinstance(arity, int) and not self.args:
            raise ValueError(f"{self.call!r} takes one or more arguments, got none")
        class_name = getattr(doc, "options_class", "")
        if self.options is not None and not class_name:
            raise ValueError(f"{self.call!r} takes no options")
        if self.call == "cast" and not (self.options or {}).get("target_type"):
            raise ValueError("cast needs options: {target_type: <Arrow type name>}")
        if self.options is None and getattr(doc, "options_required", False):
            raise ValueError(f"{self.call!r} needs options ({class_name})")
        try:
            self.function_options()
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise ValueError(f"options of {self.call!r} ({class_name}): {_one_line(exc)}") from None
        return self


_EXPR_KEYS = ("field", "literal", "call")


def _expr_shape(value: Any) -> Any:
    """Check an expression is a mapping with exactly one of ``field``/``literal``/``call``."""
    if isinstance(value, FieldExpr | LiteralExpr | CallExpr):
        return value
    if isinstance(value, dict):
        kinds = [k for k in _EXPR_KEYS if k in value]
        if len(kinds) == 1:
            return value
        if len(kinds) > 1:
            raise PydanticCustomError(
                "expression", "an expression has one of field, literal, call; got {got}",
                {"got": ", ".join(kinds)},
            )
    raise PydanticCustomError(
        "expression",
        "an expression is {field: name}, {literal: value} or "
        "{call: function, args: [...]}; got {got}",
        {"got": _short(value)},
    )


def _expr_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in _EXPR_KEYS:
            if key in value:
                return _EXPR_TAG + key
        return None
    return _EXPR_TAG + {FieldExpr: "field", LiteralExpr: "literal", CallExpr: "call"}.get(
        type(value), "?"
    )


#: An expression tree: ``{field: name}``, ``{literal: value}`` or ``{call: fn, args: [...]}``.
Expr = Annotated[
    Union[  # noqa: UP007 - a tagged union needs the Union form
        Annotated[FieldExpr, Tag(_EXPR_TAG + "field")],
        Annotated[LiteralExpr, Tag(_EXPR_TAG + "literal")],
        Annotated[CallExpr, Tag(_EXPR_TAG + "call")],
    ],
    Discriminator(_expr_kind),
    BeforeValidator(_expr_shape),
]
CallExpr.model_rebuild()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------------------------
# Transform steps
# ---------------------------------------------------------------------------------------------


class RenameStep(_Model):
    """``rename: {old: new, ...}``."""

    kind: ClassVar[str] = "rename"
    rename: Annotated[dict[NonEmptyStr, NonEmptyStr], Field(min_length=1)]
    """Old name → new name."""


class CastStep(_Model):
    """``cast: {column: type, ...}``: convert columns to other Arrow types."""

    kind: ClassVar[str] = "cast"
    cast: Annotated[dict[NonEmptyStr, NonEmptyStr], Field(min_length=1)]
    """Column → Arrow type name; a value that does not convert rejects the row."""

    @property
    def arrow_types(self) -> dict[str, pa.DataType]:
        """Column → parsed Arrow type."""
        return {name: _parse_arrow_type(t) for name, t in self.cast.items()}

    @field_validator("cast")
    @classmethod
    def _check_types(cls, value: dict[str, str]) -> dict[str, str]:
        for name, type_name in value.items():
            try:
                _parse_arrow_type(type_name)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return value


class ParseTimestampSpec(_Model):
    """Arguments of ``parse_timestamp``."""

    column: NonEmptyStr
    """String column to parse; it is replaced by the timestamps."""
    formats: Annotated[list[NonEmptyStr], BeforeValidator(_wrap_str), Field(min_length=1)]
    """``strptime`` formats tried in order; a value no format parses rejects the row."""
    timezone: str = "UTC"
    """Zone of the resulting ``timestamp[unit, tz=...]``, assumed for values without an offset."""
    unit: Literal["s", "ms", "us", "ns"] = "ms"
    """Resolution of the resulting timestamp."""

    @property
    def arrow_type(self) -> pa.DataType:
        """The resulting type: ``timestamp[unit, tz=timezone]``."""
        return pa.timestamp(self.unit, tz=self.timezone)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        _check_zone(value)
        return value


class ParseTimestampStep(_Model):
    """``parse_timestamp: {column, formats, timezone, unit}``."""

    kind: ClassVar[str] = "parse_timestamp"
    parse_timestamp: ParseTimestampSpec
    """What to parse and how."""


class DeriveSpec(_Model):
    """Arguments of ``derive``."""

    name: NonEmptyStr
    """Name of the new column (an existing column of that name is replaced)."""
    expr: Expr
    """Expression computing it."""
    type: str | None = None
    """Arrow type the result is cast to; unset keeps the expression's type."""

    @property
    def arrow_type(self) -> pa.DataType | None:
        """The parsed :attr:`type`, or ``None``."""
        return None if self.type is None else _parse_arrow_type(self.type)

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_arrow_type(value)
        return value


class DeriveStep(_Model):
    """``derive: {name, expr, type}``: add (or replace) a computed column."""

    kind: ClassVar[str] = "derive"
    derive: DeriveSpec
    """The column to compute."""


class FilterStep(_Model):
    """``filter: <expr>``: keep the rows where the expression is true (null counts as false)."""

    kind: ClassVar[str] = "filter"
    filter: Expr
    """A boolean expression; the rows it drops are counted as ``rows_filtered``."""


class SelectStep(_Model):
    """``select: [columns]``: keep only these columns, in this order."""

    kind: ClassVar[str] = "select"
    select: Annotated[list[NonEmptyStr], Field(min_length=1)]
    """Columns to keep."""


class DropStep(_Model):
    """``drop: [columns]``: remove these columns."""

    kind: ClassVar[str] = "drop"
    drop: Annotated[list[NonEmptyStr], Field(min_length=1)]
    """Columns to remove."""


class DedupeSpec(_Model):
    """Arguments of ``dedupe``."""

    keys: Annotated[list[NonEmptyStr], BeforeValidator(_wrap_str), Field(min_length=1)]
    """Columns whose values identify a row."""
    keep: Literal["first"] = "first"
    """Which row of a duplicate set survives: ``first`` (the earliest in the file)."""


class DedupeStep(_Model):
    """``dedupe: {keys, keep}``: drop later rows with the same key, within the file."""

    kind: ClassVar[str] = "dedupe"
    dedupe: DedupeSpec
    """The key; memory grows with the number of distinct keys in the file."""


_REFERENCE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".zstd")


class EnrichSpec(_Model):
    """Arguments of ``enrich``."""

    path: NonEmptyStr
    """Reference table, CSV or Parquet, local or ``s3://``; a relative path is relative to the
    contract file. Loaded once and cached for warm invocations."""
    on: Annotated[list[NonEmptyStr], BeforeValidator(_wrap_str), Field(min_length=1)]
    """Join key column(s), present under the same names in the data and the reference table."""
    columns: list[NonEmptyStr] | None = None
    """Reference columns to add; unset adds all of them but the keys."""
    how: Literal["left", "inner"] = "left"
    """``left`` keeps unmatched rows (the added columns are null), ``inner`` filters them."""
    format: Literal["csv", "parquet"] | None = None
    """Format of the reference table; unset infers it from the suffix."""

    @property
    def reference_format(self) -> str:
        """:attr:`format`, or the one the path's suffix names."""
        if self.format is not None:
            return self.format
        return _format_from_suffix(self.path) or "csv"

    @model_validator(mode="after")
    def _check_format(self) -> EnrichSpec:
        if self.format is None and _format_from_suffix(self.path) is None:
            raise ValueError(
                f"cannot tell the format of {self.path!r} from its suffix: "
                "set format: csv or parquet"
            )
        return self


def _format_from_suffix(path: str) -> str | None:
    name = path.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return _REFERENCE_SUFFIXES.get(posixpath.splitext(name)[1])


class EnrichStep(_Model):
    """``enrich: {path, on, columns, how, format}``: a lookup join against a reference table."""

    kind: ClassVar[str] = "enrich"
    enrich: EnrichSpec
    """The reference table and the join."""


_PYTHON_FUNCTION = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


class PythonSpec(_Model):
    """Arguments of ``python``."""

    function: str
    """``package.module:function`` taking a ``pyarrow.RecordBatch`` and returning one;
    imported when the pipeline starts, not when the contract is loaded."""

    @property
    def module(self) -> str:
        """The module part of :attr:`function`."""
        return self.function.partition(":")[0]

    @property
    def attribute(self) -> str:
        """The function name part of :attr:`function`."""
        return self.function.partition(":")[2]

    @field_validator("function")
    @classmethod
    def _check_function(cls, value: str) -> str:
        if not _PYTHON_FUNCTION.match(value):
            raise ValueError(
                f"function {value!r} must be 'package.module:function', e.g. 'acme.fixes:clean'"
            )
        return value


class PythonStep(_Model):
    """``python: {function: "package.module:function"}``: for what YAML cannot say."""

    kind: ClassVar[str] = "python"
    python: PythonSpec
    """The function."""


_STEP_MODELS: dict[str, type[_Model]] = {
    "rename": RenameStep,
    "cast": CastStep,
    "parse_timestamp": ParseTimestampStep,
    "derive": DeriveStep,
    "filter": FilterStep,
    "select": SelectStep,
    "drop": DropStep,
    "dedupe": DedupeStep,
    "enrich": EnrichStep,
    "python": PythonStep,
}


def _step_shape(value: Any) -> Any:
    """Check a step is a mapping with one key, a known step name."""
    if isinstance(value, _Model):
        return value
    known = ", ".join(_STEP_MODELS)
    if not isinstance(value, dict) or not value:
        raise PydanticCustomError(
            "step", "a step is a mapping {step_name: arguments}, one of {known}; got {got}",
            {"known": known, "got": _short(value)},
        )
    if len(value) > 1:
        raise PydanticCustomError(
            "step",
            "a step has exactly one key, the step name; got {got} (check the indentation)",
            {"got": ", ".join(map(str, value))},
        )
    name = next(iter(value))
    if name not in _STEP_MODELS:
        near = difflib.get_close_matches(str(name), _STEP_MODELS, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise PydanticCustomError(
            "step", "unknown step {name}{hint}: use one of {known}",
            {"name": repr(name), "hint": hint, "known": known},
        )
    return value


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return _STEP_TAG + str(next(iter(value), ""))
    return _STEP_TAG + str(getattr(value, "kind", ""))


#: One transform step: a single-key mapping ``{step_name: arguments}``.
Step = Annotated[
    Union[  # noqa: UP007 - a tagged union needs the Union form
        Annotated[RenameStep, Tag(_STEP_TAG + "rename")],
        Annotated[CastStep, Tag(_STEP_TAG + "cast")],
        Annotated[ParseTimestampStep, Tag(_STEP_TAG + "parse_timestamp")],
        Annotated[DeriveStep, Tag(_STEP_TAG + "derive")],
        Annotated[FilterStep, Tag(_STEP_TAG + "filter")],
        Annotated[SelectStep, Tag(_STEP_TAG + "select")],
        Annotated[DropStep, Tag(_STEP_TAG + "drop")],
        Annotated[DedupeStep, Tag(_STEP_TAG + "dedupe")],
        Annotated[EnrichStep, Tag(_STEP_TAG + "enrich")],
        Annotated[PythonStep, Tag(_STEP_TAG + "python")],
    ],
    Discriminator(_step_kind),
    BeforeValidator(_step_shape),
]


# ---------------------------------------------------------------------------------------------
# Aggregate, output
# ---------------------------------------------------------------------------------------------

_METRIC_FUNCTIONS = ("count", "sum", "min", "max", "mean", "count_distinct")


class MetricSpec(_Model):
    """One metric: exactly one of the function keys, naming the column it applies to."""

    count: NonEmptyStr | None = None
    """Number of non-null values of the column."""
    sum: NonEmptyStr | None = None
    """Sum of a numeric column."""
    min: NonEmptyStr | None = None
    """Smallest value of the column."""
    max: NonEmptyStr | None = None
    """Largest value of the column."""
    mean: NonEmptyStr | None = None
    """Mean of a numeric column."""
    count_distinct: NonEmptyStr | None = None
    """Number of distinct non-null values of the column."""
    approximate: bool = False
    """For ``count_distinct`` only: a HyperLogLog sketch per group (fixed memory, about 1.6 %
    standard error) instead of the exact set of values."""

    @property
    def function(self) -> str:
        """The metric's function name, e.g. ``sum`` or ``count_distinct``."""
        return next(name for name in _METRIC_FUNCTIONS if getattr(self, name) is not None)

    @property
    def column(self) -> str:
        """The column the function applies to."""
        return str(getattr(self, self.function))

    @model_validator(mode="after")
    def _check_one(self) -> MetricSpec:
        given = [name for name in _METRIC_FUNCTIONS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a metric has exactly one of {', '.join(_METRIC_FUNCTIONS)}; got "
                f"{', '.join(given) or 'none'}"
            )
        if self.approximate and given[0] != "count_distinct":
            raise ValueError("approximate applies to count_distinct only")
        return self


class AggregateSpec(_Model):
    """Group-by metrics over the transformed rows, written as a second Parquet file.

    Computed as partial aggregates per batch and merged at the end: memory grows with the number
    of groups, not rows, and ``max_groups`` caps it.
    """

    by: list[NonEmptyStr] = []
    """Group-by columns; empty means one group for the whole file."""
    metrics: Annotated[dict[NonEmptyStr, MetricSpec], Field(min_length=1)]
    """Output column name → metric."""
    max_groups: int = Field(default=1_000_000, ge=1)
    """More groups than this fails the file (``ValidationError``) instead of exhausting memory."""
    path: NonEmptyStr
    """Where the aggregate Parquet file goes: relative to the output unless absolute or
    ``s3://``."""


class OutputSpec(_Model):
    """How the Parquet output is written."""

    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    """Parquet codec."""
    compression_level: int | None = None
    """Codec level (zstd: 1–22, gzip: 0–9); unset is the codec's default."""
    row_group_bytes: Size = DEFAULT_ROW_GROUP_BYTES
    """Arrow bytes buffered per row group: an integer or a size such as ``16MiB`` (the largest
    term of the memory model)."""
    row_group_rows: int = Field(default=DEFAULT_ROW_GROUP_ROWS, ge=1)
    """Most rows per row group."""
    max_rows_per_file: int | None = Field(default=None, ge=1)
    """Start a new file after this many rows (per partition); unset: one file."""
    max_bytes_per_file: Size | None = None
    """Start a new file after roughly this many bytes (``512MB``); unset: one file."""
    partition_by: list[NonEmptyStr] = []
    """Columns whose values name Hive-style ``col=value/`` directories."""
    max_open_writers: int = Field(default=32, ge=1)
    """Most partition files open at once (each holds a row-group buffer); beyond it the least
    recently used is closed and a later row for it starts a new file."""

    @field_validator("compression_level")
    @classmethod
    def _check_level(cls, value: int | None, info: ValidationInfo) -> int | None:
        codec = info.data.get("compression")
        if value is None or codec is None:
            return value
        if codec in ("none", "snappy"):
            raise ValueError(f"compression {codec} takes no level")
        try:
            pa.Codec(codec, compression_level=value)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise ValueError(f"level {value} is not valid for {codec}: {_one_line(exc)}") from None
        return value

    def write_overrides(self) -> dict[str, Any]:
        """The keys set in the contract, as :class:`engine.config.WriteOptions` keyword arguments.

        ``partition_by`` and ``max_open_writers`` are not write options (the writer takes them
        separately) and are left out; a key set to ``null`` counts as unset.
        """
        names = (
            "compression", "compression_level", "row_group_bytes", "row_group_rows",
            "max_rows_per_file", "max_bytes_per_file",
        )
        return {
            name: getattr(self, name)
            for name in names
            if name in self.model_fields_set and getattr(self, name) is not None
        }


# ---------------------------------------------------------------------------------------------
# The contract
# ---------------------------------------------------------------------------------------------

_CSV_ONLY = ("delimiter", "quote_char", "header", "column_names")


class Contract(_Model):
    """A dataset contract: what a dataset's files hold and what to make of them."""

    dataset: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    """Name of the dataset (letters, digits, ``_``, ``.``, ``-``)."""
    match: StrList = []
    """Glob(s) on the object key (without ``s3://bucket/``) routing files to this contract;
    ``*`` also matches ``/``. A single string is accepted."""
    format: Literal["csv", "ndjson", "json"] | None = None
    """Input format; unset detects it from the suffix, then the content."""
    options: FormatOptions = FormatOptions()
    """Format options."""
    columns: dict[NonEmptyStr, ColumnSpec]
    """Declared columns, in order: name → type and checks."""
    extra_columns: Literal["keep", "drop", "reject"] = "keep"
    """Input columns not in ``columns``: ``keep`` passes them through (types inferred),
    ``drop`` removes them, ``reject`` fails the file with ``SchemaError``."""
    type_errors: Literal["reject", "fail"] = "reject"
    """A value that does not fit its column's type: ``reject`` the row, or ``fail`` the file
    with ``SchemaError``."""
    rejects: RejectPolicy = RejectPolicy()
    """Where rejects go and the thresholds that fail the file."""
    transforms: list[Step] = []
    """Ordered transform steps applied to the valid rows."""
    aggregate: AggregateSpec | None = None
    """Optional group-by aggregate written next to the output."""
    output: OutputSpec = OutputSpec()
    """Parquet output options."""

    _source_path: str | None = PrivateAttr(default=None)

    @property
    def source_path(self) -> str | None:
        """The file (or ``s3://`` URI) the contract was loaded from; ``None`` for YAML text."""
        return self._source_path

    def matches(self, key: str) -> bool:
        """Whether an object key matches one of the :attr:`match` globs.

        ``fnmatch`` semantics, case sensitive, on the whole key (``*`` also matches ``/``);
        ``False`` when there are no globs.
        """
        return any(fnmatch.fnmatchcase(key, pattern) for pattern in self.match)

    def arrow_schema(self) -> pa.Schema:
        """The declared columns with their Arrow types and nullability, in order."""
        return pa.schema(
            [pa.field(name, spec.arrow_type, nullable=spec.nullable)
             for name, spec in self.columns.items()]
        )

    def read_overrides(self) -> dict[str, Any]:
        """:meth:`FormatOptions.read_overrides`, plus ``format`` when set."""
        out = self.options.read_overrides()
        if self.format is not None:
            out["format"] = self.format
        return out

    def resolve(self, path: str) -> str:
        """A path the contract names (an ``enrich`` table) resolved against the contract file.

        ``s3://`` URIs and absolute paths are returned as they are; a relative path is joined to
        the directory of :attr:`source_path` (local or ``s3://``), or left relative to the working
        directory for a contract given as text.
        """
        if "://" in path or os.path.isabs(path) or self._source_path is None:
            return path
        if "://" in self._source_path:
            return posixpath.join(posixpath.dirname(self._source_path), path)
        return os.path.join(os.path.dirname(self._source_path), path)

    def problems(self) -> list[tuple[Loc, str]]:
        """Cross-reference problems: ``(location, message)`` for each, in contract order.

        Columns named by transforms, ``aggregate`` and ``partition_by`` must exist at that point
        of the pipeline; options must fit the format. Run by validation; empty when valid.
        """
        return _check_references(self)

    @model_validator(mode="after")
    def _check_references(self, info: ValidationInfo) -> Contract:
        if info.context and info.context.get("defer_references"):
            return self  # load_contract reports them with line numbers
        found = self.problems()
        if found:
            raise ValueError("; ".join(f"{_dotted(loc)}: {msg}" for loc, msg in found))
        return self


# ---------------------------------------------------------------------------------------------
# Cross-references: the column set through the pipeline
# ---------------------------------------------------------------------------------------------


@dataclass
class _Columns:
    """The columns at one point of the pipeline, as far as the contract tells."""

    types: dict[str, pa.DataType | None]
    #: undeclared columns may be present (``extra_columns: keep``, after ``python`` or an
    #: ``enrich`` without ``columns``)
    open: bool
    #: name → what removed it, for a clearer message
    removed: dict[str, str] = field(default_factory=dict)

    def check(self, name: str, loc: Loc, problems: list[tuple[Loc, str]]) -> bool:
        if name in self.types:
            return True
        if name in self.removed:
            problems.append((loc, f"column {name!r} was {self.removed[name]}"))
            return False
        if self.open:
            return True
        known = ", ".join(self.types) or "none"
        near = difflib.get_close_matches(name, list(self.types), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        problems.append((loc, f"unknown column {name!r}{hint}; columns here: {known}"))
        return False

    def add(self, name: str, arrow_type: pa.DataType | None) -> None:
        self.types[name] = arrow_type
        self.removed.pop(name, None)

    def remove(self, name: str, why: str) -> None:
        self.types.pop(name, None)
        self.removed[name] = why


def _expr_fields(expr: Any, loc: Loc) -> list[tuple[str, Loc]]:
    if isinstance(expr, FieldExpr):
        return [(expr.path[0], (*loc, "field"))]
    if isinstance(expr, CallExpr):
        out: list[tuple[str, Loc]] = []
        for i, arg in enumerate(expr.args):
            out.extend(_expr_fields(arg, (*loc, "args", i)))
        return out
    return []


def _check_references(contract: Contract) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    options = contract.options
    if contract.format in ("ndjson", "json"):
        for name in _CSV_ONLY:
            if getattr(options, name) is not None:
                problems.append(
                    (("options", name), f"{name} applies to csv, not {contract.format}")
                )
    if contract.format in ("csv", "ndjson") and options.json_path is not None:
        problems.append(
            (("options", "json_path"), f"json_path applies to format json, not {contract.format}")
        )
    if options.column_names is not None:
        for name, spec in contract.columns.items():
            if spec.required and name not in options.column_names:
                problems.append(
                    (
                        ("options", "column_names"),
                        f"required column {name!r} is not in column_names",
                    )
                )

    cols = _Columns(
        types={name: spec.arrow_type for name, spec in contract.columns.items()},
        open=contract.extra_columns == "keep",
    )
    for i, step in enumerate(contract.transforms):
        _simulate(step, cols, ("transforms", i, step.kind), f"transforms[{i}]", problems)

    if contract.aggregate is not None:
        agg = contract.aggregate
        for j, name in enumerate(agg.by):
            cols.check(name, ("aggregate", "by", j), problems)
        for metric_name, metric in agg.metrics.items():
            loc: Loc = ("aggregate", "metrics", metric_name, metric.function)
            if not cols.check(metric.column, loc, problems):
                continue
            arrow_type = cols.types.get(metric.column)
            if metric.function in ("sum", "mean") and arrow_type is not None:
                if not _is_numeric(arrow_type):
                    problems.append(
                        (loc, f"{metric.function} needs a numeric column; "
                              f"{metric.column!r} is {arrow_type}")
                    )
            if metric_name in agg.by:
                problems.append(
                    (("aggregate", "metrics", metric_name), f"metric {metric_name!r} is also a "
                                                            "group-by column")
                )
    for j, name in enumerate(contract.output.partition_by):
        cols.check(name, ("output", "partition_by", j), problems)
    return problems


def _simulate(
    step: Any, cols: _Columns, loc: Loc, where: str, problems: list[tuple[Loc, str]]
) -> None:
    """Check the columns ``step`` names exist, then apply its effect on the column set."""
    if isinstance(step, RenameStep):
        for old, new in step.rename.items():
            if cols.check(old, (*loc, old), problems):
                if new in cols.types and new != old:
                    problems.append(((*loc, old), f"cannot rename {old!r} to {new!r}: "
                                                  "that column already exists"))
                    continue
                arrow_type = cols.types.pop(old, None)
                cols.remove(old, f"renamed to {new!r} by {where}")
                cols.add(new, arrow_type)
    elif isinstance(step, CastStep):
        for name, arrow_type in step.arrow_types.items():
            if cols.check(name, (*loc, name), problems):
                cols.add(name, arrow_type)
    elif isinstance(step, ParseTimestampStep):
        spec = step.parse_timestamp
        if cols.check(spec.column, (*loc, "column"), problems):
            cols.add(spec.column, spec.arrow_type)
    elif isinstance(step, DeriveStep):
        for name, field_loc in _expr_fields(step.derive.expr, (*loc, "expr")):
            cols.check(name, field_loc, problems)
        cols.add(step.derive.name, step.derive.arrow_type)
    elif isinstance(step, FilterStep):
        for name, field_loc in _expr_fields(step.filter, loc):
            cols.check(name, field_loc, problems)
    elif isinstance(step, SelectStep):
        kept = {}
        for j, name in enumerate(step.select):
            if cols.check(name, (*loc, j), problems):
                kept[name] = cols.types.get(name)
        for name in list(cols.types):
            if name not in kept:
                cols.remove(name, f"not selected by {where}")
        cols.types = kept
        cols.open = False
    elif isinstance(step, DropStep):
        for j, name in enumerate(step.drop):
            if cols.check(name, (*loc, j), problems):
                cols.remove(name, f"dropped by {where}")
    elif isinstance(step, DedupeStep):
        for j, name in enumerate(step.dedupe.keys):
            cols.check(name, (*loc, "keys", j), problems)
    elif isinstance(step, EnrichStep):
        spec = step.enrich
        for j, name in enumerate(spec.on):
            cols.check(name, (*loc, "on", j), problems)
        if spec.columns is None:
            cols.open = True
            cols.removed.clear()
        else:
            for j, name in enumerate(spec.columns):
                if name in spec.on:
                    problems.append(((*loc, "columns", j), f"{name!r} is a join key; list only "
                                                           "the columns to add"))
                elif name in cols.types:
                    problems.append(((*loc, "columns", j), f"column {name!r} already exists"))
                else:
                    cols.add(name, None)
    elif isinstance(step, PythonStep):
        cols.open = True
        cols.removed.clear()


# ---------------------------------------------------------------------------------------------
# Loading: YAML with line numbers
# ---------------------------------------------------------------------------------------------


class _ContractLoader(yaml.SafeLoader):
    """Safe YAML with YAML 1.2 scalars: ``on``/``yes``/``no`` are strings, dates stay strings."""


_DROPPED_TAGS = {
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}
_ContractLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ContractLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_ContractLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)
_ContractLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


@dataclass(order=True)
class _Problem:
    line: int
    where: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.where + ': ' if self.where else ''}{self.message}"


def load_contract(source: str | os.PathLike[str]) -> Contract:
    """Load and validate a contract.

    Args:
        source: a local path or ``s3://`` URI of a YAML file, or the YAML text itself (any string
            holding a newline).

    Returns:
        The validated contract, with :attr:`Contract.source_path` set for a file.

    Raises:
        ContractError: the contract is invalid; the message lists every problem found, one per
            line, each with its line number and key path.
        InputNotFoundError: the file does not exist.

    """
    if isinstance(source, str) and "\n" in source:
        uri, text = "<string>", source
        path = None
    else:
        uri = path = os.fspath(source)
        text = _read_text(uri)
    contract = _parse(text, uri)
    contract._source_path = path
    return contract


def _read_text(uri: str) -> str:
    from engine.io import open_input

    with open_input(uri) as stream:
        data = stream.read(MAX_CONTRACT_BYTES + 1)
    if len(data) > MAX_CONTRACT_BYTES:
        raise ContractError(
            f"larger than {MAX_CONTRACT_BYTES // 1024} KiB: not a contract", uri=uri
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ContractError(f"not UTF-8 text (byte {exc.start})", uri=uri) from None


def _parse(text: str, uri: str) -> Contract:
    loader = _ContractLoader(text)
    problems: list[_Problem] = []
    try:
        root = loader.get_single_node()
        if root is not None:  # before constructing, which folds merge keys (<<) into mappings
            problems = _duplicate_keys(root)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ContractError(_yaml_message(exc), uri=uri) from None
    except yaml.YAMLError as exc:
        raise ContractError(f"invalid YAML: {_one_line(exc)}", uri=uri) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict) or root is None:
        got = "an empty document" if data is None else f"a {type(data).__name__}"
        line = root.start_mark.line + 1 if root is not None else 1
        raise ContractError(
            f"line {line}: a contract is a YAML mapping (dataset:, columns:, ...), got {got}",
            uri=uri,
        )

    contract: Contract | None = None
    try:
        contract = Contract.model_validate(data, context={"defer_references": True})
    except PydanticValidationError as exc:
        problems.extend(_from_pydantic(exc, root))
    except RecursionError:
        raise ContractError(
            "the contract refers to itself (a YAML alias inside its own anchor) or nests too "
            "deeply", uri=uri,
        ) from None
    if contract is not None:
        problems.extend(
            _Problem(_line_of(root, loc), _dotted(loc), msg) for loc, msg in contract.problems()
        )
    if problems:
        problems.sort(key=lambda p: p.line)
        raise ContractError("\n".join(map(str, problems)), uri=uri)
    assert contract is not None
    return contract


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    """``line N: invalid YAML: ...`` from a PyYAML error and its marks."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    what = []
    if exc.context:
        started = exc.context_mark.line + 1 if exc.context_mark is not None else None
        what.append(exc.context + (f" (line {started})" if started and started != line else ""))
    if exc.problem:
        what.append(exc.problem)
    return f"line {line}: invalid YAML: {': '.join(what) or _one_line(exc)}"


def _duplicate_keys(root: yaml.Node) -> list[_Problem]:
    """A problem for each key written twice in one mapping (YAML would keep the last)."""
    out: list[_Problem] = []
    visited: set[int] = set()  # an alias is the anchored node again, possibly an ancestor
    pending: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while pending:
        node, loc = pending.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        out.append(_Problem(key.start_mark.line + 1, _dotted((*loc, key.value)),
                                            "duplicate key (the last one would silently win)"))
                    seen.add(key.value)
                    pending.append((value, (*loc, key.value)))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend((item, (*loc, i)) for i, item in enumerate(node.value))
    return out


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


def _line_of(root: yaml.Node, loc: Loc) -> int:
    """1-based line of the key (or list item) ``loc`` names.

    When ``loc`` does not exist in the YAML (a missing key), the closest existing parent's line.
    """
    node = root
    line = root.start_mark.line
    for part in loc:
        if _is_tag(part):
            continue
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    node, line = value, key.start_mark.line
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1


#: Error types raised by this module, whose messages already show the offending value.
_OWN_ERRORS = ("size", "step", "expression")


def _from_pydantic(exc: PydanticValidationError, root: yaml.Node) -> list[_Problem]:
    errors = exc.errors(include_url=False)
    # A misspelt key also makes the key it stands for "missing": report only the misspelling.
    misspelt = {
        (tuple(e["loc"][:-1]), near)
        for e in errors
        if e["type"] == "extra_forbidden"
        for near in difflib.get_close_matches(
            str(e["loc"][-1]), _allowed_keys(tuple(e["loc"][:-1])), n=1
        )
    }
    out = []
    for error in errors:
        loc: Loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "missing" and (loc[:-1], str(loc[-1])) in misspelt:
            continue
        if kind == "value_error":
            message = str(error["ctx"]["error"])
        elif kind == "extra_forbidden":
            message = _unknown_key_message(loc)
        elif kind == "missing":
            message = "missing required key"
        else:
            message = error["msg"]
            value = error.get("input")
            if kind not in _OWN_ERRORS and (
                isinstance(value, str | int | float | bool) or value is None
            ):
                message += f" (got {_short(value)})"
        out.append(_Problem(_line_of(root, loc), _dotted(loc), message))
    return out


def _unknown_key_message(loc: Loc) -> str:
    key = str(loc[-1])
    allowed = _allowed_keys(loc[:-1])
    if not allowed:
        return f"unknown key {key!r}"
    near = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown key {key!r}{hint}; allowed here: {', '.join(allowed)}"


def _allowed_keys(loc: Loc) -> list[str]:
    """The keys the model at ``loc`` accepts (aliases as written in YAML)."""
    model = _model_at(loc)
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


_TAGGED_MODELS: dict[str, type[_Model]] = {
    **{_STEP_TAG + name: model for name, model in _STEP_MODELS.items()},
    _EXPR_TAG + "field": FieldExpr,
    _EXPR_TAG + "literal": LiteralExpr,
    _EXPR_TAG + "call": CallExpr,
}


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or type(annotation).__name__ == "UnionType":
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _model_at(loc: Loc) -> type[BaseModel] | None:
    annotation: Any = Contract
    for part in loc:
        if _is_tag(part):
            annotation = _TAGGED_MODELS.get(str(part))
            continue
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found = [
                info for name, info in annotation.model_fields.items()
                if (info.alias or name) == part
            ]
            if not found:
                return None
            annotation = found[0].annotation
        elif get_origin(annotation) is list and isinstance(part, int):
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
