"""What the output step commits besides the record: the manifest, the catalog, the old version.

- :func:`manifest` builds the file's manifest (``_manifests/<id>.manifest.json``, where query
  engines do not read it): the parts in order with their files, rows and SHA-256, the totals,
  the schema, the contract, the source object's version, and ``outputs``, every object
  converting this version published (what a later version deletes).
- :func:`update_catalog` creates or updates the dataset's Glue table from the parts: the
  files' Parquet schema (a written file's footer), the contract's partition columns and the
  partitions the files are in (:func:`engine.aws.catalog.publish`).
- :func:`supersede` deletes what earlier versions of the same object published, found through
  their manifests (same table location, same source name), once this version is committed.

Example:
    >>> partition_values({"country": "FR", "day": None}, ["country", "day"])
    ['FR', '__HIVE_DEFAULT_PARTITION__']
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from engine import io
from engine.aws import catalog
from engine.aws.conversion import parquet_schema

__all__ = ["manifest", "partition_values", "previous_versions", "s3_requests", "supersede",
           "update_catalog"]

log = logging.getLogger(__name__)

#: The manifest format: 2 added ``outputs`` and moved manifests under ``_manifests/``.
MANIFEST_VERSION = 2

_PART_KEYS = ("index", "uri", "rows_in", "rows_out", "rows_rejected", "rows_filtered",
              "bytes_out", "seconds", "peak_rss_bytes", "sha256", "files", "rejects_uri")
_TOTALS = ("rows_in", "rows_out", "rows_rejected", "rows_filtered", "bytes_out")


def totals(parts: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """The parts' counts and bytes, summed."""
    return {key: sum(int(p.get(key) or 0) for p in parts) for key in _TOTALS}


def s3_requests(parts: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """The S3 requests the parts' conversions made, by kind, summed (``{}`` when none counted)."""
    summed: dict[str, int] = {}
    for part in parts:
        for kind, n in (part.get("s3_requests") or {}).items():
            summed[kind] = summed.get(kind, 0) + int(n)
    return dict(sorted(summed.items()))


def manifest(state: Mapping[str, Any], parts: Sequence[Mapping[str, Any]], *,
             outputs: Iterable[str], dataset: str | None, committed_at: str,
             duration: float | None, peak: int) -> dict[str, Any]:
    """The manifest document of a converted file (JSON-able)."""
    files = [f for p in parts for f in p.get("files") or []]
    return {
        "manifest_version": MANIFEST_VERSION,
        "file_id": state["file_id"],
        "source": {"uri": f"s3://{state['bucket']}/{state['key']}",
                   **{k: state.get(k) for k in ("bucket", "key", "version", "etag", "size")}},
        "contract": state.get("contract"),
        "dataset": dataset,
        "format": state.get("format"),
        "route": state.get("route"),
        "received_at": state.get("received_at"),
        "committed_at": committed_at,
        "duration_seconds": duration,
        "peak_rss_bytes": peak,
        **totals(parts),
        "schema": parts[0].get("schema"),
        "parts": [{k: p.get(k) for k in _PART_KEYS} for p in parts],
        "checksums": {f["uri"]: {"sha256": f["sha256"]} for f in files},
        "outputs": sorted(set(outputs)),
    }


def partition_values(partition: Mapping[str, str | None], columns: Sequence[str]) -> list[str]:
    """A file's partition as the catalog's values: Hive's default partition for null."""
    # the sink's module loads pyarrow.compute: only the output step of partitioned data pays it
    from engine.sink.hive import HIVE_DEFAULT_PARTITION

    return [partition.get(c) or HIVE_DEFAULT_PARTITION for c in columns]


def update_catalog(glue: Any, dataset: Mapping[str, Any], parts: Sequence[Mapping[str, Any]],
                   contract: Any) -> dict[str, Any] | None:
    """Create or update the dataset's table for the parts' files; ``None`` when none was written.

    Raises:
        SchemaError, UsageError, TransientError: see :func:`engine.aws.catalog.publish`.
    """
    first = next((f for p in parts for f in p.get("files") or []), None)
    if first is None:
        return None  # no data file: the dataset's schema is not this file's to set
    # the files' own schema, from a footer (every part wrote the same; the state stays small)
    written = parquet_schema(first["uri"], int(first["bytes"]))
    columns = list(contract.output.partition_by) if contract is not None else []
    declared = {f["name"]: f["type"] for f in parts[0].get("schema") or []}
    keys = [pa.field(c, _arrow_type(declared.get(c))) for c in columns]
    partitions = [(partition_values(f.get("partition") or {}, columns),
                   posixpath.dirname(f["uri"]) + "/")
                  for p in parts for f in p.get("files") or [] if columns]
    projection = contract.output.partition_projection if contract is not None else None
    return catalog.publish(glue, dataset, written, partition_keys=keys,
                           partitions=partitions, contract=contract is not None,
                           projection=projection)


def _arrow_type(name: str | None) -> pa.DataType:
    """A partition column's type from the report's schema (its Arrow type name)."""
    from engine.types import parse_type

    try:
        return parse_type(name or "string")
    except ValueError:
        return pa.string()


def previous_versions(prefix: str, state: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The manifests under ``prefix`` of other versions of the state's object: (URI, document).

    Raises:
        TransientError: S3 throttling or a network failure.
    """
    from engine.io.s3 import s3_errors

    bucket, key_prefix = io.split_s3(prefix)
    found: list[tuple[str, dict[str, Any]]] = []
    with s3_errors(prefix):
        pages = io.s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                         Prefix=key_prefix)
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])
                if o["Key"].endswith(".manifest.json")]
    for key in keys:
        uri = f"s3://{bucket}/{key}"
        with s3_errors(uri):
            body = io.s3_client().get_object(Bucket=bucket, Key=key)["Body"]
            try:
                document = json.loads(body.read())
            except ValueError:
                log.warning("not a manifest, left alone: %s", uri)
                continue
            finally:
                body.close()
        source = document.get("source") or {}
        if (document.get("file_id") != state["file_id"]
                and (source.get("bucket"), source.get("key")) == (state["bucket"],
                                                                   state["key"])):
            found.append((uri, document))
    return found


def supersede(prefix: str, state: Mapping[str, Any], kept: Iterable[str],
              delete: Any) -> list[str]:
    """Delete what earlier versions of the object published, then their manifests.

    ``delete`` deletes a list of URIs (:func:`engine.aws.steps.unpublish`). Called once this
    version is committed; a failure is logged and left for the next version's run (the old
    manifest stays, so it is found again), never raised: the new version is published.

    Returns:
        The manifests of the versions removed.
    """
    keep = set(kept)
    removed: list[str] = []
    try:
        for uri, document in previous_versions(prefix, state):
            old = set(document.get("outputs") or []) | set(document.get("checksums") or {})
            delete(sorted(old - keep))
            delete([uri])
            removed.append(uri)
    except Exception as exc:  # noqa: BLE001 - the new version is committed: report, do not fail
        log.warning("could not remove an earlier version's outputs (left for the next run): "
                    "%r", exc)
    return removed
