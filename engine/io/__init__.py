"""Bytes in and out: URIs, streaming decompressed inputs, atomic outputs, and S3.

- :mod:`engine.io.uri`: what a name says (local or S3, compression suffix, stem), local errors;
- :mod:`engine.io.input`: :func:`open_input`, :func:`object_size`, :func:`read_range`, and
  :func:`open_seekable` for formats read at any offset (Parquet);
- :mod:`engine.io.stored`: :func:`probe_input`, an input's first stored bytes read once, which
  the conversion's stream starts from (a small input is read whole, by one request);
- :mod:`engine.io.requests`: the S3 requests a run makes, counted by kind;
- :mod:`engine.io.decompress`: gzip (ISA-L), bz2 and zstd decompressors that count stored bytes;
- :mod:`engine.io.output`: :class:`AtomicOutput`, which publishes a file or object whole or not
  at all;
- :mod:`engine.io.s3`: the S3 backend of both, imported only when a URI is ``s3://``.

The names below are the package's API; the engine's other packages use them from here.
"""

from engine.io.input import (
    InputStream,
    SeekableInput,
    map_s3_error,
    object_size,
    open_input,
    open_seekable,
    read_range,
    reset_s3_client,
    s3_client,
)
from engine.io.output import AtomicOutput
from engine.io.stored import StoredHead, probe_input
from engine.io.uri import (
    infer_compression,
    input_stem,
    is_s3,
    local_error,
    local_path,
    name_suffix,
    one_line,
    split_s3,
    strip_compression_suffix,
)

__all__ = [
    "AtomicOutput",
    "InputStream",
    "SeekableInput",
    "StoredHead",
    "infer_compression",
    "input_stem",
    "is_s3",
    "local_error",
    "local_path",
    "map_s3_error",
    "name_suffix",
    "object_size",
    "one_line",
    "open_input",
    "open_seekable",
    "probe_input",
    "read_range",
    "reset_s3_client",
    "s3_client",
    "split_s3",
    "strip_compression_suffix",
]
