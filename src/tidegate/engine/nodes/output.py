"""Response nodes: ``end`` (a workflow's outputs) and ``answer`` (a chatflow's reply).

Both expose a ``stream_template`` — the text they will say, as literals and variable references —
which the stream coordinator relays in path order while upstream nodes are still running. An answer
node inside an iteration or loop is outside that ordering and says its text when it runs.
"""

from __future__ import annotations

import msgspec

from ...dsl.refs import Segment
from ...dsl.spec import NodeSpec
from ..events import TextChunk
from .base import Compiler, Node, NodeContext, NodeResult

__all__ = ["NODES", "AnswerNode", "EndNode"]


class _Output(msgspec.Struct):
    variable: str
    value_selector: list[str] = msgspec.field(default_factory=list)


class _EndData(msgspec.Struct):
    outputs: list[_Output] = msgspec.field(default_factory=list)


class EndNode(Node):
    type = "end"
    is_response = True

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _EndData) or _EndData()
        self.outputs = [(o.variable, tuple(o.value_selector)) for o in data.outputs]
        segments: list[Segment] = []
        for _, selector in self.outputs:
            if len(selector) < 2:
                continue
            if segments:
                segments.append("\n")
            segments.append(selector)
        self.stream_template: tuple[Segment, ...] = tuple(segments)

    async def run(self, ctx: NodeContext) -> NodeResult:
        pool = ctx.pool
        values = {name: pool.value(sel) if len(sel) >= 2 else None for name, sel in self.outputs}
        return NodeResult(values, inputs=values)


class _AnswerData(msgspec.Struct):
    answer: str = ""


class AnswerNode(Node):
    type = "answer"
    is_response = True

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _AnswerData) or _AnswerData()
        self.template = compiler.template(spec, data.answer)
        self.stream_template = self.template.segments

    async def run(self, ctx: NodeContext) -> NodeResult:
        text = self.template.render(ctx.pool)
        if ctx.scope is not ctx.run.top_scope and text:
            ctx.run.emit_text(TextChunk(text=text, from_variable_selector=[self.id, "answer"]))
        return NodeResult({"answer": text, "files": []})


NODES = (EndNode, AnswerNode)
