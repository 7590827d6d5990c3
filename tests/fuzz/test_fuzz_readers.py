"""Bounded fuzzing of every reader and compression wrapper through the public API.

hypothesis draws bytes: random ones, well-formed CSV/JSON built from values, and either of them
mutated (bytes flipped, inserted, cut), then compressed or not, and, compressed, cut or
corrupted. Each input goes through :func:`engine.transform` and :func:`engine.read_batches`.
The properties, whatever the bytes:

- the only exceptions are the engine's typed errors (:class:`engine.errors.EngineError`);
- a run that succeeds accounts for every record (``rows_in = rows_out + rows_rejected``), its
  Parquet holds ``rows_out`` rows and its rejects file ``rows_rejected`` lines, and
  ``read_batches`` yields the same ``rows_out`` rows;
- a run that fails leaves nothing in the output directory.

The budget is ``CHUNKWISE_FUZZ_EXAMPLES`` examples per target (default 300: under a minute for
the whole module on one core); every corpus input of ``tests/corpus`` is an explicit example
of the target it belongs to, so known hostile inputs run on every CI run whatever is drawn.
Failures hypothesis finds are kept in its example database (``.hypothesis/``) and replayed first.
"""

from __future__ import annotations

import bz2
import gzip
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import engine
from engine.errors import EngineError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))
import make_corpus  # noqa: E402

