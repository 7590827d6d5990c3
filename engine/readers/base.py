"""What every reader shares: the Protocol, the chunk it yields, rejects, samples and widenings.

A reader turns a stream of decompressed bytes into :class:`Chunk` objects, each holding the rows of
a run of complete records, parsed by pyarrow's C++ parsers with a fixed schema. Readers cut the
stream into record-aligned pieces themselves (:func:`engine.readers.streams.aligned_pieces`), so
nothing reads ahead of the chunk being parsed: that is what keeps memory independent of the
input's size (pyarrow's own streaming readers hold ~32 blocks in flight; see docs/memory.md).
Schema widening is :mod:`engine.readers.schema`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, ClassVar, Protocol

import numpy as np
import pyarrow as pa

from engine.config import MAX_REJECT_RAW_CHARS, ReadOptions

__all__ = ["Chunk", "Reader", "Reject", "Sample", "SchemaWidening", "Widening"]

UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Reject:
    """One input record that was not written, and why.

    Attributes:
        record: 1-based number of the record among the input's data records (a CSV header is
            not counted).
        offset: byte offset of the record's start in the decompressed UTF-8 text (for a Map
            part, in the whole object).
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

    Attributes:
        table: the rows parsed.
        first_record: the number of the chunk's first record.
        records: how many records the chunk holds, rejected ones included.
        offset: byte offset of the chunk's first record in the decompressed text.
        rejects: the records the reader itself rejected.
        starts: computes, on demand, where each of the ``records`` records starts, relative to
            ``offset``, for the rejects of a contract's checks. Rejects are rare: a reader
            keeps what this needs (a copy of the chunk's text, whose buffer it reuses) and the
            positions are only found for a chunk with rejects. ``None`` without a contract
            (``strict`` empty: nothing rejects a record after the reader, which knows its own
            rejects' offsets); a contract none of whose columns the input holds gets ``None``
            too, and its rejects (a missing non-nullable column) the chunk's offset.
        kept: the bytes of text ``starts`` keeps (0 without ``starts``).
    """

    table: pa.Table
    first_record: int
    records: int
    offset: int
    rejects: list[Reject] = field(default_factory=list)
    starts: Callable[[], np.ndarray] | None = field(default=None, repr=False)
    kept: int = 0

    @property
    def nbytes(self) -> int:
        """The memory the chunk holds: its table's Arrow buffers and the text it keeps."""
        return self.table.nbytes + self.kept

    def row_records(self) -> np.ndarray:
        """The record number of each row of ``table`` (records the reader rejected are gaps)."""
        numbers = np.arange(self.first_record, self.first_record + self.records, dtype=np.int64)
        if self.rejects:
            numbers = np.setdiff1d(numbers, [r.record for r in self.rejects],
                                   assume_unique=True)
        return numbers

    def record_offsets(self) -> np.ndarray | None:
        """The byte offset of each of the chunk's records, or ``None`` when the reader gave none.

        ``None`` too when the positions found do not match the records counted (a defect that
        must not cost the run: the rejects then carry the chunk's offset).
        """
        if self.starts is None:
            return None
        starts = self.starts()
        if starts.size != self.records:
            return None
        return starts + self.offset


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
