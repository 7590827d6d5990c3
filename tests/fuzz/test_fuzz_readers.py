"""Bounded fuzzing of every reader and compression wrapper through the public API.

hypothesis draws documents: well-formed CSV, NDJSON, JSON arrays and arrays at a path built from
typed values (:mod:`fuzz_documents`: each with the records and values it holds), those
documents mutated (bytes flipped, inserted, cut), and bytes with no document in them; then
compressed or not, and, compressed, whole, cut or corrupted. The property
(:func:`fuzz_property.check`) compares the engine with what the generator wrote, not with its
own report: every record generated is counted, written with its values or rejected; a mutated
document loses no record it did not touch.

The classes of input that issue 14 found the readers wrong on (non-object lines, ``NaN``,
heterogeneous lists, surrogate escapes, leading zeros, dates) have their own targets in
``test_fuzz_classes.py``.

The budget is ``CHUNKWISE_FUZZ_EXAMPLES`` examples per target (default 300); every corpus input
of ``tests/corpus`` is an explicit example of the target it belongs to, so known hostile inputs
run on every CI run whatever is drawn. See :mod:`fuzz_property` for how a failure is replayed.
"""

from __future__ import annotations

import bz2
import gzip
import sys
from collections.abc import Callable
from pathlib import Path

import zstandard
from fuzz_documents import (
    Doc,
    array_docs,
    csv_docs,
    mutate,
    ndjson_docs,
    noise,
)
from fuzz_property import FUZZ, check, raw, with_examples
from hypothesis import example, given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))
import make_corpus  # noqa: E402

#: Column kinds every reader gets right today; the classes of issue 14 are added by their
#: own targets (test_fuzz_classes.py).
CSV_KINDS = ["int", "float", "text", "bool", "date", "timestamp"]
JSON_KINDS = ["int", "float", "text", "bool", "timestamp", "struct"]

DOCS: dict[str, Callable[[], st.SearchStrategy[Doc]]] = {
    "csv": lambda: csv_docs(CSV_KINDS),
    "ndjson": lambda: ndjson_docs(JSON_KINDS),
    "json": lambda: array_docs(JSON_KINDS),
    "json-path": lambda: array_docs(JSON_KINDS, at_path=True),
}


def inputs(fmt: str) -> st.SearchStrategy[Doc]:
    """A well-formed document, the same mutated, or noise."""
    well_formed = DOCS[fmt]()
    return st.one_of(well_formed, well_formed.flatmap(mutate),
                     noise().map(lambda data: raw(data, fmt)))


COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "bz2": bz2.compress,
    "zstd": lambda data: zstandard.ZstdCompressor(write_checksum=True).compress(data),
}
EXTENSION = {"csv": ".csv", "ndjson": ".ndjson", "json": ".json"}


def corpus(fmt: str, *names: str) -> list[Doc]:
    return [raw(make_corpus.SMALL[name](), fmt) for name in names]


CORPUS: dict[str, list[str]] = {
    fmt: [n for n in make_corpus.SMALL if n.endswith(EXTENSION[fmt]) or (
        fmt == "csv" and n == "garbage.bin")]
    for fmt in ("csv", "ndjson", "json")
}

# ---------------------------------------------------------------------------------------------
# One target per reader


@with_examples(corpus("csv", *CORPUS["csv"]), block=1 << 20, delimiter=",", header=True)
@FUZZ
@given(doc=inputs("csv"), block=st.sampled_from([64, 1 << 20]),
       delimiter=st.sampled_from([",", ";"]), header=st.booleans())
def test_csv_reader(doc: Doc, block: int, delimiter: str, header: bool) -> None:
    check(doc, block_size=block, delimiter=delimiter, header=header)


@with_examples(corpus("ndjson", *CORPUS["ndjson"]), block=1 << 20)
@FUZZ
@given(doc=inputs("ndjson"), block=st.sampled_from([64, 1 << 20]))
def test_ndjson_reader(doc: Doc, block: int) -> None:
    check(doc, block_size=block)


@with_examples(corpus("json", *CORPUS["json"]), block=1 << 20)
@FUZZ
@given(doc=inputs("json"), block=st.sampled_from([64, 1 << 20]))
def test_json_array_reader(doc: Doc, block: int) -> None:
    check(doc, block_size=block)


@with_examples(corpus("json-path", "deep-path.json", "garbage.json"), block=1 << 20)
@FUZZ
@given(doc=inputs("json-path"), block=st.sampled_from([64, 1 << 20]))
def test_json_path_reader(doc: Doc, block: int) -> None:
    check(doc, block_size=block)


# ---------------------------------------------------------------------------------------------
# One target per compression wrapper


@st.composite
def damaged(draw: st.DrawFn, compression: str) -> tuple[Doc, bytes, str]:
    """A compressed document, and its stored bytes: whole, cut short, with a byte changed."""
    doc = draw(st.sampled_from(["csv", "ndjson"]).flatmap(lambda fmt: DOCS[fmt]()))
    stored = COMPRESS[compression](doc.data)
    how = draw(st.sampled_from(["whole", "cut", "flip", "mutate"]))
    if how == "cut":
        stored = stored[: draw(st.integers(0, max(len(stored) - 1, 0)))]
    elif how == "flip":
        at = draw(st.integers(0, len(stored) - 1))
        stored = stored[:at] + bytes([stored[at] ^ draw(st.integers(1, 255))]) + stored[at + 1:]
    elif how == "mutate":
        stored = draw(mutate(Doc(stored, doc.fmt, {}, {}, [], 0, [], [], []))).data
    return doc, stored, how


def compressed_corpus(compression: str) -> list[tuple[Doc, bytes, str]]:
    suffix = {"gzip": ".gz", "bz2": ".bz2", "zstd": ".zst"}[compression]
    return [(raw(b"", "csv"), make_corpus.SMALL[n](), "corpus") for n in make_corpus.SMALL
            if n.endswith(".csv" + suffix)]


def check_compressed(case: tuple[Doc, bytes, str], compression: str) -> None:
    # Whole, it must convert exactly as the plain document; damaged, a compression format's
    # checksum means that if it converts at all, what it decoded is the whole document.
    doc, stored, how = case
    check(doc, stored, compression, may_fail=how != "whole")


def with_cases(cases: list[tuple[Doc, bytes, str]]) -> Callable[[Callable[..., None]],
                                                                   Callable[..., None]]:
    def decorate(test: Callable[..., None]) -> Callable[..., None]:
        for case in cases:
            test = example(case=case)(test)
        return test

    return decorate


@with_cases(compressed_corpus("gzip"))
@FUZZ
@given(case=damaged("gzip"))
def test_gzip_wrapper(case: tuple[Doc, bytes, str]) -> None:
    check_compressed(case, "gzip")


@with_cases(compressed_corpus("bz2"))
@FUZZ
@given(case=damaged("bz2"))
def test_bz2_wrapper(case: tuple[Doc, bytes, str]) -> None:
    check_compressed(case, "bz2")


@with_cases(compressed_corpus("zstd"))
@FUZZ
@given(case=damaged("zstd"))
def test_zstd_wrapper(case: tuple[Doc, bytes, str]) -> None:
    check_compressed(case, "zstd")
