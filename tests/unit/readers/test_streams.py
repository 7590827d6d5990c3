"""The byte streams readers take: a BOM dropped from any read pattern, buffers sized to input."""

from __future__ import annotations

import io

import pytest

from engine.readers.streams import UTF8_BOM, aligned_pieces, utf8_stream


class Trickle(io.RawIOBase):
    """Gives at most ``step`` bytes per call, as a network or decompressing stream may."""

    def __init__(self, data: bytes, step: int) -> None:
        super().__init__()
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buffer), self._step, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


@pytest.mark.parametrize("data", [b"", UTF8_BOM, UTF8_BOM + b"a", b"ab", b"\xef", b"\xef\xbb",
                                  b"\xef\xbbx", UTF8_BOM + b"abc,def\n1,2\n", b"a,b\n",
                                  UTF8_BOM[:2] + b"zz"])
@pytest.mark.parametrize("step", [1, 2, 3, 100])
@pytest.mark.parametrize("size", [3, 4, 1000])
def test_a_bom_is_dropped_whatever_the_reads(data: bytes, step: int, size: int):
    stream = utf8_stream(Trickle(data, step), "utf-8", "mem")
    out, buf = b"", bytearray(size)
    while n := stream.readinto(memoryview(buf)):
        out += bytes(buf[:n])
    assert out == (data[3:] if data.startswith(UTF8_BOM) else data)


@pytest.mark.parametrize("expected", [None, 0, 10, 99, 100, 101, 5_000])
def test_pieces_are_whole_records_whatever_size_the_stream_expects(expected: int | None):
    """An ``expected_bytes`` too small only means a shorter first read: no record is lost."""
    data = b"".join(b"%d,x\n" % i for i in range(1_000))  # 4,890 bytes
    stream = utf8_stream(io.BytesIO(data), "utf-8", "mem", expected_bytes=expected)
    pieces = [bytes(p) for _, p, _ in aligned_pieces(
        stream, lambda buf, end: buf.rfind(b"\n", 0, end) + 1, block_size=1_000,
        max_record_bytes=1 << 20, uri="mem", first_record=lambda: 1)]
    assert b"".join(pieces) == data
    assert all(p.endswith(b"\n") for p in pieces)


@pytest.mark.parametrize("data", [b"", b"a\n", b"a,b\n1,2\n", b"a,b\n1,2", b"no break at all",
                                  b"x\n" + b"y" * 50])
@pytest.mark.parametrize("max_record_bytes", [10, 1 << 20])
def test_pieces_of_a_known_text_are_those_read_would_give(data: bytes, max_record_bytes: int):
    """A stream whose text is known in memory is cut from it, not copied: the same pieces."""
    def pieces(known: bytes | None) -> list[tuple[int, bytes, bool]] | str:
        counted = io.BytesIO(data)
        stream = utf8_stream(counted, "utf-8", "mem", expected_bytes=len(data), known_text=known)
        try:
            out = [(offset, bytes(p), last) for offset, p, last in aligned_pieces(
                stream, lambda buf, end: buf.rfind(b"\n", 0, end) + 1, block_size=1_000,
                max_record_bytes=max_record_bytes, uri="mem", first_record=lambda: 1)]
        except Exception as exc:  # noqa: BLE001 - the same error either way
            return f"{type(exc).__name__}: {exc}"
        assert counted.tell() == len(data)  # read to its end either way
        return out

    assert pieces(data) == pieces(None)


@pytest.mark.parametrize(("name", "text"), [
    ("small.csv", "id,name\n" + "".join(f"{i},n{i}\n" for i in range(200))),
    ("small.ndjson", "".join(f'{{"id": {i}, "name": "n{i}"}}\n' for i in range(200))),
])
def test_a_small_input_is_cut_from_the_bytes_already_read(
        name: str, text: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run keeps the head sample that is the whole input after inference, and cuts from it."""
    import engine
    from engine.readers import streams

    calls = []
    real = streams._known_pieces

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(streams, "_known_pieces", counted)
    src = tmp_path / name
    src.write_text(text, encoding="utf-8")
    report = engine.transform(str(src), str(tmp_path / "out.parquet"))
    assert report.rows_out == 200 and calls
