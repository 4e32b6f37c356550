"""iteration: run the container's body once per item, sequentially or in parallel.

Each item runs in its own child pool (``item`` and ``index`` under the iteration's id), so parallel
items never see each other's node outputs. Parallel mode bounds concurrency with ``parallel_nums``
and runs items in a task group: under ``terminated`` the first failure cancels the other items
and waits for them; ``continue-on-error`` keeps a ``None`` in the failed item's place and
``remove-abnormal-output`` drops it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import msgspec

from ...dsl.spec import NodeSpec
from ...errors import WorkflowError
from ..events import IterationCompleted, IterationNext, IterationStarted
from ..pool import MISSING
from ..runtime import RunLimitExceeded
from .base import Compiler, Node, NodeContext, NodeFailure, NodeResult

__all__ = ["NODES", "IterationNode", "IterationStartNode"]

MAX_PARALLEL = 100


class _Data(msgspec.Struct):
    iterator_selector: list[str] = msgspec.field(default_factory=list)
    output_selector: list[str] = msgspec.field(default_factory=list)
    is_parallel: bool = False
    parallel_nums: int = 10
    error_handle_mode: Literal["terminated", "continue-on-error", "remove-abnormal-output"] = "terminated"
    flatten_output: bool = True
    start_node_id: str | None = None


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


class IterationNode(Node):
    type = "iteration"
    is_container = True
    emits_node_events = False

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _Data) or _Data()
        self.iterator = tuple(data.iterator_selector)
        self.output = tuple(data.output_selector)
        if len(self.iterator) < 2:
            compiler.problem(spec, "Expected an array variable to iterate over, got none", "iterator_selector")
        if len(self.output) < 2:
            compiler.problem(spec, "Expected an output variable to collect, got none", "output_selector")
        self.parallel = data.is_parallel
        self.parallel_nums = max(1, min(MAX_PARALLEL, data.parallel_nums))
        self.mode = data.error_handle_mode
        self.flatten = data.flatten_output
        starts = [n.id for n in compiler.spec.children(spec.id) if n.type == "iteration-start"]
        self.start_id = starts[0] if starts else (data.start_node_id or "")

    async def run(self, ctx: NodeContext) -> NodeResult:
        run = ctx.run
        items = ctx.pool.get(self.iterator)
        if items is MISSING or items is None:
            items = []
        if not isinstance(items, list):
            raise NodeFailure(f"the iteration needs an array, got {type(items).__name__}", error_type="InvalidInput")
        base: dict[str, Any] = {"id": ctx.execution_id, "node_id": self.id, "node_type": self.type, "title": self.title}
        created = int(time.time())
        started = time.perf_counter()
        tokens_before = run.total_tokens
        run.emit(IterationStarted(**base, created_at=created, inputs={"iterator_selector": items},
                                  metadata={"iterator_length": len(items)}))  # fmt: skip
        results: list[Any] = [None] * len(items)
        try:
            if self.parallel and len(items) > 1:
                limit = asyncio.Semaphore(self.parallel_nums)

                async def bounded(index: int, item: Any) -> None:
                    async with limit:
                        results[index] = await self._one(ctx, index, item, base)

                async with asyncio.TaskGroup() as group:
                    for index, item in enumerate(items):
                        group.create_task(bounded(index, item), name=f"tidegate-iteration:{self.id}:{index}")
            else:
                for index, item in enumerate(items):
                    results[index] = await self._one(ctx, index, item, base)
        except* RunLimitExceeded as limit_error:
            raise limit_error.exceptions[0] from None
        except* NodeFailure as group_error:
            first = group_error.exceptions[0]
            error = str(first)
            run.emit(self._completed(base, created, started, run.total_tokens - tokens_before, len(items),
                                     None, "failed", error))  # fmt: skip
            kind = first.error_type if isinstance(first, NodeFailure) else "IterationError"
            raise NodeFailure(error, error_type=kind) from None
        output: list[Any] = []
        for value in results:
            if isinstance(value, _Failed):
                if self.mode == "continue-on-error":
                    output.append(None)
                continue
            output.append(value)
        if self.flatten and output and all(isinstance(value, list) for value in output):
            output = [element for value in output for element in value]
        outputs = {"output": output}
        run.emit(self._completed(base, created, started, run.total_tokens - tokens_before, len(items), outputs,
                                 "succeeded", None))  # fmt: skip
        return NodeResult(outputs, inputs={"iterator_selector": items}, metadata={"iterator_length": len(items)})

    async def _one(self, ctx: NodeContext, index: int, item: Any, base: dict[str, Any]) -> Any:
        run = ctx.run
        pool = ctx.pool.child()
        pool.set_outputs(self.id, {"item": item, "index": index})
        run.emit(IterationNext(**base, index=index, created_at=int(time.time())))
        graph = run.workflow.graphs[self.id]
        try:
            await ctx.scope.run_child(graph, pool, iteration_id=self.id, index=index)
        except RunLimitExceeded:
            raise
        except WorkflowError as exc:
            if self.mode == "terminated":
                raise NodeFailure(f"item {index} failed: {exc.message}", error_type="IterationError") from None
            return _Failed(exc.message)
        value = pool.get(self.output)
        return None if value is MISSING else value

    def _completed(
        self, base: dict[str, Any], created: int, started: float, tokens: int, steps: int,
        outputs: dict[str, Any] | None, status: str, error: str | None,
    ) -> IterationCompleted:  # fmt: skip
        return IterationCompleted(
            **base, created_at=created, outputs=outputs, status=status, error=error,
            elapsed_time=time.perf_counter() - started, total_tokens=tokens,
            execution_metadata={"total_tokens": tokens}, finished_at=int(time.time()), steps=steps,
        )  # fmt: skip


class IterationStartNode(Node):
    type = "iteration-start"
    emits_node_events = False

    async def run(self, ctx: NodeContext) -> NodeResult:
        return NodeResult({})


NODES = (IterationNode, IterationStartNode)
