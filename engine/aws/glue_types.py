"""Arrow types as Glue Data Catalog (Hive) column types, and Hive type names back to Arrow.

The catalog describes Parquet files written by the engine, so a column's Glue type is the one
Athena, Spark and Hive read that column's Parquet type as:

=====================================================  =========================================
Arrow                                                  Glue (Hive)
=====================================================  =========================================
``bool``                                               ``boolean``
``int8``/``int16``/``int32``/``int64``                 ``tinyint``/``smallint``/``int``/``bigint``
``uint8``/``uint16``/``uint32``                        ``smallint``/``int``/``bigint``
``float32``/``float64``                                ``float``/``double``
``decimal128(p, s)`` (p ≤ 38)                          ``decimal(p,s)``
``string`` (and large, view, dictionary-encoded)       ``string``
``binary`` (and large, fixed-size)                     ``binary``
``date32``/``date64``                                  ``date``
``timestamp[any unit]``, with or without a time zone   ``timestamp``
``time32``/``time64``                                  ``bigint`` (the Parquet TIME value, which
                                                       Hive reads as an integer; Hive has no time)
``list<T>`` (and large, fixed-size)                    ``array<T>``
``struct<a: T, ...>``                                  ``struct<a:T,...>``
``map<K, V>``                                          ``map<K,V>``
=====================================================  =========================================

Anything else (``uint64``, ``float16``, decimals wider than 38 digits, durations, unions) has no
type Athena reads from Parquet: :func:`glue_type` refuses it with a
:class:`~engine.errors.SchemaError` naming the column, rather than cataloguing a column no query
can read.

Example:
    >>> glue_type(pa.struct([("id", pa.int64()), ("tags", pa.list_(pa.string()))]))
    'struct<id:bigint,tags:array<string>>'
    >>> arrow_type("map<string,array<decimal(12,2)>>")
    MapType(map<string, list<item: decimal128(12, 2)>>)
"""

from __future__ import annotations

import re

import pyarrow as pa

from engine.errors import SchemaError

__all__ = ["arrow_type", "column_comment", "glue_type", "partition_key_type", "plain_type"]

_INTEGERS = {8: "tinyint", 16: "smallint", 32: "int", 64: "bigint"}
#: Hive's widest decimal.
MAX_DECIMAL_PRECISION = 38


def plain_type(kind: pa.DataType) -> pa.DataType:
    """``kind`` with its encodings undone, inside nested types too.

    Dictionaries become their values, large and view strings and binaries plain ones: the type
    a reader is given to read the column.
    """
    if pa.types.is_dictionary(kind):
        return plain_type(kind.value_type)
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        return pa.binary()
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)
            or pa.types.is_fixed_size_list(kind) or pa.types.is_list_view(kind)
            or pa.types.is_large_list_view(kind)):
        return pa.list_(plain_type(kind.value_type))
    if pa.types.is_map(kind):
        return pa.map_(plain_type(kind.key_type), plain_type(kind.item_type))
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(plain_type(f.type)) for f in kind])
    return kind


def glue_type(kind: pa.DataType, column: str = "") -> str:
    """The Glue (Hive) type name of a column of Arrow type ``kind`` (see the module's table).

    Raises:
        SchemaError: no Glue type reads this Parquet type (naming ``column``).
    """
    kind = plain_type(kind)
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_signed_integer(kind):
        return _INTEGERS[kind.bit_width]
    if pa.types.is_unsigned_integer(kind) and kind.bit_width < 64:
        return _INTEGERS[kind.bit_width * 2]
    if pa.types.is_float32(kind):
        return "float"
    if pa.types.is_float64(kind):
        return "double"
    if pa.types.is_decimal(kind) and kind.precision <= MAX_DECIMAL_PRECISION:
        return f"decimal({kind.precision},{kind.scale})"
    if pa.types.is_string(kind) or pa.types.is_null(kind):
        return "string"
    if pa.types.is_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return "binary"
    if pa.types.is_date(kind):
        return "date"
    if pa.types.is_timestamp(kind):
        return "timestamp"
    if pa.types.is_time(kind):
        return "bigint"
    if pa.types.is_list(kind):
        return f"array<{glue_type(kind.value_type, column)}>"
    if pa.types.is_map(kind):
        return f"map<{glue_type(kind.key_type, column)},{glue_type(kind.item_type, column)}>"
    if pa.types.is_struct(kind):
        return "struct<" + ",".join(f"{f.name}:{glue_type(f.type, column)}" for f in kind) + ">"
    hint = ("declare int64 or decimal128(20, 0) in the contract" if pa.types.is_uint64(kind)
            else "declare another type in the contract")
    raise SchemaError(f"column {column!r}: {kind} has no Glue Data Catalog type that Athena reads "
                      f"from Parquet; {hint}")


