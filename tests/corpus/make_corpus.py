"""Generate the bad-input corpus: every input ``expectations.csv`` lists, byte for byte.

Each input is built by a function of this module from fixed seeds, so the corpus is the same on
every run and nothing is hand-pasted. The test (``test_corpus.py``) generates it into a temporary
directory; to look at the files::

    python tests/corpus/make_corpus.py /tmp/corpus            # the small inputs
    python tests/corpus/make_corpus.py /tmp/corpus --large    # and the large ones (~1 GB)

Large inputs (a 200 MB single line, 100,000 columns) are streamed to disk, never built in
memory, and only generated at test time. Compressed inputs are built with the standard library's
gzip and bz2 (``mtime=0``: no timestamp in the header) and zstandard with a content checksum (as
the ``zstd`` command writes by default: without one, zstd cannot tell corrupt data from good).
"""

from __future__ import annotations

import bz2
import gzip
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

import zstandard

MB = 10**6

#: Rows of the well-formed payload that the compression cases truncate or corrupt.
PAYLOAD_ROWS = 2000

#: Size of the single-line inputs (the issue's "200 MB single line").
LONG_LINE_BYTES = 200 * MB

#: Columns of the wide inputs.
WIDE_COLUMNS = 100_000

#: Nesting of the deep JSON inputs.
DEEP = 10_000


def payload_csv() -> bytes:
    """A small, valid CSV: the plaintext of the compression cases."""
    rng = random.Random(7)
    rows = [b"id,name,amount,when"]
    for i in range(PAYLOAD_ROWS):
        rows.append(b"%d,name-%d,%d.%02d,2024-01-%02d" % (
            i, rng.randrange(10**6), rng.randrange(10**4), rng.randrange(100), 1 + i % 28))
    return b"\n".join(rows) + b"\n"


def payload_ndjson() -> bytes:
    """The same rows as NDJSON."""
    rng = random.Random(7)
    return b"".join(json.dumps({"id": i, "name": f"name-{rng.randrange(10**6)}",
                                "amount": rng.randrange(10**6) / 100}).encode() + b"\n"
                    for i in range(PAYLOAD_ROWS))


def payload_json() -> bytes:
    """The same rows as a JSON array."""
    return b"[" + payload_ndjson().rstrip(b"\n").replace(b"\n", b",\n") + b"]"


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3, write_checksum=True).compress(data)


