"""``chunkwise transform``, ``validate`` and ``infer``: one input file, read the same way.

Registered on the app by :mod:`engine.cli.app`. Options are grouped in ``--help`` panels
(Input, CSV, Output (Parquet), Contract, Run). Their defaults are ``None``: only what the user
sets (on the command line, or by an environment variable where one is named) is passed on, so a
contract's own format and output options are not overridden by defaults.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.common import JsonFlag, checked_options, choice, run_job, size_option
from engine.config import COMPRESSIONS, FORMATS, INPUT_COMPRESSIONS, WRITE_MODES

__all__ = ["infer", "transform", "validate"]

_INPUT, _CSV, _OUTPUT, _CONTRACT, _RUN = "Input", "CSV", "Output (Parquet)", "Contract", "Run"

Src = Annotated[str, typer.Argument(help="Input: a local path or s3://bucket/key.")]
Fmt = Annotated[str | None, typer.Option(
    "--format", click_type=choice(FORMATS), rich_help_panel=_INPUT,
    help="Input format [default: Parquet by its first bytes, else the suffix, else the text]")]
InputCompression = Annotated[str | None, typer.Option(
    click_type=choice(INPUT_COMPRESSIONS), rich_help_panel=_INPUT,
    help="Compression of the input [default: from the suffix: .gz, .bz2, .zst]")]
JsonPath = Annotated[str | None, typer.Option(
    rich_help_panel=_INPUT, help="ijson prefix of the array in a JSON document, e.g. data.item")]
BlockSize = Annotated[str | None, typer.Option(
    envvar="CHUNKWISE_BLOCK_SIZE", rich_help_panel=_INPUT,
    help="Bytes parsed per chunk [default: 4MiB; 2MiB with worker threads]")]
Encoding = Annotated[str | None, typer.Option(rich_help_panel=_INPUT,
                                              help="Input text encoding [default: utf-8]")]
Delimiter = Annotated[str | None, typer.Option(
    rich_help_panel=_CSV, help="CSV delimiter, one ASCII character; '\\t' for a tab "
                               "[default: ,]")]
QuoteChar = Annotated[str | None, typer.Option(
    rich_help_panel=_CSV, help="CSV quote character, '' for none [default: \"]")]
Header = Annotated[bool | None, typer.Option(
    "--header/--no-header", rich_help_panel=_CSV, help="CSV has a header row [default: header]")]
NullValue = Annotated[list[str] | None, typer.Option(
    rich_help_panel=_CSV, help="A string read as null (repeatable)")]
ContractOpt = Annotated[str | None, typer.Option(
    rich_help_panel=_CONTRACT, help="Dataset contract (YAML): types, checks, transforms, output")]


def _read_kwargs(fmt: str | None, input_compression: str | None, json_path: str | None,
                 block_size: str | None, delimiter: str | None, quote_char: str | None,
                 header: bool | None, encoding: str | None, null_value: list[str] | None,
                 ) -> dict[str, Any]:
    if delimiter == "\\t":  # as typed in a shell without $'\t'
        delimiter = "\t"
    kwargs: dict[str, Any] = {
        "format": fmt, "input_compression": input_compression, "json_path": json_path,
        "delimiter": delimiter, "quote_char": quote_char, "header": header, "encoding": encoding,
        "block_size": size_option(block_size) if block_size is not None else None,
        "null_values": tuple(null_value) if null_value else None,
    }
    return {k: v for k, v in kwargs.items() if v is not None}


def transform(
    src: Src,
    dst: Annotated[str, typer.Argument(help="Output Parquet: a file, or a directory ending in / "
                                            "(files named after the source; see --mode); a "
                                            "path or s3:// URI.")],
    fmt: Fmt = None,
    input_compression: InputCompression = None,
    json_path: JsonPath = None,
    block_size: BlockSize = None,
    encoding: Encoding = None,
    delimiter: Delimiter = None,
    quote_char: QuoteChar = None,
    header: Header = None,
    null_value: NullValue = None,
    compression: Annotated[str | None, typer.Option(
        click_type=choice(COMPRESSIONS), envvar="CHUNKWISE_COMPRESSION", rich_help_panel=_OUTPUT,
        help="Parquet codec [default: zstd]")] = None,
    row_group_size: Annotated[str | None, typer.Option(
        envvar="CHUNKWISE_ROW_GROUP_SIZE", rich_help_panel=_OUTPUT,
        help="Arrow bytes buffered per row group [default: 16MiB]")] = None,
    row_group_rows: Annotated[int | None, typer.Option(
        rich_help_panel=_OUTPUT, help="Most rows per row group [default: 1048576]")] = None,
    max_rows_per_file: Annotated[int | None, typer.Option(
        rich_help_panel=_OUTPUT, help="Rotate output files.")] = None,
    mode: Annotated[str | None, typer.Option(
        click_type=choice(WRITE_MODES), rich_help_panel=_OUTPUT,
        help="Into a directory holding other sources' data files: error refuses before "
             "reading, append adds beside them, replace removes them once this run's files "
             "are written. A re-run replaces the source's own files in every mode. A file "
             "output is replaced as named [default: error]")] = None,
    contract: ContractOpt = None,
    schema: Annotated[Path | None, typer.Option(
        rich_help_panel=_CONTRACT, help="Explicit Arrow schema (JSON file): no inference.")]
    = None,
    rejects: Annotated[str | None, typer.Option(
        rich_help_panel=_CONTRACT, help="Write rejected records here (NDJSON).")] = None,
    threads: Annotated[int | None, typer.Option(
        envvar="CHUNKWISE_THREADS", rich_help_panel=_RUN,
        help="1: one chunk in flight; 2: read and parse on worker threads, up to half a row "
             "group ahead of the Parquet encoder [default: 2 when two cores are usable]")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Convert a CSV, NDJSON or JSON-array file to Parquet, in bounded memory."""

    def job() -> Any:
        from engine.runtime import process

        process.configure(threads)  # before pyarrow loads (engine.run imports it)
        with process.loading():
            from engine.run import transform as run_transform

        kwargs = _read_kwargs(fmt, input_compression, json_path, block_size, delimiter,
                              quote_char, header, encoding, null_value)
        write = {"compression": compression, "row_group_rows": row_group_rows,
                 "row_group_bytes": size_option(row_group_size) if row_group_size else None,
                 "rejects_uri": rejects, "max_rows_per_file": max_rows_per_file,
                 "mode": mode}
        kwargs.update({k: v for k, v in write.items() if v is not None})
        if threads is not None:
            kwargs["threads"] = threads
        if schema is not None:
            from engine.types import parse_schema

            try:
                kwargs["schema"] = parse_schema(schema.read_text())
            except (OSError, ValueError) as exc:
                raise typer.BadParameter(f"{schema}: {exc}", param_hint="--schema") from None
        with _progress(enabled=not as_json and sys.stderr.isatty()) as progress:
            return run_transform(src, dst, progress=progress, contract=contract,
                                 **checked_options(kwargs))

    report = run_job(as_json, job)
    if as_json:
        print(report.to_json())
    else:
        _summary(report)


