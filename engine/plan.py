"""Where a run's outputs go: the data, the rejects and the aggregate, named after the input.

:meth:`OutputPlan.load` resolves them as :func:`engine.transform` will, so the pipeline can check
and clean up the very URIs a run writes. A file output (``out.parquet``) is written as named. Into
a directory (``out/``, or a contract that partitions), every file carries the source's name
(:func:`source_name`), so two sources never collide, and the data files a tag of the run
(:func:`engine.sink.dataset.run_tag`), so a re-run never writes over the files it replaces;
:meth:`OutputPlan.prepare` applies the write mode (:mod:`engine.sink.dataset`).

A source's identity: its location (``s3://bucket/key``, or a local file's real path) names it;
its version is the S3 object's ``VersionId`` (its ETag in an unversioned bucket) or, for a local
file, a fingerprint: its size, modification time (ns) and the SHA-256 of its first 64 KiB. The
fingerprint costs a ``stat`` and one small read, where hashing the whole file would read it
twice; a change it misses (same size and time, same head) only keeps the old tag's hash in the
new files' names: the run still replaces the source's earlier files, found by its manifest.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from engine import io
from engine.config import RunOptions, WriteOptions, build_options
from engine.errors import InputFormatError, InputNotFoundError, UsageError
from engine.sink.dataset import BOOKKEEPING_DIR, DatasetWrite, check_name, is_hidden, run_tag
from engine.sink.parquet import CheckUri, ParquetSink
from engine.sink.spool import Spool, spool_bytes_needed

if TYPE_CHECKING:
    from engine.sink.partitioned import PartitionedSink

__all__ = [
    "OutputPlan",
    "refuse_replacing",
    "source_id",
    "source_location",
    "source_name",
    "source_version",
]

#: Bytes of a local source hashed into its fingerprint.
FINGERPRINT_HEAD_BYTES = 64 * 1024


def source_location(uri: str) -> str:
    """What identifies a source across runs: ``s3://bucket/key``, or a local file's real path."""
    return uri if io.is_s3(uri) else os.path.realpath(io.local_path(uri))


def source_name(uri: str) -> str:
    """The name of everything a run of ``uri`` writes into a directory: ``<stem>-<8 hex>``.

    The input's stem (:func:`engine.io.input_stem`) and the first 8 hex digits of the SHA-256
    of its location (:func:`source_location`), so that ``a/orders.csv`` and ``b/orders.csv``
    differ. The version plays no part: a new version of the source is the same source, and its
    run replaces the files of the one before.

    Example:
        >>> source_name("s3://raw/orders/2025-03-01.csv.gz")
        '2025-03-01-a93a03e6'

    """
    digest = hashlib.sha256(source_location(uri).encode()).hexdigest()
    return f"{io.input_stem(uri)}-{digest[:8]}"


def source_version(uri: str) -> str:
    """The version of the source now (see the module's docstring): one ``HeadObject`` on S3.

    Raises:
        InputNotFoundError: it does not exist.
    """
    if io.is_s3(uri):
        from engine.io.s3 import head_object  # boto3 loads when S3 is first used

        head = head_object(io.s3_client(), uri, reuse=True)  # the run reads this version
        version = head.get("VersionId")
        return version if version and version != "null" else str(head.get("ETag", "")).strip('"')
    path = io.local_path(uri)
    try:
        stat = os.stat(path)
        with open(path, "rb") as fh:
            head = fh.read(FINGERPRINT_HEAD_BYTES)
    except OSError as exc:
        raise io.local_error(exc, uri) from exc
    return f"{stat.st_size}-{stat.st_mtime_ns}-{hashlib.sha256(head).hexdigest()[:16]}"


def source_id(uri: str, version: str | None = None, etag: str | None = None) -> str:
    """One version of a source, as a name: ``<source_name(uri)>-<8 hex>``.

    The hex digits hash ``version`` (an S3 ``VersionId``), else ``etag``, else what
    :func:`source_version` finds now. It is the name of the data file the source's first run
    writes into a directory (``<source_id>.parquet``); later runs hash their generation in too.

    Example:
        >>> source_id("s3://raw/orders/2025-03-01.csv.gz", version="v2")
        '2025-03-01-a93a03e6-fb04dcb6'

    """
    token = version or (etag.strip('"') if etag else None) or source_version(uri)
    return f"{source_name(uri)}-{run_tag(token, 0)}"


