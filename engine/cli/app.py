"""The ``chunkwise`` command.

``--json`` prints one JSON object on stdout and nothing else; without it, a progress bar on a TTY
and a short summary. Logs and errors go to stderr. Exit codes follow sysexits: 0 ok, 2 usage,
65 data error, 66 input not found, 74 I/O, 70 internal error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.common import JsonFlag, checked_options, run_job, size_option

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Streaming, bounded-memory CSV/JSON → Parquet.",
)

# Options shared by transform, validate and infer. Defaults are None: only what the user sets
# is passed on, so a contract's own format and output options are not overridden by defaults.
Fmt = Annotated[str | None, typer.Option("--format", help="csv, ndjson or json [default: from "
                                         "the suffix, then the content]")]
JsonPath = Annotated[str | None, typer.Option(help="ijson prefix of the array in a JSON "
                                              "document, e.g. data.item")]
BlockSize = Annotated[str | None, typer.Option(help="Bytes parsed per chunk [default: 4MiB]")]
Delimiter = Annotated[str | None, typer.Option(help="CSV delimiter, one ASCII character; "
                                               "'\\t' for a tab [default: ,]")]
QuoteChar = Annotated[str | None, typer.Option(help="CSV quote character, '' for none "
                                               "[default: \"]")]
Header = Annotated[bool | None, typer.Option("--header/--no-header",
                                             help="CSV has a header row [default: header]")]
Encoding = Annotated[str | None, typer.Option(help="Input text encoding [default: utf-8]")]
NullValue = Annotated[list[str] | None, typer.Option(help="A string read as null "
                                                     "(repeatable)")]
ContractOpt = Annotated[str | None, typer.Option(help="Dataset contract (YAML): types, checks, "
                                                 "transforms, output")]


def _read_kwargs(fmt: str | None, json_path: str | None, block_size: str | None,
                 delimiter: str | None, quote_char: str | None, header: bool | None,
                 encoding: str | None, null_value: list[str] | None) -> dict[str, Any]:
    if fmt is not None and fmt not in ("csv", "ndjson", "json"):
        raise typer.BadParameter("use csv, ndjson or json", param_hint="--format")
    if delimiter == "\\t":  # as typed in a shell without $'\t'
        delimiter = "\t"
    kwargs: dict[str, Any] = {
        "format": fmt, "json_path": json_path, "delimiter": delimiter,
        "quote_char": quote_char, "header": header, "encoding": encoding,
        "block_size": size_option(block_size) if block_size is not None else None,
        "null_values": tuple(null_value) if null_value else None,
    }
    return {k: v for k, v in kwargs.items() if v is not None}


@app.command()
def transform(
    src: Annotated[str, typer.Argument(help="Input: a local path or s3://bucket/key.")],
    dst: Annotated[str, typer.Argument(help="Output Parquet: a path or s3:// URI (a directory "
                                            "ending in / when files rotate or partition).")],
    contract: ContractOpt = None,
    fmt: Fmt = None,
    json_path: JsonPath = None,
    block_size: BlockSize = None,
    row_group_size: Annotated[str | None, typer.Option(
        help="Arrow bytes buffered per row group [default: 16MiB]")] = None,
    row_group_rows: Annotated[int | None, typer.Option(
        help="Most rows per row group [default: 1048576]")] = None,
    compression: Annotated[str | None, typer.Option(
        help="zstd, snappy, gzip or none [default: zstd]")] = None,
    rejects: Annotated[str | None, typer.Option(help="Write rejected records here (NDJSON).")]
    = None,
    schema: Annotated[Path | None, typer.Option(help="Explicit Arrow schema (JSON file): "
                                                     "no inference.")] = None,
    delimiter: Delimiter = None,
    quote_char: QuoteChar = None,
    header: Header = None,
    encoding: Encoding = None,
    null_value: NullValue = None,
    max_rows_per_file: Annotated[int | None, typer.Option(help="Rotate output files.")] = None,
    threads: Annotated[int | None, typer.Option(
        help="1: one chunk in flight; 2: read and parse on worker threads while Parquet is "
             "encoded (~30 MiB more) [default: 2 when two cores are usable]")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Convert a CSV, NDJSON or JSON-array file to Parquet, in bounded memory."""

    def job() -> Any:
        from engine.runtime import process

        process.configure(threads)  # before pyarrow loads (engine.run imports it)
        from engine.run import transform as run_transform

        kwargs = _read_kwargs(fmt, json_path, block_size, delimiter, quote_char, header,
                              encoding, null_value)
        if compression is not None and compression not in ("zstd", "snappy", "gzip", "none"):
            raise typer.BadParameter("use zstd, snappy, gzip or none",
                                     param_hint="--compression")
        write = {"compression": compression, "row_group_rows": row_group_rows,
                 "row_group_bytes": size_option(row_group_size) if row_group_size else None,
                 "rejects_uri": rejects, "max_rows_per_file": max_rows_per_file}
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


