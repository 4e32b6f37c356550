"""What every surface request goes through: routing, auth, body, drain tracking, errors, metrics.

Each surface (OpenAI, Dify, admin) declares routes and how it spells errors; this module runs the
shared steps once so a surface handler only decodes its payload, calls the Gateway and encodes.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..admission import RequestInfo, error_headers
from ..asgi.http import DisconnectWatcher, client_ip, header_map, read_body, route_path, send_body
from ..context import RequestContext
from ..errors import AuthenticationError, RequestError, TidegateError

if TYPE_CHECKING:
    from ..gateway import Gateway

__all__ = ["NO_TICKET", "Route", "Surface", "SurfaceApp"]

Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[RequestContext, bytes, Send], Awaitable[int]]


class _Unlimited:
    """The ticket of a request no limit applies to: same interface, nothing to hold."""

    async def __aenter__(self) -> _Unlimited:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def headers(self, *, openai: bool = False) -> dict[str, str]:
        return {}

    async def reconcile(self, actual_tokens: int) -> None:
        return None


NO_TICKET = _Unlimited()


class Route:
    """One endpoint: a handler plus whether it needs a key and counts as in-flight work."""

    __slots__ = ("auth", "endpoint", "handler", "meters", "method", "path", "surface", "tracked")

    def __init__(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        surface: Surface,
        auth: bool = True,
        tracked: bool = True,
    ) -> None:
        self.method = method
        self.path = path
        self.handler = handler
        self.surface = surface
        self.auth = auth
        self.tracked = tracked
        self.endpoint = path
        self.meters: _RouteMeters | None = None


class _RouteMeters:
    """A route's labelled metric children, resolved once: ``labels()`` costs µs per call."""

    __slots__ = ("_by_status", "_requests", "_surface", "endpoint", "in_flight", "latency", "overhead")

    def __init__(self, metrics: Any, route: Route) -> None:
        name = route.surface.name
        self._surface = name
        self.endpoint = route.endpoint
        self._requests = metrics.requests
        self._by_status: dict[int, Any] = {}
        self.in_flight = metrics.in_flight.labels(name)
        self.latency = metrics.latency.labels(name, route.endpoint)
        self.overhead = metrics.overhead.labels(name)

    def count(self, status: int) -> None:
        child = self._by_status.get(status)
        if child is None:
            child = self._by_status[status] = self._requests.labels(
                self._surface, self.endpoint, str(status)
            )
        child.inc()


