"""Contract expressions: field references, literals and compute function calls."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Union

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.contract.base import (
    _EXPR_TAG,
    NonEmptyStr,
    _Model,
    _parse_arrow_type,
    _short,
    _to_python,
    _value_type,
)
from engine.io.uri import one_line

# ---------------------------------------------------------------------------------------------
# Expressions
# ---------------------------------------------------------------------------------------------


class FieldExpr(_Model):
    """``{field: name}``: a column's values; a list is a path into nested structs."""

    field: NonEmptyStr | Annotated[list[NonEmptyStr], Field(min_length=1)]
    """Column name, or ``[struct_column, child, ...]`` for a nested field."""

    @property
    def path(self) -> tuple[str, ...]:
        """The field as a path: ``("amount",)`` or ``("context", "page")``."""
        return (self.field,) if isinstance(self.field, str) else tuple(self.field)


class LiteralExpr(_Model):
    """``{literal: value}``: a constant, typed: ``{literal: "2025-01-01", type: date32}``."""

    literal: Any
    """The value: a number, string, boolean or null."""
    type: str | None = None
    """Arrow type name for the value; unset lets Arrow infer it (int64, double, string, bool)."""

    @property
    def arrow_type(self) -> pa.DataType | None:
        """The parsed :attr:`type`, or ``None``."""
        return None if self.type is None else _parse_arrow_type(self.type)

    @property
    def scalar(self) -> pa.Scalar:
        """The literal as an Arrow scalar."""
        arrow_type = self.arrow_type
        if arrow_type is None:
            return pa.scalar(self.literal)
        if self.literal is None:
            return pa.scalar(None, type=arrow_type)
        return pa.scalar(_to_python(self.literal, arrow_type), type=_value_type(arrow_type))

    @model_validator(mode="after")
    def _check_value(self) -> LiteralExpr:
        if self.type is not None:
            _parse_arrow_type(self.type)
        try:
            self.scalar  # noqa: B018 - building the scalar is the check
        except (pa.ArrowException, TypeError, OverflowError) as exc:
            raise ValueError(f"literal {self.literal!r}: {one_line(exc)}") from None
        return self


#: pyarrow.compute function kinds an expression may call: element-wise functions, and ``cast``.
#: Vector and aggregate functions would depend on how the file is cut into batches.
_CALLABLE_KINDS = ("scalar",)


class CallExpr(_Model):
    """``{call: function, args: [...], options: {...}}``: a ``pyarrow.compute`` function."""

    call: NonEmptyStr
    """Name of a ``pyarrow.compute`` scalar function (``multiply``, ``equal``, ``strftime``,
    ``if_else``...), or ``cast``."""
    args: list[Expr] = []
    """The arguments, each an expression."""
    options: dict[str, Any] | None = None
    """Keyword arguments of the function's options class, e.g. ``{format: "%Y-%m-%d"}`` for
    ``strftime`` (``StrftimeOptions``). A ``value_set`` list becomes an Arrow array and a
    ``target_type`` name an Arrow type."""

    def function_options(self) -> pc.FunctionOptions | None:
        """The options object to pass to the function, or ``None`` when there are none."""
        if self.options is None:
            return None
        options_class = getattr(pc.get_function(self.call), "_doc", None)
        class_name = getattr(options_class, "options_class", "")
        kwargs: dict[str, Any] = {}
        for key, value in self.options.items():
            if key == "value_set" and isinstance(value, list):
                value = pa.array(value)
            elif key == "target_type" and isinstance(value, str):
                value = _parse_arrow_type(value)
            kwargs[key] = value
        return getattr(pc, class_name)(**kwargs)

    @model_validator(mode="after")
    def _check_call(self) -> CallExpr:
        try:
            function = pc.get_function(self.call)
        except (pa.ArrowException, KeyError):
            near = difflib.get_close_matches(self.call, pc.list_functions(), n=3)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise ValueError(f"unknown pyarrow.compute function {self.call!r}{hint}") from None
        if function.kind not in _CALLABLE_KINDS and self.call != "cast":
            raise ValueError(
                f"{self.call!r} is a {function.kind} function; expressions call scalar "
                "(element-wise) functions only"
            )
        doc = getattr(function, "_doc", None)
        arity = function.arity
        if isinstance(arity, int) and len(self.args) != arity:
            names = ", ".join(getattr(doc, "arg_names", []) or [])
            raise ValueError(
                f"{self.call!r} takes {arity} argument(s) ({names}), got {len(self.args)}"
            )
        if not isinstance(arity, int) and not self.args:
            raise ValueError(f"{self.call!r} takes one or more arguments, got none")
        class_name = getattr(doc, "options_class", "")
        if self.options is not None and not class_name:
            raise ValueError(f"{self.call!r} takes no options")
        if self.call == "cast" and not (self.options or {}).get("target_type"):
            raise ValueError("cast needs options: {target_type: <Arrow type name>}")
        if self.options is None and getattr(doc, "options_required", False):
            raise ValueError(f"{self.call!r} needs options ({class_name})")
        try:
            self.function_options()
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise ValueError(f"options of {self.call!r} ({class_name}): {one_line(exc)}") from None
        return self


_EXPR_KEYS = ("field", "literal", "call")


def _expr_shape(value: Any) -> Any:
    """Check an expression is a mapping with exactly one of ``field``/``literal``/``call``."""
    if isinstance(value, FieldExpr | LiteralExpr | CallExpr):
        return value
    if isinstance(value, dict):
        kinds = [k for k in _EXPR_KEYS if k in value]
        if len(kinds) == 1:
            return value
        if len(kinds) > 1:
            raise PydanticCustomError(
                "expression", "an expression has one of field, literal, call; got {got}",
                {"got": ", ".join(kinds)},
            )
    raise PydanticCustomError(
        "expression",
        "an expression is {field: name}, {literal: value} or "
        "{call: function, args: [...]}; got {got}",
        {"got": _short(value)},
    )


def _expr_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in _EXPR_KEYS:
            if key in value:
                return _EXPR_TAG + key
        return None
    return _EXPR_TAG + {FieldExpr: "field", LiteralExpr: "literal", CallExpr: "call"}.get(
        type(value), "?"
    )


#: An expression tree: ``{field: name}``, ``{literal: value}`` or ``{call: fn, args: [...]}``.
Expr = Annotated[
    Union[  # noqa: UP007 - a tagged union needs the Union form
        Annotated[FieldExpr, Tag(_EXPR_TAG + "field")],
        Annotated[LiteralExpr, Tag(_EXPR_TAG + "literal")],
        Annotated[CallExpr, Tag(_EXPR_TAG + "call")],
    ],
    Discriminator(_expr_kind),
    BeforeValidator(_expr_shape),
]
CallExpr.model_rebuild()
