"""Just enough of an ELF reader to check a layer: the machine, the SONAME, NEEDED and RUNPATH.

Pure standard library (``struct``), 32/64-bit and either byte order. The dynamic section is
found through the section headers (``SHT_DYNAMIC``, whose ``sh_link`` is its string table); a
``strip --strip-unneeded`` keeps both. Field layouts are those of the System V ABI's ``elf.h``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

__all__ = ["ELF_MAGIC", "ElfError", "ElfInfo", "is_elf", "read_elf"]

ELF_MAGIC = b"\x7fELF"

_SHT_DYNAMIC = 6
_DT_NULL, _DT_NEEDED, _DT_SONAME, _DT_RPATH, _DT_RUNPATH = 0, 1, 14, 15, 29

# (header after e_ident, section header, dynamic entry) per ELF class: 1 = 32-bit, 2 = 64-bit.
_LAYOUTS = {
    1: ("HHIIIIIHHHHHH", "IIIIIIIIII", "iI"),
    2: ("HHIQQQIHHHHHH", "IIQQQQIIQQ", "qQ"),
}


class ElfError(ValueError):
    """The file starts like an ELF object but its headers are truncated or inconsistent."""


@dataclass(frozen=True)
class ElfInfo:
    """What the dynamic loader reads from a shared object.

    Attributes:
        machine: ``e_machine`` (183 aarch64, 62 x86_64).
        soname: ``DT_SONAME``, the name other objects must NEED it by, if any.
        needed: ``DT_NEEDED``, the libraries it loads, in order.
        search_path: ``DT_RUNPATH`` (else ``DT_RPATH``) entries, ``$ORIGIN`` unexpanded.
    """

    machine: int
    soname: str | None = None
    needed: tuple[str, ...] = ()
    search_path: tuple[str, ...] = field(default=())


def is_elf(path: Path) -> bool:
    """Whether ``path`` is a regular file that starts with the ELF magic."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == ELF_MAGIC
    except (IsADirectoryError, PermissionError, FileNotFoundError):
        return False


def read_elf(path: Path) -> ElfInfo:
    """The machine and the dynamic-section entries of the ELF file at ``path``.

    Raises:
        ElfError: not an ELF file, or headers that point outside it.
    """
    with path.open("rb") as fh:
        return _read(fh, path.stat().st_size)


def _read(fh: BinaryIO, size: int) -> ElfInfo:
    ident = fh.read(16)
    if len(ident) < 16 or ident[:4] != ELF_MAGIC:
        raise ElfError("not an ELF file")
    klass, data = ident[4], ident[5]
    if klass not in _LAYOUTS or data not in (1, 2):
        raise ElfError(f"unknown ELF class {klass} or byte order {data}")
    order = "<" if data == 1 else ">"
    header_fmt, section_fmt, dyn_fmt = (order + f for f in _LAYOUTS[klass])
    header = _unpack(fh, header_fmt, 16, size)
    machine, shoff, shentsize, shnum = header[1], header[5], header[10], header[11]
    if shoff == 0:  # no section headers: nothing to read the dynamic section through
        return ElfInfo(machine=machine)
    if shnum == 0:  # extended numbering: the count is in section 0's sh_size
        shnum = _unpack(fh, section_fmt, shoff, size)[5]
    sections = [_unpack(fh, section_fmt, shoff + i * shentsize, size) for i in range(shnum)]
    dynamic = next((s for s in sections if s[1] == _SHT_DYNAMIC), None)
    if dynamic is None:  # a static object
        return ElfInfo(machine=machine)
    if dynamic[6] >= len(sections):
        raise ElfError("the dynamic section's string table index is out of range")
    strtab = sections[dynamic[6]]
    strings = _read_at(fh, strtab[4], strtab[5], size)
    entry_size = struct.calcsize(dyn_fmt)
    raw = _read_at(fh, dynamic[4], dynamic[5], size)
    soname: str | None = None
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    for offset in range(0, len(raw) - entry_size + 1, entry_size):
        tag, value = struct.unpack_from(dyn_fmt, raw, offset)
        if tag == _DT_NULL:
            break
        if tag == _DT_NEEDED:
            needed.append(_string(strings, value))
        elif tag == _DT_SONAME:
            soname = _string(strings, value)
        elif tag == _DT_RPATH:
            rpath += _string(strings, value).split(":")
        elif tag == _DT_RUNPATH:
            runpath += _string(strings, value).split(":")
    # The loader ignores DT_RPATH when DT_RUNPATH is present.
    path = tuple(p for p in (runpath or rpath) if p)
    return ElfInfo(machine=machine, soname=soname, needed=tuple(needed), search_path=path)


def _unpack(fh: BinaryIO, fmt: str, offset: int, size: int) -> tuple[int, ...]:
    return struct.unpack(fmt, _read_at(fh, offset, struct.calcsize(fmt), size))


def _read_at(fh: BinaryIO, offset: int, length: int, size: int) -> bytes:
    if offset < 0 or length < 0 or offset + length > size:
        raise ElfError(f"header points outside the file ({offset}+{length} > {size} bytes)")
    fh.seek(offset)
    return fh.read(length)


def _string(table: bytes, index: int) -> str:
    if index >= len(table):
        raise ElfError("a dynamic entry points outside its string table")
    end = table.find(b"\x00", index)
    return table[index:end if end >= 0 else len(table)].decode("utf-8", "replace")