class Surface:
    """A wire protocol: its routes and its error envelope."""

    name = "surface"
    openai_headers = False
    """Whether rate-limit headers include OpenAI's ``x-ratelimit-*`` family."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def admit(
        self,
        ctx: RequestContext,
        *,
        model: str | None = None,
        workflow: str | None = None,
        user: str | None = None,
        est_tokens: int = 0,
    ) -> Any:
        """Admission for one surface request: a ticket to hold while serving (raises 429/503)."""
        admission = self.gateway.admission
        if not admission.has_limits:
            return NO_TICKET
        info = RequestInfo(
            surface=self.name, path=ctx.path, model=model, workflow=workflow,
            client_ip=ctx.client_ip, api_key_name=ctx.api_key_name, user=user or ctx.user,
            tenant=ctx.tenant, headers=ctx.headers, est_tokens=est_tokens, deadline=ctx.deadline,
        )  # fmt: skip
        ticket = await admission.admit(info)
        ctx.response_headers.extend(ticket.headers(openai=self.openai_headers).items())
        return ticket

    def routes(self) -> Sequence[Route]:
        raise NotImplementedError

    def patterns(self) -> Sequence[tuple[str, re.Pattern[str], Any]]:
        """Endpoints with one path parameter: (method, regex with one group, handler)."""
        return ()

    def error_body(self, exc: TidegateError) -> bytes:
        raise NotImplementedError

    def error_headers(self, exc: TidegateError) -> list[tuple[str, str]]:
        return list(error_headers(exc, openai=self.openai_headers).items())

    async def send_error(self, send: Send, exc: TidegateError, ctx: RequestContext) -> int:
        if ctx.response_started:
            await self.send_late_error(send, exc)
            return exc.status
        await send_body(send, exc.status, self.error_body(exc), self.error_headers(exc))
        return exc.status


    async def send_late_error(self, send: Send, exc: TidegateError) -> None:
        """An error after the response started: end the body; streaming surfaces override this
        to send an error event the client can read."""
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class SurfaceApp:
    """The ASGI app behind the prefix: dispatches to the surfaces' routes."""

    def __init__(self, gateway: Gateway, surfaces: Sequence[Surface], *, fallback: Surface) -> None:
        self.gateway = gateway
        self.prefix = gateway.config.prefix
        self.fallback = fallback
        self._routes: dict[tuple[str, str], Route] = {}
        self._paths: dict[str, Route] = {}
        self._patterns: list[tuple[str, re.Pattern[str], Any, Surface]] = []
        for surface in surfaces:
            for route in surface.routes():
                self._routes[(route.method, route.path)] = route
                self._paths.setdefault(route.path, route)
            for method, pattern, handler in surface.patterns():
                self._patterns.append((method, pattern, handler, surface))
        self._keys = [(name, secret.encode()) for name, secret in gateway.config.auth.keys().items()]
        self._tenant_header = (gateway.config.tenant_header or "").lower() or None
        self._limit = int(gateway.config.max_body_size)
        self._overhead = gateway.config.overhead_header

    def routes(self) -> list[tuple[str, str, str]]:
        """Every endpoint as (method, path under the prefix, surface name), e.g. for API docs."""
        listed = [(r.method, r.path, r.surface.name) for r in self._routes.values()]
        listed += [(m, p.pattern, s.name) for m, p, _, s in self._patterns]
        return listed

    def _pattern_route(self, method: str, path: str) -> Route | None:
        """Endpoints with a path parameter (``/v1/workflows/tasks/{id}/stop``): a regex each."""
        for wanted, pattern, handler, surface in self._patterns:
            if wanted == method and (match := pattern.match(path)) is not None:
                route = Route(
                    method, path, functools.partial(handler, param=match.group(1)), surface=surface,
                    auth=False,
                )  # fmt: skip
                route.endpoint = pattern.pattern
                return route
        return None

    def matches(self, scope: dict[str, Any]) -> bool:
        path = route_path(scope)
        prefix = self.prefix
        return not prefix or path == prefix or path.startswith(prefix + "/")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        path = route_path(scope)[len(self.prefix) :] or "/"
        route = self._routes.get((scope["method"], path))
        headers = header_map(scope)
        ctx = RequestContext(
            headers=headers, client_ip=client_ip(scope), path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
        )  # fmt: skip
        if route is None:
            route = self._pattern_route(scope["method"], path)
        if route is None:
            await self._no_route(scope["method"], path, send, ctx)
            return
        surface = route.surface
        ctx.surface = surface.name
        meters = route.meters
        if meters is None:
            meters = route.meters = _RouteMeters(self.gateway.metrics, route)
        meters.in_flight.inc()
        status = 500
        try:
            status = await self._serve(route, receive, send, ctx)
        finally:
            meters.in_flight.dec()
            elapsed = time.perf_counter() - ctx.started
            meters.count(status)
            meters.latency.observe(elapsed)
            meters.overhead.observe(max(0.0, elapsed - ctx.upstream_seconds))

    async def _serve(self, route: Route, receive: Any, send: Send, ctx: RequestContext) -> int:
        surface = route.surface
        watcher: DisconnectWatcher | None = None
        try:
            if route.auth:
                self._authenticate(ctx)
            elif self._tenant_header:
                ctx.tenant = ctx.headers.get(self._tenant_header)
            body = await read_body(receive, ctx.headers, self._limit) if route.method in ("POST", "PUT", "PATCH", "DELETE") else b""
            if not route.tracked:
                return await route.handler(ctx, body, self._sender(send, ctx))
            await self.gateway.ensure_started()
            async with self.gateway.flight():
                watcher = DisconnectWatcher(receive)
                try:
                    return await route.handler(ctx, body, self._sender(send, ctx))
                finally:
                    watcher.close()
        except TidegateError as exc:
            self.gateway.metrics.errors.labels(surface.name, exc.code).inc()
            return await surface.send_error(self._sender(send, ctx), exc, ctx)
        except asyncio.CancelledError:
            if watcher is not None and watcher.swallow():
                self.gateway.metrics.errors.labels(surface.name, "client_disconnected").inc()
                return 499
            raise

    def _sender(self, send: Send, ctx: RequestContext) -> Send:
        """Adds tidegate's response headers (overhead, route…) to whatever the handler starts."""
        async def wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                ctx.response_started = True
                extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in ctx.response_headers]
                if self._overhead:
                    extra.append((b"x-tidegate-overhead-ms", f"{ctx.overhead_ms():.3f}".encode()))
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        return wrapped

    def _authenticate(self, ctx: RequestContext) -> None:
        if not self._keys:
            if self._tenant_header:
                ctx.tenant = ctx.headers.get(self._tenant_header)
            return
        header = ctx.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError(
                "Missing API key: send `Authorization: Bearer <key>`", code="invalid_api_key"
            )
        presented = token.strip().encode()
        found = None
        for name, secret in self._keys:  # compare against all: timing reveals nothing
            if hmac.compare_digest(presented, secret):
                found = name
        if found is None:
            raise AuthenticationError("Incorrect API key provided", code="invalid_api_key")
        ctx.api_key_name = found
        ctx.tenant = found

    async def _no_route(self, method: str, path: str, send: Send, ctx: RequestContext) -> None:
        route = self._paths.get(path)
        if route is not None:
            exc = RequestError(
                f"Method {method} is not allowed on {self.prefix}{path}", status=405, code="method_not_allowed"
            )
            await route.surface.send_error(self._sender(send, ctx), exc, ctx)
            return
        exc = RequestError(f"Unknown endpoint {method} {self.prefix}{path}", status=404, code="not_found")
        await self.fallback.send_error(self._sender(send, ctx), exc, ctx)
