"""variable-aggregator (``variable-assigner`` before Dify 0.6): the value of whichever branch ran.

Typically joins the branches of an if-else: each listed variable belongs to one branch, and the
first one that has a value becomes the output (per group when groups are enabled).
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...dsl.spec import NodeSpec
from ..pool import MISSING, VariablePool
from .base import Compiler, Node, NodeContext, NodeResult

__all__ = ["NODES", "VariableAggregatorNode"]


class _Group(msgspec.Struct):
    group_name: str
    variables: list[list[str]] = msgspec.field(default_factory=list)
    output_type: str = "any"


class _Settings(msgspec.Struct):
    group_enabled: bool = False
    groups: list[_Group] = msgspec.field(default_factory=list)


class _Data(msgspec.Struct):
    variables: list[list[str]] = msgspec.field(default_factory=list)
    output_type: str = "any"
    advanced_settings: _Settings | None = None


class VariableAggregatorNode(Node):
    type = "variable-aggregator"

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _Data) or _Data()
        settings = data.advanced_settings
        self.groups: list[tuple[str, list[tuple[str, ...]]]] | None = None
        if settings is not None and settings.group_enabled:
            self.groups = [(g.group_name, [tuple(v) for v in g.variables if len(v) >= 2]) for g in settings.groups]
        self.variables = [tuple(v) for v in data.variables if len(v) >= 2]

    async def run(self, ctx: NodeContext) -> NodeResult:
        pool = ctx.pool
        if self.groups is None:
            return NodeResult({"output": _first(pool, self.variables)})
        return NodeResult({name: {"output": _first(pool, selectors)} for name, selectors in self.groups})


def _first(pool: VariablePool, selectors: list[tuple[str, ...]]) -> Any:
    for selector in selectors:
        value = pool.get(selector)
        if value is not MISSING and value is not None:
            return value
    return None


NODES = (VariableAggregatorNode,)
