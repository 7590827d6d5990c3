"""moto's Step Functions service integration, with the field names Step Functions uses.

A ``Task`` with ``"Resource": "arn:aws:states:::states:startExecution.sync:2"`` names its
parameters as the Step Functions integration documents them (``StateMachineArn``, ``Input``,
``Name``) and reads the child execution's description the same way (``$.Output``,
``$.ExecutionArn``). boto3's Step Functions API names the same fields ``stateMachineArn`` and
``output``. moto 5.2's ASL interpreter (taken from LocalStack) has a hook for each direction,
``_normalise_parameters`` and ``_normalise_response``, but both are no-ops in moto: the call fails
in botocore's serializer (``KeyError: 'StateMachineArn'``), and the ``.sync:2`` poller looks
for ``ExecutionArn`` in an answer that has ``executionArn``. The backfill state machine
(``stepfunctions/backfill.asl.json``) starts one child execution per file this way.

:func:`patch` fills the two hooks of the Step Functions integration from botocore's own service
model (the operation's input and output shapes), as LocalStack does: a parameter goes to the
member of the input shape with the same name in any case; a response's structure members get
their first letter in upper case, recursively through structures and lists, and nothing else
(``Output``, which ``.sync:2`` has already parsed into JSON, is a string member: its content is
left as the child returned it). Everything else in moto's integration (starting the execution,
polling it every 0.5 s, failing the task with ``States.TaskFailed`` when the child fails) is
moto's own.

:func:`patch` also mends a race in moto's ``ListMapRuns`` and ``DescribeMapRun``, which the
backfill polls for progress: moto looks for Map Runs in the execution's worker (in every
execution's, for ``DescribeMapRun``), and an execution that has been created but not started yet
has none, or a worker whose environment is not made yet (``AttributeError``, an HTTP 500 from
the server). While a Distributed Map starts its
children that window is open often; the patched methods take an execution with no worker yet for
what it is, one with no Map Run.

Example:
    >>> import botocore.session
    >>> model = botocore.session.get_session().get_service_model("stepfunctions")
    >>> params = {"StateMachineArn": "arn", "Input": "{}", "Name": "n"}
    >>> _rename_parameters(params, model.operation_model("StartExecution").input_shape)
    >>> sorted(params)
    ['input', 'name', 'stateMachineArn']
    >>> answer = {"executionArn": "a", "output": {"route": "skip"}, "status": "SUCCEEDED"}
    >>> _sfn_case(answer, model.operation_model("DescribeExecution").output_shape)
    >>> dict(sorted(answer.items()))
    {'ExecutionArn': 'a', 'Output': {'route': 'skip'}, 'Status': 'SUCCEEDED'}
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

__all__ = ["BACKEND_MODULE", "INTEGRATION_MODULE", "patch"]

#: moto's Step Functions backend (the one that executes state machines).
BACKEND_MODULE = "moto.stepfunctions.parser.models"

#: The module of moto's interpreter that holds the Step Functions service integration.
INTEGRATION_MODULE = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
    "state_task_service_sfn"
)


@functools.cache
def _service_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("stepfunctions")


def _operation(action: str) -> Any:
    """The botocore operation model of a snake_case action (``start_execution``)."""
    return _service_model().operation_model(
        "".join(part.capitalize() for part in action.split("_")))


def _rename_parameters(parameters: dict[str, Any], shape: Any) -> None:
    """Rename each parameter to the input shape's member of the same name in any case."""
    members = {name.lower(): name for name in shape.members}
    for key in list(parameters):
        name = members.get(key.lower())
        if name is not None and name != key:
            parameters[name] = parameters.pop(key)


def _sfn_case(value: Any, shape: Any) -> None:
    """Give the structure members in ``value`` the upper-case first letter Step Functions uses."""
    from botocore.model import ListShape, StructureShape

    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for member, member_shape in shape.members.items():
            if member in value:
                inner = value.pop(member)
                _sfn_case(inner, member_shape)
                value[member[:1].upper() + member[1:]] = inner
    elif isinstance(shape, ListShape) and isinstance(value, list):
        for item in value:
            _sfn_case(item, shape.member)


def _environment(execution: Any) -> Any:
    """The execution's interpreter environment; ``None`` before its worker has one."""
    return getattr(execution.exec_worker, "env", None)


def patch(stack: contextlib.ExitStack) -> None:
    """Fill moto's two hooks of the Step Functions integration; ``stack`` puts them back."""
    import importlib

    cls = importlib.import_module(INTEGRATION_MODULE).StateTaskServiceSfn
    own_parameters = cls._normalise_parameters
    own_response = cls._normalise_response

    def normalise_parameters(self: Any, parameters: dict[str, Any],
                             boto_service_name: str | None = None,
                             service_action_name: str | None = None) -> None:
        # moto's own turns an object Input into the JSON text the API takes
        own_parameters(self, parameters, boto_service_name, service_action_name)
        action = service_action_name or self._get_boto_service_action()
        _rename_parameters(parameters, _operation(action).input_shape)

    def normalise_response(self: Any, response: Any, boto_service_name: str | None = None,
                           service_action_name: str | None = None) -> None:
        action = service_action_name or self._get_boto_service_action()
        _sfn_case(response, _operation(action).output_shape)

    cls._normalise_parameters = normalise_parameters
    cls._normalise_response = normalise_response
    stack.callback(setattr, cls, "_normalise_parameters", own_parameters)
    stack.callback(setattr, cls, "_normalise_response", own_response)

    models = importlib.import_module(BACKEND_MODULE)
    backend = models.StepFunctionsParserBackend
    own_describe = backend.describe_map_run

    def describe_map_run(self: Any, map_run_arn: str) -> dict[str, Any]:
        for execution in self._get_executions():
            env = _environment(execution)
            record = env.map_run_record_pool_manager.get(map_run_arn) if env else None
            if record is not None:
                return dict(record.describe())
        raise models.ResourceNotFound()

    own_list = backend.list_map_runs

    def list_map_runs(self: Any, execution_arn: str) -> dict[str, Any]:
        if _environment(self.describe_execution(execution_arn=execution_arn)) is None:
            return {"mapRuns": []}
        return dict(own_list(self, execution_arn))

    backend.describe_map_run = describe_map_run
    backend.list_map_runs = list_map_runs
    stack.callback(setattr, backend, "describe_map_run", own_describe)
    stack.callback(setattr, backend, "list_map_runs", own_list)
