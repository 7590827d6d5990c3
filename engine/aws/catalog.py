"""The Glue Data Catalog: one table per dataset, in the stack's database (``GLUE_DATABASE``).

Validate looks the dataset's table up (:func:`snapshot`); the output step creates or updates it
and registers the file's new partitions (:func:`publish`), once the file's data is in the table
location (:mod:`engine.aws.layout`):

- **name**: the dataset's folder in lower case, every other character than a letter, a digit or
  ``_`` as ``_`` (Athena's rule for table names): ``orders``, ``drop/zone`` → ``drop_zone``.
- **columns**: the Parquet files' schema in Glue (Hive) types (:mod:`engine.aws.glue_types`);
  a contract's ``partition_by`` columns are the partition keys (the files do not hold them, as
  Hive expects). With a contract, the columns are the contract's output, as written; without
  one, the dataset's schema grows by the rules of :mod:`engine.aws.evolution`. The Arrow schema
  is kept in the table's parameter ``chunkwise.arrow_schema`` (base64 Arrow IPC): what a later
  file is read with (a column added by hand is read as its Glue type says).
- **storage**: Parquet (``MapredParquetInputFormat``/``ParquetHiveSerDe``), ``EXTERNAL_TABLE``,
  ``classification=parquet``, the table location.
- **partitions**: ``BatchCreatePartition`` of the partitions the file wrote, 100 at a time; one
  that exists already is left as it is (a retry or another file registered it). With the
  contract's ``output.partition_projection``, Athena partition projection instead: the table's
  ``projection.*`` properties and ``storage.location.template``, and no partition is registered.

Concurrency: executions for one dataset may run at once. A table two executions create at the
same time is created once (the other finds it and updates it); an update names the table
version it read (``VersionId``), and a ``ConcurrentModificationException`` makes it read, merge
and try again. Throttling is a :class:`~engine.errors.TransientError` (the state machine
retries). A table created for another location, or whose location contains (or lies inside)
another table's, is refused with a :class:`~engine.errors.UsageError`: query engines would read
one table's files as the other's.

Example:
    >>> table_name("drop/zone-1"), table_name("Orders.v2")
    ('drop_zone_1', 'orders_v2')
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from engine.aws import evolution
from engine.aws.glue_types import arrow_type, column_comment, glue_type, partition_key_type
from engine.aws.settings import SettingsError
from engine.errors import SchemaError, TransientError, UsageError

__all__ = [
    "PARQUET_INPUT_FORMAT",
    "PARQUET_OUTPUT_FORMAT",
    "PARQUET_SERDE",
    "SCHEMA_PARAMETER",
    "decode_schema",
    "describe",
    "encode_schema",
    "publish",
    "snapshot",
    "table_name",
    "table_schema",
]

PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
#: The table parameter holding the dataset's Arrow schema (base64 Arrow IPC).
SCHEMA_PARAMETER = "chunkwise.arrow_schema"
#: The table parameter naming the dataset's folder.
DATASET_PARAMETER = "chunkwise.dataset"
#: BatchCreatePartition takes at most 100 partitions.
MAX_PARTITIONS_PER_CALL = 100
#: Read-merge-update rounds before a contended table is left to the state machine's retry.
UPDATE_ATTEMPTS = 5

_THROTTLING = frozenset({"ThrottlingException", "InternalServiceException",
                         "OperationTimeoutException", "ServiceUnavailableException"})
_OWN_PARAMETERS = ("projection.", "storage.location.template", "chunkwise.")
_TABLE_INPUT_KEYS = ("Description", "Owner", "Retention", "TargetTable")


def table_name(dataset: str) -> str:
    """The table of a dataset (its folder): lower case, ``_`` for anything but ``[a-z0-9_]``."""
    return re.sub(r"[^a-z0-9_]", "_", dataset.lower()).strip("_") or "dataset"


def encode_schema(schema: pa.Schema) -> str:
    """``schema`` as base64 Arrow IPC (a table parameter, a state value)."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def decode_schema(text: str) -> pa.Schema:
    """The inverse of :func:`encode_schema`."""
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


