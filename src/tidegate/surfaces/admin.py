"""Operational endpoints: Prometheus ``/metrics`` and ``/healthz``."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ..asgi.http import send_body
from ..context import RequestContext
from ..errors import TidegateError
from ..metrics import CONTENT_TYPE_LATEST
from .base import Route, Send, Surface

__all__ = ["AdminSurface"]

_encode = msgspec.json.Encoder().encode


class AdminSurface(Surface):
    name = "admin"

    def routes(self) -> Sequence[Route]:
        auth = self.gateway.config.auth
        return [
            Route("GET", "/metrics", self.metrics, surface=self, auth=not auth.public_metrics, tracked=False),
            Route("GET", "/healthz", self.health, surface=self, auth=not auth.public_health, tracked=False),
        ]

    def error_body(self, exc: TidegateError) -> bytes:
        return _encode({"error": {"message": exc.message, "code": exc.code, "status": exc.status}})

    async def metrics(self, ctx: RequestContext, raw: bytes, send: Send) -> int:
        await send_body(send, 200, self.gateway.metrics.render(), content_type=CONTENT_TYPE_LATEST.encode())
        return 200

    async def health(self, ctx: RequestContext, raw: bytes, send: Send) -> int:
        state = self.gateway.state
        ok = state in ("running", "unopened")  # unopened: starts lazily on the first request
        status = 200 if ok else 503
        body = {"status": "ok" if ok else "unavailable", "state": state, "in_flight": self.gateway.in_flight}
        await send_body(send, status, _encode(body))
        return status
