"""The configured workflows as apps: versions, canary choice, services, metrics, running tasks.

One :class:`WorkflowApps` belongs to the Gateway. It loads every DSL file of the ``workflows:``
section at construction (one ConfigError for all of them), owns the services nodes use (code
sandbox, HTTP client, conversation sessions) between ``start()`` and ``stop()``, and is what both
the Dify surface and host code (``run_workflow`` / ``stream_workflow``) call. A canary sends a
deterministic share of users to a second DSL; the version that ran is in ``workflow_id`` of every
event and in the metrics, so rolling back is deleting the ``canary`` block.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..config.workflows import WorkflowConfig, resolve_path
from ..errors import ConfigError, NotFoundError, UsageError
from ..sessions import Sessions
from .events import Event, NodeFinished, NodeRetry
from .graph import Workflow, load_workflow
from .http import HttpNodeClient, HttpPolicy
from .nodes.base import LLMClient, Services
from .nodes.registry import NodeRegistry
from .runner import Conversation, RunResult, WorkflowRun, WorkflowRunner
from .runtime import RunLimits
from .sandbox import CodeLimits, CodeSandbox

if TYPE_CHECKING:
    from ..config.schema import TidegateConfig

__all__ = ["WorkflowApp", "WorkflowApps", "WorkflowMetrics"]


class WorkflowMetrics:
    """Prometheus families of the engine, on the Gateway's registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kwargs: dict[str, Any] = {"registry": registry or CollectorRegistry(auto_describe=True)}
        self.runs = Counter("tidegate_workflow_runs", "Workflow runs by workflow, version and final status.",
                            ["workflow", "version", "status"], **kwargs)  # fmt: skip
        self.active = Gauge("tidegate_workflow_active_runs", "Workflow runs executing now.", ["workflow"], **kwargs)
        self.waiting = Gauge("tidegate_workflow_waiting_runs", "Runs queued for a free slot of their app.",
                             ["workflow"], **kwargs)  # fmt: skip
        self.node_latency = Histogram(
            "tidegate_workflow_node_duration_seconds", "Node execution time by node type and status.",
            ["node_type", "status"], buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120), **kwargs,
        )  # fmt: skip
        self.retries = Counter("tidegate_workflow_node_retries", "Node retries by workflow and node type.",
                               ["workflow", "node_type"], **kwargs)  # fmt: skip


class _MetricsLayer:
    """Engine layer: counts one app version's runs and nodes (the engine imports no metrics)."""

    __slots__ = ("metrics", "name", "version")

    def __init__(self, metrics: WorkflowMetrics, name: str, version: str) -> None:
        self.metrics = metrics
        self.name = name
        self.version = version

    def on_start(self, run: WorkflowRun) -> None:
        self.metrics.active.labels(self.name).inc()

    def on_event(self, event: Event) -> None:
        if isinstance(event, NodeRetry):
            self.metrics.retries.labels(self.name, event.node_type).inc()
        elif isinstance(event, NodeFinished):
            self.metrics.node_latency.labels(event.node_type, event.status).observe(event.elapsed_time)

    def on_stop(self, run: WorkflowRun) -> None:
        self.metrics.active.labels(self.name).dec()
        if run.result is not None:
            self.metrics.runs.labels(self.name, self.version, run.result.status).inc()


class WorkflowApp:
    """One configured workflow: its versions and how a caller is assigned to one."""

    def __init__(self, name: str, config: WorkflowConfig, versions: dict[str, WorkflowRunner]) -> None:
        self.name = name
        self.config = config
        self.versions = versions
        self.primary = versions["primary"]
        self.mode = self.primary.workflow.mode
        self.slots = asyncio.Semaphore(config.max_active_runs) if config.max_active_runs else None

    @property
    def workflow(self) -> Workflow:
        return self.primary.workflow

    def choose(self, user: str, conversation_id: str | None = None) -> WorkflowRunner:
        """Primary or canary: a stable hash of the sticky key decides, so a user stays on one side."""
        canary = self.versions.get("canary")
        if canary is None or self.config.canary is None:
            return self.primary
        sticky = self.config.canary.sticky
        key = user if sticky == "user" else (conversation_id or user) if sticky == "conversation" else None
        if key is None:
            import random

            bucket = random.random() * 100
        else:
            digest = hashlib.sha256(f"{self.name}\0{key}".encode()).digest()
            bucket = int.from_bytes(digest[:8], "big") % 10_000 / 100
        return canary if bucket < self.config.canary.percent else self.primary


