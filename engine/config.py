"""Settings: every memory-relevant size is a named, documented constant.

Peak RSS ≈ interpreter + imports + ``block_size`` × (a small factor for the parsed copy)
+ the row group being buffered (``row_group_bytes``) + writer encode buffers
+ one S3 part (``part_size``) when writing to S3. See docs/memory.md, "The model".
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from engine.errors import UsageError

MiB = 1024**2

#: Bytes read from the (decompressed) input per chunk. Each chunk is cut at the last complete
#: record and parsed on its own, so nothing reads ahead of it. 4 MiB measured fastest per CPU
#: second without a visible memory cost (``benchmarks/``).
DEFAULT_BLOCK_SIZE = 4 * MiB

#: The block with worker threads, when none was chosen: their blocks and chunks in flight are
#: then half as large, 15-17 MiB less peak RSS, which pays for the allocator keeping freed
#: pages as long as on one thread (``engine/runtime/allocator.py``). With 4 MiB blocks and a
#: 1 ms purge delay the second thread faulted ~20,000 more pages per 200 MB of CSV than one
#: thread: most of the CPU it added (issue 17).
THREADED_BLOCK_SIZE = 2 * MiB


def default_block_size(threads: int) -> int:
    """The block a conversion on ``threads`` threads reads when no block size was chosen.

    >>> default_block_size(1) // MiB, default_block_size(2) // MiB
    (4, 2)
    """
    return THREADED_BLOCK_SIZE if threads > 1 else DEFAULT_BLOCK_SIZE

#: A single record larger than this is an error, not an allocation: it bounds what one bad
#: input (a 200 MB line, an unbalanced quote) can make the engine hold.
DEFAULT_MAX_RECORD_BYTES = 64 * MiB

#: Deepest nesting of brackets in one JSON record (its own object is level 1); a deeper record is
#: rejected before any parser sees it. Parquet readers (Arrow, DuckDB) refuse a schema nested
#: more than 100 levels and a list takes two, so 48 nested arrays are the most that read back;
#: pyarrow's JSON parser overflows its stack (a segfault) at about 20,000 levels.
MAX_JSON_DEPTH = 48

#: Most columns (leaf fields, nested ones included) an input may have. Each costs pyarrow's CSV
#: parser and the Parquet writer ~19 KiB of buffers whatever the rows (measured, one 50-row
#: chunk: 2,000 columns 133 MiB peak, 5,000 188 MiB, 10,000 282 MiB, 100,000 over 1 GiB), and
#: inferring JSON keys costs a builder per key per row. More columns are a SchemaError.
MAX_COLUMNS = 5_000

#: Arrow bytes buffered before a row group is written. ``ParquetWriter.write_batch`` closes a
#: row group per call, so batches are held until this target and written as one group. 16 MiB
#: (~200k rows of the orders data) compresses within 0.2 % of 32 or 64 MiB groups and costs
#: 14 MiB less peak RSS than 32 MiB (benchmarks/); it is the largest term of the memory model.
DEFAULT_ROW_GROUP_BYTES = 16 * MiB


def parse_ahead_bytes(row_group_bytes: int) -> int:
    """How far parsing on a worker thread may run ahead of the encoder: half a row group.

    The encoder takes a row group's chunks as they come and then encodes them all at once;
    with one chunk ahead the parser stopped for each encoding. Measured on 200 MB at default
    threads, each against one chunk ahead (issue 17): CSV 0.85-0.92x the time for 0-9 MiB more
    peak RSS; a Parquet input 0.91x for 7-19 MiB more. A whole row group ahead was faster still
    (CSV 0.79x, Parquet 0.66x) but took a Parquet input of one 108 MB row group to 192 of the
    200 MiB bar (:class:`~engine.runtime.threads.Prefetch`, docs/performance.md).

    >>> parse_ahead_bytes(DEFAULT_ROW_GROUP_BYTES) // MiB
    8
    """
    return row_group_bytes // 2


#: Upper bound on rows per row group, whatever their size.
DEFAULT_ROW_GROUP_ROWS = 1024 * 1024

#: S3 multipart part size for outputs: smart-open's default is 50 MiB per open writer.
DEFAULT_PART_SIZE = 8 * MiB

#: The smallest part S3 takes in a multipart upload (but the last); smart-open raises a smaller
#: ``part_size`` to it.
S3_MIN_PART_SIZE = 5 * MiB

#: The largest part S3 takes; smart-open lowers a larger ``part_size`` to it.
S3_MAX_PART_SIZE = 5 * 1024 * MiB

#: Local disk a spool leaves free for everything else (the spool holds the part buffers of a
#: partitioned S3 output on disk: ``max_open_writers`` × ``part_size``, 256 MiB at the defaults,
#: ``engine/sink/spool.py``). Lambda's ephemeral storage (``/tmp``) is 512 MB unless the
#: template's ``EphemeralStorageSize`` raises it: 256 MiB + this fits with room to spare.
SPOOL_RESERVE_BYTES = 64 * MiB

#: A Parquet input's row group up to this many compressed bytes has each column chunk read whole,
#: in one read (one GET on S3); a larger one (Spark writes 128 MiB groups) is read through a
#: buffer of ``PARQUET_READ_BUFFER_BYTES`` per column, so memory does not grow with it.
PARQUET_WHOLE_ROW_GROUP_BYTES = 32 * MiB

#: Bytes read at a time per column of a Parquet row group larger than the above.
PARQUET_READ_BUFFER_BYTES = 1 * MiB

#: How many ranged samples (beyond the head) schema inference reads from a seekable input.
DEFAULT_SAMPLE_COUNT = 4

#: Bytes read per inference sample.
DEFAULT_SAMPLE_BYTES = 1 * MiB

#: An input of at most this many stored bytes is read whole, by one request, and kept in memory
#: for the run: sampling and the conversion read it from there (on S3: one HEAD and one GET).
#: 5 MiB is the span of the default samples, below which sampling reads only the head anyway.
WHOLE_INPUT_BYTES = 5 * MiB

#: Longest raw text kept for a rejected record in the rejects file.
MAX_REJECT_RAW_CHARS = 4096

_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Parse a human size such as ``"500MB"``, ``"1.5 GiB"`` or ``"4096"`` into bytes.

    Units are case-insensitive: B, KB, MB, GB are powers of 1000; KiB, MiB, GiB powers of 1024.
    A bare number is bytes. Fractions are allowed and rounded to whole bytes.

    Args:
        text: the size to parse.

    Returns:
        The size in bytes.

    Raises:
        ValueError: the text is not a non-negative number followed by one of the units.

    """
    match = _SIZE_RE.match(text) if isinstance(text, str) else None
    if match is None or match.group(2).lower() not in _SIZE_UNITS:
        raise UsageError(
            f"invalid size {text!r}: expected a number and an optional unit "
            "(B, KB, MB, GB = 1000-based; KiB, MiB, GiB = 1024-based), e.g. '500MB' or '1.5GiB'"
        )
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as exc:  # pragma: no cover - the regex only admits valid decimals
        raise UsageError(f"invalid size {text!r}") from exc
    return int((number * _SIZE_UNITS[match.group(2).lower()]).to_integral_value())


