"""One peer conversion per process, for ``benchmarks/peers.py``.

    python benchmarks/_runner.py APPROACH IN OUT --threads {1,default}
    python benchmarks/_runner.py inspect OUT

A conversion prints one JSON line on stdout: ``{"seconds": <wall after imports>, "rows": <rows
written>}``. ``inspect`` prints the output's Parquet metadata (rows, row groups, Arrow types, null
counts from the column statistics). Only the libraries an approach needs are imported, so the
whole-process numbers that ``peers.py`` takes from ``os.wait4`` are that approach's alone.

Every approach writes zstd (chunkwise's default) so output sizes and CPU are comparable; the
anchor measurements (docs/performance.md, "Method") used snappy.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

MiB = 1024 * 1024
COMPRESSION = "zstd"
PYARROW_BLOCK = 1 * MiB
PANDAS_CHUNK_ROWS = 100_000
IJSON_BATCH_ROWS = 50_000


def _single_threaded_arrow() -> None:
    import pyarrow as pa

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


# -- approaches: each returns the number of rows it wrote --------------------------------------


def pyarrow_csv(src: str, dst: str, t1: bool) -> int:
    import pyarrow as pa  # noqa: F401
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if t1:
        _single_threaded_arrow()
    start = time.perf_counter()
    reader = pacsv.open_csv(
        src,
        read_options=pacsv.ReadOptions(block_size=PYARROW_BLOCK, use_threads=not t1),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
    )
    rows = 0
    with pq.ParquetWriter(dst, reader.schema, compression=COMPRESSION) as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    _report(start, rows)
    return rows


def pyarrow_ndjson(src: str, dst: str, t1: bool) -> int:
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    if t1:
        _single_threaded_arrow()
    start = time.perf_counter()
    reader = pajson.open_json(
        src, read_options=pajson.ReadOptions(block_size=PYARROW_BLOCK, use_threads=not t1)
    )
    rows = 0
    with pq.ParquetWriter(dst, reader.schema, compression=COMPRESSION) as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    _report(start, rows)
    return rows


def pandas_csv(src: str, dst: str, t1: bool) -> int:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    if t1:
        _single_threaded_arrow()
    start = time.perf_counter()
    rows = 0
    writer = None
    try:
        for frame in pd.read_csv(src, chunksize=PANDAS_CHUNK_ROWS):
            table = pa.Table.from_pandas(frame, preserve_index=False, nthreads=1 if t1 else None)
            if writer is None:
                writer = pq.ParquetWriter(dst, table.schema, compression=COMPRESSION)
            elif not table.schema.equals(writer.schema):
                table = table.cast(writer.schema)
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    _report(start, rows)
    return rows


def _duckdb(read_sql: str, dst: str, t1: bool) -> int:
    import duckdb

    start = time.perf_counter()
    con = duckdb.connect()
    if t1:
        con.execute("SET threads=1")
    con.execute(
        f"COPY (SELECT * FROM {read_sql}) TO {_sql_str(dst)} "
        f"(FORMAT parquet, COMPRESSION {COMPRESSION})"
    )
    con.close()
    _report(start, None)
    return -1


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duckdb_csv(src: str, dst: str, t1: bool) -> int:
    return _duckdb(f"read_csv({_sql_str(src)})", dst, t1)


def duckdb_ndjson(src: str, dst: str, t1: bool) -> int:
    return _duckdb(f"read_ndjson({_sql_str(src)})", dst, t1)


def duckdb_json(src: str, dst: str, t1: bool) -> int:
    return _duckdb(f"read_json({_sql_str(src)}, format='array')", dst, t1)


def _polars(t1: bool):  # noqa: ANN202 - the polars module
    if t1:
        os.environ["POLARS_MAX_THREADS"] = "1"  # read once, when polars is imported
    import polars as pl

    return pl


def polars_csv(src: str, dst: str, t1: bool) -> int:
    pl = _polars(t1)
    start = time.perf_counter()
    pl.scan_csv(src).sink_parquet(dst, compression=COMPRESSION)
    _report(start, None)
    return -1


def polars_ndjson(src: str, dst: str, t1: bool) -> int:
    pl = _polars(t1)
    start = time.perf_counter()
    pl.scan_ndjson(src).sink_parquet(dst, compression=COMPRESSION)
    _report(start, None)
    return -1


def polars_json(src: str, dst: str, t1: bool) -> int:
    pl = _polars(t1)
    start = time.perf_counter()
    frame = pl.read_json(src)  # no streaming reader for a JSON array: the whole document
    frame.write_parquet(dst, compression=COMPRESSION)
    _report(start, frame.height)
    return frame.height


def ijson_json(src: str, dst: str, t1: bool) -> int:
    import ijson
    import pyarrow as pa
    import pyarrow.parquet as pq

    if t1:
        _single_threaded_arrow()
    backend = ijson.get_backend("yajl2_c")
    start = time.perf_counter()
    rows = 0
    writer = None

    def flush(objects: list) -> None:
        nonlocal writer, rows
        batch = pa.RecordBatch.from_pylist(objects)
        if writer is None:
            writer = pq.ParquetWriter(dst, batch.schema, compression=COMPRESSION)
        elif not batch.schema.equals(writer.schema):
            batch = batch.cast(writer.schema)
        writer.write_batch(batch)
        rows += batch.num_rows

    try:
        with open(src, "rb") as f:
            pending: list = []
            for obj in backend.items(f, "item", use_float=True):
                pending.append(obj)
                if len(pending) >= IJSON_BATCH_ROWS:
                    flush(pending)
                    pending = []
            if pending:
                flush(pending)
    finally:
        if writer is not None:
            writer.close()
    _report(start, rows)
    return rows


APPROACHES: dict[str, Callable[[str, str, bool], int]] = {
    "pyarrow_csv": pyarrow_csv,
    "pyarrow_ndjson": pyarrow_ndjson,
    "pandas_csv": pandas_csv,
    "duckdb_csv": duckdb_csv,
    "duckdb_ndjson": duckdb_ndjson,
    "duckdb_json": duckdb_json,
    "polars_csv": polars_csv,
    "polars_ndjson": polars_ndjson,
    "polars_json": polars_json,
    "ijson_json": ijson_json,
}


def _report(start: float, rows: int | None) -> None:
    print(json.dumps({"seconds": round(time.perf_counter() - start, 4), "rows": rows}), flush=True)


# -- inspect ---------------------------------------------------------------------------------


def inspect(path: str) -> None:
    """Print rows, row groups, size, Arrow types and null counts of a Parquet file."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    schema = meta.schema.to_arrow_schema()
    nulls: dict[str, int | None] = {}
    for j, name in enumerate(schema.names):
        total: int | None = 0
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(j).statistics
            if stats is None or not stats.has_null_count:
                total = None
                break
            total += stats.null_count
        nulls[name] = total
    print(json.dumps({
        "rows": meta.num_rows,
        "row_groups": meta.num_row_groups,
        "bytes": os.path.getsize(path),
        "types": {f.name: str(f.type) for f in schema},
        "nulls": nulls,
    }))


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "inspect":
        inspect(argv[1])
        return 0
    if len(argv) != 5 or argv[3] != "--threads" or argv[0] not in APPROACHES:
        print(__doc__, file=sys.stderr)
        print(f"approaches: {', '.join(APPROACHES)}", file=sys.stderr)
        return 2
    approach, src, dst, _, threads = argv
    APPROACHES[approach](src, dst, threads == "1")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
