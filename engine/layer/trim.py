"""Trim what the Lambda runtime never loads, and strip pyarrow's shared objects.

Each rule is a set of globs over paths relative to the layer's ``python/`` directory (``*``
within one path segment, ``**`` across segments). The build checks afterwards that every
shared object still finds each library it needs (:mod:`engine.layer.check`), so a rule that
removes something still loaded fails the build rather than a cold start.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.layer.elf import ElfError, is_elf, read_elf
from engine.layer.target import Target

__all__ = ["TRIM_RULES", "StripResult", "TrimRule", "dedupe_shared_objects", "strip_pyarrow",
           "trim"]


@dataclass(frozen=True)
class TrimRule:
    """Files removed from the layer, and why the runtime never needs them.

    Attributes:
        name: a short label for the size report.
        why: the reason, one line.
        globs: patterns over ``python/``-relative POSIX paths.
    """

    name: str
    why: str
    globs: tuple[str, ...]

    def matches(self, relpath: str) -> bool:
        """Whether ``relpath`` (POSIX, relative to ``python/``) is removed by this rule."""
        return any(_compiled(glob).match(relpath) for glob in self.globs)


TRIM_RULES: tuple[TrimRule, ...] = (
    TrimRule("bytecode", "compiled for the build machine's Python, not the runtime's; "
             "/opt is read-only so the runtime cannot use or rewrite them",
             ("**/__pycache__/**", "**/*.pyc")),
    TrimRule("pyarrow tests", "pyarrow's test suite and its C++ test module",
             ("pyarrow/tests/**", "pyarrow/_pyarrow_cpp_tests*")),
    TrimRule("pyarrow headers and sources", "C++ headers and Cython sources for building "
             "extensions against pyarrow",
             ("pyarrow/include/**", "pyarrow/src/**", "pyarrow/includes/**",
              "pyarrow/**/*.pyx", "pyarrow/**/*.pxd", "pyarrow/**/*.pxi")),
    TrimRule("pyarrow flight", "Arrow Flight RPC: the engine never imports pyarrow.flight",
             ("pyarrow/*flight*",)),
    TrimRule("pyarrow s3fs", "Arrow's own S3 filesystem: the engine reaches S3 through "
             "botocore, and pyarrow.fs imports it only if present",
             ("pyarrow/libarrow_s3.so*", "pyarrow/_s3fs.*")),
    TrimRule("numpy tests and f2py", "numpy's test suites and the extension modules only they "
             "import, f2py, and the C headers, Cython declarations, examples and static library "
             "for building extensions",
             ("numpy/**/tests/**", "numpy/conftest.py", "numpy/_core/_*_tests.*",
              "numpy/_core/_simd.*", "numpy/f2py/**", "numpy/_core/include/**",
              "numpy/_core/lib/**", "numpy/distutils/**", "numpy/_pyinstaller/**",
              "numpy/random/_examples/**", "numpy/**/*.pxd", "numpy/**/*.pyx")),
    TrimRule("zstandard cffi", "zstandard's CFFI backend: CPython loads its C backend",
             ("zstandard/_cffi.*", "zstandard/backend_cffi.py")),
    TrimRule("powertools swagger ui", "the Swagger UI assets of Powertools' REST event handler; "
             "the handlers serve no API",
             ("aws_lambda_powertools/event_handler/openapi/swagger_ui/*.js",
              "aws_lambda_powertools/event_handler/openapi/swagger_ui/*.css")),
    TrimRule("type stubs", ".pyi files are read by type checkers, never imported",
             ("**/*.pyi",)),
)

_SO_NAME = re.compile(r"^(?P<stem>.+?\.so)(?:\.\d+)*$")


def trim(root: Path, rules: tuple[TrimRule, ...] = TRIM_RULES) -> dict[str, list[Path]]:
    """Remove every file under ``root`` that a rule matches.

    Returns:
        The removed files by rule name (paths relative to ``root``), each file under its first
        matching rule. Empty directories left behind are removed too.
    """
    removed: dict[str, list[Path]] = {rule.name: [] for rule in rules}
    for path in sorted(_files(root)):
        relpath = path.relative_to(root).as_posix()
        rule = next((r for r in rules if r.matches(relpath)), None)
        if rule is not None:
            removed[rule.name].append(Path(relpath))
            path.unlink()
    _remove_empty_dirs(root)
    return removed


def dedupe_shared_objects(root: Path) -> list[Path]:
    """Remove byte-identical copies of a shared library under its other names.

    Wheels cannot hold symlinks, so ``libarrow_python.so`` ships three times (``.so``,
    ``.so.2600``, ``.so.2600.1.0``). The copy named by its ``DT_SONAME`` is the one the loader
    opens; the others serve only to link new extensions against it.

    Returns:
        The removed files, relative to ``root``.
    """
    groups: dict[tuple[Path, str], list[Path]] = {}
    for path in _files(root):
        match = _SO_NAME.match(path.name)
        if match and is_elf(path):
            groups.setdefault((path.parent, match["stem"]), []).append(path)
    removed: list[Path] = []
    for (folder, _stem), paths in sorted(groups.items()):
        if len(paths) < 2:
            continue
        try:
            soname = read_elf(paths[0]).soname
        except ElfError:
            continue
        keep = folder / soname if soname else None
        if keep is None or keep not in paths:
            continue
        digest = sha256_file(keep)
        for path in sorted(paths):
            if path != keep and path.stat().st_size == keep.stat().st_size \
                    and sha256_file(path) == digest:
                removed.append(path.relative_to(root))
                path.unlink()
    return removed


@dataclass(frozen=True)
class StripResult:
    """What stripping did.

    Attributes:
        tool: the strip command used, or None when none could strip the target's objects.
        files: how many shared objects were stripped.
        saved: bytes saved.
        note: why nothing was stripped, when ``tool`` is None.
    """

    tool: str | None
    files: int = 0
    saved: int = 0
    note: str = ""


def strip_pyarrow(root: Path, target: Target,
                  which: Callable[[str], str | None] = shutil.which) -> StripResult:
    """Strip pyarrow's shared objects with the first tool that handles the target's machine.

    Only pyarrow's: numpy's bundled OpenBLAS breaks when stripped, and the other extensions
    are small. ``--strip-unneeded`` keeps the dynamic symbol table the loader needs.
    """
    objects = sorted(p for p in (root / "pyarrow").rglob("*.so*") if p.is_file() and is_elf(p))
    if not objects:
        return StripResult(tool=None, note="no pyarrow shared objects")
    tried: list[str] = []
    for tool in target.strip_tools():
        command = which(tool)
        if command is None:
            tried.append(f"{tool} (not installed)")
            continue
        before = sum(p.stat().st_size for p in objects)
        result = subprocess.run([command, "--strip-unneeded", *map(str, objects)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:  # e.g. the host's strip on another machine's objects
            tried.append(f"{tool} (cannot read {target.machine} objects)")
            continue
        after = sum(p.stat().st_size for p in objects)
        return StripResult(tool=tool, files=len(objects), saved=before - after)
    hint = (" (Debian/Ubuntu: apt-get install binutils-aarch64-linux-gnu)"
            if target.machine == "aarch64" else "")
    return StripResult(tool=None, note=f"pyarrow not stripped: no strip tool for "
                                       f"{target.machine} ({', '.join(tried)}){hint}")


def _files(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*") if p.is_file() or p.is_symlink())


def _remove_empty_dirs(root: Path) -> None:
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in blocks."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


_GLOBS: dict[str, re.Pattern[str]] = {}


def _compiled(glob: str) -> re.Pattern[str]:
    pattern = _GLOBS.get(glob)
    if pattern is None:
        out = []
        # "/**/" and a leading "**/" match zero or more whole segments, a trailing "/**"
        # everything below, "*" anything within one segment.
        for part in re.split(r"(/\*\*/|^\*\*/|/\*\*$|\*)", glob):
            if part == "/**/":
                out.append(r"/(?:.*/)?")
            elif part == "**/":
                out.append(r"(?:.*/)?")
            elif part == "/**":
                out.append(r"/.*")
            elif part == "*":
                out.append(r"[^/]*")
            else:
                out.append(re.escape(part))
        pattern = _GLOBS[glob] = re.compile("".join(out) + r"\Z")
    return pattern
