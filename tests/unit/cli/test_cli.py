"""The ``chunkwise`` command: typer's CliRunner, and real subprocesses of the console script."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

import engine
from engine.cli.app import app
from engine.gen import generate

REPORT_KEYS = {"status", "input", "output", "format", "rows_in", "rows_out", "rows_rejected",
               "bytes_in", "bytes_out", "seconds", "peak_rss_bytes", "schema", "widened",
               "rejects"}
ERROR_KEYS = {"type", "message", "uri", "record", "offset"}


def console_script() -> list[str]:
    script = Path(sys.executable).parent / "chunkwise"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "engine.cli.app"]  # pragma: no cover - not installed as a script


def run_cli(*args: str, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    environ.pop("CHUNKWISE_DEBUG", None)
    environ.update(env or {})
    return subprocess.run([*console_script(), *args], capture_output=True, text=True,
                          timeout=120, env=environ, cwd=cwd)


def one_json_object(stdout: str) -> dict[str, Any]:
    """stdout holds exactly one JSON object and nothing else."""
    text = stdout.strip()
    assert text, "nothing on stdout"
    assert len(text.splitlines()) == 1, stdout
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def assert_failed(stdout: str, error_type: str) -> dict[str, Any]:
    data = one_json_object(stdout)
    assert data["status"] == "failed"
    assert set(data) == {"status", "error", "version"}
    assert data["version"] == engine.__version__
    assert set(data["error"]) >= ERROR_KEYS
    assert data["error"]["type"] == error_type
    assert data["error"]["message"]
    return data["error"]


@pytest.fixture(scope="module")
def orders_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "orders.csv"
    generate("orders", path, size=600_000, seed=5)
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


# ---------------------------------------------------------------------------------------------
# CliRunner


def test_transform_json_report(runner: CliRunner, orders_csv: Path, tmp_path: Path):
    dst = tmp_path / "out.parquet"
    result = runner.invoke(app, ["transform", str(orders_csv), str(dst), "--json"])
    assert result.exit_code == 0, result.output
    report = one_json_object(result.stdout)
    assert set(report) >= REPORT_KEYS
    assert report["status"] == "succeeded"
    assert report["input"] == str(orders_csv)
    assert report["output"] == str(dst)
    assert report["format"] == "csv"
    table = pq.read_table(dst)
    assert report["rows_in"] == report["rows_out"] + report["rows_rejected"] == table.num_rows
    assert report["bytes_in"] == orders_csv.stat().st_size
    assert report["bytes_out"] == dst.stat().st_size
    assert [f["name"] for f in report["schema"]] == table.column_names
    assert report["widened"] == []
    assert report["rejects"]["count"] == 0
    assert isinstance(report["seconds"], float) and report["peak_rss_bytes"] > 0
    assert "Traceback" not in result.stderr


def test_transform_options_reach_the_engine(runner: CliRunner, orders_csv: Path,
                                            tmp_path: Path):
    out = tmp_path / "parts"
    result = runner.invoke(app, [
        "transform", str(orders_csv), f"{out}/", "--json", "--compression", "snappy",
        "--block-size", "64KiB", "--row-group-size", "128KiB", "--row-group-rows", "2000",
        "--max-rows-per-file", "3000", "--format", "csv",
    ])
    assert result.exit_code == 0, result.output
    report = one_json_object(result.stdout)
    assert report["compression"] == "snappy"
    names = sorted(n for n in os.listdir(out) if not n.startswith("_"))  # not _chunkwise/
    assert len(names) >= 2 and len(names) == len(report["files"])
    rows = 0
    for name in names:
        meta = pq.ParquetFile(out / name).metadata
        assert meta.row_group(0).column(0).compression == "SNAPPY"
        assert all(meta.row_group(g).num_rows <= 2_000 for g in range(meta.num_row_groups))
        rows += meta.num_rows
    assert rows == report["rows_out"] == report["rows_in"]


def test_transform_json_path(runner: CliRunner, tmp_path: Path):
    src = tmp_path / "doc.json"
    src.write_text(json.dumps({"meta": {"n": 3}, "data": [{"a": i, "b": str(i)}
                                                          for i in range(3)]}), "utf-8")
    dst = tmp_path / "out.parquet"
    result = runner.invoke(app, ["transform", str(src), str(dst), "--json-path", "data.item",
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert one_json_object(result.stdout)["format"] == "json"
    assert pq.read_table(dst).to_pylist() == [{"a": i, "b": str(i)} for i in range(3)]


def test_missing_input_exits_66(runner: CliRunner, tmp_path: Path):
    src = tmp_path / "nope.csv"
    result = runner.invoke(app, ["transform", str(src), str(tmp_path / "o.parquet"), "--json"])
    assert result.exit_code == 66
    error = assert_failed(result.stdout, "InputNotFoundError")
    assert error["uri"] == str(src)
    assert "Traceback" not in result.stderr
    assert "InputNotFoundError" in result.stderr
    assert os.listdir(tmp_path) == []


def test_corrupt_gzip_exits_65(runner: CliRunner, orders_csv: Path, tmp_path: Path):
    packed = gzip.compress(orders_csv.read_bytes())
    src = tmp_path / "in.csv.gz"
    src.write_bytes(packed[: len(packed) // 2])
    result = runner.invoke(app, ["transform", str(src), str(tmp_path / "o.parquet"), "--json"])
    assert result.exit_code == 65
    error = assert_failed(result.stdout, "InputFormatError")
    assert error["uri"] == str(src)
    assert isinstance(error["offset"], int) and error["offset"] > 0
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == ["in.csv.gz"]


def test_unterminated_quote_exits_65(runner: CliRunner, tmp_path: Path):
    data = b"a,b\n1,x\n2,y\n"
    src = tmp_path / "in.csv"
    src.write_bytes(data + b'3,"never closed\n')
    result = runner.invoke(app, ["transform", str(src), str(tmp_path / "o.parquet"), "--json"])
    assert result.exit_code == 65
    error = assert_failed(result.stdout, "InputFormatError")
    assert (error["uri"], error["record"], error["offset"]) == (str(src), 3, len(data))
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == ["in.csv"]


def test_schema_error_exits_65(runner: CliRunner, tmp_path: Path):
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,2\n3,x\n", "utf-8")
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"a": "int64", "b": "int64"}), "utf-8")
    result = runner.invoke(app, ["transform", str(src), str(tmp_path / "o.parquet"),
                                 "--schema", str(schema), "--json"])
    assert result.exit_code == 65
    assert_failed(result.stdout, "SchemaError")
    assert sorted(os.listdir(tmp_path)) == ["in.csv", "schema.json"]


@pytest.mark.parametrize("args", [
    ["--compression", "lz5"],
    ["--format", "xml"],
    ["--block-size", "12XB"],
    ["--row-group-rows", "many"],
    ["--no-such-option"],
    ["--delimiter", ";;"],
    ["--quote-char", "«"],  # pyarrow takes one ASCII byte: this was an internal error (70)
    ["--encoding", "bogus"],
    ["--block-size", "0"],  # this read nothing and reported success, 0 rows in
    ["--row-group-rows", "0"],
    ["--threads", "0"],
    ["--max-rows-per-file", "-1"],
])
def test_bad_option_exits_2(runner: CliRunner, orders_csv: Path, tmp_path: Path,
                            args: list[str]):
    result = runner.invoke(app, ["transform", str(orders_csv), str(tmp_path / "o.parquet"),
                                 *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args", [["--compression", "lz5"], ["--block-size", "12XB"]])
def test_bad_option_with_json_prints_a_failure_object(runner: CliRunner, orders_csv: Path,
                                                      tmp_path: Path, args: list[str]):
    # DESIGN: "--json prints one JSON object on stdout": a script parsing stdout must get one.
    result = runner.invoke(app, ["transform", str(orders_csv), str(tmp_path / "o.parquet"),
                                 "--json", *args])
    assert result.exit_code == 2
    data = one_json_object(result.stdout)
    assert data["status"] == "failed"
    assert set(data["error"]) >= ERROR_KEYS


def test_output_that_is_the_input_exits_2_and_keeps_the_input(runner: CliRunner,
                                                              tmp_path: Path):
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,2\n", "utf-8")
    result = runner.invoke(app, ["transform", str(src), str(src), "--json"])
    assert result.exit_code == 2, result.output
    error = one_json_object(result.stdout)["error"]
    assert error["type"] == "UsageError" and error["uri"] == str(src)
    assert src.read_text("utf-8") == "a,b\n1,2\n"


def test_backslash_t_delimiter_is_a_tab(runner: CliRunner, tmp_path: Path):
    src = tmp_path / "in.txt"
    src.write_text("a\tb\n1\t2\n", "utf-8")
    result = runner.invoke(app, ["transform", str(src), str(tmp_path / "o.parquet"),
                                 "--format", "csv", "--delimiter", "\\t", "--json"])
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "o.parquet").column_names == ["a", "b"]


def test_schema_file_that_is_not_json_is_named(runner: CliRunner, orders_csv: Path,
                                               tmp_path: Path):
    schema = tmp_path / "schema.json"
    schema.write_text("order_id: int64\n", "utf-8")  # YAML, not JSON
    result = runner.invoke(app, ["transform", str(orders_csv), str(tmp_path / "o.parquet"),
                                 "--schema", str(schema), "--json"])
    assert result.exit_code == 2, result.output
    message = one_json_object(result.stdout)["error"]["message"]
    assert f"{schema}: not JSON" in message and "a schema is a JSON object" in message


def test_unreadable_schema_file_is_a_usage_error(runner: CliRunner, orders_csv: Path,
                                                 tmp_path: Path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"order_id": "no-such-type"}), "utf-8")
    result = runner.invoke(app, ["transform", str(orders_csv), str(tmp_path / "o.parquet"),
                                 "--schema", str(schema)])
    assert result.exit_code == 2, result.output  # a bad option, not an internal error (70)
    assert "Traceback" not in result.stderr


def test_rejects_option_writes_the_rejects_file(runner: CliRunner, tmp_path: Path):
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,x\n2\n3,z\n4,w,extra\n", "utf-8")
    rejects = tmp_path / "rejects.ndjson"
    result = runner.invoke(app, ["transform", str(src), str(tmp_path / "o.parquet"),
                                 "--rejects", str(rejects), "--json"])
    assert result.exit_code == 0, result.output
    report = one_json_object(result.stdout)
    assert (report["rows_in"], report["rows_out"], report["rows_rejected"]) == (4, 2, 2)
    assert report["rejects"] == {"count": 2, "uri": str(rejects)}
    lines = [json.loads(line) for line in rejects.read_text("utf-8").splitlines()]
    assert [(r["record"], r["raw"]) for r in lines] == [(2, "2"), (4, "4,w,extra")]


def test_encoding_delimiter_and_null_value_options(runner: CliRunner, tmp_path: Path):
    src = tmp_path / "in.txt"
    src.write_bytes("id;city\n1;Zürich\n2;-\n".encode("latin-1"))
    dst = tmp_path / "o.parquet"
    result = runner.invoke(app, ["transform", str(src), str(dst), "--encoding", "latin-1",
                                 "--delimiter", ";", "--null-value", "-", "--json"])
    assert result.exit_code == 0, result.output
    assert pq.read_table(dst).to_pylist() == [{"id": 1, "city": "Zürich"},
                                              {"id": 2, "city": None}]


def test_summary_without_json(runner: CliRunner, orders_csv: Path, tmp_path: Path):
    dst = tmp_path / "out.parquet"
    result = runner.invoke(app, ["transform", str(orders_csv), str(dst)])
    assert result.exit_code == 0, result.output
    assert not result.stdout.lstrip().startswith("{")
    assert "rows" in result.stdout
    assert dst.exists()


def test_gen_json(runner: CliRunner, tmp_path: Path):
    dst = tmp_path / "g.ndjson.gz"
    result = runner.invoke(app, ["gen", "orders", "--size", "200KB", "-o", str(dst), "--json"])
    assert result.exit_code == 0, result.output
    data = one_json_object(result.stdout)
    assert data["status"] == "succeeded"
    assert (data["format"], data["compression"]) == ("ndjson", "gzip")
    lines = gzip.decompress(dst.read_bytes()).decode().splitlines()
    assert data["rows"] == len(lines) > 100


@pytest.mark.parametrize(("args", "problem"), [
    (["nope", "-o", "x.csv"], "unknown dataset 'nope'"),
    (["orders", "-o", "x.csv", "--size", "0"], "size must be a positive number"),
    (["orders", "-o", "x.tsv"], "cannot infer the format of"),
    (["orders", "-o", "x.csv", "--seed", "-1"], "seed must be a non-negative integer"),
    (["orders", "-o", "x.csv", "--dirty", "0.9"], "dirty must be a ratio from 0 to 0.5"),
])
def test_gen_bad_arguments_are_usage_errors(runner: CliRunner, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, args: list[str],
                                            problem: str):
    # These were internal errors (exit 70, "a bug: please report it").
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["gen", *args, "--json"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr
    error = one_json_object(result.stdout)["error"]
    assert error["type"] == "UsageError" and problem in error["message"]
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# real subprocesses of the console script


def test_summary_off_a_terminal_is_plain_text(tmp_path: Path):
    """A path that rich would read as markup or an emoji code is printed as it is."""
    src = tmp_path / "a [bold]x[red] :smile:.csv"
    src.write_text("id,name\n1,a\n2,b\n")
    proc = run_cli("transform", src.name, "out.parquet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"ok {src.name} → out.parquet: csv, 2 rows in, 2 written, "
                                  "0 rejected; ")
    assert "\x1b" not in proc.stdout


def test_console_script_builds_only_the_command_it_runs():
    """Each command is registered as in the full app; the others are not built at all."""
    from engine.cli.app import COMMANDS, build

    full = typer.main.get_command(app)
    assert sorted(full.commands) == sorted(COMMANDS)
    for name in COMMANDS:
        lean = typer.main.get_command(build(name))
        assert list(lean.commands) == [name]
        assert lean.commands[name].get_help(click.Context(lean.commands[name])) == \
            full.commands[name].get_help(click.Context(full.commands[name]))
    proc = subprocess.run([sys.executable, "-c", "import sys; from engine.cli.app import main; "
                           "sys.argv = ['chunkwise', 'transform', '--help']; main()"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "SRC" in proc.stdout
    modules = subprocess.run(
        [sys.executable, "-c", "import sys; from engine.cli.app import main; "
         "sys.argv = ['chunkwise', 'gen', '--help']\ntry: main()\nexcept SystemExit: pass\n"
         "print(sorted(m for m in sys.modules if m.startswith('engine.cli.')))"],
        capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[-1]
    assert "engine.cli.gen" in modules and "engine.cli.pipeline" not in modules


def test_a_csv_conversion_does_not_import_pyarrow_compute(tmp_path: Path):
    """Its ~30 ms import is a tenth of a small conversion's start-up: engine.kernels instead."""
    generate("orders_offsets", tmp_path / "x.csv.gz", size=300_000)
    code = ("import sys; from engine.cli.app import main\n"
            "sys.argv = ['chunkwise', 'transform', 'x.csv.gz', 'x.parquet', '--threads', '1']\n"
            "try: main()\nexcept SystemExit: pass\n"
            "print('pyarrow.compute' in sys.modules, 'rich' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False False"
    assert pq.read_metadata(tmp_path / "x.parquet").num_rows > 0


def test_subprocess_gen_then_transform_json(tmp_path: Path):
    gen = run_cli("gen", "orders", "--size", "1MB", "-o", "x.csv", cwd=tmp_path)
    assert gen.returncode == 0, gen.stderr
    assert "Traceback" not in gen.stderr
    assert (tmp_path / "x.csv").stat().st_size >= 1_000_000
    proc = run_cli("transform", "x.csv", "x.parquet", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    report = one_json_object(proc.stdout)
    assert set(report) >= REPORT_KEYS
    with open(tmp_path / "x.csv", newline="", encoding="utf-8") as fh:
        import csv

        expected = sum(1 for _ in csv.DictReader(fh))
    assert report["rows_in"] == report["rows_out"] == expected
    assert pq.read_table(tmp_path / "x.parquet").num_rows == expected
    assert report["bytes_in"] == (tmp_path / "x.csv").stat().st_size


def test_subprocess_failures_exit_codes(tmp_path: Path):
    missing = run_cli("transform", str(tmp_path / "none.csv"), str(tmp_path / "o.parquet"),
                      "--json")
    assert missing.returncode == 66
    assert assert_failed(missing.stdout, "InputNotFoundError")["uri"] == str(tmp_path /
                                                                            "none.csv")
    assert "Traceback" not in missing.stderr

    src = tmp_path / "in.csv.gz"
    src.write_bytes(gzip.compress(b"a,b\n" + b"1,2\n" * 50_000)[:-200])
    corrupt = run_cli("transform", str(src), str(tmp_path / "o.parquet"), "--json")
    assert corrupt.returncode == 65
    assert_failed(corrupt.stdout, "InputFormatError")
    assert "Traceback" not in corrupt.stderr

    bad = run_cli("transform", str(src), str(tmp_path / "o.parquet"), "--compression", "lz5")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert bad.stdout.strip() == ""
    assert sorted(os.listdir(tmp_path)) == ["in.csv.gz"]


def test_subprocess_binary_garbage_exits_65(tmp_path: Path):
    src = tmp_path / "blob"
    src.write_bytes(bytes(range(256)) * 64)
    proc = run_cli("transform", str(src), str(tmp_path / "o.parquet"), "--json")
    assert proc.returncode == 65
    assert_failed(proc.stdout, "InputFormatError")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("clean_rows", [0, 150_000])
def test_subprocess_latin1_ragged_row_without_encoding(tmp_path: Path, clean_rows: int):
    src = tmp_path / "l1.csv"
    src.write_bytes(b"id,city\n" + b"".join(b"%d,Paris\n" % i for i in range(clean_rows))
                    + b"1,Z\xfcrich\n2,M\xfcnchen,extra\n")
    proc = run_cli("transform", str(src), str(tmp_path / "o.parquet"), "--json")
    assert proc.returncode == 65, proc.stderr
    assert "UTF-8" in assert_failed(proc.stdout, "InputFormatError")["message"]
    assert "Traceback" not in proc.stderr
    assert os.listdir(tmp_path) == ["l1.csv"]


def test_subprocess_summary_is_one_line(orders_csv: Path, tmp_path: Path):
    dst = tmp_path / "a-rather-long-output-name-so-that-the-summary-is-wide.parquet"
    proc = run_cli("transform", str(orders_csv), str(dst))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    assert str(dst) in lines[0]
    assert "Traceback" not in proc.stderr
    assert not proc.stdout.lstrip().startswith("{")


# ---------------------------------------------------------------------------------------------
# the command introduces itself: version, completion, choices, panels, environment defaults


def test_version_is_the_package_version(runner: CliRunner):
    import importlib.metadata
    import tomllib

    import engine

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"chunkwise {engine.__version__}\n"
    # engine.__version__ is the one source: the packaging metadata reads it from there
    pyproject = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml")
                              .read_text("utf-8"))
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "engine.__version__"}
    assert importlib.metadata.version("chunkwise") == engine.__version__


