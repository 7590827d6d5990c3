"""``enrich_api`` without a server: the contract's checks (where the step may reach), the cache,
the checking of answers, backoff and ``Retry-After``."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from pydantic import TypeAdapter

import engine.enforce.api_client as api_client
import engine.enforce.enrich_api as enrich_api
from engine.contract import Step, load_contract
from engine.enforce.transforms import Transformer
from engine.errors import ContractError

CONTRACT = """\
dataset: d
columns:
  country: {type: string}
  city: {type: string}
transforms:
  - enrich_api:
      url: %s
      protocol: %s
      on: %s
      columns: {region: string, vat_rate: "decimal128(5, 4)"}
"""


def contract(url: str, protocol: str = "batch", on: str = "[country]", **extra: Any) -> Any:
    text = CONTRACT % (json.dumps(url), protocol, on)
    text += "".join(f"      {k}: {json.dumps(v)}\n" for k, v in extra.items())
    return load_contract(text)


@pytest.mark.parametrize(("url", "protocol", "on"), [
    ("https://geo.internal.example/v1/lookup", "batch", "[country]"),
    ("https://geo.internal.example:8443/v1/lookup", "batch", "[country, city]"),
    ("http://127.0.0.1:8080/lookup", "batch", "[country]"),
    ("http://localhost/lookup", "batch", "[country]"),
    ("http://[::1]:9000/lookup", "batch", "[country]"),
    ("https://geo.internal.example/v1/{country}/{city}?v=2", "per_key", "[country, city]"),
    ("https://geo.internal.example/v1?c={country}", "per_key", "[country]"),
])
def test_urls_a_contract_may_declare(url: str, protocol: str, on: str) -> None:
    step = contract(url, protocol, on).transforms[0].enrich_api
    assert step.url == url and step.host in url


@pytest.mark.parametrize(("url", "protocol", "message"), [
    ("http://geo.internal.example/v1", "batch", "must be https://"),
    ("http://10.0.0.8/v1", "batch", "must be https://"),
    ("ftp://geo.internal.example/v1", "batch", "must be an https:// URL"),
    ("https:///v1", "batch", "must be an https:// URL with a host"),
    ("https://user:pw@geo.internal.example/v1",  # pragma: allowlist secret
     "batch", "no credentials in the URL"),
    ("https://{country}.example/v1", "per_key", "never the host"),
    ("https://geo.internal.example:{country}/v1", "per_key", "never the host"),
    ("https://geo.internal.example/v1/{country}", "batch", "placeholders are for protocol"),
    ("https://geo.internal.example/v1/{region}", "per_key", "names every key column"),
    ("https://geo.internal.example/v1/lookup", "per_key", "names every key column"),
    ("https://geo.internal.example/v1/{country!r}", "per_key", "names every key column"),
    ("https://geo.internal.example/v1#x", "batch", "no #fragment"),
    ("https://geo.internal.example:99999/v1", "batch", "(?i)port"),
])
def test_urls_a_contract_may_not_declare(url: str, protocol: str, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        contract(url, protocol)


def test_the_step_is_checked_like_the_others() -> None:
    with pytest.raises(ContractError, match=r"line 10: transforms\[0\]\.enrich_api\.on\[0\]: "
                                            "unknown column 'contry'"):
        load_contract("extra_columns: drop\n"
                      + CONTRACT % ('"https://a.example/"', "batch", "[contry]"))
    with pytest.raises(ContractError, match="columns: \\['country'\\] are key columns"):
        load_contract(textwrap.dedent("""\
            dataset: d
            columns: {country: {type: string}}
            transforms:
              - enrich_api: {url: "https://a.example/", on: country, columns: {country: string}}
        """))
    with pytest.raises(ContractError, match="unknown type"):
        load_contract((CONTRACT % ('"https://a.example/"', "batch", "[country]"))
                      .replace("string, vat", "strng, vat"))
    with pytest.raises(ContractError, match="results_path is not JMESPath"):
        contract("https://a.example/", results_path="results[")
    with pytest.raises(ContractError, match="on_missing"):
        contract("https://a.example/", on_missing="drop")
    with pytest.raises(ContractError, match="batch_size"):
        contract("https://a.example/", batch_size=0)


def test_added_columns_are_known_to_later_steps() -> None:
    text = (CONTRACT % ('"https://a.example/"', "batch", "[country]")
            + "  - filter: {call: greater, args: [{field: vat_rate}, {literal: 0}]}\n"
            + "  - enrich_api: {url: \"https://b.example/\", on: region, columns: {city: "
              "string}}\n")
    with pytest.raises(ContractError, match="column 'city' already exists"):
        load_contract(text)


def test_defaults() -> None:
    spec = contract("https://a.example/").transforms[0].enrich_api
    assert (spec.batch_size, spec.concurrency, spec.timeout_s, spec.max_attempts) == (500, 4, 5,
                                                                                      5)
    assert spec.path == "results" and spec.on_missing == "null" and spec.secret is None
    assert (spec.cache.ttl_s, spec.cache.max_keys) == (3600, 100_000)
    per_key = contract("https://a.example/{country}", "per_key").transforms[0].enrich_api
    assert per_key.path == "@"


# -- the step without a request --------------------------------------------------------------


def step(**spec: Any) -> Transformer:
    steps = TypeAdapter(list[Step]).validate_python([{"enrich_api": {
        "url": "https://geo.invalid/v1", "on": ["country"],
        "columns": {"region": "string"}, **spec}}])
    return Transformer(steps, uri="orders.csv")


def test_null_keys_are_never_sent_and_follow_on_missing() -> None:
    enrich_api.clear_api_cache()
    table = pa.table({"country": pa.array([None, None], pa.string()), "n": [1, 2]})
    out, removed = step().apply(table)  # geo.invalid is never asked
    assert out.column("region").to_pylist() == [None, None] and removed == 0
    rejecting = step(on_missing="reject")
    out, removed = rejecting.apply(table, records=[7, 9])
    assert out.num_rows == 0 and removed == 0
    assert [(r.record, r.check) for r in rejecting.take_rejects()] == [(7, "enrich_api"),
                                                                       (9, "enrich_api")]
    assert out.column_names == ["country", "n", "region"]


def test_an_empty_batch_gives_the_output_schema() -> None:
    schema = step(columns={"region": "string", "rate": "decimal128(5, 4)"}).output_schema(
        pa.schema([("country", pa.string())]))
    assert schema.names == ["country", "region", "rate"]
    assert schema.field("rate").type == pa.decimal128(5, 4)


def test_an_added_column_already_in_the_data_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match=r"\['region'\] already exist"):
        step().apply(pa.table({"country": ["FR"], "region": ["x"]}))


def test_keys_json_says_otherwise_are_matched_as_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dates, timestamps and decimals travel as text; the API echoes them back as it got them."""
    enrich_api.clear_api_cache()
    sent: list[Any] = []

    def echo(client: Any, body: dict[str, Any]) -> Any:
        wire = json.dumps(body, default=api_client._json_default)  # what the request carries
        sent.append(json.loads(wire))
        return json.loads(json.dumps({"results": [{**k, "region": f"R{i}"} for i, k in
                                                  enumerate(json.loads(wire)["keys"])]}),
                          parse_float=Decimal)

    monkeypatch.setattr(api_client.ApiClient, "post", echo)
    table = pa.table({
        "day": pa.array([dt.date(2025, 3, 1), dt.date(2025, 3, 2)], pa.date32()),
        "at": pa.array([dt.datetime(2025, 3, 1, 10), dt.datetime(2025, 3, 1, 10)],
                       pa.timestamp("ms")),
        "amount": pa.array([Decimal("1.50"), Decimal("2.00")], pa.decimal128(5, 2))})
    out, _ = step(on=["day", "at", "amount"], on_missing="fail").apply(table)
    assert sent[0]["keys"][0] == {"day": "2025-03-01", "at": "2025-03-01T10:00:00",
                                  "amount": "1.50"}
    assert out.column("region").to_pylist() == ["R0", "R1"]


