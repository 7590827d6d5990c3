"""Build the real layer and test what it holds: a host build runs, an arm64 build would load.

Both builds download the pinned wheels once (``~/.cache/chunkwise-layer`` and pip's cache keep
them for the next run). When the package index cannot be reached and the cache cannot serve the
pins, the build raises ``LayerDownloadError``: on a developer's machine these tests are then
skipped with that reason; in CI (``CI`` set, as ``.ci/run`` does) they fail, so that a CI without
the index never stays green. Any other failure fails them.

- Host build (this machine's Python, architecture and glibc): the zip is unpacked and a clean
  interpreter (``-I -S``: no site-packages, no PYTHONPATH) with only the layer on ``sys.path``
  imports the engine and converts a CSV file to Parquet; every handler imports from the layer
  plus the packages the Lambda runtime provides.
- python3.13 arm64 build (what the template deploys): the size bars, every ELF file is aarch64
  (``e_machine`` read here with ``struct``), every NEEDED library is in the layer or a system
  library of Amazon Linux 2023, the layer holds exactly the pinned versions, and a second build
  gives the same bytes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli.app import app
from engine.layer import LayerDownloadError, LayerReport, Target, build_layer
from engine.layer.elf import read_elf
from engine.layer.pins import RUNTIME_PROVIDED, read_pins

ROOT = Path(__file__).resolve().parents[3]
PINS = ROOT / "layer" / "requirements.txt"
MiB = 2**20
MAX_UNZIPPED = 150 * MiB  # issue 6's bars for the python3.13 arm64 layer
MAX_ZIPPED = 50 * MiB
EM_AARCH64 = 183

# What the Lambda python3.12+ runtimes' OS, Amazon Linux 2023, provides in /lib64 (aarch64
# names): glibc 2.34 (libc, libm, libpthread, libdl, librt, libutil, libresolv, the loader),
# libgcc_s and libstdc++ from GCC 11 (the runtime's own python3.13 links them), zlib. No
# OpenSSL, libgfortran or BLAS: wheels needing those must bundle them (numpy.libs does).
AL2023_SYSTEM_LIBS = {
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
    "libresolv.so.2", "ld-linux-aarch64.so.1", "libgcc_s.so.1", "libstdc++.so.6", "libz.so.1",
}
HANDLERS = sorted(p.parent.name for p in (ROOT / "lambda").glob("*/handler.py"))


@dataclass
class Built:
    report: LayerReport
    zip_path: Path
    python_dir: Path  # the zip, unpacked: <dir>/python


def build_or_skip(target: Target, dest: Path, **options: object) -> LayerReport:
    """Build the layer; without the package index, skip, or fail in CI."""
    try:
        return build_layer(target, dest, pins_path=PINS, **options)  # type: ignore[arg-type]
    except LayerDownloadError as exc:
        if os.environ.get("CI") is not None:
            pytest.fail(f"CI cannot reach the package index to build the layer: {exc}")
        pytest.skip(f"network: {exc}")


def test_without_the_index_the_builds_fail_in_ci_and_skip_elsewhere(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def offline(*args: object, **kwargs: object) -> LayerReport:
        raise LayerDownloadError("no index reachable")

    monkeypatch.setattr(sys.modules[__name__], "build_layer", offline)
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="package index"):
        build_or_skip(Target.host(), tmp_path / "layer.zip")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no index reachable"):
        build_or_skip(Target.host(), tmp_path / "layer.zip")


def unpack(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(dest)
    return dest / "python"


@pytest.fixture(scope="module")
def host_layer(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("host-layer")
    # The bars are for the arm64 target; a host build is for running the tests.
    report = build_or_skip(Target.host(), tmp / "layer.zip", max_unzipped=None, max_zipped=None)
    return Built(report, tmp / "layer.zip", unpack(tmp / "layer.zip", tmp / "unpacked"))


@pytest.fixture(scope="module")
def arm64_layer(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("arm64-layer")
    # No budget here: the size bars are asserted by their own test, with the figures.
    report = build_or_skip(Target.parse("3.13", "arm64"), tmp / "layer.zip", max_unzipped=None,
                           max_zipped=None)
    return Built(report, tmp / "layer.zip", unpack(tmp / "layer.zip", tmp / "unpacked"))


def run_clean(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """This interpreter in isolated mode without site: the standard library and nothing else."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    return subprocess.run([sys.executable, "-I", "-S", "-c", code, *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


# The child reports where everything it imported came from: every module must come from the
# directories it was given or from the standard library (the paths left on sys.path by -I -S).
ORIGINS = """
import json, sys
def origins(allowed):
    stdlib = [p for p in sys.path if p and p not in allowed]
    bad = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and not path.startswith(tuple(allowed) + tuple(stdlib)):
            bad[name] = path
    return stdlib, bad
"""

