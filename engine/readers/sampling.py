"""Resolve an input once (compression, format, CSV delimiter, size, stem, samples); parse it.

Everything a run decides about its input before the first chunk is decided here, in one place,
into one value (:class:`ResolvedInput`): the conversion, schema inference (``chunkwise infer``)
and the pipeline's steps all read it from here, so they cannot disagree about a suffix.

The first bytes of the decompressed input come first: a Parquet file is read as Parquet whatever
its name, and a spreadsheet, an archive or another known binary format is refused by name
(:mod:`engine.readers.magic`), even under an explicit ``--format``. Then the suffix, then the
text decide.

Samples are what types are inferred from: the head of the decompressed text, plus, for a plain
seekable object larger than the samples, ``sample_count`` ranged reads spread across it, so a
column whose values change type late in the file is seen before the conversion starts. A
Parquet file has its schema in its footer and takes no samples.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from functools import partial
from operator import attrgetter
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from engine import io
from engine.config import (
    DEFAULT_BLOCK_SIZE,
    FORMAT_SUFFIXES,
    SUFFIX_DELIMITERS,
    WHOLE_INPUT_BYTES,
    ReadOptions,
    default_block_size,
)
from engine.errors import InputFormatError, SchemaError, UsageError
from engine.readers import READERS
from engine.readers.base import Chunk, Reader, Sample
from engine.readers.magic import known_binary
from engine.readers.streams import UTF8_BOM, Framed, utf8_stream
from engine.runtime.threads import PARSE_AHEAD_DEPTH, Prefetch, ReadAhead, conversion_threads
from engine.runtime.timing import StageClock, TimedReads

__all__ = ["ResolvedInput", "detect_format", "reader_for", "resolve_input", "settle_options"]

#: Bytes at the head of an input searched for a NUL (binary data).
_BINARY_PROBE_BYTES = 65536

#: Stored bytes read beyond ``sample_bytes`` for the head of a large input: what the buffers
#: between the stored bytes and the head's text read ahead (a BOM, the byte that says whether
#: the head is the whole input), so that reading the head never needs a second GET.
_HEAD_SLACK_BYTES = 512 * 1024


def detect_format(uri: str, head: bytes, *, json_path: str | None = None) -> str:
    r"""The format of an input: its first bytes, its suffix (compression removed), its text.

    A Parquet file is ``parquet`` whatever its name; another known binary format is an
    :class:`~engine.errors.InputFormatError` naming it. ``.json`` is a JSON document holding an
    array, unless its content is one object per line.

    Example:
        >>> detect_format("s3://raw/events.jsonl.gz", b""), detect_format("x", b'{"a": 1}\n')
        ('ndjson', 'ndjson')
        >>> detect_format("export.csv", b"PAR1\x15\x04\x15\x00")
        'parquet'

    """
    known = known_binary(head)
    if known is not None:
        if known.name == "parquet":
            return "parquet"
        raise InputFormatError(known.message(), uri=uri, offset=0)
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
    top-level array of its elements (``json_path`` does not apply to it). A known binary format
    is refused whatever the format asked for (but Parquet as ``parquet``); a range that starts
    inside the object is text that its head was checked for.
    """
    if read.format is not None and (read.byte_range is None or read.byte_range[0] == 0):
        known = known_binary(head)
        if known is not None and known.name != read.format:
            message = known.message() if known.name != "parquet" else (
                f"a Parquet file, not {read.format}: pass --format parquet, or no --format")
            raise InputFormatError(message, uri=uri, offset=0)
    fmt = read.format or detect_format(uri, head, json_path=read.json_path)
    if fmt not in READERS:
        raise InputFormatError(f"unknown format {fmt!r}; known: {', '.join(READERS)}", uri=uri)
    if fmt == "parquet":
        _check_parquet(uri, read)
    changes: dict[str, Any] = {"format": fmt}
    if fmt == "json" and read.byte_range is not None:
        changes["json_path"] = None
    implied = SUFFIX_DELIMITERS.get(io.name_suffix(uri))
    if fmt == "csv" and read.delimiter == "," and implied is not None:
        changes["delimiter"] = implied
    return replace(read, **changes)


