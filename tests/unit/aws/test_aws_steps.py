from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.aws import conversion, metadata, steps
from engine.errors import (
    InputFormatError,
    InputNotFoundError,
    SchemaError,
    TransientError,
    ValidationError,
)
from engine.plan import source_id

ORDERS = b"order_id,amount,note\n1,10.5,first\n2,20.25,\"two\nlines\"\n3,30.0,\n"
CONTRACT = """\
dataset: orders
match: "orders/*.csv"
format: csv
columns:
  order_id: {type: int64, nullable: false}
  amount: {type: float64}
  note: {type: string, required: false}
extra_columns: keep
"""


def _settings(aws: Any, **overrides: Any) -> Any:
    from dataclasses import replace

    return replace(aws.settings, **overrides)


def _ingest(aws: Any, key: str, data: bytes, **overrides: Any) -> dict[str, Any]:
    event = aws.put(key, data)
    return steps.ingest(event, _settings(aws, **overrides), aws.clients)


def _table(aws: Any, uri: str) -> pa.Table:
    return pq.read_table(io.BytesIO(aws.get(uri)))


# -- ingest ----------------------------------------------------------------------------------------


def test_ingest_claims_routes_and_picks_the_contract(aws: Any) -> None:
    contract = aws.put_contract("orders.yaml", CONTRACT)
    state = _ingest(aws, "orders/a.csv", ORDERS)
    assert state["route"] == "single"
    assert state["contract"] == contract
    assert state["size"] == len(ORDERS)
    assert state["file_id"] == f"s3://{aws.raw}/orders/a.csv#{state['version']}"
    assert state["received_at"].endswith("Z")
    record = metadata.record(aws.table, state["file_id"])
    assert record["status"] == "RECEIVED"
    assert record["contract"] == contract


def test_duplicate_event_is_skipped(aws: Any) -> None:
    event = aws.put("orders/a.csv", ORDERS)
    assert steps.ingest(event, aws.settings, aws.clients)["route"] == "single"
    assert steps.ingest(event, aws.settings, aws.clients)["route"] == "skip"


def test_large_objects_go_to_the_map_unless_compressed(aws: Any) -> None:
    assert _ingest(aws, "x/big.csv", ORDERS, max_single_bytes=10)["route"] == "map"
    packed = gzip.compress(ORDERS)
    assert _ingest(aws, "x/big.csv.gz", packed, max_single_bytes=10)["route"] == "single"


def test_ingest_without_a_size_asks_s3(aws: Any, event_for: Any) -> None:
    aws.s3.put_object(Bucket=aws.raw, Key="a.csv", Body=ORDERS)
    state = steps.ingest(event_for(aws.raw, "a.csv", None, "e1", None), aws.settings,
                         aws.clients)
    assert state["size"] == len(ORDERS)
    assert state["file_id"] == f"s3://{aws.raw}/a.csv#e1"


def test_ingest_refuses_other_events(aws: Any, saved_event: dict[str, Any]) -> None:
    saved_event["detail-type"] = "Object Deleted"
    with pytest.raises(InputFormatError, match="not an S3 Object Created event"):
        steps.ingest(saved_event, aws.settings, aws.clients)


def test_ingest_throttled_claim_is_transient(aws: Any) -> None:
    from botocore.stub import Stubber

    event = aws.put("orders/a.csv", ORDERS)
    table = aws.clients.table(aws.settings.metadata_table)
    aws.clients.table = lambda name: table  # the stubbed resource, whatever the name
    with Stubber(table.meta.client) as stubber:
        stubber.add_client_error("put_item", "ProvisionedThroughputExceededException")
        with pytest.raises(TransientError, match="ProvisionedThroughputExceeded"):
            steps.ingest(event, aws.settings, aws.clients)


# -- validate --------------------------------------------------------------------------------------


def test_validate_reports_format_and_columns(aws: Any) -> None:
    aws.put_contract("orders.yaml", CONTRACT)
    state = steps.validate_head(_ingest(aws, "orders/a.csv", ORDERS), aws.settings, aws.clients)
    assert state["format"] == "csv"
    assert state["columns"] == ["order_id", "amount", "note"]
    assert metadata.record(aws.table, state["file_id"])["status"] == "VALIDATED"