@contextmanager
def _glue_errors(what: str) -> Iterator[None]:
    """Glue's throttling as TransientError; a missing database as a deployment problem."""
    import botocore.exceptions

    try:
        yield
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message") or ""
        if code in _THROTTLING:
            raise TransientError(f"Glue {code} ({what}): {message}") from exc
        if code == "EntityNotFoundException" and "database" in message.lower():
            raise SettingsError(f"GLUE_DATABASE: {message}") from exc
        raise


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _get_table(glue: Any, database: str, table: str) -> dict[str, Any] | None:
    import botocore.exceptions

    try:
        with _glue_errors(f"GetTable {database}.{table}"):
            return glue.get_table(DatabaseName=database, Name=table)["Table"]  # type: ignore[no-any-return]
    except botocore.exceptions.ClientError as exc:
        if _code(exc) == "EntityNotFoundException":
            return None
        raise


def _folder(location: str) -> str:
    return location if location.endswith("/") else location + "/"


def table_schema(table: Mapping[str, Any]) -> pa.Schema:
    """The Arrow schema of a Glue table's columns (partition keys left out).

    Each column takes the type of the same column in the ``chunkwise.arrow_schema`` parameter
    when that still has the column's Glue type, else the type its Glue type names
    (:func:`~engine.aws.glue_types.arrow_type`): a column added or changed by hand is read as
    the catalog says.
    """
    stored: dict[str, pa.Field] = {}
    text = (table.get("Parameters") or {}).get(SCHEMA_PARAMETER)
    if text:
        stored = {f.name.lower(): f for f in decode_schema(text)}
    fields = []
    for column in (table.get("StorageDescriptor") or {}).get("Columns") or []:
        name, hive = column["Name"], column["Type"]
        known = stored.get(name.lower())
        if known is not None and glue_type(known.type, name) == hive.replace(" ", "").lower():
            fields.append(pa.field(known.name, known.type))
        else:
            fields.append(pa.field(name, arrow_type(hive)))
    return pa.schema(fields)


def snapshot(glue: Any, database: str, dataset: str, location: str, *,
             schema: bool) -> dict[str, Any]:
    """The state's ``dataset`` entry: where the dataset's table is, and its schema.

    ``name`` (the folder), ``database``, ``table``, ``location``, and with ``schema`` the
    table's Arrow schema (``schema``: base64; ``None`` before the dataset's first file).

    Raises:
        UsageError: the table exists for another location.
        TransientError: Glue throttled the call.
    """
    name = table_name(dataset)
    entry: dict[str, Any] = {"name": dataset, "database": database, "table": name,
                             "location": location, "schema": None}
    if schema:
        table = _get_table(glue, database, name)
        if table is not None:
            _check_location(table, database, location)
            entry["schema"] = encode_schema(table_schema(table))
    return entry


def _check_location(table: Mapping[str, Any], database: str, location: str) -> None:
    found = (table.get("StorageDescriptor") or {}).get("Location") or ""
    if _folder(found) != _folder(location):
        raise UsageError(f"the Glue table {database}.{table['Name']} describes {found}, not "
                         f"{location}: two datasets map to one table name; rename one dataset")


def _check_overlap(glue: Any, database: str, name: str, location: str) -> None:
    """Refuse a new table whose location contains, or lies inside, another table's."""
    mine = _folder(location)
    with _glue_errors(f"GetTables {database}"):
        pages = glue.get_paginator("get_tables").paginate(DatabaseName=database)
        for page in pages:
            for other in page.get("TableList", []):
                theirs = _folder((other.get("StorageDescriptor") or {}).get("Location") or "")
                if other["Name"] != name and theirs != "/" and (
                        mine.startswith(theirs) or theirs.startswith(mine)):
                    raise UsageError(
                        f"the dataset folder {mine} and the Glue table {database}."
                        f"{other['Name']} ({theirs}) overlap: query engines would read one's "
                        "files as the other's; give these files a contract naming a dataset "
                        "of their own")


def _columns(schema: pa.Schema) -> list[dict[str, Any]]:
    columns = []
    for field in schema:
        column: dict[str, Any] = {"Name": field.name, "Type": glue_type(field.type, field.name)}
        comment = column_comment(field.type)
        if comment:
            column["Comment"] = comment
        columns.append(column)
    return columns


