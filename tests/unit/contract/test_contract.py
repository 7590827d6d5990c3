"""Dataset contract schema: every documented key accepted and rejected, with line numbers."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pydantic import BaseModel

import engine.contract as contract_module
from engine.config import ReadOptions, WriteOptions
from engine.contract import (
    CallExpr,
    CastStep,
    Contract,
    DedupeStep,
    DeriveStep,
    DropStep,
    EnrichApiStep,
    EnrichStep,
    FieldExpr,
    FilterStep,
    LiteralExpr,
    ParseTimestampStep,
    PythonStep,
    RenameStep,
    SelectStep,
    load_contract,
)
from engine.errors import ContractError, InputNotFoundError, PermanentError

ROOT = Path(__file__).resolve().parents[3]
ORDERS = ROOT / "contracts" / "orders.yaml"
EVENTS = ROOT / "contracts" / "events.yaml"
DOCS = ROOT / "docs" / "contracts.md"

HEAD = "dataset: d\nformat: csv\n"
COLUMNS = """\
columns:
  a: {type: int64}
  b: {type: string}
  t: {type: "timestamp[ms, tz=UTC]"}
  d: {type: date32}
"""


def doc(extra: str = "", *, head: str = HEAD, columns: str = COLUMNS) -> str:
    """A contract: ``head``, then ``columns`` (an extra column can follow), then ``extra``."""
    return head + columns + extra


def line_of(text: str, marker: str) -> int:
    """1-based line of the only line holding ``marker``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if marker in line]
    assert len(hits) == 1, f"marker {marker!r} is on lines {hits}"
    return hits[0]


def contract_error(text: str) -> str:
    with pytest.raises(ContractError) as info:
        load_contract(text)
    assert isinstance(info.value, PermanentError)
    assert info.value.uri == "<string>"
    return info.value.message


# ---------------------------------------------------------------------------------------------
# The two example contracts
# ---------------------------------------------------------------------------------------------


def test_orders_example_loads() -> None:
    contract = load_contract(ORDERS)
    assert contract.dataset == "orders"
    assert contract.source_path == str(ORDERS)
    assert contract.match == ["orders/*.csv*"]
    assert contract.matches("orders/2025-03-01.csv.gz")
    assert not contract.matches("customers/2025-03-01.csv")
    assert contract.extra_columns == "reject"
    assert contract.rejects.max_ratio == 0.01 and contract.rejects.max_count == 10000
    assert [type(s) for s in contract.transforms] == [DeriveStep, FilterStep, DedupeStep]
    assert contract.aggregate is not None
    assert contract.aggregate.metrics["customers"].function == "count_distinct"
    assert contract.aggregate.metrics["customers"].approximate
    assert contract.output.partition_by == ["country"]


def test_orders_arrow_schema() -> None:
    assert load_contract(ORDERS).arrow_schema() == pa.schema(
        [
            pa.field("order_id", pa.int64(), nullable=False),
            pa.field("created_at", pa.timestamp("ms", tz="UTC"), nullable=False),
            pa.field("customer_id", pa.int64(), nullable=False),
            pa.field("country", pa.dictionary(pa.int32(), pa.string())),
            pa.field("amount", pa.decimal128(12, 2), nullable=False),
            pa.field("quantity", pa.int32()),
            pa.field("status", pa.string()),
            pa.field("note", pa.string()),
        ]
    )


def test_orders_overrides_build_engine_options() -> None:
    contract = load_contract(ORDERS)
    assert contract.options.read_overrides() == {"delimiter": ",", "null_values": ("",)}
    assert contract.read_overrides() == {"delimiter": ",", "null_values": ("",), "format": "csv"}
    assert contract.output.write_overrides() == {
        "compression": "zstd",
        "row_group_bytes": 16 * 1024**2,
    }
    read = ReadOptions(**contract.read_overrides())
    write = WriteOptions(**contract.output.write_overrides())
    assert read.null_values == ("",) and read.format == "csv"
    assert write.row_group_bytes == 16 * 1024**2


def test_events_example_loads() -> None:
    contract = load_contract(str(EVENTS))
    assert contract.format == "json"
    assert contract.read_overrides() == {"json_path": "data.item", "format": "json"}
    assert contract.extra_columns == "keep"
    assert contract.output.partition_by == ["event_date"]
    assert contract.columns["ts"].formats == ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S"]
    assert contract.columns["ts"].min_value.as_py().isoformat() == "2020-01-01T00:00:00+00:00"
    rename, derive_date, derive_page, filter_step = contract.transforms
    assert isinstance(rename, RenameStep) and rename.rename == {"type": "event_type"}
    assert isinstance(derive_date, DeriveStep)
    expr = derive_date.derive.expr
    assert isinstance(expr, CallExpr) and expr.call == "strftime"
    options = expr.function_options()
    assert isinstance(options, pc.StrftimeOptions)
    assert isinstance(derive_page, DeriveStep)
    assert isinstance(derive_page.derive.expr, FieldExpr)
    assert derive_page.derive.expr.path == ("context", "page")
    assert isinstance(filter_step, FilterStep)
    assert contract.output.write_overrides()["row_group_bytes"] == 32 * 1024**2


def test_events_derive_evaluates_with_pyarrow() -> None:
    """The example's expressions map one-to-one onto pyarrow expressions."""
    import pyarrow.dataset as ds

    def build(expr: Any) -> pc.Expression:
        if isinstance(expr, FieldExpr):
            return pc.field(*expr.path)
        if isinstance(expr, LiteralExpr):
            return pc.scalar(expr.scalar)
        return pc.Expression._call(
            expr.call, [build(a) for a in expr.args], expr.function_options()
        )

    contract = load_contract(EVENTS)
    table = pa.table(
        {
            "ts": pa.array([0, 86_400_000 * 400], pa.timestamp("ms", tz="UTC")),
            "context": pa.array([{"page": "/a"}, {"page": "/b"}]),
            "event_type": ["click", "test"],
        }
    )
    steps = contract.transforms
    assert isinstance(steps[1], DeriveStep) and isinstance(steps[2], DeriveStep)
    assert isinstance(steps[3], FilterStep)
    out = ds.dataset(table).to_table(
        columns={"event_date": build(steps[1].derive.expr), "page": build(steps[2].derive.expr)},
        filter=build(steps[3].filter),
    )
    assert out.to_pylist() == [{"event_date": "1970-01-01", "page": "/a"}]


# ---------------------------------------------------------------------------------------------
# Every documented key, accepted
# ---------------------------------------------------------------------------------------------

T = "timestamp[ms, tz=UTC]"

