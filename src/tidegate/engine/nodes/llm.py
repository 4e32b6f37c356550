"""llm: build the prompt the DSL describes and call the model through the Gateway's chat API.

Prompts are compiled at load (``{{#…#}}`` or Jinja2 per message, ``{{#context#}}`` for the
context variable). Chat mode sends the messages; completion mode renders one prompt (with
``#histories#`` for memory) and sends it as a user message, since the Gateway speaks chat. In a
chatflow with memory, earlier turns (the last ``window.size`` when a window is set) and the
``query_prompt_template`` follow the template. When an answer node relays this node's text, the
call streams and every delta goes to the answer as it arrives; otherwise it is one plain call.

:class:`ModelCall` is shared by question-classifier and parameter-extractor.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import msgspec

from ...dsl.spec import NodeSpec
from ..template import JinjaTemplate, Template, to_text
from .base import Compiler, Node, NodeContext, NodeFailure, NodeResult

__all__ = [
    "NODES",
    "LLMNode",
    "MemoryConfig",
    "ModelCall",
    "ModelConfig",
    "history_messages",
    "message_of",
    "parse_json",
    "usage_of",
]

_CONTEXT = "{{#context#}}"
_PARAMS = frozenset({
    "temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty", "stop", "seed",
    "response_format", "n", "logit_bias", "user", "max_completion_tokens", "reasoning_effort",
})  # fmt: skip


class ModelConfig(msgspec.Struct):
    name: str
    provider: str = ""
    mode: Literal["chat", "completion"] = "chat"
    completion_params: dict[str, Any] = msgspec.field(default_factory=dict)


class _Window(msgspec.Struct):
    enabled: bool = False
    size: int | None = None


class _RolePrefix(msgspec.Struct):
    user: str = "Human"
    assistant: str = "Assistant"


class MemoryConfig(msgspec.Struct):
    window: _Window = msgspec.field(default_factory=_Window)
    role_prefix: _RolePrefix | None = None
    query_prompt_template: str | None = None


class _Message(msgspec.Struct):
    role: Literal["system", "user", "assistant"] = "user"
    text: str = ""
    edition_type: Literal["basic", "jinja2"] | None = None
    jinja2_text: str | None = None


class _Completion(msgspec.Struct):
    text: str = ""
    edition_type: Literal["basic", "jinja2"] | None = None
    jinja2_text: str | None = None


class _JinjaVar(msgspec.Struct):
    variable: str
    value_selector: list[str] = msgspec.field(default_factory=list)


class _PromptConfig(msgspec.Struct):
    jinja2_variables: list[_JinjaVar] | None = None


class _Context(msgspec.Struct):
    enabled: bool = False
    variable_selector: list[str] | None = None


class _Data(msgspec.Struct):
    model: ModelConfig
    prompt_template: list[_Message] | _Completion = msgspec.field(default_factory=list)
    prompt_config: _PromptConfig | None = None
    memory: MemoryConfig | None = None
    context: _Context = msgspec.field(default_factory=_Context)
    structured_output_switch_on: bool = False
    structured_output_enabled: bool | None = None
    structured_output: dict[str, Any] | None = None


def history_messages(history: list[dict[str, Any]], memory: MemoryConfig | None) -> list[dict[str, Any]]:
    """The earlier turns memory lets the model see: the last ``size`` turns when windowed."""
    if memory is None or not history:
        return []
    if memory.window.enabled and memory.window.size:
        return history[-2 * memory.window.size :]
    return list(history)


class _Prompt:
    """One compiled prompt part: a ``{{#…#}}`` template or a Jinja2 template."""

    __slots__ = ("jinja", "role", "template")

    def __init__(self, role: str, template: Template | None, jinja: JinjaTemplate | None) -> None:
        self.role = role
        self.template = template
        self.jinja = jinja

    async def render(self, ctx: NodeContext, context_text: str) -> str:
        if self.jinja is not None:
            from .transform import render

            return await render(ctx, self.jinja, self.jinja.context(ctx.pool))
        assert self.template is not None
        text = self.template.render(ctx.pool)
        return text.replace(_CONTEXT, context_text) if _CONTEXT in text else text


class ModelCall:
    """Calls the model for a node: model name mapping, params, usage, optional streaming."""

    __slots__ = ("config", "params")

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.params = {k: v for k, v in config.completion_params.items() if k in _PARAMS and v is not None}
        stop = self.params.get("stop")
        if isinstance(stop, list) and not stop:
            del self.params["stop"]

    async def call(
        self, ctx: NodeContext, messages: list[dict[str, Any]], *, stream_as: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """One completion as a ``chat.completion`` dict; streams deltas into output ``stream_as``."""
        llm = ctx.services.llm
        if llm is None:
            raise NodeFailure("LLM nodes need the Gateway's chat API, which is not configured", error_type="ConfigError")
        model = ctx.services.model_name(self.config.name)
        params = {**self.params, **extra}
        if stream_as is None or not ctx.run.wants_stream(ctx, stream_as):
            return await llm.chat(messages, model=model, **params)
        text: list[str] = []
        reasoning: list[str] = []
        finish_reason: str | None = None
        usage: dict[str, Any] | None = None
        params.setdefault("stream_options", {"include_usage": True})
        async for chunk in llm.stream_chat(messages, model=model, **params):
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                piece = delta.get("content")
                if piece:
                    text.append(piece)
                    ctx.stream(stream_as, piece)
                if delta.get("reasoning_content"):
                    reasoning.append(delta["reasoning_content"])
                if choice.get("finish_reason"):
                    finish_reason = choice["finish_reason"]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
        if reasoning:
            message["reasoning_content"] = "".join(reasoning)
        return {"choices": [{"message": message, "finish_reason": finish_reason}], "usage": usage or {}}


def usage_of(response: dict[str, Any]) -> dict[str, Any]:
    usage = response.get("usage") or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": int(usage.get("total_tokens") or prompt + completion)}  # fmt: skip


def message_of(response: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    choices = response.get("choices") or []
    if not choices:
        raise NodeFailure("the model returned no choices", error_type="ModelError")
    return choices[0].get("message") or {}, choices[0].get("finish_reason")


class LLMNode(Node):
    type = "llm"
    streams = frozenset({"text"})

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _Data)
        if data is None:
            self.model = ModelCall(ModelConfig(name=""))
            self.prompts: list[_Prompt] = []
            return
        self.model = ModelCall(data.model)
        self.mode = data.model.mode
        self.memory = data.memory
        self.query = Template(data.memory.query_prompt_template or "{{#sys.query#}}") if data.memory else None
        self.context = tuple(data.context.variable_selector or ()) if data.context.enabled else ()
        jinja_vars = [(v.variable, tuple(v.value_selector)) for v in (data.prompt_config.jinja2_variables or [])] if data.prompt_config else []
        parts: list[_Message | _Completion] = (
            list(data.prompt_template) if isinstance(data.prompt_template, list) else [data.prompt_template]
        )
        self.prompts = []
        for index, part in enumerate(parts):
            role = getattr(part, "role", "user")
            field = f"prompt_template[{index}]" if isinstance(data.prompt_template, list) else "prompt_template"
            if part.edition_type == "jinja2":
                jinja = compiler.jinja_template(spec, part.jinja2_text or "", jinja_vars, f"{field}.jinja2_text")
                self.prompts.append(_Prompt(role, None, jinja))
            else:
                self.prompts.append(_Prompt(role, Template(part.text), None))
        structured = data.structured_output_switch_on or bool(data.structured_output_enabled)
        self.schema = (data.structured_output or {}).get("schema") if structured else None
        if not data.model.name:
            compiler.problem(spec, "Expected a model name, got `''`", "model.name")

    async def run(self, ctx: NodeContext) -> NodeResult:
        context_text = self._context_text(ctx)
        rendered = [(p.role, await p.render(ctx, context_text)) for p in self.prompts]
        history = history_messages(ctx.run.history, self.memory)
        if self.mode == "completion":
            prompt = "".join(text for _, text in rendered)
            if "#histories#" in prompt:
                prefix = self.memory.role_prefix if self.memory and self.memory.role_prefix else None
                lines = [
                    f"{(prefix.user if prefix else 'Human') if m['role'] == 'user' else (prefix.assistant if prefix else 'Assistant')}: {m['content']}"
                    for m in history
                ]
                prompt = prompt.replace("#histories#", "\n".join(lines))
            if "#sys.query#" in prompt:
                prompt = prompt.replace("#sys.query#", to_text(ctx.pool.value(("sys", "query"))))
            messages = [{"role": "user", "content": prompt}]
        else:
            messages = [{"role": role, "content": text} for role, text in rendered if text or role != "system"]
            messages.extend({"role": m["role"], "content": m["content"]} for m in history)
            if self.query is not None:
                query = self.query.render(ctx.pool)
                if query:
                    messages.append({"role": "user", "content": query})
        extra: dict[str, Any] = {}
        if self.schema:
            extra["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": self.schema}}
        response = await self.model.call(ctx, messages, stream_as="text", **extra)
        message, finish_reason = message_of(response)
        usage = usage_of(response)
        text = message.get("content") or ""
        outputs: dict[str, Any] = {"text": text, "usage": usage, "finish_reason": finish_reason}
        if message.get("reasoning_content"):
            outputs["reasoning_content"] = message["reasoning_content"]
        if self.schema:
            outputs["structured_output"] = parse_json(text)
        process = {"model_mode": self.mode, "model_name": self.model.config.name, "prompts": messages,
                   "usage": usage, "finish_reason": finish_reason}  # fmt: skip
        return NodeResult(outputs, process_data=process, tokens=usage["total_tokens"], usage=usage,
                          metadata={"total_tokens": usage["total_tokens"]})  # fmt: skip

    def _context_text(self, ctx: NodeContext) -> str:
        if len(self.context) < 2:
            return ""
        value = ctx.pool.value(self.context)
        if isinstance(value, list):
            parts = [item.get("content", "") if isinstance(item, dict) else to_text(item) for item in value]
            return "\n".join(str(p) for p in parts if p)
        return to_text(value)


def parse_json(text: str) -> Any:
    cleaned = text.strip()
    if cleaned.startswith("```"):
        cleaned = cleaned.strip("`")
        cleaned = cleaned[4:] if cleaned.lower().startswith("json") else cleaned
    start = min((i for i in (cleaned.find("{"), cleaned.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise NodeFailure("the model's answer is not JSON", error_type="OutputParseError")
    try:
        value, _ = json.JSONDecoder().raw_decode(cleaned[start:])
    except ValueError:
        raise NodeFailure("the model's answer is not valid JSON", error_type="OutputParseError") from None
    return value


NODES = (LLMNode,)
