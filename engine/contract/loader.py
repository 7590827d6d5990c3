"""Loading a contract: YAML with line numbers, and pydantic errors mapped to lines."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
)
from pydantic import ValidationError as PydanticValidationError

from engine.contract.base import (
    _EXPR_TAG,
    _STEP_TAG,
    Loc,
    _dotted,
    _is_tag,
    _Model,
    _short,
)
from engine.contract.expressions import CallExpr, FieldExpr, LiteralExpr
from engine.contract.model import Contract
from engine.contract.steps import _STEP_MODELS
from engine.errors import ContractError
from engine.io.uri import one_line

#: A contract larger than this is not a contract (a data file passed by mistake).
MAX_CONTRACT_BYTES = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Loading: YAML with line numbers
# ---------------------------------------------------------------------------------------------


class _ContractLoader(yaml.SafeLoader):
    """Safe YAML with YAML 1.2 scalars: ``on``/``yes``/``no`` are strings, dates stay strings."""


_DROPPED_TAGS = {
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}
_ContractLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ContractLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_ContractLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)
_ContractLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


@dataclass(order=True)
class _Problem:
    line: int
    where: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.where + ': ' if self.where else ''}{self.message}"


def load_contract(source: str | os.PathLike[str]) -> Contract:
    """Load and validate a contract.

    Args:
        source: a local path or ``s3://`` URI of a YAML file, or the YAML text itself (any string
            holding a newline).

    Returns:
        The validated contract, with :attr:`Contract.source_path` set for a file.

    Raises:
        ContractError: the contract is invalid; the message lists every problem found, one per
            line, each with its line number and key path.
        InputNotFoundError: the file does not exist.

    """
    if isinstance(source, str) and "\n" in source:
        uri, text = "<string>", source
        path = None
    else:
        uri = path = os.fspath(source)
        text = _read_text(uri)
    contract = _parse(text, uri)
    contract._source_path = path
    return contract


def _read_text(uri: str) -> str:
    from engine.io import open_input

    with open_input(uri) as stream:
        data = stream.read(MAX_CONTRACT_BYTES + 1)
    if len(data) > MAX_CONTRACT_BYTES:
        raise ContractError(
            f"larger than {MAX_CONTRACT_BYTES // 1024} KiB: not a contract", uri=uri
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ContractError(f"not UTF-8 text (byte {exc.start})", uri=uri) from None


def _parse(text: str, uri: str) -> Contract:
    loader = _ContractLoader(text)
    problems: list[_Problem] = []
    try:
        root = loader.get_single_node()
        if root is not None:  # before constructing, which folds merge keys (<<) into mappings
            problems = _duplicate_keys(root)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ContractError(_yaml_message(exc), uri=uri) from None
    except yaml.YAMLError as exc:
        raise ContractError(f"invalid YAML: {one_line(exc)}", uri=uri) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict) or root is None:
        got = "an empty document" if data is None else f"a {type(data).__name__}"
        line = root.start_mark.line + 1 if root is not None else 1
        raise ContractError(
            f"line {line}: a contract is a YAML mapping (dataset:, columns:, ...), got {got}",
            uri=uri,
        )

    contract: Contract | None = None
    try:
        contract = Contract.model_validate(data, context={"defer_references": True})
    except PydanticValidationError as exc:
        problems.extend(_from_pydantic(exc, root))
    except RecursionError:
        raise ContractError(
            "the contract refers to itself (a YAML alias inside its own anchor) or nests too "
            "deeply", uri=uri,
        ) from None
    if contract is not None:
        problems.extend(
            _Problem(_line_of(root, loc), _dotted(loc), msg) for loc, msg in contract.problems()
        )
    if problems:
        problems.sort(key=lambda p: p.line)
        raise ContractError("\n".join(map(str, problems)), uri=uri)
    assert contract is not None
    return contract


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    """``line N: invalid YAML: ...`` from a PyYAML error and its marks."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    what = []
    if exc.context:
        started = exc.context_mark.line + 1 if exc.context_mark is not None else None
        what.append(exc.context + (f" (line {started})" if started and started != line else ""))
    if exc.problem:
        what.append(exc.problem)
    return f"line {line}: invalid YAML: {': '.join(what) or one_line(exc)}"


