"""Transform steps of a contract, one model per step, and the tagged :data:`Step` union."""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, ClassVar, Literal, Union

import pyarrow as pa
from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.contract.base import (
    _STEP_TAG,
    NonEmptyStr,
    _check_zone,
    _Model,
    _parse_arrow_type,
    _short,
    _wrap_str,
)
from engine.contract.expressions import Expr
from engine.io.uri import name_suffix

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
    return _REFERENCE_SUFFIXES.get(name_suffix(path))


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