def test_subprocess_version():
    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("chunkwise ") and len(proc.stdout.split()) == 2


def _complete(words: str) -> list[str]:
    """What the shell's completion gets for the command line ``words`` (the last one partial)."""
    env = {"_CHUNKWISE_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    proc = run_cli(env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_shell_completion_of_commands_and_choices():
    assert _complete("chunkwise tra") == ["transform"]
    assert _complete("chunkwise transform in.csv out.parquet --compression s") == ["snappy"]
    assert _complete("chunkwise gen orders --format ") == ["csv", "ndjson", "json"]


def test_completion_can_be_shown_and_installed(runner: CliRunner):
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "160"})
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout
    # typer's switch to take the shell's name rather than detect the parent process's shell
    proc = run_cli("--show-completion", "bash",
                   env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert proc.returncode == 0, proc.stderr
    # the name of click's completion variable, not a secret
    assert "_CHUNKWISE_COMPLETE=complete_bash" in proc.stdout  # pragma: allowlist secret


def test_transform_help_groups_options_and_lists_choices(runner: CliRunner):
    result = runner.invoke(app, ["transform", "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    text = result.stdout
    panels = [line.split("─")[1].strip() for line in text.splitlines() if line.startswith("╭─")]
    assert panels == ["Arguments", "Options", "Input", "CSV", "Output (Parquet)", "Contract",
                      "Run"]
    for choices in ("[csv|ndjson|json|parquet]", "[none|gzip|bz2|zstd]",
                    "[zstd|snappy|gzip|none]"):
        assert choices in text
    for variable in ("CHUNKWISE_THREADS", "CHUNKWISE_BLOCK_SIZE", "CHUNKWISE_COMPRESSION",
                     "CHUNKWISE_ROW_GROUP_SIZE"):
        assert f"env var: {variable}" in text


def test_choices_are_case_insensitive(runner: CliRunner, orders_csv: Path, tmp_path: Path):
    result = runner.invoke(app, ["transform", str(orders_csv), str(tmp_path / "o.parquet"),
                                 "--format", "CSV", "--compression", "Snappy",
                                 "--input-compression", "none", "--json"])
    assert result.exit_code == 0, result.output
    report = one_json_object(result.stdout)
    assert (report["format"], report["compression"]) == ("csv", "snappy")


def test_input_compression_option(runner: CliRunner, orders_csv: Path, tmp_path: Path):
    src = tmp_path / "orders.data"  # no suffix says it is compressed
    src.write_bytes(gzip.compress(orders_csv.read_bytes()))
    dst = tmp_path / "o.parquet"
    result = runner.invoke(app, ["transform", str(src), str(dst), "--format", "csv",
                                 "--input-compression", "gzip", "--json"])
    assert result.exit_code == 0, result.output
    assert one_json_object(result.stdout)["rows_out"] == pq.read_table(dst).num_rows > 0


@pytest.mark.parametrize("args", [["--format", "xml"], ["--input-compression", "lzma"],
                                  ["--row-group-rows", "many"]])
def test_a_value_click_refuses_with_json_prints_a_failure_object(
        runner: CliRunner, orders_csv: Path, tmp_path: Path, args: list[str]):
    result = runner.invoke(app, ["transform", str(orders_csv), str(tmp_path / "o.parquet"),
                                 "--json", *args])
    assert result.exit_code == 2
    error = one_json_object(result.stdout)["error"]
    assert error["type"] == "UsageError" and args[0] in error["message"]
    assert os.listdir(tmp_path) == []


def test_environment_variables_set_defaults(runner: CliRunner, orders_csv: Path,
                                            tmp_path: Path):
    env = {"CHUNKWISE_COMPRESSION": "snappy", "CHUNKWISE_BLOCK_SIZE": "64KiB",
           "CHUNKWISE_ROW_GROUP_SIZE": "64KiB"}
    dst = tmp_path / "env.parquet"
    result = runner.invoke(app, ["transform", str(orders_csv), str(dst), "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert one_json_object(result.stdout)["compression"] == "snappy"
    meta = pq.ParquetFile(dst).metadata
    assert meta.row_group(0).column(0).compression == "SNAPPY" and meta.num_row_groups > 1
    # the command line wins over the environment
    result = runner.invoke(app, ["transform", str(orders_csv), str(tmp_path / "cli.parquet"),
                                 "--compression", "gzip", "--json"], env=env)
    assert one_json_object(result.stdout)["compression"] == "gzip"


def test_an_unusable_environment_value_is_a_usage_error(runner: CliRunner, orders_csv: Path,
                                                        tmp_path: Path):
    result = runner.invoke(app, ["transform", str(orders_csv), str(tmp_path / "o.parquet")],
                           env={"CHUNKWISE_THREADS": "0"})
    assert result.exit_code == 2, result.output
    assert "--threads" in result.stderr and "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []
