"""Rewrite a generated orders CSV into data unlike it: timezone offsets, CRLF, more unicode.

    chunkwise gen orders --size 185MB -o /tmp/orders185.csv
    python benchmarks/offsets_csv.py /tmp/orders185.csv /tmp/offsets.csv   # ~200 MB

Every ``...Z`` timestamp gets ``+02:00`` and ``-05:00`` in turn, every line break (those inside
quoted notes too) becomes CRLF, and one frequent note gains non-ASCII text. The generated orders
already hold quoted fields with embedded newlines. This is the "data with timezone offsets" of
issue 17 (docs/performance.md, "What worker threads cost"). Standard library only.
"""

from __future__ import annotations

import re
import sys
from itertools import count

_TIMESTAMP = re.compile(rb"(T\d\d:\d\d:\d\d(?:\.\d+)?)Z,")
_OFFSETS = (b"+02:00,", b"-05:00,")
_NOTE = (b"Express shipping", "Express shipping — Zürich ✓".encode())


def to_offsets(src: str, dst: str, *, block: int = 8 << 20) -> int:
    """Write ``src`` rewritten to ``dst``; return the timestamps given an offset."""
    turn = count()

    def offset(match: re.Match[bytes]) -> bytes:
        return match.group(1) + _OFFSETS[next(turn) % 2]

    with open(src, "rb") as inp, open(dst, "wb") as out:
        rest = b""
        while data := inp.read(block):
            data = rest + data
            cut = data.rfind(b"\n") + 1  # whole lines only: a timestamp is never cut
            data, rest = data[:cut], data[cut:]
            data = _TIMESTAMP.sub(offset, data).replace(*_NOTE)
            out.write(data.replace(b"\n", b"\r\n"))
        out.write(_TIMESTAMP.sub(offset, rest).replace(*_NOTE).replace(b"\n", b"\r\n"))
    return next(turn)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(f"{to_offsets(sys.argv[1], sys.argv[2]):,} timestamps with offsets")