VALID: list[tuple[str, str, Any]] = [
    ("dataset", doc(head="dataset: web.events-v2\n"), lambda c: c.dataset == "web.events-v2"),
    ("match-string", doc("match: 'orders/*.csv*'\n"), lambda c: c.match == ["orders/*.csv*"]),
    ("match-list", doc("match: [a/*.csv, b/*.csv]\n"), lambda c: c.matches("b/x/y.csv")),
    ("no-match", doc(), lambda c: c.match == [] and not c.matches("anything")),
    ("format-csv", doc(), lambda c: c.format == "csv"),
    ("format-ndjson", doc(head="dataset: d\nformat: ndjson\n"), lambda c: c.format == "ndjson"),
    ("format-json", doc(head="dataset: d\nformat: json\n"), lambda c: c.format == "json"),
    ("format-unset", doc(head="dataset: d\n"), lambda c: c.format is None),
    ("options.delimiter", doc('options: {delimiter: "\\t"}\n'),
     lambda c: c.options.read_overrides() == {"delimiter": "\t"}),
    ("options.quote_char", doc("options: {quote_char: \"'\"}\n"),
     lambda c: c.options.read_overrides() == {"quote_char": "'"}),
    ("options.encoding", doc("options: {encoding: latin-1}\n"),
     lambda c: c.options.read_overrides() == {"encoding": "latin-1"}),
    ("options.header", doc("options: {header: false}\n"),
     lambda c: c.options.read_overrides() == {"header": False}),
    ("options.null_values", doc('options: {null_values: ["", NA, "null"]}\n'),
     lambda c: c.options.read_overrides() == {"null_values": ("", "NA", "null")}),
    ("options.json_path",
     doc("options: {json_path: data.item}\n", head="dataset: d\nformat: json\n"),
     lambda c: c.options.read_overrides() == {"json_path": "data.item"}),
    ("options.column_names", doc("options: {header: false, column_names: [a, b, t, d]}\n"),
     lambda c: c.options.read_overrides()["column_names"] == ("a", "b", "t", "d")),
    ("options-null-is-unset", doc("options: {delimiter: null}\n"),
     lambda c: c.options.read_overrides() == {}),
    ("columns.required", doc("  c: {type: int64, required: false}\n"),
     lambda c: c.columns["c"].required is False),
    ("columns.nullable", doc("  c: {type: int64, nullable: false}\n"),
     lambda c: not c.arrow_schema().field("c").nullable),
    ("columns.min-int", doc("  c: {type: int32, min: -5}\n"),
     lambda c: c.columns["c"].min_value == pa.scalar(-5, pa.int32())),
    ("columns.max-float", doc("  c: {type: float64, max: 1e6}\n"),
     lambda c: c.columns["c"].max_value == pa.scalar(1e6)),
    ("columns.min-decimal", doc('  c: {type: "decimal128(12, 2)", min: 0.01, max: "99.99"}\n'),
     lambda c: c.columns["c"].max_value == pa.scalar(Decimal("99.99"), pa.decimal128(12, 2))),
    ("columns.min-date", doc("  c: {type: date32, min: 2020-01-01, max: '2030-12-31'}\n"),
     lambda c: c.columns["c"].min_value.as_py().isoformat() == "2020-01-01"),
    ("columns.max-timestamp",
     doc(f'  c: {{type: "{T}", min: "2020-01-01T00:00:00+01:00", timezone: Europe/Paris}}\n'),
     lambda c: c.columns["c"].min_value.as_py().isoformat() == "2019-12-31T23:00:00+00:00"),
    ("columns.min-naive-in-timezone",
     doc(f'  c: {{type: "{T}", min: "2020-01-01 00:00:00", timezone: Europe/Paris}}\n'),
     lambda c: c.columns["c"].min_value.as_py().isoformat() == "2019-12-31T23:00:00+00:00"),
    ("columns.in-string", doc("  c: {type: string, in: [yes, no, 'on']}\n"),
     lambda c: c.columns["c"].allowed_values.to_pylist() == ["yes", "no", "on"]),
    ("columns.in-dictionary", doc("  c: {type: dictionary, in: [EUR, USD]}\n"),
     lambda c: c.columns["c"].allowed_values.type == pa.string()),
    ("columns.in-int", doc("  c: {type: int16, in: [1, 2, 3]}\n"),
     lambda c: c.columns["c"].allowed_values.to_pylist() == [1, 2, 3]),
    ("columns.regex", doc('  c: {type: large_string, regex: "^[A-Z]{2}$"}\n'),
     lambda c: c.columns["c"].regex == "^[A-Z]{2}$"),
    ("columns.max_length", doc("  c: {type: dictionary, max_length: 2}\n"),
     lambda c: c.columns["c"].max_length == 2),
    ("columns.unique", doc("  c: {type: int64, unique: true}\n"), lambda c: c.columns["c"].unique),
    ("columns.formats-date", doc("  c: {type: date32, formats: ['%d/%m/%Y']}\n"),
     lambda c: c.columns["c"].formats == ["%d/%m/%Y"]),
    ("columns.formats-timestamp", doc(f'  c: {{type: "{T}", formats: ["%s", "%Y"]}}\n'),
     lambda c: c.columns["c"].formats == ["%s", "%Y"]),
    ("columns.timezone", doc('  c: {type: "timestamp[us]", timezone: "+05:30"}\n'),
     lambda c: c.columns["c"].timezone == "+05:30"),
    ("columns-order", doc(), lambda c: list(c.columns) == ["a", "b", "t", "d"]),
    ("extra_columns-keep", doc(), lambda c: c.extra_columns == "keep"),
    ("extra_columns-drop", doc("extra_columns: drop\n"), lambda c: c.extra_columns == "drop"),
    ("extra_columns-reject", doc("extra_columns: reject\n"), lambda c: c.extra_columns == "reject"),
    ("type_errors-reject", doc(), lambda c: c.type_errors == "reject"),
    ("type_errors-fail", doc("type_errors: fail\n"), lambda c: c.type_errors == "fail"),
    ("rejects", doc("rejects: {path: s3://b/rejects/, max_ratio: 0, max_count: 0}\n"),
     lambda c: (c.rejects.path, c.rejects.max_ratio, c.rejects.max_count)
     == ("s3://b/rejects/", 0, 0)),
    ("rejects-defaults", doc(),
     lambda c: (c.rejects.path, c.rejects.max_ratio, c.rejects.max_count) == (None, None, None)),
    ("transforms.rename", doc("transforms:\n  - rename: {a: id}\n  - drop: [id]\n"),
     lambda c: isinstance(c.transforms[0], RenameStep) and c.transforms[0].rename == {"a": "id"}),
    ("transforms.cast", doc("transforms:\n  - cast: {a: float64, b: 'decimal128(5, 1)'}\n"),
     lambda c: isinstance(c.transforms[0], CastStep)
     and c.transforms[0].arrow_types == {"a": pa.float64(), "b": pa.decimal128(5, 1)}),
    ("transforms.parse_timestamp",
     doc("transforms:\n  - parse_timestamp: {column: b, formats: ['%Y-%m-%d'], timezone: "
         "Europe/Paris, unit: us}\n"),
     lambda c: isinstance(c.transforms[0], ParseTimestampStep)
     and c.transforms[0].parse_timestamp.arrow_type == pa.timestamp("us", tz="Europe/Paris")),
    ("transforms.parse_timestamp-defaults",
     doc("transforms:\n  - parse_timestamp: {column: b, formats: '%Y'}\n"),
     lambda c: c.transforms[0].parse_timestamp.arrow_type == pa.timestamp("ms", tz="UTC")),
    ("transforms.derive",
     doc("transforms:\n  - derive: {name: a2, expr: {call: multiply, args: [{field: a}, "
         "{literal: 2}]}, type: int32}\n  - select: [a2]\n"),
     lambda c: isinstance(c.transforms[0], DeriveStep)
     and c.transforms[0].derive.arrow_type == pa.int32()),
    ("transforms.filter",
     doc("transforms:\n  - filter: {call: greater, args: [{field: d}, "
         "{literal: 2024-01-01, type: date32}]}\n"),
     lambda c: isinstance(c.transforms[0], FilterStep)
     and c.transforms[0].filter.args[1].scalar == pa.scalar(
         __import__("datetime").date(2024, 1, 1), pa.date32())),
    ("transforms.select", doc("transforms:\n  - select: [b, a]\n"),
     lambda c: isinstance(c.transforms[0], SelectStep) and c.transforms[0].select == ["b", "a"]),
    ("transforms.drop", doc("transforms:\n  - drop: [b]\n"),
     lambda c: isinstance(c.transforms[0], DropStep) and c.transforms[0].drop == ["b"]),
    ("transforms.dedupe", doc("transforms:\n  - dedupe: {keys: [a, b], keep: first}\n"),
     lambda c: isinstance(c.transforms[0], DedupeStep)
     and c.transforms[0].dedupe.keys == ["a", "b"]),
    ("transforms.enrich",
     doc("extra_columns: drop\ntransforms:\n  - enrich: {path: s3://ref/c.parquet, on: a, "
         "columns: [segment], how: inner}\n  - select: [segment]\n"),
     lambda c: isinstance(c.transforms[0], EnrichStep) and c.transforms[0].enrich.on == ["a"]
     and c.transforms[0].enrich.reference_format == "parquet"),
    ("transforms.enrich-format",
     doc("transforms:\n  - enrich: {path: ref/customers.txt, on: [a, b], format: csv}\n"),
     lambda c: c.transforms[0].enrich.reference_format == "csv"
     and c.transforms[0].enrich.how == "left"),
    ("transforms.enrich-suffix", doc("transforms:\n  - enrich: {path: ref/c.csv.gz, on: a}\n"),
     lambda c: c.transforms[0].enrich.reference_format == "csv"),
    ("transforms.enrich_api",
     doc("transforms:\n  - enrich_api:\n      url: https://geo.example/v1/lookup\n"
         "      protocol: batch\n      on: [b]\n      results_path: data.results\n"
         "      columns: {region: string, vat_rate: 'decimal128(5, 4)'}\n"
         "      secret: chunkwise/geo-api\n      auth_header: X-Api-Token\n"
         "      batch_size: 100\n      concurrency: 2\n      rate_limit_per_s: 20\n"
         "      timeout_s: 2.5\n      max_attempts: 3\n      on_missing: reject\n"
         "      cache: {ttl_s: 60, max_keys: 1000}\n"
         "  - filter: {call: greater, args: [{field: vat_rate}, {literal: 0}]}\n"),
     lambda c: isinstance(c.transforms[0], EnrichApiStep)
     and (lambda s: (s.host, s.path, s.on, s.secret, s.auth_header, s.batch_size,
                     s.concurrency, s.rate_limit_per_s, s.timeout_s, s.max_attempts,
                     s.on_missing, s.cache.ttl_s, s.cache.max_keys)
          == ("geo.example", "data.results", ["b"], "chunkwise/geo-api", "X-Api-Token", 100, 2,
              20, 2.5, 3, "reject", 60, 1000))(c.transforms[0].enrich_api)
     and c.transforms[0].enrich_api.arrow_types["vat_rate"] == pa.decimal128(5, 4)),
    ("transforms.enrich_api-per_key",
     doc("transforms:\n  - enrich_api: {url: 'http://127.0.0.1:8080/geo/{b}?d={d}', "
         "protocol: per_key, on: [b, d], columns: {region: string}, on_missing: null}\n"),
     lambda c: c.transforms[0].enrich_api.placeholders == ["b", "d"]
     and c.transforms[0].enrich_api.path == "@"
     and c.transforms[0].enrich_api.on_missing == "null"
     and c.transforms[0].enrich_api.secret is None),
    ("transforms.python", doc("transforms:\n  - python: {function: 'acme.fixes:clean'}\n"),
     lambda c: isinstance(c.transforms[0], PythonStep)
     and (c.transforms[0].python.module, c.transforms[0].python.attribute)
     == ("acme.fixes", "clean")),
    ("expr.call.options",
     doc("transforms:\n  - filter: {call: is_in, args: [{field: b}], "
         "options: {value_set: [x, y]}}\n"),
     lambda c: pc.call_function("is_in", [pa.array(["x", "z"])],
                                c.transforms[0].filter.function_options()).to_pylist()
     == [True, False]),
    ("expr.call-cast",
     doc("transforms:\n  - derive: {name: e, expr: {call: cast, args: [{field: b}], "
         "options: {target_type: int64}}}\n"),
     lambda c: pc.call_function("cast", [pa.array(["7"])],
                                c.transforms[0].derive.expr.function_options())
     == pa.array([7], pa.int64())),
    ("expr.call-varargs",
     doc("transforms:\n  - derive: {name: e, expr: {call: coalesce, args: [{field: a}, "
         "{literal: 0}]}}\n"),
     lambda c: c.transforms[0].derive.expr.call == "coalesce"),
    ("expr.literal-null", doc("transforms:\n  - derive: {name: e, expr: {literal: null, "
                              "type: string}}\n"),
     lambda c: c.transforms[0].derive.expr.scalar == pa.scalar(None, pa.string())),
    ("aggregate",
     doc("aggregate:\n  by: [b]\n  metrics:\n    n: {count: a}\n    s: {sum: a}\n"
         "    lo: {min: t}\n    hi: {max: t}\n    avg: {mean: a}\n"
         "    u: {count_distinct: a}\n    ua: {count_distinct: a, approximate: true}\n"
         "  max_groups: 500\n  path: aggregates/d.parquet\n"),
     lambda c: [(m.function, m.column, m.approximate) for m in c.aggregate.metrics.values()]
     == [("count", "a", False), ("sum", "a", False), ("min", "t", False), ("max", "t", False),
         ("mean", "a", False), ("count_distinct", "a", False), ("count_distinct", "a", True)]
     and c.aggregate.max_groups == 500 and c.aggregate.by == ["b"]),
    ("aggregate-defaults", doc("aggregate: {metrics: {n: {count: a}}, path: agg.parquet}\n"),
     lambda c: c.aggregate.by == [] and c.aggregate.max_groups == 1_000_000),
    ("output",
     doc("output:\n  compression: gzip\n  compression_level: 9\n  row_group_bytes: 1.5MiB\n"
         "  row_group_rows: 1000\n  max_rows_per_file: 10\n  max_bytes_per_file: 512MB\n"
         "  partition_by: [d, b]\n  max_open_writers: 4\n"),
     lambda c: c.output.write_overrides() == {
         "compression": "gzip", "compression_level": 9, "row_group_bytes": 1572864,
         "row_group_rows": 1000, "max_rows_per_file": 10, "max_bytes_per_file": 512_000_000}
     and c.output.partition_by == ["d", "b"] and c.output.max_open_writers == 4),
    ("output.partition_projection",
     doc("output:\n  partition_by: [d, b, a]\n  partition_projection:\n"
         "    d: {type: date, range: [2020-01-01, NOW], format: yyyy-MM-dd, interval: 1, "
         "unit: DAYS}\n    b: {type: enum, values: [x, y]}\n"
         "    a: {type: integer, range: ['0', '99'], interval: 1, digits: 2}\n"),
     lambda c: c.output.partition_projection["a"].table_properties("a") == {
         "projection.a.type": "integer", "projection.a.range": "0,99",
         "projection.a.interval": "1", "projection.a.digits": "2"}
     and c.output.partition_projection["b"].values == ["x", "y"]
     and c.output.partition_projection["d"].unit == "DAYS"),
    ("output.partition_projection-injected",
     doc("output: {partition_by: [b], partition_projection: {b: {type: injected}}}\n"),
     lambda c: c.output.partition_projection["b"].type == "injected"),
    ("output-int-size", doc("output: {row_group_bytes: 4096, compression: none}\n"),
     lambda c: c.output.write_overrides() == {"row_group_bytes": 4096, "compression": "none"}),
    ("output-defaults", doc(),
     lambda c: c.output.write_overrides() == {} and c.output.max_open_writers == 32
     and c.output.compression == "zstd"),
    ("partition_by-derived",
     doc("extra_columns: reject\ntransforms:\n  - rename: {b: name}\n  - derive: {name: day, "
         "expr: {call: strftime, args: [{field: t}], options: {format: '%Y-%m-%d'}}}\n"
         "output: {partition_by: [day, name]}\n"),
     lambda c: c.output.partition_by == ["day", "name"]),
    ("keep-allows-undeclared",
     doc("transforms:\n  - rename: {raw: cooked}\n  - filter: {call: is_valid, args: "
         "[{field: other}]}\noutput: {partition_by: [cooked]}\n"),
     lambda c: len(c.transforms) == 2),
    ("python-opens-columns",
     doc("extra_columns: drop\ntransforms:\n  - python: {function: 'm:f'}\n"
         "output: {partition_by: [made_by_python]}\n"),
     lambda c: c.output.partition_by == ["made_by_python"]),
]


