"""Readers, one module per format behind :class:`engine.readers.base.Reader`.

``READERS`` maps a format name to its reader class; :func:`detect_format` picks one for an input.
A reader's module is imported when its format is first looked up, so a Lambda converting CSV
never imports the JSON array reader and ijson (``benchmarks/cold_start.py``).
"""

from __future__ import annotations

import importlib
import posixpath
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from engine import io as _io
from engine.config import FORMATS
from engine.errors import InputFormatError
from engine.readers.base import Chunk, Reader, Reject, Sample, SchemaWidening, Widening

if TYPE_CHECKING:
    from engine.readers.csv import CsvReader
    from engine.readers.json_array import JsonArrayReader
    from engine.readers.ndjson import NdjsonReader

__all__ = [
    "READERS",
    "Chunk",
    "CsvReader",
    "JsonArrayReader",
    "NdjsonReader",
    "Reader",
    "Reject",
    "Sample",
    "SchemaWidening",
    "Widening",
    "detect_format",
]

#: format → (module, class) of its reader.
_READER_CLASSES = {
    "csv": ("engine.readers.csv", "CsvReader"),
    "ndjson": ("engine.readers.ndjson", "NdjsonReader"),
    "json": ("engine.readers.json_array", "JsonArrayReader"),
}


class _Readers(Mapping[str, "type[Reader]"]):
    """The registry: a format's reader module is imported on its first lookup."""

    def __getitem__(self, fmt: str) -> type[Reader]:
        module, name = _READER_CLASSES[fmt]
        reader: type[Reader] = getattr(importlib.import_module(module), name)
        return reader

    def __iter__(self) -> Iterator[str]:
        return iter(_READER_CLASSES)

    def __len__(self) -> int:
        return len(_READER_CLASSES)

    def __repr__(self) -> str:
        return f"READERS({', '.join(_READER_CLASSES)})"


READERS: Mapping[str, type[Reader]] = _Readers()


def __getattr__(name: str) -> Any:
    for fmt, (_module, cls) in _READER_CLASSES.items():
        if cls == name:
            return READERS[fmt]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_SUFFIXES = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".ndjson": "ndjson", ".jsonl": "ndjson", ".ldjson": "ndjson",
}


def detect_format(uri: str, head: bytes, *, json_path: str | None = None) -> str:
    """The format of an input: from its suffix (compression suffix removed), else its content.

    ``.json`` is a JSON document holding an array, unless its content is one object per line.
    """
    suffix = posixpath.splitext(_io.strip_compression_suffix(uri).lower())[1]
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if b"\x00" in head[:65536]:
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


assert set(READERS) == set(FORMATS)
