"""Run a compiled workflow: an async stream of events, a stop handle, and a blocking collector.

``WorkflowRunner`` is built once per workflow version with the services its nodes need (the
Gateway's LLM API, the HTTP client, the code sandbox); ``start`` returns a :class:`WorkflowRun`
whose driver task owns the whole run. The deadline is enforced on that task (nodes still running
when it passes are cancelled, not awaited), ``stop()`` cancels it, and closing the iterator early
(a client that went away) does the same; in every case each node task has ended before the
iterator finishes, so no task of the run outlives it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import msgspec

from ..errors import WorkflowError
from .events import Event, TextChunk, WorkflowFinished, WorkflowStarted
from .graph import Workflow
from .nodes.base import LLMClient, Services
from .pool import VariablePool
from .runtime import RunLimits, RunState, new_id
from .scheduler import GraphExecution
from .stream import StreamCoordinator

__all__ = ["Conversation", "RunResult", "WorkflowRun", "WorkflowRunner"]


class Conversation:
    """What a chatflow remembers between turns; the caller stores it (e.g. a TTL session store)."""

    __slots__ = ("dialogue_count", "history", "id", "variables")

    MAX_HISTORY = 200
    """Messages kept (oldest dropped): memory windows rarely look further back."""

    def __init__(
        self,
        id: str | None = None,
        *,
        variables: Mapping[str, Any] | None = None,
        history: Sequence[dict[str, Any]] = (),
        dialogue_count: int = 0,
    ) -> None:
        self.id = id or new_id()
        self.variables: dict[str, Any] = dict(variables or {})
        self.history: list[dict[str, Any]] = list(history)
        """OpenAI-style messages of earlier turns (``{"role", "content"}``), oldest first."""
        self.dialogue_count = dialogue_count


class RunResult(msgspec.Struct, kw_only=True):
    """Everything a blocking caller gets back from one run."""

    workflow_run_id: str
    workflow_id: str
    status: str
    outputs: dict[str, Any]
    error: str | None = None
    answer: str = ""
    elapsed_time: float = 0.0
    total_tokens: int = 0
    total_steps: int = 0
    created_at: int = 0
    finished_at: int = 0
    exceptions_count: int = 0
    conversation_id: str | None = None
    usage: dict[str, int] = msgspec.field(default_factory=dict)
    """Model tokens of the run: ``prompt_tokens``, ``completion_tokens``, ``total_tokens``."""
    retriever_resources: list[dict[str, Any]] = msgspec.field(default_factory=list)
    """Knowledge the run retrieved, as Dify's ``message_end.metadata.retriever_resources``."""


