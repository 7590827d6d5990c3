"""Which dataset contract a file belongs to.

Contracts live under ``CONTRACTS_URI``: a local directory or an ``s3://bucket/prefix/``, one
``*.yaml`` (or ``*.yml``) file each. They are listed in key order and the first whose ``match``
globs match the object key wins (:meth:`engine.contract.Contract.matches`); no match means a plain
conversion (``None``). An invalid contract fails the file with
:class:`~engine.errors.ContractError` (routed to the DLQ) rather than being skipped: a typo in one
contract must not silently route its files to a plain conversion.

Loaded contracts are cached per process for :data:`CACHE_SECONDS`, so a warm Lambda does not
list and parse them for every file, and a changed contract is picked up within that time.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

from engine import io
from engine.errors import InputNotFoundError

if TYPE_CHECKING:
    from engine.contract import Contract

__all__ = [
    "CACHE_SECONDS",
    "clear_cache",
    "contract_for",
    "get_contract",
    "list_contracts",
]

#: How long a warm Lambda reuses the contracts it listed and loaded.
CACHE_SECONDS = 300.0

_SUFFIXES = (".yaml", ".yml")

_lock = threading.Lock()
_listings: dict[str, tuple[float, list[str]]] = {}
_contracts: dict[str, tuple[float, Contract]] = {}


def clear_cache() -> None:
    """Forget every listing and contract loaded by this process."""
    with _lock:
        _listings.clear()
        _contracts.clear()


def list_contracts(contracts_uri: str) -> list[str]:
    """The contract files under ``contracts_uri``, in key (or file name) order.

    Only direct children ending in ``.yaml``/``.yml`` count (on S3: keys right under the prefix).

    Raises:
        InputNotFoundError: the directory or bucket does not exist.
        TransientError: S3 throttling or a network failure.
        PermanentError: access denied.
    """
    if io.is_s3(contracts_uri):
        return _list_s3(contracts_uri)
    path = contracts_uri[7:] if contracts_uri.startswith("file://") else contracts_uri
    if not os.path.isdir(path):
        raise InputNotFoundError("contracts directory not found", uri=contracts_uri)
    return [os.path.join(path, name) for name in sorted(os.listdir(path))
            if name.endswith(_SUFFIXES) and os.path.isfile(os.path.join(path, name))]


def _list_s3(contracts_uri: str) -> list[str]:
    from engine.io.s3 import s3_errors  # botocore: only for contracts kept on S3

    bucket, prefix = io.split_s3(contracts_uri, allow_empty_key=True)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    found: list[str] = []
    with s3_errors(contracts_uri):
        pages = io.s3_client().get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, Delimiter="/")
        for page in pages:
            for obj in page.get("Contents", []):
                if obj["Key"].endswith(_SUFFIXES):
                    found.append(f"s3://{bucket}/{obj['Key']}")
    return sorted(found)


def _cached(cache: dict[str, tuple[float, Any]], uri: str, max_age: float) -> Any:
    with _lock:
        entry = cache.get(uri)
    if entry is not None and time.monotonic() - entry[0] < max_age:
        return entry[1]
    return None


def get_contract(uri: str, *, max_age: float = CACHE_SECONDS) -> Contract:
    """The contract at ``uri``, loaded once per process (for ``max_age`` seconds).

    Raises:
        ContractError: the contract is invalid.
        InputNotFoundError: it does not exist.
    """
    contract = _cached(_contracts, uri, max_age)
    if contract is None:
        # pydantic's contract models cost ~12 MiB and ~0.15 s to build: only files with a
        # contract pay for them, and a warm Lambda pays once.
        from engine.contract import load_contract

        contract = load_contract(uri)
        with _lock:
            _contracts[uri] = (time.monotonic(), contract)
    return contract


def contract_for(key: str, contracts_uri: str | None, *,
                 max_age: float = CACHE_SECONDS) -> str | None:
    """The URI (or path) of the first contract whose ``match`` globs match ``key``.

    Args:
        key: the object key, without ``s3://bucket/``.
        contracts_uri: where the contracts live; ``None`` or empty: no contracts.
        max_age: seconds a cached listing or contract is reused.

    Returns:
        The contract's location, or ``None`` when none matches (a plain conversion).

    Raises:
        ContractError: a contract under ``contracts_uri`` is invalid.
        InputNotFoundError: ``contracts_uri`` does not exist.
    """
    if not contracts_uri:
        return None
    listing = _cached(_listings, contracts_uri, max_age)
    if listing is None:
        listing = list_contracts(contracts_uri)
        with _lock:
            _listings[contracts_uri] = (time.monotonic(), listing)
    for uri in listing:
        if get_contract(uri, max_age=max_age).matches(key):
            return uri
    return None
