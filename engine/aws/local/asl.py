"""The state machine definition: where it is, how it is rendered, and the errors it names.

``stepfunctions/pipeline.asl.json`` is valid JSON as committed. Its only placeholders are the
function ARNs, ``"${IngestFunctionArn}"`` and the like: each stands inside a JSON string and is
a CloudFormation ``DefinitionSubstitutions`` key, filled at deploy time with ``!GetAtt
<Function>.Arn``. :func:`render_definition` fills them the same way for a local run (and for
``statelint`` on the rendered text). The Map's concurrency is no substitution: the Map reads it
from the state (``MaxConcurrencyPath``), where the plan step puts its ``MAP_MAX_CONCURRENCY``.

The error names the definition's ``Retry`` and ``Catch`` match are derived from the exception
hierarchy of :mod:`engine.errors` (the Lambda runtime reports an exception's class name as its
``errorType``), so a new permanent error cannot be left out here or, through the tests that
compare them, in the definition.

Example:
    >>> sorted(PERMANENT_ERRORS)[:3]
    ['ContractError', 'InputFormatError', 'InputNotFoundError']
    >>> [error_exit_code(name) for name in ("UsageError", "Lambda.Unknown", "KeyError")]
    [65, 74, 70]
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from engine import errors, resources

__all__ = [
    "ACCOUNT",
    "FUNCTIONS",
    "PERMANENT_ERRORS",
    "REGION",
    "TRANSIENT_ERRORS",
    "asl_path",
    "error_exit_code",
    "function_arn",
    "locate",
    "render_definition",
    "substitutions",
]

#: The region and account of a local run (moto's default account).
REGION = "us-east-1"
ACCOUNT = "123456789012"

#: The template's function logical ids → the ``lambda/<step>`` directory of their handler.
FUNCTIONS: dict[str, str] = {
    "IngestFunction": "ingest",
    "ValidateFunction": "validate",
    "PlanFunction": "plan",
    "TransformFunction": "transform",
    "OutputFunction": "output",
    "ErrorHandlerFunction": "error_handler",
    "DLQRouteFunction": "dlq_route",
}


def _error_names(base: type[errors.EngineError]) -> frozenset[str]:
    """``base`` and every class of :mod:`engine.errors` derived from it, by name.

    Only the hierarchy's own module counts: a subclass defined elsewhere (the layer builder's
    download error) is no error a pipeline step raises, and whether it was imported must not
    change the set.
    """
    return frozenset(
        name for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, base)
    )


#: Errors routed to the DLQ (the ASL's first Catch): a failed run with one of these exits 65.
PERMANENT_ERRORS = _error_names(errors.PermanentError)
#: What the Lambda and DynamoDB services raise that is worth retrying (not Python classes).
_SERVICE_TRANSIENT_ERRORS = frozenset(
    {
        "States.Timeout",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "Lambda.Unknown",
        "DynamoDB.ProvisionedThroughputExceededException",
    }
)
#: Errors the ASL retries: a failed run with one of these has exhausted its retries (exit 74).
TRANSIENT_ERRORS = _SERVICE_TRANSIENT_ERRORS | _error_names(errors.TransientError)

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:]+)\}")


def locate(env: str, relative: str) -> Path:
    """``$env`` when set, else the packaged file ``relative`` (:mod:`engine.resources`)."""
    given = os.environ.get(env)
    return Path(given) if given else Path(str(resources.resource(relative)))


def asl_path() -> Path:
    """The state machine definition (``$CHUNKWISE_ASL``, else the packaged one)."""
    return locate("CHUNKWISE_ASL", "stepfunctions/pipeline.asl.json")


def function_arn(logical_id: str, *, region: str = REGION, account: str = ACCOUNT) -> str:
    """The ARN a local run gives the function with this template logical id."""
    return f"arn:aws:lambda:{region}:{account}:function:{logical_id}"


def substitutions(*, region: str = REGION, account: str = ACCOUNT) -> dict[str, str]:
    """The ``DefinitionSubstitutions`` of a local run: ``<LogicalId>Arn`` → the function ARN."""
    return {f"{name}Arn": function_arn(name, region=region, account=account)
            for name in FUNCTIONS}


def render_definition(
    subs: Mapping[str, str] | None = None, *, path: str | os.PathLike[str] | None = None
) -> str:
    """Fill the ``${...}`` placeholders of the definition, as CloudFormation does.

    Args:
        subs: placeholder name → text; default :func:`substitutions`.
        path: the definition; default :func:`asl_path`.

    Returns:
        The definition as JSON text (checked to parse).

    Raises:
        KeyError: a placeholder has no substitution.

    """
    subs = substitutions() if subs is None else subs
    text = Path(path or asl_path()).read_text(encoding="utf-8")
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in subs})
    if missing:
        raise KeyError(f"no substitution for {', '.join(missing)}")
    rendered = _PLACEHOLDER.sub(lambda m: subs[m.group(1)], text)
    json.loads(rendered)
    return rendered


def error_exit_code(error_type: str | None) -> int:
    """Exit code for a failed execution's error name: 65 permanent, 74 transient, else 70."""
    if error_type in PERMANENT_ERRORS:
        return 65
    if error_type in TRANSIENT_ERRORS or (error_type or "").startswith(("Lambda.", "DynamoDB.")):
        return 74
    return 70
