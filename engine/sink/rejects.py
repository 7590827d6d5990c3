"""The rejects file: one JSON line per rejected record, published with the data or not at all."""

from __future__ import annotations

import json
from typing import Any

from engine.errors import AccountingError
from engine.io import AtomicOutput
from engine.readers.base import Reject

__all__ = ["RejectsFile"]


class RejectsFile:
    """Rejected records as NDJSON, written through an :class:`AtomicOutput` (or only counted).

    With ``uri=None`` rejects are counted and dropped. A committed file always exists, empty
    when nothing was rejected, so that its absence never has to be read as "none". Before it is
    published, the lines written must number the rejects counted (:meth:`check`).
    """

    def __init__(self, uri: str | None) -> None:
        self.uri = uri
        self.count = 0
        self._lines = 0  # the line breaks handed to the file: what it holds, not what was counted
        self._out: AtomicOutput | None = None
        self._file: Any = None

    def write(self, rejects: list[Reject]) -> None:
        """Count ``rejects`` and append them to the file."""
        self.count += len(rejects)
        if self.uri is None or not rejects:
            return
        if self._out is None:
            self._open()
        # json.dumps escapes line breaks inside values: each record is exactly one line.
        data = "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n"
                       for r in rejects).encode()
        self._lines += data.count(b"\n")
        self._file.write(data)

    def _open(self) -> None:
        assert self.uri is not None
        self._out = AtomicOutput(self.uri)
        self._file = self._out.__enter__()

    def check(self) -> None:
        """Raise :class:`~engine.errors.AccountingError` unless the file has a line per reject.

        Without a file (``uri=None``) there is nothing to compare the count with.
        """
        if self.uri is not None and self._lines != self.count:
            raise AccountingError(f"{self.count} records were rejected, but the rejects file "
                                  f"holds {self._lines} lines", uri=self.uri)

    def commit(self) -> None:
        """Publish the file (an empty one when nothing was rejected), once :meth:`check` passes.

        A failed check aborts the file and raises.
        """
        try:
            self.check()
        except AccountingError:
            self.abort()
            raise
        if self.uri is not None and self._out is None:
            self._open()
        if self._out is not None:
            self._out.commit()

    def abort(self) -> None:
        """Drop the file unpublished, and the count with it."""
        if self._out is not None:
            self._out.abort()
        self.count = 0
