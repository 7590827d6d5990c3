"""Every output a run would write that is the input itself is refused, and the input kept.

The output is renamed into place (or committed) after the input was read: a run writing over its
input would succeed and leave the input replaced by its own Parquet, a complete and silent loss.
The data file named by the caller is covered by ``tests/unit/test_run.py``; here are the
outputs named otherwise: a contract's ``aggregate.path`` and ``rejects.path``, a rejects URI, a
data path reached through a symbolic link, and a file name only the rotation chooses.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from engine.errors import UsageError
from engine.run import transform

INPUT = "a,b\n1,2\n3,4\n1,5\n"


def contract(path: Path, *, aggregate_path: str | None = None,
             rejects_path: str | None = None) -> Path:
    text = textwrap.dedent("""\
        dataset: t
        columns:
          a: {type: int64}
          b: {type: int64}
        """)
    if rejects_path is not None:
        text += f"rejects:\n  path: {rejects_path}\n"
    if aggregate_path is not None:
        text += textwrap.dedent(f"""\
            aggregate:
              by: [a]
              metrics:
                n: {{count: b}}
              path: {aggregate_path}
            """)
    path.write_text(text, "utf-8")
    return path


@pytest.fixture
def src(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    path = directory / "in.csv"
    path.write_text(INPUT, "utf-8")
    return path


def refused(src: Path, dst: str, **kwargs: Any) -> UsageError:
    before = sorted(p.name for p in src.parent.iterdir())
    with pytest.raises(UsageError, match="the output is the input") as info:
        transform(str(src), dst, **kwargs)
    assert info.value.exit_code == 2
    assert src.read_text("utf-8") == INPUT
    assert sorted(p.name for p in src.parent.iterdir()) == before, "something was written"
    return info.value


def test_an_aggregate_path_that_is_the_input_is_refused(src: Path, tmp_path: Path) -> None:
    c = contract(tmp_path / "c.yaml", aggregate_path="in.csv")  # relative to the output's folder
    error = refused(src, str(src.parent / "out.parquet"), contract=str(c))
    assert error.uri == str(src)


def test_an_absolute_aggregate_path_that_is_the_input_is_refused(src: Path,
                                                                 tmp_path: Path) -> None:
    c = contract(tmp_path / "c.yaml", aggregate_path=str(src))
    refused(src, str(tmp_path / "out.parquet"), contract=str(c))


def test_a_contract_rejects_path_that_is_the_input_is_refused(src: Path, tmp_path: Path) -> None:
    c = contract(tmp_path / "c.yaml", rejects_path="in.csv")
    error = refused(src, str(src.parent / "out.parquet"), contract=str(c))
    assert error.uri == str(src)


def test_a_rejects_uri_spelled_differently_is_refused(src: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    refused(src, str(tmp_path / "out.parquet"),
            rejects_uri=str(tmp_path / "elsewhere" / ".." / "data" / "in.csv"))


def test_a_data_path_through_a_symbolic_link_is_refused(src: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.parquet"
    link.symlink_to(src)
    refused(src, str(link), format="csv")
    assert link.is_symlink()


def test_a_rotated_file_name_that_is_the_input_is_refused(tmp_path: Path) -> None:
    # Only the rotation names the second file out-00001.parquet: here that is the input (a CSV
    # under a Parquet name), so the check happens as the file is opened, and nothing is kept.
    src = tmp_path / "out-00001.parquet"
    src.write_text(INPUT, "utf-8")
    with pytest.raises(UsageError, match="the output is the input") as info:
        transform(str(src), str(tmp_path / "out.parquet"), format="csv", max_rows_per_file=1,
                  row_group_rows=1)
    assert info.value.uri == str(src)
    assert src.read_text("utf-8") == INPUT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out-00001.parquet"]


def test_the_same_contracts_with_other_paths_convert(src: Path, tmp_path: Path) -> None:
    # The control: the refusals above come from the paths, not from the contracts.
    c = contract(tmp_path / "c.yaml", aggregate_path="agg.parquet", rejects_path="rej.ndjson")
    report = transform(str(src), str(src.parent / "out.parquet"), contract=str(c))
    assert report.rows_out == 3
    assert sorted(p.name for p in src.parent.iterdir()) == [
        "agg.parquet", "in.csv", "out.parquet", "rej.ndjson"]
