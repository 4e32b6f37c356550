"""Python callables as tools: ``module:function`` from config, or any function from host code.

The function is imported when the runtime is built (a typo fails at startup, not on the first
call) and described from its signature and docstring. Coroutine functions are awaited on the loop;
plain functions run on the Gateway's bounded worker pool so a blocking tool never stalls other
users. A timed-out sync function cannot be interrupted: its thread finishes in the background
while the run moves on, which is why the pool is bounded and each tool has a concurrency cap.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .._concurrency import WorkerPool
from ..config.agents import RetryConfig
from .schema import ArgumentsError, describe_callable, type_hints
from .tools import Tool, ToolContext, ToolFailure

__all__ = ["PythonTool", "import_callable"]


def import_callable(ref: str) -> Callable[..., Any]:
    """``package.module:attr.path`` → the object; raises ``ValueError`` saying what is wrong."""
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"Expected `module:function`, got `{ref}`")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"Cannot import module `{module_name}` ({exc})") from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"Module `{module_name}` has no attribute `{attr_path}`") from None
    if not callable(target):
        raise ValueError(f"Expected `{ref}` to be callable, got a `{type(target).__name__}`")
    return target  # type: ignore[no-any-return]


class PythonTool(Tool):
    kind = "python"

    def __init__(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        pool: WorkerPool,
        description: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
        retry: RetryConfig | None = None,
        max_concurrency: int = 64,
    ) -> None:
        schema = describe_callable(fn, description=description, hidden=(ToolContext,))
        self._schema = schema
        self._fn = fn
        self._pool = pool
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
        )
        self._context_params = [pname for pname, tp in type_hints(fn).items() if tp is ToolContext]
        super().__init__(
            name,
            description=schema.description or description or f"The `{name}` tool.",
            parameters=parameters if parameters is not None else schema.parameters,
            timeout=timeout,
            retry=retry,
            max_concurrency=max_concurrency,
        )
        self._checked = parameters is None
        """With a hand-written schema the arguments go through unchecked (the schema may say
        more than the signature can)."""

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        if self._checked:
            try:
                kwargs = self._schema.convert(arguments)
            except ArgumentsError as exc:
                raise ToolFailure(f"invalid arguments: {exc}") from None
        else:
            kwargs = dict(arguments)
        for pname in self._context_params:
            kwargs[pname] = ctx
        if self._is_async:
            return await self._fn(**kwargs)
        result = await self._pool.run(self._fn, **kwargs)
        if inspect.isawaitable(result):  # a sync function that returned a coroutine
            return await result
        return result