@pytest.mark.parametrize(("text", "check"), [(t, c) for _, t, c in VALID],
                         ids=[i for i, _, _ in VALID])
def test_key_accepted(text: str, check: Any) -> None:
    contract = load_contract(text)
    assert check(contract)


@pytest.mark.parametrize(
    "type_name, expected",
    [
        ("int8", pa.int8()), ("uint64", pa.uint64()), ("float32", pa.float32()),
        ("float64", pa.float64()), ("bool", pa.bool_()), ("string", pa.string()),
        ("large_string", pa.large_string()), ("binary", pa.binary()), ("date32", pa.date32()),
        ("date64", pa.date64()), ("decimal128(12, 2)", pa.decimal128(12, 2)),
        ("decimal256(40, 4)", pa.decimal256(40, 4)), ("timestamp[s]", pa.timestamp("s")),
        ("timestamp[ns, tz=Europe/Paris]", pa.timestamp("ns", tz="Europe/Paris")),
        ("dictionary", pa.dictionary(pa.int32(), pa.string())),
    ],
)
def test_column_types(type_name: str, expected: pa.DataType) -> None:
    contract = load_contract(doc(f'  c: {{type: "{type_name}"}}\n'))
    assert contract.columns["c"].arrow_type == expected
    assert contract.arrow_schema().field("c").type == expected


