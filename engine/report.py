"""The RunReport: what one conversion did, as an object and as the CLI's ``--json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from engine import __version__
from engine.errors import AccountingError

__all__ = ["RunReport", "check_accounting"]


@dataclass
class RunReport:
    """What one conversion did.

    ``rows_in == rows_out + rows_rejected + rows_filtered`` always (``rows_filtered`` counts rows
    a contract's ``filter``/``dedupe`` steps removed). ``state_bytes`` is memory held across
    chunks by ``unique``/``dedupe`` keys, enrichment tables and aggregate groups, reported apart
    from the bounded streaming memory. ``peak_rss_bytes`` is the process's high-water RSS,
    ``arrow_peak_bytes`` the Arrow memory pool's, and ``stages`` the wall and CPU seconds per
    stage (see :mod:`engine.runtime.timing`).
    """

    status: str
    input: str
    output: str | None
    format: str
    rows_in: int = 0
    rows_out: int = 0
    rows_rejected: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    peak_rss_bytes: int = 0
    arrow_peak_bytes: int = 0
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    schema: list[dict[str, str]] = field(default_factory=list)
    widened: list[dict[str, Any]] = field(default_factory=list)
    #: columns inference typed against what their values parse as: ``column``, ``type``,
    #: ``reason`` (a CSV column of numbers with leading zeros is a string column)
    inference: list[dict[str, str]] = field(default_factory=list)
    rejects: dict[str, Any] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0
    compression: str | None = None
    rows_filtered: int = 0
    contract: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    state_bytes: int = 0
    aggregate: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    #: a run into a directory: the source's ``name``, the ``mode``, the run's ``generation``,
    #: its ``manifest`` and how many files it ``removed`` (docs/datasets.md)
    dataset: dict[str, Any] | None = None
    #: per ``enrich_api`` step: its ``step`` index, ``host``, ``requests`` made,
    #: ``keys_requested``, ``cache_hits`` (a batch's distinct keys answered from the cache),
    #: ``retries`` and ``wait_seconds`` (wall time the conversion waited on the API, retries
    #: included)
    enrich_api: list[dict[str, Any]] = field(default_factory=list)
    #: the S3 requests the run sent, by kind (``HeadObject``, ``GetObject``, ``PutObject``,
    #: ``CreateMultipartUpload``, ``UploadPart``, ...), retries included; empty for local files
    s3_requests: dict[str, int] = field(default_factory=dict)
    #: the most bytes of local disk (Lambda's ephemeral ``/tmp``) the run held at once: the
    #: spool of a partitioned S3 output, at most ``max_open_writers`` × ``part_size``
    #: (docs/memory.md); 0 for other outputs
    ephemeral_bytes: int = 0
    #: the chunkwise version that wrote the report
    version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able data."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> str:
        """The report as one line of JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


def check_accounting(src: str, rows_in: int, rows_out: int, rejected: int,
                     filtered: int) -> None:
    """Raise :class:`~engine.errors.AccountingError` unless every record read is accounted for.

    The run calls it before it publishes anything: a record that is neither written, rejected
    nor filtered means data was lost, and the run fails instead of publishing short files.
    """
    if rows_in != rows_out + rejected + filtered:
        raise AccountingError(f"accounting: {rows_in} records read, but {rows_out} written + "
                              f"{rejected} rejected + {filtered} filtered", uri=src)
