"""``TidegateMiddleware``: mounts the surfaces under a prefix inside any ASGI app.

Pure ASGI (no ``BaseHTTPMiddleware``): paths outside the prefix go to the host app with the
original ``scope``, ``receive`` and ``send`` objects, so streaming, large bodies and websockets
are untouched. The middleware joins the host's lifespan: the Gateway starts before the host's own
startup handlers (so they can use it) and stops after the host's shutdown completes; with hosts
that do not speak lifespan, or servers that send none, it starts lazily on the first request.
"""

from __future__ import annotations

import os
from typing import Any

from ..config import TidegateConfig
from ..errors import TidegateError, UsageError
from ..gateway import Gateway
from ..surfaces import build_surface_app
from .http import header_map, route_path

__all__ = ["TidegateMiddleware"]

ASGIApp = Any


class TidegateMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        config: TidegateConfig | str | os.PathLike[str] | None = None,
        gateway: Gateway | None = None,
    ) -> None:
        if (config is None) == (gateway is None):
            raise UsageError("TidegateMiddleware needs exactly one of `config=` or `gateway=`")
        self.app = app
        self.gateway = gateway if gateway is not None else Gateway(config)  # type: ignore[arg-type]
        self.surfaces = build_surface_app(self.gateway)
        self._protects = bool(self.gateway.config.protect)

    def routes(self) -> list[tuple[str, str, str]]:
        """The surfaces' endpoints as ``(method, path, surface name)``, paths relative to the
        prefix; an endpoint with a path parameter is given as its regex (starting with ``^``).
        For host adapters that list the endpoints, e.g. in OpenAPI docs."""
        return self.surfaces.routes()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            if self.surfaces.matches(scope):
                await self.surfaces(scope, receive, send)
            elif self._protects:
                await self._guarded(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _guarded(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """A host route under ``protect:`` limits: admitted, or refused with 429/503 here."""
        gateway = self.gateway
        client = scope.get("client")
        try:
            ticket = await gateway.admit_host(
                route_path(scope), client_ip=client[0] if client else None, headers=header_map(scope)
            )
        except TidegateError as exc:
            status, headers, body = gateway.host_refusal(exc)
            raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            raw.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": body})
            return
        if ticket is None:
            await self.app(scope, receive, send)
            return
        async with ticket:
            await self.app(scope, receive, send)

    async def _lifespan(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        gateway = self.gateway
        owned = gateway.state == "unopened"  # a gateway the host started itself stays theirs
        seen_startup = False
        failed = False

        async def lifespan_receive() -> dict[str, Any]:
            nonlocal seen_startup, failed
            message: dict[str, Any] = await receive()
            if message["type"] == "lifespan.startup":
                seen_startup = True
                if owned:
                    try:
                        await gateway.start()
                    except Exception as exc:
                        failed = True
                        await send({"type": "lifespan.startup.failed", "message": f"tidegate: {exc}"})
                        raise
            return message

        async def lifespan_send(message: dict[str, Any]) -> None:
            kind = message["type"]
            if owned and kind in ("lifespan.shutdown.complete", "lifespan.startup.failed"):
                await gateway.stop()
            await send(message)

        try:
            await self.app(scope, lifespan_receive, lifespan_send)
        except BaseException:
            if failed or seen_startup:
                if owned:
                    await gateway.stop()
                if failed:
                    return
                raise
            # The host app does not speak lifespan: run the protocol for the gateway alone.
            await self._own_lifespan(receive, send, owned)

    async def _own_lifespan(self, receive: Any, send: Any, owned: bool) -> None:
        gateway = self.gateway
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if owned:
                        await gateway.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": f"tidegate: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if owned:
                    await gateway.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
