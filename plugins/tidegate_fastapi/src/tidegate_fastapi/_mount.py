"""``mount()``: tidegate's surfaces as FastAPI routes, with the app's lifespan and a dependency.

The routes are real ``APIRoute``s so they appear in ``/docs`` with request and response schemas
(one per endpoint the gateway lists, described in ``_docs.py``),
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
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from tidegate import Gateway, TidegateConfig, TidegateMiddleware, UsageError

from ._docs import describe, endpoint_function, template
from ._protect import ProtectMiddleware

__all__ = ["STATE_KEY", "GatewayDep", "SurfaceRoute", "gateway_dependency", "mount"]

STATE_KEY = "tidegate.gateway"
"""Key of the Gateway in the lifespan state (``request.scope["state"]``)."""

_FORWARD = "_tidegate_forward"
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

ConfigLike = Gateway | TidegateConfig | str | os.PathLike[str]


class _Forward:
    """Raw ASGI hand-off to the surfaces, at the gateway's prefix (stateless, one per route).

    ``suffix`` is the route's path under the prefix, a template when it has path parameters
    (filled from the matched ``path_params``); ``None`` for the catch-all route.
    """

    __slots__ = ("_app", "_prefix", "_suffix", "_templated")

    def __init__(self, app: TidegateMiddleware, prefix: str, suffix: str | None) -> None:
        self._app = app
        self._prefix = prefix
        self._suffix = suffix
        self._templated = suffix is not None and "{" in suffix

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        suffix = self._suffix
        if suffix is None:  # the catch-all route: whatever `{path}` matched
            suffix = "/" + scope["path_params"].get("path", "")
        elif self._templated:
            suffix = suffix.format_map(scope["path_params"])
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


def _catch_all() -> Callable[..., Any]:
    """A fresh catch-all endpoint (each mount's carries its own forwarder)."""

    async def surface(path: str) -> None:
        raise NotImplementedError  # SurfaceRoute answers with tidegate's surfaces instead

    return surface


def _security(config: TidegateConfig) -> Callable[[str, str], list[Any] | None]:
    """Which documented endpoints ask for a Bearer key: the gateway's API keys guard the OpenAI
    surface (and the admin one unless public); Dify routes take a workflow app's key."""
    auth = config.auth
    keyed = bool(auth.keys())
    api_key = [Security(HTTPBearer(auto_error=False, description="A tidegate API key"))]
    app_key = [Security(HTTPBearer(auto_error=False, scheme_name="DifyAppKey",
                                   description="A workflow app's key (`workflows.<app>.api_keys`)"))]  # fmt: skip
    public = {"/metrics": auth.public_metrics, "/healthz": auth.public_health}

    def dependencies(surface: str, path: str) -> list[Any] | None:
        if surface == "dify":
            return app_key
        if not keyed or (surface == "admin" and public.get(path, False)):
            return None
        return api_key

    return dependencies


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
    the prefix also goes to tidegate (its 404/405 envelopes): with an empty prefix, mount last.

    The documented routes are the ones the gateway lists (``TidegateMiddleware.routes()``): the
    OpenAI and admin surfaces, and the Dify service API when ``workflows:`` are configured. On a
    ``FastAPI`` app, the config's ``protect:`` rules also guard the app's own routes (an
    ``APIRouter`` cannot add middleware: mount on the app, or add ``TidegateMiddleware`` yourself).
    """
    gateway = _as_gateway(config)
    router = app.router if isinstance(app, FastAPI) else app
    if not isinstance(router, APIRouter):
        raise UsageError(f"Expected a FastAPI app or an APIRouter, got `{type(app).__name__}`")
    at = _normalize(gateway.config.prefix if prefix is None else prefix)
    target = TidegateMiddleware(_no_host, gateway=gateway)
    internal = gateway.config.prefix
    common: dict[str, Any] = {"tags": list(tags), "include_in_schema": include_in_schema,
                              "route_class_override": SurfaceRoute}  # fmt: skip
    security = _security(gateway.config)
    for method, listed, surface in target.routes():
        path = template(listed)
        if path is None:  # a regex we cannot spell as a template: served by the catch-all only
            continue
        path, doc = describe(method, path, surface)
        endpoint = endpoint_function(doc, path)
        setattr(endpoint, _FORWARD, _Forward(target, internal, path))
        extra: dict[str, Any] = {"response_class": doc.response_class} if doc.response_class else {}
        router.add_api_route(
            at + path, endpoint, methods=[method], name=f"tidegate_{doc.name}",
            response_model=doc.response_model, responses=doc.responses or None,
            dependencies=security(surface, path), **extra, **common,
        )  # fmt: skip
    # Everything else under the prefix (wrong methods, unknown paths) still gets tidegate's
    # answer and envelope rather than FastAPI's.
    catch_all = _catch_all()
    setattr(catch_all, _FORWARD, _Forward(target, internal, None))
    router.add_api_route(f"{at}/{{path:path}}", catch_all, methods=_METHODS, name="tidegate_surface",
                         **{**common, "include_in_schema": False})  # fmt: skip
    if gateway.config.protect and isinstance(app, FastAPI):
        app.add_middleware(ProtectMiddleware, gateway=gateway, skip=(internal, at))
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
