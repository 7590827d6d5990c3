"""``chunkwise size`` and ``chunkwise profile`` end to end, on tiny generated files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def chunkwise(*args: str, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli.app", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def sized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("size")
    shutil.copy(ROOT / "template.yaml", tmp / "template.yaml")
    shutil.copy(ROOT / "samconfig.toml", tmp / "samconfig.toml")
    done = chunkwise("size", "--formats", "csv,ndjson", "--sizes", "200KB,600KB",
                     "--block-sizes", "256KiB,1MiB", "--threads", "1", "--data-dir",
                     str(tmp / "data"), "--out-dir", str(tmp / "profiles"), "--verify",
                     "--apply", "--template", str(tmp / "template.yaml"), "--samconfig",
                     str(tmp / "samconfig.toml"), "--json")
    assert done.returncode == 0, done.stderr
    return tmp, json.loads(done.stdout)


def test_size_writes_json_markdown_and_png(sized) -> None:
    tmp, out = sized
    for suffix in ("json", "md", "png"):
        assert (tmp / "profiles" / f"sizing.{suffix}").stat().st_size > 0
    data = json.loads((tmp / "profiles" / "sizing.json").read_text())
    assert len(data["measurements"]) == 2 * 2 * 2  # formats x sizes x block sizes
    assert all(m["exit_code"] == 0 and m["peak_rss_bytes"] > 0 for m in data["measurements"])
    assert {m["report"]["rows_in"] > 0 for m in data["measurements"]} == {True}
    assert data["prices"]["recorded"] and data["machine"]["cores"] >= 1
    md = (tmp / "profiles" / "sizing.md").read_text()
    assert "| band | memory MB | warm s | cold s | cold share |" in md
    assert "Cold share: estimated for 100 files a minute" in md
    assert "cold starts are" in md and "of the <= 10 MB band's cost" in md


def test_size_measures_init_cold_and_warm_in_each_child(sized) -> None:
    tmp, _ = sized
    data = json.loads((tmp / "profiles" / "sizing.json").read_text())
    for m in data["measurements"]:
        assert m["phases_done"] == ["init", "cold", "warmup", "warm"]
        assert 0 < m["init_cpu_s"] and 0 < m["warm_cpu_s"] and 0 < m["cold_cpu_s"]
        assert m["init_cpu_s"] + m["cold_cpu_s"] + m["warm_cpu_s"] <= m["cpu_s"]
        assert m["peak_rss_bytes"] >= max(m["cold_peak_rss_bytes"], m["warm_peak_rss_bytes"])
    for r in data["recommendations"]:
        assert r["duration_s"] < r["cold_duration_s"]  # a cold invocation adds INIT
        assert r["warm_cost"] <= r["cost"] <= r["cold_cost"]
        assert 0 < r["cold_share"] <= 1 and 0 <= r["cold_cost_share"] < 1
    # 100 files a minute at well under a second each: one environment, rarely replaced
    assert data["recommendations"][0]["cold_share"] < 0.01


def test_size_recommends_per_band_and_flags_extrapolation(sized) -> None:
    _, out = sized
    bands = [r["band"] for r in out["recommendations"]]
    assert bands == ["<= 10 MB", "<= 100 MB", "<= 500 MB"]
    assert out["chosen_memory_mb"] == out["recommendations"][-1]["memory_mb"]
    assert all("extrapolated" in r["reason"] for r in out["recommendations"])
    assert any("extrapolated" in f for f in out["flags"])


def test_size_verify_and_apply(sized) -> None:
    tmp, out = sized
    assert [v["format"] for v in out["verify"]] == ["csv", "ndjson"]
    assert all(v["passed"] and v["peak_rss_mib"] < v["cap_mib"] for v in out["verify"])
    assert all(v["cold_passed"] and v["warm_passed"] and 0 < v["cold_peak_mib"] <= v["cap_mib"]
               and 0 < v["warm_peak_mib"] <= v["cap_mib"] for v in out["verify"])
    chosen = out["chosen_memory_mb"]
    text = (tmp / "template.yaml").read_text()
    assert f"Default: {chosen}\n" in text.split("TransformMemorySize:", 1)[1][:400]
    assert (tmp / "samconfig.toml").read_text().count(f"TransformMemorySize={chosen} ") == 4


def test_size_rejects_bad_options_without_a_traceback(tmp_path: Path) -> None:
    done = chunkwise("size", "--formats", "xml", "--out-dir", str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    done = chunkwise("size", "--sizes", "lots", "--out-dir", str(tmp_path), "--json")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    done = chunkwise("size", "--function-name", "fn", "--out-dir", str(tmp_path))
    assert done.returncode == 2 and "--payload" in done.stderr
    for option, value in (("--cold-share", "1.5"), ("--files-per-minute", "0"),
                          ("--init-vcpu-share", "-1")):
        done = chunkwise("size", option, value, "--out-dir", str(tmp_path))
        assert done.returncode == 2 and option in done.stderr and "Traceback" not in done.stderr


def test_profile_writes_a_timeline_and_stage_times(tmp_path: Path) -> None:
    src = tmp_path / "orders.csv"
    assert chunkwise("gen", "orders", "--size", "2MB", "-o", str(src)).returncode == 0
    done = chunkwise("profile", str(src), "--out-dir", str(tmp_path / "p"), "--threads", "1",
                     "--python-profile", "--profiler", "cprofile", "--json")
    assert done.returncode == 0, done.stderr
    p = json.loads(done.stdout)
    assert p["format"] == "csv" and p["rows_in"] == p["rows_out"] > 0
    assert set(p["stages"]) == {"infer", "read", "parse", "validate_transform",
                                "encode_write", "upload"}
    stage_cpu = sum(s["cpu_s"] for s in p["stages"].values())
    assert 0 < stage_cpu <= p["cpu_s"]  # stages run inside the process the kernel measured
    assert p["stages"]["parse"]["cpu_s"] > 0 and p["stages"]["encode_write"]["cpu_s"] > 0
    assert p["peak_rss_mib"] > p["arrow_peak_mib"] > 0
    assert p["fits_mb"] >= p["fits_needs_mb"]
    saved = json.loads((tmp_path / "p" / "orders.json").read_text())
    assert saved["timeline"] and saved["spans"]
    assert p["outputs"] == {"json": str(tmp_path / "p" / "orders.json"),
                            "png": str(tmp_path / "p" / "orders.png"),
                            "python_profile": str(tmp_path / "p" / "orders.cprofile.txt")}
    assert (tmp_path / "p" / "orders.png").stat().st_size > 0
    assert "cumulative" in (tmp_path / "p" / "orders.cprofile.txt").read_text()


def test_profile_writes_to_the_user_cache_unless_told_and_says_where(tmp_path: Path) -> None:
    src, work, cache = tmp_path / "o.csv", tmp_path / "work", tmp_path / "cache"
    src.write_text("a,b\n" + "".join(f"{i},x{i}\n" for i in range(1_000)), "utf-8")
    work.mkdir()
    done = chunkwise("profile", str(src), "--threads", "1", "--no-plot", cwd=work,
                     env={"XDG_CACHE_HOME": str(cache)})
    assert done.returncode == 0, done.stderr
    written = cache / "chunkwise" / "profiles" / "o.json"
    assert json.loads(written.read_text())["rows_in"] == 1_000
    assert f"wrote {written}" in done.stdout.replace("\n", "")
    assert os.listdir(work) == []  # no ./profiles


def test_profile_of_a_missing_file_is_a_typed_error(tmp_path: Path) -> None:
    done = chunkwise("profile", str(tmp_path / "nope.csv"), "--out-dir", str(tmp_path))
    assert done.returncode == 66
    assert "InputNotFoundError" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("args", "option"), [
    (["profile", "{src}", "--block-size", "0"], "--block-size"),
    (["profile", "{src}", "--threads", "0"], "--threads"),
    (["size", "--block-sizes", "0,4MiB"], "--block-sizes"),
])
def test_sizing_commands_refuse_unusable_options(tmp_path: Path, args: list[str],
                                                 option: str) -> None:
    # profile --block-size 0 used to measure a run that read nothing.
    src = tmp_path / "o.csv"
    src.write_text("a,b\n1,2\n", "utf-8")
    done = chunkwise(*[a.format(src=src) for a in args], "--out-dir", str(tmp_path / "p"))
    assert done.returncode == 2, done.stderr
    assert f"Invalid value for {option}: must be at least 1" in done.stderr
    assert not (tmp_path / "p").exists()


def test_without_the_sizing_extra_the_commands_say_what_to_install(tmp_path: Path) -> None:
    """matplotlib made unfindable in the child: a typed error naming the extra, exit 69."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import importlib.util\n"
        "_find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'matplotlib' else _find(n, *a)\n")
    src = tmp_path / "o.csv"
    src.write_text("a,b\n1,2\n")
    done = subprocess.run([sys.executable, "-m", "engine.cli.app", "profile", str(src), "--out-dir",
                           str(tmp_path / "p")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(hide)})
    assert done.returncode == 69, done.stderr
    assert "(matplotlib missing)" in done.stderr
    assert "pip install 'chunkwise[sizing]'" in done.stderr and "Traceback" not in done.stderr