#: Parquet codecs the writer takes (``WriteOptions.compression``).
COMPRESSIONS = ("zstd", "snappy", "gzip", "none")

#: What a run into a directory does with the data files other sources wrote there
#: (``transform(mode=...)``, ``--mode``; :mod:`engine.sink.dataset`): refuse, add beside them,
#: or remove them once this run's files are written. The first is the default.
WRITE_MODES = ("error", "append", "replace")
WriteMode = Literal["error", "append", "replace"]

#: Text input formats: CSV (any delimiter), newline-delimited JSON, one JSON document holding an
#: array. These are streamed, split into byte ranges and generated by ``chunkwise gen``.
TEXT_FORMATS = ("csv", "ndjson", "json")

#: Input formats: the text formats and Parquet (read row group by row group, at any offset).
FORMATS = (*TEXT_FORMATS, "parquet")

#: Compressions an input may have (``ReadOptions.input_compression``).
INPUT_COMPRESSIONS = ("none", "gzip", "bz2", "zstd")

#: Stored-name suffix → input compression, matched case-insensitively at the end of the name.
#: The first suffix of each compression is the one ``chunkwise gen`` writes.
COMPRESSION_SUFFIXES: dict[str, str] = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd",
                                        ".zstd": "zstd"}

#: Name suffix (after any compression suffix) → format. ``.json`` is a JSON array unless its
#: content is one object per line (:func:`engine.readers.sampling.detect_format`).
FORMAT_SUFFIXES: dict[str, str] = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".ndjson": "ndjson", ".jsonl": "ndjson", ".ldjson": "ndjson",
    ".json": "json",
    ".parquet": "parquet", ".pq": "parquet",
}

#: Name suffix → the CSV delimiter it implies when none is given.
SUFFIX_DELIMITERS: dict[str, str] = {".tsv": "\t"}

