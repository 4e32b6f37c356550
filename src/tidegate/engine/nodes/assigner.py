"""assigner: write conversation (and loop) variables, in both of Dify's versions.

v1 writes one variable from another (``over-write``, ``append``, ``clear``); v2 applies a list of
operations, each from a variable or a constant, including arithmetic and list trimming. A target
must already exist (declared conversation variable or loop variable): the pool writes it where it
lives, so a write inside an iteration or loop body is seen by the rest of the run.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import msgspec

from ...dsl.spec import NodeSpec
from ..pool import MISSING, VariablePool
from .base import Compiler, Node, NodeContext, NodeFailure, NodeResult

__all__ = ["NODES", "AssignerNode"]

_OPERATIONS = ("over-write", "clear", "append", "extend", "set", "+=", "-=", "*=", "/=", "remove-first", "remove-last")
_NO_INPUT = frozenset({"clear", "remove-first", "remove-last"})


class _Item(msgspec.Struct):
    variable_selector: list[str] = msgspec.field(default_factory=list)
    input_type: Literal["variable", "constant"] = "variable"
    operation: str = "over-write"
    value: Any = None


class _Data(msgspec.Struct):
    version: str = "1"
    items: list[_Item] | None = None
    assigned_variable_selector: list[str] = msgspec.field(default_factory=list)
    write_mode: Literal["over-write", "append", "clear"] = "over-write"
    input_variable_selector: list[str] = msgspec.field(default_factory=list)


class AssignerNode(Node):
    type = "assigner"

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _Data) or _Data()
        if data.items is None and str(data.version) != "2":
            self.items = [
                _Item(
                    variable_selector=data.assigned_variable_selector,
                    input_type="variable",
                    operation=data.write_mode,
                    value=data.input_variable_selector,
                )
            ]
        else:
            self.items = list(data.items or [])
        self.targets = frozenset(tuple(item.variable_selector[:2]) for item in self.items)
        for index, item in enumerate(self.items):
            if item.operation not in _OPERATIONS:
                compiler.problem(
                    spec, f"Expected an operation ({', '.join(_OPERATIONS)}), got `{item.operation}`",
                    f"items[{index}].operation",
                )  # fmt: skip
            if len(item.variable_selector) < 2:
                compiler.problem(spec, "Expected a variable to assign, got none", f"items[{index}].variable_selector")

    async def run(self, ctx: NodeContext) -> NodeResult:
        pool = ctx.pool
        updated: list[dict[str, Any]] = []
        for item in self.items:
            selector = tuple(item.variable_selector)
            current = pool.get(selector)
            if current is MISSING:
                raise NodeFailure(f"variable {'.'.join(selector)} not found", error_type="VariableNotFound")
            value = _input(pool, item)
            if value is _SKIP:
                continue
            new = _apply(item.operation, current, value, selector)
            pool.assign(selector, new)
            updated.append({"name": selector[-1], "selector": list(selector), "value": new})
        return NodeResult({}, process_data={"updated_variables": updated})


_SKIP = object()


def _input(pool: VariablePool, item: _Item) -> Any:
    if item.operation in _NO_INPUT:
        return None
    if item.input_type == "variable":
        if not isinstance(item.value, list) or len(item.value) < 2:
            raise NodeFailure("the assigner's input variable is not set", error_type="InvalidInput")
        value = pool.get(tuple(item.value))
        if value is MISSING:
            raise NodeFailure(f"variable {'.'.join(item.value)} not found", error_type="VariableNotFound")
        return _SKIP if value is None else value
    return item.value


def _apply(operation: str, current: Any, value: Any, selector: tuple[str, ...]) -> Any:
    name = ".".join(selector)

    def bad(message: str) -> NodeFailure:
        return NodeFailure(f"cannot {operation} {name}: {message}", error_type="InvalidOperation")

    if operation in ("over-write", "set"):
        if isinstance(current, dict) and isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad("expected a JSON object") from None
        if isinstance(current, int | float) and not isinstance(current, bool) and isinstance(value, str):
            try:
                return float(value) if "." in value else int(value)
            except ValueError:
                raise bad("expected a number") from None
        return value
    if operation == "clear":
        return _zero(current)
    if operation in ("append", "extend", "remove-first", "remove-last") and not isinstance(current, list):
        raise bad("the variable is not an array")
    if operation == "append":
        return [*current, value]
    if operation == "extend":
        if not isinstance(value, list):
            raise bad("expected an array to extend with")
        return [*current, *value]
    if operation == "remove-first":
        return current[1:]
    if operation == "remove-last":
        return current[:-1]
    if not isinstance(current, int | float) or isinstance(current, bool):
        raise bad("the variable is not a number")
    try:
        operand = float(value) if isinstance(value, str) else value
    except ValueError:
        raise bad("expected a number") from None
    if not isinstance(operand, int | float) or isinstance(operand, bool):
        raise bad("expected a number")
    if operation == "/=" and operand == 0:
        raise bad("division by zero")
    result = {"+=": current + operand, "-=": current - operand, "*=": current * operand, "/=": current / operand}[operation]
    return int(result) if isinstance(result, float) and result.is_integer() and isinstance(current, int) and operation != "/=" else result


def _zero(current: Any) -> Any:
    if isinstance(current, bool):
        return False
    if isinstance(current, int | float):
        return 0
    if isinstance(current, list):
        return []
    if isinstance(current, dict):
        return {}
    return ""


NODES = (AssignerNode,)
