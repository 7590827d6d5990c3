"""CSV through pyarrow's CSV parser, in record-aligned chunks with a fixed schema.

Each chunk is cut at the last line break outside quotes: with RFC 4180 quoting (quotes doubled
inside quoted fields), a line break is a record boundary exactly when the number of quote
characters before it, counted from a record boundary, is even. ``bytes.count``/``rfind`` find it
at memory speed without a Python loop over the bytes.

Line breaks are LF or CRLF, or CR alone (classic Mac OS, Excel for Mac's "CSV (Macintosh)"):
the first record's line break decides, and chunks are then cut at CRs. pyarrow's parser itself
ends records at any of the three.

Inference keeps leading zeros: a column whose sampled values include a number written with a
zero before another digit (``08123``) is a string column, not a number that drops the zeros
(:data:`engine.readers.schema.LEADING_ZERO`); ``inferences`` says so, for the RunReport.
"""

from __future__ import annotations

import csv as pycsv
import math
import re
import threading
from collections.abc import Iterator
from functools import lru_cache, partial
from typing import BinaryIO, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from engine.config import MAX_COLUMNS, ReadOptions
from engine.errors import InputFormatError, SchemaError
from engine.readers.base import Chunk, Reject, Sample, SchemaWidening, Widening
from engine.readers.schema import (
    Inference,
    leading_zero_values,
    nonfinite_rows,
    unify_schemas,
    widenings,
)
from engine.readers.streams import aligned_pieces, first_invalid_utf8

__all__ = ["CsvReader", "count_byte", "may_hold_leading_zeros", "quote_aware_cut",
           "record_starts"]


#: Bytes per pass of :func:`count_byte`: small enough for its mask to stay in the L2 cache.
_COUNT_SLICE = 1 << 18
_count_scratch = threading.local()


def count_byte(buf: bytes | bytearray | memoryview, byte: bytes, start: int = 0,
               end: int | None = None) -> int:
    """How many times the single byte ``byte`` occurs in ``buf[start:end]``.

    ``bytes.count`` of one byte runs at ~3 GB/s; a numpy compare and count over cache-sized
    slices runs at ~20 GB/s, which saves ~0.14 CPU s per 500 MB of CSV (the quote parity of every
    piece). Short ranges keep ``bytes.count``, which has no per-call overhead.
    """
    end = len(buf) if end is None else end
    if end - start < _COUNT_SLICE:
        if isinstance(buf, memoryview):
            return bytes(buf[start:end]).count(byte)
        return buf.count(byte, start, end)
    a = np.frombuffer(buf, np.uint8, end - start, start)
    mask = getattr(_count_scratch, "mask", None)
    if mask is None:
        mask = _count_scratch.mask = np.empty(_COUNT_SLICE, np.bool_)
    value, total = byte[0], 0
    for i in range(0, a.size, _COUNT_SLICE):
        part = a[i:i + _COUNT_SLICE]
        total += int(np.count_nonzero(np.equal(part, value, out=mask[:part.size])))
    return total


#: Bytes per pass of :func:`may_hold_leading_zeros`: small enough for its masks to stay in L2.
_ZEROS_SLICE = 1 << 18
_zeros_scratch = threading.local()
#: What may come before a number in a field: whitespace (RE2's ``\s``, and VT).
_FIELD_SPACE = b" \t\x0b\x0c"


@lru_cache(maxsize=8)
def _first_zeros(delimiter: str, quote: bytes) -> re.Pattern[bytes]:
    starts = re.escape(delimiter.encode() + quote)
    return re.compile(rb"(?:^|[\r\n" + starts + rb"])[ \t\x0b\x0c]*[+-]?0[0-9"
                      + re.escape(quote) + rb"]")


