"""Scaffold a dataset contract from a sample of an input: ``chunkwise infer``.

Types come from the same sampling the conversion uses (the head plus ranged reads across the
object); nullability and observed ranges come from the head sample's rows and are written as
comments for a human to review.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from engine import io
from engine.config import build_options
from engine.readers.sampling import ResolvedInput, resolve_input

__all__ = ["infer_contract"]

#: Distinct values up to which a string column's values are listed as an ``in:`` suggestion.
SUGGEST_IN_MAX = 12


def infer_contract(src: str | os.PathLike[str], *, dataset: str | None = None,
                   **kwargs: Any) -> str:
    """A contract (YAML text with comments) describing ``src``; keyword options as ``transform``.

    The result loads with :func:`engine.contract.load_contract`.
    """
    src = os.fspath(src)
    opts = build_options(None, **kwargs)
    source = resolve_input(src, opts.read)
    reader = source.reader()
    schema = source.schema(reader)
    rows = _head_rows(source, schema)
    name = dataset or _dataset_name(src)
    lines = [
        f"# Contract inferred by `chunkwise infer` from {src}",
        f"# on {dt.date.today().isoformat()}, from {rows.num_rows:,} rows at the head of the "
        "input.",
        "# Types come from samples across the object; review every type and check before use.",
        f"dataset: {name}",
        f"match: {json.dumps(_match(src))}",
        f"format: {reader.format}",
    ]
    options = _options(reader.format, opts.read)
    if options:
        lines.append("options:")
        lines += [f"  {k}: {json.dumps(v)}" for k, v in options.items()]
    lines.append("columns:")
    for field in schema:
        lines += _column(field, rows.column(field.name) if field.name in rows.column_names
                         else None, rows.num_rows)
    lines += [
        "extra_columns: keep       # keep | drop | reject columns the contract does not name",
        "rejects:",
        "  max_ratio: 0.01         # more than 1 % rejected records fails the file",
        "output:",
        "  compression: zstd",
        "",
    ]
    return "\n".join(lines)


def _head_rows(source: ResolvedInput, schema: pa.Schema) -> pa.Table:
    """The rows of the first ``sample_bytes`` of the input, read by the real reader."""
    head = replace(source, read=replace(source.read, block_size=source.read.sample_bytes))
    with head.chunks(head.reader(), schema, threads=1, widen="continue") as (_, chunks):
        first = next(iter(chunks), None)
    return first.table if first is not None else schema.empty_table()


def _dataset_name(src: str) -> str:
    stem = "".join(c if c.isalnum() or c in "_.-" else "_" for c in io.input_stem(src))
    return stem.strip("_.-") or "dataset"


def _match(src: str) -> str:
    key = src.split("://", 1)[1].split("/", 1)[1] if "://" in src else src.lstrip("./")
    folder, _, name = key.rpartition("/")
    suffix = name[name.find("."):] if "." in name else ""
    return f"{folder}/*{suffix}" if folder else f"*{suffix}"


def _options(fmt: str, read: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if fmt == "csv":
        out["delimiter"] = read.delimiter
        if not read.header:
            out["header"] = False
    if fmt == "json" and read.json_path:
        out["json_path"] = read.json_path
    if read.encoding.lower().replace("-", "") != "utf8":
        out["encoding"] = read.encoding
    return out


def _column(field: pa.Field, values: pa.ChunkedArray | None, rows: int) -> list[str]:
    key = json.dumps(field.name) if not field.name.isidentifier() else field.name
    typ = field.type
    out = [f"  {key}:", f"    type: {json.dumps(_type_name(typ))}"]
    if values is None or not rows:
        return out + ["    # no rows sampled"]
    nulls = values.null_count
    out.append(f"    nullable: {'true' if nulls else 'false'}"
               f"        # {nulls:,} nulls in {rows:,} sampled rows")
    if pa.types.is_nested(typ):
        return out
    try:
        distinct = pc.count_distinct(values).as_py()
    except pa.ArrowNotImplementedError:
        return out
    observed = [f"{distinct:,} distinct"]
    if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_temporal(typ):
        bounds = pc.min_max(values).as_py()
        observed.insert(0, f"min {_show(bounds['min'])}, max {_show(bounds['max'])}")
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        lengths = pc.min_max(pc.utf8_length(values)).as_py()
        observed.insert(0, f"length {lengths['min']}..{lengths['max']}")
        if 0 < distinct <= SUGGEST_IN_MAX:
            choices = sorted(v for v in pc.unique(values).to_pylist() if v is not None)
            out.append(f"    # in: {json.dumps(choices, ensure_ascii=False)}")
    if distinct == rows - nulls and rows > 1:
        observed.append("all distinct: unique?")
    out.append(f"    # observed: {'; '.join(observed)}")
    return out


def _type_name(typ: pa.DataType) -> str:
    if pa.types.is_timestamp(typ):
        return f"timestamp[{typ.unit}{', tz=' + typ.tz if typ.tz else ''}]"
    if pa.types.is_floating(typ) and typ.bit_width == 64:
        return "float64"
    if pa.types.is_date32(typ):
        return "date32"
    return str(typ)


def _show(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return repr(value)
