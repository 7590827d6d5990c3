"""Hive partition folders: ``column=value`` segments, escaped as Hive, Spark and Athena expect."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "HIVE_DEFAULT_PARTITION",
    "check_partition_type",
    "escape_partition_text",
    "partition_texts",
    "segment",
]


#: The directory value Hive, Spark, Athena and pyarrow read back as null.
HIVE_DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"

#: What Hive percent-encodes in a partition path segment (``FileUtils.charToEscape``; Spark uses
#: the same set): control characters, DEL and ``"#%'*/:=?[\]^{``. Non-ASCII text stays as UTF-8:
#: Hive and Spark decode ``%XX`` one character at a time, so an escaped multi-byte character
#: would come back as mojibake there, while pyarrow decodes both forms.
_HIVE_ESCAPED = frozenset([*map(chr, range(0x20)), "\x7f", *"\"#%'*/:=?[\\]^{"])


def escape_partition_text(text: str) -> str:
    """Percent-encode ``text`` for a Hive partition path segment (column name or value).

    ``a/b=c%`` → ``a%2Fb%3Dc%25``. See :data:`_HIVE_ESCAPED` for the set; everything else,
    including spaces and non-ASCII characters, is kept as is.
    """
    if not any(ch in _HIVE_ESCAPED for ch in text):
        return text
    return "".join(f"%{ord(ch):02X}" if ch in _HIVE_ESCAPED else ch for ch in text)


def segment(name: str, text: str | None) -> str:
    """The folder ``name=value`` of one partition column (escaped; null as Hive's default)."""
    value = HIVE_DEFAULT_PARTITION if not text else escape_partition_text(text)
    return f"{escape_partition_text(name)}={value}"


def partition_texts(values: pa.Array | pa.ChunkedArray) -> list[str | None]:
    """The text each value takes in a partition path (before escaping); ``None`` for null.

    Vectorised (one Arrow cast per call). Formats, all read back by pyarrow's Hive partitioning
    given the column's type:

    - strings as they are, except the empty string, which becomes ``None`` (Hive's rule: it is
      written as :data:`HIVE_DEFAULT_PARTITION` and reads back as null);
    - integers, decimals (``1.50``), floats (shortest round-trip: ``1``, ``2.5``, ``1e+20``,
      ``nan``), booleans (``true``/``false``) as Arrow casts them to text;
    - dates ISO 8601 (``2025-03-01``), times ``10:00:00``;
    - timestamps ISO 8601 with a ``T`` and the unit's full precision
      (``2025-03-01T10:00:00``, ``2025-03-01T10:00:00.000123``); a timestamp with a time zone is
      written in UTC with a ``Z`` (``2025-03-01T09:00:00Z`` for 10:00 in Paris), as pyarrow does.
      The ``:`` are percent-encoded in the path (``%3A``): partitioning by a derived date32
      column gives friendlier paths.

    Dictionary columns are formatted by their values.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    kind = values.type
    if pa.types.is_dictionary(kind):
        values = values.dictionary_decode()
        kind = values.type
    suffix = ""
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:  # the stored values are UTC: dropping the zone keeps them
            values = values.cast(pa.timestamp(kind.unit))
            suffix = "Z"
        text = pc.replace_substring(pc.cast(values, pa.string()), " ", "T", max_replacements=1)
    else:
        text = pc.cast(values, pa.string())
    return [f"{value}{suffix}" if value else None for value in text.to_pylist()]


def check_partition_type(name: str, kind: pa.DataType) -> None:
    """Raise ``ValueError`` unless a column of ``kind`` can name partition folders."""
    base = kind.value_type if pa.types.is_dictionary(kind) else kind
    supported = (
        pa.types.is_integer(base) or pa.types.is_floating(base) or pa.types.is_boolean(base)
        or pa.types.is_string(base) or pa.types.is_large_string(base)
        or pa.types.is_string_view(base) or pa.types.is_decimal(base) or pa.types.is_date(base)
        or pa.types.is_timestamp(base) or pa.types.is_time(base) or pa.types.is_null(base)
    )
    if not supported:
        raise ValueError(
            f"cannot partition by {name!r} of type {kind}: partition columns must be strings, "
            "numbers, booleans, decimals, dates, times or timestamps"
        )
