"""``enrich_api`` end to end: a lookup API on 127.0.0.1 and the token in moto's Secrets Manager.

Every run goes through :func:`engine.transform` with a contract file, so what is checked is what a
user gets: the output, the rejects file, the RunReport and the errors.
"""

from __future__ import annotations

import json
import logging
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import engine.enforce.enrich_api as enrich_api
from engine import transform
from engine.errors import PermanentError, SchemaError, TransientError, ValidationError

ROWS = [("1", "FR"), ("2", "DE"), ("3", "FR"), ("4", "US"), ("5", "XX"), ("6", "JP"),
        ("7", "DE"), ("8", "")]


def write_csv(path: Path, rows: list[tuple[str, str]] = ROWS) -> Path:
    path.write_text("order_id,country\n" + "".join(f"{a},{b}\n" for a, b in rows))
    return path


def write_contract(path: Path, api: Any, **step: Any) -> Path:
    spec: dict[str, Any] = {
        "url": f"{api.url}/v1/lookup", "on": ["country"],
        "secret": "chunkwise/geo-api",  # pragma: allowlist secret (the secret's name)
        "columns": {"region": "string", "vat_rate": "decimal128(5, 4)"},
        "batch_size": 2, "timeout_s": 0.5, "max_attempts": 3, **step,
    }
    path.write_text(json.dumps({  # JSON is YAML
        "dataset": "orders",
        "columns": {"order_id": {"type": "int64"}, "country": {"type": "string"}},
        "transforms": [{"enrich_api": spec}],
    }))
    return path


def run(tmp_path: Path, api: Any, name: str = "orders", **step: Any) -> Any:
    src = write_csv(tmp_path / f"{name}.csv")
    contract = write_contract(tmp_path / f"{name}.yaml", api, **step)
    return transform(src, tmp_path / f"{name}.parquet", contract=contract,
                     rejects_uri=str(tmp_path / f"{name}.rejects.ndjson"))


def output(tmp_path: Path, name: str = "orders") -> list[dict[str, Any]]:
    return pq.read_table(tmp_path / f"{name}.parquet").to_pylist()


def counts_add_up(report: Any) -> bool:
    return report.rows_in == report.rows_out + report.rows_rejected + report.rows_filtered


# -- batching and the cache ------------------------------------------------------------------


def test_requests_are_the_uncached_keys_over_batch_size_and_a_second_file_makes_none(
        tmp_path: Path, lookup_api: Any, secret: Any) -> None:
    report = run(tmp_path, lookup_api)
    distinct = {c for _, c in ROWS}
    assert len(lookup_api.requests) == math.ceil(len(distinct) / 2)
    asked = [k["country"] for r in lookup_api.requests for k in r["body"]["keys"]]
    assert sorted(asked) == sorted(distinct)
    sent = {r["headers"]["Authorization"] for r in lookup_api.requests}
    assert sent == {f"Bearer {secret.token}"}
    rows = {r["order_id"]: (r["region"], r["vat_rate"]) for r in output(tmp_path)}
    assert rows[1] == ("EMEA-W", Decimal("0.2")) and rows[4] == ("AMER", 0)
    assert rows[5] == (None, None) and rows[8] == (None, None)  # keys the API does not know
    (stats,) = report.enrich_api
    assert stats["requests"] == 3 and stats["keys_requested"] == 6
    assert stats["cache_hits"] == 0 and stats["retries"] == 0 and report.state_bytes > 0

    second = run(tmp_path, lookup_api, "again")
    assert len(lookup_api.requests) == 3  # every key answered from the process's cache
    assert second.enrich_api[0]["requests"] == 0 and second.enrich_api[0]["cache_hits"] == 6
    assert output(tmp_path, "again") == output(tmp_path)


