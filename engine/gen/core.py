"""Deterministic, fast, realistic sample data (the library behind ``chunkwise gen``).

``generate("orders", "orders.csv.gz", size=parse_size("500MB"), seed=0)`` writes rows of the
"orders" dataset as CSV, NDJSON or a JSON array until the *uncompressed* text reaches ``size``
bytes, stopping at the first row boundary at or after it. The same (dataset, size, format, seed)
always gives byte-identical output, compressed or not, and a smaller size gives a prefix of the
rows of a larger one.

Datasets live in :data:`DATASETS`: a :class:`Dataset` names a function yielding blocks of rows
(:mod:`engine.gen.text` turns them into text) and the faults ``dirty=`` may inject
(:mod:`engine.gen.faults`); each has its module in :mod:`engine.gen.datasets`.

Example:
    >>> report = generate("orders", f"{tmp}/orders.ndjson.gz", size=10_000, seed=0)
    >>> report.format, report.compression, report.bytes_written >= 10_000
    ('ndjson', 'gzip', True)

"""

from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from engine.config import COMPRESSION_SUFFIXES, FORMAT_SUFFIXES, SUFFIX_DELIMITERS, TEXT_FORMATS
from engine.gen.datasets.orders import (
    ORDERS_COLUMNS,
    ORDERS_DESCRIPTION,
    ORDERS_FAULTS,
    ORDERS_NULLS,
    ORDERS_OFFSETS_DESCRIPTION,
    orders_blocks,
)
from engine.gen.faults import DIRTY_MAX, Fault, Injector
from engine.gen.text import LAYOUTS, Block, csv_layout

__all__ = [
    "DATASETS",
    "Dataset",
    "GenReport",
    "check_arguments",
    "generate",
    "infer_format",
]

_GZIP_LEVEL_ISAL = 1
_GZIP_LEVEL_ZLIB = 1
_BZ2_LEVEL = 9
_ZSTD_LEVEL = 3

#: Name suffix → the format gen writes under it: the reader's suffixes (``engine.config``) but
#: those implying another CSV delimiter (``.tsv``): gen's CSV is comma-separated.
_FORMAT_OF_SUFFIX = {s: f for s, f in FORMAT_SUFFIXES.items()
                     if s not in SUFFIX_DELIMITERS and f in TEXT_FORMATS}


@dataclass(frozen=True)
class GenReport:
    """What :func:`generate` wrote.

    Attributes:
        path: the output path, as given.
        format: ``"csv"``, ``"ndjson"`` or ``"json"``.
        compression: ``"gzip"``, ``"bz2"``, ``"zstd"``, or None for plain text.
        rows: data rows written (the CSV header is not a row).
        bytes_written: size of the uncompressed text, header and closing bracket included.
        seconds: wall time of the whole call.
        injected: records given a fault (``dirty > 0``), each listed in ``injected_path``.
        injected_path: the list of injected records (``<path>.injected.ndjson``), or None when
            ``dirty`` is 0.

    """

    path: str
    format: str
    compression: str | None
    rows: int
    bytes_written: int
    seconds: float
    injected: int = 0
    injected_path: str | None = None


@dataclass(frozen=True)
class Dataset:
    """A registered dataset.

    Attributes:
        name: registry key.
        columns: column names in output order.
        blocks: ``blocks(seed)`` yields an endless, deterministic stream of
            :class:`engine.gen.text.Block`.
        description: one line for help texts.
        faults: the ways ``generate(..., dirty=...)`` may break a record; each must leave the
            record with exactly one violation of the dataset's contract.
        nulls: ``(column, rate)`` of the nullable columns: dirty data writes that share of
            their values as null, as real data has.
        csv_line_end: what ends a CSV record (the header's too): LF or CRLF.

    """

    name: str
    columns: tuple[str, ...]
    blocks: Callable[[int], Iterator[Block]]
    description: str = ""
    faults: tuple[Fault, ...] = ()
    nulls: tuple[tuple[str, float], ...] = ()
    csv_line_end: str = "\n"


DATASETS: dict[str, Dataset] = {
    "orders": Dataset(name="orders", columns=ORDERS_COLUMNS, blocks=orders_blocks,
                      description=ORDERS_DESCRIPTION, faults=ORDERS_FAULTS,
                      nulls=ORDERS_NULLS),
    # The same rows but for the timestamps' zones, as a spreadsheet on Windows exports them:
    # UTC offsets instead of Z, CRLF line ends, and the notes'
    # unicode and quoted line breaks (LF, inside quotes) of "orders". No faults.
    "orders_offsets": Dataset(name="orders_offsets", columns=ORDERS_COLUMNS,
                              blocks=functools.partial(orders_blocks, offsets=True),
                              description=ORDERS_OFFSETS_DESCRIPTION, csv_line_end="\r\n"),
}
"""Registered datasets by name."""


