"""What a caller hands a local run, as the handlers will see it: environment and object keys.

``settings`` (a mapping of environment names, or an :class:`engine.aws.settings.Settings`)
become the handlers' environment; a file name becomes the object key its contract's ``match``
glob selects, so the uploaded file is routed to that contract as it would be on AWS.

Example:
    >>> key_for("x.csv", "orders/*.csv*"), key_for("x.csv", None)
    ('orders/x.csv', 'incoming/x.csv')
    >>> settings_env({"MAX_SINGLE_BYTES": "1MB", "RANGE_BYTES": None})
    {'MAX_SINGLE_BYTES': '1MB'}
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.aws import settings as aws_settings

__all__ = ["contract_globs", "contract_key", "key_for", "settings_env"]

# A local run creates its own table, bucket and queue, and names them itself.
_RESOURCE_ENV = (aws_settings.METADATA_TABLE, aws_settings.PROCESSED_BUCKET,
                 aws_settings.DLQ_URL, aws_settings.GLUE_DATABASE)


def settings_env(settings: Any) -> dict[str, str]:
    """Environment variables from ``settings``: a mapping of names, or a ``Settings`` object.

    A :class:`engine.aws.settings.Settings` gives each field that is set under the environment
    name its module defines for it (``max_single_bytes`` → ``MAX_SINGLE_BYTES``,
    ``service_name`` → ``POWERTOOLS_SERVICE_NAME``).

    Raises:
        ValueError: the table, bucket, queue or database is set: a local run creates its own.
        TypeError: ``settings`` is neither a mapping nor a dataclass.
    """
    if settings is None:
        return {}
    if isinstance(settings, Mapping):
        env = {str(k): str(v) for k, v in settings.items() if v is not None}
    else:
        if not dataclasses.is_dataclass(settings):
            raise TypeError(f"settings: a mapping or a Settings, not {type(settings).__name__}")
        env = {}
        for f in dataclasses.fields(settings):
            value = getattr(settings, f.name)
            if value is not None:
                env[str(getattr(aws_settings, f.name.upper(), f.name.upper()))] = str(value)
    given = sorted(k for k in _RESOURCE_ENV if k in env)
    if given:
        raise ValueError("a local run creates its own table, bucket, queue and database: do "
                         f"not set {', '.join(given)}")
    return env


def contract_globs(path: Path) -> list[str]:
    """The ``match`` globs of a contract file; ``[]`` if it has none or cannot be read."""
    import yaml

    with contextlib.suppress(OSError, yaml.YAMLError):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        match = doc.get("match") if isinstance(doc, dict) else None
        if isinstance(match, str):
            return [match]
        if isinstance(match, list):
            return [str(m) for m in match]
    return []


def key_for(filename: str, match: str | None) -> str:
    """An object key for ``filename`` that the contract glob ``match`` selects.

    The glob's directory part up to its first wildcard is kept (``orders/*.csv*`` →
    ``orders/<filename>``); without a glob the key is ``incoming/<filename>``.
    """
    if not match:
        return f"incoming/{filename}"
    fixed = re.split(r"[*?\[]", match, maxsplit=1)[0]
    prefix = fixed.rsplit("/", 1)[0] + "/" if "/" in fixed else ""
    return f"{prefix}{filename}"


def contract_key(filename: str, contract: Path | None) -> str:
    """The key ``filename`` is uploaded under so that ``contract`` selects it.

    Raises:
        ValueError: no ``match`` glob of the contract can select this file name.
    """
    globs = contract_globs(contract) if contract is not None else []
    if not globs:
        return key_for(filename, None)
    for glob in globs:
        key = key_for(filename, glob)
        if fnmatch.fnmatchcase(key, glob):
            return key
    raise ValueError(f"the file name {filename!r} does not match the contract's match "
                     f"glob {' or '.join(repr(g) for g in globs)}: rename the file or give "
                     "a key")
