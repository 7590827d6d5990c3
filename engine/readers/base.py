"""What every reader shares: the Protocol, the chunk it yields, and schema widening.

A reader turns a stream of decompressed bytes into :class:`Chunk` objects, each holding the rows of
a run of complete records, parsed by pyarrow's C++ parsers with a fixed schema. Readers cut the
stream into record-aligned pieces themselves (:func:`record_aligned`), so nothing reads ahead of the
chunk being parsed: that is what keeps memory independent of the input's size (pyarrow's own
streaming readers hold ~32 blocks in flight, see DESIGN.md).
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, ClassVar, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.config import MAX_COLUMNS, MAX_REJECT_RAW_CHARS, ReadOptions
from engine.errors import InputFormatError, SchemaError

__all__ = [
    "Chunk",
    "Reader",
    "Reject",
    "Sample",
    "SchemaWidening",
    "Widening",
    "aligned_pieces",
    "check_rows_have_columns",
    "check_width",
    "column_count",
    "nonfinite_rows",
    "record_aligned",
    "storable",
    "unify_schemas",
    "unify_types",
    "utf8_stream",
]

UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Reject:
    """One input record that was not written, and why.

    Attributes:
        record: 1-based number of the record among the input's data records (a CSV header is
            not counted).
        offset: byte offset of the record's start in the decompressed UTF-8 text, or of the
            chunk holding it where the exact start is not known.
        reason: why the record was rejected.
        raw: the record's text, cut to ``MAX_REJECT_RAW_CHARS``.
    """

    record: int
    offset: int | None
    reason: str
    raw: str
    column: str | None = None
    check: str | None = None

    def to_dict(self) -> dict[str, object]:
        """The reject as one line of the rejects file."""
        out: dict[str, object] = {"record": self.record, "offset": self.offset,
                                  "reason": self.reason, "raw": self.raw}
        if self.column is not None or self.check is not None:
            out["column"] = self.column
            out["check"] = self.check
        return out

    @classmethod
    def make(cls, record: int, offset: int | None, reason: str, raw: str | bytes,
             column: str | None = None, check: str | None = None) -> Reject:
        """Build a reject, decoding and cutting ``raw``."""
        if isinstance(raw, bytes | bytearray | memoryview):
            raw = bytes(raw[: MAX_REJECT_RAW_CHARS * 4]).decode("utf-8", "replace")
        return cls(record, offset, reason, raw[:MAX_REJECT_RAW_CHARS], column, check)


@dataclass
class Chunk:
    """The parsed rows of a run of complete input records.

    ``records == table.num_rows + len(rejects)`` always: every record is written or rejected.
    """

    table: pa.Table
    first_record: int
    records: int
    offset: int
    rejects: list[Reject] = field(default_factory=list)

    def row_records(self) -> np.ndarray:
        """The record number of each row of ``table`` (records the reader rejected are gaps)."""
        numbers = np.arange(self.first_record, self.first_record + self.records, dtype=np.int64)
        if self.rejects:
            numbers = np.setdiff1d(numbers, [r.record for r in self.rejects],
                                   assume_unique=True)
        return numbers


@dataclass(frozen=True)
class Sample:
    """Bytes of the input for schema inference.

    ``at_start`` is false for a ranged read from the middle of the object, whose first (partial)
    record must be skipped; ``at_end`` is true when the sample reaches the end of the input, so
    its last record is complete even without a line break.
    """

    data: bytes
    at_start: bool
    at_end: bool = False

    def whole_records(self, cut: Callable[[bytes], int]) -> bytes:
        """The sample without its leading partial record (mid-object) and trailing one."""
        data = self.data
        if not self.at_start:
            start = data.find(b"\n") + 1
            data = data[start:] if start else b""
        if not self.at_end:
            data = data[: cut(data)]
        return data


@dataclass(frozen=True)
class Widening:
    """A column whose type was widened because a later value did not fit."""

    column: str
    from_type: str
    to_type: str
    record: int

    def to_dict(self) -> dict[str, object]:
        """As reported in the RunReport."""
        return {"column": self.column, "from": self.from_type, "to": self.to_type,
                "record": self.record}


class SchemaWidening(Exception):  # noqa: N818 - control flow, never reaches a user
    """Raised in ``widen="restart"`` mode: the conversion must restart with ``schema``."""

    def __init__(self, schema: pa.Schema, changes: list[Widening]) -> None:
        super().__init__(", ".join(f"{c.column}: {c.from_type} -> {c.to_type}" for c in changes))
        self.schema = schema
        self.changes = changes


class Reader(Protocol):
    """One input format. Implementations live in ``engine/readers/<format>.py``.

    A reader is built for one input and its options; :meth:`infer_schema` proposes a schema from
    samples, :meth:`read` parses the stream with a fixed schema.
    """

    format: ClassVar[str]

    def __init__(self, uri: str, options: ReadOptions) -> None: ...

    def infer_schema(self, samples: list[Sample]) -> pa.Schema:
        """Infer one schema that fits every sample."""
        ...

    def read(
        self, stream: BinaryIO, schema: pa.Schema, *, widen: str = "restart",
        strict: frozenset[str] = frozenset(),
    ) -> Iterator[Chunk]:
        """Parse ``stream`` (decompressed bytes) into chunks of the given schema.

        A value that does not fit ``schema`` widens its column: with ``widen="restart"`` the
        reader raises :class:`SchemaWidening` so the caller can restart with one schema for the
        whole output; with ``widen="continue"`` it re-parses the chunk with the wider schema and
        later chunks carry it. ``self.widened`` lists the changes made in "continue" mode.

        Columns in ``strict`` are typed by a contract and never widen: a chunk whose values do
        not fit them comes back with those columns as text (CSV) for the validator to convert
        row by row, or the record is rejected (JSON).
        """
        ...


# ---------------------------------------------------------------------------------------------
# Type widening: null → int → float → string; bool → string; timestamp → finer unit → string.

_TS_UNITS = ("s", "ms", "us", "ns")


def unify_types(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The narrowest type both ``a`` and ``b`` values fit in (string as the last resort)."""
    if a.equals(b):
        return a
    if pa.types.is_null(a):
        return b
    if pa.types.is_null(b):
        return a
    if pa.types.is_integer(a) and pa.types.is_integer(b):
        return pa.int64()
    if (pa.types.is_integer(a) or pa.types.is_floating(a)) and (
        pa.types.is_integer(b) or pa.types.is_floating(b)
    ):
        return pa.float64()
    if pa.types.is_timestamp(a) and pa.types.is_timestamp(b) and a.tz == b.tz:
        unit = max(a.unit, b.unit, key=_TS_UNITS.index)
        return pa.timestamp(unit, a.tz)
    if pa.types.is_date(a) and pa.types.is_timestamp(b):
        return b
    if pa.types.is_timestamp(a) and pa.types.is_date(b):
        return a
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        return pa.struct(_unify_fields(list(a), list(b)))
    if pa.types.is_list(a) and pa.types.is_list(b):
        return pa.list_(unify_types(a.value_type, b.value_type))
    return pa.string()


