"""Download the pinned wheels for a target with pip's cross-platform download.

pip resolves the layer's pins with their dependencies for the target (``--platform``,
``--python-version``, ``--abi``, ``--only-binary=:all:``); every distribution it picks must be
pinned, so a new transitive dependency fails the build instead of floating. Wheels are kept in
``<cache>/wheels/<target>/`` and the next build first resolves offline from there
(``--no-index --find-links``), so CI and repeated builds reach the index only when a pin moves.
pip's own HTTP cache serves the rest.

pip evaluates environment markers (``platform_machine``, ``sys_platform``) for the machine it
runs on, not for the target; no pinned package uses such markers today, and a difference would
surface as an unpinned or missing distribution, not as a silent wrong wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.layer.errors import LayerDownloadError, LayerError, LayerPinsError, WheelNotFoundError
from engine.layer.pins import Pin, normalize
from engine.layer.target import Target

__all__ = ["PIP_TIMEOUT_SECONDS", "Wheel", "default_cache_dir", "download_wheels"]

#: pip's per-request socket timeout: an unreachable index fails in tens of seconds, not minutes.
PIP_TIMEOUT_SECONDS = 20

# What pip (and urllib3 under it) print when the index cannot be reached at all.
_NETWORK_SIGNS = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
    r"resolution|Name or service not known|nodename nor servname|Max retries exceeded|"
    r"ConnectTimeoutError|ReadTimeoutError|Network is unreachable|No route to host|"
    r"Connection refused|ProxyError|SSLError|RemoteDisconnected|ConnectionResetError")
# pip names a package without a wheel for the target in one of two ways, by resolver path.
_NOT_FOUND = re.compile(
    r"No matching distribution found for ([^\s]+)"
    r"|no matching distributions available for your environment:\s*\n\s*([^\s]+)")
_WHEEL_NAME = re.compile(
    r"^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


@dataclass(frozen=True)
class Wheel:
    """A downloaded wheel.

    Attributes:
        name: the normalized distribution name.
        version: its version.
        path: the ``.whl`` file.
    """

    name: str
    version: str
    path: Path


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/chunkwise-layer`` (``~/.cache/chunkwise-layer``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "chunkwise-layer"


def download_wheels(pins: Mapping[str, Pin], target: Target, *, cache_dir: Path, work_dir: Path,
                    log: Callable[[str], None] = lambda _: None) -> dict[str, Wheel]:
    """Every wheel the layer's pins resolve to for ``target``, by normalized name.

    Runtime-provided pins are not requested; they constrain the resolution if a layer package
    depends on one (the wheel is then downloaded but never unpacked).

    Raises:
        WheelNotFoundError: a pin has no wheel for the target.
        LayerDownloadError: the index is unreachable and the cache cannot serve the pins.
        LayerPinsError: the resolver picked a distribution that is not pinned.
        LayerError: pip failed for another reason (its message is included).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    requirements = work_dir / "requirements.txt"
    constraints = work_dir / "constraints.txt"
    requirements.write_text("".join(f"{p}\n" for p in pins.values() if not p.runtime_provided))
    constraints.write_text("".join(f"{p}\n" for p in pins.values()))
    wheel_cache = cache_dir / "wheels" / target.key
    dest = work_dir / "wheels"
    base = ["download", "--dest", str(dest), "--requirement", str(requirements),
            "--constraint", str(constraints), *target.pip_args()]

    if wheel_cache.is_dir():
        result = _pip([*base, "--no-index", "--find-links", str(wheel_cache)])
        if result.returncode == 0:
            log(f"wheels for {target.key}: all from the cache {wheel_cache}")
            return _collected(dest, pins, target)
        shutil.rmtree(dest, ignore_errors=True)  # something is missing: resolve online
    log(f"downloading wheels for {target.key} with pip")
    result = _pip([*base, "--timeout", str(PIP_TIMEOUT_SECONDS), "--retries", "2"])
    if result.returncode != 0:
        raise _failure(f"{result.stdout}\n{result.stderr}", target)
    wheels = _collected(dest, pins, target)
    wheel_cache.mkdir(parents=True, exist_ok=True)
    for wheel in wheels.values():
        if not (wheel_cache / wheel.path.name).exists():
            shutil.copy2(wheel.path, wheel_cache / wheel.path.name)
    return wheels


def _pip(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    env.pop("PIP_REQUIRE_VIRTUALENV", None)  # pip download installs nothing
    try:
        return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True,
                              text=True, env=env, check=False)
    except OSError as exc:  # pragma: no cover - sys.executable always exists
        raise LayerError(f"cannot run pip: {exc}") from None


def _failure(output: str, target: Target) -> Exception:
    if "No module named pip" in output:
        return LayerError(f"pip is not installed for {sys.executable}: the build downloads "
                          "wheels with `python -m pip download`")
    if _NETWORK_SIGNS.search(output):
        return LayerDownloadError(
            f"cannot reach the package index to download wheels for {target.key}, and the "
            "wheel cache does not hold every pin: connect, or build once where the index is "
            "reachable to fill the cache")
    missing = _NOT_FOUND.search(output)
    if missing:
        hint = ""
        if target.glibc < (2, 28):
            hint = (f"; {target.runtime} runs on {target.os_name} (glibc 2.{target.glibc[1]}), "
                    "older than many current wheels need: target Python 3.12 or later")
        return WheelNotFoundError(
            f"no wheel of {missing.group(1) or missing.group(2)} for {target} among the tags "
            f"{target.platform_tags()[0]} … {target.platform_tags()[-1]}: pick a version "
            f"with a wheel for it in layer/requirements.txt{hint}")
    errors = [line.strip() for line in output.splitlines() if line.startswith("ERROR")]
    tail = " | ".join(errors[-3:] or output.strip().splitlines()[-3:])
    return LayerError(f"pip download failed for {target.key}: {tail}")


def _collected(dest: Path, pins: Mapping[str, Pin], target: Target) -> dict[str, Wheel]:
    wheels: dict[str, Wheel] = {}
    for path in sorted(dest.glob("*.whl")):
        match = _WHEEL_NAME.match(path.name)
        if match is None:
            raise LayerError(f"pip saved a file that is not a wheel: {path.name}")
        wheel = Wheel(normalize(match["name"]), match["version"], path)
        pin = pins.get(wheel.name)
        if pin is None:
            raise LayerPinsError(
                f"the layer needs {wheel.name} {wheel.version} (a dependency of a pinned "
                f"package for {target.key}) but layer/requirements.txt does not pin it: add "
                f"{wheel.name}=={wheel.version}")
        if _canonical_version(wheel.version) != _canonical_version(pin.version):
            raise LayerPinsError(f"pip resolved {wheel.name} {wheel.version}, not the pinned "
                                 f"{pin.version}")
        wheels[wheel.name] = wheel
    missing = [str(p) for p in pins.values() if not p.runtime_provided and p.name not in wheels]
    if missing:
        raise LayerError(f"pip reported success but saved no wheel for {', '.join(missing)}")
    return wheels


def _canonical_version(version: str) -> str:
    # Wheel file names carry the normalized version ("2.9.0.post0"); pins may spell it otherwise.
    return version.lower().replace("-", ".").replace("_", ".")
