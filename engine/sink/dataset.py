"""A directory of Parquet files as one dataset: which files are whose, and the write modes.

A run into a directory (``transform(src, "out/")``, a contract that partitions) writes its data
files under names that carry its source's name and a tag of this run, and records them in a
manifest where query engines never look (they skip ``_`` and ``.`` prefixes, as Athena, Spark,
Hive and ``pyarrow.dataset`` do)::

    out/<name>-<tag>.parquet                    one file (…-<tag>-00000.parquet, … when rotating)
    out/country=FR/<name>-<tag>-00000.parquet   partitioned
    out/_chunkwise/<name>.json                  the manifest of the source called <name>

``<name>`` is the source's name (:func:`engine.plan.source_name`: its file name and a hash of
its location) and ``<tag>`` a hash of the source's version and the run's *generation*, one more
than the manifest's before it. A re-run of a source therefore never writes over the files it is
replacing: it writes new ones, records them, and only then deletes the old ones.

The modes (:data:`engine.config.WRITE_MODES`) say what to do with files of *other* sources:

- ``error`` (default): refuse, before the source is read, when the directory holds data files
  this source did not write (neither listed by its manifest nor named with this run's tag);
- ``append``: add beside them; only this source's manifest is read, nothing is listed;
- ``replace``: once this run's files and manifest are written, delete every data file the
  directory held when the run started, and the other sources' manifests and the files they list.

In every mode, the files this source's previous manifest lists are deleted once the new ones
are recorded (a re-run is idempotent). A failed run deletes only its own new files. Order of a
successful run: what the previous manifest still lists as superseded is deleted (its own files
are published, so nothing depends on those) → data files committed → manifest written (listing
the previous run's files as superseded) → those deleted. One manifest write per run. A process
killed between two of these steps leaves more files than it should (a reader sees duplicates),
never fewer, and the next run of the same source finishes the job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import posixpath
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from engine import __version__, io
from engine.config import WRITE_MODES
from engine.errors import EngineError, PermanentError, TransientError, UsageError

__all__ = [
    "BOOKKEEPING_DIR",
    "DatasetWrite",
    "ListedFile",
    "Manifest",
    "check_name",
    "delete_files",
    "is_hidden",
    "list_files",
    "relative",
    "resolve",
    "run_tag",
]

log = logging.getLogger(__name__)

#: The folder of a dataset's manifests: ``_``-prefixed, so query engines do not read it.
BOOKKEEPING_DIR = "_chunkwise"

#: The manifest format's version, written into each manifest.
MANIFEST_FORMAT = 1

#: Keys one S3 DeleteObjects request takes.
_DELETE_BATCH = 1000


def is_hidden(path: str) -> bool:
    """Whether query engines skip ``path`` (relative to a dataset's root).

    They skip a file when its name or any folder above it starts with ``_`` or ``.``.

    Example:
        >>> is_hidden("country=FR/x.parquet"), is_hidden("_chunkwise/x.json")
        (False, True)

    """
    return any(part[:1] in ("_", ".") for part in path.split("/") if part)


def check_name(name: str) -> None:
    """Raise :class:`UsageError` unless ``name`` can name a data file that readers see."""
    if not name or "/" in name or name[0] in "._":
        raise UsageError(f"bad output name {name!r}: it must be non-empty, without '/', and not "
                         "start with '.' or '_' (query engines skip such files)")


def run_tag(version: str, generation: int) -> str:
    """The tag of a run's files: 8 hex digits of SHA-256 of the source's version and generation.

    Generation 0 hashes the version alone, so a source's first files are named
    :func:`engine.plan.source_id`.

    Example:
        >>> run_tag("v1", 0) != run_tag("v1", 1) != run_tag("v2", 1)
        True

    """
    text = version if generation == 0 else f"{version}\n{generation}"
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def resolve(root: str, path: str) -> str:
    """A manifest's entry as a URI: paths relative to ``root`` are joined to it."""
    if "://" in path or posixpath.isabs(path):
        return path
    return root + path


def relative(root: str, uri: str) -> str:
    """``uri`` relative to ``root`` when it is under it, else ``uri`` itself."""
    return uri[len(root):] if uri.startswith(root) else uri


# ---------------------------------------------------------------------------------------------
# Listing and deleting
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedFile:
    """A file under a dataset's root: its path relative to the root (``/``-separated), its size."""

    path: str
    size: int


def list_files(root: str) -> list[ListedFile]:
    """Every file under ``root`` (a directory, ending in ``/``), hidden ones included, by path.

    A root that does not exist holds nothing. On S3 this is ``ListObjectsV2`` (1,000 keys per
    request); keys ending in ``/`` (folder markers) are left out.
    """
    if io.is_s3(root):
        return _list_s3(root)
    base = io.local_path(root)
    found: list[ListedFile] = []
    try:
        for folder, _, names in os.walk(base):
            for name in names:
                full = os.path.join(folder, name)
                rel = os.path.relpath(full, base).replace(os.sep, "/")
                found.append(ListedFile(rel, os.stat(full).st_size))
    except OSError as exc:
        raise io.local_error(exc, root, output=True) from exc
    return sorted(found, key=lambda f: f.path)


def _list_s3(root: str) -> list[ListedFile]:
    from engine.io.s3 import s3_errors  # boto3 loads when S3 is first used

    bucket, prefix = io.split_s3(root, allow_empty_key=True)
    found: list[ListedFile] = []
    with s3_errors(root, output=True):
        pages = io.s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                         Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    found.append(ListedFile(obj["Key"][len(prefix):], int(obj["Size"])))
    return sorted(found, key=lambda f: f.path)


def delete_files(root: str, paths: Iterable[str]) -> int:
    """Delete ``paths`` (relative to ``root``, or URIs); a missing one is not an error.

    Local folders left empty under ``root`` are removed too. Returns how many were asked for.

    Raises:
        PermanentError: access denied.
        TransientError: S3 throttling or a network failure.
    """
    uris = sorted({resolve(root, p) for p in paths})
    by_bucket: dict[str, list[str]] = {}
    for uri in uris:
        if io.is_s3(uri):
            bucket, key = io.split_s3(uri)
            by_bucket.setdefault(bucket, []).append(key)
        else:
            _delete_local(root, uri)
    for bucket, keys in by_bucket.items():
        for start in range(0, len(keys), _DELETE_BATCH):
            _delete_s3(bucket, keys[start:start + _DELETE_BATCH])
    return len(uris)


def _delete_local(root: str, uri: str) -> None:
    path = io.local_path(uri)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise io.local_error(exc, uri, output=True) from exc
    top = os.path.abspath(io.local_path(root))
    folder = os.path.dirname(os.path.abspath(path))
    while folder.startswith(top + os.sep):  # prune emptied folders below the root, not it
        try:
            os.rmdir(folder)
        except OSError:
            break  # not empty (or not ours to remove): stop climbing
        folder = os.path.dirname(folder)


def _delete_s3(bucket: str, keys: list[str]) -> None:
    from engine.io.s3 import s3_errors

    where = f"s3://{bucket}/{keys[0]}"
    with s3_errors(where, output=True):
        answer = io.s3_client().delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
    errors = answer.get("Errors") or []
    if errors:
        first = errors[0]
        uri = f"s3://{bucket}/{first.get('Key', '')}"
        detail = f"could not delete {len(errors)} object(s): S3 {first.get('Code')}: " \
                 f"{first.get('Message')}"
        if first.get("Code") in ("InternalError", "SlowDown", "ServiceUnavailable"):
            raise TransientError(detail, uri=uri)
        raise PermanentError(detail, uri=uri)


# ---------------------------------------------------------------------------------------------
# The manifest
# ---------------------------------------------------------------------------------------------


@dataclass
class Manifest:
    """What one source wrote into a dataset, as ``_chunkwise/<name>.json`` holds it.

    Paths under the dataset's root are relative to it; others (a rejects file or an aggregate
    elsewhere) are URIs.
    """

    source: str
    name: str
    version: str
    generation: int
    #: the data files, as query engines read them.
    files: list[str] = field(default_factory=list)
    #: the rejects file and the aggregate the run wrote for the source.
    outputs: list[str] = field(default_factory=list)
    #: files of the run before, which this run deletes once the manifest is written (the next
    #: run deletes them first if this one was stopped before it could).
    superseded: list[str] = field(default_factory=list)
    rows: int = 0
    mode: str = "error"
    written_at: str = ""
    chunkwise: str = __version__
    format: int = MANIFEST_FORMAT

    def owned(self) -> set[str]:
        """Every path the manifest says is the source's."""
        return {*self.files, *self.outputs, *self.superseded}

    @classmethod
    def read(cls, uri: str) -> Manifest | None:
        """The manifest at ``uri``, or ``None`` when there is none.

        Raises:
            PermanentError: it is not a manifest (remove it, or replace the dataset).
        """
        text = _read_text(uri)
        if text is None:
            return None
        try:
            data = json.loads(text)
            known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            return cls(**known)
        except (ValueError, TypeError, AttributeError) as exc:
            raise PermanentError(f"not a chunkwise manifest ({exc}); remove it to start this "
                                 "source afresh", uri=uri) from exc

    def write(self, uri: str) -> None:
        """Publish the manifest at ``uri``, whole or not at all."""
        self.written_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        body = json.dumps(asdict(self), indent=1).encode()
        with io.AtomicOutput(uri) as out:
            out.write(body)


def _read_text(uri: str) -> str | None:
    if not io.is_s3(uri):
        try:
            with open(io.local_path(uri), encoding="utf-8") as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise io.local_error(exc, uri, output=True) from exc
    import botocore.exceptions

    from engine.io.s3 import s3_errors

    bucket, key = io.split_s3(uri)
    with s3_errors(uri, output=True):
        try:
            body = io.s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        try:
            return body.read().decode("utf-8")
        finally:
            body.close()


# ---------------------------------------------------------------------------------------------
# One run into a dataset
# ---------------------------------------------------------------------------------------------


@dataclass
class DatasetWrite:
    """One run of a source into a dataset's root: the mode's check, the manifest, the clean-up.

    :meth:`open` before the source is read; :meth:`record` once the data is committed (a failure
    there is the run's failure); :meth:`finish` after it.
    """

    root: str
    name: str
    source: str
    version: str
    mode: str
    previous: Manifest | None
    generation: int
    #: data files found at the start that belong to no one's manifest and to this run's tag
    #: (left by a run of this source that was killed before its manifest).
    orphans: list[str] = field(default_factory=list)
    #: ``replace`` only: what to delete once this run is recorded.
    replaced: list[str] = field(default_factory=list)
    manifest: Manifest | None = None

    @property
    def tag(self) -> str:
        """This run's tag (:func:`run_tag`)."""
        return run_tag(self.version, self.generation)

    @property
    def file_stem(self) -> str:
        """What this run's data files are called before their suffix: ``<name>-<tag>``."""
        return f"{self.name}-{self.tag}"

    @property
    def manifest_uri(self) -> str:
        """Where the source's manifest lives."""
        return f"{self.root}{BOOKKEEPING_DIR}/{self.name}.json"

    @classmethod
    def open(cls, root: str, name: str, source: str, version: str, mode: str) -> DatasetWrite:
        """Read the source's manifest, check ``mode`` against the root's files; nothing is written.

        Args:
            root: the dataset's directory, ending in ``/``.
            name: the source's name (:func:`engine.plan.source_name`, or the caller's).
            source: the source's location (a real path, or ``s3://bucket/key``).
            version: the source's version (:func:`engine.plan.source_version`).
            mode: one of :data:`engine.config.WRITE_MODES`.

        Raises:
            UsageError: ``mode`` is unknown; ``error`` and the root holds data files this
                source did not write; the name is another source's.
        """
        if mode not in WRITE_MODES:
            raise UsageError(f"mode must be one of {', '.join(WRITE_MODES)}, not {mode!r}")
        check_name(name)
        write = cls(root, name, source, version, mode, None, 0)
        previous = Manifest.read(write.manifest_uri)
        if previous is not None and previous.source != source and mode != "replace":
            raise UsageError(f"the output name {name!r} is already used by {previous.source} in "
                             f"{root}: give this source another name", uri=source)
        if previous is not None and previous.source == source:
            write.previous = previous
            write.generation = previous.generation + 1
        if mode == "append":
            write._finish_previous()
            return write  # nothing is listed: only this source's manifest matters
        listed = list_files(root)
        owned = previous.owned() if write.previous is not None else set()
        mine = re.compile(rf"(?:.*/)?{re.escape(write.file_stem)}(?:-\d+)?\.parquet")
        data = [f.path for f in listed if not is_hidden(f.path) and f.path not in owned]
        write.orphans = [p for p in data if mine.fullmatch(p)]
        foreign = [p for p in data if not mine.fullmatch(p)]
        if mode == "error" and foreign:
            shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
            raise UsageError(
                f"the directory already holds {len(foreign)} data file(s) that {source} did not "
                "write "
                f"({shown}); choose mode 'append' to add beside them or 'replace' to replace "
                "them (--mode on the command line)", uri=root)
        if mode == "replace":
            write.replaced = foreign + write._other_sources(listed)
        write._finish_previous()
        return write

    def _finish_previous(self) -> None:
        """Delete what the previous run listed as superseded, if it stopped before it could.

        That run's own files are published and recorded: nothing depends on these.
        """
        if self.previous is not None and self.previous.superseded:
            delete_files(self.root, self.previous.superseded)

    def _other_sources(self, listed: list[ListedFile]) -> list[str]:
        """Other sources' manifests under the root, and the files they list."""
        paths: list[str] = []
        folder = f"{BOOKKEEPING_DIR}/"
        for entry in listed:
            path = entry.path
            if not (path.startswith(folder) and path.endswith(".json")):
                continue
            if path == relative(self.root, self.manifest_uri) and self.previous is not None:
                continue  # this source's own: superseded by the new one, not deleted
            other = Manifest.read(self.root + path)
            if other is not None:
                paths.extend(other.owned())
            paths.append(path)
        return paths

    def record(self, data: list[str], outputs: list[str], rows: int) -> None:
        """Write the manifest of this run's files (URIs), listing what they supersede."""
        files = [relative(self.root, uri) for uri in data]
        extra = [relative(self.root, uri) for uri in outputs]
        kept = {*files, *extra}
        earlier = ({*self.previous.files, *self.previous.outputs} if self.previous is not None
                   else set())
        self.manifest = Manifest(self.source, self.name, self.version, self.generation,
                                 files=files, outputs=extra,
                                 superseded=sorted(earlier - kept), rows=rows, mode=self.mode)
        self.manifest.write(self.manifest_uri)

    def finish(self) -> dict[str, Any]:
        """Delete what this run replaced; return what the report says of the dataset.

        The manifest is not written again: what it lists as superseded may be gone already,
        and the source's next run deletes it (again) first.

        Raises:
            EngineError: a deletion failed. The new files are published and recorded; the
                manifest lists what to delete, and the next run of the source does it.
        """
        manifest = self.manifest
        assert manifest is not None, "finish() before record()"
        kept = {*manifest.files, *manifest.outputs, relative(self.root, self.manifest_uri)}
        doomed = {*manifest.superseded, *self.orphans, *self.replaced} - kept
        try:
            removed = delete_files(self.root, doomed)
        except EngineError as exc:
            exc.message = (f"{exc.message} (the new files are published; the source's next "
                           "run removes what is left)")
            raise
        return {"name": self.name, "mode": self.mode, "generation": self.generation,
                "manifest": self.manifest_uri, "removed": removed}
