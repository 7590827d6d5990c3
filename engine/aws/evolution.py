"""One schema per dataset: how a file's columns meet the schema its dataset already has.

A dataset without a contract takes its schema from its first file (the catalog table the output
step creates, :mod:`engine.aws.catalog`). Every later file is read with that schema, so that every
file of the dataset holds each column in one type and a query engine reads them all as one table:

- a column the dataset has is read with the dataset's type (an integer column of a dataset whose
  column is ``double`` is written as ``double``; any column of a ``string`` column as text);
- a column the dataset does not have is added at the end, with the file's own type;
- a column the dataset has but the file lacks stays (the file's rows read it as null);
- a type changes only by a **promotion** (:func:`promotes`): one every earlier file can still be
  read as, by Athena (its documented compatible types for Parquet: ``int`` → ``bigint``,
  ``float`` → ``double``, narrower integers → wider ones) and by Parquet readers (pyarrow,
  DuckDB, Spark cast an integer or float column to a wider one of the same kind); and a
  timestamp's unit may become finer (``timestamp[ms]`` → ``timestamp[us]``: the same Glue
  ``timestamp``, each file keeps its own unit);
- anything else is a :class:`~engine.errors.SchemaError` naming the column, the dataset's type and
  the file's: values that do not parse as the dataset's type (``v`` is ``int64`` in the dataset
  and holds ``"n/a"`` in this file), ``int64`` → ``double`` (Athena cannot read an ``INT64``
  Parquet column as ``double``), or any change inside a ``struct``, ``array`` or ``map``
  (Athena's schema updates do not apply to nested types).

Columns are matched by name without regard to case, as Hive, Athena and Glue do.

Example:
    >>> dataset = pa.schema([("id", pa.int32()), ("v", pa.float64())])
    >>> file = pa.schema([("V", pa.int64()), ("id", pa.int64()), ("note", pa.string())])
    >>> read_schema(dataset, file, dataset_name="events")
    V: double
    id: int64
    note: string
    >>> merged, changes = merge(dataset, read_schema(dataset, file, dataset_name="events"),
    ...                         dataset_name="events")
    >>> merged.names, changes
    (['id', 'v', 'note'], ['id: int32 → int64', 'note: added (string)'])
"""

from __future__ import annotations

import re

import pyarrow as pa

from engine.aws.glue_types import glue_type, plain_type
from engine.errors import SchemaError

__all__ = ["conflict", "merge", "promotes", "read_schema", "with_dataset_types"]

_INTEGER_WIDTHS = (8, 16, 32, 64)
_UNITS = ("s", "ms", "us", "ns")


def _nested(kind: pa.DataType) -> bool:
    return pa.types.is_struct(kind) or pa.types.is_list(kind) or pa.types.is_map(kind)


def promotes(old: pa.DataType, new: pa.DataType) -> bool:
    """Whether a dataset column of type ``old`` may become ``new`` (see the module docstring).

    Example:
        >>> promotes(pa.int32(), pa.int64()), promotes(pa.int64(), pa.float64())
        (True, False)
    """
    old, new = plain_type(old), plain_type(new)
    if pa.types.is_signed_integer(old) and pa.types.is_signed_integer(new):
        return new.bit_width > old.bit_width
    if pa.types.is_float32(old) and pa.types.is_float64(new):
        return True
    if pa.types.is_timestamp(old) and pa.types.is_timestamp(new):
        return old.tz == new.tz and _UNITS.index(new.unit) > _UNITS.index(old.unit)
    return False


def conflict(dataset_name: str, column: str, dataset_type: pa.DataType,
             file_type: pa.DataType, detail: str = "") -> SchemaError:
    """The SchemaError for a column whose type in this file the dataset cannot take."""
    why = f": {detail}" if detail else ""
    return SchemaError(
        f"column {column!r}: the dataset {dataset_name!r} has it as {plain_type(dataset_type)} "
        f"(Glue {glue_type(dataset_type, column)}), this file as {plain_type(file_type)}"
        f"{why}; a dataset's types change only by a promotion (int32 → int64, float32 → "
        "float64, a finer timestamp unit): give the dataset a contract to convert the column, "
        "or correct the file")


def read_schema(dataset: pa.Schema, file: pa.Schema, *, dataset_name: str) -> pa.Schema:
    """The schema to read a file with: its own columns, in its order, with the dataset's types.

    ``file`` is the schema the engine infers for the file (its samples), ``dataset`` the
    dataset's. A column the dataset has takes the dataset's type, or the file's when that is a
    promotion of it; a new column keeps the file's type.

    Raises:
        SchemaError: a nested column whose type differs from the dataset's.
    """
    known = {f.name.lower(): f for f in dataset}
    fields = []
    for field in file:
        have = known.get(field.name.lower())
        if have is None:
            fields.append(field)
            continue
        old, new = plain_type(have.type), plain_type(field.type)
        if (_nested(old) or _nested(new)) and glue_type(old, have.name) != glue_type(
                new, field.name):
            raise conflict(dataset_name, field.name, old, new)
        fields.append(field.with_type(new if promotes(old, new) else old))
    return pa.schema(fields)


def merge(dataset: pa.Schema | None, written: pa.Schema, *,
          dataset_name: str) -> tuple[pa.Schema, list[str]]:
    """The dataset's schema once a file written with ``written`` is in it, and what changed.

    Raises:
        SchemaError: a column of ``written`` is neither the dataset's type nor a promotion of it
            (another file changed the dataset since this one was read).
    """
    if dataset is None:
        return pa.schema([f.with_type(plain_type(f.type)) for f in written]), []
    fields = [f.with_type(plain_type(f.type)) for f in dataset]
    index = {f.name.lower(): i for i, f in enumerate(fields)}
    changes: list[str] = []
    for field in written:
        kind = plain_type(field.type)
        at = index.get(field.name.lower())
        if at is None:
            index[field.name.lower()] = len(fields)
            fields.append(field.with_type(kind))
            changes.append(f"{field.name}: added ({kind})")
            continue
        old = fields[at].type
        if _nested(old) or _nested(kind):
            if glue_type(old, field.name) != glue_type(kind, field.name):
                raise conflict(dataset_name, field.name, old, kind)
        elif promotes(old, kind):
            fields[at] = fields[at].with_type(kind)
            changes.append(f"{fields[at].name}: {old} → {kind}")
        elif kind != old and not promotes(kind, old):  # a narrower file reads as the wider type
            raise conflict(dataset_name, field.name, old, kind)
    return pa.schema(fields), changes


_COLUMN = re.compile(r"column '((?:[^'\\]|\\.)*)'")


def with_dataset_types(error: SchemaError, dataset: pa.Schema, file: pa.Schema, *,
                       dataset_name: str) -> SchemaError:
    """The engine's misfit error (a value that is not the type read with) in the dataset's terms.

    The engine says ``column 'v' holds a value that is not int64``; this names the dataset's type
    and the type the file's samples suggested as well, keeping the record number.
    """
    match = _COLUMN.search(str(error))
    if match is None:
        return error
    name = match.group(1).lower()
    have = next((f for f in dataset if f.name.lower() == name), None)
    seen = next((f for f in file if f.name.lower() == name), None)
    if have is None or seen is None:
        return error
    mapped = conflict(dataset_name, seen.name, have.type, seen.type,
                      f"a value is not {plain_type(have.type)}")
    mapped.uri, mapped.record, mapped.offset = error.uri, error.record, error.offset
    return mapped
