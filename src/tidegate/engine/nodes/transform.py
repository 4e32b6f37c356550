"""template-transform: render a sandboxed Jinja2 template over selected variables."""

from __future__ import annotations

import msgspec

from ...dsl.spec import NodeSpec
from .base import Compiler, Node, NodeContext, NodeFailure, NodeResult

__all__ = ["NODES", "TemplateTransformNode"]

MAX_OUTPUT = 400_000


class _Var(msgspec.Struct):
    variable: str
    value_selector: list[str] = msgspec.field(default_factory=list)


class _Data(msgspec.Struct):
    template: str = ""
    variables: list[_Var] = msgspec.field(default_factory=list)


class TemplateTransformNode(Node):
    type = "template-transform"

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _Data) or _Data()
        variables = [(v.variable, tuple(v.value_selector)) for v in data.variables if len(v.value_selector) >= 2]
        self.jinja = compiler.jinja_template(spec, data.template, variables, "template")

    async def run(self, ctx: NodeContext) -> NodeResult:
        jinja = self.jinja
        assert jinja is not None
        context = jinja.context(ctx.pool)
        text = await render(ctx, jinja, context)
        return NodeResult({"output": text}, inputs=context)


async def render(ctx: NodeContext, jinja: object, context: dict[str, object]) -> str:
    """Render inline when cheap; in the code sandbox when the template can loop."""
    from ..template import JinjaTemplate

    assert isinstance(jinja, JinjaTemplate)
    if jinja.isolated:
        sandbox = ctx.services.code
        if sandbox is None:
            raise NodeFailure("this template uses loops, which render in the code sandbox; none is configured")
        text = str(await sandbox.render_jinja(jinja.source, context))
    else:
        try:
            text = str(jinja.render_inline(context))
        except Exception as exc:  # template errors are user errors, shown as the node's failure
            raise NodeFailure(f"template error: {exc}", error_type="TemplateError") from None
    if len(text) > MAX_OUTPUT:
        raise NodeFailure(f"template output is longer than {MAX_OUTPUT} characters", error_type="OutputTooLong")
    return text


NODES = (TemplateTransformNode,)
