"""loop: run the container's body until a break condition holds, a loop-end node is reached, or
``loop_count`` rounds have run.

Loop variables live under the loop's id in a pool shared by all rounds (assigners in the body
update them there); each round's node outputs live in a fresh child pool. Break conditions are
checked before the first round and after each round, as Dify does.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

import msgspec

from ...dsl.spec import NodeSpec
from ...errors import WorkflowError
from ..conditions import ConditionData, evaluate_all
from ..events import LoopCompleted, LoopNext, LoopStarted
from ..runtime import RunLimitExceeded
from .base import Compiler, Node, NodeContext, NodeFailure, NodeResult
from .if_else import compile_conditions

__all__ = ["NODES", "LoopEndNode", "LoopNode", "LoopStartNode"]

MAX_LOOP_COUNT = 1000


class _LoopVariable(msgspec.Struct):
    label: str
    var_type: str = "string"
    value_type: Literal["variable", "constant"] = "constant"
    value: Any = None


class _Data(msgspec.Struct):
    loop_count: int = 10
    break_conditions: list[ConditionData] = msgspec.field(default_factory=list)
    logical_operator: Literal["and", "or"] = "and"
    loop_variables: list[_LoopVariable] | None = None
    start_node_id: str | None = None


class LoopNode(Node):
    type = "loop"
    is_container = True
    emits_node_events = False

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _Data) or _Data()
        if not 1 <= data.loop_count <= MAX_LOOP_COUNT:
            compiler.problem(spec, f"Expected a loop count from 1 to {MAX_LOOP_COUNT}, got `{data.loop_count}`", "loop_count")
        self.loop_count = data.loop_count
        self.conditions = compile_conditions(spec, compiler, data.break_conditions, "break_conditions")
        self.operator = data.logical_operator
        self.variables = list(data.loop_variables or [])
        starts = [n.id for n in compiler.spec.children(spec.id) if n.type == "loop-start"]
        self.start_id = starts[0] if starts else (data.start_node_id or "")

    async def run(self, ctx: NodeContext) -> NodeResult:
        run = ctx.run
        loop_pool = ctx.pool.child()
        values = {var.label: self._initial(ctx, var) for var in self.variables}
        loop_pool.set_outputs(self.id, {**values, "index": 0})
        base: dict[str, Any] = {"id": ctx.execution_id, "node_id": self.id, "node_type": self.type, "title": self.title}
        created = int(time.time())
        started = time.perf_counter()
        tokens_before = run.total_tokens
        inputs = {"loop_count": self.loop_count, **values}
        run.emit(LoopStarted(**base, created_at=created, inputs=inputs, metadata={"loop_length": self.loop_count}))
        graph = run.workflow.graphs[self.id]
        rounds = 0
        reason = "loop_completed"
        try:
            if self.conditions and evaluate_all(self.conditions, self.operator, loop_pool):
                reason = "loop_break"
            else:
                for index in range(self.loop_count):
                    loop_pool.set(self.id, "index", index)
                    run.emit(LoopNext(**base, index=index, created_at=int(time.time()),
                                      pre_loop_output=self._values(loop_pool)))  # fmt: skip
                    round_pool = loop_pool.child()
                    try:
                        child = await ctx.scope.run_child(graph, round_pool, loop_id=self.id, index=index)
                    except RunLimitExceeded:
                        raise
                    except WorkflowError as exc:
                        raise NodeFailure(f"round {index} failed: {exc.message}", error_type="LoopError") from None
                    rounds += 1
                    if child.reached_loop_end or (
                        self.conditions and evaluate_all(self.conditions, self.operator, round_pool)
                    ):
                        reason = "loop_break"
                        break
        except NodeFailure as exc:
            run.emit(self._completed(base, created, started, run.total_tokens - tokens_before, rounds, None,
                                     "failed", str(exc), reason="error"))  # fmt: skip
            raise
        outputs = {**self._values(loop_pool), "loop_round": rounds}
        run.emit(self._completed(base, created, started, run.total_tokens - tokens_before, rounds, outputs,
                                 "succeeded", None, reason=reason))  # fmt: skip
        return NodeResult(outputs, inputs=inputs, metadata={"loop_length": self.loop_count, "completed_reason": reason})

    def _values(self, pool: Any) -> dict[str, Any]:
        return {var.label: pool.value((self.id, var.label)) for var in self.variables}

    def _initial(self, ctx: NodeContext, var: _LoopVariable) -> Any:
        if var.value_type == "variable":
            if not isinstance(var.value, list) or len(var.value) < 2:
                raise NodeFailure(f"loop variable `{var.label}` has no source variable", error_type="InvalidInput")
            return ctx.pool.value(tuple(var.value))
        value = var.value
        kind = var.var_type
        try:
            if kind == "number" and isinstance(value, str):
                value = float(value) if "." in value else int(value)
            elif kind in ("object", "array[string]", "array[number]", "array[object]", "array[boolean]") and isinstance(value, str):
                value = json.loads(value) if value.strip() else ([] if kind.startswith("array") else {})
            elif kind == "boolean" and isinstance(value, str):
                value = value.strip().lower() == "true"
        except ValueError:
            raise NodeFailure(f"loop variable `{var.label}` is not a valid {kind}: {value!r}", error_type="InvalidInput") from None
        if value is None:
            value = {"string": "", "number": 0, "boolean": False, "object": {}}.get(kind, [] if kind.startswith("array") else None)
        return value

    def _completed(
        self, base: dict[str, Any], created: int, started: float, tokens: int, steps: int,
        outputs: dict[str, Any] | None, status: str, error: str | None, *, reason: str,
    ) -> LoopCompleted:  # fmt: skip
        return LoopCompleted(
            **base, created_at=created, outputs=outputs, status=status, error=error,
            elapsed_time=time.perf_counter() - started, total_tokens=tokens,
            execution_metadata={"total_tokens": tokens, "completed_reason": reason},
            finished_at=int(time.time()), steps=steps,
        )  # fmt: skip


class LoopStartNode(Node):
    type = "loop-start"
    emits_node_events = False

    async def run(self, ctx: NodeContext) -> NodeResult:
        return NodeResult({})


class LoopEndNode(Node):
    type = "loop-end"

    async def run(self, ctx: NodeContext) -> NodeResult:
        ctx.scope.reached_loop_end = True
        return NodeResult({})


NODES = (LoopNode, LoopStartNode, LoopEndNode)