def may_hold_leading_zeros(data: bytes | memoryview, delimiter: str, quote: bytes) -> bool:
    r"""Whether a field of ``data`` may hold a number with leading zeros.

    ``False`` means that no field's text can match
    :data:`~engine.readers.schema.LEADING_ZERO`: nowhere in ``data`` is a ``0`` followed by a
    digit (or a quote: ``"0"5`` reads as ``05``) preceded by nothing but whitespace and a sign
    since the start of a field (the start of ``data``, a delimiter, a line break or a quote).
    ``True`` may be a false alarm (such bytes inside a quoted field): the caller then looks at
    the values as text. Vectorised over cache-sized slices: ~0.6 ms per MB, where parsing the
    numeric columns again as text and matching them costs ~4.

    >>> may_hold_leading_zeros(b"id,zip\n1,08123\n", ",", b'"')
    True
    >>> may_hold_leading_zeros(b"id,t,n\n1,2025-01-01 09:30,-0.5\n", ",", b'"')
    False
    """
    a = np.frombuffer(data, np.uint8)
    if _first_zeros(delimiter, quote).search(bytes(a[:64])):
        return True  # what the slices below do not look behind: the first bytes
    masks = getattr(_zeros_scratch, "masks", None)
    if masks is None:
        masks = _zeros_scratch.masks = [np.empty(_ZEROS_SLICE + 2, np.bool_) for _ in range(4)]
    field_start = np.frombuffer(b"\r\n" + delimiter.encode() + quote, np.uint8)
    before_number = np.concatenate((field_start, np.frombuffer(_FIELD_SPACE, np.uint8)))
    others = sorted({b for b in before_number.tolist() if not 9 <= b <= 13})
    for lo in range(2, a.size - 1, _ZEROS_SLICE):
        hi = min(a.size - 1, lo + _ZEROS_SLICE)  # zeros at [lo, hi), each with a byte after
        m = hi - lo
        zero, digit, lead, sign = (mask[:m + 2] for mask in masks)
        np.equal(a[lo:hi], 48, out=zero[:m])
        np.subtract(a[lo + 1:hi + 1], 48, out=digit[:m].view(np.uint8))
        np.less(digit[:m].view(np.uint8), 10, out=digit[:m])
        if quote:  # "0"5 reads as 05
            digit[:m] |= np.equal(a[lo + 1:hi + 1], quote[0], out=lead[:m])
        zero[:m] &= digit[:m]
        if not zero[:m].any():
            continue
        window = a[lo - 2:hi]  # lead[k]: a[lo - 2 + k] is a field's start or whitespace
        np.subtract(window, 9, out=lead.view(np.uint8))  # TAB, LF, VT, FF, CR: 9 to 13
        np.less(lead.view(np.uint8), 5, out=lead)
        for byte in others:
            lead |= np.equal(window, byte, out=digit)
        np.equal(a[lo - 1:hi - 1], 43, out=sign[:m])
        sign[:m] |= np.equal(a[lo - 1:hi - 1], 45, out=digit[:m])
        sign[:m] &= lead[:m]  # a sign after a field's start or whitespace
        sign[:m] |= lead[1:m + 1]
        zero[:m] &= sign[:m]
        if not zero[:m].any():
            continue
        # Whitespace only counts after a field's start (or more whitespace): not in "09:30"
        at = np.flatnonzero(zero[:m]) + (lo - 1)  # the byte before each zero
        at -= (a[at] == 43) | (a[at] == 45)  # the byte before its sign
        if np.isin(a[at], field_start).any() or np.isin(a[at - 1], before_number).any():
            return True
    return False


def quote_aware_cut(buf: bytes | bytearray, quote: bytes = b'"', end: int | None = None,
                    newline: bytes = b"\n") -> int:
    """Index just past the last line break in ``buf[:end]`` that lies outside quotes (0 if none).

    ``buf`` must start at a record boundary. ``newline`` is the byte that ends a record: LF
    (which also ends CRLF), or CR in a file whose line breaks are CR alone.
    """
    pos = buf.rfind(newline, 0, len(buf) if end is None else end)
    if not quote or pos < 0:
        return pos + 1
    inside = count_byte(buf, quote, 0, pos) & 1
    while inside:
        prev = buf.rfind(newline, 0, pos)
        if prev < 0:
            return 0
        inside ^= buf.count(quote, prev, pos) & 1
        pos = prev
    return pos + 1


