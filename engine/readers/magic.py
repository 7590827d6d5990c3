"""Files that are not text, known by their first bytes: Parquet to read, the rest to refuse.

A spreadsheet, an archive or an image given as input must fail with a message that names it,
not as "invalid UTF-8" somewhere in a made-up CSV record. :func:`known_binary` looks at the head
of the decompressed input (so a ``.gz`` holding an ``.xlsx`` is named the same way). Signatures
made only of printable characters (``PAR1``, ``ORC``, ``BZh91AY&SY``...) also need control bytes
in the head: a CSV whose header happens to start with ``ORC`` stays a CSV. Only a few
signatures are needed to be useful: the formats a data engineer is likely to drop in a bucket by
mistake (spreadsheets, archives, other columnar formats, documents, images).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["KnownFormat", "known_binary", "looks_binary"]

#: Bytes at the head of an input looked at for control characters.
_PROBE_BYTES = 65536

#: C0 control characters that text does not hold (tab, line breaks, form feed and escape can).
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")


@dataclass(frozen=True)
class KnownFormat:
    """A binary format recognised by its signature.

    Attributes:
        name: short name, ``parquet`` for the one format that is read.
        what: the format as a message names it ("an Excel workbook (.xlsx)").
        hint: what to do instead.
    """

    name: str
    what: str
    hint: str

    def message(self) -> str:
        """The refusal, naming the format and the way out."""
        return f"{self.what}, not CSV, JSON or Parquet: {self.hint}"


_EXPORT = "export it as CSV (or Parquet) first"
_EXTRACT = "extract the file inside it first"
_UNSUPPORTED = "convert it to CSV, JSON or Parquet first"


def _compressed(name: str, suffix: str) -> KnownFormat:
    hint = (f"name the file with a {suffix} suffix or pass --input-compression {name} (if it "
            "has one, it was compressed twice)" if suffix
            else "decompress it first (not a supported compression)")
    return KnownFormat(name, f"{name}-compressed data", hint)


#: (offset, signature, needs control bytes, format). Checked in order.
_SIGNATURES: tuple[tuple[int, bytes, bool, KnownFormat], ...] = (
    (0, b"PAR1", True, KnownFormat("parquet", "a Parquet file", "")),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", False,
     KnownFormat("ole2", "a Microsoft Office 97-2003 file (OLE2: .xls, .doc)", _EXPORT)),
    (0, b"\x1f\x8b", False, _compressed("gzip", ".gz")),
    (0, b"\x28\xb5\x2f\xfd", False, _compressed("zstd", ".zst")),
    (0, b"BZh", True, _compressed("bz2", ".bz2")),
    (0, b"\xfd7zXZ\x00", False, _compressed("xz", "")),
    (0, b"\x04\x22\x4d\x18", False, _compressed("lz4", "")),
    (0, b"7z\xbc\xaf\x27\x1c", False, KnownFormat("7z", "a 7-Zip archive", _EXTRACT)),
    (0, b"Rar!\x1a\x07", False, KnownFormat("rar", "a RAR archive", _EXTRACT)),
    (257, b"ustar", False, KnownFormat("tar", "a tar archive", _EXTRACT)),
    (0, b"ORC", True, KnownFormat("orc", "an ORC file", _UNSUPPORTED)),
    (0, b"Obj\x01", False, KnownFormat("avro", "an Avro container file", _UNSUPPORTED)),
    (0, b"ARROW1", True, KnownFormat("arrow", "an Arrow IPC (Feather) file", _UNSUPPORTED)),
    (0, b"SQLite format 3\x00", False, KnownFormat("sqlite", "an SQLite database",
                                                   _UNSUPPORTED)),
    (0, b"\x89HDF\r\n\x1a\n", False, KnownFormat("hdf5", "an HDF5 file", _UNSUPPORTED)),
    (0, b"%PDF-", False, KnownFormat("pdf", "a PDF document", _UNSUPPORTED)),
    (0, b"\x89PNG\r\n\x1a\n", False, KnownFormat("png", "a PNG image", _UNSUPPORTED)),
    (0, b"\xff\xd8\xff", False, KnownFormat("jpeg", "a JPEG image", _UNSUPPORTED)),
    (0, b"GIF8", True, KnownFormat("gif", "a GIF image", _UNSUPPORTED)),
    (0, b"II*\x00", False, KnownFormat("tiff", "a TIFF image", _UNSUPPORTED)),
    (0, b"MM\x00*", False, KnownFormat("tiff", "a TIFF image", _UNSUPPORTED)),
    (0, b"\x7fELF", False, KnownFormat("elf", "an executable (ELF)", _UNSUPPORTED)),
)

_ZIP = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")

#: Inside a ZIP archive: (what the head holds, the format). Office files are ZIP archives whose
#: entry names (in the local headers, near the start) or ``mimetype`` entry say what they are.
_ZIP_KINDS: tuple[tuple[bytes, KnownFormat], ...] = (
    (b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet",
     KnownFormat("ods", "an OpenDocument spreadsheet (.ods, a ZIP archive)", _EXPORT)),
    (b"mimetypeapplication/vnd.oasis.opendocument.",
     KnownFormat("odf", "an OpenDocument file (a ZIP archive)", _UNSUPPORTED)),
    (b"xl/", KnownFormat("xlsx", "an Excel workbook (.xlsx, a ZIP archive)", _EXPORT)),
    (b"word/", KnownFormat("docx", "a Word document (.docx, a ZIP archive)", _UNSUPPORTED)),
    (b"ppt/", KnownFormat("pptx", "a PowerPoint file (.pptx, a ZIP archive)", _UNSUPPORTED)),
)
_ZIP_ARCHIVE = KnownFormat("zip", "a ZIP archive", _EXTRACT)


def looks_binary(head: bytes) -> bool:
    r"""Whether ``head`` holds control bytes that text does not (NUL, ``\x01``...).

    Example:
        >>> looks_binary(b"id,name\r\n1,\x1b[1mbold\x1b[0m\n"), looks_binary(b"PAR1\x15\x04")
        (False, True)

    """
    return _CONTROL.search(head, 0, _PROBE_BYTES) is not None


def known_binary(head: bytes) -> KnownFormat | None:
    r"""The binary format ``head`` (the first bytes of the decompressed input) starts with.

    Example:
        >>> known_binary(b"PK\x03\x04\x14\x00\x06\x00" + b"xl/workbook.xml").name
        'xlsx'
        >>> known_binary(b"ORCHARD,PEAR\n1,2\n") is None
        True

    """
    if head[:4] in _ZIP:
        for marker, kind in _ZIP_KINDS:
            if marker in head:
                return kind
        return _ZIP_ARCHIVE
    binary: bool | None = None
    for offset, signature, needs_control, kind in _SIGNATURES:
        if head[offset:offset + len(signature)] != signature:
            continue
        if needs_control:
            binary = looks_binary(head) if binary is None else binary
            if not binary:
                continue
        if kind.name == "ole2" and "Workbook".encode("utf-16-le") in head:
            return KnownFormat("xls", "an Excel 97-2003 workbook (.xls, OLE2)", _EXPORT)
        return kind
    return None
