"""Output-side contract models: the group-by aggregate and the Parquet output options."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pyarrow as pa
from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engine.config import DEFAULT_ROW_GROUP_BYTES, DEFAULT_ROW_GROUP_ROWS
from engine.contract.base import NonEmptyStr, Size, _Model
from engine.io.uri import one_line

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


class ProjectionSpec(_Model):
    """Athena partition projection of one partition column (``output.partition_projection``).

    Athena computes the column's partitions from these rules at query time instead of reading
    them from the Glue Data Catalog, so the pipeline registers none. Each key is the table
    property ``projection.<column>.<key>`` of Athena's documentation.
    """

    type: Literal["enum", "integer", "date", "injected"]
    """``enum`` (listed values), ``integer`` (a range of whole numbers), ``date`` (a range of
    dates or times) or ``injected`` (the query's ``WHERE`` must give the value)."""
    values: list[NonEmptyStr] | None = None
    """``enum``: the values, as they appear in the folder names."""
    range: Annotated[list[NonEmptyStr], Field(min_length=2, max_length=2)] | None = None
    """``integer``: the first and last value (``[0, 100]`` as strings); ``date``: the first and
    last date in ``format``, or relative to ``NOW`` (``["2020-01-01", "NOW"]``)."""
    format: NonEmptyStr | None = None
    """``date``: the folder's date pattern (Java ``DateTimeFormatter``, e.g. ``yyyy-MM-dd``)."""
    interval: int | None = Field(default=None, ge=1)
    """``integer`` or ``date``: the step between values (default 1)."""
    unit: Literal["YEARS", "MONTHS", "WEEKS", "DAYS", "HOURS", "MINUTES", "SECONDS"] | None = None
    """``date``: the unit of ``interval`` (``DAYS``, ``HOURS``, ...)."""
    digits: int | None = Field(default=None, ge=1)
    """``integer``: the number of digits, zero-padded (``digits: 2`` reads ``05``)."""

    @model_validator(mode="after")
    def _check_keys(self) -> ProjectionSpec:
        allowed = {"enum": {"values"}, "integer": {"range", "interval", "digits"},
                   "date": {"range", "format", "interval", "unit"}, "injected": set()}[self.type]
        required = {"enum": {"values"}, "integer": {"range"}, "date": {"range", "format"},
                    "injected": set()}[self.type]
        given = {name for name in ("values", "range", "format", "interval", "unit", "digits")
                 if getattr(self, name) is not None}
        if given - allowed:
            raise ValueError(f"{', '.join(sorted(given - allowed))}: not a key of a "
                             f"projection of type {self.type}")
        if required - given:
            raise ValueError(f"a projection of type {self.type} needs "
                             f"{', '.join(sorted(required))}")
        if self.type == "integer" and self.range is not None:
            for bound in self.range:
                try:
                    int(bound)
                except ValueError:
                    raise ValueError(f"range: {bound!r} is not a whole number") from None
        return self

    def table_properties(self, column: str) -> dict[str, str]:
        """The Athena table properties ``projection.<column>.*`` this spec sets."""
        out = {f"projection.{column}.type": self.type}
        if self.values is not None:
            out[f"projection.{column}.values"] = ",".join(self.values)
        if self.range is not None:
            out[f"projection.{column}.range"] = ",".join(self.range)
        if self.format is not None:
            out[f"projection.{column}.format"] = self.format
        if self.interval is not None:
            out[f"projection.{column}.interval"] = str(self.interval)
        if self.unit is not None:
            out[f"projection.{column}.interval.unit"] = self.unit
        if self.digits is not None:
            out[f"projection.{column}.digits"] = str(self.digits)
        return out


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
    partition_projection: dict[NonEmptyStr, ProjectionSpec] | None = None
    """The pipeline's catalog table: Athena partition projection, one entry per column of
    ``partition_by``, instead of registering each new partition in the Glue Data Catalog."""

    @model_validator(mode="after")
    def _check_projection(self) -> OutputSpec:
        if self.partition_projection is None:
            return self
        if set(self.partition_projection) != set(self.partition_by):
            raise ValueError(
                "partition_projection needs exactly the partition_by columns "
                f"({', '.join(self.partition_by) or 'none'}); got "
                f"{', '.join(self.partition_projection) or 'none'}")
        return self

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
            raise ValueError(f"level {value} is not valid for {codec}: {one_line(exc)}") from None
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
