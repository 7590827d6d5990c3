"""MIMALLOC_PURGE_DELAY follows the conversion's thread count, set before pyarrow loads.

Set by the entry points (the CLI, the Lambda handlers), never by importing or calling the library.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

CLI = """
import os, sys
sys.argv = ["chunkwise", "transform", sys.argv[1], sys.argv[2], *sys.argv[3:], "--json"]
import engine.cli.app
try:
    engine.cli.app.main()
except SystemExit:
    pass
import pyarrow  # loaded by the conversion, after the CLI chose the delay
print(os.environ["MIMALLOC_PURGE_DELAY"], file=sys.stderr)
"""


def _delay(code: str, *args: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("MIMALLOC_PURGE_DELAY", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                            "OPENBLAS_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**environ, **env}, check=True, timeout=60)
    return done.stderr.strip().splitlines()[-1]


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,x\n")
    return str(src), str(tmp_path / "out.parquet")


@pytest.mark.parametrize(("threads", "expected"), [(["--threads", "1"], "50"),
                                                   (["--threads", "2"], "50"), ([], "50")])
def test_the_cli_sets_the_delay_for_its_threads(files: tuple[str, str], threads: list[str],
                                                expected: str) -> None:
    assert _delay(CLI, *files, *threads) == expected


def test_a_users_delay_wins(files: tuple[str, str]) -> None:
    assert _delay(CLI, *files, "--threads", "1", MIMALLOC_PURGE_DELAY="7") == "7"


HANDLER = """
import os, sys
sys.path.insert(0, sys.argv[1])  # as the Lambda runtime: the handler's directory first
import handler
print(os.environ["MIMALLOC_PURGE_DELAY"], os.environ["OPENBLAS_NUM_THREADS"], file=sys.stderr)
"""


@pytest.mark.parametrize(("memory", "expected"), [("256", "50 1"), ("1769", "50 1"), ("", "50 1")])
def test_a_lambda_under_one_vcpu_gets_the_single_thread_delay(memory: str, expected: str) -> None:
    env = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": memory} if memory else {}
    assert _delay(HANDLER, str(ROOT / "lambda" / "transform"), **env) == expected


def test_the_library_changes_no_process_wide_state(files: tuple[str, str]) -> None:
    code = ("import os, sys, engine\n"
            "engine.transform(sys.argv[1], sys.argv[2])\n"
            "print(os.environ.get('MIMALLOC_PURGE_DELAY'), os.environ.get('OPENBLAS_NUM_THREADS'),"
            " file=sys.stderr)")
    assert _delay(code, *files) == "None None"


def test_nothing_changes_once_pyarrow_is_loaded() -> None:
    code = ("import os, sys, pyarrow, engine\n"
            "from engine.runtime import allocator\n"
            "before = os.environ.get('MIMALLOC_PURGE_DELAY')\n"
            "allocator.configure(1)\n"
            "print(before == os.environ.get('MIMALLOC_PURGE_DELAY'), file=sys.stderr)")
    assert _delay(code) == "True"
