"""Remote sizing (Power Tuning's way), with botocore's Stubber in place of AWS."""

from __future__ import annotations

import base64
import io

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from engine.errors import PermanentError
from engine.sizing.model import ModelParams, load_prices
from engine.sizing.remote import parse_report_line, run_remote

LOG = ("START RequestId: 8f5 Version: $LATEST\nEND RequestId: 8f5\n"
       "REPORT RequestId: 8f507cfc-0000  Duration: {d} ms\tBilled Duration: {b} ms\t"
       "Memory Size: {m} MB\tMax Memory Used: {u} MB\t{init}\n")


def _log(d: float, b: int, m: int, u: int, init: str = "") -> str:
    text = LOG.format(d=d, b=b, m=m, u=u, init=init)
    return base64.b64encode(text.encode()).decode()


def test_parse_report_line_with_and_without_init_duration() -> None:
    cold = parse_report_line(base64.b64decode(_log(1234.56, 1235, 512, 180,
                                                   "Init Duration: 401.20 ms")).decode())
    assert (cold.duration_ms, cold.billed_ms, cold.memory_mb, cold.max_memory_used_mb,
            cold.init_ms) == (1234.56, 1235, 512, 180, 401.2)
    assert cold.request_id == "8f507cfc-0000"
    warm = parse_report_line(base64.b64decode(_log(99.1, 100, 128, 60)).decode())
    assert warm.init_ms is None and warm.billed_ms == 100
    with pytest.raises(ValueError):
        parse_report_line("START RequestId: x\nEND RequestId: x\n")


def _client() -> tuple[object, Stubber]:
    client = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    return client, Stubber(client)


def _update(stub: Stubber, memory: int) -> None:
    stub.add_response("update_function_configuration", {"MemorySize": memory},
                      {"FunctionName": "fn", "MemorySize": memory})
    stub.add_response("get_function_configuration",
                      {"MemorySize": memory, "LastUpdateStatus": "InProgress"},
                      {"FunctionName": "fn"})
    stub.add_response("get_function_configuration",
                      {"MemorySize": memory, "LastUpdateStatus": "Successful"},
                      {"FunctionName": "fn"})


def _invoke(stub: Stubber, log: str, error: str | None = None) -> None:
    resp = {"StatusCode": 200, "LogResult": log,
            "Payload": StreamingBody(io.BytesIO(b'{"ok": 1}'), 9)}
    if error:
        resp["FunctionError"] = error
    stub.add_response("invoke", resp, {"FunctionName": "fn", "InvocationType": "RequestResponse",
                                       "LogType": "Tail", "Payload": b"{}"})


def test_run_remote_measures_each_setting_discards_outliers_and_restores() -> None:
    client, stub = _client()
    stub.add_response("get_function_configuration", {"MemorySize": 1024}, {"FunctionName": "fn"})
    # 256 MB: Max Memory Used 230 MB does not fit with 25 % headroom.
    _update(stub, 256)
    for d in (9000, 8000, 8100, 8200, 8300):
        _invoke(stub, _log(d, d, 256, 230))
    # 512 MB: fits; the cold 6000 ms and the fast 3000 ms are the outliers.
    _update(stub, 512)
    for d in (6000, 4000, 4100, 4200, 3000):
        _invoke(stub, _log(d, d, 512, 231))
    _update(stub, 1024)  # restore
    with stub:
        result = run_remote(client, "fn", [256, 512], b"{}", invocations=5,
                            prices=load_prices("arm64"), params=ModelParams(), poll_s=0)
        stub.assert_no_pending_responses()
    small, big = result.runs
    assert not small.fits_memory and big.fits
    assert big.kept == 3 and big.duration_ms == pytest.approx(4100)
    assert big.cost == pytest.approx(0.0000133334 * 0.5 * 4.1 + 0.0000002)
    assert result.memory_mb == 512 and result.original_memory_mb == 1024
    from engine.sizing.report import remote_markdown

    md = remote_markdown(result)
    assert "| 512 | 5 | 3 | 4100.0 | 4100.0 | 231 |" in md and "**512 MB**" in md


def test_a_function_error_stops_the_run_and_still_restores_the_memory() -> None:
    client, stub = _client()
    stub.add_response("get_function_configuration", {"MemorySize": 768}, {"FunctionName": "fn"})
    _update(stub, 512)
    _invoke(stub, _log(10, 10, 512, 100), error="Unhandled")
    _update(stub, 768)
    with stub, pytest.raises(PermanentError, match="function error"):
        run_remote(client, "fn", [512], b"{}", invocations=3, prices=load_prices(),
                   params=ModelParams(), poll_s=0)
    stub.assert_no_pending_responses()


def test_an_aws_error_is_typed_not_a_traceback() -> None:
    client, stub = _client()
    stub.add_client_error("get_function_configuration", "ResourceNotFoundException",
                          "Function not found: fn")
    with stub, pytest.raises(PermanentError, match="ResourceNotFoundException"):
        run_remote(client, "fn", [512], b"{}", prices=load_prices(), params=ModelParams())


def test_size_function_name_end_to_end(tmp_path, monkeypatch) -> None:
    """The CLI's remote mode: Stubber in place of Lambda; JSON and markdown written."""
    from typer.testing import CliRunner

    from engine.cli.app import app

    client, stub = _client()
    stub.add_response("get_function_configuration", {"MemorySize": 640}, {"FunctionName": "fn"})
    _update(stub, 768)
    for d in (900, 800, 810):
        _invoke(stub, _log(d, d, 768, 300))
    _update(stub, 640)
    monkeypatch.setattr(boto3, "client", lambda *a, **k: client)
    monkeypatch.setattr("engine.sizing.remote.time.sleep", lambda s: None)
    payload = tmp_path / "event.json"
    payload.write_text("{}")
    with stub:
        result = CliRunner().invoke(app, ["size", "--function-name", "fn", "--memory", "768",
                                          "--payload", str(payload), "--invocations", "3",
                                          "--out-dir", str(tmp_path), "--name", "t"])
    assert result.exit_code == 0, result.output
    assert "cheapest that fits: 768 MB (restored 640 MB)" in result.output
    assert (tmp_path / "t-remote.md").read_text().count("| 768 |") == 1
