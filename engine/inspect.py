"""``chunkwise inspect``: what a Parquet file or dataset holds, read from its footers alone.

A Parquet file ends with its footer: the schema, and per row group and column the row count,
sizes, codec and statistics (null count, min, max). :func:`inspect_dataset` reads only footers
(``pyarrow.parquet.read_metadata``), never the data pages: on S3 one ranged ``GetObject`` of a
file's last 64 KiB (pyarrow's first read; a larger footer takes a second one), through the
engine's client, so ``AWS_ENDPOINT_URL`` and its error mapping apply.

A directory (or an ``s3://`` prefix) is read as query engines read a table location: every file
under it, except those under a name starting with ``_`` or ``.`` (Athena, Spark, Hive and
``pyarrow.dataset`` skip them: chunkwise keeps its manifests in ``_chunkwise/``); ``col=value``
folders are Hive partitions, discovered as ``pyarrow.dataset`` does (a key is ``int32`` when every
value is an integer in its range, else ``string``; ``__HIVE_DEFAULT_PARTITION__`` is null) and
parsed by its ``HivePartitioning``. A file that is not Parquet among the data is an
:class:`~engine.errors.InputFormatError` naming it: a query engine would fail on it too.

Example:
    >>> import engine
    >>> _ = engine.transform(path, f"{tmp}/orders.parquet")
    >>> summary = inspect_dataset(f"{tmp}/orders.parquet")
    >>> summary["rows"], [c["name"] for c in summary["columns"]], summary["compression"]
    (3, ['order_id', 'country', 'amount'], ['ZSTD'])
    >>> summary["columns"][2]["min"], summary["columns"][2]["max"], summary["columns"][2]["nulls"]
    (3.25, 12.5, 0)
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from engine import io
from engine.errors import EngineError, InputFormatError, InputNotFoundError
from engine.sink.dataset import is_hidden, list_files
from engine.sink.hive import HIVE_DEFAULT_PARTITION

__all__ = ["inspect_dataset"]

#: Footers read at once from S3 (the client keeps 16 connections).
_S3_READERS = 8

_INT = re.compile(r"[+-]?\d+")


def inspect_dataset(path: str) -> dict[str, Any]:
    """Summarise the Parquet file or dataset at ``path`` (local or ``s3://``) from its footers.

    Returns:
        ``{"path", "rows", "bytes", "row_groups", "columns", "files", "partition_keys",
        "partitions", "compression", "created_by", "schema_conflicts", "hidden_files"}``:
        ``columns`` holds ``{"name", "type", "nulls", "min", "max", "compressed_bytes",
        "uncompressed_bytes", "compression", "files"}`` per column (the partition keys last,
        with ``"partition": true``; ``types`` too where files disagree), ``files`` one
        ``{"path", "rows", "row_groups", "bytes", "partition"}`` per data file, ``partitions``
        one ``{"path", "values", "files", "rows", "bytes"}`` per partition folder. Statistics a
        footer lacks are ``None``.

    Raises:
        InputNotFoundError: nothing at ``path``, or no data file under it.
        InputFormatError: a data file is not Parquet.
    """
    root, files, hidden = _data_files(path)
    partitioning = _partitioning([name for name, _ in files])
    keys = partitioning.schema if partitioning is not None else pa.schema([])
    footers = _footers(root, files)
    summaries = []
    for (name, size), meta in zip(files, footers, strict=True):
        partition = None
        if partitioning is not None:
            values = ds.get_partition_keys(partitioning.parse(name))
            partition = {k: values.get(k) for k in keys.names}
        summaries.append((name, size, meta, partition))
    return _summary(path, summaries, keys, hidden)


# ---------------------------------------------------------------------------------------------
# Finding the files
# ---------------------------------------------------------------------------------------------


def _data_files(path: str) -> tuple[str, list[tuple[str, int]], int]:
    """The root, the data files under it (relative name, size) and the count of hidden files."""
    if not path.endswith("/"):
        single = _single_file(path)
        if single is not None:
            return single
        path += "/"
    listed = list_files(path)
    data = [(f.path, f.size) for f in listed if not is_hidden(f.path)]
    if not data:
        what = "nothing" if not listed else f"only {len(listed)} hidden file(s) (_ or . names)"
        raise InputNotFoundError(f"no Parquet data files here: {what}", uri=path)
    return path, data, len(listed) - len(data)


def _single_file(path: str) -> tuple[str, list[tuple[str, int]], int] | None:
    """``path`` as one file (root, [(its name, size)], 0), or ``None`` for a directory."""
    if io.is_s3(path):
        try:
            size = io.object_size(path)
        except InputNotFoundError as exc:
            if exc.message != "object not found":
                raise
            return None  # perhaps a prefix
    else:
        local = io.local_path(path)
        if os.path.isdir(local):
            return None
        size = io.object_size(path)  # InputNotFoundError when missing
    head, _, name = path.rpartition("/")
    return (f"{head}/" if head else ""), [(name, size)], 0


def _partitioning(names: list[str]) -> ds.HivePartitioning | None:
    """The Hive partitioning of the files' folders (keys and types), ``None`` without one.

    A key is ``int32`` when each of its values is an integer in int32's range, else ``string``
    (``pyarrow.dataset``'s discovery without dictionaries).
    """
    values: dict[str, list[str]] = {}
    for name in names:
        for segment in name.split("/")[:-1]:
            key, eq, value = segment.partition("=")
            if eq:
                values.setdefault(urllib.parse.unquote(key), []).append(value)
    if not values:
        return None
    fields = []
    for key, texts in values.items():
        present = [urllib.parse.unquote(t) for t in texts if t != HIVE_DEFAULT_PARTITION]
        ints = all(_INT.fullmatch(t) and -2**31 <= int(t) < 2**31 for t in present)
        fields.append(pa.field(key, pa.int32() if ints and present else pa.string()))
    return ds.HivePartitioning(pa.schema(fields), null_fallback=HIVE_DEFAULT_PARTITION)


# ---------------------------------------------------------------------------------------------
# Reading footers
# ---------------------------------------------------------------------------------------------


def _footers(root: str, files: list[tuple[str, int]]) -> list[pq.FileMetaData]:
    if not io.is_s3(root):
        return [_footer(root + name, size) for name, size in files]
    with ThreadPoolExecutor(max_workers=min(_S3_READERS, len(files))) as pool:
        return list(pool.map(lambda f: _footer(root + f[0], f[1]), files))


def _footer(uri: str, size: int) -> pq.FileMetaData:
    """The footer of one file; only its end is read."""
    try:
        if not io.is_s3(uri):
            return pq.read_metadata(io.local_path(uri))
        from engine.io.s3 import RangedReader  # boto3 loads when S3 is first used

        # No request until pyarrow seeks to the footer: each read is a ranged GET of the end.
        with RangedReader(io.s3_client(), uri, size, None) as reader:
            return pq.read_metadata(pa.PythonFile(reader, mode="r"))
    except EngineError:
        raise
    except pa.ArrowException as exc:  # ArrowInvalid: no Parquet magic, a corrupt footer
        raise InputFormatError(f"not a Parquet file ({io.one_line(exc)}); query engines "
                               "reading this folder fail on it too", uri=uri) from exc
    except OSError as exc:
        raise io.local_error(exc, uri) from exc


# ---------------------------------------------------------------------------------------------
# Summing up
# ---------------------------------------------------------------------------------------------


class _Column:
    """One column's figures over every file that holds it."""

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.types: dict[str, int] = {kind: 0}
        self.nulls: int | None = 0
        self.low: Any = None
        self.high: Any = None
        self.bounded = True  # every chunk so far had min/max (or no values)
        self.compressed = 0
        self.uncompressed = 0
        self.codecs: set[str] = set()

    def add_chunk(self, chunk: pq.ColumnChunkMetaData, flat: bool, rows: int) -> None:
        self.compressed += chunk.total_compressed_size
        self.uncompressed += chunk.total_uncompressed_size
        self.codecs.add(chunk.compression)
        if not flat:  # a nested column's leaves count their own nulls: no column figure
            self.nulls = None
            self.bounded = False
            return
        stats = chunk.statistics
        if stats is None or not stats.has_null_count:
            self.nulls = None
        elif self.nulls is not None:
            self.nulls += stats.null_count
        if len(self.types) > 1:  # files disagree on the type: no range across them
            self.bounded = False
        elif stats is not None and stats.has_min_max:
            self.low = stats.min if self.low is None else min(self.low, stats.min)
            self.high = stats.max if self.high is None else max(self.high, stats.max)
        elif rows and (stats is None or stats.null_count != rows):
            self.bounded = False  # values without statistics: the range is unknown

    def to_dict(self) -> dict[str, Any]:
        kinds = list(self.types)
        known = self.bounded and len(kinds) == 1
        out: dict[str, Any] = {
            "name": self.name, "type": kinds[0], "nulls": self.nulls,
            "min": _json_value(self.low) if known else None,
            "max": _json_value(self.high) if known else None,
            "compressed_bytes": self.compressed, "uncompressed_bytes": self.uncompressed,
            "compression": sorted(self.codecs), "files": sum(self.types.values()),
        }
        if len(kinds) > 1:
            out["types"] = dict(self.types)
        return out


def _summary(path: str, files: list[tuple[str, int, pq.FileMetaData, dict[str, Any] | None]],
             keys: pa.Schema, hidden: int) -> dict[str, Any]:
    columns: dict[str, _Column] = {}
    entries = []
    for name, size, meta, partition in files:
        schema = meta.schema.to_arrow_schema()
        leaves = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
        for field in schema:
            kind = str(field.type)
            column = columns.get(field.name)
            if column is None:
                column = columns[field.name] = _Column(field.name, kind)
            column.types[kind] = column.types.get(kind, 0) + 1
            flat = field.name in leaves
            indices = ([leaves[field.name]] if flat else
                       [i for p, i in leaves.items() if p.startswith(field.name + ".")])
            for g in range(meta.num_row_groups):
                group = meta.row_group(g)
                for i in indices:
                    column.add_chunk(group.column(i), flat, group.num_rows)
        entry = {"path": name, "rows": meta.num_rows, "row_groups": meta.num_row_groups,
                 "bytes": size, "created_by": meta.created_by}
        if partition is not None:
            entry["partition"] = {k: _json_value(v) for k, v in partition.items()}
        entries.append(entry)
    described = [c.to_dict() for c in columns.values()]
    partitions = _partitions(files, keys)
    described.extend(_partition_columns(files, keys))
    return {
        "path": path,
        "rows": sum(e["rows"] for e in entries),
        "bytes": sum(e["bytes"] for e in entries),
        "row_groups": sum(e["row_groups"] for e in entries),
        "columns": described,
        "files": entries,
        "partition_keys": [c for c in described if c.get("partition")],
        "partitions": partitions,
        "compression": sorted({codec for c in columns.values() for codec in c.codecs}),
        "created_by": sorted({e["created_by"] for e in entries if e["created_by"]}),
        "schema_conflicts": [c.name for c in columns.values() if len(c.types) > 1],
        "hidden_files": hidden,
    }


def _partitions(files: list[tuple[str, int, pq.FileMetaData, dict[str, Any] | None]],
                keys: pa.Schema) -> list[dict[str, Any]]:
    """One entry per partition folder: its values, files, rows and bytes."""
    if not len(keys):
        return []
    folders: dict[str, dict[str, Any]] = {}
    for name, size, meta, partition in files:
        folder = name.rpartition("/")[0]
        entry = folders.setdefault(folder, {
            "path": folder, "values": {k: _json_value(v) for k, v in (partition or {}).items()},
            "files": 0, "rows": 0, "bytes": 0})
        entry["files"] += 1
        entry["rows"] += meta.num_rows
        entry["bytes"] += size
    return [folders[f] for f in sorted(folders)]


def _partition_columns(files: list[tuple[str, int, pq.FileMetaData, dict[str, Any] | None]],
                       keys: pa.Schema) -> list[dict[str, Any]]:
    """The partition keys as columns: their type, nulls and range, from the folders' names."""
    out = []
    rows = [meta.num_rows for _, _, meta, _ in files]
    for key in keys:
        values = [(p or {}).get(key.name) for _, _, _, p in files]
        present = [v for v in values if v is not None]
        out.append({"name": key.name, "type": str(key.type), "partition": True,
                    "nulls": sum(r for v, r in zip(values, rows, strict=True) if v is None),
                    "min": _json_value(min(present)) if present else None,
                    "max": _json_value(max(present)) if present else None})
    return out


def _json_value(value: Any) -> Any:
    """A statistic as JSON: ISO 8601 dates and times, decimals, infinities and NaN as text.

    Bytes are their UTF-8 text, or hex when they are not UTF-8.
    """
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, float) and value == 0:
        return 0.0  # writers store a min of 0 as -0.0 (the Parquet spec's rule for zeros)
    return value