def _unify_fields(a: list[pa.Field], b: list[pa.Field]) -> list[pa.Field]:
    by_name = {f.name: f for f in b}
    out = []
    for f in a:
        other = by_name.pop(f.name, None)
        out.append(f if other is None else pa.field(f.name, unify_types(f.type, other.type)))
    out.extend(by_name.values())
    return out


def unify_schemas(
    current: pa.Schema, seen: pa.Schema, strict: frozenset[str] = frozenset()
) -> pa.Schema:
    """``current`` widened so that values of ``seen`` fit; new columns are appended.

    Columns in ``strict`` (typed by a contract) keep their type: their misfits are rejects.
    """
    unified = storable(pa.schema(_unify_fields(list(current), list(seen))))
    if not strict:
        return unified
    return pa.schema([current.field(f.name) if f.name in strict and f.name in current.names
                      else f for f in unified])


def _storable_type(typ: pa.DataType, top: bool = True) -> pa.DataType | None:
    """``typ`` as Parquet can hold it; ``None`` when only text can (a struct without fields)."""
    if pa.types.is_null(typ):
        return typ if top else pa.string()
    if pa.types.is_struct(typ):
        if typ.num_fields == 0:
            return None
        fields = []
        for i in range(typ.num_fields):
            child = typ.field(i)
            inner = _storable_type(child.type, False)
            if inner is None:
                return None
            fields.append(child.with_type(inner))
        return pa.struct(fields)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        inner = _storable_type(typ.value_type, False)
        return None if inner is None else pa.list_(inner)
    return typ


