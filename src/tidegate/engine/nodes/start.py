"""The start node: declares the run's inputs, which are checked before the run begins."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec

from ...dsl.spec import NodeSpec
from ...errors import RequestError
from .base import Compiler, Node, NodeContext, NodeResult

__all__ = ["NODES", "StartNode"]

_TYPES = ("text-input", "paragraph", "select", "number", "checkbox", "json_object", "file", "file-list")


class InputVariable(msgspec.Struct, kw_only=True):
    variable: str
    label: str = ""
    type: str = "text-input"
    required: bool = False
    max_length: int | None = None
    options: list[str] = msgspec.field(default_factory=list)
    default: Any = None


class _StartData(msgspec.Struct):
    variables: list[InputVariable] = msgspec.field(default_factory=list)


class StartNode(Node):
    type = "start"

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _StartData) or _StartData()
        for index, var in enumerate(data.variables):
            if var.type not in _TYPES:
                compiler.problem(
                    spec, f"Expected an input type ({', '.join(_TYPES)}), got `{var.type}`", f"variables[{index}].type"
                )
        self.variables = data.variables

    def prepare_inputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Typed inputs for the run, as Dify checks them (400 ``invalid_param`` when wrong)."""
        if not isinstance(inputs, Mapping):
            raise RequestError("inputs must be an object", code="invalid_param", param="inputs")
        out: dict[str, Any] = {}
        for var in self.variables:
            value = inputs.get(var.variable)
            if value is None or value == "":
                if var.default not in (None, ""):
                    value = var.default
                elif var.required:
                    raise RequestError(
                        f"{var.label or var.variable} is required in input form",
                        code="invalid_param",
                        param=f"inputs.{var.variable}",
                    )
                else:
                    out[var.variable] = None if var.type not in ("file-list",) else []
                    continue
            out[var.variable] = _check(var, value)
        return out

    async def run(self, ctx: NodeContext) -> NodeResult:
        values = ctx.pool.scope(self.id)
        return NodeResult(values, inputs=values)


def _check(var: InputVariable, value: Any) -> Any:
    name = var.label or var.variable

    def bad(expected: str) -> RequestError:
        return RequestError(f"{name} in input form must be {expected}", code="invalid_param",
                            param=f"inputs.{var.variable}")  # fmt: skip

    if var.type in ("text-input", "paragraph", "select"):
        if not isinstance(value, str):
            raise bad("a string")
        if var.type == "select" and var.options and value not in var.options:
            raise bad("one of the following: " + ", ".join(var.options))
        if var.max_length and len(value) > var.max_length:
            raise bad(f"less than {var.max_length} characters")
        return value
    if var.type == "number":
        if isinstance(value, bool):
            raise bad("a valid number")
        if isinstance(value, int | float):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad("a valid number") from None
        if math.isnan(number) or math.isinf(number):
            raise bad("a valid number")
        return int(number) if number.is_integer() and "." not in str(value) else number
    if var.type == "checkbox":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise bad("a boolean")
    if var.type == "json_object":
        if isinstance(value, str):
            try:
                value = msgspec.json.decode(value)
            except msgspec.DecodeError:
                raise bad("a JSON object") from None
        if not isinstance(value, dict):
            raise bad("a JSON object")
        return value
    if var.type == "file":
        if not isinstance(value, dict):
            raise bad("a file object")
        return value
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise bad("a list of file objects")
    return value


NODES = (StartNode,)