class WorkflowRunner:
    def __init__(
        self,
        workflow: Workflow,
        *,
        llm: LLMClient | None = None,
        http: Any = None,
        code_pool: Any = None,
        services: Services | None = None,
        limits: RunLimits | None = None,
        workflow_id: str | None = None,
        app_id: str | None = None,
        stream: bool = True,
        layers: Sequence[Any] = (),
    ) -> None:
        self.workflow = workflow
        self.services = services or Services(llm=llm, http=http, code=code_pool)
        self.limits = limits or RunLimits()
        self.workflow_id = workflow_id or workflow.name or "workflow"
        self.app_id = app_id or self.workflow_id
        self.stream = stream
        self.layers = tuple(layers)

    def prepare_inputs(self, inputs: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate inputs against the start node; raises RequestError (400 ``invalid_param``)."""
        return self.workflow.start.prepare_inputs(inputs or {})  # type: ignore[attr-defined,no-any-return]

    def start(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        user: str = "",
        query: str = "",
        files: Sequence[dict[str, Any]] = (),
        conversation: Conversation | None = None,
        run_id: str | None = None,
    ) -> WorkflowRun:
        """Validate inputs and start the run; iterate the returned object for its events."""
        prepared = self.prepare_inputs(inputs)
        return WorkflowRun(self, prepared, user=user, query=query, files=list(files),
                           conversation=conversation, run_id=run_id or new_id())  # fmt: skip

    async def run(self, inputs: Mapping[str, Any] | None = None, **kwargs: Any) -> AsyncIterator[Event]:
        async with self.start(inputs, **kwargs) as run:
            async for event in run:
                yield event

    async def run_blocking(self, inputs: Mapping[str, Any] | None = None, **kwargs: Any) -> RunResult:
        async with self.start(inputs, **kwargs) as run:
            async for _ in run:
                pass
        assert run.result is not None
        return run.result


class WorkflowRun:
    """One run in flight. Async-iterate for events; ``stop()`` ends it with status ``stopped``."""

    def __init__(
        self,
        runner: WorkflowRunner,
        inputs: dict[str, Any],
        *,
        user: str,
        query: str,
        files: list[dict[str, Any]],
        conversation: Conversation | None,
        run_id: str,
    ) -> None:
        workflow = runner.workflow
        self.runner = runner
        self.run_id = run_id
        self.task_id = run_id
        self.inputs = inputs
        self.conversation = conversation
        self.result: RunResult | None = None
        self.answer_parts: list[str] = []
        pool = VariablePool()
        chat = workflow.mode == "advanced-chat"
        pool.set_outputs("sys", {
            "query": query if chat else None,
            "files": files,
            "conversation_id": conversation.id if conversation else None,
            "user_id": user,
            "dialogue_count": conversation.dialogue_count if conversation else 0,
            "app_id": runner.app_id,
            "workflow_id": runner.workflow_id,
            "workflow_run_id": run_id,
        })  # fmt: skip
        pool.set_outputs("env", workflow.env)
        variables = dict(workflow.conversation_defaults)
        if conversation is not None:
            variables.update({k: v for k, v in conversation.variables.items() if k in variables})
        pool.set_outputs("conversation", variables)
        self.pool = pool
        self.state = RunState(
            workflow=workflow,
            services=runner.services,
            limits=runner.limits,
            pool=pool,
            run_id=run_id,
            workflow_id=runner.workflow_id,
            layers=runner.layers,
        )
        self.state.text_sink = self._emit_text
        if conversation is not None:
            self.state.history = list(conversation.history)
        self.query = query
        self._stopping = False
        self._finished = False
        self._created = int(time.time())
        self._driver = asyncio.create_task(self._drive(), name=f"tidegate-run:{run_id}")
        # The end marker comes from here so even a driver cancelled before it ever ran ends the stream.
        self._driver.add_done_callback(lambda _: self.state.events.put_nowait(None))

    # -- consumer side ----------------------------------------------------------------------------

    def __aiter__(self) -> WorkflowRun:
        return self

    async def __anext__(self) -> Event:
        if self._finished:
            raise StopAsyncIteration
        event = await self.state.events.get()
        if event is None:
            self._finished = True
            if self._driver.cancelled():
                if self._stopping and self.result is None:
                    return self._finish("stopped", "workflow stopped", time.perf_counter())
                raise StopAsyncIteration
            error = self._driver.exception()
            if error is not None:
                raise error
            raise StopAsyncIteration
        return event

    async def __aenter__(self) -> WorkflowRun:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def on_done(self, callback: Any) -> None:
        """Call ``callback(run)`` once the run's driver has ended, however it ended."""
        self._driver.add_done_callback(lambda _: callback(self))

    @property
    def done(self) -> bool:
        return self._driver.done()

    def stop(self) -> None:
        """Cancel every node of the run; the stream ends with ``workflow_finished`` (stopped)."""
        if not self._driver.done():
            self._stopping = True
            self._driver.cancel("workflow stopped")

    async def aclose(self) -> None:
        """Abandon the run (consumer gone): cancel and wait until every task of it has ended."""
        if not self._driver.done():
            self._driver.cancel()
        try:
            await self._driver
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise

    async def wait(self) -> RunResult:
        async for _ in self:
            pass
        assert self.result is not None
        return self.result

    # -- driver -----------------------------------------------------------------------------------

    async def _drive(self) -> None:
        state = self.state
        workflow = self.runner.workflow
        started = time.perf_counter()
        for layer in state.layers:
            layer.on_start(self)
        state.emit(WorkflowStarted(id=self.run_id, workflow_id=state.workflow_id, inputs=self.inputs, created_at=self._created))
        top = GraphExecution(state, workflow.graph, self.pool)
        state.top_scope = top
        wants_stream = self.runner.stream or workflow.mode == "advanced-chat"
        if wants_stream and workflow.graph.response_nodes:
            state.coordinator = StreamCoordinator(workflow.graph, self.pool, state.emit_text)
        self.pool.set_outputs(workflow.graph.root, self.inputs)
        status, error = "succeeded", None
        try:
            async with asyncio.timeout(state.limits.timeout) as deadline:
                await top.execute()
        except TimeoutError:
            if not deadline.expired():
                raise
            status, error = "failed", f"workflow exceeded its {state.limits.timeout:g}s deadline"
        except WorkflowError as exc:
            status, error = "failed", exc.message
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            status, error = "stopped", "workflow stopped"
        if status == "succeeded":
            if state.coordinator is not None:
                state.coordinator.finish()
            if state.exceptions:
                status = "partial-succeeded"
        state.emit(self._finish(status, error, started))
        for layer in state.layers:
            layer.on_stop(self)

    def _finish(self, status: str, error: str | None, started: float) -> WorkflowFinished:
        state = self.state
        ok = status in ("succeeded", "partial-succeeded")
        outputs = self._outputs() if ok else {}
        finished = WorkflowFinished(
            id=self.run_id, workflow_id=state.workflow_id, status=status, outputs=outputs, error=error,
            elapsed_time=time.perf_counter() - started, total_tokens=state.total_tokens,
            total_steps=state.steps, created_at=self._created, finished_at=int(time.time()),
            exceptions_count=state.exceptions,
        )  # fmt: skip
        self.result = RunResult(
            workflow_run_id=self.run_id, workflow_id=state.workflow_id, status=status, outputs=outputs,
            error=error, answer="".join(self.answer_parts), elapsed_time=finished.elapsed_time,
            total_tokens=state.total_tokens, total_steps=state.steps, created_at=self._created,
            finished_at=finished.finished_at, exceptions_count=state.exceptions,
            conversation_id=self.conversation.id if self.conversation else None, usage=dict(state.usage),
            retriever_resources=list(state.retriever_resources) if ok else [],
        )  # fmt: skip
        conversation = self.conversation
        if ok and conversation is not None:
            conversation.variables = self.pool.scope("conversation")
            if self.runner.workflow.mode == "advanced-chat":
                conversation.history.append({"role": "user", "content": self.query})
                conversation.history.append({"role": "assistant", "content": self.result.answer})
                del conversation.history[: -Conversation.MAX_HISTORY]
                conversation.dialogue_count += 1
        return finished

    def _emit_text(self, event: TextChunk) -> None:
        self.answer_parts.append(event.text)
        self.state.emit(event)

    def _outputs(self) -> dict[str, Any]:
        workflow = self.runner.workflow
        outputs: dict[str, Any] = {}
        for node_id in workflow.graph.response_nodes:
            node = workflow.nodes[node_id]
            if node.type == "end" and self.pool.has_owner(node_id):
                outputs.update(self.pool.scope(node_id))
        if workflow.mode == "advanced-chat":
            outputs["answer"] = "".join(self.answer_parts)
        return outputs
