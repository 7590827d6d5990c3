"""``chunkwise gen``: deterministic sample data (:mod:`engine.gen`), registered by the app.

The generator (numpy, pyarrow) is imported when the command runs, not when the CLI starts.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from engine.cli.common import JsonFlag, choice, print_json, run_job, size_option
from engine.config import COMPRESSION_SUFFIXES, TEXT_FORMATS

__all__ = ["gen"]


def gen(
    dataset: Annotated[str, typer.Argument(
        help="What to generate: orders, or orders_offsets (the same rows with UTC offsets "
             "in the timestamps and CRLF line ends).")],
    size: Annotated[str, typer.Option(help="Uncompressed size, e.g. 500MB.")] = "10MB",
    output: Annotated[str, typer.Option(
        "-o", "--output",
        help="File to write; the suffix picks the format (.csv, .ndjson, .json) and compression "
             f"({', '.join(COMPRESSION_SUFFIXES)}).")] = "orders.csv",
    fmt: Annotated[str | None, typer.Option(
        "--format", click_type=choice(TEXT_FORMATS),
        help="Output format [default: from the suffix]")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
    dirty: Annotated[float, typer.Option(help="Fraction of records (0-0.5) given one known "
                                              "fault each, listed in OUTPUT.injected.ndjson; "
                                              "also writes nulls in the nullable columns")]
    = 0.0,
    as_json: JsonFlag = False,
) -> None:
    """Generate deterministic, realistic sample data."""
    nbytes = size_option(size)

    def job() -> Any:
        from engine.gen import check_arguments, generate

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
        print_json(data)
    else:
        print(f"wrote {data['path']}: {data['rows']:,} rows, {data['bytes'] / 1e6:,.1f} MB "
              f"({data['format']}) in {data['seconds']:.2f} s")
