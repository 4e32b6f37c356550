"""``mount()``: tidegate's surfaces as FastAPI routes, with the app's lifespan and a dependency.

The routes are real ``APIRoute``s so they appear in ``/docs`` with request and response schemas,
but their handler is not FastAPI's: each one hands the raw ASGI request to the gateway's surfaces
(through a ``TidegateMiddleware`` with no host behind it). That keeps one implementation of the
wire formats, OpenAI's error envelopes instead of FastAPI's 422, true streaming, and the same
per-request cost as the middleware. Paths are rewritten to the gateway's own prefix, so the routes
can live anywhere in the app (an ``APIRouter`` included under another prefix, for instance).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from enum import Enum
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from tidegate import Gateway, TidegateConfig, TidegateMiddleware, UsageError

from .schemas import ChatCompletion, ChatCompletionRequest, ErrorEnvelope, Health, ModelList

__all__ = ["STATE_KEY", "GatewayDep", "SurfaceRoute", "gateway_dependency", "mount"]

STATE_KEY = "tidegate.gateway"
"""Key of the Gateway in the lifespan state (``request.scope["state"]``)."""

_FORWARD = "_tidegate_forward"
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": text}
    for status, text in [
        (400, "Invalid request (bad JSON, missing fields)"),
        (401, "Missing or wrong API key"),
        (404, "Unknown model"),
        (413, "Request body too large"),
        (429, "Rate limited (see Retry-After)"),
        (502, "The upstream failed"),
        (503, "Overloaded or shutting down (see Retry-After)"),
        (504, "The upstream timed out"),
    ]
}
_SSE = {
    "text/event-stream": {
        "schema": {"type": "string"},
        "example": 'data: {"object": "chat.completion.chunk", ...}\n\ndata: [DONE]\n\n',
    }
}
# Endpoint name → the surface path it forwards to (``surface`` is the catch-all).
_SUFFIXES = {
    "chat_completions": "/v1/chat/completions",
    "list_models": "/v1/models",
    "metrics": "/metrics",
    "healthz": "/healthz",
}

ConfigLike = Gateway | TidegateConfig | str | os.PathLike[str]


class _Forward:
    """Raw ASGI hand-off to the surfaces, at the gateway's prefix (stateless, one per route)."""

    __slots__ = ("_app", "_prefix", "_suffix")

    def __init__(self, app: TidegateMiddleware, prefix: str, suffix: str | None) -> None:
        self._app = app
        self._prefix = prefix
        self._suffix = suffix

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        suffix = self._suffix
        if suffix is None:  # the catch-all route: whatever `{path}` matched
            suffix = "/" + scope["path_params"].get("path", "")
        path = self._prefix + suffix
        child = {**scope, "path": path, "raw_path": quote(path).encode(), "root_path": ""}
        await self._app(child, receive, send)


class SurfaceRoute(APIRoute):
    """An ``APIRoute`` documented like any other, answered by tidegate's raw ASGI surfaces.

    The forwarder is read from the endpoint rather than stored on the route because FastAPI may
    rebuild routes from their endpoint when a router is included.
    """

    def get_route_handler(self) -> Callable[[Request], Any]:
        forward: _Forward = getattr(self.endpoint, _FORWARD)

        async def handler(request: Request) -> Any:
            return forward  # request_response calls it as `forward(scope, receive, send)`

        return handler


