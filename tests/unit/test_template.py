"""template.yaml carries every resource and setting of ADR-001..008 (docs/adr/).

The template is read with a YAML loader that knows CloudFormation's short tags (``!Ref``,
``!GetAtt``, ``!Sub`` ...) and turns them into their long form (``{"Ref": ...}``,
``{"Fn::GetAtt": [...]}``), so the assertions read like the CloudFormation documentation. The
offline linters (cfn-lint, ``sam validate --lint``, checkov, statelint) run in ``.ci/lint``.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.aws.local.asl import TRANSIENT_ERRORS

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
ASL_PATH = ROOT / "stepfunctions" / "pipeline.asl.json"
SAMCONFIG_PATH = ROOT / "samconfig.toml"

# docs/pipeline.md: the Task states and the function behind each (TransformPart uses Transform).
FUNCTIONS = {
    "IngestFunction": "lambda/ingest/",
    "ValidateFunction": "lambda/validate/",
    "PlanFunction": "lambda/plan/",
    "TransformFunction": "lambda/transform/",
    "OutputFunction": "lambda/output/",
    "ErrorHandlerFunction": "lambda/error_handler/",
    "DLQRouteFunction": "lambda/dlq_route/",
}
EXPECTED_SUBSTITUTIONS = {f"{name}Arn" for name in FUNCTIONS}
ENV_VARS = {
    "METADATA_TABLE",
    "PROCESSED_BUCKET",
    "DLQ_URL",
    "CONTRACTS_URI",
    "GLUE_DATABASE",
    "MAX_SINGLE_BYTES",
    "RANGE_BYTES",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
}
COST_TAGS = ("Environment", "Owner", "CostCenter")

# Every resource type in the template is classified, so a new type cannot slip in untagged.
# Value: the property holding its tags and whether it is a list of Key/Value or a plain map.
TAGGABLE = {
    "AWS::Serverless::Function": ("Tags", "map"),
    "AWS::Serverless::StateMachine": ("Tags", "map"),
    "AWS::S3::Bucket": ("Tags", "list"),
    "AWS::DynamoDB::Table": ("Tags", "list"),
    "AWS::SQS::Queue": ("Tags", "list"),
    "AWS::SNS::Topic": ("Tags", "list"),
    "AWS::KMS::Key": ("Tags", "list"),
    "AWS::Logs::LogGroup": ("Tags", "list"),
    "AWS::EC2::VPC": ("Tags", "list"),
    "AWS::EC2::Subnet": ("Tags", "list"),
    "AWS::EC2::RouteTable": ("Tags", "list"),
    "AWS::EC2::SecurityGroup": ("Tags", "list"),
    "AWS::EC2::VPCEndpoint": ("Tags", "list"),
    "AWS::EC2::FlowLog": ("Tags", "list"),
    "AWS::Events::Rule": ("Tags", "list"),
    "AWS::IAM::Role": ("Tags", "list"),
    "AWS::CloudWatch::Alarm": ("Tags", "list"),
    "AWS::Budgets::Budget": ("ResourceTags", "list"),
}
# No Tags property in the CloudFormation resource schema (checked against cfn-lint's schemas).
NOT_TAGGABLE = {
    "AWS::Serverless::LayerVersion",
    "AWS::IAM::Policy",
    "AWS::KMS::Alias",
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::SNS::Subscription",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::SecurityGroupEgress",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::Glue::Database",
}
# Parameters that are the ARN of one resource outside the stack (each an AllowedPattern of one
# ARN): enrich_api's secret and the key it is encrypted with.
OUTSIDE_ARNS = {"EnrichApiSecretArn", "EnrichApiSecretKmsKeyArn"}
# SAM policy templates the functions may use: each is scoped to one named resource.
ALLOWED_POLICY_TEMPLATES = {
    "S3ReadPolicy": "BucketName",
    "DynamoDBCrudPolicy": "TableName",
    "SQSSendMessagePolicy": "QueueName",
    "LambdaInvokePolicy": "FunctionName",
}
# Actions that take no resource ARN (IAM requires Resource "*"): CloudWatch Logs vended delivery
# for Step Functions logging.
RESOURCELESS_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
# The account's Data Catalog: Glue authorizes every catalog call on it as well as on the database
# and the table (docs: "Specifying AWS Glue resource ARNs"), so it is the one resource of a grant
# that names no resource of the stack.
# ARNs no stack resource can name (Step Functions' managed rule for .sync, and the backfill's own
# ARNs, named after the stack: its role cannot !Ref the state machine that uses it).
BACKFILL_SELF = "${AWS::StackName}-backfill"
SYNC_RULE_ARN = {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/"
                            "StepFunctionsGetEventsForStepFunctionsExecutionRule"}
GLUE_CATALOG_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:catalog"}
GLUE_ARNS = [
    GLUE_CATALOG_ARN,
    {"Fn::Sub": "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:database/"
                "${GlueDatabase}"},
    {"Fn::Sub": "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:table/"
                "${GlueDatabase}/*"},
]


# --------------------------------------------------------------------------- loading


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short-form intrinsic function tags."""