def test_validate_detects_ndjson_and_json(aws: Any) -> None:
    ndjson = steps.validate_head(_ingest(aws, "e/a.json", b'{"a": 1}\n{"a": 2, "b": "x"}\n'),
                                 aws.settings, aws.clients)
    assert ndjson["format"] == "ndjson" and ndjson["columns"] == ["a", "b"]
    array = steps.validate_head(_ingest(aws, "e/b.json", b'[{"a": 1}, {"c": 2}]'),
                                aws.settings, aws.clients)
    assert array["format"] == "json" and array["columns"] == ["a", "c"]


def test_validate_missing_required_column(aws: Any) -> None:
    aws.put_contract("orders.yaml", CONTRACT)
    state = _ingest(aws, "orders/a.csv", b"order_id,note\n1,x\n")
    with pytest.raises(SchemaError, match="required column.*amount"):
        steps.validate_head(state, aws.settings, aws.clients)


def test_validate_extra_columns_with_reject(aws: Any) -> None:
    aws.put_contract("orders.yaml", CONTRACT.replace("extra_columns: keep",
                                                     "extra_columns: reject"))
    state = _ingest(aws, "orders/a.csv", b"order_id,amount,coupon\n1,2.0,x\n")
    with pytest.raises(SchemaError, match="coupon"):
        steps.validate_head(state, aws.settings, aws.clients)


def test_validate_undecodable_bytes(aws: Any) -> None:
    state = _ingest(aws, "x/a.csv", b"id,name\n1,caf\xe9\n")
    with pytest.raises(InputFormatError, match="not valid utf-8") as info:
        steps.validate_head(state, aws.settings, aws.clients)
    assert info.value.offset == 13


def test_validate_reads_compressed_heads(aws: Any) -> None:
    state = _ingest(aws, "x/a.csv.gz", gzip.compress(ORDERS))
    assert steps.validate_head(state, aws.settings, aws.clients)["columns"] == [
        "order_id", "amount", "note"]
    broken = _ingest(aws, "x/b.csv.gz", gzip.compress(ORDERS)[:20])
    with pytest.raises(InputFormatError):
        steps.validate_head(broken, aws.settings, aws.clients)


# -- transform (one Lambda) ------------------------------------------------------------------------


def test_transform_writes_parquet_at_a_deterministic_key(aws: Any) -> None:
    aws.put_contract("orders.yaml", CONTRACT)
    state = steps.validate_head(_ingest(aws, "orders/2025/a.csv", ORDERS), aws.settings,
                                aws.clients)
    state = steps.transform(state, aws.settings, aws.clients)
    (part,) = state["parts"]
    # the dataset's folder, the engine's name of this version of the object
    name = source_id(f"s3://{aws.raw}/orders/2025/a.csv", version=state["version"])
    assert part["uri"] == f"s3://{aws.processed}/orders/{name}.parquet"
    assert (part["rows_in"], part["rows_out"], part["rows_rejected"]) == (3, 3, 0)
    assert part["sha256"] == hashlib.sha256(aws.get(part["uri"])).hexdigest()
    assert part["peak_rss_bytes"] > 0 and part["seconds"] >= 0
    assert _table(aws, part["uri"]).column("note").to_pylist() == ["first", "two\nlines", ""]
    record = metadata.record(aws.table, state["file_id"])
    assert record["status"] == "TRANSFORMED" and record["rows_out"] == 3
    # a small object: one HEAD, one GET of all of it, one PUT; and the GET that hashes the output
    assert part["s3_requests"] == record["s3_requests"] == {
        "GetObject": 2, "HeadObject": 1, "PutObject": 1}


def test_transform_without_contract_goes_to_the_key_folder(aws: Any) -> None:
    state = steps.transform(_ingest(aws, "drop/zone/a.csv", ORDERS), aws.settings, aws.clients)
    name = source_id(f"s3://{aws.raw}/drop/zone/a.csv", version=state["version"])
    assert state["parts"][0]["uri"] == f"s3://{aws.processed}/drop/zone/{name}.parquet"


def test_transform_refuses_to_start_without_enough_time(aws: Any) -> None:
    state = _ingest(aws, "x/a.csv", ORDERS * 100, min_throughput=1000)
    with pytest.raises(TransientError, match="not enough time left to convert"):
        steps.transform(state, _settings(aws, min_throughput=1000), aws.clients,
                        remaining_ms=lambda: 25_000)
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=aws.processed)


