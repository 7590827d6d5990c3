"""Every AWS call a Lambda step makes in a local pipeline run is one its deployed function may make.

moto does not enforce IAM, so the other local pipeline tests pass whatever the functions'
policies in ``template.yaml`` say; a missing grant shows only once deployed (the ErrorHandler and
DLQRoute functions deleted outputs and read contracts they had no permission for). Here the real
ASL runs on moto with the real handlers (``engine.aws.local.runner``), every botocore call a handler
makes is recorded (``engine.aws.local.calls``), and each is checked against what the deployed
function could do:

- **its IAM policies**: the function's ``Policies`` (inline statements, and the SAM policy
  templates it uses expanded as aws-sam-translator's ``policy_templates.json`` does), with
  ``!Ref``/``!GetAtt``/``!Sub`` resolved to the names the local run uses, so the ARNs line up;
- **its network**: the functions run in private subnets without NAT, so a service is reachable
  only through a VPC endpoint, and a gateway endpoint's policy must allow the call as well;
- **resource policies**: no explicit ``Deny`` of a bucket or queue policy applies (they deny
  plain HTTP only);
- **the stack key**: sending to a queue encrypted with it takes ``kms:GenerateDataKey`` and
  ``kms:Decrypt`` on the key (what SQS asks of a producer).

Each handler runs as in a cold sandbox of its own function: the contract and reference-table
caches the handlers share in this one process are cleared before every invocation. On AWS a
cold ErrorHandler reads the contract itself; here the cache Ingest filled hid that read.

A call is a function's when it is made on the thread running its handler or on a thread that
handler started (the engine reads S3 on a read-ahead thread). The test's own calls (set-up,
uploads, listings, Step Functions) are not checked; a call from any other thread must be moto's
Lambda invocation, so a call that escapes attribution fails the test instead of going unchecked.
An operation the checker cannot map to IAM actions fails it too.

The backfill state machine's own calls (its Distributed Map's listing, each object's
``HeadObject``, the child executions it starts and follows) are made by moto's interpreter, on
its threads and outside any handler: a backfill run records those as the state machine's and
checks them against its ``Policies`` the same way.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from fault_injection import MAP_SETTINGS, failing_part
from test_pipeline_paths import HAPPY, _contract, _read_parquet

from engine.aws import metadata
from engine.aws.local.asl import ACCOUNT, FUNCTIONS, REGION
from engine.aws.local.calls import Call, CallRecorder
from engine.aws.local.runner import LOCAL_NAMES, LocalPipeline
from engine.errors import SchemaError, TransientError
from engine.gen import generate

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "template.yaml"
KEY_ID = "local-stack-key"  # what !Ref EncryptionKey stands for (no KMS call is made locally)

#: aws-sam-translator 1.110.0, samtranslator/policy_templates_data/policy_templates.json: the
#: templates test_template.ALLOWED_POLICY_TEMPLATES lets the functions use, as
#: name → (parameter, [(actions, resource ARNs as a Fn::Sub text)]).
SAM_POLICY_TEMPLATES: dict[str, tuple[str, list[tuple[tuple[str, ...], tuple[str, ...]]]]] = {
    "S3ReadPolicy": ("BucketName", [(
        ("s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation", "s3:GetObjectVersion",
         "s3:GetLifecycleConfiguration"),
        ("arn:${AWS::Partition}:s3:::${BucketName}", "arn:${AWS::Partition}:s3:::${BucketName}/*"),
    )]),
    "DynamoDBCrudPolicy": ("TableName", [(
        ("dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Scan",
         "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem",
         "dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:ConditionCheckItem"),
        ("arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${TableName}",
         "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${TableName}"
         "/index/*"),
    )]),
    "SQSSendMessagePolicy": ("QueueName", [(
        ("sqs:SendMessage*",),
        ("arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${QueueName}",),
    )]),
    "LambdaInvokePolicy": ("FunctionName", [(
        ("lambda:InvokeFunction",),
        ("arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${FunctionName}*",),
    )]),
}


@functools.cache
def _template_tests() -> Any:
    """tests/unit/test_template.py, for its loader (CloudFormation short tags in long form)."""
    spec = importlib.util.spec_from_file_location(
        "_chunkwise_test_template", REPO / "tests" / "unit" / "test_template.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_template_tests()._CfnLoader)


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    """IAM wildcard match: ``*`` any run of characters (``/`` included), ``?`` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE if ignore_case else 0) is not None