# -- the cache -------------------------------------------------------------------------------


def test_the_cache_expires_and_keeps_the_most_recently_used(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    now = [0.0]
    monkeypatch.setattr(enrich_api, "_now", lambda: now[0])
    cache = enrich_api._KeyCache(ttl=10, max_keys=2)
    cache.put(("FR",), ("EMEA-W",))
    cache.put(("DE",), None)  # the API does not know it: cached too
    assert cache.get(("DE",)) is None and cache.get(("FR",)) == ("EMEA-W",)
    cache.put(("US",), ("AMER",))  # DE was the least recently used
    assert cache.get(("DE",)) is enrich_api._ABSENT and len(cache.entries) == 2
    assert cache.nbytes > 0
    now[0] = 11
    assert cache.get(("FR",)) is enrich_api._ABSENT
    assert cache.get(("US",)) is enrich_api._ABSENT and cache.nbytes == 0


# -- answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "arrow_type", "expected"), [
    ("EMEA", pa.string(), "EMEA"),
    (None, pa.string(), None),
    (Decimal("0.2"), pa.float64(), 0.2),
    (3, pa.float64(), 3.0),
    (Decimal("7"), pa.int32(), 7),
    (Decimal("0.19"), pa.decimal128(5, 4), Decimal("0.19")),
    (True, pa.bool_(), True),
    ("2025-03-01", pa.date32(), "2025-03-01"),
])
def test_answers_that_fit(value: Any, arrow_type: pa.DataType, expected: Any) -> None:
    assert enrich_api._normalise(value, arrow_type) == expected


@pytest.mark.parametrize(("value", "arrow_type"), [
    (1, pa.string()), (True, pa.int64()), (Decimal("1.5"), pa.int64()), ("1", pa.float64()),
    (1, pa.bool_()), ({"a": 1}, pa.decimal128(5, 4)), (5, pa.date32()),
])
def test_answers_that_do_not(value: Any, arrow_type: pa.DataType) -> None:
    with pytest.raises(ValueError, match="is not"):
        enrich_api._normalise(value, arrow_type)


# -- retries ---------------------------------------------------------------------------------


def test_retry_after_in_seconds_or_as_a_date(monkeypatch: pytest.MonkeyPatch) -> None:
    assert api_client._retry_after("3") == 3.0
    assert api_client._retry_after(None) is None and api_client._retry_after("soon") is None
    monkeypatch.setattr(api_client.time, "time", lambda: 1_700_000_000.0)
    assert api_client._retry_after("Tue, 14 Nov 2023 22:13:50 GMT") == 30.0
    assert api_client._backoff(1, 500.0) == api_client.RETRY_AFTER_CAP_S


def test_backoff_is_full_jitter_below_a_doubling_cap() -> None:
    for attempt in range(1, 12):
        bound = min(api_client.BACKOFF_CAP_S, api_client.BACKOFF_BASE_S * 2 ** (attempt - 1))
        assert all(0 <= api_client._backoff(attempt, None) <= bound for _ in range(50))


def test_requests_are_paced_to_the_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(api_client, "_now", lambda: 100.0)
    monkeypatch.setattr(api_client, "_sleep", waits.append)
    pacer = api_client._Pacer(4)
    for _ in range(4):
        pacer.wait()
    assert waits == [0.25, 0.5, 0.75]