def _intrinsic(name: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if name == "Ref":
            return {"Ref": value}
        if name == "Condition":
            return {"Condition": value}
        if name == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {f"Fn::{name}": value}

    return construct


for _tag in (
    "Ref", "Condition", "GetAtt", "Sub", "Join", "Select", "Split", "If", "Equals", "Not", "And",
    "Or", "GetAZs", "Cidr", "FindInMap", "ImportValue", "Base64", "Transform", "ToJsonString",
    "Length",
):  # fmt: skip
    _CfnLoader.add_constructor(f"!{_tag}", _intrinsic(_tag))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE_PATH.read_text(encoding="utf-8"), Loader=_CfnLoader)


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def _of_type(resources: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in resources.items() if res["Type"] == type_}


def _pipeline_machine(resources: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The per-file state machine (the other one is the backfill's)."""
    assert set(_of_type(resources, "AWS::Serverless::StateMachine")) == {
        "PipelineStateMachine", "BackfillStateMachine"}
    return "PipelineStateMachine", resources["PipelineStateMachine"]


def _one(resources: dict[str, Any], type_: str) -> tuple[str, dict[str, Any]]:
    found = _of_type(resources, type_)
    assert len(found) == 1, f"expected exactly one {type_}, found {sorted(found)}"
    return next(iter(found.items()))


def _props(resource: dict[str, Any]) -> dict[str, Any]:
    return resource.get("Properties", {})


def _fn_prop(template: dict[str, Any], name: str, key: str) -> Any:
    """A function property with SAM Globals applied (the function's own value wins)."""
    own = _props(template["Resources"][name])
    return own[key] if key in own else template["Globals"]["Function"].get(key)


def _fn_env(template: dict[str, Any], name: str) -> dict[str, Any]:
    merged = dict(template["Globals"]["Function"].get("Environment", {}).get("Variables", {}))
    merged.update(_props(template["Resources"][name]).get("Environment", {}).get("Variables", {}))
    return merged


def _ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def _references(value: Any) -> set[str]:
    """Logical ids and parameters a value points at through Ref, GetAtt or Sub."""
    found: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            found.add(value["Ref"])
        if "Fn::GetAtt" in value:
            found.add(value["Fn::GetAtt"][0])
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            text = sub if isinstance(sub, str) else sub[0]
            found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
        for item in value.values():
            found |= _references(item)
    elif isinstance(value, list):
        for item in value:
            found |= _references(item)
    return found


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _substitutions(resources: dict[str, Any]) -> dict[str, Any]:
    _, machine = _pipeline_machine(resources)
    return _props(machine)["DefinitionSubstitutions"]


def _asl_placeholders() -> set[str]:
    return set(re.findall(r"\$\{([^}]+)\}", ASL_PATH.read_text(encoding="utf-8")))


def _rendered_asl() -> dict[str, Any]:
    """The ASL with its function ARN placeholders substituted."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return (
            f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
            if name.endswith("Arn")
            else "10"
        )

    return json.loads(re.sub(r"\$\{([^}]+)\}", value, ASL_PATH.read_text(encoding="utf-8")))


def _tasks(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every Task state, including those inside Map/Parallel branches."""
    found: dict[str, dict[str, Any]] = {}
    for name, state in states.items():
        if state["Type"] == "Task":
            found[name] = state
        for inner in [
            state.get("ItemProcessor"),
            state.get("Iterator"),
            *state.get("Branches", []),
        ]:
            if inner:
                found.update(_tasks(inner["States"]))
    return found


# ------------------------------------------------------------------------ ADR-001


def test_adr001_standard_state_machine_from_the_asl_file(
        template: dict[str, Any], resources: dict[str, Any]) -> None:
    name, machine = _pipeline_machine(resources)
    props = _props(machine)
    assert props["Type"] == "STANDARD"
    assert props["DefinitionUri"] == "stepfunctions/pipeline.asl.json"
    assert "Definition" not in props
    subs = props["DefinitionSubstitutions"]
    assert set(subs) == EXPECTED_SUBSTITUTIONS
    for function in FUNCTIONS:
        assert subs[f"{function}Arn"] == {"Fn::GetAtt": [function, "Arn"]}
    # the Map's concurrency is no substitution: the plan function hands it to the Map in the
    # state (MaxConcurrencyPath), so the definition stays JSON as committed
    assert _fn_env(template, "PlanFunction")["MAP_MAX_CONCURRENCY"] == _ref("MapMaxConcurrency")
    # logging and tracing
    logging = props["Logging"]
    assert logging["IncludeExecutionData"] is False
    assert logging["Level"] == _ref("StateMachineLogLevel") or logging["Level"] in {"ALL", "ERROR"}
    log_group = logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]
    assert resources[log_group["Fn::GetAtt"][0]]["Type"] == "AWS::Logs::LogGroup"
    assert props["Tracing"] == {"Enabled": True}
    # it may invoke exactly the stack's functions
    invoked = [
        p["LambdaInvokePolicy"]["FunctionName"]
        for p in props["Policies"]
        if "LambdaInvokePolicy" in p
    ]
    assert sorted(ref["Ref"] for ref in invoked) == sorted(FUNCTIONS)


def test_adr001_eventbridge_object_created_starts_the_state_machine(
    resources: dict[str, Any],
) -> None:
    raw = _props(resources["RawBucket"])
    assert (
        raw["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True
    )
    machine_name, _ = _pipeline_machine(resources)
    _, rule = _one(resources, "AWS::Events::Rule")
    props = _props(rule)
    assert props["State"] == "ENABLED"
    pattern = props["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"]["name"] == [_ref("RawBucket")]
    (target,) = props["Targets"]
    assert target["Arn"] == _ref(machine_name)
    role = resources[target["RoleArn"]["Fn::GetAtt"][0]]
    statements = [s for p in _props(role)["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert statements == [
        {"Sid": "StartPipelineExecutions", "Effect": "Allow", "Action": "states:StartExecution",
         "Resource": _ref(machine_name)}
    ]  # fmt: skip


def test_asl_placeholders_and_definition_substitutions_match(resources: dict[str, Any]) -> None:
    subs = set(_substitutions(resources))
    # docs/pipeline.md names the Task functions: their ARNs are the only substitutions.
    assert subs == EXPECTED_SUBSTITUTIONS
    if ASL_PATH.exists():
        used = _asl_placeholders()
        assert used - subs == set(), "placeholders in the ASL with no DefinitionSubstitutions entry"
        assert subs - used == set(), "DefinitionSubstitutions entries the ASL never uses"
        text = ASL_PATH.read_text(encoding="utf-8")
        assert "arn:aws:lambda" not in text, "function ARNs must come from DefinitionSubstitutions"
        for name, task in _tasks(_rendered_asl()["States"]).items():
            resource = task["Resource"]
            assert resource.startswith(("arn:aws:lambda:", "arn:aws:states:::lambda:invoke")), name


# ------------------------------------------------------------------------ ADR-002


def test_adr002_sam_template_and_three_environments(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert template["Parameters"]["Environment"]["AllowedValues"] == ["dev", "staging", "prod"]
    config = tomllib.loads(SAMCONFIG_PATH.read_text(encoding="utf-8"))
    assert config["version"] == 0.1
    for env in ("default", "dev", "staging", "prod"):
        deploy = config[env]["deploy"]["parameters"]
        stack_env = "dev" if env == "default" else env
        assert deploy["stack_name"] == f"chunkwise-{stack_env}"
        assert deploy["region"]
        assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
        assert deploy["resolve_s3"] is True
        assert deploy["confirm_changeset"] is (env == "prod")
        overrides = dict(item.split("=", 1) for item in deploy["parameter_overrides"].split())
        assert overrides["Environment"] == stack_env
        for key in (
            "Owner",
            "CostCenter",
            "MonthlyBudgetLimit",
            "TransformMemorySize",
            "AlertEmail",
        ):
            assert overrides.get(key), (env, key)
        assert set(overrides) <= set(template["Parameters"]), set(overrides) - set(
            template["Parameters"]
        )
        required = {k for k, v in template["Parameters"].items() if "Default" not in v}
        assert required <= set(overrides), (env, required - set(overrides))


# -------------------------------------------------------------------- ADR-003 / ADR-008


def test_adr003_adr008_functions_arm64_python313_with_the_one_layer(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    functions = _of_type(resources, "AWS::Serverless::Function")
    assert set(functions) == set(FUNCTIONS)
    assert _of_type(resources, "AWS::Lambda::Function") == {}
    layer_name, layer = _one(resources, "AWS::Serverless::LayerVersion")
    layer_props = _props(layer)
    assert layer_props["ContentUri"] == "build/layer.zip"
    assert layer_props["CompatibleRuntimes"] == ["python3.13"]
    assert layer_props["CompatibleArchitectures"] == ["arm64"]
    params = template["Parameters"]
    for name, code_uri in FUNCTIONS.items():
        assert _fn_prop(template, name, "Runtime") == "python3.13"
        assert _fn_prop(template, name, "Architectures") == ["arm64"]
        assert _fn_prop(template, name, "Handler") == "handler.handler"
        assert _props(resources[name])["CodeUri"] == code_uri
        assert _fn_prop(template, name, "Layers") == [_ref(layer_name)]
        for key in ("MemorySize", "Timeout"):  # from parameters, never hard-coded
            value = _fn_prop(template, name, key)
            assert set(value) == {"Ref"} and value["Ref"] in params, (name, key, value)
    assert _props(resources["TransformFunction"])["MemorySize"] == _ref("TransformMemorySize")
    # the measured setting (profiles/sizing-orders.json; tests/unit/sizing checks they agree)
    assert 128 <= params["TransformMemorySize"]["Default"] <= 1024
    # a Map range is copied to /tmp before it is converted (engine/aws/steps.py transform_range)
    storage = _props(resources["TransformFunction"])["EphemeralStorage"]["Size"]
    assert storage == _ref("TransformEphemeralStorage")
    assert params["TransformEphemeralStorage"]["Default"] * 10**6 > params["RangeBytes"]["Default"]
    # and, beside it, a partitioned output's spool at the default contract settings (issue 23)
    from engine.config import DEFAULT_PART_SIZE, SPOOL_RESERVE_BYTES
    from engine.contract.output import OutputSpec
    from engine.sink.spool import spool_bytes_needed

    spool = spool_bytes_needed(OutputSpec().max_open_writers, DEFAULT_PART_SIZE)
    assert params["TransformEphemeralStorage"]["Default"] * 10**6 >= (
        params["RangeBytes"]["Default"] + spool + SPOOL_RESERVE_BYTES)
    assert "python3.11" not in TEMPLATE_PATH.read_text(encoding="utf-8")


def test_functions_environment_from_docs_pipeline(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["MaxSingleBytes"]["Default"] == 500_000_000
    assert params["MapMaxConcurrency"]["Default"] == 10
    assert "RangeBytes" in params
    for name in FUNCTIONS:
        env = _fn_env(template, name)
        assert ENV_VARS <= set(env), (name, ENV_VARS - set(env))
        assert env["METADATA_TABLE"] == _ref("MetadataTable")
        assert env["PROCESSED_BUCKET"] == _ref("ProcessedBucket")
        assert env["DLQ_URL"] == _ref("DeadLetterQueue")
        assert env["MAX_SINGLE_BYTES"] == _ref("MaxSingleBytes")
        assert env["RANGE_BYTES"] == _ref("RangeBytes")
        assert env["GLUE_DATABASE"] == _ref("GlueDatabase")
    services = {_fn_env(template, name)["POWERTOOLS_SERVICE_NAME"] for name in FUNCTIONS}
    assert len(services) == len(FUNCTIONS)


# ------------------------------------------------------------------------ ADR-004


def test_adr004_vpc_two_private_subnets_in_two_azs(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    vpc_name, vpc = _one(resources, "AWS::EC2::VPC")
    assert _props(vpc)["CidrBlock"] == _ref("VpcCidr")
    assert template["Parameters"]["VpcCidr"]["Default"].startswith("10.")
    assert _props(vpc)["EnableDnsSupport"] is True and _props(vpc)["EnableDnsHostnames"] is True
    subnets = _of_type(resources, "AWS::EC2::Subnet")
    assert len(subnets) == 2
    azs = [_props(s)["AvailabilityZone"] for s in subnets.values()]
    assert sorted(az["Fn::Select"][0] for az in azs) == [0, 1]
    assert all(az["Fn::Select"][1] == {"Fn::GetAZs": ""} for az in azs)
    assert all(_props(s)["MapPublicIpOnLaunch"] is False for s in subnets.values())
    # private: no way out but the endpoints
    for forbidden in ("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::EIP",
                      "AWS::EC2::Route", "AWS::EC2::VPCGatewayAttachment"):  # fmt: skip
        assert _of_type(resources, forbidden) == {}, forbidden
    tables = _of_type(resources, "AWS::EC2::RouteTable")
    assocs = [
        _props(a) for a in _of_type(resources, "AWS::EC2::SubnetRouteTableAssociation").values()
    ]
    assert {a["SubnetId"]["Ref"] for a in assocs} == set(subnets)
    assert {a["RouteTableId"]["Ref"] for a in assocs} <= set(tables)
    # every function in both subnets, behind the Lambda security group
    for name in FUNCTIONS:
        vpc_config = _fn_prop(template, name, "VpcConfig")
        assert sorted(r["Ref"] for r in vpc_config["SubnetIds"]) == sorted(subnets)
        assert vpc_config["SecurityGroupIds"] == [_ref("LambdaSecurityGroup")]
    assert vpc_name


def test_adr004_gateway_and_interface_endpoints(resources: dict[str, Any]) -> None:
    endpoints = {
        _props(e)["ServiceName"]["Fn::Sub"].rsplit(".", 1)[1]: _props(e)
        for e in _of_type(resources, "AWS::EC2::VPCEndpoint").values()
    }
    tables = set(_of_type(resources, "AWS::EC2::RouteTable"))
    subnets = set(_of_type(resources, "AWS::EC2::Subnet"))
    for service in ("s3", "dynamodb"):
        assert endpoints[service]["VpcEndpointType"] == "Gateway"
        assert {r["Ref"] for r in endpoints[service]["RouteTableIds"]} == tables
    secrets = endpoints["secretsmanager"]
    assert secrets["VpcEndpointType"] == "Interface"
    assert secrets["PrivateDnsEnabled"] is True
    assert {r["Ref"] for r in secrets["SubnetIds"]} == subnets
    assert secrets["SecurityGroupIds"] == [_ref("EndpointSecurityGroup")]
    # the functions reach Glue (the datasets' tables) privately, on the stack's database only
    glue = endpoints["glue"]
    assert glue["VpcEndpointType"] == "Interface" and glue["PrivateDnsEnabled"] is True
    assert {r["Ref"] for r in glue["SubnetIds"]} == subnets
    (statement,) = glue["PolicyDocument"]["Statement"]
    assert statement["Resource"] == GLUE_ARNS
    assert all(a.startswith("glue:") and "*" not in a for a in statement["Action"])
    # every interface endpoint sits behind the endpoint security group
    for service, props in endpoints.items():
        if props["VpcEndpointType"] == "Interface":
            assert props["SecurityGroupIds"] == [_ref("EndpointSecurityGroup")], service


def test_adr004_security_groups_allow_https_to_the_endpoints_only(
    resources: dict[str, Any],
) -> None:
    lambda_sg = _props(resources["LambdaSecurityGroup"])
    assert "SecurityGroupIngress" not in lambda_sg
    egress = list(lambda_sg["SecurityGroupEgress"])
    egress += [
        _props(r) for r in _of_type(resources, "AWS::EC2::SecurityGroupEgress").values()
        if _props(r)["GroupId"] == _ref("LambdaSecurityGroup")
    ]  # fmt: skip
    assert _of_type(resources, "AWS::EC2::SecurityGroupIngress") == {}
    destinations = []
    for rule in egress:
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443), rule
        assert "CidrIp" not in rule and "CidrIpv6" not in rule, rule
        destinations.append(
            rule.get("DestinationPrefixListId") or rule.get("DestinationSecurityGroupId")
        )
    assert sorted(d["Ref"] for d in destinations) == sorted(
        ["S3PrefixListId", "DynamoDBPrefixListId", "EndpointSecurityGroup"]
    )
    endpoint_sg = _props(resources["EndpointSecurityGroup"])
    (ingress,) = endpoint_sg["SecurityGroupIngress"]
    assert (ingress["IpProtocol"], ingress["FromPort"], ingress["ToPort"]) == ("tcp", 443, 443)
    assert ingress["SourceSecurityGroupId"] == _ref("LambdaSecurityGroup")
    # its only egress rule matches nothing (it replaces the default allow-all)
    (placeholder,) = endpoint_sg["SecurityGroupEgress"]
    assert placeholder["CidrIp"] == "255.255.255.255/32" and placeholder["IpProtocol"] == "icmp"


def test_adr004_flow_logs_to_s3_expiring_after_7_days(resources: dict[str, Any]) -> None:
    _, flow_log = _one(resources, "AWS::EC2::FlowLog")
    props = _props(flow_log)
    assert props["ResourceType"] == "VPC" and props["ResourceId"] == _ref("Vpc")
    assert props["TrafficType"] == "ALL"
    assert props["LogDestinationType"] == "s3"
    bucket = props["LogDestination"]["Fn::GetAtt"][0]
    rules = _props(resources[bucket])["LifecycleConfiguration"]["Rules"]
    assert any(r.get("ExpirationInDays") == 7 and r["Status"] == "Enabled" for r in rules)


# ------------------------------------------------------------------------ ADR-005


def _walk_keys(value: Any) -> set[str]:
    keys: set[str] = set()
    if isinstance(value, dict):
        keys |= set(value)
        for item in value.values():
            keys |= _walk_keys(item)
    elif isinstance(value, list):
        for item in value:
            keys |= _walk_keys(item)
    return keys


def test_adr005_retries_live_in_the_asl_not_in_lambda(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    for name in FUNCTIONS:
        for key in ("EventInvokeConfig", "DeadLetterQueue", "Events"):
            assert _fn_prop(template, name, key) is None, (name, key)
    assert "Retry" not in _walk_keys(resources) | _walk_keys(template["Globals"])
    assert _of_type(resources, "AWS::Lambda::EventInvokeConfig") == {}
    if ASL_PATH.exists():
        tasks = _tasks(_rendered_asl()["States"])
        assert tasks
        for name, task in tasks.items():
            retriers = [
                r for r in task.get("Retry", []) if set(r["ErrorEquals"]) == TRANSIENT_ERRORS
            ]
            assert len(retriers) == 1, name
            retry = retriers[0]
            assert (retry["IntervalSeconds"], retry["BackoffRate"], retry["MaxAttempts"]) == (
                2,
                2.0,
                3,
            )


def test_adr005_dead_letter_queue_and_alarms(resources: dict[str, Any]) -> None:
    dlq = _props(resources["DeadLetterQueue"])
    assert dlq["MessageRetentionPeriod"] == 1209600
    assert "KmsMasterKeyId" in dlq or dlq.get("SqsManagedSseEnabled") is True
    _, topic = _one(resources, "AWS::SNS::Topic")
    assert "KmsMasterKeyId" in _props(topic)
    alarms = [_props(a) for a in _of_type(resources, "AWS::CloudWatch::Alarm").values()]
    for alarm in alarms:
        assert alarm["AlarmActions"] == [_ref("AlarmTopic")], alarm["AlarmDescription"]

    def watched(namespace: str, metric: str) -> set[str]:
        return {
            next(iter(_references(a["Dimensions"][0]["Value"])))
            for a in alarms
            if a["Namespace"] == namespace and a["MetricName"] == metric
        }

    machine_name, _ = _pipeline_machine(resources)
    assert watched("AWS/States", "ExecutionsFailed") == {machine_name}
    assert "DeadLetterQueue" in watched("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert watched("AWS/Lambda", "Errors") == set(FUNCTIONS)
    assert watched("AWS/Lambda", "Throttles") == set(FUNCTIONS)


# ------------------------------------------------------------------------ ADR-006


def test_adr006_dynamodb_on_demand_with_ttl_and_pitr(resources: dict[str, Any]) -> None:
    _, table = _one(resources, "AWS::DynamoDB::Table")
    props = _props(table)
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert "ProvisionedThroughput" not in props
    assert props["KeySchema"] == [{"AttributeName": "file_id", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": name, "AttributeType": "S"}
                                             for name in ("file_id", "status", "updated_at")]
    # `pipeline status` reads one index, the one the local stack makes too
    from engine.aws.local.stack import STATUS_ATTRIBUTES
    from engine.aws.status import STATUS_INDEX

    (index,) = props["GlobalSecondaryIndexes"]
    assert index == {"IndexName": STATUS_INDEX, "KeySchema": [
        {"AttributeName": "status", "KeyType": "HASH"},
        {"AttributeName": "updated_at", "KeyType": "RANGE"}], "Projection": {
        "ProjectionType": "INCLUDE", "NonKeyAttributes": list(STATUS_ATTRIBUTES)}}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True


# ------------------------------------------------------------------------ ADR-007


def test_adr007_budget_alerts_at_80_and_100_percent(template: dict[str, Any]) -> None:
    _, budget = _one(template["Resources"], "AWS::Budgets::Budget")
    props = _props(budget)
    data = props["Budget"]
    assert data["BudgetType"] == "COST" and data["TimeUnit"] == "MONTHLY"
    assert data["BudgetLimit"] == {"Amount": _ref("MonthlyBudgetLimit"), "Unit": "USD"}
    assert "MonthlyBudgetLimit" in template["Parameters"]
    notifications = props["NotificationsWithSubscribers"]
    thresholds = set()
    for entry in notifications:
        n = entry["Notification"]
        assert (n["NotificationType"], n["ThresholdType"]) == ("ACTUAL", "PERCENTAGE")
        assert n["ComparisonOperator"] == "GREATER_THAN"
        thresholds.add(n["Threshold"])
        addresses = {s["SubscriptionType"]: s["Address"] for s in entry["Subscribers"]}
        assert addresses.get("SNS") == _ref("AlarmTopic") or addresses.get("EMAIL") == _ref(
            "AlertEmail"
        )
    assert thresholds == {80, 100}


def test_adr007_cost_tags_on_every_taggable_resource(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    types = {res["Type"] for res in resources.values()}
    assert types <= set(TAGGABLE) | NOT_TAGGABLE, (
        f"classify: {types - set(TAGGABLE) - NOT_TAGGABLE}"
    )
    expected = {key: _ref(key) for key in COST_TAGS}
    for key in COST_TAGS:
        assert key in template["Parameters"]
    assert template["Globals"]["Function"]["Tags"] == expected
    for name, res in resources.items():
        if res["Type"] not in TAGGABLE:
            continue
        prop, style = TAGGABLE[res["Type"]]
        if res["Type"] == "AWS::Serverless::Function" and prop not in _props(res):
            continue  # Globals.Function.Tags, asserted above
        tags = _props(res).get(prop)
        assert tags is not None, f"{name} has no {prop}"
        found = tags if style == "map" else {t["Key"]: t["Value"] for t in tags}
        assert {k: found.get(k) for k in COST_TAGS} == expected, name


def test_adr007_arm64_everywhere(template: dict[str, Any]) -> None:
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    assert "x86_64" not in text
    assert template["Globals"]["Function"]["Architectures"] == ["arm64"]


# ----------------------------------------------------------------- IAM least privilege


def _statements(policy_document: dict[str, Any]) -> list[dict[str, Any]]:
    return _listify(policy_document["Statement"])


def _identity_statements(resources: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(owner, statement) for every identity policy: IAM roles and SAM Policies."""
    found: list[tuple[str, dict[str, Any]]] = []
    for name, res in resources.items():
        props = _props(res)
        if res["Type"] == "AWS::IAM::Role":
            assert "ManagedPolicyArns" not in props, name
            for policy in props.get("Policies", []):
                found += [(name, s) for s in _statements(policy["PolicyDocument"])]
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            found += [(name, s) for s in _statements(props["PolicyDocument"])]
        elif res["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            for policy in _listify(props.get("Policies", [])):
                assert isinstance(policy, dict), f"{name}: managed policy {policy!r} is not scoped"
                if "Statement" in policy:
                    found += [(name, s) for s in _statements(policy)]
    return found


def test_iam_no_wildcard_actions_and_resources_scoped_to_the_stack(
    resources: dict[str, Any],
) -> None:
    statements = _identity_statements(resources)
    assert statements
    for owner, statement in statements:
        assert statement["Effect"] == "Allow", owner
        actions = _listify(statement["Action"])
        for action in actions:
            assert action != "*" and not action.endswith(":*"), (owner, action)
        resource = statement["Resource"]
        if resource == "*":
            assert set(actions) <= RESOURCELESS_ACTIONS, (owner, actions)
            continue
        for item in _listify(resource):
            if item == GLUE_CATALOG_ARN:
                assert all(a.startswith("glue:") for a in actions), (owner, actions)
                continue
            if owner == "BackfillStateMachine" and (item == SYNC_RULE_ARN or BACKFILL_SELF in str(
                    item.get("Fn::Sub") if isinstance(item, dict) else "")):
                assert all(a.startswith(("events:", "states:")) for a in actions), (owner, actions)
                continue
            # pseudo parameters (an ARN's partition, region, account) scope nothing themselves
            refs = {r for r in _references(item) if not r.startswith("AWS::")}
            assert refs and refs <= set(resources) | OUTSIDE_ARNS, (owner, item)
    # SAM policy templates: only the allowed ones, each pointing at one of the stack's resources
    for name, res in resources.items():
        if res["Type"] not in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            continue
        for policy in _listify(_props(res).get("Policies", [])):
            if "Statement" in policy:
                continue
            ((template_name, args),) = policy.items()
            assert template_name in ALLOWED_POLICY_TEMPLATES, (name, template_name)
            target = args[ALLOWED_POLICY_TEMPLATES[template_name]]
            assert _references(target) <= set(resources) and _references(target), (name, target)


def test_iam_each_function_reaches_only_its_own_data(resources: dict[str, Any]) -> None:
    def grants(function: str) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for policy in _props(resources[function])["Policies"]:
            if "Statement" in policy:
                for s in policy["Statement"]:
                    for target in _references(s["Resource"]):
                        out.setdefault(target, set()).update(_listify(s["Action"]))
            else:
                ((template_name, args),) = policy.items()
                out.setdefault(template_name, set()).update(_references(args))
        return out

    for name in FUNCTIONS:
        g = grants(name)
        assert g.get("S3ReadPolicy", {"RawBucket"}) == {"RawBucket"}, name
        writes_processed = "ProcessedBucket" in g
        assert writes_processed == (name in {"TransformFunction", "OutputFunction",
                                             "ErrorHandlerFunction", "DLQRouteFunction"}), name
        if name in {"ErrorHandlerFunction", "DLQRouteFunction"}:
            # the failure steps only take back what a failed file published (steps.unpublish)
            assert g["ProcessedBucket"] == {"s3:DeleteObject"}, name
        assert ("SQSSendMessagePolicy" in g) == (name == "DLQRouteFunction"), name
        assert g.get("DynamoDBCrudPolicy", {"MetadataTable"}) == {"MetadataTable"}, name
        # every step records a status except plan (docs/pipeline.md: RECEIVED ... FAILED)
        assert ("DynamoDBCrudPolicy" in g) == (name != "PlanFunction"), name
    assert _references(_props(resources["DLQRouteFunction"])["Policies"][1]) == {"DeadLetterQueue"}
    # output and the failure steps read contracts (their output options), never the raw objects
    for name in ("OutputFunction", "ErrorHandlerFunction", "DLQRouteFunction"):
        raw = [
            s
            for p in _props(resources[name])["Policies"]
            for s in p.get("Statement", [])
            if "RawBucket" in _references(s["Resource"])
        ]
        assert [(s["Action"], s["Resource"]) for s in raw] == [
            ("s3:GetObject", {"Fn::Sub": "${RawBucket.Arn}/_contracts/*"})
        ], name
    # the catalog: validate reads the dataset's table, output keeps it; nothing else touches it
    expected = {"ValidateFunction": {"glue:GetTable"},
                "OutputFunction": {"glue:GetTable", "glue:GetTables", "glue:CreateTable",
                                   "glue:UpdateTable", "glue:BatchCreatePartition"}}
    for name in FUNCTIONS:
        glue = [s for p in _props(resources[name])["Policies"] for s in p.get("Statement", [])
                if any(a.startswith("glue:") for a in _listify(s["Action"]))]
        assert {a for s in glue for a in _listify(s["Action"])} == expected.get(name, set()), name
        assert all(s["Resource"] == GLUE_ARNS for s in glue), name


def test_glue_database_named_for_athena(resources: dict[str, Any]) -> None:
    """One Glue database per stack, its name the stack's with ``_`` for ``-`` (Athena's rule
    for names); the tables in it are the Output function's (docs/datasets.md)."""
    _, database = _one(resources, "AWS::Glue::Database")
    props = _props(database)
    assert props["CatalogId"] == _ref("AWS::AccountId")
    assert props["DatabaseInput"]["Name"] == {
        "Fn::Join": ["_", {"Fn::Split": ["-", _ref("AWS::StackName")]}]}
    assert _of_type(resources, "AWS::Glue::Table") == {}  # created as datasets arrive
    assert _of_type(resources, "AWS::Glue::Crawler") == {}  # the Output function registers


def test_contracts_live_under_one_prefix_of_the_raw_bucket(template: dict[str, Any]) -> None:
    """CONTRACTS_URI, the rule's exclusion and output's read grant name the same prefix."""
    prefix = "_contracts/"
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["CONTRACTS_URI"] == {"Fn::Sub": f"s3://${{RawBucket}}/{prefix}"}
    _, rule = _one(template["Resources"], "AWS::Events::Rule")
    key_filter = _props(rule)["EventPattern"]["detail"]["object"]["key"]
    assert key_filter == [{"anything-but": {"prefix": prefix}}]


def test_resource_policies_allow_only_this_accounts_services(resources: dict[str, Any]) -> None:
    policy_types = {
        "AWS::S3::BucketPolicy": "PolicyDocument",
        "AWS::SQS::QueuePolicy": "PolicyDocument",
        "AWS::SNS::TopicPolicy": "PolicyDocument",
    }
    for name, res in resources.items():
        if res["Type"] not in policy_types:
            continue
        for statement in _statements(_props(res)["PolicyDocument"]):
            if statement["Effect"] == "Deny":
                continue
            assert set(statement["Principal"]) == {"Service"}, (name, statement)
            conditions = {k for cond in statement["Condition"].values() for k in cond}
            assert conditions & {"aws:SourceAccount", "aws:SourceArn"}, (name, statement["Sid"])


# --------------------------------------------------------------------------- buckets


def test_buckets_private_encrypted_tls_only_versioned(resources: dict[str, Any]) -> None:
    buckets = _of_type(resources, "AWS::S3::Bucket")
    assert {"RawBucket", "ProcessedBucket"} <= set(buckets)
    tls_denied = set()
    for res in _of_type(resources, "AWS::S3::BucketPolicy").values():
        for s in _statements(_props(res)["PolicyDocument"]):
            if s["Effect"] == "Deny" and s["Condition"] == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                tls_denied.add(_props(res)["Bucket"]["Ref"])
    for name, bucket in buckets.items():
        props = _props(bucket)
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True,
            "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
        }, name  # fmt: skip
        sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}, name
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}, name
        assert name in tls_denied, f"{name} has no TLS-only bucket policy"
        rules = props["LifecycleConfiguration"]["Rules"]
        assert any(
            r.get("AbortIncompleteMultipartUpload") == {"DaysAfterInitiation": 1} for r in rules
        ), name
        assert any("NoncurrentVersionExpiration" in r for r in rules), name


def test_enrich_api_secret_read_by_the_transform_function_only(template: dict[str, Any]) -> None:
    """The one secret given (and its key, through Secrets Manager only), only when given."""
    resources, params = template["Resources"], template["Parameters"]
    for name in OUTSIDE_ARNS:
        assert params[name]["Default"] == "" and params[name]["AllowedPattern"].startswith("^$|")
    policies = _of_type(resources, "AWS::IAM::Policy")
    assert set(policies) == {"EnrichApiSecretPolicy", "EnrichApiSecretKeyPolicy"}
    secret, key = policies["EnrichApiSecretPolicy"], policies["EnrichApiSecretKeyPolicy"]
    assert (secret["Condition"], key["Condition"]) == ("HasEnrichApiSecret",
                                                       "HasEnrichApiSecretKey")
    for policy in (secret, key):
        assert _props(policy)["Roles"] == [_ref("TransformFunctionRole")]
    (read,) = _props(secret)["PolicyDocument"]["Statement"]
    assert (read["Action"], read["Resource"]) == ("secretsmanager:GetSecretValue",
                                                  _ref("EnrichApiSecretArn"))
    (decrypt,) = _props(key)["PolicyDocument"]["Statement"]
    assert (decrypt["Action"], decrypt["Resource"]) == ("kms:Decrypt",
                                                        _ref("EnrichApiSecretKmsKeyArn"))
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": {
        "Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}}
    assert template["Conditions"]["HasEnrichApiSecretKey"]["Fn::And"][0] == {
        "Condition": "HasEnrichApiSecret"}
    endpoint = resources["ExecuteApiEndpoint"]
    assert endpoint["Condition"] == "HasExecuteApiEndpoint"
    (invoke,) = _props(endpoint)["PolicyDocument"]["Statement"]
    assert invoke["Action"] == "execute-api:Invoke" and invoke["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:*"}


def test_backfill_state_machine_runs_the_pipeline_per_object_with_least_privilege(
        template: dict[str, Any], resources: dict[str, Any]) -> None:
    """A DISTRIBUTED Map over a listing of the raw bucket, each item a child pipeline execution."""
    props = _props(resources["BackfillStateMachine"])
    assert props["Type"] == "STANDARD"
    assert props["Name"] == {"Fn::Sub": BACKFILL_SELF}
    assert props["DefinitionUri"] == "stepfunctions/backfill.asl.json"
    assert props["DefinitionSubstitutions"] == {
        "RawBucketName": _ref("RawBucket"), "PipelineStateMachineArn": _ref("PipelineStateMachine"),
        "BackfillMaxConcurrency": _ref("BackfillMaxConcurrency"),
        "BackfillToleratedFailurePercentage": _ref("BackfillToleratedFailurePercentage")}
    for name in ("BackfillMaxConcurrency", "BackfillToleratedFailurePercentage"):
        assert template["Parameters"][name]["Type"] == "Number"
    assert props["Logging"]["IncludeExecutionData"] is False and props["Tracing"]["Enabled"]
    path = ROOT / props["DefinitionUri"]
    text = path.read_text(encoding="utf-8")
    assert set(re.findall(r"\$\{([^}]+)\}", text)) == set(props["DefinitionSubstitutions"])
    asl = json.loads(text)
    (files,) = [s for s in asl["States"].values() if s["Type"] == "Map"]
    assert files["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert files["ItemReader"]["Resource"] == "arn:aws:states:::s3:listObjectsV2"
    assert files["ItemReader"]["Parameters"]["Bucket"] == "${RawBucketName}"
    settings = asl["States"][asl["StartAt"]]["Parameters"]
    assert files["MaxConcurrencyPath"] == "$.max_concurrency"
    assert "${BackfillMaxConcurrency}" in settings["max_concurrency.$"]
    assert files["ToleratedFailurePercentagePath"] == "$.tolerated_failure_percentage"
    assert "${BackfillToleratedFailurePercentage}" in settings["tolerated_failure_percentage.$"]
    resources_used = {t["Resource"]: t for t in _tasks(files["ItemProcessor"]["States"]).values()}
    child = resources_used.pop("arn:aws:states:::states:startExecution.sync:2")
    assert child["Parameters"]["StateMachineArn"] == "${PipelineStateMachineArn}"
    assert set(resources_used) == {"arn:aws:states:::aws-sdk:s3:headObject"}
    # least privilege: exactly these grants
    (policy,) = props["Policies"]
    grants = {s["Sid"]: (sorted(_listify(s["Action"])), s["Resource"])
              for s in policy["Statement"]}
    arn = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}"
    assert grants.pop("DeliverExecutionLogs")[1] == "*"
    assert grants == {
        "ListThePrefix": (["s3:ListBucket"], {"Fn::GetAtt": ["RawBucket", "Arn"]}),
        "HeadEachObject": (["s3:GetObject"], {"Fn::Sub": "${RawBucket.Arn}/*"}),
        "StartPipelineExecutions": (["states:StartExecution"], _ref("PipelineStateMachine")),
        "FollowPipelineExecutions": (["states:DescribeExecution", "states:StopExecution"], {
            "Fn::Sub": f"{arn}:execution:${{PipelineStateMachine.Name}}:*"}),
        "SyncCompletionRule": (["events:DescribeRule", "events:PutRule", "events:PutTargets"],
                               SYNC_RULE_ARN),
        "RunTheMapsChildWorkflows": (["states:StartExecution"], {
            "Fn::Sub": f"{arn}:stateMachine:{BACKFILL_SELF}"}),
        "FollowTheMapsChildWorkflows": (["states:DescribeExecution", "states:StopExecution"], {
            "Fn::Sub": f"{arn}:execution:{BACKFILL_SELF}/*"}),
    }