# ---------------------------------------------------------------------------------------------
# Every documented key, rejected with the line of the offending key
# ---------------------------------------------------------------------------------------------

#: An ``enrich_api`` step that loads; the INVALID cases add the one key they get wrong.
API = ("transforms:\n  - enrich_api:\n      url: https://geo.example/v1\n      on: [b]\n"
       "      columns: {region: string}\n")

INVALID: list[tuple[str, str, str, str]] = [
    # (id, contract, marker on the offending line, fragment of the message)
    ("dataset", doc(head="dataset: a/b\n"), "dataset:", "dataset: String should match"),
    ("dataset-missing", "columns: {}\n", "columns", "dataset: missing required key"),
    ("match", doc("match: [1]\n"), "match:", "match[0]: Input should be a valid string"),
    ("format", doc(head="dataset: d\nformat: xml\n"), "format:", "format: Input should be"),
    ("options", doc("options: [x]\n"), "options:", "options: Input should be"),
    ("options.delimiter", doc('options:\n  delimiter: ";;"\n'), "delimiter",
     "options.delimiter: String should have at most 1 character"),
    ("options.quote_char", doc("options:\n  quote_char: ''\n"), "quote_char",
     "options.quote_char: String should have at least 1 character"),
    ("options.quote_char-ascii", doc('options:\n  quote_char: "«"\n'), "quote_char",
     "options.quote_char: must be one ASCII character, not '«'"),
    ("options.encoding", doc("options:\n  encoding: utf-99\n"), "encoding",
     "unknown encoding 'utf-99'"),
    ("options.header", doc("options:\n  header: yes\n"), "header",
     "options.header: Input should be a valid boolean (got 'yes')"),
    ("options.null_values", doc("options:\n  null_values: NA\n"), "null_values",
     "options.null_values: Input should be a valid list"),
    ("options.null_values-null", doc("options:\n  null_values: [NA, null]\n"), "null_values",
     "options.null_values[1]: Input should be a valid string"),
    ("options.json_path", doc("options:\n  json_path: data\n", head="dataset: d\nformat: json\n"),
     "json_path", "must name an array as key.key.item"),
    ("options.json_path-csv", doc("options:\n  json_path: data.item\n"), "json_path",
     "json_path applies to format json, not csv"),
    ("options.delimiter-json",
     doc("options:\n  delimiter: ';'\n", head="dataset: d\nformat: json\n"),
     "delimiter", "delimiter applies to csv, not json"),
    ("options.column_names", doc("options:\n  column_names: [a, b]\n"), "column_names",
     "required column 't' is not in column_names"),
    ("options-typo", doc("options:\n  delimeter: ';'\n"), "delimeter",
     "unknown key 'delimeter' (did you mean 'delimiter'?)"),
    ("columns", doc(columns="columns: [a, b]\n"), "columns:", "columns: Input should be"),
    ("columns.type", doc('  c: {type: "decmal(12,2)"}\n'), "c:",
     "columns.c.type: unknown type 'decmal(12,2)'"),
    ("columns.type-tz", doc('  c: {type: "timestamp[ms, tz=Mars/Olympus]"}\n'), "c:",
     "unknown timezone 'Mars/Olympus'"),
    ("columns.type-missing", doc("  c: {nullable: true}\n"), "c:",
     "columns.c.type: missing required key"),
    ("columns.required", doc("  c: {type: int64, required: maybe}\n"), "c:",
     "columns.c.required: Input should be a valid boolean"),
    ("columns.nullable", doc("  c:\n    type: int64\n    nullable: 1\n"), "nullable",
     "columns.c.nullable: Input should be a valid boolean"),
    ("columns.min-string", doc("  c:\n    type: string\n    min: 3\n"), "min:",
     "columns.c.min: min applies to numeric, decimal, date and timestamp columns, not string"),
    ("columns.min-not-number", doc("  c:\n    type: int64\n    min: abc\n"), "min:",
     "'abc' is not a number"),
    ("columns.min-not-integer", doc("  c:\n    type: int64\n    min: 1.5\n"), "min:",
     "1.5 is not an integer"),
    ("columns.min-bad-date", doc("  c:\n    type: date32\n    min: 2024-02-30\n"), "min:",
     "'2024-02-30' is not an ISO 8601 date"),
    ("columns.min-decimal-scale", doc('  c:\n    type: "decimal128(5, 2)"\n    min: 0.001\n'),
     "min:", "0.001 does not fit decimal128(5, 2)"),
    ("columns.min-infinite", doc("  c:\n    type: int64\n    min: .inf\n"), "min:",
     "inf is not a finite number"),
    ("columns.max-overflow", doc("  c:\n    type: int8\n    max: 1000\n"), "max:",
     "1000 does not fit int8"),
    ("columns.max-below-min", doc("  c:\n    type: float64\n    min: 5\n    max: 1\n"), "max:",
     "max 1 is less than min 5"),
    ("columns.max-bool", doc("  c:\n    type: bool\n    max: 1\n"), "max:",
     "max applies to numeric"),
    ("columns.in-type", doc("  c:\n    type: int64\n    in: [1, x]\n"), "in:",
     "columns.c.in: 'x' is not a number"),
    ("columns.in-unquoted", doc("  c:\n    type: string\n    in: [1, x]\n"), "in:",
     "1 is not a string (the column is string): quote it in YAML"),
    ("columns.in-empty", doc("  c:\n    type: string\n    in: []\n"), "in:",
     "in needs at least one value"),
    ("columns.in-null", doc("  c:\n    type: string\n    in: [x, null]\n"), "in:",
     "null is not a value here"),
    ("columns.regex", doc('  c:\n    type: string\n    regex: "^[A-Z{2}$"\n'), "regex",
     "columns.c.regex: bad regex '^[A-Z{2}$' (RE2): Invalid regular expression: missing ]"),
    ("columns.regex-int", doc('  c:\n    type: int64\n    regex: "^1$"\n'), "regex",
     "regex applies to string, large_string and dictionary columns, not int64"),
    ("columns.max_length", doc("  c:\n    type: string\n    max_length: -1\n"), "max_length",
     "columns.c.max_length: Input should be greater than or equal to 0"),
    ("columns.max_length-int", doc("  c:\n    type: int64\n    max_length: 3\n"), "max_length",
     "max_length applies to string"),
    ("columns.unique", doc("  c:\n    type: int64\n    unique: 'yes'\n"), "unique",
     "columns.c.unique: Input should be a valid boolean"),
    ("columns.formats-int", doc("  c:\n    type: int64\n    formats: ['%Y']\n"), "formats",
     "formats applies to date and timestamp columns, not int64"),
    ("columns.formats-empty", doc(f'  c:\n    type: "{T}"\n    formats: []\n'), "formats",
     "columns.c.formats: List should have at least 1 item"),
    ("columns.timezone", doc(f'  c:\n    type: "{T}"\n    timezone: Mars/Base\n'), "timezone",
     "columns.c.timezone: unknown timezone 'Mars/Base'"),
    ("columns.timezone-date", doc("  c:\n    type: date32\n    timezone: UTC\n"), "timezone",
     "timezone applies to timestamp columns, not date32"),
    ("columns-typo", doc("  c:\n    type: int64\n    nulable: false\n"), "nulable",
     "columns.c.nulable: unknown key 'nulable' (did you mean 'nullable'?)"),
    ("columns-allowed-by-name", doc("  c:\n    type: int64\n    allowed: [1]\n"), "allowed",
     "unknown key 'allowed'"),
    ("extra_columns", doc("extra_columns: ignore\n"), "extra_columns",
     "extra_columns: Input should be 'keep', 'drop' or 'reject'"),
    ("type_errors", doc("type_errors: skip\n"), "type_errors",
     "type_errors: Input should be 'reject' or 'fail'"),
    ("rejects.path", doc("rejects:\n  path: ''\n"), "path", "rejects.path: String should have"),
    ("rejects.max_ratio", doc("rejects:\n  max_ratio: 1.5\n"), "max_ratio",
     "rejects.max_ratio: Input should be less than or equal to 1"),
    ("rejects.max_count", doc("rejects:\n  max_count: -1\n"), "max_count",
     "rejects.max_count: Input should be greater than or equal to 0"),
    ("rejects-typo", doc("rejects:\n  max_rows: 3\n"), "max_rows", "unknown key 'max_rows'"),
    ("transforms", doc("transforms: {rename: {a: b}}\n"), "transforms",
     "transforms: Input should be a valid list"),
    ("transforms-unknown", doc("transforms:\n  - derivee: {name: x}\n"), "derivee",
     "transforms[0]: unknown step 'derivee' (did you mean 'derive'?): use one of rename, cast, "
     "parse_timestamp, derive, filter, select, drop, dedupe, enrich, enrich_api, python"),
    ("transforms-two-keys", doc("transforms:\n  - dedupe:\n    keys: [a]\n"), "dedupe",
     "a step has exactly one key, the step name; got dedupe, keys (check the indentation)"),
    ("transforms-not-mapping", doc("transforms:\n  - drop\n"), "drop",
     "a step is a mapping {step_name: arguments}"),
    ("rename-empty", doc("transforms:\n  - rename: {}\n"), "rename",
     "transforms[0].rename: Dictionary should have at least 1 item"),
    ("rename-unknown", doc("extra_columns: drop\ntransforms:\n  - rename: {x: y}\n"), "rename",
     "transforms[0].rename.x: unknown column 'x'"),
    ("rename-exists", doc("transforms:\n  - rename: {a: b}\n"), "rename",
     "cannot rename 'a' to 'b': that column already exists"),
    ("cast-type", doc("transforms:\n  - cast: {a: integer}\n"), "cast",
     "transforms[0].cast: a: unknown type 'integer'"),
    ("cast-unknown", doc("extra_columns: reject\ntransforms:\n  - cast: {z: int64}\n"), "cast",
     "transforms[0].cast.z: unknown column 'z'"),
    ("parse_timestamp-formats",
     doc("transforms:\n  - parse_timestamp:\n      column: b\n      timezone: UTC\n"),
     "parse_timestamp", "transforms[0].parse_timestamp.formats: missing required key"),
    ("parse_timestamp-unit",
     doc("transforms:\n  - parse_timestamp:\n      column: b\n      formats: ['%Y']\n"
         "      unit: h\n"), "unit:", "transforms[0].parse_timestamp.unit: Input should be"),
    ("parse_timestamp-timezone",
     doc("transforms:\n  - parse_timestamp:\n      column: b\n      formats: ['%Y']\n"
         "      timezone: Nowhere\n"), "timezone", "unknown timezone 'Nowhere'"),
    ("parse_timestamp-column",
     doc("extra_columns: drop\ntransforms:\n  - parse_timestamp:\n      column: bb\n"
         "      formats: ['%Y']\n"), "column: bb", "unknown column 'bb' (did you mean 'b'?)"),
    ("derive-name", doc("transforms:\n  - derive:\n      expr: {field: a}\n"), "derive",
     "transforms[0].derive.name: missing required key"),
    ("derive-type", doc("transforms:\n  - derive:\n      name: x\n      expr: {field: a}\n"
                        "      type: number\n"), "type: number", "unknown type 'number'"),
    ("derive-expr", doc("transforms:\n  - derive:\n      name: x\n      expr: a * 2\n"), "expr",
     "transforms[0].derive.expr: an expression is {field: name}, {literal: value} or "
     "{call: function, args: [...]}; got 'a * 2'"),
    ("derive-field", doc("extra_columns: drop\ntransforms:\n  - derive:\n      name: x\n"
                         "      expr:\n        call: abs\n        args:\n          - {field: q}\n"),
     "field: q", "transforms[0].derive.expr.args[0].field: unknown column 'q'"),
    ("filter-function", doc("transforms:\n  - filter:\n      call: multply\n"
                            "      args: [{field: a}, {field: a}]\n"), "filter",
     "transforms[0].filter: unknown pyarrow.compute function 'multply' (did you mean multiply"),
    ("filter-vector", doc("transforms:\n  - filter: {call: cumulative_sum, args: [{field: a}]}\n"),
     "filter", "'cumulative_sum' is a vector function"),
    ("filter-aggregate", doc("transforms:\n  - filter: {call: sum, args: [{field: a}]}\n"),
     "filter", "'sum' is a scalar_aggregate function"),
    ("filter-arity", doc("transforms:\n  - filter: {call: equal, args: [{field: a}]}\n"),
     "filter", "'equal' takes 2 argument(s) (x, y), got 1"),
    ("filter-options", doc("transforms:\n  - filter: {call: equal, args: [{field: a}, "
                           "{field: a}], options: {x: 1}}\n"), "filter",
     "'equal' takes no options"),
    ("filter-bad-option", doc("transforms:\n  - derive: {name: s, expr: {call: strftime, args: "
                              "[{field: t}], options: {fmt: '%Y'}}}\n"), "derive",
     "options of 'strftime' (StrftimeOptions)"),
    ("expr-cast-needs-type", doc("transforms:\n  - derive: {name: e, expr: {call: cast, args: "
                                 "[{field: b}]}}\n"), "derive",
     "cast needs options: {target_type: <Arrow type name>}"),
    ("filter-needs-options", doc("transforms:\n  - filter: {call: is_in, args: [{field: b}]}\n"),
     "filter", "'is_in' needs options (SetLookupOptions)"),
    ("expr-two-kinds", doc("transforms:\n  - filter: {field: a, literal: 1}\n"), "filter",
     "an expression has one of field, literal, call; got field, literal"),
    ("expr-field-empty", doc("transforms:\n  - filter: {field: []}\n"), "filter",
     "transforms[0].filter.field"),
    ("expr-literal-type", doc("transforms:\n  - filter:\n      call: equal\n      args:\n"
                              "        - {field: a}\n        - {literal: x, type: int64}\n"),
     "literal: x", "transforms[0].filter.args[1]: 'x' is not a number"),
    ("expr-typo", doc("transforms:\n  - filter:\n      call: invert\n      args: [{field: a}]\n"
                      "      option: {}\n"), "option:",
     "transforms[0].filter.option: unknown key 'option' (did you mean 'options'?)"),
    ("select-empty", doc("transforms:\n  - select: []\n"), "select",
     "transforms[0].select: List should have at least 1 item"),
    ("select-unknown", doc("extra_columns: reject\ntransforms:\n  - select:\n      - a\n"
                           "      - zz\n"), "- zz", "transforms[0].select[1]: unknown column 'zz'"),
    ("drop-unknown", doc("extra_columns: drop\ntransforms:\n  - drop: [zz]\n"), "- drop",
     "unknown column 'zz'"),
    ("drop-then-use", doc("transforms:\n  - drop: [a]\n  - dedupe: {keys: [a]}\n"), "dedupe",
     "transforms[1].dedupe.keys[0]: column 'a' was dropped by transforms[0]"),
    ("rename-then-use", doc("transforms:\n  - rename: {a: id}\n  - select: [a]\n"), "select",
     "transforms[1].select[0]: column 'a' was renamed to 'id' by transforms[0]"),
    ("dedupe-keep", doc("transforms:\n  - dedupe: {keys: [a], keep: last}\n"), "dedupe",
     "transforms[0].dedupe.keep: Input should be 'first'"),
    ("dedupe-keys", doc("extra_columns: drop\ntransforms:\n  - dedupe: {keys: [x]}\n"), "dedupe",
     "unknown column 'x'"),
    ("enrich-on", doc("extra_columns: drop\ntransforms:\n  - enrich: {path: r.csv, on: z}\n"),
     "enrich", "transforms[0].enrich.on[0]: unknown column 'z'"),
    ("enrich-how", doc("transforms:\n  - enrich: {path: r.csv, on: a, how: outer}\n"), "enrich",
     "transforms[0].enrich.how: Input should be 'left' or 'inner'"),
    ("enrich-format", doc("transforms:\n  - enrich: {path: r.csv, on: a, format: xlsx}\n"),
     "enrich", "transforms[0].enrich.format: Input should be 'csv' or 'parquet'"),
    ("enrich-suffix", doc("transforms:\n  - enrich: {path: ref/table, on: a}\n"), "enrich",
     "cannot tell the format of 'ref/table' from its suffix"),
    ("enrich-path", doc("transforms:\n  - enrich: {on: a}\n"), "enrich",
     "transforms[0].enrich.path: missing required key"),
    ("enrich-columns", doc("transforms:\n  - enrich: {path: r.csv, on: a, columns: [b]}\n"),
     "enrich", "transforms[0].enrich.columns[0]: column 'b' already exists"),
    ("enrich-columns-key", doc("transforms:\n  - enrich: {path: r.csv, on: a, columns: [a]}\n"),
     "enrich", "'a' is a join key"),
    ("enrich_api.url", doc("transforms:\n  - enrich_api:\n      url: http://geo.example/v1\n"
                           "      on: [b]\n      columns: {region: string}\n"), "url:",
     "transforms[0].enrich_api.url: url must be https:// (http:// only on a loopback address"),
    ("enrich_api.url-host", doc("transforms:\n  - enrich_api:\n"
                                "      url: 'https://{b}.example/'\n      protocol: per_key\n"
                                "      on: [b]\n      columns: {r: string}\n"),
     "url:", "a placeholder may fill the path or query, never the host"),
    ("enrich_api-url-missing",
     doc("transforms:\n  - enrich_api: {on: [b], columns: {r: string}}\n"),
     "enrich_api", "transforms[0].enrich_api.url: missing required key"),
    ("enrich_api.protocol", doc(API + "      protocol: per_key\n"), "enrich_api:",
     "a per_key URL names every key column of `on` as {column}"),
    ("enrich_api.results_path", doc(API + "      results_path: 'results[?'\n"), "results_path",
     "transforms[0].enrich_api.results_path: results_path is not JMESPath"),
    ("enrich_api.secret", doc(API + "      secret: ''\n"), "secret:",
     "transforms[0].enrich_api.secret: String should have at least 1 character"),
    ("enrich_api.auth_header", doc(API + "      auth_header: ''\n"), "auth_header",
     "transforms[0].enrich_api.auth_header: String should have at least 1 character"),
    ("enrich_api.batch_size", doc(API + "      batch_size: 0\n"), "batch_size",
     "transforms[0].enrich_api.batch_size: Input should be greater than or equal to 1"),
    ("enrich_api.concurrency", doc(API + "      concurrency: 64\n"), "concurrency",
     "transforms[0].enrich_api.concurrency: Input should be less than or equal to 32"),
    ("enrich_api.rate_limit_per_s", doc(API + "      rate_limit_per_s: 0\n"), "rate_limit_per_s",
     "transforms[0].enrich_api.rate_limit_per_s: Input should be greater than 0"),
    ("enrich_api.timeout_s", doc(API + "      timeout_s: 0\n"), "timeout_s",
     "transforms[0].enrich_api.timeout_s: Input should be greater than 0"),
    ("enrich_api.max_attempts", doc(API + "      max_attempts: 0\n"), "max_attempts",
     "transforms[0].enrich_api.max_attempts: Input should be greater than or equal to 1"),
    ("enrich_api.on_missing", doc(API + "      on_missing: drop\n"), "on_missing",
     "transforms[0].enrich_api.on_missing: Input should be 'null', 'reject' or 'fail'"),
    ("enrich_api.cache", doc(API + "      cache: {ttl_s: 0}\n"), "cache:",
     "transforms[0].enrich_api.cache.ttl_s: Input should be greater than 0"),
    ("enrich_api.max_keys", doc(API + "      cache:\n        max_keys: 0\n"), "max_keys",
     "transforms[0].enrich_api.cache.max_keys: Input should be greater than 0"),
    ("enrich_api.columns", doc("transforms:\n  - enrich_api:\n      url: https://geo.example/v1\n"
                               "      on: [a]\n      columns: {b: string}\n"), "{b: string}",
     "transforms[0].enrich_api.columns.b: column 'b' already exists"),
    ("enrich_api.on", doc("extra_columns: drop\ntransforms:\n  - enrich_api:\n"
                          "      url: https://geo.example/v1\n      on: [zz]\n"
                          "      columns: {r: string}\n"), "on: [zz]",
     "transforms[0].enrich_api.on[0]: unknown column 'zz'"),
    ("python", doc("transforms:\n  - python: {function: acme.fixes.clean}\n"), "python",
     "transforms[0].python.function: function 'acme.fixes.clean' must be "
     "'package.module:function'"),
    ("aggregate-metrics", doc("aggregate:\n  metrics: {}\n  path: a.parquet\n"), "metrics",
     "aggregate.metrics: Dictionary should have at least 1 item"),
    ("aggregate-two-functions", doc("aggregate:\n  metrics:\n    m: {sum: a, max: a}\n"
                                    "  path: a.parquet\n"), "m:",
     "aggregate.metrics.m: a metric has exactly one of count, sum, min, max, mean, "
     "count_distinct; got sum, max"),
    ("aggregate-no-function", doc("aggregate:\n  metrics:\n    m: {approximate: true}\n"
                                  "  path: a.parquet\n"), "m:", "got none"),
    ("aggregate-function-typo", doc("aggregate:\n  metrics:\n    m: {avg: a}\n"
                                    "  path: a.parquet\n"), "m:",
     "aggregate.metrics.m.avg: unknown key 'avg'"),
    ("aggregate-approximate", doc("aggregate:\n  metrics:\n    m: {count: a, approximate: true}\n"
                                  "  path: a.parquet\n"), "m:",
     "approximate applies to count_distinct only"),
    ("aggregate-sum-string", doc("aggregate:\n  metrics:\n    m: {mean: b}\n"
                                 "  path: a.parquet\n"), "m:",
     "aggregate.metrics.m.mean: mean needs a numeric column; 'b' is string"),
    ("aggregate-by", doc("extra_columns: drop\naggregate:\n  by: [zz]\n  metrics: "
                         "{m: {count: a}}\n  path: a.parquet\n"), "by:",
     "aggregate.by[0]: unknown column 'zz'"),
    ("aggregate-metric-column", doc("extra_columns: drop\naggregate:\n  metrics:\n"
                                    "    m: {count: zz}\n  path: a.parquet\n"), "m:",
     "aggregate.metrics.m.count: unknown column 'zz'"),
    ("aggregate-metric-is-key", doc("aggregate:\n  by: [b]\n  metrics:\n    b: {count: a}\n"
                                    "  path: a.parquet\n"), "b: {count",
     "metric 'b' is also a group-by column"),
    ("aggregate-max_groups", doc("aggregate:\n  metrics: {m: {count: a}}\n  max_groups: 0\n"
                                 "  path: a.parquet\n"), "max_groups",
     "aggregate.max_groups: Input should be greater than or equal to 1"),
    ("aggregate-path", doc("aggregate:\n  metrics: {m: {count: a}}\n"), "aggregate",
     "aggregate.path: missing required key"),
    ("output.compression", doc("output:\n  compression: lz4\n"), "compression",
     "output.compression: Input should be 'zstd', 'snappy', 'gzip' or 'none'"),
    ("output.compression_level", doc("output:\n  compression: snappy\n  compression_level: 3\n"),
     "compression_level", "output.compression_level: compression snappy takes no level"),
    ("output.compression_level-range", doc("output:\n  compression: gzip\n"
                                           "  compression_level: 12\n"), "compression_level",
     "level 12 is not valid for gzip"),
    ("output.row_group_bytes", doc("output:\n  row_group_bytes: 16 MiBs\n"), "row_group_bytes",
     "output.row_group_bytes: invalid size '16 MiBs'"),
    ("output.row_group_bytes-zero", doc("output:\n  row_group_bytes: 0\n"), "row_group_bytes",
     "output.row_group_bytes: Input should be greater than 0"),
    ("output.row_group_rows", doc("output:\n  row_group_rows: 0\n"), "row_group_rows",
     "output.row_group_rows: Input should be greater than or equal to 1"),
    ("output.max_rows_per_file", doc("output:\n  max_rows_per_file: 0\n"), "max_rows_per_file",
     "output.max_rows_per_file: Input should be greater than or equal to 1"),
    ("output.max_bytes_per_file", doc("output:\n  max_bytes_per_file: lots\n"),
     "max_bytes_per_file", "output.max_bytes_per_file: invalid size 'lots'"),
    ("output.partition_by", doc("extra_columns: reject\noutput:\n  partition_by: [bb]\n"),
     "partition_by", "output.partition_by[0]: unknown column 'bb' (did you mean 'b'?)"),
    ("output.partition_by-dropped", doc("transforms:\n  - drop: [b]\noutput:\n"
                                        "  partition_by: [b]\n"), "partition_by",
     "column 'b' was dropped by transforms[0]"),
    ("output.max_open_writers", doc("output:\n  max_open_writers: 0\n"), "max_open_writers",
     "output.max_open_writers: Input should be greater than or equal to 1"),
    ("output.partition_projection", doc("output:\n  partition_by: [b]\n"
                                        "  partition_projection: {a: {type: injected}}\n"),
     "output:", "partition_projection needs exactly the partition_by columns (b)"),
    ("projection.values", doc("output:\n  partition_by: [b]\n  partition_projection:\n"
                              "    b: {type: integer, values: [x]}\n"), "values:",
     "values: not a key of a projection of type integer"),
    ("projection.range", doc("output:\n  partition_by: [a]\n  partition_projection:\n"
                             "    a: {type: integer, range: ['0', ten]}\n"), "range:",
     "range: 'ten' is not a whole number"),
    ("projection.format", doc("output:\n  partition_by: [d]\n  partition_projection:\n"
                              "    d: {type: date, range: [2020-01-01, NOW]}\n"), "{type: date,",
     "a projection of type date needs format, range"),
    ("projection.interval", doc("output:\n  partition_by: [a]\n  partition_projection:\n"
                                "    a: {type: integer, range: ['0', '9'], interval: 0}\n"),
     "interval:", "Input should be greater than or equal to 1"),
    ("projection.unit", doc("output:\n  partition_by: [d]\n  partition_projection:\n"
                            "    d: {type: date, range: [2020-01-01, NOW], format: yyyy, "
                            "unit: AGES}\n"), "unit:", "unit: Input should be 'YEARS'"),
    ("projection.digits", doc("output:\n  partition_by: [a]\n  partition_projection:\n"
                              "    a: {type: integer, range: ['0', '9'], digits: 0}\n"),
     "digits:", "Input should be greater than or equal to 1"),
    ("projection.type", doc("output:\n  partition_by: [a]\n  partition_projection:\n"
                            "    a: {type: hourly}\n"), "type: hourly", "Input should be 'enum'"),
    ("output-typo", doc("output:\n  partitions: [a]\n"), "partitions",
     "output.partitions: unknown key 'partitions'"),
    ("top-typo", doc("colums:\n  x: {type: int64}\n"), "colums",
     "colums: unknown key 'colums' (did you mean 'columns'?)"),
    ("duplicate-key", doc("format: json\n"), "format: json",
     "format: duplicate key (the last one would silently win)"),
]