CONVERT = ORIGINS + r"""
layer = sys.argv[1]
sys.path.insert(0, layer)
import engine
report = engine.transform(sys.argv[2], sys.argv[3])
import pyarrow.parquet as pq
table = pq.read_table(sys.argv[3])
stdlib, bad = origins([layer])
print(json.dumps({"engine": engine.__file__, "pyarrow": sys.modules["pyarrow"].__file__,
                  "rows_in": report.rows_in, "rows_out": report.rows_out,
                  "table": table.to_pydict(), "types": [str(t) for t in table.schema.types],
                  "at": [str(v) for v in table.column("at").to_pylist()],
                  "stdlib": stdlib, "outside": bad}, default=str))
"""


def test_host_layer_converts_a_csv_with_nothing_else_on_the_path(host_layer: Built,
                                                                  tmp_path: Path) -> None:
    source = tmp_path / "orders.csv"
    source.write_text("id,country,amount,at\n1,NA,12.50,2024-01-02T03:04:05\n"
                      "2,FR,,2024-01-03T00:00:00\n3,\"D,E\",7,2024-01-04T10:00:00\n")
    result = run_clean(CONVERT, str(host_layer.python_dir), str(source),
                       str(tmp_path / "orders.parquet"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    layer = str(host_layer.python_dir)
    assert data["engine"].startswith(layer) and data["pyarrow"].startswith(layer)
    assert not any("site-packages" in p for p in data["stdlib"]), data["stdlib"]
    assert not any(p.startswith(sys.prefix) for p in data["stdlib"] if sys.prefix
                   != sys.base_prefix), "the test venv is not on the child's path"
    assert data["outside"] == {}
    assert data["rows_in"] == data["rows_out"] == 3
    assert data["table"]["id"] == [1, 2, 3]
    assert data["table"]["country"] == ["NA", "FR", "D,E"], "NA stays a country code"
    assert data["table"]["amount"] == [12.5, None, 7.0]
    assert data["types"][3].startswith("timestamp")
    assert data["at"][0].startswith("2024-01-02 03:04:05")


IMPORT_HANDLER = ORIGINS + """
handler_dir, layer, runtime = sys.argv[1:4]
sys.path[:0] = [handler_dir, layer, runtime]
import handler
assert callable(handler.handler)
stdlib, bad = origins([handler_dir, layer, runtime])
print(json.dumps({"outside": bad, "boto3": "boto3" in sys.modules,
                  "loaded": sorted({n.split(".")[0] for n in sys.modules})}))
"""


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the Lambda runtime adds to the path (/var/runtime): boto3 and its dependencies.

    Linked from this environment: the runtime's versions are not ours to pick either.
    """
    runtime = tmp_path_factory.mktemp("var-runtime")
    modules = {"boto3": "boto3", "botocore": "botocore", "s3transfer": "s3transfer",
               "jmespath": "jmespath", "urllib3": "urllib3", "python-dateutil": "dateutil",
               "six": "six"}
    assert set(modules) == RUNTIME_PROVIDED
    for module in modules.values():
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, module
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source)
    return runtime


@pytest.mark.parametrize("step", HANDLERS)
def test_every_handler_imports_from_the_layer_and_the_runtime(host_layer: Built,
                                                              runtime_dir: Path,
                                                              step: str) -> None:
    result = run_clean(IMPORT_HANDLER, str(ROOT / "lambda" / step), str(host_layer.python_dir),
                       str(runtime_dir), cwd=runtime_dir)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["outside"] == {}
    assert not {"typer", "rich", "click", "pandas", "matplotlib"} & set(data["loaded"])


def test_the_engines_tools_are_left_out_of_the_layer(host_layer: Built) -> None:
    engine_dir = host_layer.python_dir / "engine"
    assert (engine_dir / "run.py").is_file() and (engine_dir / "aws" / "steps.py").is_file()
    for folder in ("cli", "gen", "sizing", "cost", "layer", "aws/local", "resources"):
        assert not (engine_dir / folder).exists(), folder
    assert not (engine_dir / "aws" / "remote.py").exists()


# ----------------------------------------------------------------------------- python3.13 arm64
def elf_machine(path: Path) -> int:
    """``e_machine``: the half-word at offset 18 of the ELF header, in the file's byte order."""
    with path.open("rb") as fh:
        head = fh.read(20)
    order = "<" if head[5] == 1 else ">"
    return struct.unpack_from(order + "H", head, 18)[0]


def elf_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with path.open("rb") as fh:
                if fh.read(4) == b"\x7fELF":
                    found.append(path)
    return found


def test_arm64_layer_meets_the_size_bars(arm64_layer: Built) -> None:
    report = arm64_layer.report
    assert report.strip.tool is not None, (
        f"{report.strip.note}: the bars are measured on the stripped layer that `chunkwise "
        f"layer build` produces where binutils for aarch64 is installed (.ci/run installs it)")
    assert arm64_layer.zip_path.stat().st_size == report.zipped
    unpacked = sum(p.stat().st_size for p in arm64_layer.python_dir.rglob("*") if p.is_file())
    assert unpacked == report.unzipped
    assert report.unzipped <= MAX_UNZIPPED, report.table()
    assert report.zipped <= MAX_ZIPPED, report.table()


def test_every_elf_in_the_arm64_layer_is_aarch64(arm64_layer: Built) -> None:
    objects = elf_files(arm64_layer.python_dir)
    assert len(objects) >= 40, "pyarrow, numpy, pydantic-core, zstandard ... ship shared objects"
    wrong = {str(p.relative_to(arm64_layer.python_dir)): elf_machine(p) for p in objects
             if elf_machine(p) != EM_AARCH64}
    assert wrong == {}


def test_every_needed_library_is_in_the_layer_or_al2023(arm64_layer: Built) -> None:
    root = arm64_layer.python_dir
    readelf = shutil.which("aarch64-linux-gnu-readelf") or shutil.which("readelf")
    missing = {}
    for path in elf_files(root):
        info = read_elf(path)
        if readelf:  # cross-check the pure-Python reader where binutils is installed
            out = subprocess.run([readelf, "-d", str(path)], capture_output=True,
                                 text=True).stdout
            assert info.needed == tuple(re.findall(r"\(NEEDED\).*\[(.+)\]", out)), path
        folders = [Path(os.path.normpath(entry.replace("$ORIGIN", str(path.parent))))
                   for entry in info.search_path]
        for library in info.needed:
            if library in AL2023_SYSTEM_LIBS:
                continue
            if not any((folder / library).is_file() and folder.resolve().is_relative_to(root)
                       for folder in folders):
                missing.setdefault(str(path.relative_to(root)), []).append(library)
    assert missing == {}


def test_arm64_layer_holds_exactly_the_pinned_versions_and_what_was_trimmed_is_gone(
        arm64_layer: Built) -> None:
    root = arm64_layer.python_dir
    shipped = {}
    for dist_info in root.glob("*.dist-info"):
        name, version = dist_info.name.removesuffix(".dist-info").rsplit("-", 1)
        shipped[name.lower().replace("_", "-")] = version
    pins = read_pins(PINS)
    assert shipped == {n: p.version for n, p in pins.items() if not p.runtime_provided}
    assert (root / "engine" / "aws" / "steps.py").is_file()
    assert (root / "pyarrow" / "libarrow_substrait.so.2600").is_file()
    assert (root / "pyarrow" / "libarrow.so.2600").is_file()
    names = {p.relative_to(root).as_posix() for p in root.rglob("*")}
    for gone in ("pyarrow/tests", "pyarrow/include", "numpy/_core/tests", "numpy/f2py",
                 "boto3", "botocore", "typer", "rich", "click", "pandas"):
        assert gone not in names
    assert not [n for n in names if "flight" in n or n.endswith((".pyx", ".pxd"))]
    # Bytecode only for python3.13, beside its source, hash-based and unchecked (no mtimes);
    # none at all when the build found no Python 3.13 (the report says so).
    pycs = [root / n for n in names if n.endswith(".pyc")]
    bytecode = arm64_layer.report.bytecode
    if bytecode.python is None:
        assert pycs == [] and "no Python 3.13 found" in bytecode.note
        return
    assert len(pycs) == len(bytecode.files) > 100
    for pyc in pycs:
        assert pyc.parent.name == "__pycache__" and pyc.name.endswith(".cpython-313.pyc"), pyc
        assert (pyc.parent.parent / (pyc.name.split(".")[0] + ".py")).is_file(), pyc
        assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 1, pyc
    assert (root / "engine/aws/__pycache__/steps.cpython-313.pyc").is_file()
    sonames = [n for n in names if re.search(r"libarrow_python\.so", n)]
    assert sonames == ["pyarrow/libarrow_python.so.2600"], "one copy of each shared library"


def test_arm64_build_is_deterministic(arm64_layer: Built, tmp_path: Path) -> None:
    again = build_or_skip(Target.parse("3.13", "arm64"), tmp_path / "again.zip",
                          max_unzipped=None, max_zipped=None)
    assert again.sha256 == arm64_layer.report.sha256
    assert (tmp_path / "again.zip").read_bytes() == arm64_layer.zip_path.read_bytes()
    with zipfile.ZipFile(arm64_layer.zip_path) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


# ------------------------------------------------------------------------------ CLI failures
def test_cli_over_budget_fails_loudly_and_writes_nothing(arm64_layer: Built,
                                                         tmp_path: Path) -> None:
    output = tmp_path / "layer.zip"
    result = CliRunner().invoke(app, ["layer", "build", "--no-strip", "--max-unzipped", "100MiB",
                                      "-o", str(output)])
    assert result.exit_code == 73, result.output
    assert "LayerTooLargeError" in result.output and "MiB unzipped > 100.0" in result.output
    assert "stripping disabled" in result.output
    assert re.search(r"^pyarrow\s+26\.", result.output, re.MULTILINE), "the table is printed"
    assert not output.exists()


def test_cli_unreachable_index_is_exit_74(tmp_path: Path) -> None:
    """pip pointed at a closed loopback port, with no wheel cache and no pip configuration."""
    env = {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
           "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "", "PIP_NO_CACHE_DIR": "1"}
    result = CliRunner().invoke(app, ["layer", "build", "-o", str(tmp_path / "layer.zip"),
                                      "--cache-dir", str(tmp_path / "empty-cache")], env=env)
    assert result.exit_code == 74, result.output
    assert "LayerDownloadError: cannot reach the package index" in result.output
    assert not (tmp_path / "layer.zip").exists()