#: Lambda gives one full vCPU at this memory size (MB); below it a function has a share of one,
#: and a conversion runs on one thread. AWS Lambda developer guide, "Configuring memory".
FULL_VCPU_MB = 1769


def csv_char_problem(value: str, *, empty_ok: bool = False) -> str | None:
    """Why ``value`` cannot be a CSV delimiter or quote character, or ``None`` if it can.

    pyarrow's CSV parser takes one ASCII byte for each (it raises a bare ``ValueError`` or
    ``TypeError`` otherwise); ``empty_ok`` allows ``""`` (no quoting).
    """
    if value == "" and empty_ok:
        return None
    if len(value) != 1 or not value.isascii():
        return f"must be one ASCII character, not {value!r}"
    if value in "\r\n":
        return "cannot be a line break"
    return None


@dataclass(frozen=True)
class ReadOptions:
    """How to read the input.

    Attributes:
        format: ``csv``, ``ndjson``, ``json`` (a JSON document holding an array) or
            ``parquet``; ``None`` detects it from the content's first bytes (Parquet, and the
            binary formats refused), then the suffix, then the text.
        input_compression: ``gzip``, ``bz2``, ``zstd``, ``none``; ``None`` infers it from the
            suffix.
        block_size: bytes per parsed chunk (see ``DEFAULT_BLOCK_SIZE``; a conversion on
            worker threads left at the default reads ``THREADED_BLOCK_SIZE``).
        max_record_bytes: longest single record accepted (see ``DEFAULT_MAX_RECORD_BYTES``).
        encoding: text encoding of the input; anything but UTF-8 is transcoded while streaming.
        delimiter: CSV field delimiter.
        quote_char: CSV quote character.
        header: whether the first CSV record holds the column names.
        column_names: names to use instead of (or in the absence of) a header.
        null_values: strings read as null; ``None`` keeps pyarrow's defaults (``""``, ``NA``,
            ``NULL``, ``NaN``… for non-string columns only). Given explicitly, they apply to
            string columns too.
        json_path: ijson prefix of the array to read in a JSON document, e.g. ``data.item``;
            ``None`` means the document is a top-level array (prefix ``item``).
        sample_count: ranged samples taken for schema inference beyond the head.
        sample_bytes: bytes per sample.
        byte_range: ``(start, end)``: read only the stored bytes ``[start, end)`` of an
            uncompressed input, which must begin and end at record boundaries (as
            :func:`engine.aws.planning.plan_byte_ranges` plans them); ``format`` must be set.
            CSV: a range after the first holds no header (pass ``header=False`` and the
            header's ``column_names``). JSON: the range holds whole elements of the array and
            the commas between them, and is read as if framed by ``[`` and ``]``
            (``json_path`` does not apply).
    """

    format: str | None = None
    input_compression: str | None = None
    block_size: int = DEFAULT_BLOCK_SIZE
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    encoding: str = "utf-8"
    delimiter: str = ","
    quote_char: str = '"'
    header: bool = True
    column_names: tuple[str, ...] | None = None
    null_values: tuple[str, ...] | None = None
    json_path: str | None = None
    sample_count: int = DEFAULT_SAMPLE_COUNT
    sample_bytes: int = DEFAULT_SAMPLE_BYTES
    byte_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for name, empty_ok in (("delimiter", False), ("quote_char", True)):
            problem = csv_char_problem(getattr(self, name), empty_ok=empty_ok)
            if problem is not None:
                raise UsageError(f"{name} {problem}")
        _at_least(self, block_size=1, max_record_bytes=1, sample_bytes=1, sample_count=0)
        for name in ("null_values", "column_names"):
            if isinstance(getattr(self, name), str):  # would be read as one name per character
                raise UsageError(f"{name} must be a list of strings, not the string "
                                 f"{getattr(self, name)!r}")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise UsageError(f"encoding {self.encoding!r} is not a known text encoding") from None