def _s3_arn(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" if key is None else f"arn:aws:s3:::{bucket}/{key}"


def _table_arn(table: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"


def _queue_arn(queue_url: str) -> str:
    account, name = urlsplit(queue_url).path.strip("/").split("/")[-2:]
    return f"arn:aws:sqs:{REGION}:{account}:{name}"


def _key_arn(key_id: str) -> str:
    return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"


# ---------------------------------------------------------------------------------------------
# The template's policies, resolved to a local run's names
# ---------------------------------------------------------------------------------------------


class Resolver:
    """``Ref``/``Fn::GetAtt``/``Fn::Sub`` of the resources a local run has, to its names.

    Anything else raises: a policy naming a resource the local run does not have cannot be
    checked, and must not be skipped silently.
    """

    def __init__(self, names: Mapping[str, str], queue_url: str,
                 parameters: Mapping[str, str] | None = None) -> None:
        raw, processed = names["raw_bucket"], names["processed_bucket"]
        table, queue = names["table"], names["queue"]
        self.refs = {
            "RawBucket": raw, "ProcessedBucket": processed, "MetadataTable": table,
            "DeadLetterQueue": queue_url, "EncryptionKey": KEY_ID,
            "GlueDatabase": names["database"],
            "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            **(parameters or {}),  # the template parameters the local run stands for
        }
        self.attributes = {
            ("RawBucket", "Arn"): _s3_arn(raw),
            ("ProcessedBucket", "Arn"): _s3_arn(processed),
            ("MetadataTable", "Arn"): _table_arn(table),
            ("DeadLetterQueue", "Arn"): _queue_arn(queue_url),
            ("DeadLetterQueue", "QueueName"): queue,
            ("EncryptionKey", "Arn"): _key_arn(KEY_ID),
        }

    def ref(self, name: str) -> str:
        if name not in self.refs:
            raise KeyError(f"!Ref {name}: not a resource of the local run")
        return self.refs[name]

    def attribute(self, resource: str, name: str) -> str:
        if (resource, name) not in self.attributes:
            raise KeyError(f"!GetAtt {resource}.{name}: not a resource of the local run")
        return self.attributes[(resource, name)]

    def __call__(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, Mapping) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref":
                return self.ref(argument)
            if function == "Fn::GetAtt":
                return self.attribute(*argument)
            if function == "Fn::Sub":
                return self._sub(argument)
        raise ValueError(f"cannot resolve {value!r} for a local run")

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return self(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return self.attribute(*name.split(".", 1))
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", one, text)


@dataclass(frozen=True)
class Statement:
    """One policy statement: ``Allow`` or ``Deny`` of action patterns on resource patterns."""

    where: str
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    plain_http_only: bool = False  # a Deny conditioned on aws:SecureTransport false

    def matches(self, action: str, resource: str) -> bool:
        return (any(_glob(a, action, ignore_case=True) for a in self.actions)
                and any(_glob(r, resource) for r in self.resources))


def _statement(raw: Mapping[str, Any], resolve: Resolver, where: str, *,
               resource_policy: bool = False) -> Statement:
    """A function's statement (every resource must resolve), or a resource or endpoint policy's
    (its resources the local run does not have are left out: no call can touch them)."""
    where = f"{where}[{raw.get('Sid', '?')}]"
    allowed = {"Sid", "Effect", "Action", "Resource"}
    if resource_policy:
        allowed |= {"Principal", "Condition"}
    unknown = set(raw) - allowed
    assert not unknown, f"{where}: {sorted(unknown)} is not evaluated by this test; extend it"
    plain_http_only = False
    if resource_policy:
        principal = raw.get("Principal")
        assert raw["Effect"] == "Allow" or principal in ("*", {"AWS": "*"}), (
            f"{where}: a Deny for {principal!r} is not evaluated by this test; extend it")
        condition = raw.get("Condition")
        if condition is not None:
            assert condition == {"Bool": {"aws:SecureTransport": "false"}}, (
                f"{where}: condition {condition!r} is not evaluated by this test; extend it")
            plain_http_only = True
    resources = []
    for r in _listify(raw["Resource"]):
        try:
            resources.append(resolve(r))
        except KeyError:
            if not resource_policy:
                raise
    return Statement(where, raw["Effect"], tuple(_listify(raw["Action"])), tuple(resources),
                     plain_http_only)


class Conditions:
    """The template's ``Conditions``, evaluated with its parameters' defaults and ``given``."""

    def __init__(self, template: Mapping[str, Any], given: Mapping[str, str]) -> None:
        self.raw = template.get("Conditions", {})
        self.parameters = {name: spec.get("Default")
                           for name, spec in template.get("Parameters", {}).items()}
        self.parameters.update(given)

    def holds(self, name: str | None) -> bool:
        return True if name is None else bool(self._value(self.raw[name]))

    def _value(self, node: Any) -> Any:
        if isinstance(node, str):
            return node
        if isinstance(node, Mapping) and len(node) == 1:
            ((function, argument),) = node.items()
            if function == "Ref":
                return self.parameters[argument]
            if function == "Condition":
                return self.holds(argument)
            if function == "Fn::Equals":
                return self._value(argument[0]) == self._value(argument[1])
            if function == "Fn::Not":
                return not self._value(argument[0])
            if function == "Fn::And":
                return all(self._value(a) for a in argument)
            if function == "Fn::Or":
                return any(self._value(a) for a in argument)
        raise ValueError(f"cannot evaluate the condition {node!r}; extend this test")


def _role_policies(name: str, resources: Mapping[str, Any], conditions: Conditions,
                   resolve: Resolver) -> list[Statement]:
    """Statements of the ``AWS::IAM::Policy`` resources on the function's role (SAM names it
    ``<function>Role``) that the local run's parameters create."""
    statements: list[Statement] = []
    for logical, resource in resources.items():
        props = resource.get("Properties", {})
        if (resource["Type"] == "AWS::IAM::Policy" and {"Ref": f"{name}Role"} in props["Roles"]
                and conditions.holds(resource.get("Condition"))):
            statements += [_statement(s, resolve, f"{logical}.PolicyDocument")
                           for s in props["PolicyDocument"]["Statement"]]
    return statements


def _function_statements(name: str, props: Mapping[str, Any],
                         resolve: Resolver) -> list[Statement]:
    statements: list[Statement] = []
    for i, policy in enumerate(props.get("Policies") or []):
        where = f"{name}.Policies[{i}]"
        if isinstance(policy, Mapping) and set(policy) == {"Statement"}:
            statements += [_statement(s, resolve, where) for s in policy["Statement"]]
            continue
        if isinstance(policy, Mapping) and len(policy) == 1:
            ((template_name, arguments),) = policy.items()
            if template_name in SAM_POLICY_TEMPLATES:
                parameter, definitions = SAM_POLICY_TEMPLATES[template_name]
                assert set(arguments) == {parameter}, f"{where}: {arguments!r}"
                for actions, resources in definitions:
                    statements.append(Statement(
                        f"{where}[{template_name}]", "Allow", actions,
                        tuple(resolve({"Fn::Sub": [r, {parameter: arguments[parameter]}]})
                              for r in resources)))
                continue
        raise AssertionError(f"{where}: {policy!r} cannot be expanded by this test (a managed "
                             "policy, or a SAM policy template not in SAM_POLICY_TEMPLATES)")
    return statements


@dataclass(frozen=True)
class Need:
    """One authorisation a call needs: ``action`` on ``resource``."""

    action: str
    resource: str
    through_endpoint: bool = True  # False: a use SQS makes of the key on the caller's behalf


class Unmapped(LookupError):
    """No IAM mapping for an operation: the checker must be extended, not the call allowed."""


_S3_OBJECT_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
    "DeleteObject": "s3:DeleteObject",
}
_S3_VERSIONED = {"s3:GetObject": "s3:GetObjectVersion", "s3:DeleteObject": "s3:DeleteObjectVersion"}
_S3_BUCKET_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "GetBucketLocation": "s3:GetBucketLocation",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
}
_DYNAMODB_TABLE_OPERATIONS = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan",
                              "DescribeTable"}
