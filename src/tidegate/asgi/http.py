"""Raw ASGI request/response helpers for the surfaces.

The surfaces speak ASGI directly instead of through Starlette's Request/Response objects: the hot
path then allocates a handful of small objects per request, which is most of how we keep the
added latency well under a millisecond.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from ..errors import RequestError

__all__ = [
    "DisconnectWatcher",
    "client_ip",
    "header_map",
    "read_body",
    "route_path",
    "send_body",
    "start_stream",
]

Scope = dict[str, Any]
Headers = Iterable[tuple[str, str]]

_JSON = (b"content-type", b"application/json")
_SSE = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


_LISTS = frozenset({"x-forwarded-for", "forwarded"})


def route_path(scope: Scope) -> str:
    """The path below the app's mount point (``root_path``), the way Starlette routes match it.

    Ours rather than ``starlette.routing.get_route_path`` because importing that module costs
    ~45 ms of ``import tidegate`` for a few lines of logic.
    """
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path) or path == root_path:
        return path if path != root_path or not root_path else ""
    if path[len(root_path)] == "/":
        return path[len(root_path) :]
    return path


def header_map(scope: Scope) -> dict[str, str]:
    """Request headers as a lower-cased dict.

    The last value wins, except for the proxy-chain headers, whose repeated lines are joined
    with ``", "`` (RFC 9110 list syntax) so client identity sees the whole chain.
    """
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        if name in _LISTS and name in headers:
            value = headers[name] + ", " + value
        headers[name] = value
    return headers


def client_ip(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


async def read_body(receive: Any, headers: dict[str, str], limit: int) -> bytes:
    """The whole request body, refusing with 413 as soon as it is known to exceed ``limit``."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(
            f"Request body of {declared} bytes exceeds the limit of {limit} bytes",
            status=413,
            code="request_too_large",
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError("client disconnected")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise RequestError(
                    f"Request body exceeds the limit of {limit} bytes",
                    status=413,
                    code="request_too_large",
                )
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _encode_headers(extra: Headers) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra]


async def send_body(
    send: Any,
    status: int,
    body: bytes,
    headers: Headers = (),
    *,
    content_type: bytes | None = None,
) -> None:
    raw = [
        (b"content-type", content_type) if content_type else _JSON,
        (b"content-length", str(len(body)).encode()),
        *_encode_headers(headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def start_stream(send: Any, headers: Headers = (), *, status: int = 200) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [*_SSE, *_encode_headers(headers)]}
    )


class DisconnectWatcher:
    """Cancels the request's task when the client goes away, so the upstream call is aborted too.

    ASGI servers do not fail ``send`` on a closed connection, so without this a disconnected
    client would keep an upstream generating tokens nobody reads.
    """

    __slots__ = ("_task", "_watch", "disconnected")

    def __init__(self, receive: Any) -> None:
        self.disconnected = False
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._watch = asyncio.get_running_loop().create_task(self._run(receive))

    async def _run(self, receive: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                self._task.cancel("client disconnected")
                return

    def close(self) -> None:
        self._watch.cancel()

    def swallow(self) -> bool:
        """After a CancelledError: True (and the cancel is undone) when it was our disconnect."""
        if self.disconnected:
            self._task.uncancel()
            return True
        return False
