"""``chunkwise inspect``: a Parquet file or dataset summarised from its footers.

Registered on the app by :mod:`engine.cli.app`; the work is :func:`engine.inspect.inspect_dataset`.
Without ``--json``: a line of totals, a table of columns (type, nulls, min, max, size), the
partitions and the files (the first :data:`SHOWN` of each).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from engine.cli.common import JsonFlag, print_json, run_job

__all__ = ["SHOWN", "inspect"]

#: Partitions and files listed in the table (``--json`` lists them all).
SHOWN = 20


def inspect(
    path: Annotated[str, typer.Argument(
        help="A Parquet file, or a folder of them (Hive partitions included): a path or "
             "s3:// URI. Files under names starting with _ or . are skipped, as query engines "
             "skip them.")],
    as_json: JsonFlag = False,
) -> None:
    """Summarise a Parquet file or dataset from its footers, without reading the data.

    Rows, columns and types, files, row groups, sizes, codecs, Hive partitions, null counts
    and min/max.
    """

    def job() -> dict[str, Any]:
        from engine.inspect import inspect_dataset

        return inspect_dataset(path)

    summary = run_job(as_json, job)
    if as_json:
        print_json({"status": "succeeded", **summary})
    else:
        _show(summary)


def _size(n: int) -> str:
    """``n`` bytes in decimal units: ``950 B``, ``1.2 MB``."""
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:,.0f} B" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    return f"{value:,.1f} GB"


def _text(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    return text if len(text) <= 32 else text[:31] + "…"


def _show(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    files, parts = summary["files"], summary["partitions"]
    codecs = ", ".join(c.lower() for c in summary["compression"]) or "no columns"
    console.print(
        f"[bold]{summary['path']}[/]: {summary['rows']:,} rows in {len(files):,} file(s)"
        + (f", {len(parts):,} partition(s)" if parts else "")
        + f", {summary['row_groups']:,} row group(s), {_size(summary['bytes'])}, {codecs}"
        + (f"; {summary['hidden_files']:,} hidden file(s) skipped"
           if summary["hidden_files"] else ""))
    if summary["schema_conflicts"]:
        console.print("[bold red]files disagree on the type of:[/] "
                      + ", ".join(summary["schema_conflicts"]))
    columns = Table("column", "type", "nulls", "min", "max", "size")
    for c in summary["columns"]:
        kind = " | ".join(c["types"]) if "types" in c else c["type"]
        if c.get("partition"):
            kind += " (partition)"
        nulls = "" if c["nulls"] is None else f"{c['nulls']:,}"
        size = _size(c["compressed_bytes"]) if "compressed_bytes" in c else ""
        columns.add_row(c["name"], kind, nulls, _text(c["min"]), _text(c["max"]), size)
    console.print(columns)
    if parts:
        table = Table("partition", "files", "rows", "size")
        for p in parts[:SHOWN]:
            table.add_row(p["path"], f"{p['files']:,}", f"{p['rows']:,}", _size(p["bytes"]))
        console.print(table)
        if len(parts) > SHOWN:
            console.print(f"… and {len(parts) - SHOWN:,} more partitions (--json lists all)")
    table = Table("file", "rows", "row groups", "size")
    for f in files[:SHOWN]:
        table.add_row(f["path"], f"{f['rows']:,}", f"{f['row_groups']:,}", _size(f["bytes"]))
    console.print(table)
    if len(files) > SHOWN:
        console.print(f"… and {len(files) - SHOWN:,} more files (--json lists all)")