def _storage(columns: list[dict[str, Any]], location: str) -> dict[str, Any]:
    return {
        "Columns": columns,
        "Location": location,
        "InputFormat": PARQUET_INPUT_FORMAT,
        "OutputFormat": PARQUET_OUTPUT_FORMAT,
        "Compressed": False,
        "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE,
                      "Parameters": {"serialization.format": "1"}},
        "StoredAsSubDirectories": False,
    }


def _parameters(existing: Mapping[str, str], dataset: str, schema: pa.Schema,
                projection: Mapping[str, Any] | None, location: str,
                partition_keys: Sequence[str]) -> dict[str, str]:
    """The table's parameters: the caller's own kept, chunkwise's and projection's set anew."""
    out = {k: v for k, v in existing.items() if not k.startswith(_OWN_PARAMETERS)}
    out.update({"classification": "parquet", "EXTERNAL": "TRUE", DATASET_PARAMETER: dataset,
                SCHEMA_PARAMETER: encode_schema(schema)})
    if projection:
        out["projection.enabled"] = "true"
        for column in partition_keys:
            out.update(projection[column].table_properties(column))
        out["storage.location.template"] = _folder(location) + "/".join(
            f"{column}=${{{column}}}" for column in partition_keys) + "/"
    return out


def _table_input(name: str, existing: Mapping[str, Any] | None, dataset: str,
                 schema: pa.Schema, partition_keys: Sequence[pa.Field], location: str,
                 projection: Mapping[str, Any] | None) -> dict[str, Any]:
    base = {k: existing[k] for k in _TABLE_INPUT_KEYS if existing and k in existing}
    return {
        **base,
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": _parameters((existing or {}).get("Parameters") or {}, dataset, schema,
                                  projection, location, [f.name for f in partition_keys]),
        "PartitionKeys": [{"Name": f.name, "Type": partition_key_type(f.type)}
                          for f in partition_keys],
        "StorageDescriptor": _storage(_columns(schema), location),
    }


