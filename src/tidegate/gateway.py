"""The Gateway: one object that owns every component built from a config, and their lifecycle.

Everything stateful in tidegate hangs off a Gateway (upstream sessions, metrics registry, worker
pool, caches, limiters…), so two gateways in one process never share anything and tests can build
and tear one down per case. Surfaces and host adapters only translate to and from its methods.

Lifecycle: ``unopened → starting → running → draining → stopped``. ``stop()`` refuses new surface
requests, waits up to ``shutdown_timeout`` for in-flight ones (streams included), then cancels
what is left; each cancelled request ends with a clean ``ShuttingDown`` error, never a dropped
connection.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import msgspec

from ._concurrency import WorkerPool
from ._turns import TurnBudget
from .admission import Admission
from .config import TidegateConfig, load_config
from .context import RequestContext
from .errors import NotFoundError, ShuttingDown, TidegateError, UsageError
from .metrics import Metrics
from .providers.upstream import Upstream
from .routing import Router

__all__ = ["Gateway"]

_encode = msgspec.json.Encoder().encode

State = Literal["unopened", "starting", "running", "draining", "stopped"]


class _Flight:
    """One in-flight surface request, so ``stop()`` can wait for it or cancel it cleanly."""

    __slots__ = ("_gateway", "shutdown", "task")

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self.task: asyncio.Task[Any] | None = None
        self.shutdown = False

    async def __aenter__(self) -> _Flight:
        gateway = self._gateway
        if gateway.state != "running":
            raise ShuttingDown() if gateway.state in ("draining", "stopped") else UsageError(
                f"Gateway is {gateway.state}; start() it first"
            )
        self.task = asyncio.current_task()
        gateway._flights.add(self)
        gateway._idle.clear()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        gateway = self._gateway
        gateway._flights.discard(self)
        if not gateway._flights:
            gateway._idle.set()
        if self.shutdown and isinstance(exc, asyncio.CancelledError) and self.task is not None:
            self.task.uncancel()
            raise ShuttingDown("tidegate shut down before this request finished") from None


class Gateway:
    """Build from a config (object or file path); ``start()`` before use, ``stop()`` after."""

    def __init__(self, config: TidegateConfig | str | os.PathLike[str]) -> None:
        if not isinstance(config, TidegateConfig):
            config = load_config(config)
        self.config = config
        self.state: State = "unopened"
        self.metrics = Metrics(buckets=config.metrics.latency_buckets)
        self.upstreams: dict[str, Upstream] = {
            name: Upstream(name, model) for name, model in config.models.items()
        }
        self.turns = TurnBudget(float(config.turn_budget)) if config.turn_budget else None
        """Paces request work across event-loop turns (see ``tidegate._turns``)."""
        for upstream in self.upstreams.values():
            upstream.observe = self._observe_upstream
            if self.turns is not None:
                upstream.pace = self.turns.pace
        self.router = Router(
            config.routing,
            {name: up for name, up in self.upstreams.items() if up.config.kind == "chat"},
            registry=self.metrics.registry,
            base_dir=Path(config.source).parent if config.source else None,
        )
        self.admission = Admission(config, registry=self.metrics.registry)
        self.pool = WorkerPool(max_workers=max(2, os.cpu_count() or 2))
        self.embedders: dict[str, Any] = {}
        self.knowledge: dict[str, Any] = {}
        cache = config.cache if config.cache is not None and config.cache.enabled else None
        semantic = cache is not None and cache.semantic.enabled
        if config.embeddings or config.knowledge or semantic:
            self._build_knowledge()
        self.cache: Any = None
        if cache is not None:
            from .cache import ResponseCache

            self.cache = ResponseCache(
                cache, embedders=self.embedders, pool=self.pool, registry=self.metrics.registry,
                source=config.source,
            )  # fmt: skip
        from .sessions import Sessions

        self.sessions = Sessions(config.sessions)
        """Conversation memory shared by the Dify chat surface, workflows and agents."""
        self.agents: Any = None
        self.workflows: Any = None
        if config.workflows or config.tools or config.agents:
            self._build_agents_and_workflows()
        self._flights: set[_Flight] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._start_lock = asyncio.Lock()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Gateway:
        return cls(load_config(Path(path)))

    def __repr__(self) -> str:
        return f"Gateway(state={self.state!r}, models={list(self.upstreams)!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.state != "unopened":
            raise UsageError(f"Gateway cannot start: it is {self.state} (a Gateway starts once)")
        self.state = "starting"
        started: list[Upstream] = []
        try:
            for upstream in self.upstreams.values():
                await upstream.start()
                started.append(upstream)
            await self.admission.start()
            for embedder in self.embedders.values():
                await embedder.start()
            for base in self.knowledge.values():
                await base.open()
            if self.cache is not None:
                await self.cache.start()
            if self.agents is not None:
                await self.agents.start()
            if self.workflows is not None:
                await self.workflows.start()
        except BaseException:
            await self._close_components()
            for upstream in started:
                await upstream.close()
            self.state = "stopped"
            raise
        self.state = "running"

    async def ensure_started(self) -> None:
        """Start on first use when no lifespan event did (servers that send none)."""
        if self.state == "running":
            return
        async with self._start_lock:
            if self.state == "unopened":
                await self.start()

    async def stop(self, *, timeout: float | None = None) -> None:
        """Drain in-flight requests for up to ``timeout`` (default ``shutdown_timeout``), then close."""
        if self.state in ("stopped", "unopened"):
            self.state = "stopped"
            return
        if self.state == "draining":
            await self._idle.wait()
            return
        self.state = "draining"
        await self.admission.close()  # queued requests are refused; admitted ones keep their slots
        limit = float(self.config.shutdown_timeout if timeout is None else timeout)
        try:
            await asyncio.wait_for(self._idle.wait(), limit)
        except TimeoutError:
            for flight in list(self._flights):
                flight.shutdown = True
                if flight.task is not None:
                    flight.task.cancel("tidegate shutdown")
            await self._idle.wait()
        await self._close_components()
        for upstream in self.upstreams.values():
            await upstream.close()
        self.pool.shutdown(wait=False)
        self.state = "stopped"

    async def _close_components(self) -> None:
        if self.cache is not None:
            await self.cache.close()
        if self.workflows is not None and self.workflows.state == "open":
            await self.workflows.stop()
        if self.agents is not None:
            await self.agents.close()  # also closes the shared sessions
        else:
            await self.sessions.close()
        for base in self.knowledge.values():
            if base.state == "open":
                await base.close()
        for embedder in self.embedders.values():
            await embedder.close()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def flight(self) -> _Flight:
        """Track the current task as an in-flight request (``async with gateway.flight():``)."""
        return _Flight(self)

    @property
    def in_flight(self) -> int:
        return len(self._flights)

    # -- in-process API ------------------------------------------------------------------------

    def _build_knowledge(self) -> None:
        """Embedders and knowledge bases from config (numpy/usearch load only when configured)."""
        from .embeddings import build_embedder
        from .knowledge import build_knowledge_base, embedder_config

        config = self.config
        wanted = dict.fromkeys([*config.embeddings, *(kb.embedder for kb in config.knowledge.values())])
        if config.cache is not None and config.cache.enabled and config.cache.semantic.enabled:
            wanted[config.cache.semantic.embedder] = None
        for name in wanted:
            cfg = embedder_config(config, name)
            upstream = self.upstreams.get(cfg.model or "") if cfg.kind == "openai" and not cfg.url else None
            self.embedders[name] = build_embedder(name, cfg, self.pool, upstream=upstream)
        for name, kb in config.knowledge.items():
            self.knowledge[name] = build_knowledge_base(
                name, kb, self.embedders[kb.embedder], self.pool, root=config
            )

    def _build_agents_and_workflows(self) -> None:
        """Agents first: the workflows' ``agent`` node is bound to the agent runtime."""
        from .agent.node import register_agent_node
        from .agent.runtime import AgentRuntime

        self.agents = AgentRuntime(self, sessions=self.sessions)
        if self.config.workflows:
            from .engine.apps import WorkflowApps
            from .engine.nodes.registry import default_registry

            registry = default_registry()
            register_agent_node(registry, self.agents)
            if self.knowledge:
                from .knowledge.node import register_knowledge_node

                register_knowledge_node(registry, self)
            self.workflows = WorkflowApps(
                self.config.workflows, llm=self, root=self.config, registry=registry,
                metrics=self.metrics.registry, sessions=self.sessions,
            )  # fmt: skip

    def embedder_for(self, model: str) -> Any:
        """The embedder a client names in ``model`` (``default`` exists once any is configured)."""
        embedder = self.embedders.get(model)
        if embedder is None:
            known = ", ".join(sorted(self.embedders)) or "none configured"
            raise NotFoundError(
                f"The embedding model `{model}` does not exist (configured: {known})",
                code="model_not_found",
                param="model",
            )
        return embedder

    async def embed(self, texts: list[str], *, model: str = "default") -> Any:
        """Embeddings (float32, L2-normalized rows) for host code."""
        self._check_running()
        return await self.embedder_for(model).embed(texts, kind="document")

    async def search(self, knowledge_base: str, query: str, **options: Any) -> list[Any]:
        """Retrieve from a configured knowledge base (``top_k``, ``score_threshold``, ``filters``)."""
        self._check_running()
        base = self.knowledge.get(knowledge_base)
        if base is None:
            known = ", ".join(sorted(self.knowledge)) or "none configured"
            raise NotFoundError(f"The knowledge base `{knowledge_base}` does not exist (configured: {known})")
        return list(await base.search(query, **options))

    async def run_workflow(
        self, name: str, inputs: dict[str, Any] | None = None, *, user: str = "", query: str = "",
        conversation: Any = None,
    ) -> Any:  # fmt: skip
        """Run a configured workflow to completion (``RunResult``: status, outputs, answer…)."""
        return await self._workflows().run_workflow(
            name, inputs, user=user, query=query, conversation=conversation
        )

    async def stream_workflow(
        self, name: str, inputs: dict[str, Any] | None = None, *, user: str = "", query: str = "",
        conversation: Any = None,
    ) -> AsyncIterator[Any]:  # fmt: skip
        """A workflow run's events as they happen; closing the iterator stops the run."""
        stream = self._workflows().stream_workflow(
            name, inputs, user=user, query=query, conversation=conversation
        )
        try:
            async for event in stream:
                yield event
        finally:
            await stream.aclose()

    async def run_agent(self, name: str, goal: str, **options: Any) -> Any:
        """Run a configured agent to its final answer (``session=``, ``user=``, ``tenant=``…)."""
        return await self._agents().run(name, goal, **options)

    def stream_agent(self, name: str, goal: str, **options: Any) -> AsyncIterator[Any]:
        """An agent run's events (thoughts, tool calls, answer chunks) as they happen."""
        stream: AsyncIterator[Any] = self._agents().stream(name, goal, **options)
        return stream

    def _agents(self) -> Any:
        self._check_running()
        if self.agents is None:
            raise NotFoundError("No agents or tools are configured (add an `agents:` section)")
        return self.agents

    def _workflows(self) -> Any:
        self._check_running()
        if self.workflows is None:
            raise NotFoundError("No workflows are configured (add a `workflows:` section)")
        return self.workflows

    async def admit_host(
        self, path: str, *, client_ip: str | None = None, headers: dict[str, str] | None = None
    ) -> Any:
        """Admission for a host-app request under ``protect:`` rules, for host adapters.

        Returns ``None`` when no rule guards ``path``; otherwise a ticket to hold (``async with``)
        while the host handles the request. Raises ``RateLimited`` (429) or ``Overloaded`` (503);
        :meth:`host_refusal` turns those into a response.
        """
        if not self.admission.guards(path):
            return None
        await self.ensure_started()
        from .admission import RequestInfo

        info = RequestInfo(surface="host", path=path, client_ip=client_ip, headers=headers or {})
        return await self.admission.admit(info)

    @staticmethod
    def host_refusal(exc: TidegateError) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (Retry-After, RateLimit-*) and JSON body refusing a host request."""
        from .admission import error_headers

        body = _encode({"error": {"message": exc.message, "code": exc.code, "status": exc.status}})
        headers = {"content-type": "application/json", **error_headers(exc)}
        return exc.status, headers, body

    def model_names(self) -> list[str]:
        """What a client may put in ``model``: tiers (and ``auto``) first, then chat deployments."""
        tiers = [tier.name for tier in self.config.routing.tiers]
        names = (["auto", *tiers] if tiers else []) + [
            name for name, up in self.upstreams.items() if up.config.kind == "chat" and name not in tiers
        ]
        return names

    def upstream_for(self, model: str) -> Upstream:
        upstream = self.upstreams.get(model)
        if upstream is None:
            known = ", ".join(sorted(self.upstreams)) or "none configured"
            raise NotFoundError(
                f"The model `{model}` does not exist (configured: {known})",
                code="model_not_found",
                param="model",
            )
        return upstream

    async def chat(
        self, messages: list[dict[str, Any]], *, model: str, ctx: RequestContext | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """A chat completion for host code; returns the OpenAI ``chat.completion`` dict."""
        self._check_running()
        return await self.complete({**params, "messages": messages, "model": model}, ctx=ctx)

    async def stream_chat(
        self, messages: list[dict[str, Any]], *, model: str, ctx: RequestContext | None = None,
        **params: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream ``chat.completion.chunk`` dicts for host code."""
        self._check_running()
        async for chunk in self.stream_complete({**params, "messages": messages, "model": model}, ctx=ctx):
            yield chunk

    async def complete(self, body: dict[str, Any], *, ctx: RequestContext | None = None) -> dict[str, Any]:
        """A chat completion from a full OpenAI request body: cache, then router."""
        if self.turns is not None:
            await self.turns.pace()
        if self.cache is None:
            return await self._complete_uncached(body, ctx)
        result: dict[str, Any] = await self.cache.complete(
            body, ctx, lambda: self._complete_uncached(body, ctx)
        )
        return result

    async def stream_complete(
        self, body: dict[str, Any], *, ctx: RequestContext | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Routed (or cache-replayed) stream; headers are on ``ctx`` before the first chunk."""
        if self.turns is not None:
            await self.turns.pace()
        if self.cache is None:
            stream = self._stream_uncached(body, ctx)
        else:
            stream = self.cache.stream(body, ctx, lambda: self._stream_uncached(body, ctx))
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    async def _complete_uncached(
        self, body: dict[str, Any], ctx: RequestContext | None
    ) -> dict[str, Any]:
        response, decision = await self.router.chat(body, ctx)
        if ctx is not None:
            ctx.response_headers.extend(decision.headers())
        if decision.model is not None:
            self._count_usage(decision.model, response.get("usage"))
        return response

    async def _stream_uncached(
        self, body: dict[str, Any], ctx: RequestContext | None
    ) -> AsyncGenerator[dict[str, Any], None]:
        async with self.router.stream(body, ctx) as stream:
            decision = await stream.open()
            if ctx is not None:
                ctx.response_headers.extend(decision.headers())
            async for chunk in stream:
                usage = chunk.get("usage")
                if usage and decision.model is not None:
                    self._count_usage(decision.model, usage)
                yield chunk

    def _check_running(self) -> None:
        if self.state != "running":
            raise UsageError(f"Gateway is {self.state}; call `await gateway.start()` first")

    def _observe_upstream(self, name: str, outcome: str, seconds: float) -> None:
        self.metrics.upstream_call(name, outcome).observe(seconds)

    def _count_usage(self, model: str, usage: object) -> None:
        if isinstance(usage, dict):
            prompt = usage.get("prompt_tokens")
            completion = usage.get("completion_tokens")
            if isinstance(prompt, int) and prompt > 0:
                self.metrics.token(model, "prompt").inc(prompt)
            if isinstance(completion, int) and completion > 0:
                self.metrics.token(model, "completion").inc(completion)