def _check_parquet(uri: str, read: ReadOptions) -> None:
    """Refuse what a Parquet input cannot be: compressed as a whole, or cut into byte ranges."""
    compression = read.input_compression or io.infer_compression(uri)
    if compression != "none":
        raise InputFormatError(f"a Parquet file inside {compression} compression: Parquet is "
                               "read at any offset (its footer is at its end), which a "
                               "compressed stream cannot give; store it uncompressed (Parquet "
                               "compresses its own pages)", uri=uri, offset=0)
    if read.byte_range is not None:
        raise UsageError("a Parquet file is read whole: its row groups are found from its "
                         "footer, not by byte ranges", uri=uri)


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
        head: the first stored bytes, read once (:func:`engine.io.probe_input`): the
            conversion's stream starts from them (a small input's are all of it).
    """

    uri: str
    compression: str
    read: ReadOptions
    size: int | None
    stem: str
    samples: tuple[Sample, ...]
    head: io.StoredHead | None = None

    @property
    def format(self) -> str:
        """``csv``, ``ndjson``, ``json`` or ``parquet``."""
        return self.read.format or ""

    @property
    def null_markers(self) -> tuple[str, ...] | None:
        """The text read as null in a column that is not a string: CSV only.

        The ``null_values`` given, or pyarrow's defaults (``""``, ``NA``, ``NULL``...).
        """
        if self.format != "csv":
            return None
        if self.read.null_values is not None:
            return tuple(self.read.null_values)
        return tuple(pacsv.ConvertOptions().null_values)

    @property
    def text_base(self) -> int:
        """Where the text the reader sees starts in the stored object: a Map part's start.

        A JSON part is read framed by a ``[`` that is not in the object: one byte less.
        """
        if self.read.byte_range is None or self.seekable:
            return 0
        return self.read.byte_range[0] - (self.format == "json")

    def inferred(self) -> ResolvedInput:
        """This input without its samples, once the schema is inferred from them.

        They are up to ``sample_count + 1`` times ``sample_bytes`` (5 MiB at the defaults),
        which a run would otherwise hold to its end; a restart on widening keeps the widened
        schema and needs them no more (:attr:`head`, which the stream starts from, stays).
        A first sample that is the head's own bytes (a small input read whole) stays too: it
        costs nothing more, and :meth:`text` cuts the input from it instead of copying it.
        """
        keep = (self.samples[:1] if self.samples and self.head is not None
                and self.samples[0].data is self.head.data else ())
        return replace(self, samples=keep)

    def threaded(self, threads: int | None, *, block_chosen: bool) -> tuple[ResolvedInput, int]:
        """The threads converting this input takes, and the input with its block for them.

        ``threads`` as :func:`~engine.runtime.threads.conversion_threads` settles it (one for
        an input of a block or two). With more than one, and no block size chosen
        (``block_chosen``), the block is :func:`~engine.config.default_block_size`'s. Call it
        before :meth:`reader`: the reader reads blocks of ``read.block_size``.
        """
        packed = self.compression != "none" or self.format == "parquet"
        count = conversion_threads(threads, self.size, compressed=packed,
                                   block_size=self.read.block_size)
        if count == 1 or block_chosen or self.read.block_size != DEFAULT_BLOCK_SIZE:
            return self, count
        return replace(self, read=replace(self.read, block_size=default_block_size(count))), count

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

    @property
    def seekable(self) -> bool:
        """Whether the reader reads the stored bytes at any offset (Parquet), not as a stream."""
        return self.format == "parquet"

    @property
    def reads_ahead(self) -> bool:
        """Whether a conversion on worker threads reads this input on a thread of its own.

        For S3 (each read waits on the network) and for a compressed input (each read
        decompresses). An uncompressed local file is read by the parsing thread: the kernel
        already reads it ahead into the page cache, and a thread between would only copy each
        block once more and hand it over (issue 17: ~5 % of the CPU that worker threads added
        on 200 MB of CSV). A seekable input is never read ahead: its reader chooses the offsets.
        """
        if self.seekable:
            return False
        return self.compression != "none" or io.is_s3(self.uri)

    def text(self, stream: BinaryIO) -> BinaryIO:
        """The decompressed ``stream`` of this input as UTF-8 text, framed as its reader needs.

        (A seekable format's stored bytes, as they are.)
        """
        if self.seekable:
            return stream
        if self.read.byte_range is not None and self.format == "json":
            stream = Framed(stream, b"[", b"]")
        # An uncompressed input's text is at most its stored size: a small one's is read
        # into a buffer of that size (aligned_pieces); and when the head sample is the stored
        # bytes themselves (resolve_input: a small UTF-8 input read whole), they are the text.
        plain = self.compression == "none" and self.read.byte_range is None
        known = (self.samples[0].data if plain and self.head is not None and self.samples
                 and self.samples[0].data is self.head.data else None)
        return utf8_stream(stream, self.read.encoding, self.uri,
                           expected_bytes=self.size if plain else None, known_text=known)

    def open(self) -> io.InputStream | io.SeekableInput:
        """Open the stored bytes (the byte range, if any), decompressed; or seekable, as stored."""
        if self.seekable:
            return io.open_seekable(self.uri, head=self.head)
        return io.open_input(self.uri, self.compression, byte_range=self.read.byte_range,
                             head=self.head)

    @contextmanager
    def chunks(self, reader: Reader, schema: pa.Schema, *, threads: int | None = None,
               widen: str = "restart", strict: frozenset[str] = frozenset(),
               clock: StageClock | None = None, ahead_bytes: int = 0,
               ) -> Iterator[tuple[io.InputStream | io.SeekableInput, Iterator[Chunk]]]:
        """Open the input and parse it into chunks of ``schema``.

        Sequentially, or with parsing on a worker thread when
        :func:`~engine.runtime.threads.conversion_threads` gives more than one (none for an
        input of a block or two). Reading runs on a thread of its own too when it is worth
        overlapping (:meth:`reads_ahead`). On a worker thread parsing runs ahead of the consumer
        by parsed chunks of up to ``ahead_bytes`` in all (:attr:`Chunk.nbytes`; at least one):
        the run gives half its row group (:func:`~engine.config.parse_ahead_bytes`), so that
        parsing goes on while a row group is encoded (:class:`~engine.runtime.threads.Prefetch`).
        With ``clock``, reads are charged to its ``read`` stage and parsing to ``parse``, on
        whichever thread does them. Yields the stored stream (for progress) and the chunks.
        Offsets (chunks', rejects') are into the whole object, a Map part's included
        (:attr:`text_base`).
        """
        raw = self.open()
        # Parquet's column chunks are encoded and compressed: count it as a compressed input
        packed = self.compression != "none" or self.format == "parquet"
        threaded = conversion_threads(threads, self.size, compressed=packed,
                                      block_size=self.read.block_size) > 1
        with ExitStack() as stack:
            stack.enter_context(raw)
            stream: Any = raw if clock is None else TimedReads(raw, clock)
            if threaded and self.reads_ahead:
                stream = ReadAhead(stream, self.read.block_size)
                stack.callback(stream.close)
            chunks = reader.read(self.text(stream), schema, widen=widen, strict=strict)
            if clock is not None:
                chunks = clock.iterate("parse", chunks)
            if threaded:
                chunks = stack.enter_context(Prefetch(
                    chunks, name="chunkwise-parse", depth=PARSE_AHEAD_DEPTH,
                    weigh=attrgetter("nbytes"), budget=ahead_bytes))
            if self.text_base:
                chunks = map(partial(_shift, by=self.text_base), chunks)
            yield raw, chunks


def _shift(chunk: Chunk, *, by: int) -> Chunk:
    """``chunk`` with its offset and its reader's rejects' moved ``by`` bytes."""
    chunk.offset += by
    chunk.rejects = [reject if reject.offset is None
                     else replace(reject, offset=reject.offset + by) for reject in chunk.rejects]
    return chunk


def resolve_input(uri: str, read: ReadOptions) -> ResolvedInput:
    """Read ``uri``'s head once, settle its options and take the inference samples.

    An input of at most :data:`~engine.config.WHOLE_INPUT_BYTES` is read whole by one request
    and sampled from memory; of a larger one the head is kept, and the conversion reads on from
    where it ends (:func:`engine.io.probe_input`). On S3 the object gets one ``HeadObject``.
    """
    if read.byte_range is not None and read.format is None:
        raise UsageError("a byte range needs an explicit format", uri=uri)
    compression = read.input_compression or io.infer_compression(uri)
    stored = io.probe_input(uri, read.sample_bytes + _HEAD_SLACK_BYTES,
                            whole_up_to=max(WHOLE_INPUT_BYTES, read.sample_bytes),
                            byte_range=read.byte_range)
    if (stored.whole and compression == "none" and read.byte_range is None
            and len(stored.data) <= read.sample_bytes and not stored.data.startswith(UTF8_BOM)
            and codecs.lookup(read.encoding).name == "utf-8"):
        # A small UTF-8 input, read whole: its text is its stored bytes, not copied
        head, at_end, size = stored.data, True, stored.size
    else:
        with io.open_input(uri, compression, byte_range=read.byte_range, head=stored) as raw:
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
    plain = plain and settled.format != "parquet"  # its schema is in its footer
    if plain and size and size > read.sample_bytes * (read.sample_count + 1):
        step = size // (read.sample_count + 1)
        for i in range(1, read.sample_count + 1):
            start = i * step
            data = io.read_range(uri, start, read.sample_bytes, head=stored)
            samples.append(Sample(data, False, start + len(data) >= size))
    return ResolvedInput(uri, compression, settled, size, io.input_stem(uri), tuple(samples),
                         stored)
