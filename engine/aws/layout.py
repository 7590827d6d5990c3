"""Where a file's outputs go in the processed bucket: the table location, and beside it.

::

    s3://PROCESSED_BUCKET/<dataset>/                     the table location: data files only
        <id>.parquet                                     the file, converted in one Lambda
        <id>-part-00000.parquet ...                      its Map parts
        country=FR/<id>-<tag>-00000.parquet ...          a contract's partition_by
        _manifests/<id>.manifest.json                    the pipeline's manifest of the file
        _chunkwise/<id>.json                             the engine's (partitioned output only)
        _rejects/, _aggregates/ ...                      a contract's rejects and aggregate

- ``<dataset>`` is the contract's ``dataset``; without a contract the object key's folder
  (``incoming/x.csv`` → ``incoming``), or for a key at the bucket's root the key's stem, so that
  no table location is the whole bucket.
- ``<id>`` is the engine's name of one version of a source (:func:`engine.plan.source_id`):
  the object's stem, a hash of its location and a hash of its version (ETag when the bucket is
  not versioned). Two objects of one name in one dataset never write the same files; a retried
  or replayed execution writes exactly its own again; a new version of a key writes new files,
  and the output step deletes the previous version's once the new one is committed (found
  through the manifests of the same source, :func:`manifests_prefix`).
- Everything that is not data lives under a folder whose name starts with ``_``, which Athena,
  Hive, Spark, Glue crawlers, DuckDB's hive reading and ``pyarrow.dataset`` all skip: the table
  location reads as a table. :func:`hidden` is the test, and
  :func:`engine.aws.conversion.check_locations` refuses a contract whose rejects or aggregate
  would land among the data.

Example:
    >>> state = {"bucket": "raw", "key": "orders/2026-11-26.csv.gz", "version": "v2"}
    >>> output_stem(state), part_name(state, 3)
    ('2026-11-26-e5130ede-fb04dcb6', '2026-11-26-e5130ede-fb04dcb6-part-00003')
    >>> dataset_folder("x.csv", None), dataset_folder("in/2025/x.csv", None)
    ('x', 'in/2025')
    >>> hidden("s3://b/orders/_rejects/x.ndjson", "s3://b/orders/")
    True
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine import io
from engine.aws.settings import Settings

if TYPE_CHECKING:
    from engine.contract import Contract

__all__ = [
    "MANIFESTS",
    "dataset_folder",
    "destination",
    "hidden",
    "manifest_uri",
    "manifests_prefix",
    "output_base",
    "output_stem",
    "part_name",
]

#: The folder of the table location that holds the pipeline's manifests.
MANIFESTS = "_manifests/"


def _uri(state: Mapping[str, Any]) -> str:
    return f"s3://{state['bucket']}/{state['key']}"


def output_stem(state: Mapping[str, Any]) -> str:
    """The name of everything converting this version of the object writes.

    The engine's :func:`~engine.plan.source_id` of the object and its version (or ETag).
    """
    from engine.plan import source_id  # the engine's naming of a source's version

    return source_id(_uri(state), version=state.get("version"), etag=state.get("etag"))


def part_name(state: Mapping[str, Any], index: int) -> str:
    """The name of a Map part's outputs: ``<output_stem>-part-00000``."""
    return f"{output_stem(state)}-part-{index:05d}"


def dataset_folder(key: str, contract: Contract | None) -> str:
    """The dataset a file belongs to, as its folder in the processed bucket (no slashes around).

    The contract's dataset; without one, the key's folder, or the key's stem at the root.
    """
    if contract is not None:
        return contract.dataset
    return posixpath.dirname(key).strip("/") or io.input_stem(key)


def output_base(state: Mapping[str, Any], contract: Contract | None,
                settings: Settings) -> str:
    """The table location of the state's dataset: ``s3://PROCESSED_BUCKET/<dataset>/``."""
    bucket = settings.require("processed_bucket")
    return f"s3://{bucket}/{dataset_folder(state['key'], contract)}/"


def destination(base: str, contract: Contract | None, name: str) -> str:
    """A file URI, or the directory for a contract that partitions its output."""
    if contract is not None and contract.output.partition_by:
        return base
    return f"{base}{name}.parquet"


def manifest_uri(state: Mapping[str, Any], contract: Contract | None,
                 settings: Settings) -> str:
    """Where the output step writes the manifest: ``<table>/_manifests/<id>.manifest.json``."""
    return f"{output_base(state, contract, settings)}{MANIFESTS}{output_stem(state)}.manifest.json"


def manifests_prefix(state: Mapping[str, Any], contract: Contract | None,
                     settings: Settings) -> str:
    """Where the manifests of every version of the object start: ``…/_manifests/<name>-``."""
    from engine.plan import source_name

    return f"{output_base(state, contract, settings)}{MANIFESTS}{source_name(_uri(state))}-"


def hidden(uri: str, base: str) -> bool:
    """Whether readers of the table at ``base`` skip ``uri``.

    True outside the table location, or under a folder (or with a name) starting with ``_`` or
    ``.`` below it.
    """
    if not uri.startswith(base):
        return True
    return any(part.startswith(("_", ".")) for part in uri[len(base):].split("/") if part)