def validate(
    src: Src,
    contract: Annotated[str, typer.Option(rich_help_panel=_CONTRACT,
                                          help="Dataset contract (YAML).")],
    fmt: Fmt = None,
    input_compression: InputCompression = None,
    json_path: JsonPath = None,
    block_size: BlockSize = None,
    encoding: Encoding = None,
    delimiter: Delimiter = None,
    quote_char: QuoteChar = None,
    header: Header = None,
    null_value: NullValue = None,
    as_json: JsonFlag = False,
) -> None:
    """Check a file against a contract in one pass and report rejects; writes nothing.

    Exits 65 when the rejects exceed the contract's thresholds.
    """

    def job() -> Any:
        from engine.runtime import process

        with process.loading():
            from engine.run import validate as run_validate

        kwargs = _read_kwargs(fmt, input_compression, json_path, block_size, delimiter,
                              quote_char, header, encoding, null_value)
        with _progress(enabled=not as_json and sys.stderr.isatty()) as progress:
            return run_validate(src, contract=contract, progress=progress,
                                **checked_options(kwargs))

    report = run_job(as_json, job)
    if as_json:
        print(report.to_json())
    else:
        _validation_summary(report)
    if report.status != "succeeded":
        raise typer.Exit(65)


def infer(
    src: Src,
    dataset: Annotated[str | None, typer.Option(
        rich_help_panel=_CONTRACT, help="Dataset name [default: the file's stem]")] = None,
    fmt: Fmt = None,
    input_compression: InputCompression = None,
    json_path: JsonPath = None,
    encoding: Encoding = None,
    delimiter: Delimiter = None,
    quote_char: QuoteChar = None,
    header: Header = None,
    null_value: NullValue = None,
) -> None:
    """Print a contract (YAML) scaffolded from a sample of the file, for a human to edit."""

    def job() -> Any:
        from engine.infer import infer_contract

        kwargs = _read_kwargs(fmt, input_compression, json_path, None, delimiter, quote_char,
                              header, encoding, null_value)
        return infer_contract(src, dataset=dataset, **checked_options(kwargs))

    sys.stdout.write(run_job(False, job))