async def _no_host(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Never reached: every forwarded path lies under the gateway's prefix."""
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _endpoints() -> dict[str, Callable[..., Any]]:
    """Fresh endpoint functions (one set per mount, each carrying its own forwarder).

    Their signatures are what FastAPI documents; their bodies never run.
    """

    async def chat_completions(body: ChatCompletionRequest) -> ChatCompletion:
        """Create a chat completion (OpenAI-compatible); `"stream": true` answers with SSE."""
        raise NotImplementedError

    async def list_models() -> ModelList:
        """List the chat models this gateway serves."""
        raise NotImplementedError

    async def metrics() -> str:
        """Prometheus metrics of this gateway."""
        raise NotImplementedError

    async def healthz() -> Health:
        """Liveness and lifecycle state of this gateway."""
        raise NotImplementedError

    async def surface(path: str) -> None:
        raise NotImplementedError

    return {fn.__name__: fn for fn in (chat_completions, list_models, metrics, healthz, surface)}


def _as_gateway(config: ConfigLike) -> Gateway:
    return config if isinstance(config, Gateway) else Gateway(config)


def _normalize(prefix: str) -> str:
    stripped = prefix.strip("/")
    return "/" + stripped if stripped else ""


def mount(
    app: FastAPI | APIRouter,
    config: ConfigLike,
    *,
    prefix: str | None = None,
    tags: Sequence[str | Enum] = ("tidegate",),
    include_in_schema: bool = True,
) -> Gateway:
    """Add tidegate's surfaces to ``app`` (a ``FastAPI`` app or an ``APIRouter``) and return the Gateway.

    ``config`` is a config file path, a ``TidegateConfig`` or a ``Gateway``; ``prefix`` defaults
    to the config's. The Gateway starts before the lifespan of the app or router it is mounted on
    (so that lifespan can use it) and stops after it; a Gateway that was already started stays the
    caller's to stop. Mount on an ``APIRouter`` before ``include_router`` so FastAPI merges the
    lifespan (FastAPI nests it inside the including app's own lifespan). Every other path under
    the prefix also goes to tidegate (its other surfaces, its 404/405 envelopes): with an empty
    prefix, mount last.
    """
    gateway = _as_gateway(config)
    router = app.router if isinstance(app, FastAPI) else app
    if not isinstance(router, APIRouter):
        raise UsageError(f"Expected a FastAPI app or an APIRouter, got `{type(app).__name__}`")
    at = _normalize(gateway.config.prefix if prefix is None else prefix)
    target = TidegateMiddleware(_no_host, gateway=gateway)
    internal = gateway.config.prefix
    endpoints = _endpoints()
    for name, fn in endpoints.items():
        suffix = None if name == "surface" else _SUFFIXES[name]
        setattr(fn, _FORWARD, _Forward(target, internal, suffix))

    secured = bool(gateway.config.auth.keys())
    bearer = [Security(HTTPBearer(auto_error=False, description="A tidegate API key"))]
    common: dict[str, Any] = {"tags": list(tags), "include_in_schema": include_in_schema}
    add = router.add_api_route
    add(f"{at}/v1/chat/completions", endpoints["chat_completions"], methods=["POST"],
        name="tidegate_chat_completions", route_class_override=SurfaceRoute,
        responses={200: {"content": _SSE, "description": "A completion, or SSE chunks when streaming"},
                   **_ERRORS},
        dependencies=bearer if secured else None, **common)  # fmt: skip
    add(f"{at}/v1/models", endpoints["list_models"], methods=["GET"], name="tidegate_models",
        route_class_override=SurfaceRoute, responses={401: _ERRORS[401]},
        dependencies=bearer if secured else None, **common)  # fmt: skip
    add(f"{at}/metrics", endpoints["metrics"], methods=["GET"], name="tidegate_metrics",
        route_class_override=SurfaceRoute, response_class=PlainTextResponse, **common)  # fmt: skip
    add(f"{at}/healthz", endpoints["healthz"], methods=["GET"], name="tidegate_healthz",
        route_class_override=SurfaceRoute, responses={503: {"model": Health}}, **common)  # fmt: skip
    # Everything else under the prefix (other surfaces, wrong methods, unknown paths) still gets
    # tidegate's answer and envelope rather than FastAPI's.
    add(f"{at}/{{path:path}}", endpoints["surface"], methods=_METHODS, name="tidegate_surface",
        route_class_override=SurfaceRoute, include_in_schema=False)  # fmt: skip

    router.lifespan_context = _joined_lifespan(router.lifespan_context, gateway)
    if isinstance(app, FastAPI):
        app.state.tidegate = gateway
    return gateway



def _joined_lifespan(
    inner: Callable[[Any], AbstractAsyncContextManager[Any]], gateway: Gateway
) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        owned = gateway.state == "unopened"  # a gateway started by the caller stays theirs
        if owned:
            await gateway.start()
        try:
            async with inner(app) as state:
                yield {**(state or {}), STATE_KEY: gateway}
        finally:
            if owned:
                await gateway.stop()

    return lifespan


async def gateway_dependency(request: Request) -> Gateway:
    """``Depends(gateway_dependency)``: the mounted Gateway, started (lazily when no lifespan ran).

    With several mounts in one app, the innermost lifespan's gateway wins; use the Gateway objects
    ``mount()`` returns to tell them apart.
    """
    state = request.scope.get("state") or {}
    gateway = state.get(STATE_KEY) or getattr(request.app.state, "tidegate", None)
    if not isinstance(gateway, Gateway):
        raise UsageError(
            "No tidegate Gateway in this app: call `tidegate_fastapi.mount(app, config)` first"
        )
    await gateway.ensure_started()
    return gateway


GatewayDep = Annotated[Gateway, Depends(gateway_dependency)]
"""Type alias for endpoint parameters: ``async def view(gateway: GatewayDep): ...``."""
