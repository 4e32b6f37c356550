"""Run one graph scope: every ready node becomes its own asyncio task.

A node is ready when each of its in-edges is resolved and at least one was taken; when all were
skipped it is skipped too and the skip propagates down its out-edges, so joins after branches
never wait for a branch that will not run. Retries sleep inside the failing node's own task (other
nodes keep running); a per-attempt timeout bounds each try. A failure without an error strategy
fails the scope: every other node task is cancelled and awaited before the error surfaces, so
nothing of the run outlives it.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any

from ..errors import TidegateError, WorkflowError
from .events import NodeFinished, NodeRetry, NodeStarted
from .nodes.base import NodeContext, NodeFailure, NodeResult
from .pool import VariablePool
from .runtime import RunLimitExceeded, RunState, new_id

if TYPE_CHECKING:
    from .graph import Graph, NodePolicy
    from .nodes.base import Node

__all__ = ["GraphExecution", "NodeRunFailed"]

MAX_BACKOFF = 30.0


class NodeRunFailed(WorkflowError):
    """A node failed and had no error strategy; the scope (and, at the top, the run) fails."""


class GraphExecution:
    """One execution of one graph scope with its own edge state; containers create one per item."""

    __slots__ = (
        "_done",
        "_pending",
        "_predecessor",
        "_running",
        "_taken",
        "_tasks",
        "graph",
        "index",
        "iteration_id",
        "loop_id",
        "pool",
        "reached_loop_end",
        "run",
    )

    def __init__(
        self,
        run: RunState,
        graph: Graph,
        pool: VariablePool,
        *,
        iteration_id: str | None = None,
        loop_id: str | None = None,
        index: int | None = None,
    ) -> None:
        self.run = run
        self.graph = graph
        self.pool = pool
        self.iteration_id = iteration_id
        self.loop_id = loop_id
        self.index = index
        self.reached_loop_end = False
        self._pending: dict[str, int] = dict(graph.in_count)
        self._taken: dict[str, int] = {}
        self._predecessor: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = 0
        self._done: asyncio.Future[None] | None = None

    async def execute(self) -> None:
        """Run the scope to completion; raises the first unhandled node failure."""
        self._done = asyncio.get_running_loop().create_future()
        self._launch(self.graph.root)
        try:
            await self._done
        finally:
            await self._cancel_all()

    async def run_child(
        self,
        graph: Graph,
        pool: VariablePool,
        *,
        iteration_id: str | None = None,
        loop_id: str | None = None,
        index: int | None = None,
    ) -> GraphExecution:
        """Run a container body (one iteration item or loop round) to completion."""
        child = GraphExecution(
            self.run, graph, pool, iteration_id=iteration_id, loop_id=loop_id, index=index
        )
        await child.execute()
        return child

    # -- scheduling -------------------------------------------------------------------------------

    def _launch(self, node_id: str) -> None:
        node = self.graph.nodes[node_id]
        self._running += 1
        task = asyncio.create_task(self._node_task(node), name=f"tidegate-node:{node_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _node_task(self, node: Node) -> None:
        try:
            handle = await self._execute(node)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a fatal failure: fail the scope
            done = self._done
            if done is not None and not done.done():
                done.set_exception(exc)
            return
        self._resolve_out_edges(node.id, handle)
        self._running -= 1
        done = self._done
        if self._running == 0 and done is not None and not done.done():
            done.set_result(None)

    def _resolve_out_edges(self, node_id: str, handle: str | None) -> None:
        """Mark the finished node's out-edges taken or skipped; start or skip what became ready."""
        done = self._done
        if done is not None and done.done():
            return
        run = self.run
        work = [(node_id, handle)]
        while work:
            source, chosen = work.pop()
            for edge in self.graph.out_edges.get(source, ()):
                target = edge.target
                if chosen is not None and edge.handle == chosen:
                    self._taken[target] = self._taken.get(target, 0) + 1
                    self._predecessor.setdefault(target, source)
                    run.edge_taken(edge, self)
                remaining = self._pending[target] - 1
                self._pending[target] = remaining
                if remaining:
                    continue
                if self._taken.get(target):
                    self._launch(target)
                else:
                    run.node_done(target, self)  # skipped: its values will never come
                    work.append((target, None))

    async def _cancel_all(self) -> None:
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # -- one node ---------------------------------------------------------------------------------

    async def _execute(self, node: Node) -> str | None:
        run = self.run
        run.count_step(node.id)
        policy: NodePolicy = node.policy  # type: ignore[attr-defined]
        timeout = run.limits.node_timeout or policy.timeout
        execution_id = new_id()
        index = run.next_index()
        created = int(time.time())
        started = time.perf_counter()
        ctx = NodeContext(
            node=node,
            pool=self.pool,
            run=run,
            scope=self,
            execution_id=execution_id,
            iteration_id=self.iteration_id,
            loop_id=self.loop_id,
        )
        base: dict[str, Any] = {
            "id": execution_id,
            "node_id": node.id,
            "node_type": node.type,
            "title": node.title,
            "index": index,
            "predecessor_node_id": self._predecessor.get(node.id),
            "created_at": created,
            "iteration_id": self.iteration_id,
            "loop_id": self.loop_id,
        }
        if node.emits_node_events:
            run.emit(NodeStarted(**base))
        attempt = 0
        while True:
            try:
                async with asyncio.timeout(timeout) as deadline:
                    result = await node.run(ctx)
                break
            except (asyncio.CancelledError, RunLimitExceeded):
                raise
            except Exception as exc:
                message, error_type = _describe(exc, timeout, deadline.expired())
                if attempt < policy.max_retries:
                    attempt += 1
                    run.emit(
                        NodeRetry(
                            **base, status="retry", error=message, elapsed_time=time.perf_counter() - started,
                            finished_at=int(time.time()), retry_index=attempt - 1,
                        )
                    )  # fmt: skip
                    await asyncio.sleep(_backoff(policy.retry_interval, attempt))
                    continue
                return self._failed(node, ctx, base, started, message, error_type, attempt)
        self.pool.set_outputs(node.id, result.outputs)
        run.total_tokens += result.tokens
        if result.usage:
            for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                run.usage[key] += int(result.usage.get(key) or 0)
        run.node_done(node.id, self)
        if node.emits_node_events:
            run.emit(self._finished(base, started, result, "succeeded", None, attempt))
        return result.handle

    def _failed(
        self,
        node: Node,
        ctx: NodeContext,
        base: dict[str, Any],
        started: float,
        message: str,
        error_type: str,
        attempts: int,
    ) -> str | None:
        run = self.run
        policy: NodePolicy = node.policy  # type: ignore[attr-defined]
        strategy = policy.error_strategy
        if strategy is None:
            run.node_done(node.id, self)
            if node.emits_node_events:
                run.emit(self._finished(base, started, NodeResult({}), "failed", message, attempts))
            raise NodeRunFailed(
                f"node `{node.id}` ({node.title or node.type}) failed: {message}",
                node_id=node.id,
                node_type=node.type,
            )
        outputs = {"error_message": message, "error_type": error_type}
        if strategy == "default-value":
            outputs = {**policy.defaults, **outputs}
        self.pool.set_outputs(node.id, outputs)
        run.exceptions += 1
        run.node_done(node.id, self)
        if node.emits_node_events:
            run.emit(self._finished(base, started, NodeResult(outputs), "exception", message, attempts))
        return "fail-branch" if strategy == "fail-branch" else "source"

    @staticmethod
    def _finished(
        base: dict[str, Any], started: float, result: NodeResult, status: str, error: str | None, attempts: int
    ) -> NodeFinished:
        metadata = result.metadata
        if attempts:
            metadata = {**(metadata or {}), "retry_count": attempts}
        return NodeFinished(
            **base,
            inputs=result.inputs,
            process_data=result.process_data,
            outputs=result.outputs,
            status=status,
            error=error,
            elapsed_time=time.perf_counter() - started,
            execution_metadata=metadata,
            finished_at=int(time.time()),
        )


def _describe(exc: Exception, timeout: float, expired: bool) -> tuple[str, str]:
    if expired and isinstance(exc, TimeoutError):
        return f"node timed out after {timeout:g}s", "TimeoutError"
    if isinstance(exc, NodeFailure):
        return str(exc), exc.error_type
    if isinstance(exc, TidegateError):
        return exc.message, type(exc).__name__
    text = str(exc)
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__), type(exc).__name__


def _backoff(interval: float, attempt: int) -> float:
    """Exponential backoff with equal jitter, starting at the node's retry interval."""
    if interval <= 0:
        return 0.0
    delay = min(MAX_BACKOFF, interval * 2.0 ** (attempt - 1))
    return delay / 2 + random.random() * delay / 2