def infer_format(path: str | os.PathLike[str]) -> tuple[str | None, str | None]:
    """Infer ``(format, compression)`` from a path's suffixes.

    The compression suffix (``.gz``, ``.bz2``, ``.zst``/``.zstd``) is stripped first, then
    ``.csv``/``.txt``, ``.ndjson``/``.jsonl``/``.ldjson`` or ``.json`` names the format, as
    the reader takes them (:data:`engine.config.FORMAT_SUFFIXES`; ``.tsv`` names none: gen's
    CSV is comma-separated).

    Args:
        path: the output path.

    Returns:
        The format (None when the suffix names none) and the compression (None for plain text).

    Example:
        >>> infer_format("out/orders.JSONL.zst"), infer_format("orders.tsv")
        (('ndjson', 'zstd'), (None, None))

    """
    name = Path(os.fspath(path)).name.lower()
    stem, suffix = os.path.splitext(name)
    compression = COMPRESSION_SUFFIXES.get(suffix)
    if compression is not None:
        suffix = os.path.splitext(stem)[1]
    return _FORMAT_OF_SUFFIX.get(suffix), compression


def _gzip_file(raw: BinaryIO) -> BinaryIO:
    """Open a gzip writer without file name and with mtime 0, so the bytes are reproducible."""
    try:
        from isal import igzip
    except ImportError:  # pragma: no cover - isal is a dependency, the fallback is a safety net
        return gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL_ZLIB, mtime=0
        )
    return igzip.IGzipFile(
        filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL_ISAL, mtime=0
    )


@contextlib.contextmanager
def _open_sink(path: Path, compression: str | None) -> Iterator[BinaryIO]:
    """Open ``path`` for writing, compressing as asked."""
    with open(path, "wb") as raw:
        if compression is None:
            yield raw
        elif compression == "gzip":
            with _gzip_file(raw) as sink:
                yield sink
        elif compression == "bz2":
            with bz2.BZ2File(raw, "wb", compresslevel=_BZ2_LEVEL) as sink:
                yield sink
        elif compression == "zstd":
            import zstandard

            writer = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).stream_writer(raw, closefd=False)
            with writer as sink:
                yield sink  # type: ignore[misc]
        else:  # pragma: no cover - callers only pass values of COMPRESSION_SUFFIXES
            raise ValueError(f"unknown compression {compression!r}")


def _string_offsets(text: pa.Array) -> np.ndarray:
    """Return the ``len(text) + 1`` value offsets of a string array, as numpy int32."""
    count = len(text) + 1
    return np.frombuffer(text.buffers()[1], dtype=np.int32, count=count, offset=4 * text.offset)


def check_arguments(
    dataset: str,
    path: str | os.PathLike[str],
    *,
    size: int,
    fmt: str | None = None,
    seed: int = 0,
    dirty: float = 0.0,
) -> tuple[Dataset, str, str | None]:
    """Check :func:`generate`'s arguments before anything is written.

    Returns:
        The dataset, the format and the compression the arguments name.

    Raises:
        ValueError: see :func:`generate`.

    """
    spec = DATASETS.get(dataset)
    if spec is None:
        raise ValueError(f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}")
    inferred, compression = infer_format(path)
    if fmt is None:
        if inferred is None:
            raise ValueError(
                f"cannot infer the format of {os.fspath(path)!r} from its suffix; use "
                f"{', '.join(_FORMAT_OF_SUFFIX)} (optionally followed by "
                f"{', '.join(COMPRESSION_SUFFIXES)}) or pass fmt= one of "
                f"{', '.join(TEXT_FORMATS)}"
            )
        fmt = inferred
    fmt = fmt.lower()
    if fmt not in TEXT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known formats: {', '.join(TEXT_FORMATS)}")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be a positive number of bytes, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if (
        isinstance(dirty, bool)
        or not isinstance(dirty, int | float | np.integer | np.floating)
        or not 0 <= dirty <= DIRTY_MAX
    ):
        raise ValueError(f"dirty must be a ratio from 0 to {DIRTY_MAX}, got {dirty!r}")
    if dirty > 0 and not any(fmt in f.formats for f in spec.faults):
        raise ValueError(f"dataset {dataset!r} defines no faults for {fmt}")
    return spec, fmt, compression


