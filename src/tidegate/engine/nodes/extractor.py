"""parameter-extractor: have the model fill typed parameters from text.

``function_call`` mode offers one function whose JSON schema is the parameter list and forces the
model to call it; ``prompt`` mode asks for a JSON object instead. Either way the values are coerced
to their declared types and checked (required, options); a failure is reported in ``__is_success``
/ ``__reason`` rather than failing the node, as Dify does.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import msgspec

from ...dsl.spec import NodeSpec
from ..template import Template, to_text
from .base import Compiler, Node, NodeContext, NodeFailure, NodeResult
from .llm import (
    MemoryConfig,
    ModelCall,
    ModelConfig,
    history_messages,
    message_of,
    parse_json,
    usage_of,
)

__all__ = ["NODES", "ParameterExtractorNode"]

FUNCTION = "extract_parameters"
_TYPES = {"string", "number", "boolean", "bool", "select", "array[string]", "array[number]", "array[object]",
          "array[boolean]"}  # fmt: skip


class _Parameter(msgspec.Struct):
    name: str
    type: str = "string"
    description: str = ""
    required: bool = False
    options: list[str] | None = None


class _Data(msgspec.Struct):
    model: ModelConfig
    query: list[str] = msgspec.field(default_factory=list)
    parameters: list[_Parameter] = msgspec.field(default_factory=list)
    instruction: str | None = None
    reasoning_mode: Literal["function_call", "prompt"] | None = "function_call"
    memory: MemoryConfig | None = None


class ParameterExtractorNode(Node):
    type = "parameter-extractor"

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _Data)
        if data is None:
            return
        for index, param in enumerate(data.parameters):
            if param.type not in _TYPES:
                compiler.problem(spec, f"Expected a parameter type ({', '.join(sorted(_TYPES))}), got `{param.type}`",
                                 f"parameters[{index}].type")  # fmt: skip
            if param.name in ("__reason", "__is_success", "__usage"):
                compiler.problem(spec, f"Expected a parameter name, got the reserved `{param.name}`", f"parameters[{index}].name")
        self.model = ModelCall(data.model)
        self.query = tuple(data.query)
        self.parameters = data.parameters
        self.instruction = Template(data.instruction or "")
        self.mode = data.reasoning_mode or "function_call"
        self.memory = data.memory
        self.schema = _schema(data.parameters)

    async def run(self, ctx: NodeContext) -> NodeResult:
        query = to_text(ctx.pool.value(self.query)) if len(self.query) >= 2 else ""
        instruction = self.instruction.render(ctx.pool)
        system = (
            "You extract structured parameters from the user's text. Only use information present in the"
            " text; leave out parameters you cannot find."
            + (f"\nInstructions: {instruction}" if instruction else "")
        )
        extra: dict[str, Any] = {}
        if self.mode == "function_call":
            extra["tools"] = [{"type": "function", "function": {
                "name": FUNCTION, "description": "Extract the parameters from the text.", "parameters": self.schema}}]
            extra["tool_choice"] = {"type": "function", "function": {"name": FUNCTION}}
        else:
            system += (
                "\nAnswer with only a JSON object matching this JSON schema:\n"
                + json.dumps(self.schema, ensure_ascii=False)
            )
        messages = [{"role": "system", "content": system}]
        messages.extend(history_messages(ctx.run.history, self.memory))
        messages.append({"role": "user", "content": query})
        response = await self.model.call(ctx, messages, **extra)
        message, _ = message_of(response)
        usage = usage_of(response)
        raw, reason = self._raw(message)
        values, problem = self._coerce(raw)
        reason = reason or problem
        outputs: dict[str, Any] = {**values, "__is_success": 0 if reason else 1, "__reason": reason, "__usage": usage}
        return NodeResult(outputs, inputs={"query": query}, tokens=usage["total_tokens"], usage=usage,
                          process_data={"prompts": messages, "mode": self.mode, "raw": raw})  # fmt: skip

    def _raw(self, message: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            try:
                parsed = json.loads(function.get("arguments") or "{}")
            except ValueError:
                return {}, "the model's function arguments are not valid JSON"
            return (parsed, None) if isinstance(parsed, dict) else ({}, "the model's arguments are not an object")
        try:
            parsed = parse_json(message.get("content") or "")
        except NodeFailure as exc:
            return {}, str(exc)
        return (parsed, None) if isinstance(parsed, dict) else ({}, "the model's answer is not a JSON object")

    def _coerce(self, raw: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        values: dict[str, Any] = {}
        problem: str | None = None
        for param in self.parameters:
            value = raw.get(param.name)
            try:
                value = _convert(param, value)
            except (TypeError, ValueError) as exc:
                problem = problem or f"parameter `{param.name}`: {exc}"
                value = None
            if value is None and param.required:
                problem = problem or f"required parameter `{param.name}` was not found"
            values[param.name] = value if value is not None else _empty(param.type)
        return values, problem


def _schema(parameters: list[_Parameter]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for param in parameters:
        kind = {"bool": "boolean", "select": "string"}.get(param.type, param.type)
        prop: dict[str, Any] = {"description": param.description}
        if kind.startswith("array["):
            prop["type"] = "array"
            prop["items"] = {"type": kind[6:-1]}
        else:
            prop["type"] = kind
        if param.options:
            prop["enum"] = list(param.options)
        properties[param.name] = prop
    return {"type": "object", "properties": properties, "required": [p.name for p in parameters if p.required]}


def _convert(param: _Parameter, value: Any) -> Any:
    if value is None:
        return None
    kind = param.type
    if kind in ("string", "select"):
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if param.options and text not in param.options:
            raise ValueError(f"`{text}` is not one of {', '.join(param.options)}")
        return text
    if kind == "number":
        if isinstance(value, bool):
            raise TypeError("expected a number")
        if isinstance(value, int | float):
            return value
        number = float(str(value).strip())
        return int(number) if number.is_integer() and "." not in str(value) else number
    if kind in ("boolean", "bool"):
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return str(value).strip().lower() in ("true", "1", "yes")
        raise ValueError("expected a boolean")
    if not isinstance(value, list):
        raise TypeError("expected an array")
    element = _Parameter(name=param.name, type={"array[string]": "string", "array[number]": "number",
                                                "array[boolean]": "boolean"}.get(kind, "object"))  # fmt: skip
    if element.type == "object":
        return [item for item in value if isinstance(item, dict)]
    return [_convert(element, item) for item in value if item is not None]


def _empty(kind: str) -> Any:
    return [] if kind.startswith("array") else None


NODES = (ParameterExtractorNode,)
