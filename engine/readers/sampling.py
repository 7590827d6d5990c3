"""Resolve an input once (compression, format, CSV delimiter, size, stem, samples); parse it.

Everything a run decides about its input before the first chunk is decided here, in one place,
into one value (:class:`ResolvedInput`): the conversion, schema inference (``chunkwise infer``)
and the pipeline's steps all read it from here, so they cannot disagree about a suffix.

Samples are what types are inferred from: the head of the decompressed text, plus, for a plain
seekable object larger than the samples, ``sample_count`` ranged reads spread across it, so a
column whose values change type late in the file is seen before the conversion starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

import pyarrow as pa

from engine import io
from engine.config import FORMAT_SUFFIXES, SUFFIX_DELIMITERS, ReadOptions
from engine.errors import InputFormatError, SchemaError, UsageError
from engine.readers import READERS
from engine.readers.base import Chunk, Reader, Sample
from engine.readers.streams import Framed, utf8_stream
from engine.runtime.threads import Prefetch, ReadAhead, worker_threads
from engine.runtime.timing import StageClock, TimedReads

__all__ = ["ResolvedInput", "detect_format", "reader_for", "resolve_input", "settle_options"]

#: Bytes at the head of an input searched for a NUL (binary data).
_BINARY_PROBE_BYTES = 65536


def detect_format(uri: str, head: bytes, *, json_path: str | None = None) -> str:
    r"""The format of an input: from its suffix (compression suffix removed), else its content.

    ``.json`` is a JSON document holding an array, unless its content is one object per line.

    Example:
        >>> detect_format("s3://raw/events.jsonl.gz", b""), detect_format("x", b'{"a": 1}\n')
        ('ndjson', 'ndjson')

    """
    suffix = io.name_suffix(uri)
    if suffix in FORMAT_SUFFIXES and suffix != ".json":
        return FORMAT_SUFFIXES[suffix]
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if b"\x00" in head[:_BINARY_PROBE_BYTES]:
        raise InputFormatError(
            "binary data, not CSV or JSON text (NUL bytes; UTF-16 needs --encoding utf-16)",
            uri=uri, offset=head.index(b"\x00"),
        )
    if not text:
        return "json" if suffix == ".json" else "csv"
    if text[:1] == b"[" or json_path:
        return "json"
    if text[:1] == b"{":
        return "ndjson" if _one_object_per_line(text) else "json"
    if suffix == ".json":
        raise InputFormatError("a .json input must hold a JSON array or objects, one per line",
                               uri=uri, offset=0)
    return "csv"


def _one_object_per_line(text: bytes) -> bool:
    first, _, rest = text.partition(b"\n")
    first = first.strip()
    if not (first.startswith(b"{") and first.endswith(b"}")):
        return False
    following = rest.lstrip()
    return not following or following[:1] == b"{"


def settle_options(uri: str, read: ReadOptions, head: bytes) -> ReadOptions:
    """``read`` with the format, and what the name implies for it, decided.

    The format is ``read.format`` or :func:`detect_format`'s; a CSV named ``.tsv`` is read with
    a tab when no other delimiter was asked for; a byte range of a JSON array is read as a
    top-level array of its elements (``json_path`` does not apply to it).
    """
    fmt = read.format or detect_format(uri, head, json_path=read.json_path)
    if fmt not in READERS:
        raise InputFormatError(f"unknown format {fmt!r}; known: {', '.join(READERS)}", uri=uri)
    changes: dict[str, Any] = {"format": fmt}
    if fmt == "json" and read.byte_range is not None:
        changes["json_path"] = None
    implied = SUFFIX_DELIMITERS.get(io.name_suffix(uri))
    if fmt == "csv" and read.delimiter == "," and implied is not None:
        changes["delimiter"] = implied
    return replace(read, **changes)


def reader_for(uri: str, read: ReadOptions, head: bytes) -> Reader:
    """The reader for ``uri``, its options settled by :func:`settle_options`."""
    settled = settle_options(uri, read, head)
    return READERS[settled.format or ""](uri, settled)


@dataclass(frozen=True)
class ResolvedInput:
    """An input as a run sees it, decided once.

    Attributes:
        uri: what was given.
        compression: ``none``, ``gzip``, ``bz2`` or ``zstd``.
        read: the read options with the format (and the delimiter a ``.tsv`` implies) settled.
        size: stored bytes (of the byte range, for a range), when known.
        stem: what outputs are named after (:func:`engine.io.input_stem`).
        samples: the head and ranged samples, for inference.
    """

    uri: str
    compression: str
    read: ReadOptions
    size: int | None
    stem: str
    samples: tuple[Sample, ...]

    @property
    def format(self) -> str:
        """``csv``, ``ndjson`` or ``json``."""
        return self.read.format or ""

    def reader(self) -> Reader:
        """A new reader of this input."""
        return READERS[self.format](self.uri, self.read)

    def schema(self, reader: Reader, explicit: Any = None) -> pa.Schema:
        """``explicit`` (a ``pyarrow.Schema``), or the schema ``reader`` infers from the samples."""
        if explicit is None:
            return reader.infer_schema(list(self.samples))
        if isinstance(explicit, pa.Schema):
            return explicit
        raise SchemaError(f"schema must be a pyarrow.Schema, not {type(explicit).__name__}",
                          uri=self.uri)

    def text(self, stream: BinaryIO) -> BinaryIO:
        """The decompressed ``stream`` of this input as UTF-8 text, framed as its reader needs."""
        if self.read.byte_range is not None and self.format == "json":
            stream = Framed(stream, b"[", b"]")
        return utf8_stream(stream, self.read.encoding, self.uri)

    def open(self) -> io.InputStream:
        """Open the stored bytes (the byte range, if any), decompressed."""
        return io.open_input(self.uri, self.compression, byte_range=self.read.byte_range)

    @contextmanager
    def chunks(self, reader: Reader, schema: pa.Schema, *, threads: int | None = None,
               widen: str = "restart", strict: frozenset[str] = frozenset(),
               clock: StageClock | None = None) -> Iterator[tuple[io.InputStream, Iterator[Chunk]]]:
        """Open the input and parse it into chunks of ``schema``.

        Sequentially, or with reading and parsing on a worker thread when
        :func:`~engine.runtime.threads.worker_threads` gives more than one. With ``clock``,
        reads are charged to its ``read`` stage and parsing to ``parse``, on whichever thread
        does them. Yields the stored stream (for progress) and the chunks.
        """
        raw = self.open()
        threaded = worker_threads(threads) > 1
        with ExitStack() as stack:
            stack.enter_context(raw)
            stream: Any = raw if clock is None else TimedReads(raw, clock)
            if threaded:
                stream = ReadAhead(stream, self.read.block_size)
                stack.callback(stream.close)
            chunks = reader.read(self.text(stream), schema, widen=widen, strict=strict)
            if clock is not None:
                chunks = clock.iterate("parse", chunks)
            if threaded:
                chunks = stack.enter_context(Prefetch(chunks, name="chunkwise-parse"))
            yield raw, chunks


def resolve_input(uri: str, read: ReadOptions) -> ResolvedInput:
    """Open ``uri`` once for its head, settle its options and take the inference samples."""
    if read.byte_range is not None and read.format is None:
        raise UsageError("a byte range needs an explicit format", uri=uri)
    compression = read.input_compression or io.infer_compression(uri)
    with io.open_input(uri, compression, byte_range=read.byte_range) as raw:
        stream: Any = raw
        if read.byte_range is not None and read.format == "json":
            stream = Framed(raw, b"[", b"]")
        head = utf8_stream(stream, read.encoding, uri).read(read.sample_bytes)
        at_end = not stream.read(1) if len(head) < read.sample_bytes else False
        size = raw.size
    settled = settle_options(uri, read, head)
    samples = [Sample(head, True, at_end)]
    plain = compression == "none" and read.encoding.lower().replace("-", "") in ("utf8", "ascii")
    plain = plain and read.byte_range is None  # a range's samples: its head (pass a schema)
    if plain and size and size > read.sample_bytes * (read.sample_count + 1):
        step = size // (read.sample_count + 1)
        for i in range(1, read.sample_count + 1):
            start = i * step
            data = io.read_range(uri, start, read.sample_bytes)
            samples.append(Sample(data, False, start + len(data) >= size))
    return ResolvedInput(uri, compression, settled, size, io.input_stem(uri), tuple(samples))