def column_comment(kind: pa.DataType) -> str | None:
    """What a column's Glue type does not say: the unit of a time of day stored as ``bigint``."""
    kind = plain_type(kind)
    if pa.types.is_time(kind):
        return f"time of day: {kind.unit} since midnight (Parquet TIME)"
    return None


def partition_key_type(kind: pa.DataType) -> str:
    """The Glue type of a partition key: the folder's text read back as this type.

    Integers, booleans, dates, decimals and strings keep their type; timestamps, times and
    floats are ``string``: their folder text (``2025-03-01T09:00:00Z``, ``1e+20``) is not the
    form Hive parses for them.
    """
    kind = plain_type(kind)
    if (pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_date(kind)
            or pa.types.is_decimal(kind)):
        return glue_type(kind)
    return "string"


# ---------------------------------------------------------------------------------------------
# Hive type names → Arrow (for tables and columns chunkwise did not write)

_SIMPLE: dict[str, pa.DataType] = {
    "boolean": pa.bool_(), "tinyint": pa.int8(), "smallint": pa.int16(), "int": pa.int32(),
    "integer": pa.int32(), "bigint": pa.int64(), "float": pa.float32(), "double": pa.float64(),
    "string": pa.string(), "binary": pa.binary(), "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
}
_TOKENS = re.compile(r"\s*(?:(`[^`]*`|[A-Za-z_][A-Za-z0-9_]*|\d+)|(.))")


def arrow_type(hive: str) -> pa.DataType:
    """The Arrow type a column of Hive type ``hive`` is read with.

    ``varchar(n)`` and ``char(n)`` are strings, ``decimal`` alone is ``decimal(10,0)`` (Hive's
    default), ``timestamp`` is microseconds.

    Raises:
        SchemaError: a type name this parser does not know (``uniontype``, a typo).
    """
    tokens = [m.group(1) or m.group(2) for m in _TOKENS.finditer(hive) if m.group(0).strip()]
    parsed, rest = _parse(tokens, hive)
    if rest:
        raise SchemaError(f"cannot read the Glue type {hive!r}: unexpected {''.join(rest)!r}")
    return parsed


def _parse(tokens: list[str], text: str) -> tuple[pa.DataType, list[str]]:
    def expect(token: str, rest: list[str]) -> list[str]:
        if not rest or rest[0] != token:
            raise SchemaError(f"cannot read the Glue type {text!r}: expected {token!r}")
        return rest[1:]

    if not tokens:
        raise SchemaError(f"cannot read the Glue type {text!r}: it ends too soon")
    name, rest = tokens[0].lower(), tokens[1:]
    if name in _SIMPLE:
        return _SIMPLE[name], rest
    if name in ("varchar", "char"):
        if rest[:1] == ["("]:
            rest = expect(")", rest[2:])
        return pa.string(), rest
    if name == "decimal":
        if rest[:1] != ["("]:
            return pa.decimal128(10, 0), rest
        precision, rest = int(rest[1]), expect(",", rest[2:])
        scale, rest = int(rest[0]), expect(")", rest[1:])
        return pa.decimal128(precision, scale), rest
    if name == "array":
        item, rest = _parse(expect("<", rest), text)
        return pa.list_(item), expect(">", rest)
    if name == "map":
        key, rest = _parse(expect("<", rest), text)
        value, rest = _parse(expect(",", rest), text)
        return pa.map_(key, value), expect(">", rest)
    if name == "struct":
        rest = expect("<", rest)
        fields: list[pa.Field] = []
        while rest and rest[0] != ">":
            if fields:
                rest = expect(",", rest)
            field_name, rest = rest[0].strip("`"), expect(":", rest[1:])
            kind, rest = _parse(rest, text)
            fields.append(pa.field(field_name, kind))
        return pa.struct(fields), expect(">", rest)
    raise SchemaError(f"cannot read the Glue type {text!r}: unknown type {tokens[0]!r}")