def test_transform_stops_cleanly_when_time_runs_out(aws: Any) -> None:
    state = _ingest(aws, "x/a.csv", ORDERS)
    calls = iter([900_000])  # the pre-flight check sees 15 minutes, the conversion 10 s

    with pytest.raises(TransientError, match="not enough time left: stopped after"):
        steps.transform(state, aws.settings, aws.clients,
                        remaining_ms=lambda: next(calls, 10_000))
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=aws.processed)  # upload aborted


def test_transform_too_many_rejects_is_a_validation_error(aws: Any) -> None:
    aws.put_contract("orders.yaml", CONTRACT + "rejects: {max_count: 0}\n")
    state = _ingest(aws, "orders/a.csv", b"order_id,amount\n1,2.0\nx,3.0\n")
    with pytest.raises(ValidationError, match="rejected"):
        steps.transform(state, aws.settings, aws.clients)


# -- plan + Map ------------------------------------------------------------------------------------


def quoted_csv(rows: int) -> bytes:
    rng = random.Random(1)
    notes = ["plain", 'say "hi"', "two\nlines", "1,2,3\n4,5,6", "", "x" * 200]
    out = ["order_id,amount,note\n"]
    for i in range(rows):
        note = rng.choice(notes)
        out.append(f'{i},{rng.randint(0, 99999) / 100},"{note.replace(chr(34), 2 * chr(34))}"\n')
    return "".join(out).encode()


def ndjson(rows: int) -> bytes:
    return "".join(json.dumps({"id": i, "text": "t\n" * (i % 5), "v": i / 4}) + "\n"
                   for i in range(rows)).encode()


def json_array(rows: int) -> bytes:
    return json.dumps({"data": [{"id": i, "s": "},{" * (i % 3), "nested": {"k": ["]", "x"], "n": i}}
                                for i in range(rows)], "next": None}, indent=1).encode()


def _map(aws: Any, state: dict[str, Any], settings: Any) -> dict[str, Any]:
    """What the state machine does on the map route: Plan, then one TransformPart per range."""
    state = steps.plan(state, settings, aws.clients)
    parts = [steps.transform({"state": state, "range": r}, settings, aws.clients)
             for r in state["ranges"]]
    return {**state, "parts": parts}


@pytest.mark.parametrize(("key", "data", "contract"), [
    ("orders/quoted.csv", quoted_csv(3000), CONTRACT),
    ("events/lines.ndjson", ndjson(3000), None),
    ("pages/p.json", json_array(2000), "dataset: pages\nmatch: 'pages/*'\nformat: json\n"
                                       "options: {json_path: data.item}\ncolumns:\n"
                                       "  id: {type: int64}\n"),
])
def test_map_parts_hold_exactly_the_rows_of_a_single_conversion(
        aws: Any, key: str, data: bytes, contract: str | None) -> None:
    if contract:
        aws.put_contract("c.yaml", contract)
    settings = _settings(aws, max_single_bytes=10_000, range_bytes=20_000)
    state = _ingest(aws, key, data, max_single_bytes=10_000, range_bytes=20_000)
    assert state["route"] == "map"
    state = steps.validate_head(state, settings, aws.clients)
    mapped = _map(aws, state, settings)
    assert len(mapped["ranges"]) > 3
    name = source_id(f"s3://{aws.raw}/{key}", version=state["version"])
    assert [p["uri"].rsplit("/", 1)[1] for p in mapped["parts"]] == [
        f"{name}-part-{i:05d}.parquet" for i in range(len(mapped["ranges"]))]
    single = steps.transform(state, settings, aws.clients)["parts"][0]
    whole = _table(aws, single["uri"])
    parts = pa.concat_tables([_table(aws, p["uri"]) for p in mapped["parts"]])
    assert parts.schema == whole.schema
    assert parts.equals(whole)
    assert sum(p["rows_in"] for p in mapped["parts"]) == single["rows_in"]


