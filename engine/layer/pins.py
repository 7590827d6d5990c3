"""The layer's pinned versions: ``layer/requirements.txt``, the one place they are written.

Every line is ``name==version`` (a comment may follow). The file pins the whole closure the
Lambda functions import, including what the runtime already provides (:data:`RUNTIME_PROVIDED`):
those pins are the versions CI tests against, but the layer leaves them out and uses the
runtime's copies. The CLI-only dependencies (:data:`CLI_ONLY`) are not pinned: no handler
imports them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.layer.errors import LayerPinsError

__all__ = ["CLI_ONLY", "RUNTIME_PROVIDED", "Pin", "normalize", "read_pins"]

#: Shipped by the Lambda Python runtimes (boto3 and what it depends on): not packaged, which
#: saves ~30 MB unzipped. A handler imports the runtime's versions, so the engine must not
#: depend on anything newer than what Lambda ships (botocore ≥ 1.34 covers it).
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"})

#: The ``chunkwise`` command's own dependencies (``pyproject.toml``): nothing under
#: ``lambda/`` or ``engine.aws`` imports them, so the layer carries none of them.
CLI_ONLY = frozenset({"typer", "click", "rich"})

_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9._,\s-]*\])?\s*==\s*"
    r"(?P<version>[A-Za-z0-9.+!_-]+)\s*(?:#.*)?$")


def normalize(name: str) -> str:
    """A distribution name in PEP 503 form: ``PyYAML`` → ``pyyaml``, ``a_b.c`` → ``a-b-c``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    """One pinned distribution.

    Attributes:
        name: the PEP 503 normalized name.
        version: the exact version.
        line: its line number in the pins file.
    """

    name: str
    version: str
    line: int

    @property
    def runtime_provided(self) -> bool:
        """Whether the Lambda runtime ships it (so the layer does not)."""
        return self.name in RUNTIME_PROVIDED

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def read_pins(path: Path) -> dict[str, Pin]:
    """The pins of ``path`` by normalized name.

    Raises:
        LayerPinsError: the file is missing, a line is not ``name==version``, a name repeats, or
            a CLI-only package is pinned.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LayerPinsError(f"cannot read the layer's pins: {exc.strerror}",
                             uri=str(path)) from None
    pins: dict[str, Pin] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if match is None:
            raise LayerPinsError(
                f"line {number}: {line!r} is not an exact pin: write name==version",
                uri=str(path))
        name = normalize(match["name"])
        if name in pins:
            raise LayerPinsError(f"line {number}: {name} is pinned twice "
                                 f"(first on line {pins[name].line})", uri=str(path))
        if name in CLI_ONLY:
            raise LayerPinsError(f"line {number}: {name} is a CLI-only dependency; "
                                 "the Lambda functions never import it", uri=str(path))
        pins[name] = Pin(name=name, version=match["version"], line=number)
    if not pins:
        raise LayerPinsError("no pins", uri=str(path))
    return pins