@dataclass(frozen=True)
class WriteOptions:
    """How to write Parquet.

    Attributes:
        compression: ``zstd`` (default), ``snappy``, ``gzip`` or ``none``.
        compression_level: codec level; ``None`` is the codec's default.
        row_group_bytes: Arrow bytes buffered per row group (``DEFAULT_ROW_GROUP_BYTES``).
        row_group_rows: most rows per row group (``DEFAULT_ROW_GROUP_ROWS``).
        max_rows_per_file: rotate to a new file after this many rows (``None``: one file).
        max_bytes_per_file: rotate after roughly this many output bytes (``None``: one file).
        part_size: S3 multipart part size (``DEFAULT_PART_SIZE``).
        dictionary_max_ratio: string columns whose distinct-to-total ratio in the first row group
            is at most this are dictionary-encoded in memory as well as in the file.
    """

    compression: str = "zstd"
    compression_level: int | None = None
    row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS
    max_rows_per_file: int | None = None
    max_bytes_per_file: int | None = None
    part_size: int = DEFAULT_PART_SIZE
    dictionary_max_ratio: float = 0.1

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise UsageError(f"compression must be one of {', '.join(COMPRESSIONS)}, "
                             f"not {self.compression!r}")
        _at_least(self, row_group_rows=1, row_group_bytes=0, max_rows_per_file=0,
                  max_bytes_per_file=0, part_size=1)


@dataclass(frozen=True)
class RunOptions:
    """Everything one conversion needs beyond its source and destination."""

    read: ReadOptions = field(default_factory=ReadOptions)
    write: WriteOptions = field(default_factory=WriteOptions)
    #: an explicit Arrow schema: no inference, and no widening.
    schema: object | None = None
    #: where rejected records go (NDJSON), or ``None`` to only count them.
    rejects_uri: str | None = None
    #: how many times a run may restart to widen a column before giving up.
    max_restarts: int = 8
    #: 1 runs every stage in turn on one thread: one chunk in flight. 2 reads, decompresses and
    #: parses on worker threads while the main thread encodes Parquet (reading a block ahead,
    #: parsing up to half a row group ahead: :func:`parse_ahead_bytes`). ``None`` (the default)
    #: picks 2 when the process may use two or more cores. A Lambda under 1,769 MB has less
    #: than one vCPU: the pipeline's transform step passes 1 there.
    threads: int | None = None
    #: the name of what a run writes for its source: in a directory, the start of its data
    #: files' names, its manifest's, its rejects' and aggregate's (``None``: the source's name,
    #: :func:`engine.plan.source_name`); beside a file output, its rejects' and aggregate's
    #: (``None``: the input's file name without extension). Set it to give the parts of one
    #: input (byte ranges) distinct names.
    output_stem: str | None = None
    #: what a run into a directory does with data files other sources wrote there
    #: (:data:`WRITE_MODES`, :mod:`engine.sink.dataset`): ``"error"`` (``None`` means it) refuses
    #: before the input is read, ``"append"`` adds beside them, ``"replace"`` removes them once
    #: this run's files are written. A file output is replaced as named; ``"error"`` then
    #: refuses an existing file, and ``"append"`` is refused.
    mode: WriteMode | None = None

    def __post_init__(self) -> None:
        _at_least(self, threads=1, max_restarts=0)
        if self.mode is not None and self.mode not in WRITE_MODES:
            raise UsageError(f"mode must be one of {', '.join(WRITE_MODES)}, not {self.mode!r}")


def build_options(options: RunOptions | None = None, **kwargs: Any) -> RunOptions:
    """``options`` with keyword overrides.

    Each keyword names a field of ``ReadOptions``, ``WriteOptions`` or ``RunOptions``
    (``compression`` is the Parquet codec); an unknown name is a ``TypeError``, as for a function.

    Example:
        >>> opts = build_options(block_size=1 << 20, compression="snappy", threads=1)
        >>> opts.read.block_size, opts.write.compression, opts.threads
        (1048576, 'snappy', 1)

    """
    options = options or RunOptions()
    groups: dict[str, dict[str, Any]] = {"read": {}, "write": {}, "run": {}}
    read_names = {f.name for f in fields(ReadOptions)}
    write_names = {f.name for f in fields(WriteOptions)}
    run_names = {f.name for f in fields(RunOptions)} - {"read", "write"}
    for key, value in kwargs.items():
        if key in write_names:
            groups["write"][key] = value
        elif key in read_names:
            groups["read"][key] = value
        elif key in run_names:
            groups["run"][key] = value
        else:
            raise TypeError(f"unknown option {key!r}")
    return replace(
        options,
        read=replace(options.read, **groups["read"]),
        write=replace(options.write, **groups["write"]),
        **groups["run"],
    )


def _at_least(options: object, **minimums: int) -> None:
    """Raise :class:`UsageError` naming the first field of ``options`` below its minimum.

    ``None`` means unset, and is allowed.
    """
    for name, minimum in minimums.items():
        value = getattr(options, name)
        if value is not None and value < minimum:
            raise UsageError(f"{name} must be at least {minimum}, not {value}")