def storable(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the types Parquet (or pyarrow's JSON reader) cannot hold replaced.

    Parquet has no struct without fields: a column holding ``{}`` anywhere (``{"a": {}}``,
    ``{"a": [{}]}``) is read as text, as a column mixing JSON types is. A null nested in a list
    or struct (``{"a": [null]}``) becomes a string: pyarrow's JSON reader builds invalid
    ``list<null>`` arrays that the Parquet writer refuses. (A top-level null column stays null
    until a value widens it.)
    """
    out = []
    changed = False
    for f in schema:
        typ = _storable_type(f.type)
        typ = pa.string() if typ is None else typ
        changed |= not typ.equals(f.type)
        out.append(f.with_type(typ))
    return pa.schema(out) if changed else schema


def check_rows_have_columns(tables: list[pa.Table], uri: str, record: int) -> None:
    """Raise SchemaError for rows without a column: no Parquet file can hold them.

    (Nor can ``pa.concat_tables``: it makes zero rows of tables without columns.)
    """
    if any(t.num_rows and not t.num_columns for t in tables):
        raise SchemaError("the records have no fields (every object is {}): a Parquet file "
                          "needs at least one column", uri=uri, record=record)


def column_count(schema: pa.Schema) -> int:
    """Leaf columns of ``schema``: each struct field counts, each list its values."""
    count = 0
    todo = [f.type for f in schema]
    while todo:
        typ = todo.pop()
        if pa.types.is_struct(typ):
            todo.extend(typ.field(i).type for i in range(typ.num_fields))
        elif pa.types.is_list(typ) or pa.types.is_large_list(typ):
            todo.append(typ.value_type)
        else:
            count += 1
    return count


def check_width(schema: pa.Schema, uri: str, record: int | None = None) -> pa.Schema:
    """``schema``, unless it has more than ``MAX_COLUMNS`` columns: then a SchemaError."""
    count = column_count(schema)
    if count > MAX_COLUMNS:
        raise SchemaError(f"the input has {count} columns, more than MAX_COLUMNS "
                          f"({MAX_COLUMNS}) that fit the memory budget", uri=uri, record=record)
    return schema


def nonfinite_rows(table: pa.Table) -> np.ndarray | None:
    """Rows holding ±infinity in a floating-point column (nested ones too), or ``None``."""
    bad: np.ndarray | None = None
    for column in table.columns:
        if not _may_hold_floats(column.type):
            continue
        offset = 0
        for chunk in column.chunks:
            rows = _inf_rows(chunk)
            if rows is not None and rows.size:
                if bad is None:
                    bad = np.zeros(table.num_rows, np.bool_)
                bad[offset + rows] = True
            offset += len(chunk)
    return bad


def _may_hold_floats(typ: pa.DataType) -> bool:
    if pa.types.is_floating(typ):
        return True
    if pa.types.is_struct(typ):
        return any(_may_hold_floats(typ.field(i).type) for i in range(typ.num_fields))
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return _may_hold_floats(typ.value_type)
    return False


def _inf_rows(array: pa.Array) -> np.ndarray | None:
    """Indices of the elements of ``array`` holding an infinity somewhere inside."""
    typ = array.type
    if pa.types.is_floating(typ):
        if not pc.any(pc.is_inf(array)).as_py():
            return None
        return np.flatnonzero(pc.fill_null(pc.is_inf(array), False).to_numpy(
            zero_copy_only=False))
    if pa.types.is_struct(typ):
        found = [r for i in range(typ.num_fields) if _may_hold_floats(typ.field(i).type)
                 and (r := _inf_rows(array.field(i))) is not None]
        return np.unique(np.concatenate(found)) if found else None
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        inner = _inf_rows(array.flatten())
        if inner is None:
            return None
        parents = pc.list_parent_indices(array).to_numpy()
        return np.unique(parents[inner])
    return None


def widenings(old: pa.Schema, new: pa.Schema, record: int) -> list[Widening]:
    """The columns whose type differs between ``old`` and ``new`` (new columns included)."""
    changes = []
    for f in new:
        idx = old.get_field_index(f.name)
        before = old.field(idx).type if idx >= 0 else None
        if before is None or not before.equals(f.type):
            changes.append(Widening(f.name, str(before) if before else "absent", str(f.type),
                                    record))
    return changes


# ---------------------------------------------------------------------------------------------
# Streams


def utf8_stream(stream: BinaryIO, encoding: str, uri: str) -> BinaryIO:
    """``stream`` as UTF-8 bytes without a BOM: transcoded while streaming when needed."""
    codec = codecs.lookup(encoding).name
    if codec == "utf-8":
        return _BomSkipping(stream)
    return _Transcoding(stream, codec, uri)


class _BomSkipping:
    """Drops a UTF-8 byte-order mark at the very start of the stream."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._first = True

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if self._first and data:
            self._first = False
            while len(data) < 3 and data == UTF8_BOM[: len(data)]:
                more = self._stream.read(3 - len(data))
                if not more:
                    break
                data += more
            if data.startswith(UTF8_BOM):
                data = data[3:] or self._stream.read(n)
        return data

    def readinto(self, view: memoryview) -> int:
        if self._first:
            data = self.read(len(view))
            view[: len(data)] = data
            return len(data)
        return self._stream.readinto(view)


class _Transcoding:
    """Decodes ``codec`` incrementally and re-encodes it as UTF-8."""

    def __init__(self, stream: BinaryIO, codec: str, uri: str) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder(codec)("strict")
        self._uri = uri
        self._codec = codec
        self._consumed = 0
        self._first = True

    def read(self, n: int = -1) -> bytes:
        while True:
            raw = self._stream.read(n)
            try:
                text = self._decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                raise InputFormatError(
                    f"bytes are not valid {self._codec}: {exc.reason}",
                    uri=self._uri, offset=self._consumed + exc.start,
                ) from None
            self._consumed += len(raw)
            if self._first and text:
                self._first = False
                text = text.removeprefix("\ufeff")
            if text or not raw:
                return text.encode("utf-8")


def record_aligned(
    stream: BinaryIO,
    cut: Callable[[bytes], int],
    *,
    block_size: int,
    max_record_bytes: int,
    uri: str,
    first_record: Callable[[], int],
) -> Iterator[tuple[int, bytes, bool]]:
    """Yield ``(offset, piece, last)``: the stream in pieces that each end at a record boundary.

    ``cut(buf)`` returns the index just past the last complete record in ``buf`` (0 if none is
    complete). The final piece (``last=True``) holds whatever follows the last boundary, which may
    be an unterminated record: the reader decides what that means. A record longer than
    ``max_record_bytes`` raises :class:`InputFormatError` rather than growing the buffer.
    """
    pending = b""
    offset = 0
    while True:
        data = stream.read(block_size)
        if not data:
            if pending:
                yield offset, pending, True
            return
        buf = pending + data if pending else data
        pos = cut(buf)
        if pos <= 0:
            if len(buf) > max_record_bytes:
                raise InputFormatError(
                    f"a record is longer than max_record_bytes ({max_record_bytes} bytes): "
                    "an unbalanced quote or a missing line break?",
                    uri=uri, record=first_record(), offset=offset,
                )
            pending = buf
            continue
        pending = buf[pos:]
        yield offset, buf[:pos] if pos < len(buf) else buf, False
        offset += pos


#: Bytes beyond a block that :func:`aligned_pieces` keeps for the partial record it carries over.
_LEFTOVER_ROOM = 1 << 20


def aligned_pieces(
    stream: BinaryIO,
    cut: Callable[[bytearray, int], int],
    *,
    block_size: int,
    max_record_bytes: int,
    uri: str,
    first_record: Callable[[], int],
) -> Iterator[tuple[int, memoryview, bool]]:
    """Yield ``(offset, piece, last)``: the stream in pieces that each end at a record boundary.

    Like :func:`record_aligned`, but reads into one reused ``bytearray`` and yields views of it,
    so no block is allocated or copied per piece (measured: 16 MiB less peak RSS at 4 MiB blocks
    than bytes concatenation). ``cut(buf, end)`` returns the index just past the last complete
    record in ``buf[:end]`` (0 if none). A piece is only valid until the next one is requested:
    pyarrow's parsers copy what they keep, and the consumer must not hold on to the view.
    """
    # Room for a partial record after the block: the buffer then grows only for records over
    # _LEFTOVER_ROOM. Each growth reallocates it, and once glibc's dynamic mmap threshold has
    # risen past its size the new copy lands on the heap, where it stays as fragmentation:
    # growing by a few bytes at a time left ~9 MiB more peak RSS after ~70 MB of input.
    buf = bytearray(block_size + _LEFTOVER_ROOM)
    filled = 0  # bytes of buf holding data
    offset = 0  # stream offset of buf[0]
    readinto = getattr(stream, "readinto", None)
    while True:
        if filled > max_record_bytes:  # what is carried over is one unfinished record
            raise InputFormatError(
                f"a record is longer than max_record_bytes ({max_record_bytes} bytes): "
                "an unbalanced quote or a missing line break?",
                uri=uri, record=first_record(), offset=offset,
            )
        if len(buf) - filled < block_size:
            try:  # in place: realloc moves the pages of a large buffer, it does not copy them
                buf.extend(bytes(filled + block_size + _LEFTOVER_ROOM - len(buf)))
            except BufferError:  # the consumer still holds a view of it: copy, view to view
                grown = bytearray(filled + block_size + _LEFTOVER_ROOM)
                grown[:filled] = memoryview(buf)[:filled]
                buf = grown
        if readinto is not None:
            n = readinto(memoryview(buf)[filled:filled + block_size]) or 0
        else:
            data = stream.read(block_size)
            n = len(data)
            buf[filled:filled + n] = data
        if not n:
            if filled:
                yield offset, memoryview(buf)[:filled], True
            return
        filled += n
        pos = cut(buf, filled)
        if pos <= 0:
            continue
        yield offset, memoryview(buf)[:pos], False
        rest = filled - pos
        buf[:rest] = buf[pos:filled]
        filled = rest
        offset += pos


def first_invalid_utf8(data: bytes | bytearray | memoryview) -> tuple[int, str] | None:
    """Index and reason of the first byte of ``data`` that is not UTF-8, or ``None``.

    Arrow's vectorised validation over the bytes as they are (no copy, no decode); only an
    invalid input is decoded in Python, to find the position.
    """
    offsets = pa.py_buffer(struct.pack("<2q", 0, len(data)))
    try:
        pa.LargeStringArray.from_buffers(1, offsets, pa.py_buffer(data)).validate(full=True)
        return None
    except pa.ArrowInvalid:
        pass
    try:
        bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start, exc.reason
    return None
