"""The pipeline's settings: one frozen dataclass, read from the Lambda environment.

The environment names are those of ``docs/pipeline.md`` and are constants here, so the template,
the local runner and the tests spell them the same way. Explicit arguments beat the environment:
``Settings.from_env(metadata_table="t")`` ignores ``METADATA_TABLE``.

Example:
    >>> settings = Settings.from_env({"MAX_SINGLE_BYTES": "1GB"}, processed_bucket="out")
    >>> settings.max_single_bytes, settings.processed_bucket
    (1000000000, 'out')
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from engine.config import parse_size
from engine.errors import ContractError

__all__ = [
    "CONTRACTS_URI",
    "DEFAULT_MAP_MAX_CONCURRENCY",
    "DEFAULT_MAX_SINGLE_BYTES",
    "DEFAULT_MIN_THROUGHPUT",
    "DEFAULT_RANGE_BYTES",
    "DLQ_URL",
    "GLUE_DATABASE",
    "MAP_MAX_CONCURRENCY",
    "MAX_SINGLE_BYTES",
    "METADATA_TABLE",
    "METRICS_NAMESPACE",
    "MIN_THROUGHPUT",
    "PEAK_RSS_SCOPE",
    "PROCESSED_BUCKET",
    "RANGE_BYTES",
    "SERVICE_NAME",
    "Settings",
    "SettingsError",
]

#: DynamoDB table holding one record per file (partition key ``file_id``).
METADATA_TABLE = "METADATA_TABLE"
#: Bucket the Parquet output and the manifests go to.
PROCESSED_BUCKET = "PROCESSED_BUCKET"
#: URL of the SQS queue that receives permanent failures.
DLQ_URL = "DLQ_URL"
#: Where the dataset contracts live: ``s3://bucket/prefix/`` or a local directory of ``*.yaml``.
CONTRACTS_URI = "CONTRACTS_URI"
#: The Glue Data Catalog database holding one table per dataset; unset: no catalog is kept.
GLUE_DATABASE = "GLUE_DATABASE"
#: Objects larger than this (stored bytes) are split into ranges converted by a Map.
MAX_SINGLE_BYTES = "MAX_SINGLE_BYTES"
#: Target size of one range of the Map.
RANGE_BYTES = "RANGE_BYTES"
#: How many of the Map's ranges convert at once: the plan step puts it in the state, where the
#: Map reads it (``MaxConcurrencyPath``). The template sets it, on the plan function only, from
#: its ``MapMaxConcurrency`` parameter.
MAP_MAX_CONCURRENCY = "MAP_MAX_CONCURRENCY"
#: Conservative conversion speed, in decompressed input bytes per second, used to predict
#: whether a conversion can finish in the Lambda's remaining time (not in docs/pipeline.md:
#: an addition of this module, with a default that needs no setting).
MIN_THROUGHPUT = "MIN_THROUGHPUT"
#: What the transform's ``peak_rss_bytes`` measures: ``process`` (default), the process's
#: high-water RSS during the invocation (reset at its start), as Lambda's "Max Memory Used";
#: ``growth``, how far that rose above the RSS at the invocation's start (the local runner's
#: setting: there moto and every handler share the process).
PEAK_RSS_SCOPE = "PEAK_RSS_SCOPE"
#: Powertools' own names: the service (Logger, Metrics dimension) and the EMF namespace.
SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"

#: 500 MB: the single-Lambda ceiling of ADR-003.
DEFAULT_MAX_SINGLE_BYTES = 500 * 10**6
#: 256 MB per Map range: well inside one Lambda's time at the speeds measured in benchmarks/.
DEFAULT_RANGE_BYTES = 256 * 10**6
#: 10 ranges at once: the template's ``MapMaxConcurrency`` default.
DEFAULT_MAP_MAX_CONCURRENCY = 10
#: 20 MB/s: a fifth of the single-thread CSV speed measured on a 1 GB arm64 Lambda-sized core,
#: leaving room for contracts with regex checks and for a slow S3 connection.
DEFAULT_MIN_THROUGHPUT = 20 * 10**6

_ENV = {
    "metadata_table": METADATA_TABLE,
    "processed_bucket": PROCESSED_BUCKET,
    "dlq_url": DLQ_URL,
    "contracts_uri": CONTRACTS_URI,
    "glue_database": GLUE_DATABASE,
    "max_single_bytes": MAX_SINGLE_BYTES,
    "range_bytes": RANGE_BYTES,
    "map_max_concurrency": MAP_MAX_CONCURRENCY,
    "min_throughput": MIN_THROUGHPUT,
    "peak_rss_scope": PEAK_RSS_SCOPE,
    "service_name": SERVICE_NAME,
    "metrics_namespace": METRICS_NAMESPACE,
}
_SIZES = frozenset({"max_single_bytes", "range_bytes", "min_throughput"})
_COUNTS = frozenset({"map_max_concurrency"})
_PEAK_RSS_SCOPES = ("process", "growth")


class SettingsError(ValueError):
    """A setting is missing or malformed: a deployment problem, not a data problem.

    Not an :class:`engine.errors.EngineError` on purpose: the state machine sends it to the
    error handler (``States.ALL``), not to the DLQ, since replaying the file cannot help.
    """


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline's steps read from their environment.

    Attributes:
        metadata_table: DynamoDB table name (``METADATA_TABLE``).
        processed_bucket: output bucket (``PROCESSED_BUCKET``).
        dlq_url: SQS dead-letter queue URL (``DLQ_URL``).
        contracts_uri: contracts location (``CONTRACTS_URI``); ``None``: every file is a plain
            conversion.
        glue_database: the Glue database of the datasets' tables (``GLUE_DATABASE``); ``None``:
            no catalog.
        max_single_bytes: size above which an object goes to the Map (``MAX_SINGLE_BYTES``).
        range_bytes: target range size for the Map (``RANGE_BYTES``).
        map_max_concurrency: ranges the Map converts at once (``MAP_MAX_CONCURRENCY``).
        min_throughput: conservative decompressed bytes per second (``MIN_THROUGHPUT``).
        peak_rss_scope: ``process`` or ``growth`` (``PEAK_RSS_SCOPE``, see the constant).
        service_name: Powertools service name (``POWERTOOLS_SERVICE_NAME``).
        metrics_namespace: CloudWatch EMF namespace (``POWERTOOLS_METRICS_NAMESPACE``).
    """

    metadata_table: str | None = None
    processed_bucket: str | None = None
    dlq_url: str | None = None
    contracts_uri: str | None = None
    glue_database: str | None = None
    max_single_bytes: int = DEFAULT_MAX_SINGLE_BYTES
    range_bytes: int = DEFAULT_RANGE_BYTES
    map_max_concurrency: int = DEFAULT_MAP_MAX_CONCURRENCY
    min_throughput: int = DEFAULT_MIN_THROUGHPUT
    peak_rss_scope: str = "process"
    service_name: str = "chunkwise"
    metrics_namespace: str = "chunkwise"

    def __post_init__(self) -> None:
        for name in sorted(_SIZES | _COUNTS):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{_ENV[name]} must be positive, got {getattr(self, name)}")
        if self.peak_rss_scope not in _PEAK_RSS_SCOPES:
            raise SettingsError(f"{PEAK_RSS_SCOPE} must be one of {', '.join(_PEAK_RSS_SCOPES)}, "
                                f"got {self.peak_rss_scope!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``environ`` (default ``os.environ``); keyword arguments win.

        Sizes accept units (``500MB``, ``1GiB``) or plain bytes, counts a plain integer; an empty
        variable is unset.

        Raises:
            SettingsError: a size or count that does not parse, or an unknown keyword.
        """
        env = os.environ if environ is None else environ
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise SettingsError(f"unknown setting(s): {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name, var in _ENV.items():
            if name in overrides:
                value: Any = overrides[name]
            else:
                value = env.get(var) or None
                if value is None:
                    continue
            if name in _SIZES and isinstance(value, str):
                try:
                    value = parse_size(value)
                except ValueError as exc:
                    raise SettingsError(f"{var}: {exc}") from None
            elif name in _COUNTS and isinstance(value, str):
                try:
                    value = int(value)
                except ValueError:
                    raise SettingsError(f"{var}: not a whole number: {value!r}") from None
            values[name] = value
        return cls(**values)

    def source_buckets(self, extra: Iterable[str] = ()) -> frozenset[str]:
        """Buckets a contract may read reference tables from.

        The processed bucket, the bucket holding the contracts (the raw bucket, in the template)
        and ``extra`` (the event's bucket).
        """
        buckets = {self.processed_bucket, *extra}
        if self.contracts_uri and self.contracts_uri[:5].lower() == "s3://":
            buckets.add(self.contracts_uri[5:].partition("/")[0])
        return frozenset(b for b in buckets if b)

    def check_source(self, uri: str, where: str, *, extra: Iterable[str] = (),
                     contract: str | None = None) -> None:
        """Refuse a reference table outside :meth:`source_buckets`.

        With contracts in a local directory, files under that directory are allowed too. A
        contract is data its authors upload; without this it could join any object the
        function may read, or a local file such as ``/proc/self/environ`` (the Lambda's
        credentials), into its output.

        Raises:
            ContractError: naming ``where`` (e.g. ``transforms[2].enrich.path``) and the URI.
        """
        allowed = self.source_buckets(extra)
        if _bucket(uri) in allowed or self._in_contracts_dir(uri):
            return
        raise ContractError(f"{where}: {uri} is outside the configured buckets "
                            f"({', '.join(sorted(allowed)) or 'none'}): refused", uri=contract)

    def check_output(self, uri: str, where: str, *, contract: str | None = None) -> None:
        """Refuse an output (data, rejects, aggregate) outside the processed bucket.

        Raises:
            ContractError: naming ``where`` (e.g. ``rejects.path``) and the URI.
        """
        if self.processed_bucket and _bucket(uri) == self.processed_bucket:
            return
        raise ContractError(f"{where}: {uri} is outside the processed bucket "
                            f"({self.processed_bucket or PROCESSED_BUCKET + ' is not set'}): "
                            "refused", uri=contract)

    def _in_contracts_dir(self, uri: str) -> bool:
        if not self.contracts_uri or _bucket(self.contracts_uri) is not None:
            return False
        root = os.path.realpath(_local(self.contracts_uri))
        path = os.path.realpath(_local(uri))
        return _bucket(uri) is None and os.path.commonpath([root, path]) == root

    def require(self, name: str) -> str:
        """The value of the string setting ``name``, which must be set.

        Raises:
            SettingsError: it is not set (naming the environment variable).
        """
        value = getattr(self, name)
        if not value:
            raise SettingsError(f"{_ENV.get(name, name)} is not set")
        return str(value)


def _bucket(uri: str) -> str | None:
    """The bucket of an ``s3://`` URI; ``None`` for anything else (a local path)."""
    if uri[:5].lower() != "s3://":
        return None
    return uri[5:].partition("/")[0]


def _local(uri: str) -> str:
    return uri[7:] if uri.startswith("file://") else uri
