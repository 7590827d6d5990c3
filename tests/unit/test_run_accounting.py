"""The accounting guard: a record lost on purpose fails the run, and nothing is published.

Each test breaks one place between the reader's count and the published bytes (a stage, the
sink, its buffer, the Parquet writer, the partition router, the rejects file) with a
monkeypatch, the way a defect would, and checks that the run raises
:class:`~engine.errors.AccountingError` (exit 70) and leaves the output directory as it was:
no Parquet file, no rejects file, no temp file, and none of the files a rotation or an evicted
partition had already published. The S3 side is in ``tests/functional/sink/test_accounting_s3.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.errors import AccountingError, EngineError
from engine.readers.base import Reject
from engine.run import transform
from engine.sink.parquet import ParquetSink
from engine.sink.partitioned import PartitionedSink
from engine.sink.rejects import RejectsFile

ROWS = 60
#: Two rows with too many fields: the rejects file has two lines.
RAGGED = {7, 31}


def write_input(path: Path) -> Path:
    lines = ["id,country,amount"]
    for i in range(ROWS):
        lines.append(f"{i},{'FR DE US'.split()[i % 3]},{i * 1.5}" + (",x" if i in RAGGED else ""))
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


@pytest.fixture
def src(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    return write_input(tmp_path / "in" / "orders.csv")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


def left(directory: Path) -> list[str]:
    """Every file under ``directory`` (the folders of partitions may stay, empty)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def lose_one(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original(self, table, ...)``, given the table without its last row once."""
    state = {"lost": False}

    def losing(self: Any, table: pa.Table, *args: Any, **kwargs: Any) -> Any:
        if not state["lost"] and table.num_rows > 1:
            state["lost"] = True
            table = table.slice(0, table.num_rows - 1)
        return original(self, table, *args, **kwargs)

    return losing


def run_losing(src: Path, out: Path, **options: Any) -> AccountingError:
    with pytest.raises(AccountingError) as info:
        transform(str(src), str(out / "orders.parquet"), rejects_uri=str(out / "rejects.ndjson"),
                  **options)
    assert info.value.exit_code == 70
    assert left(out) == [], "a failed run published something"
    return info.value


def test_the_unbroken_run_publishes_every_row(src: Path, out: Path) -> None:
    # The control: the same input and options as the breakages below convert and add up.
    report = transform(str(src), str(out / "orders.parquet"),
                       rejects_uri=str(out / "rejects.ndjson"))
    assert (report.rows_in, report.rows_out, report.rows_rejected) == (ROWS, ROWS - 2, 2)
    assert pq.read_metadata(out / "orders.parquet").num_rows == ROWS - 2
    assert (out / "rejects.ndjson").read_bytes().count(b"\n") == 2


def test_a_row_lost_before_the_sink_fails_the_run(src: Path, out: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # A stage (or the loop) that drops a row: read and counted, never given to the sink.
    monkeypatch.setattr(ParquetSink, "write", lose_one(ParquetSink.write))
    error = run_losing(src, out)
    assert f"{ROWS} records read, but {ROWS - 3} written + 2 rejected + 0 filtered" in str(error)
    assert error.uri == str(src)


def test_a_row_lost_in_the_sinks_buffer_fails_the_run(src: Path, out: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Given to the sink and counted there, lost on the way from its buffer to the writer.
    monkeypatch.setattr(ParquetSink, "_write_group", lose_one(ParquetSink._write_group))
    error = run_losing(src, out)
    assert f"{ROWS - 2} rows were given to the sink, but its files hold {ROWS - 3}" in str(error)


def test_a_row_lost_by_the_parquet_writer_fails_the_run(src: Path, out: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Counted by the sink as written to the file; the file's own footer says otherwise.
    monkeypatch.setattr(pq.ParquetWriter, "write_table", lose_one(pq.ParquetWriter.write_table))
    error = run_losing(src, out)
    assert f"holds {ROWS - 3} rows, but {ROWS - 2} were written to it" in str(error)
    assert "footer" in str(error)


def test_a_footer_check_after_a_rotation_takes_back_the_published_files(
        src: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first files are published as the output rotates; the third loses a row.
    calls = {"n": 0}
    original = pq.ParquetWriter.write_table

    def losing_third(self: Any, table: pa.Table, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            table = table.slice(1)
        return original(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", losing_third)
    error = run_losing(src, out, max_rows_per_file=10, row_group_rows=10, block_size=64)
    assert "orders-00002.parquet" in str(error)


def test_a_row_lost_by_the_partition_router_fails_the_run(src: Path, out: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    contract = tmp_path / "c.yaml"
    contract.write_text(textwrap.dedent("""\
        dataset: orders
        columns:
          id: {type: int64}
          country: {type: string}
          amount: {type: float64}
        rejects: {max_ratio: 0.5}
        output: {partition_by: [country], max_open_writers: 1}
        """), "utf-8")
    original = PartitionedSink._split

    def losing_split(self: PartitionedSink, table: pa.Table) -> Any:
        pieces = list(original(self, table))
        texts, first = pieces[0]
        return [(texts, first.slice(1)), *pieces[1:]]

    monkeypatch.setattr(PartitionedSink, "_split", losing_split)
    with pytest.raises(AccountingError, match="partitions got") as info:
        # One open writer: partitions are committed (published) as others arrive.
        transform(str(src), f"{out}/", contract=str(contract), block_size=64,
                  rejects_uri=str(out / "rejects.ndjson"))
    assert info.value.exit_code == 70
    assert left(out) == []


def test_a_row_lost_by_a_contract_stage_fails_the_run(src: Path, out: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A transform that drops a row without counting it as filtered.
    from engine.enforce.stage import ContractStages

    contract = tmp_path / "c.yaml"
    contract.write_text(textwrap.dedent("""\
        dataset: orders
        columns:
          id: {type: int64}
          country: {type: string}
          amount: {type: float64}
        rejects: {max_ratio: 0.5}
        transforms:
          - filter: {call: greater_equal, args: [{field: id}, {literal: 5}]}
        """), "utf-8")
    original = ContractStages.apply

    def losing_apply(self: ContractStages, chunk: Any) -> tuple[pa.Table, list[Reject]]:
        table, bad = original(self, chunk)
        return (table.slice(1) if table.num_rows else table), bad

    monkeypatch.setattr(ContractStages, "apply", losing_apply)
    with pytest.raises(AccountingError, match="5 filtered") as info:
        transform(str(src), str(out / "orders.parquet"), contract=str(contract),
                  rejects_uri=str(out / "rejects.ndjson"))
    assert info.value.exit_code == 70
    assert left(out) == []


def test_a_reject_counted_but_not_written_fails_the_run(src: Path, out: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    original = RejectsFile.write

    def losing_write(self: RejectsFile, rejects: list[Reject]) -> None:
        original(self, rejects[1:])
        self.count += min(1, len(rejects))

    monkeypatch.setattr(RejectsFile, "write", losing_write)
    error = run_losing(src, out)
    assert "2 records were rejected, but the rejects file holds 1 lines" in str(error)


#: A child that loses one row in the sink, then runs the CLI (``python -O``: no asserts).
LOSING_CLI = textwrap.dedent("""\
    import sys
    from engine.sink.parquet import ParquetSink
    original = ParquetSink.write
    def write(self, table):
        return original(self, table.slice(1))
    ParquetSink.write = write
    from engine.cli.app import main
    sys.argv[0] = "chunkwise"
    main()
    """)


def test_the_cli_exits_70_with_a_typed_error_even_without_asserts(src: Path, out: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-O", "-c", LOSING_CLI, "transform", str(src),
         str(out / "orders.parquet"), "--rejects", str(out / "rejects.ndjson"), "--json"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 70, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["type"] == "AccountingError" and error["uri"] == str(src)
    assert "Traceback" not in done.stderr
    assert left(out) == []


def test_accounting_error_is_an_engine_error_that_is_not_retried() -> None:
    from engine.errors import PermanentError, TransientError

    assert issubclass(AccountingError, EngineError)
    assert not issubclass(AccountingError, (PermanentError, TransientError))