@pytest.mark.parametrize(("text", "marker", "fragment"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_key_rejected_with_line(text: str, marker: str, fragment: str) -> None:
    message = contract_error(text)
    line = line_of(text, marker)
    matching = [m for m in message.splitlines() if fragment in m]
    assert matching, f"{fragment!r} not in:\n{message}"
    assert matching[0].startswith(f"line {line}: "), message


def test_every_model_field_is_tested_both_ways() -> None:
    """Each key of each model appears in an accepted and in a rejected case above."""
    accepted = "\n".join(text for _, text, _ in VALID)
    rejected = "\n".join(case[0] + " " + case[1] for case in INVALID)
    for key in _all_keys():
        pattern = re.compile(rf"(^|[\s{{,]){re.escape(key)}:")
        assert pattern.search(accepted) or key in ("count", "sum", "min", "max", "mean"), key
        assert pattern.search(rejected) or key in _REJECTED_ELSEWHERE, key


#: keys whose rejection is covered by a test below or by its model's type (a bool, a name)
_REJECTED_ELSEWHERE = {"literal", "call", "args", "name", "keys", "columns", "count_distinct",
                       "approximate", "keep", "count", "sum", "min", "max", "mean", "by",
                       "column", "function", "on", "how", "format", "path", "expr", "type"}


def _models() -> list[type[BaseModel]]:
    return [
        obj for obj in vars(contract_module).values()
        if isinstance(obj, type) and issubclass(obj, contract_module._Model)
        and obj is not contract_module._Model
    ]


def _all_keys() -> set[str]:
    return {info.alias or name for model in _models() for name, info in model.model_fields.items()}


# ---------------------------------------------------------------------------------------------
# The reference documentation
# ---------------------------------------------------------------------------------------------


def test_every_field_has_a_description() -> None:
    for model in _models():
        assert model.__doc__, model
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no docstring"


def test_docs_cover_every_key() -> None:
    text = DOCS.read_text()
    for key in _all_keys():
        assert f"`{key}`" in text, f"docs/contracts.md does not document `{key}`"
    for step in ("rename", "cast", "parse_timestamp", "derive", "filter", "select", "drop",
                 "dedupe", "enrich", "enrich_api", "python"):
        assert f"`{step}`" in text


def test_docs_examples_load() -> None:
    """Every complete contract (a yaml block starting with ``dataset:``) in the docs loads."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.S)
    complete = [b for b in blocks if b.startswith("dataset:") or "\ndataset:" in b[:400]]
    assert complete
    for block in complete:
        load_contract(block)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def test_all_problems_reported_one_per_line_in_order() -> None:
    text = doc(
        "  c: {type: decmal}\n"
        "extra_columns: never\n"
        "output:\n  compression: lz4\n"
    )
    message = contract_error(text)
    lines = message.splitlines()
    assert [int(m.split(":")[0].removeprefix("line ")) for m in lines] == [
        line_of(text, "c: {type"), line_of(text, "extra_columns"), line_of(text, "compression")
    ]


def test_str_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(ORDERS.read_text().replace('"decimal128(12, 2)"', '"decmal(12,2)"'))
    with pytest.raises(ContractError) as info:
        load_contract(path)
    assert info.value.uri == str(path)
    line = line_of(path.read_text(), "decmal")
    assert str(info.value).startswith(
        f"{path}: line {line}: columns.amount.type: unknown type 'decmal(12,2)'"
    )
    assert info.value.to_dict()["type"] == "ContractError"


def test_yaml_syntax_error_names_the_line() -> None:
    text = doc('options:\n  delimiter: ",\n  encoding: utf-8\nrejects: {}\n')
    message = contract_error(text)
    assert message.startswith("line ") and "invalid YAML" in message
    assert int(message.split(":")[0].removeprefix("line ")) >= line_of(text, "delimiter")


def test_yaml_tab_indentation() -> None:
    message = contract_error("dataset: d\ncolumns:\n\ta: {type: int64}\n")
    assert message.startswith("line 3: invalid YAML")


@pytest.mark.parametrize(("text", "got"), [("", "an empty document"), ("- a\n- b\n", "a list"),
                                           ("just text\n", "a str")])
def test_not_a_mapping(text: str, got: str) -> None:
    assert f"a contract is a YAML mapping (dataset:, columns:, ...), got {got}" in contract_error(
        text + "\n"
    )


def test_two_documents() -> None:
    assert "expected a single document" in contract_error(doc("---\ndataset: e\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        load_contract(tmp_path / "nope.yaml")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(doc().encode() + "# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ContractError, match="not UTF-8"):
        load_contract(path)


def test_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (contract_module.MAX_CONTRACT_BYTES + 10))
    with pytest.raises(ContractError, match="not a contract"):
        load_contract(path)


def test_yaml_12_scalars() -> None:
    """on/yes/no stay strings (YAML 1.1 would make `on:` a boolean key); dates stay strings."""
    contract = load_contract(doc(
        "  c: {type: string, in: [yes, no, on, off, y, n]}\n"
        "transforms:\n  - enrich: {path: r.csv, on: a}\n"
        "  - filter: {call: equal, args: [{field: b}, {literal: 2024-01-01}]}\n"
    ))
    assert contract.columns["c"].allowed == ["yes", "no", "on", "off", "y", "n"]
    step = contract.transforms[0]
    assert isinstance(step, EnrichStep) and step.enrich.on == ["a"]
    assert contract.transforms[1].filter.args[1].literal == "2024-01-01"
    numbers = load_contract(doc("  c: {type: string, in: ['1']}\n  e: {type: float64, max: 1e3, "
                                "min: 010}\n"))
    assert numbers.columns["e"].max == 1000.0 and numbers.columns["e"].min == "010"
    assert numbers.columns["e"].min_value == pa.scalar(10.0)


def test_source_path_and_resolve(tmp_path: Path) -> None:
    path = tmp_path / "contracts" / "c.yaml"
    path.parent.mkdir()
    path.write_text(doc())
    contract = load_contract(path)
    assert contract.source_path == str(path)
    assert contract.resolve("ref/x.csv") == str(tmp_path / "contracts" / "ref" / "x.csv")
    assert contract.resolve("/abs/x.csv") == "/abs/x.csv"
    assert contract.resolve("s3://b/x.csv") == "s3://b/x.csv"
    text_contract = load_contract(doc())
    assert text_contract.source_path is None
    assert text_contract.resolve("ref/x.csv") == "ref/x.csv"


def test_contract_is_immutable() -> None:
    contract = load_contract(ORDERS)
    with pytest.raises(Exception, match="frozen"):
        contract.dataset = "other"  # type: ignore[misc]


def test_model_validate_checks_references_too() -> None:
    from pydantic import ValidationError

    data = {"dataset": "d", "columns": {"a": {"type": "int64"}}, "extra_columns": "drop",
            "output": {"partition_by": ["zz"]}}
    with pytest.raises(ValidationError, match="output.partition_by\\[0\\]: unknown column 'zz'"):
        Contract.model_validate(data)
    assert Contract.model_validate({**data, "output": {}}).problems() == []


def test_matches_uses_fnmatch_on_the_whole_key() -> None:
    contract = load_contract(doc("match: ['raw/*/orders_*.csv', 'x?.json']\n"))
    assert contract.matches("raw/2025/03/orders_1.csv")
    assert contract.matches("x1.json")
    assert not contract.matches("prefix/raw/2025/orders_1.csv")
    assert not contract.matches("raw/2025/orders_1.csv.gz")
    assert not contract.matches("RAW/2025/orders_1.csv")


def test_column_spec_values() -> None:
    contract = load_contract(ORDERS)
    amount = contract.columns["amount"]
    assert amount.min_value == pa.scalar(Decimal("0"), pa.decimal128(12, 2))
    assert amount.max_value == pa.scalar(Decimal("100000"), pa.decimal128(12, 2))
    status = contract.columns["status"].allowed_values
    assert status is not None and status.to_pylist()[:2] == ["pending", "paid"]
    assert contract.columns["country"].allowed_values is None
    assert contract.columns["note"].min_value is None


def test_docs_expression_example_loads() -> None:
    """The expression snippet in the docs runs on the orders columns."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.S)
    snippet = next(b for b in blocks if b.startswith("transforms:"))
    head = ORDERS.read_text().split("\ntransforms:")[0]
    contract = load_contract(head + "\n" + snippet + "output: {partition_by: [order_date]}\n")
    assert [step.kind for step in contract.transforms] == ["derive", "derive", "filter"]


def test_yaml_anchors_and_merge_keys() -> None:
    text = doc("  c: &id {type: int64, nullable: false, min: 1}\n"
               "  e: {<<: *id, nullable: true}\n"
               "  f: *id\n")
    contract = load_contract(text)
    assert [(s.type, s.nullable, s.min) for s in list(contract.columns.values())[-3:]] == [
        ("int64", False, 1), ("int64", True, 1), ("int64", False, 1)
    ]


def test_self_referencing_alias_is_a_contract_error() -> None:
    message = contract_error("dataset: d\ncolumns: &c\n  a: {type: int64}\n  b: *c\n")
    assert "line 4: columns.b" in message


def test_mutated_contracts_fail_only_with_contract_errors() -> None:
    """Whatever is put where, loading raises ContractError (with a line), never anything else."""
    import copy
    import random

    import yaml

    values: list[Any] = [None, 0, -1, 1.5, "", "x", "decimal128(100, 2)", "timestamp[ms, tz=../x]",
                         [], {}, [1], {"a": 1}, True, ".inf", "%", "(", "2020-01-01", "a:b",
                         {"call": "x"}, {"field": 1}, {"literal": [1]}, {"derive": None}, 10**30]
    keys = ["type", "in", "min", "regex", "on", "call", "options", "field", "select", "by", "zz"]
    originals = [yaml.safe_load(ORDERS.read_text()), yaml.safe_load(EVENTS.read_text())]
    rng = random.Random(7)

    def mutate(obj: Any, depth: int = 0) -> Any:
        if isinstance(obj, dict) and obj:
            if rng.random() < 0.15:
                obj[rng.choice(keys)] = copy.deepcopy(rng.choice(values))
                return obj
            key = rng.choice(list(obj))
            obj[key] = mutate(obj[key], depth + 1) if rng.random() < 0.6 and depth < 6 else \
                copy.deepcopy(rng.choice(values))
            return obj
        if isinstance(obj, list) and obj:
            i = rng.randrange(len(obj))
            obj[i] = mutate(obj[i], depth + 1) if rng.random() < 0.6 and depth < 6 else \
                copy.deepcopy(rng.choice(values))
            return obj
        return copy.deepcopy(rng.choice(values))

    for _ in range(300):
        data = copy.deepcopy(rng.choice(originals))
        mutate(data)
        try:
            load_contract(yaml.safe_dump(data))
        except ContractError as exc:
            assert re.search(r"^line \d+: ", exc.message), exc.message
