"""Transform steps of a contract, one model per step, and the tagged :data:`Step` union."""

from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Annotated, Any, ClassVar, Literal, Union
from urllib.parse import urlsplit

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
from engine.io.uri import name_suffix, one_line

# ---------------------------------------------------------------------------------------------
# Transform steps
# ---------------------------------------------------------------------------------------------



def _checked_types(value: dict[str, str]) -> dict[str, str]:
    """``value`` (column → Arrow type name) when every type parses; else which one does not."""
    for name, type_name in value.items():
        try:
            _parse_arrow_type(type_name)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return value

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
        return _checked_types(value)


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


class EnrichApiCache(_Model):
    """The process-wide cache of ``enrich_api`` answers."""

    ttl_s: Annotated[float, Field(gt=0)] = 3600
    """Seconds an answer (a key's fields, or that the API does not know it) is reused."""
    max_keys: Annotated[int, Field(gt=0, le=10_000_000)] = 100_000
    """Keys kept at most; past it the least recently used are forgotten."""


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a URL's host name, without brackets) is this machine's loopback."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _null_is_named(value: Any) -> Any:
    # YAML reads an unquoted `on_missing: null` as None; the user meant the mode.
    return "null" if value is None else value


class EnrichApiSpec(_Model):
    """Arguments of ``enrich_api``."""

    url: NonEmptyStr
    """The API: ``https://`` (``http://`` only on a loopback address, for tests). ``per_key``
    URLs name key columns as ``{column}`` placeholders in the path or query."""
    on: Annotated[list[NonEmptyStr], BeforeValidator(_wrap_str), Field(min_length=1)]
    """Key column(s); only distinct keys not already cached are requested."""
    columns: Annotated[dict[NonEmptyStr, NonEmptyStr], Field(min_length=1)]
    """Fields of a result to add as columns → their Arrow types."""
    protocol: Literal["batch", "per_key"] = "batch"
    """``batch``: ``POST {"keys": [{<on columns>}, ...]}``, answered by a list of result
    objects holding the key fields and the added ones; ``per_key``: one ``GET`` per key."""
    results_path: NonEmptyStr | None = None
    """JMESPath to the results in the response: the list of result objects (``batch``,
    default ``results``) or the result object (``per_key``, default the whole response)."""
    secret: NonEmptyStr | None = None
    """Secrets Manager id (name or ARN) of the token: the SecretString, or JSON with a
    ``token`` key; unset sends no token."""
    auth_header: NonEmptyStr = "Authorization"
    """Header the token is sent in, as ``Bearer <token>``."""
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 500
    """Distinct keys per request (``batch``)."""
    concurrency: Annotated[int, Field(ge=1, le=32)] = 4
    """Requests in flight at most."""
    rate_limit_per_s: Annotated[float, Field(gt=0)] | None = None
    """Requests started per second at most, across the step's threads; unset: no limit."""
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 5
    """Seconds a request may take, connecting and reading together."""
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    """Attempts per request: 429, 5xx, timeouts and resets are retried with backoff and
    jitter, honouring ``Retry-After``; then the file fails with ``TransientError``."""
    on_missing: Annotated[Literal["null", "reject", "fail"],
                          BeforeValidator(_null_is_named)] = "null"
    """A key the API does not return (or a null key): ``null`` leaves the added columns
    null, ``reject`` rejects the row, ``fail`` fails the file."""
    cache: EnrichApiCache = EnrichApiCache()
    """How long and how many answers the process keeps."""

    @property
    def arrow_types(self) -> dict[str, pa.DataType]:
        """Added column → parsed Arrow type."""
        return {name: _parse_arrow_type(t) for name, t in self.columns.items()}

    @property
    def host(self) -> str:
        """The host the step talks to (all an error names of the URL)."""
        return urlsplit(self.url).hostname or ""

    @property
    def placeholders(self) -> list[str]:
        """The ``{column}`` placeholders of :attr:`url`, in order."""
        return _PLACEHOLDER.findall(self.url)

    @property
    def path(self) -> str:
        """:attr:`results_path`, or the protocol's default."""
        if self.results_path is not None:
            return self.results_path
        return "results" if self.protocol == "batch" else "@"

    @field_validator("columns")
    @classmethod
    def _check_types(cls, value: dict[str, str]) -> dict[str, str]:
        return _checked_types(value)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        # The URL is the only place the step may reach: checked whole here, and the data only
        # ever fills placeholders in its path or query, percent-encoded (engine/enforce).
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"url {value!r} must be an https:// URL with a host")
        if "{" in parts.netloc or "}" in parts.netloc:
            raise ValueError("url: a placeholder may fill the path or query, never the host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("url: no credentials in the URL; put the token in `secret`")
        if parts.fragment:
            raise ValueError("url: no #fragment")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError(f"url must be https:// (http:// only on a loopback address, for "
                             f"tests); got {parts.scheme}://{parts.hostname}")
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when asked
        except ValueError as exc:
            raise ValueError(f"url: {exc}") from None
        return value

    @field_validator("results_path")
    @classmethod
    def _check_results_path(cls, value: str | None) -> str | None:
        if value is not None:
            import jmespath  # ships with botocore
            from jmespath.exceptions import JMESPathError

            try:
                jmespath.compile(value)
            except JMESPathError as exc:
                raise ValueError(f"results_path is not JMESPath: {one_line(exc)}") from None
        return value

    @model_validator(mode="after")
    def _check_protocol(self) -> EnrichApiSpec:
        names = self.placeholders
        if self.protocol == "batch" and ("{" in self.url or "}" in self.url):
            raise ValueError("url: placeholders are for protocol: per_key; a batch request "
                             "sends its keys in the body")
        if self.protocol == "per_key":
            unknown = [n for n in names if n not in self.on]
            if unknown or sorted(set(names)) != sorted(set(self.on)):
                raise ValueError(f"url: a per_key URL names every key column of `on` as "
                                 f"{{column}} and nothing else; on: {list(self.on)}, "
                                 f"placeholders: {names}")
        clash = [c for c in self.columns if c in self.on]
        if clash:
            raise ValueError(f"columns: {clash} are key columns (on); list only the fields "
                             "to add")
        return self


class EnrichApiStep(_Model):
    """``enrich_api: {url, on, columns, ...}``: columns looked up by key from an HTTP API."""

    kind: ClassVar[str] = "enrich_api"
    enrich_api: EnrichApiSpec
    """The API, the keys and the fields to add."""


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
    "enrich_api": EnrichApiStep,
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
        Annotated[EnrichApiStep, Tag(_STEP_TAG + "enrich_api")],
        Annotated[PythonStep, Tag(_STEP_TAG + "python")],
    ],
    Discriminator(_step_kind),
    BeforeValidator(_step_shape),
]