def generate(
    dataset: str,
    path: str | os.PathLike[str],
    *,
    size: int,
    fmt: str | None = None,
    seed: int = 0,
    dirty: float = 0.0,
) -> GenReport:
    """Write sample rows of ``dataset`` to ``path`` until the text reaches ``size`` bytes.

    Output stops at the first row boundary at or after ``size`` bytes of *uncompressed* text
    (header and, for ``json``, the closing bracket counted), so ``size <= bytes_written <
    size + one row``. Output is byte-identical for the same (dataset, size, format, seed); gzip
    output has no file name and mtime 0 so it is identical too.

    Formats: ``csv`` (header row, LF line ends, fields quoted only when they hold a comma,
    quote or newline, quotes doubled), ``ndjson`` (one compact object per line, UTF-8 unescaped),
    ``json`` (one array; most objects compact one per line, every 7th indented over several).

    Args:
        dataset: a key of :data:`DATASETS`, e.g. ``"orders"``.
        path: output file. A ``.gz``, ``.bz2`` or ``.zst`` (``.zstd``) suffix compresses (gzip
            via isal).
        size: target uncompressed size in bytes (see :func:`parse_size`); at least 1.
        fmt: ``"csv"``, ``"ndjson"`` or ``"json"``; None infers it from the suffix before the
            compression suffix (:func:`infer_format`).
        seed: seed of the random stream.
        dirty: share of records given exactly one fault each, from 0 to :data:`DIRTY_MAX`.
            The faults come from the dataset's :attr:`Dataset.faults`; for ``orders`` each
            breaks exactly one check of ``contracts/orders.yaml`` (wrong_type, out_of_range,
            bad_timestamp, bad_enum, ragged for CSV, invalid_json for NDJSON and JSON,
            duplicate: a repeat of an earlier clean record's ``order_id``, null in a
            non-nullable column, too_long: a note over ``max_length``). Faulty records are
            drawn from their own random stream, so every other record is the one ``dirty=0``
            writes; ``dirty=0`` writes the same bytes as before faults existed. When ``dirty``
            is above 0, the faulty records are listed in ``<path>.injected.ndjson``, one JSON
            object per line in record order: ``{"record": N, "kind": ..., "column": ... or
            null, "value": ..., "offset": B}`` where ``N`` is the 1-based data record (CSV
            header not counted), ``value`` the raw value written (for ragged and invalid_json
            records the record's text) and ``B`` the byte offset of the record's text in the
            uncompressed output. Dirty data also has nulls in the dataset's nullable columns
            (:attr:`Dataset.nulls`), which are not faults. With ``dirty=0`` a stale list at that
            path is removed.

    Returns:
        A :class:`GenReport`.

    Raises:
        ValueError: unknown dataset or format, a format that cannot be inferred, size < 1, a
            negative seed, or ``dirty`` outside ``[0, DIRTY_MAX]``.

    """
    started = time.perf_counter()
    spec, fmt, compression = check_arguments(dataset, path, size=size, fmt=fmt, seed=seed,
                                             dirty=dirty)
    size = int(size)
    injector = (Injector(spec.faults, spec.columns, fmt, float(dirty), seed, spec.nulls)
                if dirty > 0 else None)
    layout = csv_layout(spec.csv_line_end) if fmt == "csv" else LAYOUTS[fmt]
    header = layout.header(spec.columns).encode()
    trailer = layout.trailer.encode()
    out = Path(os.fspath(path))
    listing = Path(os.fspath(path) + ".injected.ndjson")

    rows = 0
    injected = 0
    written = len(header)
    try:
        with contextlib.ExitStack() as stack:
            sink = stack.enter_context(_open_sink(out, compression))
            faults = None
            if injector is None:
                listing.unlink(missing_ok=True)
            else:
                faults = stack.enter_context(open(listing, "w", encoding="utf-8", newline=""))
            sink.write(header)
            blocks = spec.blocks(seed)
            while written + len(trailer) < size:
                block = next(blocks)
                text = layout.rows(block)
                if injector is not None:
                    text, faulty, lines = injector.apply(block, text)
                offsets = _string_offsets(text)
                ends = offsets[1:] - offsets[0]
                need = size - len(trailer) - written
                take = len(text)
                if int(ends[-1]) >= need:
                    take = int(np.searchsorted(ends, need, side="left")) + 1
                nbytes = int(ends[take - 1])
                start = int(offsets[0])
                sink.write(memoryview(text.buffers()[2])[start : start + nbytes])
                if faults is not None:
                    listed = int(np.searchsorted(faulty, take))
                    if listed:
                        at = written + offsets[faulty[:listed]] - offsets[0]
                        if fmt == "json":  # an element after the first is led by ",\n"
                            at = at + 2 * (block.first_row + faulty[:listed] > 0)
                        faults.write("".join(
                            f'{line[:-1]}, "offset": {offset}}}\n'
                            for line, offset in zip(lines, at.tolist(), strict=False)))
                    injected += listed
                rows += take
                written += nbytes
            sink.write(trailer)
            written += len(trailer)
    except BaseException:
        out.unlink(missing_ok=True)
        if injector is not None:
            listing.unlink(missing_ok=True)
        raise
    return GenReport(
        path=os.fspath(path),
        format=fmt,
        compression=compression,
        rows=rows,
        bytes_written=written,
        seconds=time.perf_counter() - started,
        injected=injected,
        injected_path=None if injector is None else os.fspath(listing),
    )