def test_answers_expire_after_ttl(tmp_path: Path, lookup_api: Any, secret: Any,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(enrich_api, "_now", lambda: now[0])
    run(tmp_path, lookup_api, cache={"ttl_s": 60})
    now[0] += 61
    report = run(tmp_path, lookup_api, "later", cache={"ttl_s": 60})
    assert report.enrich_api[0]["keys_requested"] == 6


def test_the_cache_keeps_at_most_max_keys(tmp_path: Path, lookup_api: Any,
                                          secret: Any) -> None:
    run(tmp_path, lookup_api, cache={"max_keys": 2})
    report = run(tmp_path, lookup_api, "again", cache={"max_keys": 2})
    assert report.enrich_api[0]["cache_hits"] <= 2
    assert output(tmp_path, "again") == output(tmp_path)


def test_per_key_gets_one_url_per_key_with_the_key_percent_encoded(
        tmp_path: Path, lookup_api: Any, secret: Any) -> None:
    lookup_api.known["A/B?x=1"] = {"region": "ODD", "vat_rate": 0.5}
    rows = [("1", "FR"), ("2", "A/B?x=1"), ("3", "XX"), ("4", "FR")]
    src = write_csv(tmp_path / "odd.csv", rows)
    contract = write_contract(tmp_path / "odd.yaml", lookup_api, protocol="per_key",
                              url=f"{lookup_api.url}/geo/{{country}}")
    report = transform(src, tmp_path / "odd.parquet", contract=contract)
    paths = sorted(r["path"] for r in lookup_api.requests)
    assert paths == ["/geo/A%2FB%3Fx%3D1", "/geo/FR", "/geo/XX"]
    assert [r["region"] for r in output(tmp_path, "odd")] == ["EMEA-W", "ODD", None, "EMEA-W"]
    assert report.enrich_api[0]["requests"] == 3


def test_a_key_of_two_columns(tmp_path: Path, lookup_api: Any, secret: Any) -> None:
    src = tmp_path / "cities.csv"
    src.write_text("order_id,country,city\n1,FR,Paris\n2,FR,Lyon\n3,DE,Berlin\n4,FR,Paris\n"
                   "5,XX,Nowhere\n6,DE,Berlin\n")
    contract = write_contract(tmp_path / "cities.yaml", lookup_api, on=["country", "city"],
                              on_missing="reject")
    report = transform(src, tmp_path / "cities.parquet", contract=contract,
                       rejects_uri=str(tmp_path / "cities.rejects.ndjson"))
    assert len(lookup_api.requests) == 2  # 4 distinct keys, 2 a request
    assert [(r["order_id"], r["city"], r["region"]) for r in output(tmp_path, "cities")] == [
        (1, "Paris", "EMEA-W"), (2, "Lyon", "EMEA-W"), (3, "Berlin", "EMEA-C"),
        (4, "Paris", "EMEA-W"), (6, "Berlin", "EMEA-C")]
    assert report.rows_rejected == 1 and counts_add_up(report)


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["429", "500", "stall", "reset"])
def test_retried_faults_give_the_clean_output(tmp_path: Path, lookup_api: Any,
                                              secret: Any, waits: list[float],
                                              fault: str) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    run(clean, lookup_api)
    enrich_api.clear_api_cache()
    lookup_api.requests.clear()
    lookup_api.faults = [fault, fault]
    report = run(tmp_path, lookup_api)
    assert output(tmp_path) == output(clean)
    assert report.enrich_api[0]["retries"] == 2
    assert len(lookup_api.requests) == 3 + 2
    if fault == "429":
        assert waits == [1.0, 1.0]  # Retry-After honoured
    else:
        assert len(waits) == 2 and all(0 <= w <= 0.4 for w in waits)  # backoff with jitter


def test_past_max_attempts_the_run_fails_transient_and_publishes_nothing(
        tmp_path: Path, lookup_api: Any, secret: Any, waits: list[float]) -> None:
    lookup_api.faults = ["500"] * 3  # one request in flight: the first takes all three
    with pytest.raises(TransientError, match=r"127\.0\.0\.1: no answer after 3 attempts"):
        run(tmp_path, lookup_api, concurrency=1)
    assert not (tmp_path / "orders.parquet").exists()
    assert not (tmp_path / "orders.rejects.ndjson").exists()


def test_an_unreachable_api_is_transient(tmp_path: Path, lookup_api: Any, secret: Any,
                                         waits: list[float]) -> None:
    with pytest.raises(TransientError, match="refused or unreachable"):
        run(tmp_path, lookup_api, url="http://127.0.0.1:9/v1/lookup")  # discard: nothing there
    assert not (tmp_path / "orders.parquet").exists()


def test_a_401_is_permanent_naming_host_and_status(tmp_path: Path, lookup_api: Any,
                                                   secret: Any) -> None:
    lookup_api.token = "another"  # noqa: S105 - the server wants a token we do not have
    with pytest.raises(PermanentError, match=r"127\.0\.0\.1 answered 401") as caught:
        run(tmp_path, lookup_api, concurrency=1)
    assert secret.token not in str(caught.value)
    assert len(lookup_api.requests) == 2  # the secret read again once, in case it rotated
    assert not (tmp_path / "orders.parquet").exists()


def test_a_rotated_token_is_read_again(tmp_path: Path, lookup_api: Any,
                                       secret: Any) -> None:
    run(tmp_path, lookup_api)  # the old token is now in Powertools' cache
    secret.client.put_secret_value(SecretId=secret.id,
                                   SecretString="tok-rotated")  # pragma: allowlist secret
    lookup_api.token = "tok-rotated"  # noqa: S105 - a test token
    report = run(tmp_path, lookup_api, "rotated", batch_size=10, cache={"ttl_s": 1})
    assert report.enrich_api[0]["retries"] == 1
    assert output(tmp_path, "rotated") == output(tmp_path)


