"""The AWS clients the steps use, created on first use and kept for the process.

A warm Lambda reuses them across invocations (creating a boto3 client costs tens of
milliseconds). S3 goes through the engine's own client (:func:`engine.io.s3_client`, with its
retry and timeout settings), so one ``AWS_ENDPOINT_URL`` redirects everything to moto or
LocalStack. Tests and the local runner call :func:`reset_clients` when the environment changes.

boto3 is imported with the first client, not with this module: importing a handler then costs
engine + pyarrow + Powertools only (``benchmarks/cold_start.py``), and the first invocation
pays for boto3 (~0.1 s, ~20 MiB), which every step needs.
"""

from __future__ import annotations

import threading
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

from engine import io

if TYPE_CHECKING:
    import boto3
    import botocore.config

__all__ = ["Clients", "client_config", "default_clients", "reset_clients"]


@cache
def client_config() -> botocore.config.Config:
    """The botocore settings of the DynamoDB, SQS and Glue clients.

    botocore's standard retry mode backs off on throttling a few times before the error reaches
    the state machine's Retry.
    """
    import botocore.config

    return botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": 3},
        connect_timeout=5,
        read_timeout=20,
    )


class Clients:
    """S3, DynamoDB, SQS and Glue clients, each created when first used."""

    def __init__(self, session: boto3.session.Session | None = None) -> None:
        if session is None:
            import boto3

            session = boto3.session.Session()
        self._session = session

    @property
    def s3(self) -> Any:
        """The engine's S3 client."""
        return io.s3_client()

    @cached_property
    def dynamodb(self) -> Any:
        """A DynamoDB service resource."""
        return self._session.resource("dynamodb", config=client_config())

    @cached_property
    def sqs(self) -> Any:
        """An SQS client."""
        return self._session.client("sqs", config=client_config())

    @cached_property
    def glue(self) -> Any:
        """A Glue (Data Catalog) client."""
        return self._session.client("glue", config=client_config())

    def table(self, name: str) -> Any:
        """The DynamoDB ``Table`` resource called ``name``."""
        return self.dynamodb.Table(name)


_lock = threading.Lock()
_default: Clients | None = None


def default_clients() -> Clients:
    """The process-wide :class:`Clients`."""
    global _default
    with _lock:
        if _default is None:
            _default = Clients()
        return _default


def reset_clients() -> None:
    """Forget the process-wide clients (and the engine's S3 client)."""
    global _default
    with _lock:
        _default = None
    io.reset_s3_client()