@dataclass
class OutputPlan:
    """Where a run's outputs go (data, rejects, aggregate) and the contract that shapes them."""

    dst: str | None
    contract: Any = None
    data_uri: str | None = None
    rejects_uri: str | None = None
    aggregate_uri: str | None = None
    stem: str = "part"
    src: str = ""
    #: the dataset's root (ending in ``/``) when the data goes into a directory, else ``None``.
    directory: str | None = None
    #: the run into that directory, once :meth:`prepare` checked its mode.
    dataset: DatasetWrite | None = None

    @classmethod
    def load(cls, contract: Any, src: str, dst: str | None,
             stem: str | None = None) -> OutputPlan:
        """Resolve the outputs of converting ``src`` to ``dst`` (files named after ``stem``).

        ``contract`` is a :class:`engine.contract.Contract`, the path of its YAML, or ``None``.
        ``stem`` defaults to :func:`source_name` for a directory (``dst`` ending in ``/``, or a
        contract that partitions), to the input's stem beside a file. Nothing is read: a
        directory's data file names are known after :meth:`prepare`.
        """
        if contract is not None and not hasattr(contract, "columns"):
            from engine.contract import load_contract

            contract = load_contract(contract)
        partitioned = contract is not None and bool(contract.output.partition_by)
        directory = dst is not None and (dst.endswith("/") or partitioned)
        if not stem:
            stem = source_name(src) if directory else io.input_stem(src)
        plan = cls(dst, contract, None if directory else dst, stem=stem, src=src)
        if dst is None:
            return plan
        base = dst if dst.endswith("/") else (dst + "/" if directory else _parent(dst))
        plan.directory = base if directory else None
        if contract is None:
            return plan
        if contract.rejects.path:
            plan.rejects_uri = _under(base, contract.rejects.path, f"{stem}.rejects.ndjson")
        if contract.aggregate is not None:
            plan.aggregate_uri = _under(base, contract.aggregate.path, f"{stem}.parquet")
        return plan

    @classmethod
    def resolve(cls, contract: Any, src: str, dst: str | None, options: RunOptions | None,
                given: dict[str, Any]) -> tuple[OutputPlan, RunOptions]:
        """The plan of a run and its options (the caller's keywords over the contract's).

        For an output, :meth:`prepare` has run: the mode is checked and nothing is read yet.
        """
        stem = given.get("output_stem") or (options.output_stem if options is not None else None)
        plan = cls.load(contract, src, dst, stem)
        opts = build_options(options, **{**plan.overrides(), **given})
        if dst is not None:
            plan.prepare(opts.mode, opts.rejects_uri)
        return plan, opts

    def prepare(self, mode: str | None, rejects_uri: str | None = None) -> None:
        """Check the output before the input is read, and name a directory's data files.

        The outputs must not be the input (:func:`refuse_replacing`). A file output is written
        as named: ``mode="error"`` refuses it when it exists, ``"append"`` is refused. Into a
        directory, the source's manifest is read and the mode checked
        (:meth:`engine.sink.dataset.DatasetWrite.open`).

        Raises:
            UsageError: the mode refuses the output (see above), or an output is the input.
        """
        assert self.dst is not None
        if self.directory is None:
            if mode == "append":
                raise UsageError("a Parquet file cannot be appended to: write into a directory "
                                 "(ending in /) to add files beside others", uri=self.dst)
            if mode == "error" and _exists(self.dst):
                raise UsageError("the output exists (mode 'error'); remove it or choose mode "
                                 "'replace'", uri=self.dst)
        else:
            check_name(self.stem)
            _refuse_input_among_data(self.src, self.directory)
            self.dataset = DatasetWrite.open(self.directory, self.stem,
                                             source_location(self.src),
                                             source_version(self.src), mode or "error")
            if not self.partitioned:
                self.data_uri = f"{self.directory}{self.dataset.file_stem}.parquet"
        refuse_replacing(self.src, [self.data_uri or self.dst, rejects_uri, self.aggregate_uri])

    def record(self, sink: ParquetSink | PartitionedSink | None, rejects_uri: str | None,
               aggregate: bool) -> None:
        """Write the directory's manifest of what was published (a failure fails the run).

        The rejects file and the aggregate are the source's when the plan named them.
        """
        if self.dataset is None or sink is None:
            return
        named = [self.rejects_uri if rejects_uri == self.rejects_uri else None,
                 self.aggregate_uri if aggregate else None]
        self.dataset.record([f.uri for f in sink.files], [u for u in named if u],
                            sum(f.rows for f in sink.files))

    def finish(self) -> dict[str, Any] | None:
        """Delete what the run replaced in its directory; what the report says of it."""
        return self.dataset.finish() if self.dataset is not None else None

    @property
    def partitioned(self) -> bool:
        """Whether the data goes to Hive partition folders."""
        return self.contract is not None and bool(self.contract.output.partition_by)

    @property
    def manifest_uri(self) -> str | None:
        """Where the source's manifest is, for a directory output."""
        if self.directory is None:
            return None
        return f"{self.directory}{BOOKKEEPING_DIR}/{self.stem}.json"

    def overrides(self) -> dict[str, Any]:
        """The contract's format and output options, as :func:`engine.transform` keywords."""
        if self.contract is None:
            return {}
        out = {**self.contract.read_overrides(), **self.contract.output.write_overrides()}
        if self.rejects_uri:
            out["rejects_uri"] = self.rejects_uri
        return out

    def sink(self, schema: pa.Schema, write: WriteOptions, *, check_uri: CheckUri | None = None,
             ) -> ParquetSink | PartitionedSink | None:
        """The sink the data goes to: a file (or a rotation), or one per partition.

        ``check_uri`` is called with each file's name before it is written (to refuse one).
        """
        if self.dst is None:
            return None
        if self.partitioned:
            from engine.sink.partitioned import PartitionedSink

            # On S3 each open partition file holds up to one part until it commits, on local
            # disk (the spool, engine/sink/spool.py); were it in memory (spool=False), this
            # would cap that term at four parts by committing the largest file early.
            upload_cap = 4 * write.part_size if io.is_s3(self.dst) else None
            file_stem = self.dataset.file_stem if self.dataset is not None else self.stem
            return PartitionedSink(self.directory or self.dst,
                                   schema, list(self.contract.output.partition_by), write,
                                   file_stem=file_stem,
                                   max_open_writers=self.contract.output.max_open_writers,
                                   max_upload_buffer_bytes=upload_cap, check_uri=check_uri)
        uri = self.data_uri or self.dst
        # On S3 the part being assembled goes to the spool on local disk, not memory (8 MiB of
        # the run's peak RSS, issue 23); its free space is checked here, before a row is read.
        spool = Spool(spool_bytes_needed(1, write.part_size), uri=uri,
                      needs="the S3 part being assembled", fix="the part size",
                      ) if io.is_s3(uri) else None
        return ParquetSink(uri, schema, write, check_uri=check_uri, spool=spool)

    @property
    def outputs(self) -> list[str]:
        """Every URI the plan writes to (the data's may be a directory)."""
        return [u for u in (self.data_uri or self.dst, self.rejects_uri, self.aggregate_uri) if u]