EXAMPLES = int(os.environ.get("CHUNKWISE_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])

#: Bytes that matter to the parsers, and some that should not be there.
SPECIAL = b'{}[],:"\\\n\r\t ;|0123456789.eE+-truefalsnl\x00\xff\xc3\xa9\xed\xa0\x80'

# ---------------------------------------------------------------------------------------------
# Strategies


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=4), inner, max_size=4), max_leaves=12)
objects = st.dictionaries(st.sampled_from(["a", "b", "c", "id", "é", ""]), json_values,
                          max_size=4)


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` with a few bytes flipped, inserted or cut out."""
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "insert", "cut"]))
        if op == "insert" or not data:
            data[at:at] = draw(st.binary(max_size=4) | st.sampled_from(
                [SPECIAL[i:i + 1] for i in range(len(SPECIAL))]))
        elif op == "flip":
            at = min(at, len(data) - 1)
            data[at] = draw(st.integers(0, 255))
        else:
            del data[at:at + draw(st.integers(1, 8))]
    return bytes(data)


def csv_text(rows: list[list[str]], delimiter: str) -> bytes:
    def cell(value: str) -> str:
        if any(c in value for c in f'"{delimiter}\n\r'):
            return '"' + value.replace('"', '""') + '"'
        return value

    return "".join(delimiter.join(cell(v) for v in row) + "\n" for row in rows).encode()


csv_cells = st.text(alphabet=st.sampled_from(list('ab1.-", \n;é')), max_size=6)
csv_docs = st.builds(
    lambda rows, d: csv_text(rows, d),
    st.lists(st.lists(csv_cells, min_size=1, max_size=4), min_size=1, max_size=12),
    st.sampled_from([",", ";"]))
ndjson_docs = st.lists(objects, max_size=10).map(
    lambda objs: b"".join(json.dumps(o, ensure_ascii=False).encode() + b"\n" for o in objs))
array_docs = st.lists(st.one_of(objects, json_values), max_size=10).map(
    lambda items: json.dumps(items, ensure_ascii=False).encode())
path_docs = array_docs.map(lambda doc: b'{"meta":{"x":[1,"]"]},"data":' + doc + b"}")

DOCS = {"csv": csv_docs, "ndjson": ndjson_docs, "json": array_docs, "json-path": path_docs}


def inputs(fmt: str) -> st.SearchStrategy[bytes]:
    """Random bytes, a well-formed document, or either mutated."""
    well_formed = DOCS[fmt]
    noise = st.binary(max_size=300) | st.lists(
        st.sampled_from([SPECIAL[i:i + 1] for i in range(len(SPECIAL))]), max_size=200
    ).map(b"".join)
    return st.one_of(well_formed, noise, well_formed.flatmap(mutated), noise.flatmap(mutated))


COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "bz2": bz2.compress,
    "zstd": lambda data: zstandard.ZstdCompressor(write_checksum=True).compress(data),
}
SUFFIX = {"gzip": ".gz", "bz2": ".bz2", "zstd": ".zst"}
EXTENSION = {"csv": ".csv", "ndjson": ".ndjson", "json": ".json", "json-path": ".json"}

# ---------------------------------------------------------------------------------------------
# The property


def check(data: bytes, fmt: str, compression: str | None = None, **options: Any) -> None:
    """Run ``data`` through transform and read_batches; assert the properties above."""
    work = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        src = work / ("in" + EXTENSION[fmt] + (SUFFIX[compression] if compression else ""))
        src.write_bytes(data)
        out = work / "out"
        out.mkdir()
        dst, rejects = out / "out.parquet", out / "rejects.ndjson"
        kwargs: dict[str, Any] = {"format": "json" if fmt == "json-path" else fmt,
                                  "threads": 1, **options}
        if fmt == "json-path":
            kwargs["json_path"] = "data.item"
        try:
            report = engine.transform(str(src), str(dst), rejects_uri=str(rejects), **kwargs)
        except EngineError:
            assert sorted(p.name for p in out.iterdir()) == []
            report = None
        if report is not None:
            assert report.rows_in == report.rows_out + report.rows_rejected + report.rows_filtered
            assert pq.read_metadata(dst).num_rows == report.rows_out
            assert rejects.read_bytes().count(b"\n") == report.rows_rejected
            assert sorted(p.name for p in out.iterdir()) == ["out.parquet", "rejects.ndjson"]
        try:
            rows = sum(batch.num_rows for batch in engine.read_batches(str(src), **kwargs))
        except EngineError:
            rows = None
        if report is not None and rows is not None:
            assert rows == report.rows_out
    finally:
        shutil.rmtree(work)


def corpus(*names: str) -> list[bytes]:
    return [make_corpus.SMALL[name]() for name in names]


def with_examples(values: list[bytes], **fixed: Any) -> Callable[[Any], Any]:
    """Run the test on each of ``values`` (as ``data``, with ``fixed``) on every run."""

    def decorate(test: Any) -> Any:
        for value in values:
            test = example(data=value, **fixed)(test)
        return test

    return decorate


CORPUS: dict[str, list[str]] = {
    fmt: [n for n in make_corpus.SMALL if n.endswith(EXTENSION[fmt]) or (
        fmt == "csv" and n == "garbage.bin")]
    for fmt in ("csv", "ndjson", "json")
}

# ---------------------------------------------------------------------------------------------
# One target per reader, and one per compression wrapper


@with_examples(corpus(*CORPUS["csv"]), block=1 << 20, delimiter=",", header=True)
@FUZZ
@given(data=inputs("csv"), block=st.sampled_from([64, 1 << 20]),
       delimiter=st.sampled_from([",", ";"]), header=st.booleans())
def test_csv_reader(data: bytes, block: int, delimiter: str, header: bool) -> None:
    check(data, "csv", block_size=block, delimiter=delimiter, header=header)


@with_examples(corpus(*CORPUS["ndjson"]), block=1 << 20)
@FUZZ
@given(data=inputs("ndjson"), block=st.sampled_from([64, 1 << 20]))
def test_ndjson_reader(data: bytes, block: int) -> None:
    check(data, "ndjson", block_size=block)


@with_examples(corpus(*CORPUS["json"]), block=1 << 20)
@FUZZ
@given(data=inputs("json"), block=st.sampled_from([64, 1 << 20]))
def test_json_array_reader(data: bytes, block: int) -> None:
    check(data, "json", block_size=block)


@with_examples(corpus("deep-path.json", "garbage.json"), block=1 << 20)
@FUZZ
@given(data=inputs("json-path"), block=st.sampled_from([64, 1 << 20]))
def test_json_path_reader(data: bytes, block: int) -> None:
    check(data, "json-path", block_size=block)


@st.composite
def damaged(draw: st.DrawFn, compression: str) -> bytes:
    """A compressed document: whole, cut short, or with a byte changed."""
    fmt = draw(st.sampled_from(["csv", "ndjson"]))
    stored = COMPRESS[compression](draw(DOCS[fmt]))
    how = draw(st.sampled_from(["whole", "cut", "flip", "mutate"]))
    if how == "cut":
        return stored[: draw(st.integers(0, max(len(stored) - 1, 0)))]
    if how == "flip":
        at = draw(st.integers(0, len(stored) - 1))
        return stored[:at] + bytes([stored[at] ^ draw(st.integers(1, 255))]) + stored[at + 1:]
    if how == "mutate":
        return draw(mutated(stored))
    return stored


def compressed_corpus(compression: str) -> list[bytes]:
    suffix = SUFFIX[compression]
    return [make_corpus.SMALL[n]() for n in make_corpus.SMALL if n.endswith(".csv" + suffix)]


@with_examples(compressed_corpus("gzip"))
@FUZZ
@given(data=damaged("gzip"))
def test_gzip_wrapper(data: bytes) -> None:
    check(data, "csv", "gzip")


@with_examples(compressed_corpus("bz2"))
@FUZZ
@given(data=damaged("bz2"))
def test_bz2_wrapper(data: bytes) -> None:
    check(data, "csv", "bz2")


@with_examples(compressed_corpus("zstd"))
@FUZZ
@given(data=damaged("zstd"))
def test_zstd_wrapper(data: bytes) -> None:
    check(data, "csv", "zstd")
