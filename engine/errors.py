"""The exception hierarchy.

The class name is the string Step Functions matches in ``ErrorEquals``: the Python Lambda runtime
reports ``errorType`` as the exception's class name, so these names are part of the public contract
with ``stepfunctions/pipeline.asl.json`` and must not change.

::

    EngineError
    ├── PermanentError           never retried → DLQ route
    │   ├── ValidationError      rows break the contract beyond its reject threshold
    │   ├── SchemaError          header/columns/types do not match what is expected
    │   ├── InputFormatError     not CSV/JSON, corrupt compression, bad encoding, unterminated
    │   ├── InputNotFoundError   the object, file or bucket does not exist
    │   ├── ContractError        the dataset contract file itself is invalid
    │   └── UsageError           an option out of range, an output that would replace the input
    ├── TransientError           retried by the state machine (throttling, timeouts, resets)
    ├── AccountingError          a record was neither written, rejected nor filtered: a defect
    ├── DiskSpaceError           the local disk cannot hold an S3 output's spool
    └── InstallationError        a file chunkwise ships is missing: reinstall it
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccountingError",
    "ContractError",
    "DiskSpaceError",
    "EngineError",
    "InputFormatError",
    "InputNotFoundError",
    "InstallationError",
    "PermanentError",
    "SchemaError",
    "TransientError",
    "UsageError",
    "ValidationError",
    "exit_code_for",
]


class EngineError(Exception):
    """Base of every error the engine raises on purpose.

    Args:
        message: one line saying what went wrong.
        uri: the input (or output) the error is about.
        record: 1-based number of the data record, where known.
        offset: byte offset into the (decompressed) input, where known.
    """

    #: sysexits code the CLI exits with for this kind of error.
    exit_code: int = 70

    def __init__(
        self,
        message: str,
        *,
        uri: str | None = None,
        record: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.message = message
        self.uri = uri
        self.record = record
        self.offset = offset
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.uri:
            where.append(self.uri)
        if self.record is not None:
            where.append(f"record {self.record}")
        if self.offset is not None:
            where.append(f"byte {self.offset}")
        return f"{': '.join([', '.join(where), self.message]) if where else self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The error as the ``error`` member of a failed run's JSON."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "uri": self.uri,
            "record": self.record,
            "offset": self.offset,
        }


class PermanentError(EngineError):
    """Retrying cannot help: the input or its contract must change. Routed to the DLQ."""

    exit_code = 65  # EX_DATAERR


class ValidationError(PermanentError):
    """Rows break the contract beyond its reject threshold."""


class SchemaError(PermanentError):
    """Header, columns or types do not match the contract or the given schema."""


class InputFormatError(PermanentError):
    """Not CSV/JSON, corrupt compression, undecodable bytes, an unterminated record or document."""


class InputNotFoundError(PermanentError):
    """The file, object or bucket does not exist."""

    exit_code = 66  # EX_NOINPUT


class ContractError(PermanentError):
    """The dataset contract is invalid: a typo in a key, an unknown type, a bad regex.

    ``record`` is unused; the message names the contract file and line.
    """


class UsageError(PermanentError, ValueError):
    """The caller asked for something that cannot work; also a ``ValueError``.

    An option out of range (a block size of 0, an unknown encoding), a malformed S3 URI, an
    output that would replace the input.
    """

    exit_code = 2  # as the CLI's own usage errors


class TransientError(EngineError):
    """A fault that may pass: S3 throttling, timeouts, resets. Retried by the workflow."""

    exit_code = 74  # EX_IOERR


class AccountingError(EngineError):
    """Records were lost between reading and writing: a defect of the engine, never of the input.

    Raised before anything is published, so the failed run leaves no output. Exit 70
    (EX_SOFTWARE); not retried, it goes to the error handler.
    """

    exit_code = 70


class DiskSpaceError(EngineError):
    """The local disk cannot hold what a run spools (the S3 part buffers of its Parquet output).

    Checked before the conversion starts. The deployment is too small, not the data at fault (as
    with :class:`InstallationError`, it goes to the error handler, not the DLQ): raise the
    function's ephemeral storage, or lower the contract's ``output.max_open_writers``
    (docs/memory.md). Exit 73 (EX_CANTCREAT).
    """

    exit_code = 73


class InstallationError(EngineError):
    """A file chunkwise ships (a state machine definition, a handler, the layer's pins) is missing.

    The installation is incomplete; neither the data nor the code is at fault. Exit 72
    (EX_OSFILE).
    """

    exit_code = 72


def exit_code_for(exc: BaseException) -> int:
    """The sysexits code for ``exc``: 0 never, 70 (EX_SOFTWARE) for anything not ours."""
    if isinstance(exc, EngineError):
        return exc.exit_code
    return 70
