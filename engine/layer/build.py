"""``chunkwise layer build``: pinned wheels → trimmed ``python/`` → deterministic zip.

Steps: download the pinned wheels for the target (:mod:`engine.layer.download`), unpack all but
the runtime-provided ones into ``python/``, add the ``engine`` package, trim
(:mod:`engine.layer.trim`), strip pyarrow's shared objects, check every ELF file
(:mod:`engine.layer.check`), zip (:mod:`engine.layer.package`), compare with the budget. The
zip is moved to its destination only when every check and the budget pass.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from engine.config import MiB
from engine.layer.bytecode import BytecodeResult, compile_hot_modules
from engine.layer.check import check_layer
from engine.layer.download import Wheel, default_cache_dir, download_wheels
from engine.layer.errors import LayerCheckError, LayerError, LayerTooLargeError
from engine.layer.package import PackageSize, format_table, write_zip
from engine.layer.pins import RUNTIME_PROVIDED, read_pins
from engine.layer.target import Target
from engine.layer.trim import (
    StripResult,
    dedupe_shared_objects,
    sha256_file,
    strip_pyarrow,
    trim,
)

__all__ = ["MAX_UNZIPPED", "MAX_ZIPPED", "LayerReport", "build_layer", "engine_source"]


#: The issue-6 budget for the python3.13 arm64 layer. Lambda allows 250 MiB unzipped for a
#: function and all its layers together; 150 leaves room for the handlers and a second layer.
MAX_UNZIPPED = 150 * MiB
#: Lambda's limit for a zip uploaded directly; SAM uploads through S3, but staying under it keeps
#: the layer publishable with `aws lambda publish-layer-version --zip-file` too.
MAX_ZIPPED = 50 * MiB

#: Folders of ``engine/`` the Lambda handlers never import, left out of the layer: the CLI, the
#: data generator, sizing, the cost model, the layer builder itself, the local pipeline runner
#: (moto), and the files the commands read (the handlers themselves are each function's code,
#: not the layer's).
#: ``tests/functional/layer/test_layer_build.py`` imports every handler from the layer.
TOOL_FOLDERS = ("cli", "gen", "sizing", "cost", "layer", "aws/local", "resources")

#: Single modules of ``engine/`` left out for the same reason.
TOOL_MODULES = ("aws/remote.py",)


@dataclass
class LayerReport:
    """What a build produced.

    Attributes:
        target: what it was built for.
        output: the zip written, or None when a check or the budget failed.
        sha256: the zip's digest (the same files always give the same digest).
        packages: one row per distribution in the layer.
        unzipped: total bytes of the files in ``python/``.
        zipped: the zip's size in bytes.
        removed: bytes trimmed, deduplicated and stripped.
        trimmed: bytes removed by each trim rule (and ``duplicate shared objects``).
        strip: what stripping did.
        bytecode: what compiling the hot modules did.
        left_out: runtime-provided distributions the resolver brought and the layer omits.
        max_unzipped: the unzipped budget, or None for none.
        max_zipped: the zipped budget, or None for none.
    """

    target: Target
    output: Path | None
    sha256: str
    packages: list[PackageSize]
    unzipped: int
    zipped: int
    removed: int
    trimmed: dict[str, int]
    strip: StripResult
    bytecode: BytecodeResult = field(default_factory=lambda: BytecodeResult(python=None))
    left_out: list[str] = field(default_factory=list)
    max_unzipped: int | None = MAX_UNZIPPED
    max_zipped: int | None = MAX_ZIPPED

    @property
    def over_budget(self) -> list[str]:
        """One line per exceeded budget; empty when within."""
        over = []
        if self.max_unzipped is not None and self.unzipped > self.max_unzipped:
            over.append(f"{self.unzipped / MiB:.1f} MiB unzipped > {self.max_unzipped / MiB:.1f}")
        if self.max_zipped is not None and self.zipped > self.max_zipped:
            over.append(f"{self.zipped / MiB:.1f} MiB zipped > {self.max_zipped / MiB:.1f}")
        return over

    def table(self) -> str:
        """The per-package size table (:func:`engine.layer.package.format_table`)."""
        return format_table(self.packages, {
            "files": sum(p.files for p in self.packages), "unzipped": self.unzipped,
            "zipped": self.zipped, "removed": self.removed})

    def to_dict(self) -> dict[str, object]:
        """The report as JSON-ready data (``chunkwise layer build --json``)."""
        return {
            "target": {"python": self.target.python_version, "arch": self.target.arch,
                       "glibc": f"2.{self.target.glibc[1]}", "key": self.target.key},
            "output": str(self.output) if self.output else None,
            "sha256": self.sha256, "unzipped": self.unzipped, "zipped": self.zipped,
            "removed": self.removed, "max_unzipped": self.max_unzipped,
            "max_zipped": self.max_zipped, "over_budget": self.over_budget,
            "stripped": {"tool": self.strip.tool, "files": self.strip.files,
                         "saved": self.strip.saved, "note": self.strip.note},
            "bytecode": {"python": self.bytecode.python, "files": len(self.bytecode.files),
                         "note": self.bytecode.note},
            "trimmed": self.trimmed, "left_out": self.left_out,
            "packages": [vars(p) for p in sorted(self.packages, key=lambda p: -p.unzipped)],
        }


def engine_source() -> Path:
    """The directory of the running ``engine`` package: what the layer ships as ``engine/``."""
    import engine

    return Path(engine.__file__).resolve().parent


def build_layer(target: Target, output: Path, *, pins_path: Path,
                cache_dir: Path | None = None, strip: bool = True, bytecode: bool = True,
                max_unzipped: int | None = MAX_UNZIPPED, max_zipped: int | None = MAX_ZIPPED,
                engine_dir: Path | None = None, keep_tree: Path | None = None,
                log: Callable[[str], None] = lambda _: None) -> LayerReport:
    """Build the layer zip for ``target`` at ``output``.

    Args:
        target: the runtime and architecture.
        output: where the zip goes (its directory is created).
        pins_path: ``layer/requirements.txt``.
        cache_dir: the wheel cache (default ``~/.cache/chunkwise-layer``).
        strip: strip pyarrow's shared objects when a tool for the target exists.
        bytecode: compile the hot modules when an interpreter of the target's version exists.
        max_unzipped: fail above this many bytes unzipped (None: no limit).
        max_zipped: fail above this many bytes zipped (None: no limit).
        engine_dir: the ``engine`` package to ship (default: the running one).
        keep_tree: also copy the final ``python/`` tree here (for inspection and tests).
        log: progress messages.

    Raises:
        LayerTooLargeError: over a budget (``.report`` holds the sizes); nothing is written.
        LayerCheckError: a shared object is for another machine or misses a library.
        LayerError: see :mod:`engine.layer.errors` for the others.
    """
    pins = read_pins(pins_path)
    cache = cache_dir or default_cache_dir()
    source = engine_dir or engine_source()
    with tempfile.TemporaryDirectory(prefix="chunkwise-layer-") as tmp:
        work = Path(tmp)
        wheels = download_wheels(pins, target, cache_dir=cache, work_dir=work / "download",
                                 log=log)
        root = work / "python"
        owners: dict[str, str] = {}
        versions = {"engine": _engine_version()}
        left_out = sorted(f"{w.name}=={w.version}" for w in wheels.values()
                          if w.name in RUNTIME_PROVIDED)
        for wheel in sorted(wheels.values(), key=lambda w: w.name):
            if wheel.name not in RUNTIME_PROVIDED:
                versions[wheel.name] = wheel.version
                _claim(owners, root, _unpack(wheel, root), wheel.name)
        _claim(owners, root, _copy_engine(source, root / "engine"), "engine")
        before = _sizes(root, owners)

        removed = trim(root)
        trimmed = {name: sum(before[p.as_posix()] for p in paths)
                   for name, paths in removed.items()}
        trimmed["duplicate shared objects"] = sum(
            before[p.as_posix()] for p in dedupe_shared_objects(root))
        stripped = (strip_pyarrow(root, target) if strip
                    else StripResult(tool=None, note="stripping disabled (--no-strip)"))
        if stripped.tool is None:
            log(stripped.note)
        else:
            log(f"stripped {stripped.files} pyarrow shared objects with {stripped.tool}: "
                f"{stripped.saved / MiB:.1f} MiB saved")

        compiled = (_compile(root, target) if bytecode
                    else BytecodeResult(python=None, note="no bytecode (--no-bytecode)"))
        if compiled.python is None:
            log(compiled.note)
        else:
            log(f"compiled {len(compiled.files)} hot modules with {compiled.python}")
        for relpath in compiled.files:  # a .pyc belongs to its source's distribution
            cache = PurePosixPath(relpath)
            source = cache.parent.parent / (cache.name.split(".", 1)[0] + ".py")
            owners[relpath] = owners[source.as_posix()]

        problems = check_layer(root, target)
        if problems:
            shown = "; ".join(map(str, problems[:5]))
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise LayerCheckError(f"{len(problems)} shared objects would not load on "
                                  f"{target}: {shown}{more}")

        after = _sizes(root, owners)
        zip_path = work / "layer.zip"
        compressed = write_zip(root, zip_path)
        packages = _rows(before, after, compressed, owners, versions, set(compiled.files))
        report = LayerReport(
            target=target, output=None, sha256=sha256_file(zip_path), packages=packages,
            unzipped=sum(after.values()), zipped=zip_path.stat().st_size,
            removed=sum(p.removed for p in packages), trimmed=trimmed,
            strip=stripped, bytecode=compiled, left_out=left_out, max_unzipped=max_unzipped,
            max_zipped=max_zipped)
        if keep_tree is not None:
            shutil.rmtree(keep_tree, ignore_errors=True)
            shutil.copytree(root, keep_tree)
        if report.over_budget:
            error = LayerTooLargeError(
                f"the layer for {target} is over budget: {'; '.join(report.over_budget)}"
                f"{'; ' + stripped.note if stripped.tool is None else ''}; {output} not written",
                uri=str(output))
            error.report = report  # type: ignore[attr-defined]
            raise error
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(zip_path), str(output))
        report.output = output
    return report


def _compile(root: Path, target: Target) -> BytecodeResult:
    try:
        return compile_hot_modules(root, target)
    except RuntimeError as exc:
        raise LayerError(str(exc)) from None


def _unpack(wheel: Wheel, root: Path) -> list[Path]:
    """Extract a wheel's importable files into ``root``; ``.data/purelib|platlib`` merged."""
    written: list[Path] = []
    try:
        with zipfile.ZipFile(wheel.path) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                name = info.filename
                first, _, rest = name.partition("/")
                if first.endswith(".data"):
                    kind, _, inner = rest.partition("/")
                    if kind not in ("purelib", "platlib") or not inner:
                        continue  # scripts, headers and data files are not importable
                    name = inner
                dest = (root / name).resolve()
                if not dest.is_relative_to(root.resolve()):
                    raise LayerError(f"{wheel.path.name}: entry {info.filename!r} escapes the "
                                     "layer directory")
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                written.append(dest)
    except zipfile.BadZipFile as exc:
        raise LayerError(f"{wheel.path}: not a valid wheel ({exc}); delete it from the cache "
                         "and build again", uri=str(wheel.path)) from None
    return written


