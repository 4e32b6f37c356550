"""``protect:`` rules for the host app's own routes when tidegate is mounted as FastAPI routes.

``mount()`` adds routes, so unlike ``TidegateMiddleware`` nothing of tidegate sees the requests to
the app's other paths. This pure ASGI middleware (added by ``mount()`` on a ``FastAPI`` app whose
config has ``protect:`` rules) hands those requests to a ``TidegateMiddleware`` wrapped around the
rest of the app, which admits them (or answers 429/503 with Retry-After) exactly as it does in a
Starlette or raw ASGI host. Paths under the surfaces' prefixes and lifespan events go straight on:
surface requests meet ``limits:`` inside the surfaces, and ``mount()`` joins the lifespan itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.routing import get_route_path  # type: ignore[attr-defined]

from tidegate import Gateway, TidegateMiddleware

__all__ = ["ProtectMiddleware"]


class ProtectMiddleware:
    def __init__(self, app: Any, *, gateway: Gateway, skip: Iterable[str] = ()) -> None:
        self.app = app
        self._guard = TidegateMiddleware(app, gateway=gateway)
        self._skip = tuple(prefix for prefix in skip if prefix)
        self._everything = any(not prefix for prefix in skip)
        """An empty prefix puts every path under tidegate: nothing is a host route to guard."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self._everything or self._under_prefix(get_route_path(scope)):
            await self.app(scope, receive, send)
            return
        await self._guard(scope, receive, send)

    def _under_prefix(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self._skip)
