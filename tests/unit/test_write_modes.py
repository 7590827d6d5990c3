"""Several sources into one directory through ``engine.transform``: output identity, the modes.

The bar (issue 15): two or more files into one directory never lose a row under any mode; a
re-run of a source replaces exactly its own earlier files; a failed run leaves what was there.
The directory is read back as query engines read it (``pyarrow.dataset``, which skips the
``_chunkwise/`` manifests).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import engine
import engine.io
import engine.run
from engine.errors import EngineError, InputFormatError, TransientError, UsageError
from engine.plan import source_id, source_name, source_version
from engine.sink import dataset
from engine.sink.dataset import Manifest, run_tag

CONTRACT = """dataset: orders
format: csv
columns:
  id: {type: int64, nullable: false}
  country: {type: string}
  amount: {type: double}
rejects: {path: _rejects/}
output:
  partition_by: [country]
  max_rows_per_file: 3
"""


def write_csv(path: Path, ids: range, countries: tuple[str, ...] = ("FR", "DE", "US")) -> Path:
    lines = ["id,country,amount"] + [f"{i},{countries[i % len(countries)]},{i / 4}"
                                      for i in ids]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def ids_in(out: Path, partitioned: bool = False) -> list[int]:
    """Every ``id`` a query engine reads in ``out`` (hidden folders skipped), sorted."""
    table = ds.dataset(out, format="parquet",
                       partitioning="hive" if partitioned else None).to_table(columns=["id"])
    return sorted(table.column("id").to_pylist())


def data_files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if p.is_file() and not dataset.is_hidden(str(p.relative_to(out))))


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    return {"d1": write_csv(tmp_path / "in" / "d1.csv", range(0, 10)),
            "d2": write_csv(tmp_path / "in" / "d2.csv", range(10, 17)),
            "d3": write_csv(tmp_path / "in" / "d3.csv", range(17, 30))}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


# ---------------------------------------------------------------------------------------------
# the reproduction, and each mode


@pytest.mark.parametrize("rotation", [None, 1, 4])
def test_two_sources_append_never_lose_a_row(sources: dict[str, Path], out: Path,
                                             rotation: int | None):
    engine.transform(sources["d1"], f"{out}/", max_rows_per_file=rotation)
    engine.transform(sources["d2"], f"{out}/", max_rows_per_file=rotation, mode="append")
    assert ids_in(out) == list(range(17))
    names = data_files(out)
    assert all(n.startswith((source_name(str(sources["d1"])), source_name(str(sources["d2"]))))
               for n in names)


def test_error_mode_refuses_before_reading_anything(sources: dict[str, Path], out: Path,
                                                    monkeypatch: pytest.MonkeyPatch):
    engine.transform(sources["d1"], f"{out}/")
    before = sorted(p.name for p in out.rglob("*"))

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the input was opened")

    monkeypatch.setattr(engine.run, "resolve_input", never)
    for mode in (None, "error"):
        with pytest.raises(UsageError, match=r"1 data file\(s\) that .*d2\.csv did not write.*"
                                             "'append'.*'replace'") as info:
            engine.transform(sources["d2"], f"{out}/", mode=mode)
        assert info.value.uri == f"{out}/"
    assert sorted(p.name for p in out.rglob("*")) == before
    assert ids_in(out) == list(range(10))


def test_error_mode_accepts_an_empty_or_missing_directory_and_hidden_files(
        sources: dict[str, Path], out: Path):
    (out / "_SUCCESS").parent.mkdir(parents=True)
    (out / "_SUCCESS").write_text("")
    (out / ".hidden" / "x").parent.mkdir()
    (out / ".hidden" / "x").write_text("not data")
    engine.transform(sources["d1"], f"{out}/", mode="error")
    assert ids_in(out) == list(range(10))


def test_a_rerun_of_the_same_source_replaces_its_files_in_every_mode(
        sources: dict[str, Path], out: Path):
    engine.transform(sources["d2"], f"{out}/")
    first = engine.transform(sources["d1"], f"{out}/", max_rows_per_file=3, mode="append")
    for mode, rotation in (("append", 4), ("append", None), ("error", 2)):
        if mode == "error":  # only d1's files are left, so error mode passes
            engine.transform(sources["d1"], f"{out}/", mode="replace")
        report = engine.transform(sources["d1"], f"{out}/", max_rows_per_file=rotation,
                                  mode=mode)
        expected = list(range(10)) if mode == "error" else list(range(17))
        assert ids_in(out) == expected, (mode, rotation)
        mine = [n for n in data_files(out) if n.startswith(source_name(str(sources["d1"])))]
        assert sorted(mine) == sorted(Path(f["uri"]).name for f in report.files)
        assert report.dataset["removed"] > 0
    assert first.dataset["generation"] == 0


def test_the_first_run_names_its_files_after_source_id_and_re_runs_get_new_names(
        sources: dict[str, Path], out: Path):
    src = str(sources["d1"])
    first = engine.transform(src, f"{out}/")
    assert Path(first.output).name == f"{source_id(src)}.parquet"
    second = engine.transform(src, f"{out}/")
    assert Path(second.output).name == (
        f"{source_name(src)}-{run_tag(source_version(src), 1)}.parquet")
    assert data_files(out) == [Path(second.output).name]
    manifest = json.loads((out / "_chunkwise" / f"{source_name(src)}.json").read_text())
    assert manifest["source"] == os.path.realpath(src)
    assert manifest["files"] == [Path(second.output).name]
    # the first run's file: superseded, and deleted once this manifest was written
    assert manifest["generation"] == 1 and manifest["superseded"] == [Path(first.output).name]
    assert not Path(first.output).exists()
    assert manifest["rows"] == 10 and manifest["version"] == source_version(src)


def test_a_changed_source_is_the_same_source(sources: dict[str, Path], out: Path):
    engine.transform(sources["d2"], f"{out}/")
    engine.transform(sources["d1"], f"{out}/", mode="append")
    write_csv(sources["d1"], range(100, 104))  # the file is corrected and converted again
    report = engine.transform(sources["d1"], f"{out}/", mode="append")
    assert ids_in(out) == [*range(10, 17), *range(100, 104)]
    assert report.dataset["removed"] == 1
    assert report.dataset["generation"] == 1


def test_same_file_names_in_different_folders_do_not_collide(tmp_path: Path, out: Path):
    a = write_csv(tmp_path / "a" / "orders.csv", range(0, 5))
    b = write_csv(tmp_path / "b" / "orders.csv", range(5, 9))
    engine.transform(a, f"{out}/")
    engine.transform(b, f"{out}/", mode="append")
    assert source_name(str(a)) != source_name(str(b))
    assert ids_in(out) == list(range(9))


def test_replace_keeps_only_this_source_and_the_other_manifests_go(
        sources: dict[str, Path], out: Path):
    engine.transform(sources["d1"], f"{out}/", max_rows_per_file=2)
    engine.transform(sources["d2"], f"{out}/", mode="append")
    (out / "notes.txt").write_text("a stray file: query engines would read it")
    report = engine.transform(sources["d3"], f"{out}/", mode="replace")
    assert ids_in(out) == list(range(17, 30))
    assert data_files(out) == [Path(report.output).name]
    assert sorted(p.name for p in (out / "_chunkwise").iterdir()) == [
        f"{source_name(str(sources['d3']))}.json"]
    assert report.dataset["removed"] == 5 + 1 + 1 + 2  # d1's, d2's, the stray, 2 manifests


def test_modes_with_a_contract_that_partitions(sources: dict[str, Path], out: Path,
                                               tmp_path: Path):
    contract = tmp_path / "c.yaml"
    contract.write_text(CONTRACT)
    engine.transform(sources["d1"], f"{out}/", contract=contract)
    with pytest.raises(UsageError, match="did not write"):
        engine.transform(sources["d2"], f"{out}/", contract=contract)
    engine.transform(sources["d2"], f"{out}/", contract=contract, mode="append")
    engine.transform(sources["d1"], f"{out}/", contract=contract, mode="append")  # a re-run
    assert ids_in(out, partitioned=True) == list(range(17))
    partitions = sorted(p.name for p in out.iterdir() if p.name.startswith("country="))
    assert partitions == ["country=DE", "country=FR", "country=US"]
    rejects = sorted(p.name for p in (out / "_rejects").iterdir())
    assert rejects == sorted(f"{source_name(str(sources[k]))}.rejects.ndjson"
                             for k in ("d1", "d2"))
    engine.transform(sources["d3"], f"{out}/", contract=contract, mode="replace")
    assert ids_in(out, partitioned=True) == list(range(17, 30))
    assert sorted(p.name for p in (out / "_rejects").iterdir()) == [
        f"{source_name(str(sources['d3']))}.rejects.ndjson"]
    assert not [p for p in out.rglob("*") if p.is_dir() and not any(p.iterdir())]


def test_three_sources_and_re_runs_in_any_order_keep_every_row(sources: dict[str, Path],
                                                               out: Path):
    order = ["d1", "d2", "d1", "d3", "d2", "d2", "d1"]
    for step, name in enumerate(order):
        engine.transform(sources[name], f"{out}/", mode="append",
                         max_rows_per_file=(step % 3) or None)
        seen = {n for n in order[:step + 1]}
        expected = sorted(i for n in seen for i in {"d1": range(10), "d2": range(10, 17),
                                                    "d3": range(17, 30)}[n])
        assert ids_in(out) == expected


# ---------------------------------------------------------------------------------------------
# failures never leave less than there was


def test_a_failed_rerun_leaves_the_previous_files(sources: dict[str, Path], out: Path,
                                                  monkeypatch: pytest.MonkeyPatch):
    engine.transform(sources["d2"], f"{out}/")
    engine.transform(sources["d1"], f"{out}/", max_rows_per_file=2, mode="append")
    before = data_files(out)
    # the same source, now with a broken record at its end: the rotation publishes files
    # before the failure is found, and the failure deletes them
    text = sources["d1"].read_text() + '99,FR,"never closed\n'
    sources["d1"].write_text(text)
    published: list[str] = []
    commit = engine.io.AtomicOutput.commit

    def counted(self: engine.io.AtomicOutput) -> None:
        published.append(self.uri)
        commit(self)

    monkeypatch.setattr(engine.io.AtomicOutput, "commit", counted)
    with pytest.raises(InputFormatError):
        engine.transform(sources["d1"], f"{out}/", max_rows_per_file=2, mode="append",
                         block_size=64)
    assert len(published) >= 3  # published, then taken back
    assert data_files(out) == before
    assert ids_in(out) == list(range(17))


@pytest.mark.parametrize("mode", ["error", "append", "replace"])
def test_a_manifest_that_cannot_be_written_fails_the_run_and_unpublishes(
        sources: dict[str, Path], out: Path, mode: str, monkeypatch: pytest.MonkeyPatch):
    engine.transform(sources["d1"], f"{out}/")
    before = data_files(out)

    def broken(self: Manifest, uri: str) -> None:
        raise TransientError("S3 SlowDown", uri=uri)

    monkeypatch.setattr(Manifest, "write", broken)
    with pytest.raises(TransientError):
        engine.transform(sources["d1"], f"{out}/", max_rows_per_file=3, mode=mode)
    assert data_files(out) == before
    assert ids_in(out) == list(range(10))


def test_a_replace_that_fails_leaves_the_other_sources(sources: dict[str, Path], out: Path):
    engine.transform(sources["d1"], f"{out}/")
    sources["d3"].write_text(sources["d3"].read_text() + '99,FR,"never closed\n')
    with pytest.raises(InputFormatError):
        engine.transform(sources["d3"], f"{out}/", mode="replace", max_rows_per_file=2,
                         block_size=64)
    assert ids_in(out) == list(range(10))


def test_a_deletion_that_fails_is_finished_by_the_next_run(sources: dict[str, Path],
                                                          out: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    engine.transform(sources["d1"], f"{out}/", max_rows_per_file=4)
    real = dataset.delete_files

    def failing(root: str, paths: Any) -> int:
        raise TransientError("S3 SlowDown", uri=root)

    monkeypatch.setattr(dataset, "delete_files", failing)
    with pytest.raises(TransientError, match="the new files are published"):
        engine.transform(sources["d1"], f"{out}/")
    # more files than rows' worth (old and new), never fewer: a reader sees duplicates
    assert ids_in(out) == sorted([*range(10), *range(10)])
    manifest = Manifest.read(f"{out}/_chunkwise/{source_name(str(sources['d1']))}.json")
    assert manifest is not None and len(manifest.superseded) == 3
    monkeypatch.setattr(dataset, "delete_files", real)
    engine.transform(sources["d1"], f"{out}/")
    assert ids_in(out) == list(range(10))
    assert len(data_files(out)) == 1


def test_files_a_killed_rerun_left_are_its_own(sources: dict[str, Path], out: Path):
    src = str(sources["d1"])
    engine.transform(src, f"{out}/")
    # a re-run killed after publishing a file, before its manifest: a file of the next
    # generation that no manifest lists
    orphan = out / f"{source_name(src)}-{run_tag(source_version(src), 1)}-00007.parquet"
    pq.write_table(pa.table({"id": [555], "country": ["FR"], "amount": [1.0]}), orphan)
    report = engine.transform(src, f"{out}/", max_rows_per_file=4)  # error mode: not refused
    assert not orphan.exists()
    assert ids_in(out) == list(range(10))
    assert report.dataset["removed"] == 2


# ---------------------------------------------------------------------------------------------
# a file output, names, the options


def test_a_file_output_keeps_todays_behaviour(sources: dict[str, Path], tmp_path: Path):
    dst = tmp_path / "one.parquet"
    engine.transform(sources["d1"], dst)
    report = engine.transform(sources["d2"], dst)  # the user named the file: replaced
    assert report.dataset is None
    assert sorted(pq.read_table(dst).column("id").to_pylist()) == list(range(10, 17))
    engine.transform(sources["d1"], dst, mode="replace")
    with pytest.raises(UsageError, match="output exists"):
        engine.transform(sources["d2"], dst, mode="error")
    with pytest.raises(UsageError, match="cannot be appended"):
        engine.transform(sources["d2"], dst, mode="append")
    assert sorted(pq.read_table(dst).column("id").to_pylist()) == list(range(10))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "one.parquet"]
    engine.transform(sources["d2"], tmp_path / "new.parquet", mode="error")  # absent: fine


def test_an_unknown_mode_is_a_usage_error(sources: dict[str, Path], out: Path):
    with pytest.raises(UsageError, match="mode must be one of error, append, replace"):
        engine.transform(sources["d1"], f"{out}/", mode="overwrite")
    with pytest.raises(UsageError):
        engine.RunOptions(mode="merge")
    assert not out.exists()


def test_the_mode_from_run_options(sources: dict[str, Path], out: Path):
    engine.transform(sources["d1"], f"{out}/")
    options = engine.RunOptions(mode="append")
    engine.transform(sources["d2"], f"{out}/", options=options)
    assert ids_in(out) == list(range(17))
    with pytest.raises(UsageError):  # the keyword overrides the options
        engine.transform(sources["d3"], f"{out}/", options=options, mode="error")


def test_an_output_stem_taken_by_another_source_is_refused(sources: dict[str, Path], out: Path):
    engine.transform(sources["d1"], f"{out}/", output_stem="part-1")
    with pytest.raises(UsageError, match="'part-1' is already used by .*d1.csv"):
        engine.transform(sources["d2"], f"{out}/", output_stem="part-1", mode="append")
    engine.transform(sources["d2"], f"{out}/", output_stem="part-2", mode="append")
    assert ids_in(out) == list(range(17))
    with pytest.raises(UsageError, match="bad output name"):
        engine.transform(sources["d3"], f"{out}/", output_stem="_x", mode="append")


def test_an_unreadable_manifest_is_refused_not_guessed(sources: dict[str, Path], out: Path):
    engine.transform(sources["d1"], f"{out}/")
    (out / "_chunkwise" / f"{source_name(str(sources['d1']))}.json").write_text("{oops")
    with pytest.raises(EngineError, match="not a chunkwise manifest"):
        engine.transform(sources["d1"], f"{out}/", mode="append")
    assert ids_in(out) == list(range(10))


def test_an_input_among_the_data_is_refused(tmp_path: Path):
    src = write_csv(tmp_path / "data" / "d1.csv", range(3))
    for mode in ("error", "append", "replace"):
        with pytest.raises(UsageError, match="input is inside the output directory"):
            engine.transform(src, f"{tmp_path}/data/", mode=mode)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["d1.csv"]
    hidden = write_csv(tmp_path / "data" / "_raw" / "d2.csv", range(3))  # not data: allowed
    engine.transform(hidden, f"{tmp_path}/data/", mode="replace")
    assert hidden.exists() and not (tmp_path / "data" / "d1.csv").exists()
