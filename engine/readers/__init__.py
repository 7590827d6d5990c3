"""Readers, one module per format behind :class:`engine.readers.base.Reader`.

``READERS`` maps a format name to its reader class; :mod:`engine.readers.sampling` resolves an
input (format, delimiter, samples) and picks its reader. A reader's module is imported when its
format is first looked up, so a Lambda converting CSV never imports the JSON array reader and
ijson (``benchmarks/cold_start.py``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from engine.config import FORMATS
from engine.readers.base import Chunk, Reader, Reject, Sample, SchemaWidening, Widening

if TYPE_CHECKING:
    from engine.readers.csv import CsvReader
    from engine.readers.json_array import JsonArrayReader
    from engine.readers.ndjson import NdjsonReader
    from engine.readers.parquet import ParquetReader

__all__ = [
    "READERS",
    "Chunk",
    "CsvReader",
    "JsonArrayReader",
    "NdjsonReader",
    "ParquetReader",
    "Reader",
    "Reject",
    "Sample",
    "SchemaWidening",
    "Widening",
]

#: format → (module, class) of its reader.
_READER_CLASSES = {
    "csv": ("engine.readers.csv", "CsvReader"),
    "ndjson": ("engine.readers.ndjson", "NdjsonReader"),
    "json": ("engine.readers.json_array", "JsonArrayReader"),
    "parquet": ("engine.readers.parquet", "ParquetReader"),
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


assert set(READERS) == set(FORMATS)