def publish(glue: Any, dataset: Mapping[str, Any], written: pa.Schema, *,
            partition_keys: Sequence[pa.Field] = (),
            partitions: Iterable[tuple[Sequence[str], str]] = (),
            contract: bool, projection: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Create or update the dataset's table for a file written with ``written``.

    Args:
        glue: a Glue client.
        dataset: the state's ``dataset`` entry (:func:`snapshot`).
        written: the Parquet files' schema (partition columns not included).
        partition_keys: the partition columns, outermost first, with their Arrow types.
        partitions: ``(values, location)`` of each partition the file wrote into.
        contract: the columns are a contract's (``written`` replaces them) rather than grown by
            the dataset's rules.
        projection: the contract's ``partition_projection`` (column → spec), or ``None``.

    Returns:
        ``{"database", "table", "location", "created", "changes", "partitions_added"}``.

    Raises:
        SchemaError: a column the dataset cannot take (no contract), or partition keys that
            are not the table's.
        UsageError: the table's location is another, or overlaps another table's.
        TransientError: throttling, or the table kept changing under this update.
    """
    import botocore.exceptions

    database, name, location = dataset["database"], dataset["table"], dataset["location"]
    folder = str(dataset["name"])
    for _ in range(UPDATE_ATTEMPTS):
        table = _get_table(glue, database, name)
        if table is not None:
            _check_location(table, database, location)
            have = [k["Name"] for k in table.get("PartitionKeys") or []]
            want = [f.name for f in partition_keys]
            if [k.lower() for k in have] != [k.lower() for k in want]:
                raise SchemaError(f"the Glue table {database}.{name} is partitioned by "
                                  f"{have or 'nothing'}, this file by {want or 'nothing'}: a "
                                  "dataset keeps its partition columns")
            current = table_schema(table)
        else:
            current = None
        if contract:
            same = current is None or _columns(current) == _columns(written)
            schema, changes = written, [] if same else ["columns: the contract's output"]
        else:
            schema, changes = evolution.merge(current, written, dataset_name=folder)
        table_input = _table_input(name, table, folder, schema, partition_keys, location,
                                   projection)
        try:
            if table is None:
                _check_overlap(glue, database, name, location)
                with _glue_errors(f"CreateTable {database}.{name}"):
                    glue.create_table(DatabaseName=database, TableInput=table_input)
            elif changes or _differs(table, table_input):
                # the version read: Glue refuses the update if another one came in between
                version = {"VersionId": table["VersionId"]} if table.get("VersionId") else {}
                with _glue_errors(f"UpdateTable {database}.{name}"):
                    glue.update_table(DatabaseName=database, TableInput=table_input, **version)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in ("AlreadyExistsException", "ConcurrentModificationException"):
                continue  # another execution got there first: read it again and merge
            raise
        break
    else:
        raise TransientError(f"the Glue table {database}.{name} kept changing during "
                             f"{UPDATE_ATTEMPTS} updates")
    added = 0 if projection else _register(glue, database, name, table_input, partitions)
    return {"database": database, "table": name, "location": location,
            "created": table is None, "changes": changes, "partitions_added": added}


def _described(columns: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    return [(c["Name"], c["Type"], c.get("Comment") or "") for c in columns]


def _differs(table: Mapping[str, Any], table_input: Mapping[str, Any]) -> bool:
    """Whether the table lacks something of ``table_input`` (its parameters, storage, keys)."""
    sd, want = table.get("StorageDescriptor") or {}, table_input["StorageDescriptor"]
    return ((table.get("Parameters") or {}) != table_input["Parameters"]
            or _described(sd.get("Columns") or []) != _described(want["Columns"])
            or (sd.get("SerdeInfo") or {}).get("SerializationLibrary") != PARQUET_SERDE
            or _described(table.get("PartitionKeys") or [])
            != _described(table_input["PartitionKeys"]))


def _register(glue: Any, database: str, name: str, table_input: Mapping[str, Any],
              partitions: Iterable[tuple[Sequence[str], str]]) -> int:
    """BatchCreatePartition of ``partitions``; those that exist already are not an error."""
    unique = {tuple(values): location for values, location in partitions}
    columns = table_input["StorageDescriptor"]["Columns"]
    inputs = [{"Values": list(values),
               "StorageDescriptor": _storage(columns, location)}
              for values, location in sorted(unique.items())]
    added = 0
    for start in range(0, len(inputs), MAX_PARTITIONS_PER_CALL):
        batch = inputs[start:start + MAX_PARTITIONS_PER_CALL]
        with _glue_errors(f"BatchCreatePartition {database}.{name}"):
            response = glue.batch_create_partition(DatabaseName=database, TableName=name,
                                                   PartitionInputList=batch)
        failed = [e for e in response.get("Errors") or []
                  if e.get("ErrorDetail", {}).get("ErrorCode") != "AlreadyExistsException"]
        if failed:
            detail = failed[0].get("ErrorDetail", {})
            code = detail.get("ErrorCode", "")
            message = (f"Glue BatchCreatePartition {database}.{name}: {len(failed)} partitions "
                       f"not registered, e.g. {failed[0].get('PartitionValues')}: {code} "
                       f"{detail.get('ErrorMessage', '')}")
            raise TransientError(message) if code in _THROTTLING else RuntimeError(message)
        added += len(batch) - len(response.get("Errors") or [])
    return added


def describe(glue: Any, database: str, table: str) -> dict[str, Any] | None:
    """The table as ``pipeline run --json`` shows it; ``None`` if there is no such table.

    ``{"database", "table", "location", "columns": [{"name", "type"}], "partition_keys":
    [{"name", "type"}], "partitions": [[values], ...], "projection": bool}``.
    """
    found = _get_table(glue, database, table)
    if found is None:
        return None
    partitions: list[list[str]] = []
    with _glue_errors(f"GetPartitions {database}.{table}"):
        for page in glue.get_paginator("get_partitions").paginate(DatabaseName=database,
                                                                   TableName=table):
            partitions += [list(p["Values"]) for p in page.get("Partitions", [])]
    sd = found.get("StorageDescriptor") or {}
    return {
        "database": database,
        "table": table,
        "location": sd.get("Location"),
        "columns": [{"name": c["Name"], "type": c["Type"]} for c in sd.get("Columns") or []],
        "partition_keys": [{"name": k["Name"], "type": k["Type"]}
                           for k in found.get("PartitionKeys") or []],
        "partitions": sorted(partitions),
        "projection": (found.get("Parameters") or {}).get("projection.enabled") == "true",
    }