def _copy_engine(source: Path, dest: Path) -> list[Path]:
    """Copy the engine package, without its tools (:data:`TOOL_FOLDERS`, :data:`TOOL_MODULES`)."""
    if not (source / "__init__.py").is_file():
        raise LayerError(f"{source} is not the engine package", uri=str(source))
    written = []
    for path in sorted(source.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        relative = path.relative_to(source).as_posix()
        if relative in TOOL_MODULES or any(relative.startswith(f"{folder}/")
                                           for folder in TOOL_FOLDERS):
            continue
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.append(target)
    return written


def _claim(owners: dict[str, str], root: Path, paths: Iterable[Path], name: str) -> None:
    resolved = root.resolve()
    for path in paths:
        relpath = path.resolve().relative_to(resolved).as_posix()
        if relpath in owners and owners[relpath] != name:
            raise LayerError(f"{relpath} is in both {owners[relpath]} and {name}")
        owners[relpath] = name


def _sizes(root: Path, owners: dict[str, str]) -> dict[str, int]:
    """Size of every file under ``root`` by relative POSIX path, each owned by a distribution."""
    sizes = {}
    for path in root.rglob("*"):
        if path.is_file():
            relpath = path.relative_to(root).as_posix()
            if relpath not in owners:
                raise LayerError(f"{relpath} belongs to no distribution")
            sizes[relpath] = path.stat().st_size
    return sizes


def _rows(before: dict[str, int], after: dict[str, int], compressed: dict[str, int],
          owners: dict[str, str], versions: dict[str, str],
          bytecode: set[str]) -> list[PackageSize]:
    # name → [files, unzipped, zipped, unpacked from the wheel, bytecode added]
    totals: dict[str, list[int]] = {name: [0, 0, 0, 0, 0] for name in versions}
    for relpath, size in before.items():
        totals[owners[relpath]][3] += size
    for relpath, size in after.items():
        row = totals[owners[relpath]]
        row[0] += 1
        row[1] += size
        row[2] += compressed[relpath]
        if relpath in bytecode:
            row[4] += size
    return [PackageSize(name=name, version=versions[name], files=files, unzipped=unzipped,
                        zipped=zipped, removed=original - (unzipped - pyc), bytecode=pyc)
            for name, (files, unzipped, zipped, original, pyc) in totals.items()]


def _engine_version() -> str:
    import engine

    return str(getattr(engine, "__version__", "0"))


