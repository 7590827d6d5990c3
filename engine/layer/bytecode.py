"""Ship bytecode for the modules a cold start imports, compiled by the target's Python.

Lambda mounts a layer read-only at ``/opt``: without ``__pycache__`` in the zip, every cold start
compiles each module it imports from the layer again (measured from a host layer: +0.13 s and
+7 MiB of peak RSS on a handler import, ``benchmarks/cold_start.py``). Compiling everything would
add ~13 MiB, so only :data:`HOT_MODULES` are: what a handler import, a contract run and the first
S3 access load (listed with ``benchmarks/cold_start.py``'s layer mode). A module missing from the
list still works; it is compiled at import, as without this step.

Bytecode is specific to a Python minor version, so it is compiled by an interpreter of the
target's version (``python3.13`` on ``PATH`` or under pyenv); without one the layer ships none
and the build says so. The files are ``__pycache__/<name>.cpython-313.pyc`` with
``UNCHECKED_HASH`` invalidation (no timestamps: the zip stays deterministic, and the runtime
does not stat the sources) and ``/opt/python/...`` as their recorded source path.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from engine.layer.target import Target
from engine.layer.trim import TrimRule

__all__ = ["HOT_MODULES", "BytecodeResult", "compile_hot_modules", "find_python"]

#: The modules a cold start and a first conversion import (globs over ``python/``).
HOT_MODULES = TrimRule("hot modules", "imported by a handler, a contract run or S3 access", (
    "engine/**/*.py", "pyarrow/*.py", "numpy/*.py", "numpy/_core/*.py", "numpy/lib/*.py",
    "numpy/linalg/*.py", "numpy/_typing/*.py", "numpy/_utils/*.py", "numpy/matrixlib/*.py",
    "pydantic/*.py", "pydantic/_internal/*.py", "pydantic/plugin/*.py", "pydantic_core/*.py",
    "aws_lambda_powertools/*.py", "aws_lambda_powertools/exceptions/*.py",
    "aws_lambda_powertools/logging/**/*.py", "aws_lambda_powertools/metrics/**/*.py",
    "aws_lambda_powertools/middleware_factory/*.py", "aws_lambda_powertools/shared/*.py",
    "aws_lambda_powertools/tracing/*.py", "aws_lambda_powertools/warnings/*.py",
    "aws_lambda_powertools/utilities/*.py", "aws_lambda_powertools/utilities/data_classes/*.py",
    "aws_lambda_powertools/utilities/jmespath_utils/*.py", "yaml/*.py", "ijson/**/*.py",
    "isal/*.py", "zstandard/*.py", "typing_extensions.py",
    "typing_inspection/*.py", "annotated_types/*.py",
))

#: Where Lambda puts a layer's ``python/`` directory: the source path recorded in the bytecode.
LAYER_MOUNT = "/opt/python"

_COMPILE = r"""
import importlib.util, json, py_compile, sys
root, mount = sys.argv[1], sys.argv[2]
written = []
for rel in json.load(sys.stdin):
    source = f"{root}/{rel}"
    cfile = importlib.util.cache_from_source(source)
    py_compile.compile(source, cfile=cfile, dfile=f"{mount}/{rel}", doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    written.append(cfile[len(root) + 1:])
print(json.dumps(written))
"""


@dataclass(frozen=True)
class BytecodeResult:
    """What compiling did.

    Attributes:
        python: the interpreter used, or None when none of the target's version was found.
        files: the ``.pyc`` files written, relative to the layer's ``python/``.
        note: why no bytecode was written, when ``python`` is None.
    """

    python: str | None
    files: tuple[str, ...] = ()
    note: str = ""


def find_python(target: Target) -> str | None:
    """An interpreter of the target's Python version: this one, ``PATH``, or pyenv's."""
    version = target.python_version
    candidates = [sys.executable] if sys.version_info[:2] == target.python else []
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates += sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"),
                         reverse=True)
    for candidate in candidates:
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print(sys.implementation.name, "
                                  "*sys.version_info[:2])"],
                capture_output=True, text=True, timeout=30, check=False).stdout.split()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out == ["cpython", str(target.python[0]), str(target.python[1])]:
            return candidate
    return None


def compile_hot_modules(root: Path, target: Target, python: str | None = None) -> BytecodeResult:
    """Write ``__pycache__`` bytecode for :data:`HOT_MODULES` under ``root`` (``python/``).

    Raises:
        RuntimeError: the interpreter failed to compile a module (its message is included).
    """
    python = python or find_python(target)
    if python is None:
        return BytecodeResult(python=None, note=(
            f"no bytecode: no Python {target.python_version} found (PATH, pyenv), so Lambda "
            f"compiles the imported modules at every cold start (~0.13 s)"))
    sources = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py"))
    hot = [rel for rel in sources if HOT_MODULES.matches(rel)]
    result = subprocess.run([python, "-I", "-c", _COMPILE, str(root), LAYER_MOUNT],
                            input=json.dumps(hot), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{python} could not compile the layer's modules: "
                           f"{result.stderr.strip().splitlines()[-1:]}")
    return BytecodeResult(python=python, files=tuple(json.loads(result.stdout)))
