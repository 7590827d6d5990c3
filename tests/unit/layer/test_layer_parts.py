"""engine.layer without the network: targets, pins, ELF reading, trimming, checks, the zip.

Shared objects are synthetic ELF files written here (:func:`make_elf`), so every case of the
reader and of the checks is exercised on both machines without downloading a wheel. The builds
themselves are in ``tests/functional/layer/test_layer_build.py``.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from typer.testing import CliRunner

from engine.cli.app import app
from engine.errors import EngineError, TransientError
from engine.layer import LayerPinsError, LayerTargetError, Target
from engine.layer.build import LayerReport
from engine.layer.bytecode import HOT_MODULES, LAYER_MOUNT, compile_hot_modules, find_python
from engine.layer.check import SYSTEM_LIBRARIES, check_layer
from engine.layer.download import Wheel, _collected, _failure
from engine.layer.elf import ElfError, is_elf, read_elf
from engine.layer.errors import LayerDownloadError, LayerError, WheelNotFoundError
from engine.layer.package import FIXED_TIMESTAMP, PackageSize, write_zip
from engine.layer.pins import CLI_ONLY, RUNTIME_PROVIDED, Pin, read_pins
from engine.layer.trim import TRIM_RULES, StripResult, dedupe_shared_objects, strip_pyarrow, trim

ROOT = Path(__file__).resolve().parents[3]
PINS = ROOT / "layer" / "requirements.txt"
AARCH64, X86_64 = 183, 62


def make_elf(path: Path, *, machine: int = AARCH64, needed: tuple[str, ...] = (),
             soname: str | None = None, runpath: str | None = None, rpath: str | None = None,
             bits: int = 64, order: str = "<", padding: int = 0) -> Path:
    """A minimal shared object: ELF header, .dynstr, .dynamic and a section name table."""
    strings = b"\x00"
    offsets: dict[str, int] = {}
    for text in (*needed, soname, runpath, rpath):
        if text is not None and text not in offsets:
            offsets[text] = len(strings)
            strings += text.encode() + b"\x00"
    entries = [(1, offsets[n]) for n in needed]
    entries += [(14, offsets[soname])] if soname else []
    entries += [(15, offsets[rpath])] if rpath else []
    entries += [(29, offsets[runpath])] if runpath else []
    entries.append((0, 0))
    word = "Q" if bits == 64 else "I"
    dyn = b"".join(struct.pack(order + ("qQ" if bits == 64 else "iI"), t, v) for t, v in entries)
    names = b"\x00.dynstr\x00.dynamic\x00"
    ehsize = 64 if bits == 64 else 52
    shentsize = 64 if bits == 64 else 40
    body = b"\x00" * padding
    str_off = ehsize + len(body)
    dyn_off = str_off + len(strings)
    names_off = dyn_off + len(dyn)
    sh_off = names_off + len(names)
    section_fmt = order + ("IIQQQQIIQQ" if bits == 64 else "IIIIIIIIII")

    def section(name: int, kind: int, offset: int, size: int, link: int = 0) -> bytes:
        return struct.pack(section_fmt, name, kind, 0, 0, offset, size, link, 0, 1, 0)

    sections = (section(0, 0, 0, 0) + section(1, 3, str_off, len(strings))
                + section(9, 6, dyn_off, len(dyn), link=1) + section(0, 3, names_off, len(names)))
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1 if order == "<" else 2, 1]) + bytes(9)
    header = struct.pack(order + f"HHI{word}{word}{word}IHHHHHH", 3, machine, 1, 0, 0, sh_off,
                         0, ehsize, 0, 0, shentsize, 4, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ident + header + body + strings + dyn + names + sections)
    return path


# ------------------------------------------------------------------------------------ targets
def test_target_defaults_are_what_the_template_deploys() -> None:
    target = Target.parse()
    assert (target.python, target.arch, target.machine) == ((3, 13), "arm64", "aarch64")
    assert target.glibc == (2, 34) and target.os_name == "Amazon Linux 2023"
    assert target.runtime == "python3.13" and target.elf_machine == AARCH64
    tags = target.platform_tags()
    assert tags[0] == "manylinux_2_34_aarch64" and "manylinux_2_28_aarch64" in tags
    assert "manylinux2014_aarch64" in tags and "manylinux_2_17_aarch64" in tags
    assert not any("2_16" in t or "manylinux1" in t or "x86_64" in t for t in tags)
    args = target.pip_args()
    assert "--only-binary=:all:" in args
    assert args[args.index("--python-version") + 1] == "3.13"
    assert args[args.index("--implementation") + 1] == "cp"
    assert ["--abi", "cp313"] == args[args.index("--abi"):args.index("--abi") + 2]


@pytest.mark.parametrize(("python", "arch", "glibc", "expected"), [
    ("3.11", "x86_64", None, ("python3.11", "x86_64", (2, 26))),
    ("python3.12", "aarch64", None, ("python3.12", "arm64", (2, 34))),
    ("3.13", "AMD64", "2.36", ("python3.13", "x86_64", (2, 36))),
])
def test_target_parse(python: str, arch: str, glibc: str | None,
                      expected: tuple[str, str, tuple[int, int]]) -> None:
    target = Target.parse(python, arch, glibc)
    assert (target.runtime, target.arch, target.glibc) == expected


def test_x86_64_tags_reach_back_to_manylinux1() -> None:
    tags = Target.parse("3.13", "x86_64").platform_tags()
    assert {"manylinux1_x86_64", "manylinux2010_x86_64", "manylinux_2_5_x86_64"} <= set(tags)


@pytest.mark.parametrize(("python", "arch", "glibc", "message"), [
    ("3.13", "sparc", None, "unknown architecture 'sparc'"),
    ("3.9", "arm64", None, "no Lambda runtime for Python '3.9'"),
    ("three", "arm64", None, "invalid Python version .three.: expected MAJOR.MINOR, e.g. 3.13"),
    ("3.13", "arm64", "2.12", "older than any manylinux wheel"),
    ("3.13", "arm64", "glibc", "invalid glibc version .glibc.: expected MAJOR.MINOR, e.g. 2.34"),
])
def test_target_rejects_what_lambda_does_not_run(python: str, arch: str, glibc: str | None,
                                                 message: str) -> None:
    with pytest.raises(LayerTargetError, match=message) as info:
        Target.parse(python, arch, glibc)
    assert info.value.exit_code == 2


def test_host_target_is_this_interpreter() -> None:
    target = Target.host()
    assert target.python == sys.version_info[:2]
    assert target.machine == os.uname().machine


# --------------------------------------------------------------------------------------- pins
def test_pins_file_parses_and_keeps_cli_only_packages_out() -> None:
    pins = read_pins(PINS)
    assert {"pyarrow", "numpy", "aws-lambda-powertools", "pydantic-core"} <= set(pins)
    assert not CLI_ONLY & set(pins)
    assert RUNTIME_PROVIDED <= set(pins), "CI tests against pinned runtime-provided packages too"
    assert pins["boto3"].runtime_provided and not pins["pyarrow"].runtime_provided


def test_every_runtime_dependency_is_pinned_within_pyproject_ranges() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = read_pins(PINS)
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = requirement.name.lower().replace("_", "-")
        if name in CLI_ONLY:
            continue
        assert name in pins, f"{name} is a runtime dependency but not pinned for the layer"
        assert requirement.specifier.contains(pins[name].version, prereleases=True), (
            f"{pins[name]} is outside pyproject.toml's {spec!r}")


@pytest.mark.parametrize(("text", "message"), [
    ("pyarrow>=17\n", "not an exact pin"),
    ("pyarrow==26.0.1\nPyArrow==26.0.1\n", "pinned twice"),
    ("typer==0.19.2\n", "CLI-only"),
    ("# nothing\n", "no pins"),
    ("numpy==2.4.6; python_version>'3'\n", "not an exact pin"),
])
def test_bad_pins_are_typed_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    with pytest.raises(LayerPinsError, match=message) as info:
        read_pins(path)
    assert info.value.exit_code == 78 and info.value.uri == str(path)


def test_pins_accept_comments_extras_and_normalise_names(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("# header\n\nsmart_open[s3]==9.0.2   # why\nPyYAML == 6.0.4\n")
    pins = read_pins(path)
    assert {name: str(pin) for name, pin in pins.items()} == {
        "smart-open": "smart-open==9.0.2", "pyyaml": "pyyaml==6.0.4"}
    assert pins["pyyaml"].line == 4


def test_missing_pins_file(tmp_path: Path) -> None:
    with pytest.raises(LayerPinsError, match="cannot read"):
        read_pins(tmp_path / "absent.txt")


# ------------------------------------------------------------------------------- pip failures
PIP_OFFLINE = """\
WARNING: Retrying (Retry(total=1, connect=None, read=None, redirect=None, status=None)) after \
connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object \
at 0x7f>: Failed to establish a new connection: [Errno -3] Temporary failure in name resolution')'
ERROR: Could not find a version that satisfies the requirement pyarrow==26.0.1 (from versions: none)
ERROR: No matching distribution found for pyarrow==26.0.1
"""
PIP_NO_WHEEL = """\
ERROR: Could not find a version that satisfies the requirement pyarrow==26.0.1 (from versions: \
10.0.1, 20.0.0)
ERROR: No matching distribution found for pyarrow==26.0.1
"""
PIP_NO_WHEEL_RESOLVER = """\
ERROR: Cannot install pyarrow==26.0.1 because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested pyarrow==26.0.1
    The user requested (constraint) pyarrow==26.0.1

