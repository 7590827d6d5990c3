"""Arrow type names as users write them, and schemas given as JSON.

Type names: ``int64``, ``timestamp[ms, tz=UTC]``, ``decimal128(10, 2)`` and the like.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa

__all__ = ["parse_schema", "parse_type"]

_SIMPLE: dict[str, pa.DataType] = {
    "null": pa.null(), "bool": pa.bool_(), "boolean": pa.bool_(),
    "int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
    "uint8": pa.uint8(), "uint16": pa.uint16(), "uint32": pa.uint32(), "uint64": pa.uint64(),
    "float32": pa.float32(), "float": pa.float32(), "float64": pa.float64(),
    "double": pa.float64(), "string": pa.string(), "utf8": pa.string(),
    "large_string": pa.large_string(), "binary": pa.binary(), "date32": pa.date32(),
    "date32[day]": pa.date32(), "date64": pa.date64(),
}
_TIMESTAMP = re.compile(r"^timestamp\[\s*(s|ms|us|ns)\s*(?:,\s*tz\s*=\s*([^\]]+?)\s*)?\]$")
_DECIMAL = re.compile(r"^decimal(128|256)?\(\s*(\d+)\s*,\s*(-?\d+)\s*\)$")
_DICTIONARY = re.compile(r"^dictionary(?:<\s*values\s*=\s*(\w+).*>)?$")


def parse_type(name: str) -> pa.DataType:
    """The Arrow type for ``name``; raises ``ValueError`` naming the accepted forms."""
    text = name.strip().lower() if not name.strip().startswith("timestamp") else name.strip()
    if text in _SIMPLE:
        return _SIMPLE[text]
    if m := _TIMESTAMP.match(text):
        return pa.timestamp(m.group(1), tz=m.group(2))
    if m := _DECIMAL.match(text):
        bits, precision, scale = m.group(1) or "128", int(m.group(2)), int(m.group(3))
        return (pa.decimal128 if bits == "128" else pa.decimal256)(precision, scale)
    if m := _DICTIONARY.match(text):
        return pa.dictionary(pa.int32(), _SIMPLE.get(m.group(1) or "string", pa.string()))
    raise ValueError(
        f"unknown type {name!r}: use one of {', '.join(sorted(_SIMPLE))}, "
        "timestamp[unit, tz=Zone], decimal128(p, s) or dictionary"
    )


def parse_schema(spec: str | dict[str, Any] | list[Any]) -> pa.Schema:
    """A schema from JSON text or data.

    Either ``{"col": "int64", ...}`` or ``[{"name": "col", "type": "int64", "nullable": true}]``.
    """
    try:
        data = json.loads(spec) if isinstance(spec, str) else spec
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc}): a schema is a JSON object {{name: type}} or a "
                         "list of {name, type}") from None
    if isinstance(data, dict) and "fields" in data:
        data = data["fields"]
    if isinstance(data, dict):
        return pa.schema([pa.field(str(k), parse_type(str(v))) for k, v in data.items()])
    if isinstance(data, list):
        out = []
        for item in data:
            if not isinstance(item, dict) or "name" not in item or "type" not in item:
                raise ValueError(f"each field needs a name and a type, got {item!r}")
            out.append(pa.field(item["name"], parse_type(item["type"]),
                                nullable=bool(item.get("nullable", True))))
        return pa.schema(out)
    raise ValueError("a schema is a JSON object {name: type} or a list of {name, type}")
