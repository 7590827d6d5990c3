"""``chunkwise cost``: the JSON object, the text against the ADRs, the plot, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli.app import app
from engine.cli.cost import parse_size_mix
from engine.cost.prices import load_cost_prices
from engine.cost.stack import read_stack
from engine.sizing.model import load_prices

ROOT = Path(__file__).resolve().parents[3]


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["cost", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_has_the_issues_keys_and_adds_up() -> None:
    code, out, _ = _run("--files-per-day", "5000", "--size-mix", "1MB:70,50MB:25,400MB:5",
                        "--json")
    assert code == 0, out
    data = json.loads(out)
    assert {"monthly_usd", "per_file_usd", "breakdown", "budget_usd", "within_budget"} <= set(data)
    assert set(data["breakdown"]) == {"lambda", "step_functions", "s3", "dynamodb", "sqs",
                                      "glue", "fixed"}
    assert sum(data["breakdown"].values()) == pytest.approx(data["monthly_usd"], rel=1e-12)
    files = data["workload"]["files_per_month"]
    assert data["per_file_usd"] * files + data["breakdown"]["fixed"] == pytest.approx(
        data["monthly_usd"], rel=1e-9)
    assert data["budget_usd"] == 500 and data["within_budget"] is (data["monthly_usd"] <= 500)
    assert [c["adr"] for c in data["criteria"]] == ["ADR-007", "ADR-001", "ADR-003", "ADR-003",
                                                    "ADR-006"]
    assert data["measured"]["command"] == "chunkwise cost --measure"


def test_the_files_per_day_that_reach_the_budget() -> None:
    mix = "1MB:70,50MB:25,400MB:5"
    code, out, _ = _run("--files-per-day", "5000", "--size-mix", mix, "--json")
    assert code == 0, out
    reached = json.loads(out)["budget_files_per_day"]
    assert reached > 5000  # within the budget today
    at = json.loads(_run("--files-per-day", str(reached), "--size-mix", mix, "--json")[1])
    assert at["monthly_usd"] == pytest.approx(500, abs=0.01)
    assert f"reached at about {reached:,.0f} files a day" in _run(
        "--files-per-day", "5000", "--size-mix", mix)[1]
    # a budget the fixed items alone use up
    low = json.loads(_run("--files-per-day", "10", "--budget", "20", "--json")[1])
    assert low["budget_files_per_day"] == 0 and low["breakdown"]["fixed"] > 20


def test_text_shows_the_budget_and_the_revisit_criteria() -> None:
    code, out, _ = _run("--files-per-day", "200000")
    assert code == 0, out
    assert "budget (ADR-007): $500 a month: OVER" in out
    for adr in ("ADR-001", "ADR-003", "ADR-006"):
        assert adr in out
    assert "[REVISIT] ADR-007" in out  # far over the budget: revisit


def test_budget_option_and_the_plot(tmp_path: Path) -> None:
    png = tmp_path / "cost.png"
    code, out, _ = _run("--files-per-day", "100", "--budget", "1", "--plot", str(png), "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["budget_usd"] == 1 and not data["within_budget"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("args", "says"), [
    (["--files-per-day", "10", "--size-mix", "10XB"], "--size-mix"),
    (["--files-per-day", "10", "--size-mix", "1MB:0"], "--size-mix"),
    (["--files-per-day", "10", "--contract", "events"], "events"),
    (["--files-per-day", "10", "--failure-rate", "2"], "--failure-rate"),
    ([], "--files-per-day"),
])
def test_usage_errors_exit_2(args: list[str], says: str) -> None:
    code, out, err = _run(*args)
    assert code == 2 and says in out + err


def test_measure_outside_a_checkout_names_what_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "template.yaml"
    code, out, _ = _run("--measure", "--template", str(missing), "--json")
    assert code == 66
    error = json.loads(out)["error"]
    assert error["type"] == "InputNotFoundError" and error["uri"] == str(missing)
    assert not (tmp_path / "profiles").exists()


def test_an_installation_without_the_profile_says_so(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    from engine import resources

    monkeypatch.setattr(resources.resources, "files", lambda _name: tmp_path)
    code, out, _ = _run("--files-per-day", "10", "--json")
    assert code == 72
    error = json.loads(out)["error"]
    assert error["type"] == "InstallationError" and "profiles/cost.json" in error["message"]


def test_a_contract_file_prices_as_its_measured_set() -> None:
    by_file = json.loads(_run("--files-per-day", "100", "--contract",
                              str(ROOT / "contracts" / "orders.yaml"), "--json")[1])
    by_name = json.loads(_run("--files-per-day", "100", "--json")[1])
    assert by_file["workload"]["contract"] == "orders"
    assert by_file["breakdown"] == by_name["breakdown"]
    code, out, _ = _run("--files-per-day", "100", "--contract",
                        str(ROOT / "contracts" / "events.yaml"), "--json")
    assert code == 2
    error = json.loads(out)["error"]
    assert error["uri"].endswith("events.yaml") and "measured the example contracts" in error[
        "message"]


def test_a_size_mix() -> None:
    assert parse_size_mix("1MB:70,50MB:25,400MB:5") == ((10**6, 70.0), (5 * 10**7, 25.0),
                                                        (4 * 10**8, 5.0))


def test_prices_have_a_date_and_a_source_and_lambda_is_sizings() -> None:
    prices = load_cost_prices()
    assert prices.lambda_ == load_prices("arm64")
    assert prices.recorded and prices.region == prices.lambda_.region
    for service, source in prices.sources().items():
        assert source.startswith(("https://", "engine/sizing")), service
    raw = json.loads((ROOT / "engine" / "cost" / "prices.json").read_text(encoding="utf-8"))
    assert {"step_functions", "s3", "dynamodb", "sqs", "glue", "interface_endpoint", "kms",
            "cloudwatch", "flow_logs"} <= set(raw)


def test_the_stack_reader_counts_the_templates_fixed_items(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("""
Parameters:
  StepMemorySize: {Type: Number, Default: 256}
  TransformMemorySize: {Type: Number, Default: 1024}
  MaxSingleBytes: {Type: Number, Default: 1000}
  RangeBytes: {Type: Number, Default: 100}
  MonthlyBudgetLimit: {Type: Number, Default: 50}
  Private: {Type: String, Default: "false"}
  Environment: {Type: String}