Additionally, some packages in these conflicts have no matching distributions available for your \
environment:
    pyarrow

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/...
"""


def test_pip_network_failure_is_transient() -> None:
    error = _failure(PIP_OFFLINE, Target.parse())
    assert isinstance(error, LayerDownloadError) and isinstance(error, TransientError)
    assert error.exit_code == 74 and "cannot reach the package index" in str(error)


@pytest.mark.parametrize("output", [PIP_NO_WHEEL, PIP_NO_WHEEL_RESOLVER])
def test_pip_missing_wheel_names_the_package_and_target(output: str) -> None:
    error = _failure(output, Target.parse("3.11", "arm64"))
    assert isinstance(error, WheelNotFoundError) and error.exit_code == 69
    assert "pyarrow" in str(error) and "python3.11 arm64" in str(error)
    assert "glibc 2.26" in str(error), "the hint says why python3.11 lacks wheels"


def test_other_pip_failures_carry_pips_message() -> None:
    error = _failure("Collecting x\nERROR: Invalid requirement: 'x=='\n", Target.parse())
    assert type(error) is LayerError and "Invalid requirement" in str(error)


def test_an_unpinned_dependency_fails_the_build(tmp_path: Path) -> None:
    pins = {"pydantic": Pin("pydantic", "2.14.4", 1)}
    (tmp_path / "pydantic-2.14.4-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "annotated_types-0.8.0-py3-none-any.whl").write_bytes(b"")
    with pytest.raises(LayerPinsError, match="does not pin it: add annotated-types==0.8.0"):
        _collected(tmp_path, pins, Target.parse())
    (tmp_path / "annotated_types-0.8.0-py3-none-any.whl").unlink()
    wheels = _collected(tmp_path, pins, Target.parse())
    assert wheels == {"pydantic": Wheel("pydantic", "2.14.4",
                                        tmp_path / "pydantic-2.14.4-py3-none-any.whl")}


# ---------------------------------------------------------------------------------------- ELF
@pytest.mark.parametrize(("bits", "order"), [(64, "<"), (64, ">"), (32, "<"), (32, ">")])
def test_read_elf_dynamic_section(tmp_path: Path, bits: int, order: str) -> None:
    path = make_elf(tmp_path / "libx.so.1", machine=X86_64, needed=("liby.so.2", "libc.so.6"),
                    soname="libx.so.1", runpath="$ORIGIN:$ORIGIN/../lib", bits=bits, order=order)
    info = read_elf(path)
    assert info.machine == X86_64
    assert info.needed == ("liby.so.2", "libc.so.6")
    assert info.soname == "libx.so.1"
    assert info.search_path == ("$ORIGIN", "$ORIGIN/../lib")


def test_runpath_wins_over_rpath(tmp_path: Path) -> None:
    info = read_elf(make_elf(tmp_path / "a.so", rpath="/old", runpath="$ORIGIN"))
    assert info.search_path == ("$ORIGIN",)
    assert read_elf(make_elf(tmp_path / "b.so", rpath="$ORIGIN/r")).search_path == ("$ORIGIN/r",)


def test_read_elf_matches_the_interpreters_own_extension_modules() -> None:
    """A real object of this machine: _ctypes or another lib-dynload module NEEDs libc."""
    dynload = Path(os.__file__).parent / "lib-dynload"
    module = next(iter(sorted(dynload.glob("_ctypes*.so"))), None) or next(dynload.glob("*.so"))
    info = read_elf(module)
    assert info.machine == Target.host().elf_machine
    readelf = shutil.which("readelf")
    if readelf:
        out = subprocess.run([readelf, "-d", str(module)], capture_output=True, text=True).stdout
        listed = tuple(line.split("[", 1)[1].rstrip("]") for line in out.splitlines()
                       if "(NEEDED)" in line)
        assert info.needed == listed


def test_not_elf_and_truncated(tmp_path: Path) -> None:
    text = tmp_path / "a.py"
    text.write_text("print(1)\n")
    assert not is_elf(text) and not is_elf(tmp_path)
    with pytest.raises(ElfError, match="not an ELF"):
        read_elf(text)
    truncated = tmp_path / "t.so"
    truncated.write_bytes(make_elf(tmp_path / "full.so", needed=("liba.so",)).read_bytes()[:80])
    assert is_elf(truncated)
    with pytest.raises(ElfError, match="outside the file"):
        read_elf(truncated)


# -------------------------------------------------------------------------------- trim, dedupe
def test_trim_rules_remove_what_the_runtime_never_loads(tmp_path: Path) -> None:
    removed_paths = [
        "pyarrow/tests/test_csv.py", "pyarrow/include/arrow/api.h", "pyarrow/lib.pyx",
        "pyarrow/includes/libarrow.pxd", "pyarrow/lib.pxi", "pyarrow/src/arrow/python/x.cc",
        "pyarrow/libarrow_flight.so.2600", "pyarrow/_flight.cpython-313-aarch64-linux-gnu.so",
        "pyarrow/flight.py", "pyarrow/libarrow_s3.so.2600", "pyarrow/_s3fs.pyx",
        "pyarrow/_pyarrow_cpp_tests.cpython-313-aarch64-linux-gnu.so",
        "numpy/tests/test_public_api.py", "numpy/_core/tests/data/x.csv", "numpy/f2py/f2py2e.py",
        "numpy/_core/include/numpy/ndarrayobject.h", "numpy/_core/lib/libnpymath.a",
        "numpy/_core/_multiarray_tests.cpython-313-aarch64-linux-gnu.so",
        "zstandard/_cffi.cpython-313-aarch64-linux-gnu.so", "zstandard/backend_cffi.py",
        "numpy/__init__.pyi", "yaml/__pycache__/x.cpython-311.pyc", "numpy/__init__.pxd",
        "numpy/random/_examples/cython/extending.pyx", "numpy/random/c_distributions.pxd",
        "aws_lambda_powertools/event_handler/openapi/swagger_ui/swagger-ui-bundle.min.js",
    ]
    kept_paths = [
        "pyarrow/__init__.py", "pyarrow/libarrow.so.2600", "pyarrow/libarrow_substrait.so.2600",
        "pyarrow/_substrait.cpython-313-aarch64-linux-gnu.so", "pyarrow/fs.py",
        "pyarrow/_fs.cpython-313-aarch64-linux-gnu.so", "pyarrow/_compute.cpython-313-x.so",
        "numpy/testing/__init__.py", "numpy/_core/_multiarray_umath.cpython-313-x.so",
        "numpy.libs/libscipy_openblas64_-1b7162d6.so", "zstandard/backend_c.cpython-313-x.so",
        "zstandard/py.typed", "engine/py.typed", "engine/aws/steps.py",
        "aws_lambda_powertools/event_handler/openapi/swagger_ui/html.py",
    ]
    for relpath in removed_paths + kept_paths:
        (tmp_path / relpath).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relpath).write_bytes(b"x")
    removed = trim(tmp_path)
    gone = {p.as_posix() for paths in removed.values() for p in paths}
    assert gone == set(removed_paths)
    assert all((tmp_path / p).exists() for p in kept_paths)
    assert not (tmp_path / "pyarrow" / "tests").exists(), "emptied directories go too"
    assert set(removed) == {rule.name for rule in TRIM_RULES}
    assert [p.as_posix() for p in removed["pyarrow flight"]] == sorted(
        p for p in removed_paths if "flight" in p)


def test_dedupe_keeps_the_soname_copy_only(tmp_path: Path) -> None:
    original = make_elf(tmp_path / "pyarrow" / "libarrow_python.so.2600",
                        soname="libarrow_python.so.2600", needed=("libc.so.6",))
    for name in ("libarrow_python.so", "libarrow_python.so.2600.1.0"):
        shutil.copyfile(original, original.with_name(name))
    different = make_elf(tmp_path / "pyarrow" / "libother.so", soname="libother.so.1")
    make_elf(tmp_path / "pyarrow" / "libother.so.1", soname="libother.so.1", padding=8)
    removed = dedupe_shared_objects(tmp_path)
    assert sorted(p.as_posix() for p in removed) == [
        "pyarrow/libarrow_python.so", "pyarrow/libarrow_python.so.2600.1.0"]
    assert original.exists()
    assert different.exists(), "not byte-identical: not a duplicate"


def test_strip_falls_back_and_says_why_when_no_tool_fits(tmp_path: Path) -> None:
    make_elf(tmp_path / "pyarrow" / "libarrow.so.2600", machine=AARCH64)
    result = strip_pyarrow(tmp_path, Target.parse(), which=lambda tool: None)
    assert result == StripResult(tool=None, note=result.note)
    assert "no strip tool for aarch64" in result.note
    assert "binutils-aarch64-linux-gnu" in result.note


@pytest.mark.skipif(shutil.which("strip") is None, reason="needs binutils' strip")
def test_strip_uses_the_host_tool_on_host_objects(tmp_path: Path) -> None:
    dynload = Path(os.__file__).parent / "lib-dynload"
    module = next(dynload.glob("*.so"))
    copy = tmp_path / "pyarrow" / module.name
    copy.parent.mkdir()
    shutil.copyfile(module, copy)
    before = read_elf(copy)
    result = strip_pyarrow(tmp_path, Target.host(),
                           which=lambda tool: shutil.which(tool) if tool == "strip" else None)
    assert result.tool == "strip" and result.files == 1 and result.saved >= 0
    after = read_elf(copy)
    assert (after.machine, after.needed, after.soname) == (before.machine, before.needed,
                                                           before.soname)


def test_host_strip_cannot_strip_another_machine(tmp_path: Path) -> None:
    if shutil.which("strip") is None or Target.host().machine == "aarch64":
        pytest.skip("needs an x86_64 host with binutils' strip")
    make_elf(tmp_path / "pyarrow" / "libarrow.so.2600", machine=AARCH64)
    target = Target.parse()
    result = strip_pyarrow(
        tmp_path, target,
        which=lambda tool: shutil.which("strip") if tool.endswith("strip") else None)
    assert result.tool is None
    assert "cannot read aarch64 objects" in result.note


# ------------------------------------------------------------------------------------- checks
def test_check_layer_resolves_runpath_and_system_libraries(tmp_path: Path) -> None:
    make_elf(tmp_path / "pkg" / "_ext.so", needed=("libfoo-1a2b.so.1", "libstdc++.so.6"),
             runpath="$ORIGIN/../pkg.libs")
    make_elf(tmp_path / "pkg.libs" / "libfoo-1a2b.so.1", soname="libfoo-1a2b.so.1",
             needed=("libc.so.6", "ld-linux-aarch64.so.1"))
    assert check_layer(tmp_path, Target.parse()) == []


def test_check_layer_reports_each_problem(tmp_path: Path) -> None:
    make_elf(tmp_path / "a" / "x86.so", machine=X86_64)
    make_elf(tmp_path / "a" / "needs_ssl.so", needed=("libcrypto.so.3",))
    make_elf(tmp_path / "a" / "no_runpath.so", needed=("libbar.so",))
    make_elf(tmp_path / "a" / "libbar.so", soname="libbar.so")
    make_elf(tmp_path / "a" / "outside.so", needed=("libc.so.7",), runpath="/usr/lib64")
    problems = {p.path: p.problem for p in check_layer(tmp_path, Target.parse())}
    assert problems["a/x86.so"] == "built for x86_64, not aarch64"
    assert problems["a/needs_ssl.so"].startswith("needs libcrypto.so.3")
    assert "Amazon Linux 2023" in problems["a/needs_ssl.so"]
    assert problems["a/no_runpath.so"].startswith("needs libbar.so: not in its search path "
                                                  "(no RUNPATH)")
    assert problems["a/outside.so"].startswith("needs libc.so.7")
    assert "a/libbar.so" not in problems
    assert "libcrypto.so.3" not in SYSTEM_LIBRARIES


# -------------------------------------------------------------------------------- zip, report
def test_zip_is_deterministic_with_fixed_times_and_modes(tmp_path: Path) -> None:
    tree = tmp_path / "python"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "b.py").write_text("b = 1\n")
    (tree / "a.py").write_text("a = 1\n" * 100)
    make_elf(tree / "pkg" / "_x.so")
    os.chmod(tree / "a.py", 0o600)
    first = write_zip(tree, tmp_path / "one.zip")
    os.utime(tree / "a.py", (1e9, 1e9))
    os.chmod(tree / "a.py", 0o777)
    write_zip(tree, tmp_path / "two.zip")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.zip") as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == ["python/a.py", "python/pkg/_x.so", "python/pkg/b.py"]
        assert {i.date_time for i in infos} == {FIXED_TIMESTAMP}
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in infos}
        assert modes == {"python/a.py": 0o644, "python/pkg/_x.so": 0o755,
                         "python/pkg/b.py": 0o644}
        assert archive.read("python/a.py") == b"a = 1\n" * 100
    assert set(first) == {"a.py", "pkg/_x.so", "pkg/b.py"} and first["a.py"] < 600


def _report(unzipped: int, zipped: int) -> LayerReport:
    row = PackageSize("pyarrow", "26.0.1", 2, unzipped, zipped, 5)
    return LayerReport(target=Target.parse(), output=None, sha256="0" * 64, packages=[row],
                       unzipped=unzipped, zipped=zipped, removed=5, trimmed={},
                       strip=StripResult(tool="strip", files=1, saved=5))


def test_budget_and_table() -> None:
    mib = 2**20
    assert _report(150 * mib, 50 * mib).over_budget == []
    over = _report(150 * mib + 1, 51 * mib).over_budget
    assert over == ["150.0 MiB unzipped > 150.0", "51.0 MiB zipped > 50.0"]
    table = _report(3 * mib, mib).table().splitlines()
    assert table[0].split() == ["package", "version", "files", "unzipped", "MiB", "zipped", "MiB",
                                "trimmed", "MiB", "of", "which", "pyc", "MiB"]
    assert table[2].split() == ["pyarrow", "26.0.1", "2", "3.0", "1.0", "0.0", "0.0"]
    assert table[-1].split() == ["total", "2", "3.0", "1.0", "0.0", "0.0"]


# ------------------------------------------------------------------------------------ the CLI
@pytest.mark.parametrize(("args", "code", "message"), [
    (["--arch", "sparc"], 2, "LayerTargetError: unknown architecture 'sparc'"),
    (["--python", "2.7"], 2, "no Lambda runtime for Python '2.7'"),
    (["--requirements", "/nonexistent/requirements.txt"], 78, "LayerPinsError"),
])
def test_cli_bad_input_is_a_typed_error_and_exit_code(args: list[str], code: int,
                                                      message: str) -> None:
    result = CliRunner().invoke(app, ["layer", "build", *args])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_bad_size_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["layer", "build", "--max-zipped", "lots"])
    assert result.exit_code == 2 and "invalid size 'lots'" in result.output


def test_cli_json_failure_is_one_object() -> None:
    result = CliRunner().invoke(app, ["layer", "build", "--arch", "mips", "--json"])
    assert result.exit_code == 2
    first = result.stdout.strip().splitlines()[0]
    assert '"type": "LayerTargetError"' in first and '"status": "failed"' in first


def test_layer_errors_are_engine_errors() -> None:
    for error in (LayerTargetError("x"), LayerPinsError("x"), WheelNotFoundError("x")):
        assert isinstance(error, EngineError) and isinstance(error, LayerError)
    assert isinstance(LayerDownloadError("x"), TransientError)


# ----------------------------------------------------------------------------------- bytecode
def test_find_python_is_this_interpreter_for_the_host_and_none_when_absent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_python(Target.host()) == sys.executable
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    other = "3.12" if sys.version_info[:2] != (3, 12) else "3.13"
    assert find_python(Target.parse(other, "arm64")) is None
    result = compile_hot_modules(tmp_path, Target.parse(other, "arm64"))
    assert result.python is None and result.files == ()
    assert f"no Python {other} found" in result.note


def test_hot_modules_compile_deterministically_with_the_lambda_path(tmp_path: Path) -> None:
    import importlib.util
    import marshal

    for rel in ("engine/__init__.py", "engine/aws/steps.py", "numpy/_core/numeric.py",
                "aws_lambda_powertools/event_handler/api.py", "numpy/ma/core.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"NAME = {rel!r}\n")
    assert HOT_MODULES.matches("engine/aws/steps.py")
    assert not HOT_MODULES.matches("aws_lambda_powertools/event_handler/api.py")
    result = compile_hot_modules(tmp_path, Target.host())
    tag = sys.implementation.cache_tag
    assert result.python == sys.executable
    assert sorted(result.files) == sorted([
        f"engine/__pycache__/__init__.{tag}.pyc", f"engine/aws/__pycache__/steps.{tag}.pyc",
        f"numpy/_core/__pycache__/numeric.{tag}.pyc"])
    pyc = tmp_path / f"engine/aws/__pycache__/steps.{tag}.pyc"
    first = pyc.read_bytes()
    assert first[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(first[4:8], "little") == 1, "hash-based, unchecked: no timestamps"
    assert marshal.loads(first[16:]).co_filename == f"{LAYER_MOUNT}/engine/aws/steps.py"
    pyc.unlink()
    compile_hot_modules(tmp_path, Target.host())
    assert pyc.read_bytes() == first
