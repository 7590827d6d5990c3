"""engine.sink.dataset on a local directory: listing, deleting, manifests, the modes' checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import PermanentError, UsageError
from engine.sink.dataset import (
    DatasetWrite,
    ListedFile,
    Manifest,
    check_name,
    delete_files,
    is_hidden,
    list_files,
    relative,
    resolve,
    run_tag,
)


def touch(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"x" * len(path))


@pytest.mark.parametrize(("path", "hidden"), [
    ("a.parquet", False), ("country=FR/a.parquet", False), ("_chunkwise/a.json", True),
    (".a.parquet.1234.tmp", True), ("country=FR/_tmp/a.parquet", True),
    ("country=_x/a.parquet", False), ("x_/a.parquet", False)])
def test_hidden_as_query_engines_skip(path: str, hidden: bool):
    assert is_hidden(path) is hidden


@pytest.mark.parametrize("name", ["", "a/b", "_a", ".a"])
def test_names_readers_would_skip_are_refused(name: str):
    with pytest.raises(UsageError, match="bad output name"):
        check_name(name)
    check_name("orders-1234abcd")


def test_run_tags_differ_by_version_and_generation():
    tags = {run_tag(v, g) for v in ("v1", "v2") for g in range(4)}
    assert len(tags) == 8 and all(len(t) == 8 and int(t, 16) >= 0 for t in tags)
    assert run_tag("v1", 0) == run_tag("v1", 0)


def test_relative_and_resolve():
    assert relative("s3://b/out/", "s3://b/out/x/y.parquet") == "x/y.parquet"
    assert relative("s3://b/out/", "s3://c/agg.parquet") == "s3://c/agg.parquet"
    assert resolve("s3://b/out/", "x/y.parquet") == "s3://b/out/x/y.parquet"
    assert resolve("out/", "/abs/agg.parquet") == "/abs/agg.parquet"


def test_list_files_recursively_with_sizes(tmp_path: Path):
    touch(tmp_path, "b.parquet", "country=FR/a.parquet", "_chunkwise/m.json")
    assert list_files(f"{tmp_path}/") == [
        ListedFile("_chunkwise/m.json", 17), ListedFile("b.parquet", 9),
        ListedFile("country=FR/a.parquet", 20)]
    assert list_files(f"{tmp_path}/missing/") == []


def test_delete_files_prunes_emptied_folders_but_not_the_root(tmp_path: Path):
    root = tmp_path / "out"
    touch(root, "country=FR/day=1/a.parquet", "country=FR/day=2/b.parquet", "c.parquet")
    assert delete_files(f"{root}/", ["country=FR/day=1/a.parquet", "c.parquet",
                                     "gone.parquet", str(root / "country=FR/day=2/b.parquet")]
                        ) == 4
    assert root.is_dir() and list(root.iterdir()) == []


def test_manifest_round_trip_and_absence(tmp_path: Path):
    uri = f"{tmp_path}/_chunkwise/x.json"
    assert Manifest.read(uri) is None
    manifest = Manifest("/in/x.csv", "x-1", "v", 3, files=["a.parquet"],
                        outputs=["_rejects/x-1.rejects.ndjson"], superseded=["old.parquet"],
                        rows=7, mode="append")
    manifest.write(uri)
    back = Manifest.read(uri)
    assert back == manifest and back.written_at
    assert back.owned() == {"a.parquet", "_rejects/x-1.rejects.ndjson", "old.parquet"}
    Path(uri).write_text('{"source": 1}')
    with pytest.raises(PermanentError, match="not a chunkwise manifest"):
        Manifest.read(uri)


def test_open_checks_the_mode(tmp_path: Path):
    root = f"{tmp_path}/out/"
    with pytest.raises(UsageError, match="mode must be one of"):
        DatasetWrite.open(root, "x-1", "/in/x.csv", "v", "overwrite")
    touch(tmp_path / "out", "y-2-00000000.parquet", "_other/z.parquet")
    with pytest.raises(UsageError, match=r"1 data file\(s\) that /in/x.csv did not write "
                                         r"\(y-2-00000000.parquet\)"):
        DatasetWrite.open(root, "x-1", "/in/x.csv", "v", "error")
    assert DatasetWrite.open(root, "x-1", "/in/x.csv", "v", "append").orphans == []
    replace = DatasetWrite.open(root, "x-1", "/in/x.csv", "v", "replace")
    assert replace.replaced == ["y-2-00000000.parquet"]  # not what hides under _other/


def test_record_and_finish_replace_the_previous_generation(tmp_path: Path):
    out = tmp_path / "out"
    root = f"{out}/"
    first = DatasetWrite.open(root, "x-1", "/in/x.csv", "v", "error")
    touch(out, f"{first.file_stem}.parquet", "_rejects/x-1.rejects.ndjson")
    first.record([f"{root}{first.file_stem}.parquet"], [f"{root}_rejects/x-1.rejects.ndjson"],
                 5)
    assert first.finish() == {"name": "x-1", "mode": "error", "generation": 0,
                              "manifest": f"{root}_chunkwise/x-1.json", "removed": 0}
    second = DatasetWrite.open(root, "x-1", "/in/x.csv", "v", "error")
    assert second.generation == 1 and second.file_stem != first.file_stem
    touch(out, f"{second.file_stem}-00000.parquet", f"{second.file_stem}-00001.parquet")
    second.record([f"{root}{second.file_stem}-0000{i}.parquet" for i in range(2)],
                  [f"{root}_rejects/x-1.rejects.ndjson"], 5)
    recorded = Manifest.read(second.manifest_uri)
    assert recorded is not None and recorded.superseded == [f"{first.file_stem}.parquet"]
    assert second.finish()["removed"] == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "_chunkwise", "_rejects", f"{second.file_stem}-00000.parquet",
        f"{second.file_stem}-00001.parquet"]
    # one manifest write per run: the next run deletes what it lists (again) before its own
    touch(out, f"{first.file_stem}.parquet")  # as if the deletion had been interrupted
    third = DatasetWrite.open(root, "x-1", "/in/x.csv", "v", "append")
    assert third.generation == 2 and not (out / f"{first.file_stem}.parquet").exists()


def test_a_name_used_by_another_source(tmp_path: Path):
    root = f"{tmp_path}/out/"
    write = DatasetWrite.open(root, "x-1", "/in/a.csv", "v", "append")
    write.record([], [], 0)
    with pytest.raises(UsageError, match="already used by /in/a.csv"):
        DatasetWrite.open(root, "x-1", "/in/b.csv", "v", "append")
    replace = DatasetWrite.open(root, "x-1", "/in/b.csv", "v", "replace")
    assert replace.previous is None and replace.generation == 0
    assert replace.replaced == ["_chunkwise/x-1.json"]  # b's manifest will take its place
