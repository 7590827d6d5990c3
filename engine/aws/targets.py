"""Where the operating commands act: a deployed stack, or the local stack, as one shape.

``pipeline backfill``, ``replay``, ``status`` and ``run --local`` work the same on both: a
:class:`Target` names the state machines, table, buckets and DLQ, and makes the clients (real
credentials for a stack; the local stack's loopback endpoint and fake credentials for it).

Example:
    >>> t = Target("local:5000", state_machine="arn:sm", endpoint="http://127.0.0.1:5000",
    ...            region="us-east-1")
    >>> t.local, t.require("state_machine")
    (True, 'arn:sm')
    >>> t.require("table")
    Traceback (most recent call last):
    ...
    LookupError: local:5000 has no table
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Target", "local_target", "stack_target"]

#: The credentials of the local stack (moto accepts any).
_LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass
class Target:
    """A pipeline's resources and how to reach them.

    Attributes:
        label: the stack's name, or ``local:<port>``.
        state_machine: the per-file state machine's ARN.
        backfill_state_machine: the backfill state machine's ARN.
        table: the metadata table's name.
        queue: the DLQ's URL.
        raw_bucket: the raw bucket's name.
        processed_bucket: the processed bucket's name.
        region: the region of the clients.
        endpoint: the local stack's endpoint (``None`` for AWS).
    """

    label: str
    state_machine: str | None = None
    backfill_state_machine: str | None = None
    table: str | None = None
    queue: str | None = None
    raw_bucket: str | None = None
    processed_bucket: str | None = None
    region: str | None = None
    endpoint: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def local(self) -> bool:
        """Whether this is the local stack."""
        return self.endpoint is not None

    def require(self, name: str) -> str:
        """The attribute ``name``; :class:`LookupError` if the stack has none."""
        value = getattr(self, name)
        if not value:
            raise LookupError(f"{self.label} has no {name.replace('_', ' ')}")
        return str(value)

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on this target (one per service, kept)."""
        if service not in self._clients:
            import boto3

            kwargs: dict[str, Any] = {"region_name": self.region}
            if self.endpoint is not None:
                kwargs.update(endpoint_url=self.endpoint, **_LOCAL_CREDENTIALS)
            self._clients[service] = boto3.client(service, **kwargs)
        return self._clients[service]

    def targets(self) -> dict[str, str | None]:
        """As :func:`engine.aws.remote.stack_targets` gives them."""
        return {"state_machine": self.state_machine,
                "backfill_state_machine": self.backfill_state_machine, "table": self.table,
                "raw_bucket": self.raw_bucket, "processed_bucket": self.processed_bucket,
                "queue": self.queue}


def stack_target(stack: str, region: str | None = None,
                 clients: Mapping[str, Any] | None = None) -> Target:
    """The :class:`Target` of a deployed CloudFormation stack (found through its resources).

    Raises:
        LookupError: no such stack, or no state machine in it.
    """
    from engine.aws.remote import stack_targets

    target = Target(stack, region=region)
    target._clients.update(clients or {})
    found = stack_targets(target.client("cloudformation"), stack)
    for name, value in found.items():
        setattr(target, name, value)
    return target


def local_target(info: Mapping[str, Any]) -> Target:
    """The :class:`Target` of a running local stack, from its state (``local status``)."""
    names = info["names"]
    return Target(f"local:{info['port']}", state_machine=info["state_machine_arn"],
                  backfill_state_machine=info["backfill_state_machine_arn"],
                  table=names["table"], queue=info["queue_url"], raw_bucket=names["raw_bucket"],
                  processed_bucket=names["processed_bucket"], region=info["region"],
                  endpoint=info["endpoint"])