def record_starts(text: bytes, quote: bytes = b'"', newline: bytes = b"\n") -> np.ndarray:
    r"""Where each record of ``text`` starts: after each line break outside quotes.

    ``text`` starts at a record boundary. Empty lines are no records (pyarrow skips them).
    Vectorised, but ~5 ms per 4 MiB: readers call it only for a chunk with rejects.

    >>> record_starts(b'a,b\n"x\ny",2\n\n3,4').tolist()
    [0, 4, 13]
    >>> record_starts(b'a\r\n\r\nb\r\n').tolist()
    [0, 5]
    """
    a = np.frombuffer(text, np.uint8)
    breaks = np.flatnonzero(a == newline[0])
    if quote:
        quotes = np.flatnonzero(a == quote[0])
        if quotes.size:
            breaks = breaks[(np.searchsorted(quotes, breaks) & 1) == 0]
    starts = np.concatenate(([0], breaks + 1))
    starts = starts[starts < a.size]
    heads = a[starts]
    return starts[(heads != 10) & (heads != 13)]


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        name = name.strip() or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 1)
        out.append(name)
    return out


class CsvReader:
    """Reads delimited text: header or not, any delimiter and quote, quoted line breaks, CRLF.

    Rows with the wrong number of fields are rejected, not fatal.
    """

    format: ClassVar[str] = "csv"

    def __init__(self, uri: str, options: ReadOptions) -> None:
        self.uri = uri
        self.options = options
        self.widened: list[Widening] = []
        #: the types inference chose against what the values parse as (leading zeros)
        self.inferences: list[Inference] = []
        self._quote = options.quote_char.encode() if options.quote_char else b""
        #: the byte that ends a record, once the start of the input has shown it
        self._newline: bytes | None = None
        #: inference's parse of the whole input (its text after the header, the table, its
        #: invalid rows), for the conversion to take instead of parsing the same bytes again
        self._whole: tuple[bytes | memoryview, pa.Table, list[pacsv.InvalidRow]] | None = None
        self._parse_options_kw = {
            "delimiter": options.delimiter,
            "quote_char": options.quote_char or False,
            "double_quote": True,
            "newlines_in_values": bool(options.quote_char),
        }

    # -- header and options ----------------------------------------------------------------

    def _cut(self, buf: bytes | bytearray, end: int | None = None) -> int:
        # The first call sees the start of the input (a header or the first record).
        newline = self._newline or self._line_break(buf, end, final=False) or b"\n"
        return quote_aware_cut(buf, self._quote, end, newline)

    def _line_break(self, buf: bytes | bytearray, end: int | None, *, final: bool
                    ) -> bytes | None:
        r"""Decide, from the start of the input, the byte that ends its records.

        ``\r`` when the first line break outside quotes is a CR not followed by LF (CR-only
        line endings); ``\n`` otherwise (LF, CRLF). ``None`` while undecided: no line break
        yet, or a CR at the very end of ``buf`` whose LF may follow (unless ``final``).
        """
        end = len(buf) if end is None else end
        pos = inside = 0
        while True:
            at = min((i for i in (buf.find(b"\n", pos, end), buf.find(b"\r", pos, end))
                      if i >= 0), default=-1)
            if at < 0:
                return None
            if self._quote:
                inside ^= buf.count(self._quote, pos, at) & 1
            if not inside:
                if buf[at] == 0x0A or buf[at + 1:at + 2] == b"\n":
                    self._newline = b"\n"
                elif at + 1 < end or final:
                    self._newline = b"\r"
                return self._newline
            pos = at + 1

    def split_header(self, head: bytes, *, complete: bool = True) -> tuple[list[str], int]:
        """Column names and the byte length of the header record (0 without a header).

        ``complete`` says whether ``head`` holds at least the whole first record (or the whole
        input); a first record cut short by the end of ``head`` is an error otherwise.

        Raises:
            InputFormatError: the first record is not UTF-8, holds NUL bytes (UTF-16 read as
                UTF-8, or binary data), or does not end within ``head``.
            SchemaError: an empty header, or more than ``MAX_COLUMNS`` columns.
        """
        if self._newline is None:
            self._line_break(head, None, final=complete)
        end = self._first_record_end(head)
        if not complete and end == len(head):
            raise InputFormatError(f"the first CSV record is longer than the {len(head)} bytes "
                                   "sampled for inference", uri=self.uri, record=1, offset=0)
        if self._quote and head.count(self._quote, 0, end) & 1:  # it ran to the end of the input
            raise InputFormatError("unterminated quoted field in the first CSV record",
                                   uri=self.uri, record=1, offset=0)
        if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise InputFormatError("the input is UTF-16 (it starts with a UTF-16 byte-order "
                                   "mark): pass --encoding utf-16", uri=self.uri, record=1,
                                   offset=0)
        if b"\x00" in head[:end]:
            raise InputFormatError(
                "NUL bytes in the first CSV record: binary data, or UTF-16 without a byte-order "
                "mark (pass --encoding utf-16-le or utf-16-be)", uri=self.uri, record=1,
                offset=head.index(b"\x00"))
        fields = self._fields(head[:end])
        if len(fields) > MAX_COLUMNS:
            raise SchemaError(f"the CSV has {len(fields)} columns, more than MAX_COLUMNS "
                              f"({MAX_COLUMNS}) that fit the memory budget", uri=self.uri,
                              record=1, offset=0)
        if not self.options.header:
            if self.options.column_names:
                return list(self.options.column_names), 0
            return [f"column_{i + 1}" for i in range(len(fields))], 0
        if not fields or fields == [""]:
            raise SchemaError("the CSV header is empty", uri=self.uri, offset=0)
        names = list(self.options.column_names) if self.options.column_names else fields
        if len(names) != len(fields):  # every record would be rejected as ragged
            raise SchemaError(f"column_names has {len(names)} names but the header has "
                              f"{len(fields)} fields", uri=self.uri, record=1, offset=0)
        return _unique_names(names), end

    def _first_record_end(self, buf: bytes) -> int:
        newline = self._newline or b"\n"
        pos = -1
        inside = 0
        while True:
            nxt = buf.find(newline, pos + 1)
            if nxt < 0:
                return len(buf)
            if self._quote:
                inside ^= buf.count(self._quote, pos + 1, nxt) & 1
            pos = nxt
            if not inside:
                return pos + 1

    def _fields(self, record: bytes) -> list[str]:
        try:
            text = record.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise InputFormatError(
                f"bytes are not valid UTF-8 ({exc.reason}); use --encoding for other encodings",
                uri=self.uri, record=1, offset=exc.start) from None
        try:
            rows = list(pycsv.reader([text], delimiter=self.options.delimiter,
                                     quotechar=self.options.quote_char or None,
                                     quoting=pycsv.QUOTE_MINIMAL if self.options.quote_char
                                     else pycsv.QUOTE_NONE, strict=False)) if text else []
        except pycsv.Error as exc:  # e.g. a bare CR inside an LF file's header: binary data
            raise InputFormatError(f"the first CSV record cannot be parsed: {exc}",
                                   uri=self.uri, record=1, offset=0) from None
        return rows[0] if rows else []

    def _convert_options(self, types: pa.Schema | None,
                         utf8_checked: bool = False) -> pacsv.ConvertOptions:
        # With types, the piece was validated as UTF-8 first (_parse_chunk: _require_utf8, which
        # names the record), so every field is too (delimiters and quotes are ASCII and cannot
        # fall inside a multi-byte sequence): pyarrow's own check would repeat it, at ~9 % of
        # the parse. So was the head sample before inference parses it (``utf8_checked``).
        # Inference keeps it for other samples: it reads undecodable text as binary
        # (_check_text).
        kw: dict[str, object] = {"check_utf8": types is None and not utf8_checked}
        if types is not None:
            kw["column_types"] = types
        if self.options.null_values is not None:
            kw["null_values"] = list(self.options.null_values)
            kw["strings_can_be_null"] = True
        return pacsv.ConvertOptions(**kw)

    def _parse(
        self, piece: bytes | memoryview, names: list[str], types: pa.Schema | None,
        bad: list | None,
        offset: int = 0, first: int = 0, utf8_checked: bool = False,
    ) -> pa.Table:
        def on_invalid(row: pacsv.InvalidRow) -> str:
            if bad is None:
                return "error"
            bad.append(row)
            return "skip"

        table = pacsv.read_csv(
            pa.py_buffer(piece),
            read_options=pacsv.ReadOptions(use_threads=False, column_names=names,
                                           block_size=max(len(piece) + 1, 1 << 20)),
            parse_options=pacsv.ParseOptions(**self._parse_options_kw,
                                             invalid_row_handler=on_invalid),
            convert_options=self._convert_options(types, utf8_checked),
        )
        if types is None and not utf8_checked:
            self._check_text(table, offset, first)
        return table

    def _check_text(self, table: pa.Table, offset: int, first: int) -> None:
        """Inference reads undecodable text as ``binary``: name the first bad value instead."""
        for name, column in zip(table.column_names, table.columns, strict=True):
            if not pa.types.is_binary(column.type):
                continue
            for row, value in enumerate(column.to_pylist()):  # error path only
                try:
                    if value is not None:
                        value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputFormatError(
                        f"column {name!r} holds bytes that are not valid UTF-8 ({exc.reason}); "
                        "use --encoding for other encodings",
                        uri=self.uri, record=first + row if first else None,
                        offset=offset if first else None,
                    ) from None

    # -- inference -------------------------------------------------------------------------

    def infer_schema(self, samples: list[Sample]) -> pa.Schema:
        """Infer column types from the head and ranged samples; all-null columns become string.

        A column holding a number with leading zeros in any sample is a string column, and
        ``inferences`` says so.
        """
        head = next((s for s in samples if s.at_start), None)
        if head is None or not head.data:
            raise InputFormatError("the input is empty", uri=self.uri, offset=0)
        names, header_len = self.split_header(head.data, complete=head.at_end)
        schema: pa.Schema | None = None
        zeros: dict[str, str] = {}
        whole = None
        for sample in samples:
            # A mid-object sample may start inside a quoted field: its rows then misparse, and
            # the sample is dropped below when most of them are invalid.
            data: bytes | memoryview = sample.whole_records(self._cut)
            if sample.at_start:
                data = memoryview(data)[header_len:]  # not a copy
            if not data:
                continue
            bad: list = []
            try:
                if sample.at_start:
                    self._require_utf8(data, header_len, 1)
                table = self._parse(data, names, None, bad, 0 if sample.at_start else 0,
                                    1 if sample.at_start else 0, utf8_checked=sample.at_start)
            except pa.ArrowInvalid as exc:
                if sample.at_start:
                    raise InputFormatError(f"not parseable as CSV: {exc}", uri=self.uri,
                                           offset=0) from None
                continue  # a mid-object sample that started inside a quoted field
            if not sample.at_start and len(bad) > table.num_rows:
                continue
            seen = self._keep_leading_zeros(data, names, table.schema, zeros)
            schema = seen if schema is None else unify_schemas(schema, seen)
            if sample.at_start and sample.at_end:
                whole = (data, table, bad)
        if schema is None:
            schema = pa.schema([(n, pa.string()) for n in names])
        self.inferences = [
            Inference(name, "string", f"values with leading zeros (e.g. {value!r}), which a "
                      "number type would drop") for name, value in zeros.items()]
        schema = pa.schema([pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type)
                            for f in schema])
        # The sample was the whole input and its types are the schema's (no leading zeros,
        # no all-null column read as text): the conversion's parse would give this very table.
        if whole is not None and whole[1].schema.equals(schema):
            self._whole = whole
        return schema

    def _keep_leading_zeros(self, data: bytes | memoryview, names: list[str],
                            seen: pa.Schema, zeros: dict[str, str]) -> pa.Schema:
        """``seen`` (inferred from ``data``) with its numeric columns holding leading zeros as text.

        The numeric columns are parsed again as text (a number does not remember its zeros),
        unless the bytes show that no field can start with such a number
        (:func:`may_hold_leading_zeros`); those holding a
        :data:`~engine.readers.schema.LEADING_ZERO` number are added to ``zeros`` with their
        first such value.
        """
        numeric = [f.name for f in seen
                   if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
        if not numeric or not may_hold_leading_zeros(data, self.options.delimiter, self._quote):
            return seen
        text = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(use_threads=False, column_names=names,
                                           block_size=max(len(data) + 1, 1 << 20)),
            parse_options=pacsv.ParseOptions(**self._parse_options_kw,
                                             invalid_row_handler=lambda row: "skip"),
            convert_options=pacsv.ConvertOptions(
                include_columns=numeric, column_types={n: pa.string() for n in numeric}),
        )
        found = leading_zero_values(text)
        for name, value in found.items():
            zeros.setdefault(name, value)
        if not found:
            return seen
        return pa.schema([f.with_type(pa.string()) if f.name in found else f for f in seen])

    # -- reading ---------------------------------------------------------------------------

    def read(
        self, stream: BinaryIO, schema: pa.Schema, *, widen: str = "restart",
        strict: frozenset[str] = frozenset(),
    ) -> Iterator[Chunk]:
        """Parse the stream in chunks; see :class:`engine.readers.base.Reader`."""
        names: list[str] | None = None
        next_record = 1
        pieces = aligned_pieces(stream, self._cut, block_size=self.options.block_size,
                                max_record_bytes=self.options.max_record_bytes, uri=self.uri,
                                first_record=lambda: next_record)
        for offset, piece, last in pieces:
            if names is None:
                # The header from the first 64 KiB when it ends well inside them (its line
                # break decided there too): copying a whole MiB for it was ~0.5 ms per run
                head = bytes(piece[: 1 << 16])
                if len(piece) > len(head) and self._first_record_end(head) >= len(head) - 1:
                    head = bytes(piece[: 1 << 20])
                    if len(piece) > len(head) and (self._newline or b"\n") not in head:
                        head = bytes(piece)  # > 1 MiB
                names, header_len = self.split_header(head)
                self._check_header(names, schema)
                piece = piece[header_len:]
                offset += header_len
                if not piece:
                    continue
            if last and self._quote and count_byte(piece, self._quote) & 1:
                raise InputFormatError("unterminated quoted field at the end of the input",
                                       uri=self.uri, record=next_record, offset=offset)
            table, rejects, schema = self._parse_chunk(piece, names, schema, offset,
                                                       next_record, widen, strict)
            records = table.num_rows + len(rejects)
            table, rejects = self._drop_overflow(table, rejects, piece, names, schema, offset,
                                                 next_record, records)
            # For a contract's rejects (``strict``), a copy (~0.4 ms per 4 MiB): the buffer
            # behind ``piece`` is reused for the next piece, maybe before this chunk is
            # validated (worker threads). Finding the starts (~5 ms) waits for a reject. Not
            # bound to a name here, so only the chunk holds the copy.
            yield Chunk(table, next_record, records, offset, rejects,
                        partial(record_starts, bytes(piece), self._quote,
                                self._newline or b"\n") if strict else None,
                        kept=len(piece) if strict else 0)
            next_record += records

    def _check_header(self, names: list[str], schema: pa.Schema) -> None:
        if names != schema.names:
            raise SchemaError(
                f"the header {names} does not match the expected columns {schema.names}",
                uri=self.uri, offset=0,
            )

    def _require_utf8(self, piece: bytes | memoryview, offset: int, first: int) -> None:
        """Raise InputFormatError at the first byte that is not UTF-8.

        pyarrow must not see one in a ragged row: it decodes the row for the invalid-row
        handler, fails, prints an "Exception ignored" traceback and aborts the parse.
        """
        bad = first_invalid_utf8(piece)
        if bad is None:
            return
        data = bytes(piece)  # error path only
        records, pos, inside, end = 0, 0, 0, self._cut(data, bad[0])
        newline = self._newline or b"\n"
        while pos < end:  # the records before the one holding the bad byte
            nxt = data.find(newline, pos, end)
            if self._quote:
                inside ^= data.count(self._quote, pos, nxt) & 1
            records += not inside
            pos = nxt + 1
        raise InputFormatError(
            f"bytes are not valid UTF-8 ({bad[1]}); use --encoding for other encodings",
            uri=self.uri, record=first + records, offset=offset + bad[0])

    def _parse_chunk(
        self, piece: memoryview, names: list[str], schema: pa.Schema, offset: int, first: int,
        widen: str, strict: frozenset[str] = frozenset(),
    ) -> tuple[pa.Table, list[Reject], pa.Schema]:
        parsed = self._inferred_parse(piece, schema)
        if parsed is not None:  # its UTF-8 was checked before inference parsed it
            return parsed[0], self._rejects(piece, parsed[1], offset, first), schema
        self._require_utf8(piece, offset, first)
        bad: list[pacsv.InvalidRow] = []
        try:
            table = self._parse(piece, names, schema, bad)
        except pa.ArrowInvalid as exc:
            message = str(exc)
            if "invalid UTF8" in message or "UTF8" in message:
                raise InputFormatError(f"bytes are not valid UTF-8 ({message})", uri=self.uri,
                                       record=first, offset=offset) from None
            rescale = strict and "Rescaling Decimal" in message  # 1.234 in decimal(p, 2)
            if "conversion error" not in message and not rescale:
                raise InputFormatError(message, uri=self.uri, record=first,
                                       offset=offset) from None
            if strict:  # contract columns as text: the validator rejects misfits row by row
                loose = pa.schema([pa.field(f.name, pa.string()) if f.name in strict else f
                                   for f in schema])
                bad.clear()
                try:
                    table = self._parse(piece, names, loose, bad)
                    return table, self._rejects(piece, bad, offset, first), schema
                except pa.ArrowInvalid:
                    pass  # a column outside the contract does not fit either: widen it
            bad.clear()
            seen = self._parse(piece, names, None, bad, offset, first)
            wider = unify_schemas(schema, self._keep_leading_zeros(piece, names, seen.schema, {}),
                                  strict)
            row = re.search(r"Row #(\d+)", message)  # pyarrow names the row that failed
            changes = widenings(schema, wider, first + int(row.group(1)) - 1 if row else first)
            if not changes:
                raise InputFormatError(message, uri=self.uri, record=first,
                                       offset=offset) from None
            if widen == "restart":
                raise SchemaWidening(wider, changes) from None
            self.widened.extend(changes)
            schema = wider
            bad.clear()
            table = self._parse(piece, names, schema, bad)
        return table, self._rejects(piece, bad, offset, first), schema

    def _inferred_parse(self, piece: memoryview, schema: pa.Schema,
                        ) -> tuple[pa.Table, list[pacsv.InvalidRow]] | None:
        """Inference's parse of ``piece`` with ``schema``'s types, if it made one (once).

        Only when inference parsed the whole input (a small one) and typed every column as
        its values parse: the same bytes (compared), the same types, the same options.
        """
        whole, self._whole = self._whole, None
        if whole is None:
            return None
        data, table, bad = whole
        if len(data) != len(piece) or not table.schema.equals(schema):
            return None
        if not pa.py_buffer(piece).equals(pa.py_buffer(data)):  # memcmp, no copy
            return None
        return table, list(bad)

    def _drop_overflow(
        self, table: pa.Table, rejects: list[Reject], piece: memoryview, names: list[str],
        schema: pa.Schema, offset: int, first: int, records: int,
    ) -> tuple[pa.Table, list[Reject]]:
        """Reject the records whose number overflows float64 (``1e400`` parses as infinity).

        A value spelled ``inf`` or ``infinity`` (any case, any sign) is an infinity and kept.
        """
        bad = nonfinite_rows(table)
        if bad is None:
            return table, rejects
        floats = [f.name for f in table.schema if pa.types.is_floating(f.type)]
        text = self._parse(piece, names, pa.schema(
            [pa.field(f.name, pa.string()) if f.name in floats else f for f in schema]), [])
        numbers = Chunk(table, first, records, offset, rejects).row_records()
        starts = record_starts(bytes(piece), self._quote, self._newline or b"\n")
        keep = np.ones(table.num_rows, np.bool_)
        for row in np.flatnonzero(bad).tolist():
            for name in floats:
                value = text.column(name)[row].as_py()
                if value is None or not math.isinf(table.column(name)[row].as_py() or 0.0):
                    continue
                if value.strip().lstrip("+-").lower() in ("inf", "infinity"):
                    continue
                keep[row] = False
                record = int(numbers[row])
                at = int(starts[record - first]) if record - first < starts.size else 0
                rejects.append(Reject.make(record, offset + at, f"{name}: {value!r} is "
                                           "beyond the range of float64", value, column=name,
                                           check="type"))
                break
        if keep.all():
            return table, rejects
        rejects.sort(key=lambda r: r.record)
        return table.filter(pa.array(keep)), rejects

    def _rejects(self, piece: memoryview, bad: list[pacsv.InvalidRow], offset: int,
                 first: int) -> list[Reject]:
        if not bad:
            return []
        text = bytes(piece)
        starts = record_starts(text, self._quote, self._newline or b"\n")
        out = []
        for row in bad:
            index = row.number - 1 if row.number > 0 else -1
            at = (int(starts[index]) if 0 <= index < starts.size
                  else max(text.find(row.text.encode()), 0))
            out.append(Reject.make(
                first + max(index, 0), offset + at,
                f"expected {row.expected_columns} fields, found {row.actual_columns}",
                row.text, check="fields"))
        return out