_DYNAMODB_TRANSACT = {"Get": "GetItem", "Put": "PutItem", "Update": "UpdateItem",
                      "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
_SQS_QUEUE_ACTIONS = {"SendMessage": "sqs:SendMessage", "SendMessageBatch": "sqs:SendMessage",
                      "GetQueueAttributes": "sqs:GetQueueAttributes"}
#: Glue Data Catalog calls on one table (named by one of these parameters) or on every table.
_GLUE_TABLE_OPERATIONS = {"GetTable": "Name", "CreateTable": "TableInput", "UpdateTable":
                          "TableInput", "DeleteTable": "Name", "BatchCreatePartition":
                          "TableName", "GetPartitions": "TableName", "CreatePartition":
                          "TableName", "UpdatePartition": "TableName",
                          "BatchGetPartition": "TableName"}
_GLUE_DATABASE_OPERATIONS = {"GetTables"}


def _s3_needs(operation: str, p: Mapping[str, Any]) -> list[Need]:
    if operation in _S3_OBJECT_ACTIONS:
        action = _S3_OBJECT_ACTIONS[operation]
        if p.get("VersionId"):
            action = _S3_VERSIONED.get(action, action)
        return [Need(action, _s3_arn(p["Bucket"], p["Key"]))]
    if operation in _S3_BUCKET_ACTIONS:
        return [Need(_S3_BUCKET_ACTIONS[operation], _s3_arn(p["Bucket"]))]
    if operation == "DeleteObjects":
        return [Need("s3:DeleteObjectVersion" if o.get("VersionId") else "s3:DeleteObject",
                     _s3_arn(p["Bucket"], o["Key"])) for o in p["Delete"]]
    if operation in ("CopyObject", "UploadPartCopy"):
        source = p["CopySource"]
        if isinstance(source, str):
            path, _, query = unquote(source).lstrip("/").partition("?versionId=")
            bucket, key = path.split("/", 1)
            source = {"Bucket": bucket, "Key": key, "VersionId": query or None}
        read = "s3:GetObjectVersion" if source.get("VersionId") else "s3:GetObject"
        return [Need(read, _s3_arn(source["Bucket"], source["Key"])),
                Need("s3:PutObject", _s3_arn(p["Bucket"], p["Key"]))]
    raise Unmapped(f"s3:{operation}")


def _glue_needs(operation: str, p: Mapping[str, Any]) -> list[Need]:
    """Glue authorizes a catalog call on the catalog, the database and the table (all three)."""
    glue = f"arn:aws:glue:{REGION}:{ACCOUNT}"
    action, database = f"glue:{operation}", p.get("DatabaseName")
    if operation in _GLUE_TABLE_OPERATIONS:
        named = p[_GLUE_TABLE_OPERATIONS[operation]]
        table = named["Name"] if isinstance(named, Mapping) else named
    elif operation in _GLUE_DATABASE_OPERATIONS:
        table = "*"
    else:
        raise Unmapped(f"glue:{operation}")
    return [Need(action, f"{glue}:catalog"), Need(action, f"{glue}:database/{database}"),
            Need(action, f"{glue}:table/{database}/{table}")]


def _dynamodb_needs(operation: str, p: Mapping[str, Any]) -> list[Need]:
    if operation in _DYNAMODB_TABLE_OPERATIONS:
        resource = _table_arn(p["TableName"])
        if p.get("IndexName"):
            resource += f"/index/{p['IndexName']}"
        return [Need(f"dynamodb:{operation}", resource)]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [Need(f"dynamodb:{operation}", _table_arn(t)) for t in p["RequestItems"]]
    if operation in ("TransactGetItems", "TransactWriteItems"):
        return [Need(f"dynamodb:{_DYNAMODB_TRANSACT[kind]}", _table_arn(table))
                for kind, table in p["TransactItems"]]
    raise Unmapped(f"dynamodb:{operation}")


class Policy:
    """What each function of the template may do, at the local run's names."""

    def __init__(self, template: Mapping[str, Any], names: Mapping[str, str],
                 queue_url: str, parameters: Mapping[str, str] | None = None,
                 secrets: Mapping[str, str] | None = None) -> None:
        resolve = Resolver(names, queue_url, parameters)
        conditions = Conditions(template, parameters or {})
        #: secret name → ARN, for the calls that name a secret by its name
        self.secrets = dict(secrets or {})
        resources = template["Resources"]
        globals_ = template.get("Globals", {}).get("Function", {})
        assert "Policies" not in globals_, "SAM has no global Policies; this test expects none"
        self.functions: dict[str, list[Statement]] = {}
        self.in_vpc: dict[str, bool] = {}
        for name in FUNCTIONS:
            props = resources[name]["Properties"]
            self.functions[name] = (_function_statements(name, props, resolve)
                                    + _role_policies(name, resources, conditions, resolve))
            self.in_vpc[name] = bool(props.get("VpcConfig", globals_.get("VpcConfig")))
        types = {r["Type"] for r in resources.values()}
        #: without NAT, the functions in the VPC reach only the services it has endpoints for
        self.open_egress = "AWS::EC2::NatGateway" in types
        #: service → its endpoint's policy (None: the default policy, full access)
        self.endpoints: dict[str, list[Statement] | None] = {}
        #: explicit Deny statements of the bucket and queue policies
        self.denies: list[Statement] = []
        #: queue ARN → the ARN of the stack's KMS key it is encrypted with
        self.queue_keys: dict[str, str] = {}
        for logical, resource in resources.items():
            kind, props = resource["Type"], resource.get("Properties", {})
            if not conditions.holds(resource.get("Condition")):
                continue  # not created with the local run's parameters
            if kind == "AWS::EC2::VPCEndpoint":
                service = resolve(props["ServiceName"]).rsplit(".", 1)[-1]
                document = props.get("PolicyDocument")
                self.endpoints[service] = None if document is None else [
                    _statement(s, resolve, f"{logical}.PolicyDocument", resource_policy=True)
                    for s in document["Statement"]]
            elif kind in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"):
                for s in props["PolicyDocument"]["Statement"]:
                    if s["Effect"] == "Deny":  # (grants to service principals do not matter)
                        self.denies.append(_statement(s, resolve, f"{logical}.PolicyDocument",
                                                      resource_policy=True))
            elif kind == "AWS::SQS::Queue" and props.get("KmsMasterKeyId") is not None:
                key = props["KmsMasterKeyId"]
                if not (isinstance(key, Mapping) and key.get("Ref") in resources):
                    continue  # an AWS managed key: its key policy, not IAM, lets SQS use it
                try:
                    arn = resolve.attribute(logical, "Arn")
                except KeyError:
                    continue  # a queue the local run does not have
                self.queue_keys[arn] = _key_arn(resolve(key))

    def without(self, owner: str, *, action: str | None = None,
                sid: str | None = None) -> Policy:
        """A copy with ``action`` (or the statements ``sid``) taken from a function's policies,
        or from the endpoint policy of service ``owner``."""
        copy = object.__new__(Policy)
        copy.__dict__.update(self.__dict__)
        copy.functions = dict(self.functions)
        copy.endpoints = dict(self.endpoints)
        table: dict[str, Any] = copy.functions if owner in copy.functions else copy.endpoints
        kept = []
        for s in table[owner] or []:
            if sid is not None and s.where.endswith(f"[{sid}]"):
                continue
            if action is not None:
                s = replace(s, actions=tuple(a for a in s.actions if a.lower() != action.lower()))
            kept.append(s)
        assert kept != table[owner], f"nothing of {owner} matches action={action} sid={sid}"
        table[owner] = kept
        return copy

    def needs(self, call: Call) -> list[Need]:
        """The IAM authorisations ``call`` needs.

        Raises:
            Unmapped: the operation is not known to this checker.
        """
        p = call.params
        if call.service == "s3":
            return _s3_needs(call.operation, p)
        if call.service == "dynamodb":
            return _dynamodb_needs(call.operation, p)
        if call.service == "glue":
            return _glue_needs(call.operation, p)
        if call.service == "sqs" and call.operation in _SQS_QUEUE_ACTIONS:
            queue = _queue_arn(p["QueueUrl"])
            needs = [Need(_SQS_QUEUE_ACTIONS[call.operation], queue)]
            if call.operation.startswith("SendMessage") and queue in self.queue_keys:
                # SSE-KMS: SQS generates and decrypts data keys with the caller's permissions
                key = self.queue_keys[queue]
                needs += [Need("kms:GenerateDataKey", key, through_endpoint=False),
                          Need("kms:Decrypt", key, through_endpoint=False)]
            return needs
        if call.service == "secretsmanager" and call.operation == "GetSecretValue":
            secret = p["SecretId"]
            if not secret.startswith("arn:"):
                if secret not in self.secrets:
                    raise Unmapped(f"secretsmanager:GetSecretValue of {secret!r} (no ARN known)")
                secret = self.secrets[secret]
            return [Need("secretsmanager:GetSecretValue", secret)]
        if call.service == "sqs" and call.operation == "GetQueueUrl":
            return [Need("sqs:GetQueueUrl", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{p['QueueName']}")]
        raise Unmapped(f"{call.service}:{call.operation}")

    def denials(self, call: Call) -> list[str]:
        """Why the deployed ``call.function`` could not make ``call`` (empty: it could)."""
        try:
            needs = self.needs(call)
        except Unmapped as exc:
            return [f"no IAM mapping for {exc}: extend the checker (never allow it unchecked)"]
        reasons = []
        in_vpc = self.in_vpc[call.function] and not self.open_egress
        if in_vpc and call.service not in self.endpoints:
            reasons.append(f"{call.service} is unreachable: no VPC endpoint and no NAT")
        statements = self.functions[call.function]
        for need in needs:
            what = f"{need.action} on {need.resource}"
            if not any(s.effect == "Allow" and s.matches(need.action, need.resource)
                       for s in statements):
                reasons.append(f"{what}: not granted by the function's policies")
            for s in statements:
                if s.effect == "Deny" and s.matches(need.action, need.resource):
                    reasons.append(f"{what}: denied by {s.where}")
            gate = self.endpoints.get(call.service) if in_vpc and need.through_endpoint else None
            if gate is not None and not any(
                    s.effect == "Allow" and s.matches(need.action, need.resource) for s in gate):
                reasons.append(f"{what}: not allowed by the {call.service} VPC endpoint policy")
            for s in self.denies:
                if s.matches(need.action, need.resource) and not (s.plain_http_only
                                                                  and call.secure):
                    reasons.append(f"{what}: denied by {s.where}")
        return reasons


# ---------------------------------------------------------------------------------------------
# Recording the handlers' calls
# ---------------------------------------------------------------------------------------------

class Recorder(CallRecorder):
    """The handlers' calls (:class:`engine.aws.local.calls.CallRecorder`), patched in by the
    test's monkeypatch."""

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for owner, name, value in self.patches():
            monkeypatch.setattr(owner, name, value)


CHECKED: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    print("\nAWS calls checked against template.yaml, by function:", dict(sorted(CHECKED.items())))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    rec.install(monkeypatch)
    return rec


def _fail(title: str, lines: list[str], shown: int = 25) -> None:
    more = [f"... and {len(lines) - shown} more"] if len(lines) > shown else []
    pytest.fail("\n  ".join([title, *lines[:shown], *more]), pytrace=False)


def _assert_allowed(policy: Policy, recorder: Recorder) -> None:
    if recorder.problems:
        _fail("the recorder could not vouch for these calls:", recorder.problems)
    assert recorder.calls
    denied = [f"{c.function}: {c}: {reason}" for c in recorder.calls
              for reason in policy.denials(c)]
    if denied:
        _fail(f"{len(denied)} calls the deployed functions could not make (template.yaml):",
              denied)
    CHECKED.update(c.function for c in recorder.calls)


def _assert_caught(policy: Policy, calls: list[Call]) -> None:
    """Each of ``calls`` is denied by ``policy`` (a policy with a grant taken away)."""
    assert calls
    assert all(policy.denials(c) for c in calls), [str(c) for c in calls if not policy.denials(c)]


# ---------------------------------------------------------------------------------------------
# Inputs and faults
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def orders_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated orders plus five rows the contract rejects (a negative amount)."""
    path = tmp_path_factory.mktemp("iam") / "orders.csv"
    generate("orders", path, size=200_000, seed=41)
    with path.open("a", encoding="utf-8") as out:
        for i in range(5):
            out.write(f"{900_000 + i},2025-01-02T00:00:00Z,1,FR,-5.00,1,paid,rejected\n")
    return path


def _splittable_contract(tmp_path: Path) -> Path:
    """contracts/orders.yaml without what needs the whole file in one pass (so the Map runs):
    no aggregate, no dedupe, no unique column. Its rejects are written per part."""
    doc = yaml.safe_load((REPO / "contracts" / "orders.yaml").read_text(encoding="utf-8"))
    columns = {name: {k: v for k, v in spec.items() if k != "unique"}
               for name, spec in doc["columns"].items()}
    transforms = [t for t in doc["transforms"] if "dedupe" not in t]
    return _contract(tmp_path, aggregate=None, columns=columns, transforms=transforms)


def _commit_fails(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """The output step fails recording SUCCEEDED, after writing the manifest."""
    real = metadata.update_status

    def update_status(table: Any, file_id: str, status: str, *args: Any, **kwargs: Any) -> Any:
        if status == metadata.SUCCEEDED:
            raise error
        return real(table, file_id, status, *args, **kwargs)

    monkeypatch.setattr(metadata, "update_status", update_status)


# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------


def test_single_route_with_contract_then_a_duplicate_event(
        template: dict[str, Any], recorder: Recorder, tmp_path: Path, orders_csv: Path) -> None:
    with LocalPipeline(contract=_contract(tmp_path), handlers=recorder.handlers()) as pipe:
        policy = Policy(template, pipe.names, pipe.queue_url)
        obj = pipe.upload(orders_csv)
        first = pipe.run_object(obj)
        duplicate_from = recorder.mark()
        second = pipe.run_object(obj)  # EventBridge delivers at least once
    assert first["status"] == "SUCCEEDED" and first["states"] == HAPPY, first["error"]
    assert first["record"]["rows_rejected"] == 5
    assert any("/_rejects/" in u for u in first["outputs"])
    assert any("/_aggregates/" in u for u in first["outputs"])
    assert second["states"] == ["Ingest", "IsDuplicate", "Skipped"]
    _assert_allowed(policy, recorder)

    raw, processed = pipe.names["raw_bucket"], pipe.names["processed_bucket"]
    assert recorder.made("IngestFunction", "s3", "ListObjectsV2", Bucket=raw, Prefix="_contracts/")
    for function in ("IngestFunction", "ValidateFunction", "TransformFunction", "OutputFunction"):
        # each reads the contract itself (a cold sandbox)
        assert recorder.made(function, "s3", "GetObject", Bucket=raw, Key="_contracts/*"), function
    for function in ("ValidateFunction", "TransformFunction"):
        assert recorder.made(function, "s3", "GetObject", Bucket=raw, Key="orders/orders.csv")
    assert recorder.made("IngestFunction", "dynamodb", "PutItem")
    for key in ("orders/_rejects/*", "orders/_aggregates/*", "orders/country=*"):
        assert recorder.wrote("TransformFunction", processed, key), key
    assert recorder.wrote("OutputFunction", processed, "orders/_manifests/*.manifest.json")
    assert recorder.made("OutputFunction", "dynamodb", "UpdateItem")
    # the catalog: the output step made the table and registered the country partitions
    database = pipe.names["database"]
    creates = recorder.made("OutputFunction", "glue", "CreateTable", DatabaseName=database)
    partitions = recorder.made("OutputFunction", "glue", "BatchCreatePartition",
                               DatabaseName=database, TableName="orders")
    assert creates and partitions
    _assert_caught(policy.without("OutputFunction", action="glue:CreateTable"), creates)
    _assert_caught(policy.without("glue", action="glue:BatchCreatePartition"), partitions)
    # the duplicate: only ingest ran, and its claim (a conditional put) was refused
    assert {c.function for c in recorder.calls[duplicate_from:]} == {"IngestFunction"}
    assert recorder.made("IngestFunction", "dynamodb", "PutItem", since=duplicate_from)


def test_map_route(template: dict[str, Any], recorder: Recorder, big_csv: Path) -> None:
    with LocalPipeline(settings=MAP_SETTINGS, handlers=recorder.handlers(),
                       map_max_concurrency=2) as pipe:
        policy = Policy(template, pipe.names, pipe.queue_url)
        result = pipe.run(big_csv, key="in/orders.csv")
    assert result["status"] == "SUCCEEDED", result["error"]
    assert "Plan" in result["states"] and "TransformRanges" in result["states"]
    _assert_allowed(policy, recorder)

    raw, processed = pipe.names["raw_bucket"], pipe.names["processed_bucket"]
    assert recorder.invocations["TransformFunction"] >= 3
    assert recorder.made("PlanFunction", "s3", "GetObject", Bucket=raw, Key="in/orders.csv")
    assert recorder.made("TransformFunction", "s3", "GetObject", Bucket=raw, Key="in/orders.csv")
    assert recorder.made("TransformFunction", "dynamodb", "UpdateItem")  # the part's published set
    assert recorder.wrote("OutputFunction", processed, "in/_manifests/*.manifest.json")


def test_a_dataset_without_contract_grows_its_catalog_table(
        template: dict[str, Any], recorder: Recorder, tmp_path: Path) -> None:
    """Validate reads the dataset's table (its schema, to read the file with); output creates
    it, then updates it when a second file adds a column; the endpoint's policy lets both."""
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("id,v\n1,10\n2,20\n")
    second.write_text("id,v,note\n3,30,x\n")
    with LocalPipeline(handlers=recorder.handlers()) as pipe:
        policy = Policy(template, pipe.names, pipe.queue_url)
        results = [pipe.run(first), pipe.run(second)]
    assert [r["status"] for r in results] == ["SUCCEEDED", "SUCCEEDED"], results[1]["error"]
    assert [c["name"] for c in results[1]["catalog"]["columns"]] == ["id", "v", "note"]
    _assert_allowed(policy, recorder)

    database = pipe.names["database"]
    reads = recorder.made("ValidateFunction", "glue", "GetTable", DatabaseName=database,
                          Name="incoming")
    updates = recorder.made("OutputFunction", "glue", "UpdateTable", DatabaseName=database)
    listing = recorder.made("OutputFunction", "glue", "GetTables", DatabaseName=database)
    assert len(reads) == 2 and updates and listing  # the listing: no overlapping location
    assert recorder.made("OutputFunction", "glue", "CreateTable", DatabaseName=database)
    assert not recorder.made("TransformFunction", "glue", "*")  # the schema came in the state
    _assert_caught(policy.without("ValidateFunction", sid="ReadDatasetTable"), reads)
    _assert_caught(policy.without("OutputFunction", action="glue:UpdateTable"), updates)
    _assert_caught(policy.without("glue", action="glue:GetTables"), listing)


def test_map_part_failing_for_good_goes_to_the_dlq(
        template: dict[str, Any], recorder: Recorder, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, big_csv: Path) -> None:
    with LocalPipeline(contract=_splittable_contract(tmp_path), settings=MAP_SETTINGS,
                       handlers=recorder.handlers(), map_max_concurrency=1) as pipe:
        policy = Policy(template, pipe.names, pipe.queue_url)
        failing_part(monkeypatch, "last",
                     SchemaError("column order_id: 'x' is not int64 (injected)"))
        result = pipe.run(big_csv)
    assert result["status"] == "FAILED" and "DLQRoute" in result["states"]
    assert result["record"]["published"] and result["outputs"] == []
    assert [m["error_type"] for m in result["dlq"]] == ["SchemaError"]
    _assert_allowed(policy, recorder)

    raw, processed = pipe.names["raw_bucket"], pipe.names["processed_bucket"]
    for function in ("PlanFunction", "TransformFunction"):
        assert recorder.made(function, "s3", "GetObject", Bucket=raw, Key="_contracts/*")
    assert recorder.made("DLQRouteFunction", "dynamodb", "GetItem")  # the record's published set
    deletes = recorder.made("DLQRouteFunction", "s3", "DeleteObject", Bucket=processed)
    assert len(deletes) >= len(result["record"]["published"])
    sends = recorder.made("DLQRouteFunction", "sqs", "SendMessage")
    assert len(sends) == 1
    # taking a grant away would have failed this run: the checker sees these calls
    _assert_caught(policy.without("DLQRouteFunction", action="s3:DeleteObject"), deletes)
    _assert_caught(policy.without("DLQRouteFunction", action="kms:GenerateDataKey"), sends)
    _assert_caught(policy.without("s3", action="s3:DeleteObject"), deletes)


class _RegionApi(BaseHTTPRequestHandler):
    """A lookup API on 127.0.0.1: POST {"keys": [{"country": ...}]} → the region of each."""

    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"auth": self.headers.get("Authorization"), **body})
        data = json.dumps({"results": [{"country": k["country"], "region": f"R-{k['country']}"}
                                       for k in body["keys"]]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def region_api() -> Iterator[str]:
    """The URL of :class:`_RegionApi`, served on a thread."""
    _RegionApi.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RegionApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/lookup"
    finally:
        server.shutdown()
        server.server_close()


def test_enrich_api_reads_its_one_secret_end_to_end(
        template: dict[str, Any], recorder: Recorder, tmp_path: Path, orders_csv: Path,
        region_api: str) -> None:
    """The step on the local stack: the token from moto's Secrets Manager, the API on a thread;
    the transform function may read that secret (EnrichApiSecretArn) and no other."""
    name, token = "chunkwise/geo-api", "tok-e2e-not-a-secret"  # noqa: S105 - a test token
    doc = yaml.safe_load((REPO / "contracts" / "orders.yaml").read_text(encoding="utf-8"))
    step = {"enrich_api": {"url": region_api, "on": "country", "secret": name,
                           "columns": {"region": "string"}, "batch_size": 100}}
    contract = _contract(tmp_path, transforms=[*doc["transforms"], step])
    with LocalPipeline(contract=contract, handlers=recorder.handlers()) as pipe:
        arn = pipe.client("secretsmanager").create_secret(Name=name, SecretString=token)["ARN"]
        policy = Policy(template, pipe.names, pipe.queue_url,
                        parameters={"EnrichApiSecretArn": arn}, secrets={name: arn})
        result = pipe.run(orders_csv)
        data = [u for u in result["outputs"] if "/country=" in u]
        table = _read_parquet(pipe, data[0])
    assert result["status"] == "SUCCEEDED" and result["states"] == HAPPY, result["error"]
    country = data[0].split("/country=")[1].split("/")[0]
    assert set(table.column("region").to_pylist()) == {f"R-{country}"}
    assert _RegionApi.seen and {r["auth"] for r in _RegionApi.seen} == {f"Bearer {token}"}
    _assert_allowed(policy, recorder)

    reads = recorder.made("TransformFunction", "secretsmanager", "GetSecretValue", SecretId=name)
    assert reads and {c.function for c in recorder.calls
                      if c.service == "secretsmanager"} == {"TransformFunction"}
    _assert_caught(policy.without("TransformFunction", sid="ReadEnrichApiSecret"), reads)
    # deployed without the parameter, the grant is not there at all
    _assert_caught(Policy(template, pipe.names, pipe.queue_url, secrets={name: arn}), reads)
    # another secret of the account is not this one
    other = [replace(c, params={"SecretId": arn.replace("geo-api", "payroll")}) for c in reads]
    _assert_caught(policy, other)


@pytest.mark.parametrize(("error", "handler"), [
    (TransientError("DynamoDB throttled (injected)"), "ErrorHandlerFunction"),
    (SchemaError("parts disagree (injected)"), "DLQRouteFunction"),
])
def test_failure_after_publishing_takes_the_outputs_back(
        template: dict[str, Any], recorder: Recorder, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, orders_csv: Path, error: Exception, handler: str) -> None:
    """The output step fails with everything published: the failure step reads the contract
    (to name its rejects and aggregate files) and deletes the outputs."""
    with LocalPipeline(contract=_contract(tmp_path), handlers=recorder.handlers()) as pipe:
        policy = Policy(template, pipe.names, pipe.queue_url)
        _commit_fails(monkeypatch, error)
        result = pipe.run(orders_csv)
    assert result["status"] == "FAILED", result
    assert result["states"][-2:] == [handler.removesuffix("Function"), "Failed"]
    assert result["record"]["status"] == "FAILED" and result["outputs"] == []
    if handler == "ErrorHandlerFunction":
        assert result["attempts"]["Output"] == 4  # retried
    _assert_allowed(policy, recorder)

    raw, processed = pipe.names["raw_bucket"], pipe.names["processed_bucket"]
    assert recorder.made("OutputFunction", "s3", "DeleteObject", Bucket=processed,
                         Key="*.manifest.json")  # its own manifest, on the way out
    reads = recorder.made(handler, "s3", "GetObject", Bucket=raw, Key="_contracts/*")
    deletes = recorder.made(handler, "s3", "DeleteObject", Bucket=processed)
    assert reads
    for key in ("orders/_rejects/*", "orders/_aggregates/*", "orders/country=*",
                "*.manifest.json"):
        assert recorder.made(handler, "s3", "DeleteObject", Bucket=processed, Key=key), key
    # the template before the fix (neither grant) fails this run
    before_fix = policy.without(handler, sid="ReadContracts").without(handler,
                                                                      sid="TakeBackOutputs")
    _assert_caught(before_fix, reads + deletes)


class MachineRecorder(Recorder):
    """Also records the calls moto's interpreter makes for the backfill state machine: those on
    its threads that no handler makes (the per-file machine calls nothing but its functions)."""

    def __init__(self) -> None:
        super().__init__()
        self.machine: list[Call] = []

    def _record(self, client: Any, operation: str, params: Any) -> None:
        service = client.meta.service_model.service_name
        if (getattr(self._local, "function", None) is None
                and threading.current_thread() is not self._harness
                and (service, operation) != ("lambda", "Invoke")):
            named = {k: v for k, v in (params or {}).items()
                     if k in ("Bucket", "Key", "Prefix", "stateMachineArn", "executionArn")}
            self.machine.append(Call("BackfillStateMachine", service, operation, named))
            return
        super()._record(client, operation, params)


def _machine_statements(template: Mapping[str, Any], pipe: LocalPipeline) -> list[Statement]:
    """The backfill state machine's policies, at the local run's names."""
    resolve = Resolver(pipe.names, pipe.queue_url, {
        "PipelineStateMachine": pipe.state_machine_arn,
        "AWS::StackName": pipe.names["backfill_state_machine"].removesuffix("-backfill")})
    resolve.attributes[("PipelineStateMachine", "Name")] = pipe.names["state_machine"]
    props = template["Resources"]["BackfillStateMachine"]["Properties"]
    return _function_statements("BackfillStateMachine", props, resolve)


def _machine_needs(call: Call) -> list[Need]:
    if call.service == "s3":
        return _s3_needs(call.operation, call.params)
    if call.service == "stepfunctions" and call.operation == "StartExecution":
        return [Need("states:StartExecution", call.params["stateMachineArn"])]
    if call.service == "stepfunctions" and call.operation in ("DescribeExecution",
                                                              "StopExecution"):
        return [Need(f"states:{call.operation}", call.params["executionArn"])]
    raise Unmapped(f"{call.service}:{call.operation}")


def _machine_denials(statements: list[Statement], call: Call) -> list[str]:
    try:
        needs = _machine_needs(call)
    except Unmapped as exc:
        return [f"no IAM mapping for {exc}: extend the checker"]
    return [f"{n.action} on {n.resource}" for n in needs
            if not any(s.effect == "Allow" and s.matches(n.action, n.resource)
                       for s in statements)]


def test_backfill_state_machine_lists_the_prefix_and_starts_the_pipeline(
        template: dict[str, Any], tmp_path: Path) -> None:
    """The backfill (Distributed Map, child executions) makes only calls its role allows."""
    from engine.aws.backfill import run_backfill
    from engine.aws.targets import Target

    recorder = MachineRecorder()
    files = []
    for i in range(2):
        files.append(tmp_path / f"day-{i}.csv")
        generate("orders", files[-1], size=5_000, seed=i)
    with recorder.recording(), LocalPipeline(contract=_contract(tmp_path),
                                             handlers=recorder.handlers()) as pipe:
        for path in files:
            pipe.upload(path, key=f"orders/2025/{path.name}")
        target = Target("local", backfill_state_machine=pipe.backfill_state_machine_arn,
                        raw_bucket=pipe.names["raw_bucket"], region=REGION)
        result = run_backfill(target, "orders/2025/", poll=0.1)
        statements = _machine_statements(template, pipe)
        policy = Policy(template, pipe.names, pipe.queue_url)
    assert (result["succeeded"], result["failed"]) == (2, 0), result
    _assert_allowed(policy, recorder)  # the handlers, as for any execution
    raw = pipe.names["raw_bucket"]
    made = {(c.service, c.operation) for c in recorder.machine}
    assert {("s3", "ListObjectsV2"), ("s3", "HeadObject"),
            ("stepfunctions", "StartExecution"), ("stepfunctions", "DescribeExecution")} <= made
    assert all(c.params.get("Bucket", raw) == raw for c in recorder.machine)
    started = [c for c in recorder.machine if c.operation == "StartExecution"]
    assert {c.params["stateMachineArn"] for c in started} == {pipe.state_machine_arn}
    denied = [f"{c}: {reason}" for c in recorder.machine
              for reason in _machine_denials(statements, c)]
    if denied:
        _fail("calls the deployed backfill state machine could not make:", denied)
    CHECKED["BackfillStateMachine"] += len(recorder.machine)
    # the checker catches a missing grant: without ListBucket, no listing
    listing = [c for c in recorder.machine if c.operation == "ListObjectsV2"]
    without = [s for s in statements if not s.where.endswith("[ListThePrefix]")]
    assert len(without) == len(statements) - 1
    assert all(_machine_denials(without, c) for c in listing)


# ---------------------------------------------------------------------------------------------
# The checker itself
# ---------------------------------------------------------------------------------------------


def test_the_checker_denies_what_the_policies_do_not_grant(template: dict[str, Any]) -> None:
    queue_url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{LOCAL_NAMES['queue']}"
    policy = Policy(template, LOCAL_NAMES, queue_url)
    raw, processed = LOCAL_NAMES["raw_bucket"], LOCAL_NAMES["processed_bucket"]

    def call(function: str, service: str, operation: str, **params: Any) -> Call:
        return Call(function, service, operation, params)

    delete = call("DLQRouteFunction", "s3", "DeleteObject", Bucket=processed,
                  Key="orders/country=FR/orders-part-00001-00000.parquet")
    assert policy.denials(delete) == []
    (reason,) = policy.without("DLQRouteFunction", action="s3:DeleteObject").denials(delete)
    assert "s3:DeleteObject on arn:aws:s3:::chunkwise-processed/orders/" in reason
    assert "not granted by the function's policies" in reason
    # a grant of the same action elsewhere does not count
    assert policy.denials(call("IngestFunction", "s3", "DeleteObject", Bucket=processed,
                               Key="x.parquet"))
    # resources are matched: the contracts grant is not a grant on the raw data
    contract = call("ErrorHandlerFunction", "s3", "GetObject", Bucket=raw,
                    Key="_contracts/orders.yaml")
    assert policy.denials(contract) == []
    assert policy.denials(replace(contract, params={"Bucket": raw, "Key": "orders/orders.csv"}))
    assert policy.denials(replace(contract, params={**contract.params, "VersionId": "v1"}))
    # the versioned action is its own action
    assert policy.denials(call("TransformFunction", "s3", "DeleteObject", Bucket=processed,
                               Key="x.parquet", VersionId="v1"))
    # an action on the bucket needs the bucket ARN
    assert policy.denials(call("TransformFunction", "s3", "ListObjectsV2", Bucket=processed)) == []
    assert policy.denials(call("OutputFunction", "s3", "ListObjectsV2", Bucket=raw))
    # the endpoint policy is a second gate
    assert policy.without("s3", action="s3:DeleteObject").denials(delete)
    # the queue is encrypted with the stack key: sending needs it
    send = call("DLQRouteFunction", "sqs", "SendMessage", QueueUrl=queue_url)
    assert policy.denials(send) == []
    assert policy.without("DLQRouteFunction", sid="UseStackKey").denials(send)
    assert policy.denials(replace(send, function="ErrorHandlerFunction"))
    # a DynamoDB action the CRUD template does not have
    assert policy.denials(call("PlanFunction", "dynamodb", "GetItem",
                               TableName=LOCAL_NAMES["table"]))  # plan writes no record
    assert policy.denials(call("OutputFunction", "dynamodb", "UpdateItem", TableName="other"))
    # a call the checker cannot map fails rather than passing unchecked
    (unmapped,) = policy.denials(call("OutputFunction", "s3", "PutObjectAcl", Bucket=processed,
                                      Key="x"))
    assert "no IAM mapping for s3:PutObjectAcl" in unmapped
    # a plain-HTTP call is denied by the bucket policies even when IAM allows it
    assert policy.denials(replace(delete, secure=False))


def test_the_sam_policy_templates_are_expanded_as_sam_does() -> None:
    """SAM_POLICY_TEMPLATES covers the templates template.yaml may use, as aws-sam-translator
    defines them (aws-sam-translator is in the test extra)."""
    allowed = _template_tests().ALLOWED_POLICY_TEMPLATES
    assert {name: parameter for name, (parameter, _) in SAM_POLICY_TEMPLATES.items()} == allowed
    import samtranslator
    path = Path(samtranslator.__file__).parent / "policy_templates_data" / "policy_templates.json"
    templates = json.loads(path.read_text(encoding="utf-8"))["Templates"]
    for name, (parameter, statements) in SAM_POLICY_TEMPLATES.items():
        assert list(templates[name]["Parameters"]) == [parameter], name
        expanded = []
        for s in templates[name]["Definition"]["Statement"]:
            assert s["Effect"] == "Allow" and set(s) == {"Effect", "Action", "Resource"}, name
            resources = []
            for r in _listify(s["Resource"]):
                text, variables = r["Fn::Sub"]
                for variable, value in variables.items():
                    text = text.replace("${" + variable + "}", "${" + value["Ref"] + "}")
                resources.append(text)
            expanded.append((tuple(s["Action"]), tuple(resources)))
        assert expanded == statements, name


def test_the_recorder_attributes_threads_and_reports_escapes(
        aws_env: None, recorder: Recorder) -> None:
    """A thread a handler starts makes its calls for the handler's function; a call from a
    thread that escapes attribution (a Timer overrides ``run``) is reported, not dropped."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)

        def handler(event: Any, context: Any) -> None:
            for thread in (threading.Thread(target=s3.list_buckets),
                           threading.Timer(0, s3.list_buckets)):
                thread.start()
                thread.join()

        recorder._wrap("ValidateFunction", handler)({}, None)
        s3.list_buckets()  # the test's own call: not a function's
    assert [(c.function, c.operation) for c in recorder.calls] == [
        ("ValidateFunction", "ListBuckets")]
    (problem,) = recorder.problems
    assert problem.startswith("s3:ListBuckets on thread") and "not checked" in problem
