"""Files the commands need at run time, shipped in the wheel and found by ``importlib.resources``.

The repository's own files are the single source; the folders here are links to them, which the
wheel build follows and copies:

- ``stepfunctions/``: the state machine definitions (``stepfunctions/`` of the repository);
- ``handlers/``: the Lambda handlers, ``handlers/<step>/handler.py`` (``lambda/``);
- ``layer/requirements.txt``: the layer's pinned versions (``layer/``);
- ``contracts/``: the example dataset contracts (``contracts/``).
- ``profiles/cost.json``: the per-file counts ``chunkwise cost`` prices (``profiles/``,
  written by ``chunkwise cost --measure``).

In a checkout, an editable install or an installed wheel they are found the same way, never
through the current directory. A file that is missing means the installation is incomplete: an
:class:`~engine.errors.InstallationError` names it.

Example:
    >>> resource("stepfunctions/pipeline.asl.json").name
    'pipeline.asl.json'
    >>> sorted(contract_names())
    ['events', 'orders']
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from engine.errors import InstallationError

__all__ = ["contract_names", "contract_text", "handler_dir", "resource", "root"]


def root() -> Traversable:
    """The installed resources folder (``engine/resources/``)."""
    return resources.files(__name__)


def resource(relative: str) -> Traversable:
    """The packaged file (or folder) ``relative``, e.g. ``stepfunctions/pipeline.asl.json``.

    Raises:
        InstallationError: it is not there: the installation is incomplete.

    """
    found = root().joinpath(relative)
    if not (found.is_file() or found.is_dir()):
        raise InstallationError(f"{relative} is missing from the installed chunkwise package "
                                "(engine/resources/): the installation is incomplete; reinstall "
                                "it (pip install --force-reinstall chunkwise)", uri=relative)
    return found


def handler_dir(step: str) -> Path:
    """The folder of the Lambda handler of ``step`` (``ingest``, ``transform``, ...)."""
    return Path(str(resource(f"handlers/{step}/handler.py"))).parent


def contract_names() -> list[str]:
    """The example contracts: ``orders``, ``events``, ..."""
    folder = resource("contracts")
    return sorted(f.name.removesuffix(".yaml") for f in folder.iterdir()
                  if f.name.endswith(".yaml"))


def contract_text(name: str) -> str:
    """The YAML of the example contract ``name`` (see :func:`contract_names`)."""
    return resource(f"contracts/{name}.yaml").read_text(encoding="utf-8")