def _refuse_input_among_data(src: str, directory: str) -> None:
    """Raise :class:`UsageError` when ``src`` is one of ``directory``'s data files.

    Query engines would read it as part of the table, and ``replace`` would delete it.
    """
    if io.is_s3(src) != io.is_s3(directory):
        return
    if io.is_s3(src):
        inside, rel = src.startswith(directory), src[len(directory):]
    else:
        top = os.path.realpath(io.local_path(directory))
        real = os.path.realpath(io.local_path(src))
        inside, rel = real.startswith(top + os.sep), os.path.relpath(real, top)
    if inside and not is_hidden(rel.replace(os.sep, "/")):
        raise UsageError("the input is inside the output directory, where query engines would "
                         "read it as data (and mode 'replace' would delete it); write the "
                         "dataset elsewhere", uri=src)


def _exists(uri: str) -> bool:
    try:
        io.object_size(uri)
    except InputNotFoundError:
        return False
    except InputFormatError:  # a directory: it exists
        return True
    return True


def _parent(uri: str) -> str:
    head = posixpath.dirname(uri)
    return f"{head}/" if head else ""


def _under(base: str, path: str, name: str) -> str:
    """``path`` relative to the output directory ``base``.

    A path ending in ``/`` is a directory, and the file in it is called ``name``.
    """
    full = path if ("://" in path or posixpath.isabs(path)) else base + path
    return full + name if full.endswith("/") else full


def refuse_replacing(src: str, outputs: list[str | None]) -> None:
    """Raise :class:`UsageError` when one of ``outputs`` is ``src`` itself.

    The output is renamed into place (or committed) after the input has been read, so the run
    would succeed and leave the input replaced by its own Parquet.
    """
    real_src = None
    for out in outputs:
        if not out:
            continue
        if io.is_s3(src) or io.is_s3(out):
            same = src == out
        else:
            real_src = real_src or os.path.realpath(io.local_path(src))
            same = real_src == os.path.realpath(io.local_path(out))
        if same:
            raise UsageError("the output is the input: writing it would replace the input; "
                             "choose another output path", uri=out)