def test_a_redirect_is_not_followed(tmp_path: Path, lookup_api: Any, secret: Any) -> None:
    lookup_api.faults = ["redirect"]
    with pytest.raises(PermanentError, match="302 .*not followed"):
        run(tmp_path, lookup_api, concurrency=1)
    assert len(lookup_api.requests) == 1


@pytest.mark.parametrize(("fault", "message"), [
    ("malformed", "no field 'region'"),
    ("badtype", r"field 'vat_rate': 'a lot' is not a number"),
    ("notjson", "not JSON"),
])
def test_a_malformed_response_is_permanent_naming_the_field(
        tmp_path: Path, lookup_api: Any, secret: Any, fault: str, message: str) -> None:
    lookup_api.faults = [fault]
    with pytest.raises(SchemaError, match=message):
        run(tmp_path, lookup_api)
    assert not (tmp_path / "orders.parquet").exists()


# -- on_missing ------------------------------------------------------------------------------


def test_on_missing_null_keeps_every_row(tmp_path: Path, lookup_api: Any,
                                         secret: Any) -> None:
    report = run(tmp_path, lookup_api, on_missing="null")
    assert report.rows_out == len(ROWS) and counts_add_up(report)


def test_on_missing_reject_rejects_the_rows_with_their_record(tmp_path: Path,
                                                              lookup_api: Any,
                                                              secret: Any) -> None:
    report = run(tmp_path, lookup_api, on_missing="reject")
    assert (report.rows_in, report.rows_out, report.rows_rejected) == (8, 6, 2)
    assert counts_add_up(report) and report.rows_filtered == 0
    lines = [json.loads(x) for x in
             (tmp_path / "orders.rejects.ndjson").read_text().splitlines()]
    assert [r["record"] for r in lines] == [5, 8]
    text = (tmp_path / "orders.csv").read_bytes()  # each at its own record's first byte
    starts = [i + 1 for i, b in enumerate(text) if b == ord("\n")]  # record n at starts[n-1]
    assert [r["offset"] for r in lines] == [starts[4], starts[7]]
    assert "127.0.0.1 has no answer for (country='XX')" in lines[0]["reason"]
    assert lines[1]["raw"] == "country=''"
    assert lines[0]["check"] == "enrich_api"
    assert {c["check"] for c in report.checks} == {"enrich_api"}
    assert sorted(r["order_id"] for r in output(tmp_path)) == [1, 2, 3, 4, 6, 7]


def test_on_missing_reject_after_a_filter_and_a_select(tmp_path: Path, lookup_api: Any,
                                                       secret: Any) -> None:
    src = write_csv(tmp_path / "orders.csv")
    contract = write_contract(tmp_path / "orders.yaml", lookup_api, on_missing="reject")
    data = json.loads(contract.read_text())
    data["columns"]["order_id"]["max"] = 7  # record 8 rejected by validation first
    data["transforms"][:0] = [
        {"filter": {"call": "not_equal", "args": [{"field": "country"}, {"literal": "DE"}]}},
        {"select": ["country", "order_id"]},
    ]
    contract.write_text(json.dumps(data))
    report = transform(src, tmp_path / "orders.parquet", contract=contract,
                       rejects_uri=str(tmp_path / "rejects.ndjson"))
    lines = [json.loads(x) for x in (tmp_path / "rejects.ndjson").read_text().splitlines()]
    assert sorted(r["record"] for r in lines) == [5, 8]
    assert (report.rows_out, report.rows_rejected, report.rows_filtered) == (4, 2, 2)
    assert counts_add_up(report)
    assert "__chunkwise_record__" not in pq.read_schema(tmp_path / "orders.parquet").names


def test_on_missing_fail_fails_the_file(tmp_path: Path, lookup_api: Any,
                                        secret: Any) -> None:
    with pytest.raises(ValidationError, match=r"no answer for the key \(country='XX'\)"):
        run(tmp_path, lookup_api, on_missing="fail")
    assert not (tmp_path / "orders.parquet").exists()


# -- the token -------------------------------------------------------------------------------


def test_the_token_never_appears_in_logs_reports_errors_or_rejects(
        tmp_path: Path, lookup_api: Any, secret: Any, waits: list[float],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    lookup_api.faults = ["500", "reset"]
    report = run(tmp_path, lookup_api, on_missing="reject")
    seen = [report.to_json(), (tmp_path / "orders.rejects.ndjson").read_text(), caplog.text]
    lookup_api.token = "another"  # noqa: S105 - the server wants a token we do not have
    enrich_api.clear_api_cache()
    with pytest.raises(PermanentError) as caught:
        run(tmp_path, lookup_api, "refused")
    seen += [str(caught.value), json.dumps(caught.value.to_dict()), caplog.text]
    assert all(secret.token not in text for text in seen)
    assert "127.0.0.1" in caplog.text  # the logs were captured, the token kept out of them