class WorkflowApps:
    def __init__(
        self,
        workflows: Mapping[str, WorkflowConfig],
        *,
        llm: LLMClient | None = None,
        root: TidegateConfig | None = None,
        registry: NodeRegistry | None = None,
        metrics: CollectorRegistry | None = None,
        sessions: Sessions | None = None,
        sandbox_workers: int = 2,
    ) -> None:
        self.metrics = WorkflowMetrics(metrics)
        self.sandbox = CodeSandbox(workers=sandbox_workers)
        self.http = HttpNodeClient()
        self._own_sessions = sessions is None
        self.sessions = sessions or Sessions()
        self.state = "unopened"
        self.apps: dict[str, WorkflowApp] = {}
        self._keys: dict[str, WorkflowApp] = {}
        self._tasks: dict[str, tuple[str, str, WorkflowRun]] = {}
        issues: list[str] = []
        for name, cfg in workflows.items():
            try:
                app = self._load(name, cfg, llm, root, registry)
            except ConfigError as exc:
                issues.extend(exc.issues)
                continue
            self.apps[name] = app
            for key in cfg.api_keys:
                self._keys[key] = app
        if issues:
            raise ConfigError(issues)

    def _load(
        self, name: str, cfg: WorkflowConfig, llm: LLMClient | None, root: TidegateConfig | None,
        registry: NodeRegistry | None,
    ) -> WorkflowApp:  # fmt: skip
        services = Services(
            llm=llm, http=self.http, code=self.sandbox, models=cfg.models, datasets=cfg.datasets,
            http_policy=HttpPolicy(allow_private=cfg.http.allow_private, timeout=float(cfg.http.timeout),
                                   max_response_size=int(cfg.http.max_response_size),
                                   max_redirects=cfg.http.max_redirects),
            code_limits=CodeLimits(cpu_time=float(cfg.code.cpu_time), wall_time=float(cfg.code.wall_time),
                                   memory=int(cfg.code.memory), max_output=int(cfg.code.max_output_size)),
        )  # fmt: skip
        files = {"primary": cfg.file} | ({"canary": cfg.canary.file} if cfg.canary else {})
        versions: dict[str, WorkflowRunner] = {}
        problems: list[str] = []
        for version, file in files.items():
            try:
                workflow = load_workflow(resolve_path(file, root), env=cfg.env, registry=registry,
                                         node_timeout=float(cfg.node_timeout), datasets=cfg.datasets)  # fmt: skip
            except ConfigError as exc:
                problems.extend(exc.issues)
                continue
            versions[version] = WorkflowRunner(
                workflow, services=services, limits=RunLimits(timeout=float(cfg.timeout), max_steps=cfg.max_steps),
                workflow_id=f"{name}@{version}", app_id=name,
                layers=[_MetricsLayer(self.metrics, name, version)],
            )  # fmt: skip
        if problems:
            raise ConfigError(problems)
        if "canary" in versions and versions["canary"].workflow.mode != versions["primary"].workflow.mode:
            raise ConfigError(
                f"Expected the canary of `{name}` to be a {versions['primary'].workflow.mode} app like its primary,"
                f" got {versions['canary'].workflow.mode} - at `$.workflows.{name}.canary.file`"
            )
        return WorkflowApp(name, cfg, versions)

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.state != "unopened":
            raise UsageError(f"WorkflowApps cannot start: it is {self.state}")
        await self.sandbox.start()
        await self.http.start()
        self.state = "open"

    async def stop(self) -> None:
        """Stop every running workflow, then close the services they use."""
        runs = [run for _, _, run in self._tasks.values()]
        for run in runs:
            await run.aclose()
        self._tasks.clear()
        await self.http.close()
        await self.sandbox.close()
        if self._own_sessions:  # a store the Gateway shares with agents is the Gateway's to close
            await self.sessions.close()
        self.state = "closed"

    # -- lookup -----------------------------------------------------------------------------------

    def by_key(self, api_key: str) -> WorkflowApp | None:
        return self._keys.get(api_key)

    def app(self, name: str) -> WorkflowApp:
        found = self.apps.get(name)
        if found is None:
            known = ", ".join(sorted(self.apps)) or "none configured"
            raise NotFoundError(f"The workflow `{name}` does not exist (configured: {known})", code="not_found")
        return found

    # -- running ----------------------------------------------------------------------------------

    async def start_run(
        self,
        app: WorkflowApp,
        inputs: Mapping[str, Any] | None,
        *,
        user: str,
        query: str = "",
        files: list[dict[str, Any]] | None = None,
        conversation: Conversation | None = None,
    ) -> WorkflowRun:
        """Start a run (waiting for a slot when the app caps concurrent runs); registered for stop."""
        if self.state != "open":
            raise UsageError(f"WorkflowApps is {self.state}; start() it first")
        runner = app.choose(user, conversation.id if conversation else None)
        runner.prepare_inputs(inputs)  # invalid inputs fail before any wait
        if app.slots is not None:
            waiting = self.metrics.waiting.labels(app.name)
            waiting.inc()
            try:
                await app.slots.acquire()
            finally:
                waiting.dec()
        try:
            run = runner.start(inputs, user=user, query=query, files=files or [], conversation=conversation)
        except BaseException:
            if app.slots is not None:
                app.slots.release()
            raise
        self._tasks[run.task_id] = (app.name, user, run)
        run.on_done(lambda finished: self._done(app, finished))
        return run

    def _done(self, app: WorkflowApp, run: WorkflowRun) -> None:
        self._tasks.pop(run.task_id, None)
        if app.slots is not None:
            app.slots.release()

    def stop_task(self, app_name: str, task_id: str, user: str) -> bool:
        """Stop a running task of this app started by this user (others' tasks are invisible)."""
        found = self._tasks.get(task_id)
        if found is None or found[0] != app_name or found[1] != user:
            return False
        found[2].stop()
        return True

    async def run_workflow(self, name: str, inputs: Mapping[str, Any] | None = None, *, user: str = "",
                           query: str = "", conversation: Conversation | None = None) -> RunResult:  # fmt: skip
        """Host API: run to completion and return the result."""
        async with await self.start_run(self.app(name), inputs, user=user, query=query,
                                        conversation=conversation) as run:  # fmt: skip
            return await run.wait()

    async def stream_workflow(self, name: str, inputs: Mapping[str, Any] | None = None, *, user: str = "",
                              query: str = "", conversation: Conversation | None = None) -> AsyncIterator[Event]:  # fmt: skip
        """Host API: the run's events as they happen; closing the iterator stops the run."""
        async with await self.start_run(self.app(name), inputs, user=user, query=query,
                                        conversation=conversation) as run:  # fmt: skip
            async for event in run:
                yield event
