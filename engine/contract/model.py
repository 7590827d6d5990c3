"""The top-level :class:`Contract` model."""

from __future__ import annotations

import fnmatch
import os
import posixpath
from typing import Annotated, Any, Literal

import pyarrow as pa
from pydantic import (
    Field,
    PrivateAttr,
    ValidationInfo,
    model_validator,
)

from engine.contract.base import Loc, NonEmptyStr, StrList, _dotted, _Model
from engine.contract.columns import ColumnSpec, FormatOptions, RejectPolicy
from engine.contract.output import AggregateSpec, OutputSpec
from engine.contract.references import check_references
from engine.contract.steps import Step

# ---------------------------------------------------------------------------------------------
# The contract
# ---------------------------------------------------------------------------------------------


class Contract(_Model):
    """A dataset contract: what a dataset's files hold and what to make of them."""

    dataset: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    """Name of the dataset (letters, digits, ``_``, ``.``, ``-``)."""
    match: StrList = []
    """Glob(s) on the object key (without ``s3://bucket/``) routing files to this contract;
    ``*`` also matches ``/``. A single string is accepted."""
    format: Literal["csv", "ndjson", "json", "parquet"] | None = None
    """Input format; unset detects it from the content's first bytes, the suffix, the text."""
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
        return check_references(self)

    @model_validator(mode="after")
    def _check_references(self, info: ValidationInfo) -> Contract:
        if info.context and info.context.get("defer_references"):
            return self  # load_contract reports them with line numbers
        found = self.problems()
        if found:
            raise ValueError("; ".join(f"{_dotted(loc)}: {msg}" for loc, msg in found))
        return self
