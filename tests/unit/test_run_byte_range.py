from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import engine
from engine import io


def test_open_input_reads_only_the_range(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"0123456789")
    with io.open_input(str(path), byte_range=(2, 6)) as stream:
        assert stream.size == 4
        assert stream.read() == b"2345"
    with io.open_input(str(path), byte_range=(8, 50)) as stream:
        assert stream.read() == b"89"
    gz = tmp_path / "a.txt.gz"
    gz.write_bytes(gzip.compress(b"x"))
    with pytest.raises(ValueError, match="uncompressed"):
        io.open_input(str(gz), byte_range=(0, 1))


def test_csv_ranges_convert_to_the_rows_of_the_whole(tmp_path: Path) -> None:
    data = b"id,note\n" + b"".join(f'{i},"n\n{i}"\n'.encode() for i in range(100))
    path = tmp_path / "a.csv"
    path.write_bytes(data)
    cut = data.index(b'50,"')
    whole = engine.transform(str(path), str(tmp_path / "whole.parquet"))
    schema = pq.read_schema(tmp_path / "whole.parquet")
    first = engine.transform(str(path), str(tmp_path / "p0.parquet"), format="csv",
                             schema=schema, byte_range=(0, cut))
    second = engine.transform(str(path), str(tmp_path / "p1.parquet"), format="csv",
                              schema=schema, byte_range=(cut, len(data)), header=False,
                              column_names=("id", "note"))
    assert first.rows_out + second.rows_out == whole.rows_out == 100
    rows = (pq.read_table(tmp_path / "p0.parquet").to_pylist()
            + pq.read_table(tmp_path / "p1.parquet").to_pylist())
    assert rows == pq.read_table(tmp_path / "whole.parquet").to_pylist()


def test_json_range_is_read_as_an_array_of_its_elements(tmp_path: Path) -> None:
    doc = json.dumps({"data": [{"id": i, "s": "],["} for i in range(10)]}).encode()
    path = tmp_path / "a.json"
    path.write_bytes(doc)
    start = doc.index(b'{"id": 3')
    end = doc.index(b', {"id": 7')
    report = engine.transform(str(path), str(tmp_path / "out.parquet"), format="json",
                              json_path="data.item", byte_range=(start, end))
    assert pq.read_table(tmp_path / "out.parquet").column("id").to_pylist() == [3, 4, 5, 6]
    assert report.rows_in == 4


def test_byte_range_needs_a_format(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"a\n1\n")
    with pytest.raises(ValueError, match="explicit format"):
        engine.transform(str(path), str(tmp_path / "o.parquet"), byte_range=(0, 4))


def test_output_stem_names_directory_outputs(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"a\n1\n")
    contract = "dataset: d\ncolumns: {a: {type: int64}}\n"
    report = engine.transform(str(path), str(tmp_path / "out") + "/", contract=contract,
                              output_stem="a-part-00003")
    # the data file: the caller's name and the run's tag (engine.sink.dataset.run_tag)
    assert re.fullmatch(r".*/out/a-part-00003-[0-9a-f]{8}\.parquet", report.output)
