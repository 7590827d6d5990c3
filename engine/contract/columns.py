"""Input-side contract models: declared columns, format options and the reject policy."""

from __future__ import annotations

import codecs
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
)

from engine.config import csv_char_problem
from engine.contract.base import (
    NonEmptyStr,
    _check_zone,
    _is_numeric,
    _is_string,
    _is_temporal,
    _Model,
    _parse_arrow_type,
    _to_python,
    _value_type,
)
from engine.io.uri import one_line

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
                raise ValueError(f"bad regex {value!r} (RE2): {one_line(exc)}") from None
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

    @field_validator("delimiter", "quote_char")
    @classmethod
    def _check_csv_char(cls, value: str | None) -> str | None:
        problem = None if value is None else csv_char_problem(value)
        if problem is not None:
            raise ValueError(problem)
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
