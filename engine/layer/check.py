"""Check a layer's shared objects: the target's machine, and every NEEDED library found.

A library counts as found when the loader would find it: in one of the object's own
``RUNPATH``/``RPATH`` directories inside the layer (``$ORIGIN`` expanded), or among the system
libraries of the runtime's OS (:data:`SYSTEM_LIBRARIES`). That is stricter than the loader,
which also reuses a library already loaded under the same SONAME, so a pass here is a pass
there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.layer.elf import ElfError, is_elf, read_elf
from engine.layer.target import ELF_MACHINES, Target

__all__ = ["SYSTEM_LIBRARIES", "ElfProblem", "check_layer", "elf_files"]

#: Libraries the Lambda Python runtimes' OS provides in /lib64 and /usr/lib64 on both
#: architectures. Amazon Linux 2023 (python3.12+) and Amazon Linux 2 (python3.11) both ship
#: glibc (libc, libm, libpthread, libdl, librt, libutil, libresolv and the dynamic loader),
#: libgcc_s and libstdc++ (the runtime's own Python links them), and zlib. This is also the
#: core of the manylinux policy's allow-list, which is why wheels may NEED them without
#: bundling them. Anything else (libgfortran, OpenBLAS, libyajl) must come inside the layer:
#: auditwheel vendors such libraries into ``<package>.libs/`` and points a RUNPATH at them.
SYSTEM_LIBRARIES = frozenset({
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
    "libresolv.so.2", "libgcc_s.so.1", "libstdc++.so.6", "libz.so.1",
    "ld-linux-aarch64.so.1", "ld-linux-x86-64.so.2",
})

_MACHINE_NAMES = {number: name for name, number in ELF_MACHINES.items()}


@dataclass(frozen=True)
class ElfProblem:
    """One shared object that would fail to load on the target.

    Attributes:
        path: relative to the layer's ``python/`` directory.
        problem: what is wrong, one line.
    """

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def elf_files(root: Path) -> list[Path]:
    """Every ELF file under ``root``, sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and is_elf(p))


def check_layer(root: Path, target: Target) -> list[ElfProblem]:
    """The problems of every ELF file under ``root`` (the layer's ``python/``) for ``target``."""
    problems: list[ElfProblem] = []
    resolved_root = root.resolve()
    for path in elf_files(root):
        relpath = path.relative_to(root).as_posix()
        try:
            info = read_elf(path)
        except ElfError as exc:
            problems.append(ElfProblem(relpath, f"unreadable ELF headers: {exc}"))
            continue
        if info.machine != target.elf_machine:
            machine = _MACHINE_NAMES.get(info.machine, f"e_machine {info.machine}")
            problems.append(ElfProblem(relpath, f"built for {machine}, not {target.machine}"))
        folders = [_expand(entry, path.parent) for entry in info.search_path]
        for library in info.needed:
            if library in SYSTEM_LIBRARIES:
                continue
            if any(_inside(folder / library, resolved_root) for folder in folders):
                continue
            where = ", ".join(info.search_path) or "no RUNPATH"
            problems.append(ElfProblem(
                relpath, f"needs {library}: not in its search path ({where}) inside the "
                         f"layer, nor a system library of {target.os_name}"))
    return problems


def _expand(entry: str, origin: Path) -> Path:
    text = entry.replace("${ORIGIN}", str(origin)).replace("$ORIGIN", str(origin))
    return Path(os.path.normpath(text))


def _inside(candidate: Path, root: Path) -> bool:
    if not candidate.is_file():
        return False
    try:
        candidate.resolve().relative_to(root)
    except ValueError:  # an absolute RUNPATH outside the layer: not something the layer ships
        return False
    return True
