"""Per-request state that travels from a surface through admission, cache, router and upstream.

One object per request, created by the surface and dropped when the response ends; nothing here is
shared between requests, so components can write to it without locks.
"""

from __future__ import annotations

import time

__all__ = ["RequestContext"]


class RequestContext:
    """Who is asking, by when the answer is due, and what the request cost along the way.

    ``upstream_seconds`` accumulates time spent waiting on providers so the surface can report
    tidegate's own overhead (total minus upstream) in ``X-Tidegate-Overhead-Ms``.
    """

    __slots__ = (
        "api_key_name",
        "client_ip",
        "deadline",
        "headers",
        "path",
        "query",
        "request_id",
        "response_headers",
        "response_started",
        "started",
        "surface",
        "tenant",
        "upstream_seconds",
        "user",
    )

    def __init__(
        self,
        *,
        surface: str = "host",
        tenant: str | None = None,
        user: str | None = None,
        api_key_name: str | None = None,
        client_ip: str | None = None,
        deadline: float | None = None,
        headers: dict[str, str] | None = None,
        request_id: str | None = None,
        path: str = "/",
        query: str = "",
    ) -> None:
        self.path = path
        self.query = query
        """The raw query string (``a=1&b=2``), for endpoints that take parameters there."""
        self.surface = surface
        self.tenant = tenant
        self.user = user
        self.api_key_name = api_key_name
        self.client_ip = client_ip
        self.deadline = deadline
        self.headers = headers or {}
        self.request_id = request_id
        self.started = time.perf_counter()
        self.upstream_seconds = 0.0
        self.response_headers: list[tuple[str, str]] = []
        self.response_started = False

    def overhead_ms(self) -> float:
        """Milliseconds spent in tidegate itself so far (wall time minus upstream waits)."""
        return max(0.0, (time.perf_counter() - self.started - self.upstream_seconds) * 1000.0)
