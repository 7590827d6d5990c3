"""What a URI says before anything is opened: local or S3, compression, name, and local errors.

Every rule that reads a name lives here, once: the compression its suffix implies
(:data:`engine.config.COMPRESSION_SUFFIXES`), the stem outputs are named after
(:func:`input_stem`), and how a local filesystem error maps onto :mod:`engine.errors`.
"""

from __future__ import annotations

import posixpath

from engine.config import COMPRESSION_SUFFIXES, INPUT_COMPRESSIONS
from engine.errors import (
    EngineError,
    InputFormatError,
    InputNotFoundError,
    PermanentError,
    TransientError,
    UsageError,
)

__all__ = [
    "check_compression",
    "infer_compression",
    "input_stem",
    "is_s3",
    "local_error",
    "local_path",
    "name_suffix",
    "one_line",
    "split_s3",
    "strip_compression_suffix",
]


def is_s3(uri: str) -> bool:
    """Whether ``uri`` names an S3 object (``s3://bucket/key``) rather than a local path."""
    return uri[:5].lower() == "s3://"


def split_s3(uri: str, *, allow_empty_key: bool = False) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``("bucket", "key")``.

    Args:
        uri: an ``s3://`` URI.
        allow_empty_key: accept ``s3://bucket`` and ``s3://bucket/`` (key ``""``), e.g. for a
            prefix; objects always need a key.

    Returns:
        The bucket name and the key, the key exactly as written (no normalisation).

    Raises:
        UsageError: ``uri`` is not an ``s3://`` URI, or lacks a bucket (or a key); a
            ``ValueError``.

    Example:
        >>> split_s3("s3://raw/orders/2025-03-01.csv.gz")
        ('raw', 'orders/2025-03-01.csv.gz')

    """
    if not is_s3(uri):
        raise UsageError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise UsageError("S3 URI has no bucket", uri=uri)
    if not key and not allow_empty_key:
        raise UsageError("S3 URI has no key (s3://bucket/key names an object)", uri=uri)
    return bucket, key


def local_path(uri: str) -> str:
    """Return the filesystem path of a local URI (a plain path, or ``file://`` + a path)."""
    return uri[7:] if uri.startswith("file://") else uri


def infer_compression(uri: str) -> str:
    """Return the compression implied by the suffix of ``uri``.

    Returns:
        ``gzip`` for ``.gz``, ``bz2`` for ``.bz2``, ``zstd`` for ``.zst``/``.zstd``, else ``none``
        (case-insensitive).

    Example:
        >>> infer_compression("s3://raw/orders.CSV.GZ"), infer_compression("orders.csv")
        ('gzip', 'none')

    """
    lower = uri.lower()
    for suffix, name in COMPRESSION_SUFFIXES.items():
        if lower.endswith(suffix):
            return name
    return "none"


def strip_compression_suffix(uri: str) -> str:
    """``uri`` without its compression suffix: ``x.csv.gz`` → ``x.csv``; other names unchanged."""
    lower = uri.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            return uri[: -len(suffix)]
    return uri


def name_suffix(uri: str) -> str:
    """The lower-case suffix of the name once its compression suffix is removed.

    Example:
        >>> name_suffix("s3://raw/Orders.TSV.gz")
        '.tsv'

    """
    return posixpath.splitext(strip_compression_suffix(uri.rstrip("/")).lower())[1]


def input_stem(uri: str, default: str = "part") -> str:
    """The name outputs of ``uri`` are called after: the file name without suffixes.

    The compression suffix, then one extension, then leading ``.`` and ``_`` are removed (query
    engines skip files whose names start with them).

    Example:
        >>> input_stem("s3://raw/orders/2025-03-01.csv.gz"), input_stem("_tmp/.hidden.json")
        ('2025-03-01', 'hidden')

    """
    name = posixpath.basename(strip_compression_suffix(uri.rstrip("/")))
    return posixpath.splitext(name)[0].lstrip("._") or default


def check_compression(compression: str) -> None:
    """Raise :class:`UsageError` for a compression :func:`open_input` does not know."""
    if compression not in INPUT_COMPRESSIONS:
        raise UsageError(
            f"unknown compression {compression!r}; expected one of {', '.join(INPUT_COMPRESSIONS)}"
        )


def one_line(text: object) -> str:
    """``text`` with every run of whitespace, line breaks included, as one space."""
    return " ".join(str(text).split())


def local_error(exc: OSError, uri: str, *, output: bool = False) -> EngineError:
    """Translate a local filesystem error into the engine's hierarchy."""
    reason = one_line(exc.strerror or exc)
    if not output and isinstance(exc, FileNotFoundError | NotADirectoryError):
        return InputNotFoundError("file not found", uri=uri)
    if not output and isinstance(exc, IsADirectoryError):
        return InputFormatError("not a readable file (a directory)", uri=uri)
    if isinstance(exc, PermissionError):
        return PermanentError(f"permission denied ({reason})", uri=uri)
    if output and isinstance(exc, IsADirectoryError) and not uri.endswith("/"):
        return PermanentError(f"cannot write here ({reason}): to write into the directory, end "
                              "the output with /", uri=uri)
    if output and isinstance(exc, IsADirectoryError | NotADirectoryError | FileExistsError):
        return PermanentError(f"cannot write here ({reason})", uri=uri)
    return TransientError(f"I/O error ({reason})", uri=uri)