def _flip(data: bytes, at: float) -> bytes:
    """``data`` with every bit of the byte at fraction ``at`` of its length inverted."""
    out = bytearray(data)
    out[int(len(out) * at)] ^= 0xFF
    return bytes(out)


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def _deep_array(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


#: The small inputs: file name -> its bytes.
SMALL: dict[str, Callable[[], bytes]] = {
    # -- compression: truncated, corrupt, mislabelled
    "truncated.csv.gz": lambda: _half(_gzip(payload_csv())),
    "corrupt.csv.gz": lambda: _flip(_gzip(payload_csv()), 0.5),
    "header-only.csv.gz": lambda: _gzip(payload_csv())[:10],
    "trailing-garbage.csv.gz": lambda: _gzip(payload_csv()) + b"not gzip at all",
    "not-gzip.csv.gz": payload_csv,
    "truncated.ndjson.gz": lambda: _half(_gzip(payload_ndjson())),
    "truncated.csv.bz2": lambda: _half(bz2.compress(payload_csv())),
    "corrupt.csv.bz2": lambda: _flip(bz2.compress(payload_csv()), 0.5),
    "truncated.csv.zst": lambda: _half(_zstd(payload_csv())),
    "corrupt.csv.zst": lambda: _flip(_zstd(payload_csv()), 0.5),
    "corrupt-checksum.csv.zst": lambda: _flip(_zstd(payload_csv()), 0.99),
    "truncated.json.zst": lambda: _half(_zstd(payload_json())),
    "empty.csv.gz": lambda: _gzip(b""),
    # -- encodings
    "utf8-bad-header.csv": lambda: b"id,na\xffme,amount\n1,a,2\n",
    "utf8-bad-field.csv": lambda: b"id,name,amount\n1,ok,2\n2,b\xc3,3\n3,c,4\n",
    "utf8-bad-last-byte.csv": lambda: b"id,name,amount\n1,a,2\n2,b,3\xe2",
    "utf8-bad-field.ndjson": lambda: b'{"id":1,"name":"ok"}\n{"id":2,"name":"b\xc3"}\n',
    "utf8-bad-key.ndjson": lambda: b'{"i\xffd":1}\n{"id":2}\n',
    "utf8-bad-last-byte.json": lambda: b'[{"id":1},{"id":2,"name":"x"}]\xe2',
    "utf8-bad-field.json": lambda: b'[{"id":1,"name":"ok"},{"id":2,"name":"\xed\xa0\x80"}]',
    "utf16le-bom.csv": lambda: "id,name\n1,äbc\n2,def\n".encode("utf-16"),
    "utf16le-no-bom.csv": lambda: "id,name\n1,abc\n2,def\n".encode("utf-16-le"),
    "utf16be-no-bom.ndjson": lambda: '{"a":1}\n{"a":2}\n'.encode("utf-16-be"),
    "utf16le-no-bom.json": lambda: '[{"a":1},{"a":2}]'.encode("utf-16-le"),
    # -- not text at all
    "garbage.bin": lambda: random.Random(1).randbytes(64 * 1024),
    "garbage.csv": lambda: random.Random(2).randbytes(64 * 1024),
    "garbage.ndjson": lambda: random.Random(3).randbytes(64 * 1024),
    "garbage.json": lambda: b"[" + random.Random(4).randbytes(64 * 1024),
    # -- CSV structure
    "quote-unbalanced-eof.csv": lambda: b'id,name\n1,"abc\n2,def\n3,ghi\n',
    "nul-in-field.csv": lambda: b"id,name\n1,a\x00b\n2,c\n",
    "nul-in-header.csv": lambda: b"id,na\x00me\n1,a\n",
    "ragged.csv": lambda: b"id,name\n1,a\n2,b,extra\n3\n4,d\n",
    "header-only.csv": lambda: b"id,name\n",
    "empty.csv": lambda: b"",
    # -- JSON structure
    "nul-in-string.ndjson": lambda: b'{"a":"x"}\n{"a":"y\x00z"}\n{"a":"w"}\n',
    "nul-in-string.json": lambda: b'[{"a":"x"},{"a":"y\x00z"},{"a":"w"}]',
    "deep-object.ndjson": lambda: b'{"a":1}\n' + _deep_object(DEEP) + b'\n{"a":2}\n',
    "deep-array.ndjson": lambda: b'{"a":[1]}\n{"a":' + _deep_array(DEEP) + b'}\n{"a":[2]}\n',
    "deep-object.json": lambda: b'[{"a":1},' + _deep_object(DEEP) + b',{"a":2}]',
    "deep-array.json": lambda: b"[[1]," + _deep_array(DEEP) + b",[2]]",
    "deep-path.json": lambda: b'{"data":[{"a":1},' + _deep_object(DEEP) + b',{"a":2}]}',
    "duplicate-keys.ndjson": lambda: b'{"a":1}\n{"a":1,"a":2}\n{"a":3}\n',
    "duplicate-keys.json": lambda: b'[{"a":1},{"a":1,"a":2},{"a":3}]',
    "int-beyond-int64.ndjson": lambda: b'{"a":1}\n{"a":99999999999999999999999}\n',
    "int-beyond-int64.csv": lambda: b"a\n1\n99999999999999999999999\n",
    "float-beyond-float64.ndjson": lambda: b'{"a":1.5}\n{"a":1e400}\n{"a":-1e400}\n{"a":2.5}\n',
    "float-beyond-float64.json": lambda: b'[{"a":1.5},{"a":1e400},{"a":2.5}]',
    "float-beyond-float64.csv": lambda: b"a\n1.5\n1e400\ninf\n2.5\n",
    "lone-surrogate.ndjson": lambda: b'{"a":"x"}\n{"a":"\\ud800"}\n{"a":"\\ud83d\\ude00"}\n',
    "lone-surrogate.json": lambda: b'[{"a":"x"},{"a":"\\udc00y"},{"a":"\\ud83d\\ude00"}]',
    "array-unclosed.json": lambda: b'[{"a":1},{"a":2}',
    "array-then-ndjson.json": lambda: b'[{"a":1},{"a":2}]\n{"a":3}\n',
    "ndjson-with-array.ndjson": lambda: b'{"a":1}\n[{"a":2}]\n{"a":3}\n',
    "empty.ndjson": lambda: b"",
    "empty.json": lambda: b"",
}


def _write_long_line(path: Path, head: bytes, tail: bytes, size: int = LONG_LINE_BYTES) -> None:
    block = b"x" * MB
    with open(path, "wb") as out:
        out.write(head)
        for _ in range(size // MB):
            out.write(block)
        out.write(tail)


def _write_long_line_gz(path: Path) -> None:
    block = b"x" * MB
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1,
                                                mtime=0) as out:
        out.write(b"id,text\n1,")
        for _ in range(LONG_LINE_BYTES // MB):
            out.write(block)
        out.write(b"\n2,y\n")


def _write_wide_csv(path: Path) -> None:
    with open(path, "wb") as out:
        out.write(b",".join(b"c%d" % i for i in range(WIDE_COLUMNS)) + b"\n")
        out.write(b",".join(b"%d" % i for i in range(WIDE_COLUMNS)) + b"\n")


def _write_wide_ndjson(path: Path) -> None:
    with open(path, "wb") as out:
        out.write(b"{" + b",".join(b'"c%d":%d' % (i, i) for i in range(WIDE_COLUMNS)) + b"}\n")


#: The large inputs, streamed to a path: file name -> writer.
LARGE: dict[str, Callable[[Path], None]] = {
    "long-line.csv": lambda p: _write_long_line(p, b"id,text\n1,", b"\n2,y\n"),
    "long-line.csv.gz": _write_long_line_gz,
    "long-quote.csv": lambda p: _write_long_line(p, b'id,text\n1,"', b"\n2,y\n"),
    "long-line.ndjson": lambda p: _write_long_line(p, b'{"a":1}\n{"a":"', b'"}\n'),
    "long-line.json": lambda p: _write_long_line(p, b'[{"a":1},{"a":"', b'"}]'),
    "wide.csv": _write_wide_csv,
    "wide.ndjson": _write_wide_ndjson,
}


def write(name: str, directory: Path) -> Path:
    """Generate the input ``name`` into ``directory``; returns its path."""
    path = directory / name
    if name in SMALL:
        path.write_bytes(SMALL[name]())
    else:
        LARGE[name](path)
    return path


def main(argv: list[str]) -> int:
    """``make_corpus.py DIR [--large]``: write the corpus into DIR."""
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    directory = Path(args[0])
    directory.mkdir(parents=True, exist_ok=True)
    names = list(SMALL) + (list(LARGE) if "--large" in argv else [])
    for name in names:
        print(write(name, directory))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
