"""if-else: pick the first case whose conditions hold (``false`` when none does).

Handles both forms Dify has exported: ``cases`` (each with its own id, which is the edge handle)
and the legacy single ``conditions`` list whose branches are ``true`` / ``false``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ...dsl.spec import NodeSpec
from ..conditions import Condition, ConditionData, evaluate_all
from .base import Compiler, Node, NodeContext, NodeResult

__all__ = ["NODES", "IfElseNode", "compile_conditions"]


class _Case(msgspec.Struct):
    case_id: str
    logical_operator: Literal["and", "or"] = "and"
    conditions: list[ConditionData] = msgspec.field(default_factory=list)


class _Data(msgspec.Struct):
    cases: list[_Case] | None = None
    logical_operator: Literal["and", "or"] | None = "and"
    conditions: list[ConditionData] | None = None


def compile_conditions(
    spec: NodeSpec, compiler: Compiler, conditions: list[ConditionData], field: str
) -> list[Condition]:
    out = []
    for index, data in enumerate(conditions):
        try:
            out.append(Condition(data))
        except ValueError as exc:
            compiler.problem(spec, str(exc), f"{field}[{index}].comparison_operator")
    return out


class IfElseNode(Node):
    type = "if-else"
    is_branch = True

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _Data) or _Data()
        self.cases: list[tuple[str, str, list[Condition]]] = []
        if data.cases:
            for index, case in enumerate(data.cases):
                conditions = compile_conditions(spec, compiler, case.conditions, f"cases[{index}].conditions")
                self.cases.append((case.case_id, case.logical_operator, conditions))
        else:
            conditions = compile_conditions(spec, compiler, data.conditions or [], "conditions")
            self.cases.append(("true", data.logical_operator or "and", conditions))

    async def run(self, ctx: NodeContext) -> NodeResult:
        for case_id, operator, conditions in self.cases:
            if evaluate_all(conditions, operator, ctx.pool):
                return NodeResult({"result": True, "selected_case_id": case_id}, handle=case_id)
        return NodeResult({"result": False, "selected_case_id": "false"}, handle="false")


NODES = (IfElseNode,)
