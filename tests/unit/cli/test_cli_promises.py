"""What the CLI promises and nothing else pinned: exit 70 for a bug, its traceback on demand, and
``--null-value`` replacing the default null markers rather than adding to them.

The internal-error tests run the console script's ``main`` in a child process (as a user runs
it) after making one engine function raise an exception that is not an engine error, the way
a bug would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from engine.cli.app import app

#: A child whose engine raises a KeyError while resolving the input, then runs the CLI.
BUGGY_CLI = textwrap.dedent("""\
    import sys
    import engine.run

    def resolve_input(src, options):
        raise KeyError("a bug")

    engine.run.resolve_input = resolve_input
    from engine.cli.app import main
    sys.argv[0] = "chunkwise"
    main()
    """)


def run_buggy(tmp_path: Path, *args: str, debug: bool) -> subprocess.CompletedProcess[str]:
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,2\n", "utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CHUNKWISE_DEBUG"}
    if debug:
        env["CHUNKWISE_DEBUG"] = "1"
    return subprocess.run([sys.executable, "-c", BUGGY_CLI, "transform", str(src),
                           str(tmp_path / "out.parquet"), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_an_internal_error_exits_70_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    done = run_buggy(tmp_path, "--json", debug=False)
    assert done.returncode == 70, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["type"] == "InternalError"
    assert error["message"] == "KeyError: 'a bug'"
    assert done.stderr.strip() == ("internal error: KeyError: 'a bug' "
                                   "(a bug: please report it)")
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_chunkwise_debug_shows_the_traceback_of_an_internal_error(tmp_path: Path) -> None:
    done = run_buggy(tmp_path, debug=True)
    assert done.returncode == 70
    lines = done.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert 'File "<string>", line 5, in resolve_input' in done.stderr  # where it was raised
    assert "engine/run.py" in done.stderr  # and the engine's frames that led there
    assert lines[-2:] == ["KeyError: 'a bug'",
                          "internal error: KeyError: 'a bug' (a bug: please report it)"]


def test_chunkwise_debug_does_not_add_a_traceback_to_a_typed_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli.app", "transform", str(tmp_path / "missing.csv"),
         str(tmp_path / "o.parquet")],
        capture_output=True, text=True, env={**os.environ, "CHUNKWISE_DEBUG": "1"}, timeout=120)
    assert done.returncode == 66
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: InputNotFoundError:")


NULLS = "n,m,s\n1,2,NA\n-,NA,\n3,4,NULL\n"


@pytest.fixture
def nulls_csv(tmp_path: Path) -> Path:
    path = tmp_path / "nulls.csv"
    path.write_text(NULLS, "utf-8")
    return path


def convert(path: Path, *options: str) -> pa.Table:
    dst = path.with_name(f"out{len(options)}.parquet")
    result = CliRunner().invoke(app, ["transform", str(path), str(dst), *options])
    assert result.exit_code == 0, result.output
    return pq.read_table(dst)


def test_without_null_value_the_defaults_apply_to_non_string_columns(nulls_csv: Path) -> None:
    table = convert(nulls_csv)
    assert table.column("m").type == pa.int64() and table.column("m").to_pylist() == [2, None, 4]
    assert table.column("n").to_pylist() == ["1", "-", "3"]  # "-" is no default marker
    assert table.column("s").to_pylist() == ["NA", "", "NULL"]  # strings never null by default


def test_null_value_replaces_the_default_markers(nulls_csv: Path) -> None:
    table = convert(nulls_csv, "--null-value", "-")
    assert table.column("n").type == pa.int64() and table.column("n").to_pylist() == [1, None, 3]
    # NA is no longer a null marker: the column that used it holds text now...
    assert table.column("m").to_pylist() == ["2", "NA", "4"]
    # ...and neither is "", NA or NULL in a string column, where the given markers apply.
    assert table.column("s").to_pylist() == ["NA", "", "NULL"]


def test_repeated_null_values_are_all_the_markers(nulls_csv: Path) -> None:
    table = convert(nulls_csv, "--null-value", "-", "--null-value", "NA")
    assert table.column("n").to_pylist() == [1, None, 3]
    assert table.column("m").to_pylist() == [2, None, 4]
    assert table.column("s").to_pylist() == [None, "", "NULL"]