def _duplicate_keys(root: yaml.Node) -> list[_Problem]:
    """A problem for each key written twice in one mapping (YAML would keep the last)."""
    out: list[_Problem] = []
    visited: set[int] = set()  # an alias is the anchored node again, possibly an ancestor
    pending: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while pending:
        node, loc = pending.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        out.append(_Problem(key.start_mark.line + 1, _dotted((*loc, key.value)),
                                            "duplicate key (the last one would silently win)"))
                    seen.add(key.value)
                    pending.append((value, (*loc, key.value)))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend((item, (*loc, i)) for i, item in enumerate(node.value))
    return out



def _line_of(root: yaml.Node, loc: Loc) -> int:
    """1-based line of the key (or list item) ``loc`` names.

    When ``loc`` does not exist in the YAML (a missing key), the closest existing parent's line.
    """
    node = root
    line = root.start_mark.line
    for part in loc:
        if _is_tag(part):
            continue
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    node, line = value, key.start_mark.line
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1


#: Error types raised by this module, whose messages already show the offending value.
_OWN_ERRORS = ("size", "step", "expression")


def _from_pydantic(exc: PydanticValidationError, root: yaml.Node) -> list[_Problem]:
    errors = exc.errors(include_url=False)
    # A misspelt key also makes the key it stands for "missing": report only the misspelling.
    misspelt = {
        (tuple(e["loc"][:-1]), near)
        for e in errors
        if e["type"] == "extra_forbidden"
        for near in difflib.get_close_matches(
            str(e["loc"][-1]), _allowed_keys(tuple(e["loc"][:-1])), n=1
        )
    }
    out = []
    for error in errors:
        loc: Loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "missing" and (loc[:-1], str(loc[-1])) in misspelt:
            continue
        if kind == "value_error":
            message = str(error["ctx"]["error"])
        elif kind == "extra_forbidden":
            message = _unknown_key_message(loc)
        elif kind == "missing":
            message = "missing required key"
        else:
            message = error["msg"]
            value = error.get("input")
            if kind not in _OWN_ERRORS and (
                isinstance(value, str | int | float | bool) or value is None
            ):
                message += f" (got {_short(value)})"
        out.append(_Problem(_line_of(root, loc), _dotted(loc), message))
    return out


def _unknown_key_message(loc: Loc) -> str:
    key = str(loc[-1])
    allowed = _allowed_keys(loc[:-1])
    if not allowed:
        return f"unknown key {key!r}"
    near = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown key {key!r}{hint}; allowed here: {', '.join(allowed)}"


def _allowed_keys(loc: Loc) -> list[str]:
    """The keys the model at ``loc`` accepts (aliases as written in YAML)."""
    model = _model_at(loc)
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


_TAGGED_MODELS: dict[str, type[_Model]] = {
    **{_STEP_TAG + name: model for name, model in _STEP_MODELS.items()},
    _EXPR_TAG + "field": FieldExpr,
    _EXPR_TAG + "literal": LiteralExpr,
    _EXPR_TAG + "call": CallExpr,
}


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or type(annotation).__name__ == "UnionType":
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _model_at(loc: Loc) -> type[BaseModel] | None:
    annotation: Any = Contract
    for part in loc:
        if _is_tag(part):
            annotation = _TAGGED_MODELS.get(str(part))
            continue
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found = [
                info for name, info in annotation.model_fields.items()
                if (info.alias or name) == part
            ]
            if not found:
                return None
            annotation = found[0].annotation
        elif get_origin(annotation) is list and isinstance(part, int):
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