def test_map_of_an_unsplittable_object_is_one_whole_conversion(aws: Any) -> None:
    settings = _settings(aws, max_single_bytes=10, range_bytes=100)
    state = _ingest(aws, "x/a.csv.gz", gzip.compress(quoted_csv(100)))
    state = steps.validate_head({**state, "route": "map"}, settings, aws.clients)
    mapped = _map(aws, state, settings)
    assert mapped["ranges"] == [{"index": 0, "start": 0, "end": state["size"]}]
    assert mapped["parts"][0]["rows_out"] == 100
    name = source_id(f"s3://{aws.raw}/x/a.csv.gz", version=state["version"])
    assert mapped["parts"][0]["uri"].endswith(f"/x/{name}-part-00000.parquet")


def test_an_overwritten_object_is_not_converted_under_the_old_file_id(aws: Any) -> None:
    settings = _settings(aws, max_single_bytes=10, range_bytes=2000)
    state = steps.validate_head(_ingest(aws, "x/a.ndjson", ndjson(200)), settings, aws.clients)
    state = steps.plan(state, settings, aws.clients)
    aws.s3.put_object(Bucket=aws.raw, Key="x/a.ndjson", Body=b'{"other": true}\n' * 500)
    with pytest.raises(InputNotFoundError, match="overwritten after the event"):
        steps.transform({"state": state, "range": state["ranges"][1]}, settings, aws.clients)
    with pytest.raises(InputNotFoundError, match="overwritten after the event"):
        steps.transform(state, settings, aws.clients)


def test_copy_range_reads_the_planned_version(aws: Any, tmp_path: Any) -> None:
    first = aws.s3.put_object(Bucket=aws.raw, Key="v.txt", Body=b"0123456789")["VersionId"]
    aws.s3.put_object(Bucket=aws.raw, Key="v.txt", Body=b"abcdefghij")
    target = tmp_path / "piece"
    uri = f"s3://{aws.raw}/v.txt"
    assert conversion.copy_range(uri, 2, 5, str(target), version=first, prefix=b"[",
                            suffix=b"]") == 3
    assert target.read_bytes() == b"[234]"
    with pytest.raises(TransientError, match="short read"):
        conversion.copy_range(uri, 5, 50, str(target))


# -- output ----------------------------------------------------------------------------------------


def test_output_writes_the_manifest_and_records_success(aws: Any) -> None:
    contract = aws.put_contract("orders.yaml", CONTRACT)
    settings = _settings(aws, max_single_bytes=10_000, range_bytes=20_000)
    state = _ingest(aws, "orders/big.csv", quoted_csv(3000), max_single_bytes=10_000)
    state = _map(aws, steps.validate_head(state, settings, aws.clients), settings)
    done = steps.output(state, settings, aws.clients)
    name = source_id(f"s3://{aws.raw}/orders/big.csv", version=state["version"])
    manifest_uri = f"s3://{aws.processed}/orders/_manifests/{name}.manifest.json"
    assert done["output"]["manifest"] == manifest_uri
    assert done["output"]["rows_out"] == 3000
    assert done["output"]["files"] == [p["uri"] for p in state["parts"]]
    manifest = json.loads(aws.get(manifest_uri))
    assert manifest["file_id"] == state["file_id"]
    assert manifest["source"]["version"] == state["version"]
    assert manifest["contract"] == contract and manifest["dataset"] == "orders"
    assert manifest["rows_in"] == 3000 and manifest["rows_rejected"] == 0
    assert [p["index"] for p in manifest["parts"]] == list(range(len(state["ranges"])))
    assert [f["name"] for f in manifest["schema"]] == ["order_id", "amount", "note"]
    for uri, checksum in manifest["checksums"].items():
        assert checksum["sha256"] == hashlib.sha256(aws.get(uri)).hexdigest()
    assert manifest["bytes_out"] == sum(len(aws.get(u)) for u in manifest["checksums"])
    record = metadata.record(aws.table, state["file_id"])
    assert record["status"] == "SUCCEEDED"
    assert record["rows_out"] == 3000 and record["manifest"] == manifest_uri
    assert record["bytes_out"] == manifest["bytes_out"]
    assert record["peak_rss_bytes"] > 0 and record["duration_seconds"] >= 0
    # the parts' requests, summed: each part's output is small, so one PutObject each
    assert record["s3_requests"]["PutObject"] == len(state["parts"]) > 1
    assert record["s3_requests"] == {
        kind: sum(p["s3_requests"].get(kind, 0) for p in state["parts"])
        for kind in record["s3_requests"]}


