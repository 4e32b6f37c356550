"""Other workflows as tools, with a cap on how deeply they may call each other.

A workflow tool runs a configured workflow through the Gateway's public ``run_workflow`` with the
model's arguments as its inputs. A workflow may contain an agent node whose tools include
workflows, so a careless config (or a steered model) could recurse without end; the nesting depth
travels in a context variable, which every task created inside the call inherits, and a call
past ``max_depth`` is refused as an observation instead of recursing.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, Sequence
from typing import Any

from ..config.agents import RetryConfig
from ..errors import TidegateError
from .tools import Tool, ToolContext, ToolFailure

__all__ = ["WorkflowTool", "current_depth", "inputs_schema"]

_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("tidegate_workflow_tool_depth", default=0)


_INPUT_TYPES = {"text-input": "string", "paragraph": "string", "select": "string", "number": "number",
                "checkbox": "boolean", "json_object": "object", "file": "object", "file-list": "array"}  # fmt: skip


def inputs_schema(variables: Sequence[Any]) -> dict[str, Any]:
    """The JSON schema of a workflow's start-node inputs (Dify ``variables`` entries, as dicts or
    objects with ``variable``, ``type``, ``label``, ``required``, ``options``, ``max_length``), so
    the model sees what a workflow tool takes."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for var in variables:
        data: Mapping[str, Any] = var if isinstance(var, Mapping) else {
            key: getattr(var, key, None) for key in ("variable", "type", "label", "required", "options", "max_length")
        }
        name = data.get("variable")
        if not name:
            continue
        kind = data.get("type") or "text-input"
        prop: dict[str, Any] = {"type": _INPUT_TYPES.get(kind, "string")}
        if data.get("label"):
            prop["description"] = data["label"]
        if kind == "select" and data.get("options"):
            prop["enum"] = list(data["options"])
        if data.get("max_length") and prop["type"] == "string":
            prop["maxLength"] = data["max_length"]
        properties[name] = prop
        if data.get("required"):
            required.append(name)
    return {"type": "object", "properties": properties, "required": required}


def current_depth() -> int:
    """How many workflow tools deep the current task runs (0 outside any)."""
    return _DEPTH.get()


class WorkflowTool(Tool):
    kind = "workflow"

    def __init__(
        self,
        name: str,
        workflow: str,
        *,
        gateway: Any,
        description: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
        retry: RetryConfig | None = None,
        max_concurrency: int = 64,
        max_depth: int = 3,
    ) -> None:
        self.workflow = workflow
        self.max_depth = max_depth
        self._gateway = gateway
        super().__init__(
            name,
            description=description or f"Runs the `{workflow}` workflow with the given inputs.",
            parameters=parameters if parameters is not None else {"type": "object", "properties": {}},
            timeout=timeout,
            retry=retry,
            max_concurrency=max_concurrency,
        )

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        depth = _DEPTH.get()
        if depth >= self.max_depth:
            raise ToolFailure(
                f"workflow tools may nest at most {self.max_depth} deep; `{self.workflow}` would be level {depth + 1}"
            )
        run = getattr(self._gateway, "run_workflow", None)
        if run is None:
            raise ToolFailure("this gateway cannot run workflows")
        token = _DEPTH.set(depth + 1)
        try:
            result = await run(self.workflow, inputs=arguments, user=ctx.user or "agent")
        except TidegateError as exc:
            raise ToolFailure(exc.message) from None
        finally:
            _DEPTH.reset(token)
        status = getattr(result, "status", "succeeded")
        if status not in ("succeeded", "partial-succeeded"):
            raise ToolFailure(f"workflow `{self.workflow}` {status}: {getattr(result, 'error', None) or 'no detail'}")
        outputs = getattr(result, "outputs", None)
        if outputs:
            return outputs
        return getattr(result, "answer", None) or result
