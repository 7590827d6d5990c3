"""Where a run's outputs go: the data, the rejects and the aggregate, named after the input.

:meth:`OutputPlan.load` resolves them as :func:`engine.transform` will, so the pipeline can check
and clean up the very URIs a run writes.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from engine import io
from engine.config import WriteOptions
from engine.errors import UsageError
from engine.sink.parquet import ParquetSink

if TYPE_CHECKING:
    from engine.sink.partitioned import PartitionedSink

__all__ = ["OutputPlan", "refuse_replacing"]


@dataclass
class OutputPlan:
    """Where a run's outputs go (data, rejects, aggregate) and the contract that shapes them."""

    dst: str | None
    contract: Any = None
    data_uri: str | None = None
    rejects_uri: str | None = None
    aggregate_uri: str | None = None
    stem: str = "part"

    @classmethod
    def load(cls, contract: Any, src: str, dst: str | None,
             stem: str | None = None) -> OutputPlan:
        """Resolve the outputs of converting ``src`` to ``dst`` (files named after ``stem``).

        ``contract`` is a :class:`engine.contract.Contract`, the path of its YAML, or ``None``.
        """
        if contract is not None and not hasattr(contract, "columns"):
            from engine.contract import load_contract

            contract = load_contract(contract)
        stem = stem or io.input_stem(src)
        plan = cls(dst, contract, dst, stem=stem)
        if dst is None or contract is None:
            return plan
        directory = dst.endswith("/") or bool(contract.output.partition_by)
        base = dst if dst.endswith("/") else (dst + "/" if directory else _parent(dst))
        if directory and not contract.output.partition_by:
            plan.data_uri = f"{base}{stem}.parquet"
        if contract.rejects.path:
            plan.rejects_uri = _under(base, contract.rejects.path, f"{stem}.rejects.ndjson")
        if contract.aggregate is not None:
            plan.aggregate_uri = _under(base, contract.aggregate.path, f"{stem}.parquet")
        return plan

    def overrides(self) -> dict[str, Any]:
        """The contract's format and output options, as :func:`engine.transform` keywords."""
        if self.contract is None:
            return {}
        out = {**self.contract.read_overrides(), **self.contract.output.write_overrides()}
        if self.rejects_uri:
            out["rejects_uri"] = self.rejects_uri
        return out

    def sink(self, schema: pa.Schema, write: WriteOptions) -> ParquetSink | PartitionedSink | None:
        """The sink the data goes to: a file (or a rotation), or one per partition."""
        if self.dst is None:
            return None
        if self.contract is not None and self.contract.output.partition_by:
            from engine.sink.partitioned import PartitionedSink

            # On S3 each open partition file holds up to one part in memory until it commits;
            # cap that term at four parts by committing the largest file early.
            upload_cap = 4 * write.part_size if io.is_s3(self.dst) else None
            return PartitionedSink(self.dst if self.dst.endswith("/") else self.dst + "/",
                                   schema, list(self.contract.output.partition_by), write,
                                   file_stem=self.stem,
                                   max_open_writers=self.contract.output.max_open_writers,
                                   max_upload_buffer_bytes=upload_cap)
        return ParquetSink(self.data_uri or self.dst, schema, write)

    @property
    def outputs(self) -> list[str]:
        """Every URI the plan writes to (the data's may be a directory)."""
        return [u for u in (self.data_uri or self.dst, self.rejects_uri, self.aggregate_uri) if u]


def _parent(uri: str) -> str:
    head = posixpath.dirname(uri)
    return f"{head}/" if head else ""


def _under(base: str, path: str, name: str) -> str:
    """``path`` relative to the output directory ``base``.

    A path ending in ``/`` is a directory, and the file in it is called ``name``.
    """
    full = path if ("://" in path or posixpath.isabs(path)) else base + path
    return full + name if full.endswith("/") else full


def refuse_replacing(src: str, outputs: list[str | None]) -> None:
    """Raise :class:`UsageError` when one of ``outputs`` is ``src`` itself.

    The output is renamed into place (or committed) after the input has been read, so the run
    would succeed and leave the input replaced by its own Parquet.
    """
    for out in outputs:
        if not out:
            continue
        if io.is_s3(src) or io.is_s3(out):
            same = src == out
        else:
            same = os.path.realpath(io.local_path(src)) == os.path.realpath(io.local_path(out))
        if same:
            raise UsageError("the output is the input: writing it would replace the input; "
                             "choose another output path", uri=out)
