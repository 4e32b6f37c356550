"""question-classifier: ask the model which of the DSL's classes a question belongs to.

The model is told the classes (id and name) and asked for JSON naming one; the chosen class's id
is the edge handle, so the classifier branches like an if-else. An answer that names no known
class falls back to the first class, as Dify does.
"""

from __future__ import annotations

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

__all__ = ["NODES", "QuestionClassifierNode"]

SYSTEM_PROMPT = (
    "You are a text classification engine. Read the user's input and decide which one of the "
    "categories below it belongs to.\n"
    "Categories (JSON, each with category_id and category_name):\n{categories}\n"
    "{instruction}"
    "Answer with only a JSON object of the form "
    '{{"category_id": "...", "category_name": "..."}} using one of the categories above.'
)


class _Class(msgspec.Struct):
    id: str
    name: str = ""
    label: str = ""


class _Data(msgspec.Struct):
    model: ModelConfig
    query_variable_selector: list[str] = msgspec.field(default_factory=list)
    classes: list[_Class] = msgspec.field(default_factory=list)
    instruction: str | None = None
    memory: MemoryConfig | None = None


class QuestionClassifierNode(Node):
    type = "question-classifier"
    is_branch = True

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _Data)
        if data is None:
            return
        if not data.classes:
            compiler.problem(spec, "Expected at least one class, got none", "classes")
        self.model = ModelCall(data.model)
        self.query = tuple(data.query_variable_selector)
        self.classes = data.classes
        self.instruction = Template(data.instruction or "")
        self.memory = data.memory

    async def run(self, ctx: NodeContext) -> NodeResult:
        query = to_text(ctx.pool.value(self.query)) if len(self.query) >= 2 else ""
        categories = msgspec.json.encode([{"category_id": c.id, "category_name": c.name} for c in self.classes]).decode()
        instruction = self.instruction.render(ctx.pool)
        system = SYSTEM_PROMPT.format(
            categories=categories, instruction=f"Additional instructions: {instruction}\n" if instruction else ""
        )
        messages = [{"role": "system", "content": system}]
        messages.extend(history_messages(ctx.run.history, self.memory))
        messages.append({"role": "user", "content": query})
        response = await self.model.call(ctx, messages, temperature=self.model.params.get("temperature", 0))
        message, _ = message_of(response)
        usage = usage_of(response)
        chosen = self._pick(message.get("content") or "")
        outputs = {"class_name": chosen.name, "class_id": chosen.id, "class_label": chosen.label or chosen.name, "usage": usage}
        return NodeResult(outputs, inputs={"query": query}, handle=chosen.id, tokens=usage["total_tokens"], usage=usage,
                          process_data={"prompts": messages, "answer": message.get("content")})  # fmt: skip

    def _pick(self, answer: str) -> _Class:
        try:
            parsed = parse_json(answer)
        except NodeFailure:
            parsed = None
        if isinstance(parsed, dict):
            wanted_id = str(parsed.get("category_id") or "")
            wanted_name = str(parsed.get("category_name") or "")
            for cls in self.classes:
                if cls.id == wanted_id:
                    return cls
            for cls in self.classes:
                if cls.name and cls.name == wanted_name:
                    return cls
        lowered = answer.lower()
        for cls in self.classes:
            if cls.name and cls.name.lower() in lowered:
                return cls
        return self.classes[0]


NODES = (QuestionClassifierNode,)
