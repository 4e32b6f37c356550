"""code: run the DSL's Python 3 or JavaScript ``main`` in the code sandbox and type its result.

The code is parsed at load (a syntax error is a load-time problem with its line), JavaScript is
refused at load when no ``node`` binary exists, and the result must carry every declared output
with its declared type — as Dify checks it.
"""

from __future__ import annotations

import shutil
from typing import Any, Literal

import msgspec

from ...dsl.spec import NodeSpec
from .base import Compiler, Node, NodeContext, NodeFailure, NodeResult

__all__ = ["NODES", "CodeNode", "check_output"]

_TYPES = ("string", "number", "boolean", "object", "array[string]", "array[number]", "array[object]",
          "array[boolean]", "array[any]", "any")  # fmt: skip


class _Var(msgspec.Struct):
    variable: str
    value_selector: list[str] = msgspec.field(default_factory=list)


class _Output(msgspec.Struct):
    type: str = "string"
    children: dict[str, _Output] | None = None


class _Data(msgspec.Struct):
    code: str = ""
    code_language: Literal["python3", "javascript"] = "python3"
    variables: list[_Var] = msgspec.field(default_factory=list)
    outputs: dict[str, _Output] = msgspec.field(default_factory=dict)


class CodeNode(Node):
    type = "code"

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _Data) or _Data()
        self.language = data.code_language
        self.code = data.code
        self.variables = [(v.variable, tuple(v.value_selector)) for v in data.variables]
        self.outputs = data.outputs
        for name, output in data.outputs.items():
            if output.type.lower() not in _TYPES:
                compiler.problem(spec, f"Expected an output type ({', '.join(_TYPES)}), got `{output.type}`",
                                 f"outputs.{name}.type")  # fmt: skip
        if self.language == "python3":
            try:
                compile(self.code, "<code>", "exec")
            except SyntaxError as exc:
                compiler.problem(spec, f"Expected valid Python 3 code, got a syntax error at line {exc.lineno}: {exc.msg}", "code")
        elif shutil.which("node") is None:
            compiler.problem(
                spec,
                "Expected a `node` binary on PATH to run JavaScript code nodes, got none"
                " (install Node.js or rewrite the node in Python 3)",
                "code_language",
            )

    async def run(self, ctx: NodeContext) -> NodeResult:
        sandbox = ctx.services.code
        if sandbox is None:
            raise NodeFailure("code nodes need the code sandbox, which is not configured", error_type="SandboxError")
        pool = ctx.pool
        inputs = {name: pool.value(sel) if len(sel) >= 2 else None for name, sel in self.variables}
        limits = ctx.services.code_limits
        if self.language == "python3":
            result = await sandbox.run_python(self.code, inputs, limits=limits)
        else:
            result = await sandbox.run_javascript(self.code, inputs, limits=limits)
        outputs = {name: check_output(name, result.get(name, _ABSENT), spec) for name, spec in self.outputs.items()}
        return NodeResult(outputs, inputs=inputs)


_ABSENT = object()


def check_output(name: str, value: Any, spec: _Output) -> Any:
    kind = spec.type.lower()
    if value is _ABSENT:
        raise NodeFailure(f"output `{name}` is missing from the result of main()", error_type="OutputValidationError")
    if value is None or kind in ("any", "array[any]"):
        return value

    def bad(expected: str) -> NodeFailure:
        return NodeFailure(f"output `{name}` must be {expected}, got {type(value).__name__}",
                           error_type="OutputValidationError")  # fmt: skip

    if kind == "string":
        if not isinstance(value, str):
            raise bad("a string")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise bad("a boolean")
    elif kind == "object":
        if not isinstance(value, dict):
            raise bad("an object")
        for child, child_spec in (spec.children or {}).items():
            check_output(f"{name}.{child}", value.get(child, _ABSENT), child_spec)
    elif kind.startswith("array["):
        if not isinstance(value, list):
            raise bad("an array")
        element = _Output(type=kind[6:-1])
        for index, item in enumerate(value):
            check_output(f"{name}[{index}]", item, element)
    return value


NODES = (CodeNode,)