@app.command()
def validate(
    src: Annotated[str, typer.Argument(help="Input: a local path or s3://bucket/key.")],
    contract: Annotated[str, typer.Option(help="Dataset contract (YAML).")],
    fmt: Fmt = None,
    json_path: JsonPath = None,
    block_size: BlockSize = None,
    delimiter: Delimiter = None,
    quote_char: QuoteChar = None,
    header: Header = None,
    encoding: Encoding = None,
    null_value: NullValue = None,
    as_json: JsonFlag = False,
) -> None:
    """Check a file against a contract in one pass and report rejects; writes nothing.

    Exits 65 when the rejects exceed the contract's thresholds.
    """

    def job() -> Any:
        from engine.run import validate as run_validate

        kwargs = _read_kwargs(fmt, json_path, block_size, delimiter, quote_char, header,
                              encoding, null_value)
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


@app.command()
def infer(
    src: Annotated[str, typer.Argument(help="Input: a local path or s3://bucket/key.")],
    dataset: Annotated[str | None, typer.Option(help="Dataset name [default: the file's "
                                                     "stem]")] = None,
    fmt: Fmt = None,
    json_path: JsonPath = None,
    delimiter: Delimiter = None,
    quote_char: QuoteChar = None,
    header: Header = None,
    encoding: Encoding = None,
    null_value: NullValue = None,
) -> None:
    """Print a contract (YAML) scaffolded from a sample of the file, for a human to edit."""

    def job() -> Any:
        from engine.infer import infer_contract

        kwargs = _read_kwargs(fmt, json_path, None, delimiter, quote_char, header, encoding,
                              null_value)
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
    from rich.console import Console

    console = Console(stderr=False, highlight=False)
    mb = report.bytes_in / 1e6
    rate = mb / report.seconds if report.seconds else 0.0
    console.print(
        f"[bold green]ok[/] {report.input} → {report.output}: {report.format}, "
        f"{report.rows_in:,} rows in, {report.rows_out:,} written, "
        f"{report.rows_rejected:,} rejected"
        + (f", {report.rows_filtered:,} filtered" if report.rows_filtered else "")
        + f"; {mb:,.1f} MB in {report.seconds:.2f} s "
        f"({rate:,.0f} MB/s), {report.bytes_out / 1e6:,.1f} MB out, "
        f"peak RSS {report.peak_rss_bytes / 2**20:,.0f} MiB",
        soft_wrap=True,  # one line, whatever the terminal width
    )
    for w in report.widened:
        console.print(f"  widened {w['column']}: {w['from']} → {w['to']} (record {w['record']})")


@app.command()
def gen(
    dataset: Annotated[str, typer.Argument(help="What to generate: orders.")],
    size: Annotated[str, typer.Option(help="Uncompressed size, e.g. 500MB.")] = "10MB",
    output: Annotated[str, typer.Option("-o", "--output", help="File to write; the suffix "
                                        "picks the format (.csv, .ndjson, .json) and "
                                        "compression (.gz, .bz2, .zst).")] = "orders.csv",
    fmt: Annotated[str | None, typer.Option("--format", help="csv, ndjson or json.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
    dirty: Annotated[float, typer.Option(help="Fraction of records (0-0.5) given one known "
                                              "fault each, listed in OUTPUT.injected.ndjson")]
    = 0.0,
    as_json: JsonFlag = False,
) -> None:
    """Generate deterministic, realistic sample data."""
    nbytes = size_option(size)

    def job() -> Any:
        from engine.gen.core import check_arguments, generate

        try:
            check_arguments(dataset, output, size=nbytes, fmt=fmt, seed=seed, dirty=dirty)
        except ValueError as exc:  # a mistyped argument: a usage error, like a bad option
            raise typer.BadParameter(str(exc)) from None
        return generate(dataset, output, size=nbytes, fmt=fmt, seed=seed, dirty=dirty)

    report = run_job(as_json, job)
    data = {"status": "succeeded", "path": str(report.path), "format": report.format,
            "compression": report.compression, "rows": report.rows,
            "bytes": report.bytes_written, "seconds": round(report.seconds, 3),
            "injected": report.injected, "injected_path": report.injected_path}
    if as_json:
        print(json.dumps(data))
    else:
        print(f"wrote {data['path']}: {data['rows']:,} rows, {data['bytes'] / 1e6:,.1f} MB "
              f"({data['format']}) in {data['seconds']:.2f} s")


app.add_typer(__import__("engine.cli.pipeline", fromlist=["app"]).app, name="pipeline")
app.add_typer(__import__("engine.cli.layer", fromlist=["app"]).app, name="layer")
_sizing = __import__("engine.cli.sizing", fromlist=["profile", "size"])
app.command()(_sizing.profile)
app.command()(_sizing.size)


def main() -> None:
    """Entry point of the ``chunkwise`` console script."""
    from engine.runtime import process

    process.configure()  # before any command loads pyarrow; transform refines it by --threads
    app()


if __name__ == "__main__":
    main()
