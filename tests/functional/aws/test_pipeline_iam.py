"""Every AWS call a Lambda step makes in a local pipeline run is one its deployed function may make.

moto does not enforce IAM, so the other local pipeline tests pass whatever the functions'
policies in ``template.yaml`` say; a missing grant shows only once deployed (the ErrorHandler and
DLQRoute functions deleted outputs and read contracts they had no permission for). Here the real
ASL runs on moto with the real handlers (``engine.aws.local.runner``), every botocore call a handler
makes is recorded, and each is checked against what the deployed function could do:

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
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import botocore.client
import pytest
import yaml
from fault_injection import MAP_SETTINGS, failing_part
from test_pipeline_paths import HAPPY, _contract

import engine.enforce.enrich
from engine.aws import metadata, routing
from engine.aws.local.asl import ACCOUNT, FUNCTIONS, REGION
from engine.aws.local.lambdas import load_handler
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

    def __init__(self, names: Mapping[str, str], queue_url: str) -> None:
        raw, processed = names["raw_bucket"], names["processed_bucket"]
        table, queue = names["table"], names["queue"]
        self.refs = {
            "RawBucket": raw, "ProcessedBucket": processed, "MetadataTable": table,
            "DeadLetterQueue": queue_url, "EncryptionKey": KEY_ID,
            "GlueDatabase": names["database"],
            "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
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


@dataclass(frozen=True)
class Call:
    """One AWS API call a handler made (the parameters that name what it touched)."""

    function: str
    service: str
    operation: str
    params: Mapping[str, Any] = field(default_factory=dict)
    secure: bool = True  # sent over HTTPS

    def __str__(self) -> str:
        named = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.service}:{self.operation}({named})"


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
                 queue_url: str) -> None:
        resolve = Resolver(names, queue_url)
        resources = template["Resources"]
        globals_ = template.get("Globals", {}).get("Function", {})
        assert "Policies" not in globals_, "SAM has no global Policies; this test expects none"
        self.functions: dict[str, list[Statement]] = {}
        self.in_vpc: dict[str, bool] = {}
        for name in FUNCTIONS:
            props = resources[name]["Properties"]
            self.functions[name] = _function_statements(name, props, resolve)
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

_KEPT = ("Bucket", "Key", "VersionId", "Prefix", "CopySource", "TableName", "IndexName",
         "QueueUrl", "QueueName", "DatabaseName", "Name")


def _kept(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that name what a call touches (not bodies, not item values)."""
    kept = {k: params[k] for k in _KEPT if k in params}
    if "RequestItems" in params:
        kept["RequestItems"] = sorted(params["RequestItems"])
    if "Delete" in params:
        kept["Delete"] = [{k: o[k] for k in ("Key", "VersionId") if o.get(k)}
                          for o in params["Delete"].get("Objects", [])]
    if isinstance(params.get("TableInput"), Mapping):  # Glue's CreateTable, UpdateTable
        kept["TableInput"] = {"Name": params["TableInput"].get("Name")}
    if "TransactItems" in params:
        kept["TransactItems"] = [(kind, body.get("TableName"))
                                 for item in params["TransactItems"] for kind, body in item.items()]
    return kept


def _cold_sandbox() -> None:
    """Forget what another function's invocation cached in this shared process."""
    routing.clear_cache()
    engine.enforce.enrich.clear_reference_cache()


class Recorder:
    """Records the AWS calls of the handlers, each under its function's logical id."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.problems: list[str] = []
        self.invocations: Counter[str] = Counter()
        self.running: str | None = None
        self._local = threading.local()
        self._harness = threading.current_thread()
        self._lock = threading.Lock()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        recorder, real_call = self, botocore.client.BaseClient._make_api_call
        real_start, real_run = threading.Thread.start, threading.Thread.run

        def make_api_call(client: Any, operation: str, params: Any) -> Any:
            recorder._record(client, operation, params)
            return real_call(client, operation, params)

        def start(thread: threading.Thread) -> None:
            # a thread started by a handler makes its calls for the handler's function
            thread._iam_function = getattr(recorder._local, "function", None)  # type: ignore[attr-defined]
            real_start(thread)

        def run(thread: threading.Thread) -> None:
            if getattr(thread, "_iam_function", None):
                recorder._local.function = thread._iam_function  # type: ignore[attr-defined]
            real_run(thread)

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", make_api_call)
        monkeypatch.setattr(threading.Thread, "start", start)
        monkeypatch.setattr(threading.Thread, "run", run)

    def handlers(self) -> dict[str, Callable[[dict[str, Any], Any], Any]]:
        """The real handlers, each recording its calls (``LocalPipeline(handlers=...)``).

        Importing a handler is its function's init phase: calls made then are its too.
        """
        wrapped = {}
        for name, step in FUNCTIONS.items():
            self.running = self._local.function = name
            try:
                wrapped[name] = self._wrap(name, load_handler(step))
            finally:
                self.running = self._local.function = None
        return wrapped

    def _wrap(self, name: str, handler: Callable[[dict[str, Any], Any], Any]
              ) -> Callable[[dict[str, Any], Any], Any]:
        def invoke(event: dict[str, Any], context: Any) -> Any:
            if self.running is not None:  # local.py runs the handlers' bodies one at a time
                self.problems.append(f"{name} started while {self.running} was running")
            self.running = name
            self.invocations[name] += 1
            self._local.function = name
            _cold_sandbox()
            try:
                return handler(event, context)
            finally:
                self._local.function = None
                self.running = None

        return invoke

    def _record(self, client: Any, operation: str, params: Any) -> None:
        try:
            service = client.meta.service_model.service_name
            function = getattr(self._local, "function", None)
            thread = threading.current_thread()
            if function is None:
                if thread is not self._harness and (service, operation) != ("lambda", "Invoke"):
                    self.problems.append(f"{service}:{operation} on thread {thread.name!r}, "
                                         "neither the test's nor a handler's: not checked")
                return
            if function != self.running:
                self.problems.append(f"{service}:{operation} on thread {thread.name!r} of "
                                     f"{function}, made after its invocation ended")
            call = Call(function, service, operation, _kept(params or {}),
                        secure=str(client.meta.endpoint_url).startswith("https://"))
            with self._lock:
                self.calls.append(call)
        except Exception as exc:  # noqa: BLE001 - never break the handler; fail the test instead
            self.problems.append(f"could not record {operation}: {exc!r}")

    def wrote(self, function: str, bucket: str, key: str) -> list[Call]:
        """The objects ``function`` wrote (in one request or a multipart upload)."""
        return [c for op in ("PutObject", "CompleteMultipartUpload")
                for c in self.made(function, "s3", op, Bucket=bucket, Key=key)]

    def mark(self) -> int:
        return len(self.calls)

    def made(self, function: str, service: str, operation: str, since: int = 0,
             **params: str) -> list[Call]:
        """The calls of ``function`` (from ``since``) whose operation and parameters match the
        globs."""
        return [c for c in self.calls[since:]
                if (c.function, c.service) == (function, service) and _glob(operation, c.operation)
                and all(_glob(v, str(c.params.get(k))) for k, v in params.items())]


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
