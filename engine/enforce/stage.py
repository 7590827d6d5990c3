"""A contract's stages for one pass, in order: validate → transform → aggregate.

The conversion loop hands every chunk to :meth:`ContractStages.apply` and gets back the rows to
write and the records rejected; :meth:`ContractStages.check_thresholds` fails the run when the
rejects exceed the contract's limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from engine.config import WriteOptions
from engine.enforce.transforms import Transformer
from engine.enforce.validate import Validator
from engine.errors import SchemaError, ValidationError
from engine.readers.base import Chunk, Reject
from engine.report import RunReport
from engine.sink.parquet import ParquetSink
from engine.sink.rejects import RejectsFile

__all__ = ["ContractStages"]


class ContractStages:
    """The contract's stages for one pass over ``src``, whose reader proposes ``schema``.

    ``null_markers``: the text its reader reads as null in columns that are not strings
    (:attr:`engine.readers.sampling.ResolvedInput.null_markers`).

    Attributes:
        reader_schema: the schema the reader parses with (contract columns typed, as text where
            the contract converts them itself).
        strict: the columns the contract types, which never widen.
        output_schema: the schema of the rows :meth:`apply` returns.
        filtered: rows the contract's ``filter`` and ``dedupe`` steps removed so far.
    """

    def __init__(self, contract: Any, src: str, schema: pa.Schema,
                 null_markers: Sequence[str] | None = None) -> None:
        self.contract = contract
        self.src = src
        self.validator = Validator(contract, src, null_markers)
        self.reader_schema, self.strict = self.validator.reader_schema(schema)
        self.transformer = Transformer.from_contract(contract, uri=src, validated=True)
        self.aggregator = None
        if contract.aggregate is not None:
            from engine.enforce.aggregate import Aggregator  # only contracts that aggregate

            self.aggregator = Aggregator(contract.aggregate, uri=src)
        validated = self.validator.output_schema()
        if contract.extra_columns == "keep":
            extras = [f for f in self.reader_schema if f.name not in contract.columns]
            validated = pa.schema(list(validated) + extras)
        self.output_schema = self.transformer.output_schema(validated)
        self.filtered = 0

    def apply(self, chunk: Chunk) -> tuple[pa.Table, list[Reject]]:
        """The chunk's rows that pass, transformed; and every record rejected in it."""
        steps_reject = self.transformer.wants_records  # enrich_api rejects by record number
        table, rejects = self.validator.apply(chunk, keep_text=steps_reject)
        if self.contract.type_errors == "fail":
            bad = min((r for r in chunk.rejects + rejects if r.check == "type"),
                      key=lambda r: r.record, default=None)
            if bad is not None:
                raise SchemaError(bad.reason, record=bad.record, offset=bad.offset)
        self.validator.note_reader_rejects(chunk.rejects)
        records = None
        if steps_reject:
            records = chunk.row_records()
            if rejects:
                records = np.setdiff1d(records, [r.record for r in rejects], assume_unique=True)
        table, removed = self.transformer.apply(table, records)
        self.filtered += removed
        stepped = self.transformer.take_rejects()
        if stepped:  # each at its own record's offset, as the checks' rejects
            starts = chunk.record_offsets()
            stepped = [replace(r, offset=chunk.offset if starts is None
                               else int(starts[r.record - chunk.first_record]))
                       for r in stepped]
        chunk.starts = None
        if stepped:
            self.validator.note_reader_rejects(stepped)  # counted in the checks summary
        if self.aggregator is not None and table.num_rows:
            self.aggregator.update(table)
        return table, chunk.rejects + rejects + stepped

    def check_thresholds(self, rows_in: int, rejected: int, *, final: bool) -> None:
        """Raise :class:`ValidationError` when the rejects exceed the contract's limits.

        ``max_count`` is checked after every chunk (a run stops as soon as it is exceeded);
        ``max_ratio`` only at the end (``final``), when the ratio is known.
        """
        policy = self.contract.rejects
        if policy.max_count is not None and rejected > policy.max_count:
            raise ValidationError(f"{rejected} records rejected, more than rejects.max_count "
                                  f"({policy.max_count})", uri=self.src)
        if final and policy.max_ratio is not None and rows_in and (
            rejected / rows_in > policy.max_ratio
        ):
            raise ValidationError(f"{rejected} of {rows_in} records rejected "
                                  f"({rejected / rows_in:.2%}), more than rejects.max_ratio "
                                  f"({policy.max_ratio:.2%})", uri=self.src)

    def write_aggregate(self, uri: str | None, write: WriteOptions,
                        published: list[ParquetSink]) -> dict[str, Any]:
        """Write the aggregate to ``uri`` (``None``: only count its groups).

        Its sink joins ``published``, to be aborted if the run fails after it.
        """
        assert self.aggregator is not None
        table = self.aggregator.result()
        info: dict[str, Any] = {"groups": table.num_rows, "uri": uri}
        if uri is not None:
            # One file at the aggregate's path: the data's file rotation does not apply to it.
            write = replace(write, max_rows_per_file=None, max_bytes_per_file=None)
            with ParquetSink(uri, table.schema, write) as sink:
                sink.write(table)
            published.append(sink)
            info["bytes"] = sink.files[0].bytes if sink.files else 0
        return info

    def failure_report(self, fmt: str, rows_in: int, rejects: RejectsFile,
                       failed: ValidationError) -> RunReport:
        """The report of a validation that exceeded the contract's thresholds."""
        report = RunReport(status="failed", input=self.src, output=None, format=fmt,
                           rows_in=rows_in, rows_rejected=rejects.count,
                           rejects={"count": rejects.count, "uri": rejects.uri},
                           error=failed.to_dict())
        self.describe(report)
        report.rows_out = rows_in - rejects.count - self.filtered
        return report

    def describe(self, report: RunReport) -> None:
        """Add what the contract did to ``report``: its name, checks, filtered rows, state."""
        report.contract = self.contract.dataset
        report.checks = self.checks()
        report.rows_filtered = self.filtered
        report.state_bytes = self.state_bytes
        report.enrich_api = self.transformer.api_stats()

    def checks(self) -> list[dict[str, Any]]:
        """Rejects by column and check, most frequent first, with a few examples each."""
        v = self.validator
        return [{"column": column, "check": check, "count": count,
                 "examples": v.examples.get((column, check), [])}
                for (column, check), count in v.counts.most_common()]

    @property
    def state_bytes(self) -> int:
        """Memory held across chunks: keys of ``unique``/``dedupe``, references, groups."""
        total = self.validator.state_bytes + self.transformer.state_bytes
        if self.aggregator is not None:
            total += self.aggregator.state_bytes
        return total
