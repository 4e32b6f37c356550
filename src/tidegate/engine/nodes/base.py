"""What every node family builds on: typed data at load, an async ``run`` on the request path.

A node class compiles its DSL ``data`` once (``__init__`` gets a :class:`Compiler` to report
problems with the node's id, title and field path) and then serves any number of concurrent runs;
per-run state lives in the :class:`NodeContext` it is handed, never on the node.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import msgspec

from ...dsl.spec import NodeSpec, WorkflowSpec
from ..pool import VariablePool
from ..template import JinjaTemplate, Template

if TYPE_CHECKING:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from ..runtime import RunState
    from ..scheduler import GraphExecution

__all__ = [
    "Compiler",
    "LLMClient",
    "Node",
    "NodeContext",
    "NodeFailure",
    "NodeResult",
    "Services",
]

T = TypeVar("T")


class NodeFailure(Exception):
    """A node failed in a way its error strategy may handle; the message is shown to users."""

    def __init__(self, message: str, *, error_type: str = "NodeError") -> None:
        super().__init__(message)
        self.error_type = error_type


class NodeResult:
    """What one node execution produced; ``handle`` picks the out-edges a branch takes."""

    __slots__ = ("handle", "inputs", "metadata", "outputs", "process_data", "tokens", "usage")

    def __init__(
        self,
        outputs: dict[str, Any],
        *,
        inputs: dict[str, Any] | None = None,
        process_data: dict[str, Any] | None = None,
        handle: str = "source",
        metadata: dict[str, Any] | None = None,
        tokens: int = 0,
        usage: dict[str, Any] | None = None,
    ) -> None:
        self.outputs = outputs
        self.usage = usage
        """Model usage (``prompt_tokens``, ``completion_tokens``, ``total_tokens``) when a model ran."""
        self.inputs = inputs
        self.process_data = process_data
        self.handle = handle
        self.metadata = metadata
        self.tokens = tokens


class LLMClient(Protocol):
    """The Gateway's public chat API (what LLM-using nodes call)."""

    async def chat(self, messages: list[dict[str, Any]], *, model: str, **params: Any) -> dict[str, Any]: ...

    def stream_chat(
        self, messages: list[dict[str, Any]], *, model: str, **params: Any
    ) -> AsyncIterator[dict[str, Any]]: ...


class Services:
    """What nodes may use besides the pool: handed in by the runner's owner, never imported."""

    __slots__ = ("code", "code_limits", "datasets", "extensions", "http", "http_policy", "llm", "models")

    def __init__(
        self,
        *,
        llm: LLMClient | None = None,
        http: Any = None,
        code: Any = None,
        models: Mapping[str, str] | None = None,
        datasets: Mapping[str, str] | None = None,
        http_policy: Any = None,
        code_limits: Any = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        self.llm = llm
        self.http = http
        self.code = code
        self.models = dict(models or {})
        self.datasets = dict(datasets or {})
        self.http_policy = http_policy
        self.code_limits = code_limits
        self.extensions = dict(extensions or {})

    def model_name(self, dsl_name: str) -> str:
        return self.models.get(dsl_name, dsl_name)


class NodeContext:
    """One execution of one node: the pool it reads and writes, and the run it belongs to."""

    __slots__ = ("execution_id", "iteration_id", "loop_id", "node", "pool", "run", "scope")

    def __init__(
        self,
        *,
        node: Node,
        pool: VariablePool,
        run: RunState,
        scope: GraphExecution,
        execution_id: str,
        iteration_id: str | None,
        loop_id: str | None,
    ) -> None:
        self.node = node
        self.pool = pool
        self.run = run
        self.scope = scope
        self.execution_id = execution_id
        self.iteration_id = iteration_id
        self.loop_id = loop_id

    @property
    def services(self) -> Services:
        return self.run.services

    def stream(self, name: str, text: str) -> None:
        """Publish an incremental piece of output ``name`` (answer nodes relay it live)."""
        if text:
            self.run.stream_chunk(self, name, text)


class Compiler:
    """Load-time helper: converts node data into typed structs and collects problems."""

    def __init__(
        self,
        spec: WorkflowSpec,
        *,
        jinja: ImmutableSandboxedEnvironment,
        capabilities: frozenset[str],
        datasets: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.jinja = jinja
        self.capabilities = capabilities
        self.datasets = datasets
        """The app's ``datasets:`` map (DSL dataset id → knowledge base name); an id it does not
        map is taken as a knowledge base name, like model names."""
        self.issues: list[str] = []

    def problem(self, node: NodeSpec, message: str, field: str = "") -> None:
        at = f"{node.path}.data{'.' + field if field else ''}"
        self.issues.append(f"{message} - at `{at}` in {node.where()}")

    def convert(self, node: NodeSpec, tp: type[T], data: object | None = None) -> T | None:
        """Typed view of ``node.data`` (or part of it); reports msgspec's message with our path."""
        try:
            return msgspec.convert(node.data if data is None else data, tp, strict=False)
        except msgspec.ValidationError as exc:
            text = str(exc)
            message, sep, where = text.rpartition(" - at `$")
            if sep:
                self.issues.append(f"{message} - at `{node.path}.data{where} in {node.where()}")
            else:
                self.issues.append(f"{text} - at `{node.path}.data` in {node.where()}")
            return None

    def template(self, node: NodeSpec, text: str) -> Template:
        return Template(text)

    def jinja_template(
        self, node: NodeSpec, source: str, variables: list[tuple[str, tuple[str, ...]]], field: str
    ) -> JinjaTemplate | None:
        try:
            return JinjaTemplate(source, variables, self.jinja)
        except ValueError as exc:
            self.problem(node, str(exc), field)
            return None


class Node:
    """Base of all node families. Subclasses set ``type`` and implement ``run``."""

    type: ClassVar[str] = ""
    streams: ClassVar[frozenset[str]] = frozenset()
    """Outputs this node publishes incrementally through :meth:`NodeContext.stream`."""
    is_branch: ClassVar[bool] = False
    is_container: ClassVar[bool] = False
    is_response: ClassVar[bool] = False
    emits_node_events: ClassVar[bool] = True
    """Iteration and loop nodes report through their own event family instead."""

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        self.spec = spec
        self.id = spec.id
        self.title = spec.title
        self.parent = spec.parent

    async def run(self, ctx: NodeContext) -> NodeResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id!r}>"
