"""What a layer is built for: a Lambda Python runtime on one architecture.

The runtime fixes the operating system and so the newest glibc a wheel may need: python3.11
runs on Amazon Linux 2 (glibc 2.26), python3.12 and later on Amazon Linux 2023 (glibc 2.34).
pip is asked for wheels of every manylinux tag up to that glibc (``manylinux_2_17`` …
``manylinux_2_34``, and the legacy ``manylinux2014`` names), never for source distributions.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass

from engine.layer.errors import LayerTargetError

__all__ = ["ARCHITECTURES", "DEFAULT_ARCH", "DEFAULT_PYTHON", "LAMBDA_PYTHONS", "Target"]

#: What the template deploys (ADR-007, ADR-008): the default target of ``chunkwise layer build``.
DEFAULT_PYTHON = "3.13"
DEFAULT_ARCH = "arm64"

#: Lambda's name for an architecture → the machine name in wheel tags and ``uname -m``.
ARCHITECTURES = {"arm64": "aarch64", "x86_64": "x86_64"}
_ALIASES = {"aarch64": "arm64", "amd64": "x86_64", "x86-64": "x86_64"}

#: The Lambda Python runtimes: the OS each runs on and that OS's glibc.
LAMBDA_PYTHONS: dict[tuple[int, int], tuple[str, tuple[int, int]]] = {
    (3, 11): ("Amazon Linux 2", (2, 26)),
    (3, 12): ("Amazon Linux 2023", (2, 34)),
    (3, 13): ("Amazon Linux 2023", (2, 34)),
    (3, 14): ("Amazon Linux 2023", (2, 34)),
}

#: ELF ``e_machine`` values (the ELF specification's EM_* constants).
ELF_MACHINES = {"aarch64": 183, "x86_64": 62}

# The oldest manylinux glibc per machine: aarch64 wheels start at manylinux2014 (glibc 2.17).
_MIN_GLIBC_MINOR = {"aarch64": 17, "x86_64": 5}
# PEP 600's aliases for the legacy manylinux names.
_LEGACY_TAGS = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}


@dataclass(frozen=True)
class Target:
    """A Lambda Python runtime on one architecture.

    Attributes:
        python: ``(major, minor)``, e.g. ``(3, 13)``.
        arch: Lambda's architecture name, ``"arm64"`` or ``"x86_64"``.
        glibc: the newest glibc a wheel may need, ``(2, 34)`` on Amazon Linux 2023.
    """

    python: tuple[int, int]
    arch: str
    glibc: tuple[int, int]

    @classmethod
    def parse(cls, python: str = DEFAULT_PYTHON, arch: str = DEFAULT_ARCH,
              glibc: str | None = None) -> Target:
        """The target for ``--python``, ``--arch`` and an optional ``--glibc`` override.

        Raises:
            LayerTargetError: an architecture Lambda does not have, a Python it does not run,
                or a malformed version.
        """
        name = _ALIASES.get(arch.strip().lower(), arch.strip().lower())
        if name not in ARCHITECTURES:
            raise LayerTargetError(
                f"unknown architecture {arch!r}: Lambda runs {' or '.join(ARCHITECTURES)}")
        version = _version(python, "Python version", "3.13")
        if version not in LAMBDA_PYTHONS:
            known = ", ".join(f"{a}.{b}" for a, b in LAMBDA_PYTHONS)
            raise LayerTargetError(
                f"no Lambda runtime for Python {python!r}: the engine supports {known}")
        libc = _version(glibc, "glibc version", "2.34") if glibc else LAMBDA_PYTHONS[version][1]
        if libc[0] != 2 or libc[1] < _MIN_GLIBC_MINOR[ARCHITECTURES[name]]:
            raise LayerTargetError(f"glibc {glibc} is older than any manylinux wheel for {name}")
        return cls(python=version, arch=name, glibc=libc)

    @classmethod
    def host(cls) -> Target:
        """This machine: the running Python, its architecture and its glibc.

        Raises:
            LayerTargetError: not a glibc Linux on a Lambda architecture.
        """
        libc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
        if not libc or not libc.startswith("glibc "):
            raise LayerTargetError("the host is not a glibc Linux: build for a Lambda target")
        return cls.parse(f"{sys.version_info[0]}.{sys.version_info[1]}", platform.machine(),
                         glibc=libc.split()[1])

    @property
    def machine(self) -> str:
        """The machine name in wheel tags: ``aarch64`` or ``x86_64``."""
        return ARCHITECTURES[self.arch]

    @property
    def elf_machine(self) -> int:
        """The ELF ``e_machine`` every shared object of the layer must carry."""
        return ELF_MACHINES[self.machine]

    @property
    def python_version(self) -> str:
        """``"3.13"``."""
        return f"{self.python[0]}.{self.python[1]}"

    @property
    def runtime(self) -> str:
        """Lambda's runtime identifier, ``python3.13``."""
        return f"python{self.python_version}"

    @property
    def os_name(self) -> str:
        """The operating system of the runtime, ``Amazon Linux 2023``."""
        return LAMBDA_PYTHONS[self.python][0]

    @property
    def key(self) -> str:
        """A name for caches and reports: ``cp313-manylinux_2_34_aarch64``."""
        return f"cp{self.python[0]}{self.python[1]}-manylinux_2_{self.glibc[1]}_{self.machine}"

    def platform_tags(self) -> list[str]:
        """Every manylinux platform tag a wheel for this target may carry, newest first."""
        low = _MIN_GLIBC_MINOR[self.machine]
        tags = [f"manylinux_2_{minor}_{self.machine}"
                for minor in range(self.glibc[1], low - 1, -1)]
        tags += [f"{name}_{self.machine}" for name, minor in _LEGACY_TAGS.items()
                 if low <= minor <= self.glibc[1]]
        return tags

    def pip_args(self) -> list[str]:
        """Options for pip's cross-platform download: binary wheels for this target only."""
        cp = f"cp{self.python[0]}{self.python[1]}"
        args = ["--only-binary=:all:", "--implementation", "cp",
                "--python-version", self.python_version,
                "--abi", cp, "--abi", "abi3", "--abi", "none"]
        for tag in self.platform_tags():
            args += ["--platform", tag]
        return args

    def strip_tools(self) -> list[str]:
        """Commands that may strip this target's shared objects, in order of preference."""
        tools = ["strip"] if platform.machine() == self.machine else []
        return [*tools, f"{self.machine}-linux-gnu-strip", "llvm-strip"]

    def __str__(self) -> str:
        glibc = f"glibc ≤ 2.{self.glibc[1]}"
        if self.glibc == LAMBDA_PYTHONS[self.python][1]:
            return f"{self.runtime} {self.arch} ({self.os_name}, {glibc})"
        return f"{self.runtime} {self.arch} ({glibc})"


def _version(text: str, what: str, example: str) -> tuple[int, int]:
    parts = text.strip().removeprefix("python").split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise LayerTargetError(f"invalid {what} {text!r}: expected MAJOR.MINOR, e.g. {example}")
    return int(parts[0]), int(parts[1])