def test_output_refuses_missing_parts_and_mixed_schemas(aws: Any) -> None:
    state = steps.transform(_ingest(aws, "x/a.csv", ORDERS), aws.settings, aws.clients)
    with pytest.raises(ValueError, match="do not match ranges"):
        steps.output({**state, "ranges": [{"index": 0}, {"index": 1}]}, aws.settings,
                     aws.clients)
    other = {**state["parts"][0], "index": 1, "schema": [{"name": "x", "type": "int64"}]}
    with pytest.raises(SchemaError, match="another schema"):
        steps.output({**state, "parts": [state["parts"][0], other],
                      "ranges": [{"index": 0}, {"index": 1}]}, aws.settings, aws.clients)


# -- failures --------------------------------------------------------------------------------------


def _lambda_error(error_type: str, message: str) -> dict[str, str]:
    cause = {"errorMessage": message, "errorType": error_type, "requestId": "r",
             "stackTrace": ['  File "/var/task/handler.py", line 1\n']}
    return {"Error": error_type, "Cause": json.dumps(cause)}


def test_error_handler_records_the_error(aws: Any) -> None:
    state = _ingest(aws, "x/a.csv", ORDERS)
    failed = steps.handle_error({**state, "error": _lambda_error("TransientError", "slow")},
                                aws.settings, aws.clients)
    assert failed["failure"]["error_type"] == "TransientError"
    record = metadata.record(aws.table, state["file_id"])
    assert (record["status"], record["error_type"], record["error_message"]) == (
        "FAILED", "TransientError", "slow")
    steps.handle_error({**state, "error": {"Error": "States.Timeout", "Cause": "timed out"}},
                       aws.settings, aws.clients)
    assert metadata.record(aws.table, state["file_id"])["error_message"] == "timed out"


def test_dlq_message_has_everything_to_replay(aws: Any) -> None:
    contract = aws.put_contract("orders.yaml", CONTRACT)
    state = _ingest(aws, "orders/a.csv", b"order_id,note\n1,x\n")
    error = _lambda_error("SchemaError", "required column(s) missing: ['amount']")
    steps.route_to_dlq({**state, "error": error}, aws.settings, aws.clients)
    (message,) = aws.dlq_messages()
    body = message["body"]
    assert body["file_id"] == state["file_id"]
    assert (body["bucket"], body["key"], body["version"]) == (aws.raw, "orders/a.csv",
                                                               state["version"])
    assert body["contract"] == contract
    assert body["error_type"] == "SchemaError"
    assert "amount" in body["error_message"]
    assert body["replay"] == {"bucket": aws.raw, "key": "orders/a.csv",
                              "version": state["version"], "etag": state["etag"],
                              "size": state["size"], "replay": True}
    assert message["attributes"]["error_type"]["StringValue"] == "SchemaError"
    assert metadata.record(aws.table, state["file_id"])["status"] == "FAILED"
    # The replay message is a valid ingest input: the FAILED file is claimed again.
    assert steps.ingest(body["replay"], aws.settings, aws.clients)["route"] == "single"


def test_dlq_for_an_event_that_was_not_understood(aws: Any, saved_event: dict[str, Any]) -> None:
    saved_event["detail-type"] = "Object Deleted"
    error = _lambda_error("InputFormatError", "not an S3 Object Created event")
    steps.route_to_dlq({**saved_event, "error": error}, aws.settings, aws.clients)
    (message,) = aws.dlq_messages()
    assert message["body"]["event"]["detail-type"] == "Object Deleted"
    assert message["body"]["file_id"] is None
    assert "replay" not in message["body"]


def test_worker_threads_follow_the_lambda_memory_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.runtime.threads import worker_threads

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
    assert worker_threads() == 1 and worker_threads(2) == 2  # an explicit request wins
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3008")
    assert worker_threads() == 2


def test_transform_in_a_small_lambda_runs_on_one_thread(aws: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.runtime import threads

    seen: list[int] = []
    real = threads.worker_threads

    def spy(requested: int | None = None) -> int:
        seen.append(real(requested))
        return seen[-1]

    # what the conversion asks (engine.runtime.threads.conversion_threads), whatever the input
    monkeypatch.setattr(threads, "worker_threads", spy)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
    state = steps.transform(_ingest(aws, "x/a.csv", ORDERS), aws.settings, aws.clients)
    assert seen == [1] and state["parts"][0]["rows_out"] == 3
