"""The local runner's mechanics, with stub handlers: the real ASL on moto's interpreter.

These pin what ``engine.aws.local.runner`` promises whatever the handlers do: Lambda tasks reach
Python callables in-process, a raised exception is the runtime's error payload (matched by class
name), retries do not sleep, executions never collide, the DLQ, table and bucket are collected,
and nothing is left patched afterwards.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import botocore.handlers
import pytest

from engine.aws.local import asl, inputs, sandbox
from engine.aws.local.runner import LocalPipeline, run_local
from engine.errors import InstallationError, SchemaError, TransientError, ValidationError


def _ingest(event: dict[str, Any], context: Any) -> dict[str, Any]:
    import boto3

    detail, obj = event["detail"], event["detail"]["object"]
    file_id = f"s3://{detail['bucket']['name']}/{obj['key']}#{obj.get('version-id') or obj['etag']}"
    ddb = boto3.client("dynamodb")
    try:
        ddb.put_item(TableName=os.environ["METADATA_TABLE"],
                     Item={"file_id": {"S": file_id}, "status": {"S": "RECEIVED"}},
                     ConditionExpression="attribute_not_exists(file_id)")
    except ddb.exceptions.ConditionalCheckFailedException:
        route = "skip"
    else:
        route = "map" if obj["size"] > int(os.environ.get("MAX_SINGLE_BYTES", "1000")) \
            else "single"
    return {"bucket": detail["bucket"]["name"], "key": obj["key"], "size": obj["size"],
            "version": obj.get("version-id"), "etag": obj["etag"], "file_id": file_id,
            "route": route, "contract": None, "context_name": context.function_name,
            "remaining_ms": context.get_remaining_time_in_millis()}


def _status(state: dict[str, Any], status: str, **extra: str) -> None:
    import boto3

    item = {"file_id": {"S": state["file_id"]}, "status": {"S": status}}
    item.update({k: {"S": v} for k, v in extra.items()})
    boto3.client("dynamodb").put_item(TableName=os.environ["METADATA_TABLE"], Item=item)


def _validate(state: dict[str, Any], context: Any) -> dict[str, Any]:
    return {**state, "format": "csv", "columns": ["a", "b"]}


def _plan(state: dict[str, Any], context: Any) -> dict[str, Any]:
    return {**state, "ranges": [{"index": i, "start": i * 4, "end": i * 4 + 4} for i in range(3)],
            "map_max_concurrency": int(os.environ["MAP_MAX_CONCURRENCY"])}


def _transform(state: dict[str, Any], context: Any) -> Any:
    import boto3

    s3 = boto3.client("s3")
    if "range" in state:
        r = state["range"]
        key = f"out/part-{r['index']}.parquet"
        s3.put_object(Bucket=os.environ["PROCESSED_BUCKET"], Key=key, Body=b"p")
        return {"index": r["index"], "uri": f"s3://{os.environ['PROCESSED_BUCKET']}/{key}",
                "has_ranges": "ranges" in state["state"]}
    s3.put_object(Bucket=os.environ["PROCESSED_BUCKET"], Key="out/part-0.parquet", Body=b"p")
    return {**state, "parts": [{"index": 0,
                                "uri": f"s3://{os.environ['PROCESSED_BUCKET']}/out/part-0.parquet"}]}


def _output(state: dict[str, Any], context: Any) -> dict[str, Any]:
    _status(state, "SUCCEEDED")
    return {**state, "output": {"manifest": "s3://m/manifest.json", "rows_out": 1}}


def _error_handler(state: dict[str, Any], context: Any) -> dict[str, Any]:
    _status(state, "FAILED", error_type=state["error"]["Error"])
    return state


def _dlq_route(state: dict[str, Any], context: Any) -> dict[str, Any]:
    import boto3

    _status(state, "FAILED", error_type=state["error"]["Error"])
    boto3.client("sqs").send_message(QueueUrl=os.environ["DLQ_URL"], MessageBody=json.dumps(
        {"bucket": state["bucket"], "key": state["key"], "error": state["error"]["Error"]}))
    return state


STUBS = {"ingest": _ingest, "validate": _validate, "plan": _plan, "transform": _transform,
         "output": _output, "error_handler": _error_handler, "dlq_route": _dlq_route}


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "small.csv"
    path.write_text("a,b\n1,2\n")
    return path


def _raising(exc: Exception, times: int | None = None, then: Any = None) -> Any:
    calls = {"n": 0}

    def handler(state: dict[str, Any], context: Any) -> Any:
        calls["n"] += 1
        if times is None or calls["n"] <= times:
            raise exc
        return then(state, context)

    handler.calls = calls  # type: ignore[attr-defined]
    return handler


def test_happy_path_collects_record_outputs_and_context(small_csv: Path) -> None:
    result = run_local(small_csv, handlers=STUBS, key="in/small.csv")
    assert result["status"] == "SUCCEEDED"
    assert result["states"] == ["Ingest", "IsDuplicate", "Validate", "SizeRoute", "Transform",
                                "Output", "Done"]
    assert result["error"] is None and result["dlq"] == []
    assert result["record"]["status"] == "SUCCEEDED"
    assert result["record"]["file_id"].startswith("s3://chunkwise-raw/in/small.csv#")
    assert result["outputs"] == ["s3://chunkwise-processed/out/part-0.parquet"]
    assert result["execution_arn"].startswith("arn:aws:states:us-east-1:123456789012:execution:")
    final = result["output"]
    assert final["context_name"] == "IngestFunction"
    assert 0 < final["remaining_ms"] <= 900_000
    assert final["version"]  # the raw bucket is versioned, as the template declares
    assert result["attempts"] == {"Ingest": 1, "Validate": 1, "Transform": 1, "Output": 1}


def test_permanent_error_goes_to_the_dlq_by_class_name(small_csv: Path) -> None:
    result = run_local(small_csv, handlers={**STUBS, "validate": _raising(
        SchemaError("column b missing", uri="s3://x/y"))}, key="in/small.csv")
    assert result["status"] == "FAILED"
    assert result["states"] == ["Ingest", "IsDuplicate", "Validate", "DLQRoute", "Failed"]
    assert result["error"]["type"] == "SchemaError"
    assert result["error"]["message"] == "s3://x/y: column b missing"
    cause = json.loads(result["error"]["cause"])  # the Python runtime's error payload
    assert cause["errorType"] == "SchemaError"
    assert any("_raising" in line or "handler" in line for line in cause["stackTrace"])
    assert not any("engine/aws/local/" in line for line in cause["stackTrace"])
    assert result["attempts"]["Validate"] == 1  # permanent: never retried
    assert result["dlq"] == [{"bucket": "chunkwise-raw", "key": "in/small.csv",
                              "error": "SchemaError"}]
    assert result["record"]["status"] == "FAILED"


def test_transient_retries_do_not_sleep_and_follow_the_backoff(small_csv: Path) -> None:
    flaky = _raising(TransientError("throttled"), times=2, then=_transform)
    result = run_local(small_csv, handlers={**STUBS, "transform": flaky}, key="in/small.csv")
    assert result["status"] == "SUCCEEDED"
    assert result["attempts"]["Transform"] == 3
    assert result["retry_waits"] == [2.0, 4.0]  # IntervalSeconds 2, BackoffRate 2: not slept


def test_time_scale_really_waits(small_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The waits are asked of the sandbox's time module: recorded there instead of timed.
    import time

    slept: list[float] = []

    class RecordedTime:
        def sleep(self, seconds: float) -> None:
            slept.append(seconds)

        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

    monkeypatch.setattr(sandbox, "time", RecordedTime())
    flaky = _raising(TransientError("throttled"), times=1, then=_transform)
    result = run_local(small_csv, handlers={**STUBS, "transform": flaky}, key="in/small.csv",
                       time_scale=0.1)
    assert result["status"] == "SUCCEEDED"
    assert result["retry_waits"] == [2.0]
    assert slept == [pytest.approx(0.2)]  # IntervalSeconds 2 × time_scale 0.1
    slept.clear()
    flaky = _raising(TransientError("throttled"), times=1, then=_transform)
    run_local(small_csv, handlers={**STUBS, "transform": flaky}, key="in/small.csv")
    assert slept == []  # time_scale 0 (the default): recorded, never waited


def test_transient_exhausted_goes_to_the_error_handler(small_csv: Path) -> None:
    always = _raising(TransientError("throttled"))
    result = run_local(small_csv, handlers={**STUBS, "transform": always}, key="in/small.csv")
    assert result["status"] == "FAILED"
    assert result["states"][-2:] == ["ErrorHandler", "Failed"]
    assert result["attempts"]["Transform"] == 4  # the first try and MaxAttempts 3 retries
    assert result["retry_waits"] == [2.0, 4.0, 8.0]
    assert result["error"]["type"] == "TransientError"
    assert result["record"]["status"] == "FAILED" and result["dlq"] == []
    assert asl.error_exit_code(result["error"]["type"]) == 74


def test_unexpected_error_and_unserialisable_result_go_to_the_error_handler(
        small_csv: Path) -> None:
    result = run_local(small_csv, handlers={**STUBS, "output": _raising(KeyError("x"))},
                       key="in/small.csv")
    assert result["error"]["type"] == "KeyError"
    assert result["states"][-2:] == ["ErrorHandler", "Failed"]
    assert result["attempts"]["Output"] == 1
    result = run_local(small_csv, handlers={**STUBS, "output": lambda s, c: {"x": object()}},
                       key="in/small.csv")
    assert result["error"]["type"] == "Runtime.MarshalError"
    assert asl.error_exit_code(result["error"]["type"]) == 70


def test_map_route_gives_each_iteration_the_state_and_its_range(small_csv: Path) -> None:
    result = run_local(small_csv, handlers=STUBS, key="in/small.csv",
                       settings={"MAX_SINGLE_BYTES": "1"})
    assert result["status"] == "SUCCEEDED"
    assert result["states"][:6] == ["Ingest", "IsDuplicate", "Validate", "SizeRoute", "Plan",
                                    "TransformRanges"]
    assert result["states"][6:9] == ["TransformPart"] * 3
    assert result["states"][9:] == ["Output", "Done"]
    parts = result["output"]["parts"]
    assert [p["index"] for p in parts] == [0, 1, 2]  # the Map keeps the order of the ranges
    assert len(result["outputs"]) == 3


def test_map_part_failure_is_caught_by_the_map(small_csv: Path) -> None:
    def transform(state: dict[str, Any], context: Any) -> Any:
        if state.get("range", {}).get("index") == 1:
            raise ValidationError("too many rejects")
        return _transform(state, context)

    result = run_local(small_csv, handlers={**STUBS, "transform": transform},
                       key="in/small.csv", settings={"MAX_SINGLE_BYTES": "1"})
    assert result["status"] == "FAILED"
    assert result["states"][-2:] == ["DLQRoute", "Failed"]
    assert result["error"]["type"] == "ValidationError"
    assert len(result["dlq"]) == 1


def test_failing_error_tasks_keep_the_first_error(small_csv: Path) -> None:
    seen: dict[str, Any] = {}

    def error_handler(state: dict[str, Any], context: Any) -> Any:
        seen.update(state)
        raise RuntimeError("table gone")

    result = run_local(small_csv, key="in/small.csv", handlers={
        **STUBS, "validate": _raising(SchemaError("bad header")),
        "dlq_route": _raising(KeyError("key")), "error_handler": error_handler})
    assert result["states"][-4:] == ["Validate", "DLQRoute", "ErrorHandler", "Failed"]
    assert result["error"]["type"] == "SchemaError"  # not the error tasks' own failures
    assert seen["error"]["Error"] == "SchemaError"
    assert seen["dlq_error"]["Error"] == "KeyError"


def test_duplicate_event_in_one_session_is_skipped(small_csv: Path) -> None:
    with LocalPipeline(handlers=STUBS) as pipe:
        obj = pipe.upload(small_csv, "in/small.csv")
        first = pipe.run_object(obj)
        second = pipe.run_object(obj)
    assert first["status"] == second["status"] == "SUCCEEDED"
    assert first["states"][-1] == "Done" and not first["skipped"]
    assert second["states"] == ["Ingest", "IsDuplicate", "Skipped"] and second["skipped"]
    assert second["outputs"] == []  # only what this execution wrote
    assert first["execution_arn"] != second["execution_arn"]


def test_missing_handler_falls_through_to_moto(small_csv: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("CHUNKWISE_LAMBDA_DIR", str(tmp_path / "empty"))
    result = run_local(small_csv, handlers={"ingest": _ingest}, key="in/small.csv")
    assert result["status"] == "FAILED"
    assert result["states"][:3] == ["Ingest", "IsDuplicate", "Validate"]
    assert "Function not found" in result["error"]["message"]  # moto's Lambda answered
    monkeypatch.setenv("CHUNKWISE_LAMBDA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(InstallationError, match="CHUNKWISE_LAMBDA_DIR"):
        run_local(small_csv, handlers={"ingest": _ingest}, key="in/small.csv")


def test_handlers_are_loaded_from_the_lambda_dir(small_csv: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for step in asl.FUNCTIONS.values():
        (tmp_path / step).mkdir()
        (tmp_path / step / "handler.py").write_text(
            "def handler(event, context):\n"
            "    if 'detail' in event:\n"
            "        return {'route': 'single', 'file_id': None, 'via': __name__}\n"
            "    return {**event, 'via': __name__}\n")
    monkeypatch.setenv("CHUNKWISE_LAMBDA_DIR", str(tmp_path))
    result = run_local(small_csv, key="in/small.csv")
    assert result["status"] == "SUCCEEDED", result["error"]
    assert result["output"]["via"] == "chunkwise_lambda_output"


def test_unknown_override_is_refused(small_csv: Path) -> None:
    with pytest.raises(KeyError, match="unknown function"):
        run_local(small_csv, handlers={"nope": _ingest}, key="in/small.csv")


def test_contract_key_follows_its_match_glob(tmp_path: Path) -> None:
    contract = tmp_path / "c.yaml"
    contract.write_text("dataset: x\nmatch: 'orders/*.csv*'\n")
    (tmp_path / "orders.csv").write_text("a\n1\n")
    seen: dict[str, Any] = {}

    def ingest(event: dict[str, Any], context: Any) -> dict[str, Any]:
        import boto3

        seen["key"] = event["detail"]["object"]["key"]
        uri = os.environ["CONTRACTS_URI"]
        bucket, prefix = uri[5:].split("/", 1)
        listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
        seen["contracts"] = [o["Key"] for o in listed["Contents"]]
        return {**_ingest(event, context), "route": "skip"}

    result = run_local(tmp_path / "orders.csv", contract=contract,
                       handlers={**STUBS, "ingest": ingest})
    assert result["skipped"]
    assert seen == {"key": "orders/orders.csv", "contracts": ["_contracts/c.yaml"]}
    (tmp_path / "orders.json").write_text("[]")
    with pytest.raises(ValueError, match="does not match"):
        run_local(tmp_path / "orders.json", contract=contract, handlers=STUBS)
    assert inputs.key_for("x.csv", None) == "incoming/x.csv"
    assert inputs.key_for("x.csv", "*.csv") == "x.csv"
    assert inputs.key_for("x.csv", "a/b/x*.csv") == "a/b/x.csv"


def test_nothing_is_left_patched(small_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import time

    monkeypatch.setenv("AWS_PROFILE", "someone-real")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    retrier = importlib.import_module(sandbox.RETRIER_MODULE)
    before = list(botocore.handlers.BUILTIN_HANDLERS)
    run_local(small_csv, handlers={**STUBS, "validate": _raising(SchemaError("x"))},
              key="in/small.csv")
    assert botocore.handlers.BUILTIN_HANDLERS == before
    assert retrier.time is time
    assert os.environ["AWS_PROFILE"] == "someone-real"
    assert "AWS_ACCESS_KEY_ID" not in os.environ
    assert "METADATA_TABLE" not in os.environ


def test_settings_become_the_handlers_environment(small_csv: Path) -> None:
    from engine.aws.settings import Settings

    seen: dict[str, str] = {}

    def ingest(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.update({k: os.environ.get(k, "") for k in (
            "MAX_SINGLE_BYTES", "RANGE_BYTES", "POWERTOOLS_SERVICE_NAME", "METADATA_TABLE",
            "PROCESSED_BUCKET", "DLQ_URL", "CONTRACTS_URI", "AWS_ACCESS_KEY_ID")})
        return _ingest(event, context)

    run_local(small_csv, key="in/small.csv", handlers={**STUBS, "ingest": ingest},
              settings=Settings(max_single_bytes=200_000, service_name="svc"))
    assert seen == {
        "MAX_SINGLE_BYTES": "200000", "RANGE_BYTES": str(Settings().range_bytes),
        "POWERTOOLS_SERVICE_NAME": "svc", "METADATA_TABLE": "chunkwise-metadata",
        "PROCESSED_BUCKET": "chunkwise-processed",
        "DLQ_URL": seen["DLQ_URL"], "CONTRACTS_URI": "s3://chunkwise-raw/_contracts/",
        "AWS_ACCESS_KEY_ID": seen["AWS_ACCESS_KEY_ID"]}
    assert seen["AWS_ACCESS_KEY_ID"] in ("testing", "FOOBARKEY")  # ours, or moto's own fake
    assert seen["DLQ_URL"].endswith("/123456789012/chunkwise-dlq")
    with pytest.raises(ValueError, match="METADATA_TABLE"):
        run_local(small_csv, handlers=STUBS, settings={"METADATA_TABLE": "mine"})


def test_s3_source_is_copied_in_even_inside_another_mock(s3: Any) -> None:
    # run_local reads an s3:// source with the engine's S3 access before its own moto starts;
    # here that is the test's mock_aws, which must still work afterwards
    s3.create_bucket(Bucket="src")
    s3.put_object(Bucket="src", Key="d/small.csv", Body=b"a,b\n1,2\n")
    result = run_local("s3://src/d/small.csv", handlers=STUBS)
    assert result["status"] == "SUCCEEDED", result["error"]
    assert result["output"]["key"] == "incoming/small.csv"
    assert result["output"]["size"] == 8
    assert s3.get_object(Bucket="src", Key="d/small.csv")["Body"].read() == b"a,b\n1,2\n"


def test_map_iterations_run_their_handlers_one_at_a_time(small_csv: Path) -> None:
    import threading
    import time

    lock, live, peak = threading.Lock(), [0], [0]

    def transform(state: dict[str, Any], context: Any) -> Any:
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.05)
        with lock:
            live[0] -= 1
        return _transform(state, context)

    result = run_local(small_csv, handlers={**STUBS, "transform": transform},
                       key="in/small.csv", settings={"MAX_SINGLE_BYTES": "1"},
                       map_max_concurrency=3)
    assert result["status"] == "SUCCEEDED"
    assert result["states"].count("TransformPart") == 3
    assert peak[0] == 1  # like separate sandboxes: no shared process state raced on