def _validation_summary(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    ok = report.status == "succeeded"
    console.print(
        f"[bold {'green' if ok else 'red'}]{'ok' if ok else 'failed'}[/] {report.input} against "
        f"{report.contract}: {report.rows_in:,} records, {report.rows_out:,} valid, "
        f"{report.rows_rejected:,} rejected, {report.rows_filtered:,} filtered"
    )
    if report.error:
        console.print(f"  {report.error['message']}")
    if report.checks:
        table = Table("column", "check", "rejects", "examples (record: value)")
        for row in report.checks:
            examples = ", ".join(f"{e['record']}: {e['value'][:40]!r}" for e in row["examples"])
            table.add_row(row["column"], row["check"], f"{row['count']:,}", examples)
        console.print(table)


class _progress:  # noqa: N801 - used as a context manager like a function
    """A rich progress bar of stored bytes read, on stderr, only on a TTY."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[int, int | None], None] | None:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        self._bar = Progress("[progress.description]{task.description}", BarColumn(),
                             DownloadColumn(), TransferSpeedColumn(),
                             console=Console(stderr=True), transient=True)
        self._bar.start()
        self._task = self._bar.add_task("converting", total=None)

        def update(done: int, total: int | None) -> None:
            self._bar.update(self._task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _summary(report: Any) -> None:
    """One line on stdout, then a line per widened or inferred column; "ok" green on a TTY.

    Off a terminal (a pipe, a log) the lines are printed as they are: loading rich for them
    cost ~30 ms of a run's start-up, and it would read ``[...]`` or ``:name:`` in a path as
    markup or an emoji code.
    """
    mb = report.bytes_in / 1e6
    rate = mb / report.seconds if report.seconds else 0.0
    line = (
        f"{report.input} → {report.output}: {report.format}, "
        f"{report.rows_in:,} rows in, {report.rows_out:,} written, "
        f"{report.rows_rejected:,} rejected"
        + (f", {report.rows_filtered:,} filtered" if report.rows_filtered else "")
        + f"; {mb:,.1f} MB in {report.seconds:.2f} s "
        f"({rate:,.0f} MB/s), {report.bytes_out / 1e6:,.1f} MB out, "
        f"peak RSS {report.peak_rss_bytes / 2**20:,.0f} MiB"
    )
    lines = [f"  widened {w['column']}: {w['from']} → {w['to']} (record {w['record']})"
             for w in report.widened]
    lines += [f"  inferred {d['column']}: {d['type']}, {d['reason']}" for d in report.inference]
    if not sys.stdout.isatty() and not os.environ.get("FORCE_COLOR"):
        print("\n".join(["ok " + line, *lines]))
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=False, highlight=False, emoji=False)
    console.print("[bold green]ok[/] " + escape(line), soft_wrap=True)  # one line, any width
    for text in lines:
        console.print(escape(text), soft_wrap=True)