Conditions:
  HasPrivate: !Equals [!Ref Private, "true"]
  IsDev: !Equals [!Ref Environment, dev]
  EitherWay: !Or [!Condition HasPrivate, !Not [!Condition IsDev]]
Globals:
  Function:
    Architectures: [arm64]
    MemorySize: !Ref StepMemorySize
Resources:
  Key: {Type: AWS::KMS::Key}
  MetadataTable:
    Type: AWS::DynamoDB::Table
    Properties:
      GlobalSecondaryIndexes: [{IndexName: a}, {IndexName: b}]
  TransformFunction:
    Type: AWS::Serverless::Function
    Properties: {MemorySize: !Ref TransformMemorySize}
  A:
    Type: AWS::EC2::VPCEndpoint
    Properties: {VpcEndpointType: Interface, SubnetIds: [!Ref S1, !Ref S2, !Ref S3]}
  G:
    Type: AWS::EC2::VPCEndpoint
    Properties: {VpcEndpointType: Gateway}
  Off:  # only with Private=true: not at the defaults
    Type: AWS::EC2::VPCEndpoint
    Condition: HasPrivate
    Properties: {VpcEndpointType: Interface, SubnetIds: [!Ref S1, !Ref S2]}
  On:  # Environment has no default: not dev, so the condition holds
    Type: AWS::KMS::Key
    Condition: EitherWay
  One: {Type: AWS::CloudWatch::Alarm, Properties: {MetricName: Errors}}
  Math:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Metrics:
        - {Id: a, MetricStat: {}}
        - {Id: b, MetricStat: {}}
        - {Id: e, Expression: a+b}
  Flow: {Type: AWS::EC2::FlowLog, Properties: {TrafficType: ALL, LogDestinationType: s3}}
""", encoding="utf-8")
    stack = read_stack(template)
    assert (stack.step_memory_mb, stack.transform_memory_mb, stack.architecture) == (
        256, 1024, "arm64")
    assert stack.interface_endpoints == {"A": 3} and stack.endpoint_az_count == 3
    assert (stack.kms_keys, stack.alarms, stack.alarm_metrics) == (2, 2, 3)
    assert stack.flow_logs == [{"name": "Flow", "traffic_type": "ALL", "destination": "s3",
                                "aggregation_s": 600}]
    assert stack.monthly_budget_usd == 50 and stack.table_indexes == 2
