"""One WSGI request answered by tidegate's ASGI surfaces running on the gateway's loop.

The WSGI thread builds an ASGI scope from the environ, reads the (size-capped) body, starts the
ASGI call on the loop and waits for ``http.response.start``. A response whose body arrives in one
message is returned as bytes; anything longer (SSE) becomes a generator fed through a bounded
``Channel``. When the WSGI server closes that generator early (the client went away), the ASGI
side receives ``http.disconnect``, which cancels the request and aborts the upstream call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import IO, Any
from urllib.parse import quote

from tidegate import ShuttingDown

from ._channel import END, Channel, Drain
from ._loop import LoopThread

__all__ = ["Exchange", "environ_to_scope", "read_body"]

_START = "http.response.start"
_log = logging.getLogger("tidegate.flask")


def environ_to_scope(environ: dict[str, Any], path: str) -> dict[str, Any]:
    """An ASGI HTTP scope for ``path`` from a WSGI environ (headers, client, query string)."""
    headers: list[tuple[bytes, bytes]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").lower().encode("latin-1"), value.encode("latin-1")))
    for key, name in (("CONTENT_TYPE", b"content-type"), ("CONTENT_LENGTH", b"content-length")):
        value = environ.get(key)
        if value:
            headers.append((name, value.encode("latin-1")))
    remote = environ.get("REMOTE_ADDR")
    protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": protocol.partition("/")[2] or "1.1",
        "method": environ["REQUEST_METHOD"],
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": path,
        "raw_path": quote(path).encode(),
        "root_path": "",
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "headers": headers,
        "client": (remote, int(environ.get("REMOTE_PORT") or 0)) if remote else None,
        "server": (environ.get("SERVER_NAME", "localhost"), int(environ.get("SERVER_PORT") or 0)),
        "extensions": {},
    }


def read_body(stream: IO[bytes], content_length: str | None, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes of the body: enough for tidegate to answer 413, never more.

    A declared length above ``limit`` is not read at all: the surface refuses it from the header.
    """
    if content_length and content_length.isdigit():
        size = int(content_length)
        if size > limit:
            return b""
        return stream.read(size) if size else b""
    return stream.read(limit + 1)  # chunked / unknown length: the server marked the end


class Exchange:
    """The two ASGI callables of one request, plus the WSGI side that waits on them."""

    __slots__ = ("_body", "_body_sent", "_disconnected", "channel", "future", "loop")

    def __init__(self, loop: LoopThread, body: bytes, *, queue_size: int) -> None:
        self.loop = loop
        self.channel = Channel(loop.loop, queue_size)
        self._body = body
        self._body_sent = False
        self._disconnected = asyncio.Event()
        self.future: concurrent.futures.Future[None] | None = None

    async def receive(self) -> dict[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        await self._disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        await self.channel.put(message)

    def start(self, app: Any, scope: dict[str, Any]) -> None:
        self.future = future = self.loop.submit(app(scope, self.receive, self.send))
        future.add_done_callback(self._done)

    def _done(self, future: concurrent.futures.Future[None]) -> None:
        if future.cancelled():
            self.channel.end(ShuttingDown("tidegate stopped before this request finished"))
        else:
            self.channel.end(future.exception())

    def disconnect(self) -> None:
        """The client is gone: tell the ASGI side (cancels the request) and free the producer."""
        self.channel.abandon()
        try:
            self.loop.loop.call_soon_threadsafe(self._disconnected.set)
        except RuntimeError:
            pass

    def response_start(self, timeout: float | None) -> tuple[int, list[tuple[str, str]]]:
        message = self.channel.get(timeout)
        if message is END or message["type"] != _START:
            raise RuntimeError("tidegate's surface ended without starting a response")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", ())]
        return int(message["status"]), headers

    def first_body(self, timeout: float | None) -> tuple[bytes, bool]:
        """The first body chunk and whether more follow."""
        message = self.channel.get(timeout)
        if message is END:
            return b"", False
        return message.get("body", b""), bool(message.get("more_body", False))

    def rest(self, first: bytes, timeout: float | None) -> ResponseBody:
        """The remaining body, as a WSGI response iterable (the server closes it early on disconnect)."""
        return ResponseBody(self, first, timeout)


class ResponseBody:
    """Body chunks of one ASGI response, as a WSGI response iterable: ``close()`` (or dropping it)
    before the last chunk means the client left, which the ASGI side hears as a disconnect."""

    __slots__ = ("_first", "_messages")

    def __init__(self, exchange: Exchange, first: bytes, timeout: float | None) -> None:
        self._messages: Drain[dict[str, Any]] = Drain(exchange.channel, timeout, exchange.disconnect)
        self._first = first

    def __iter__(self) -> ResponseBody:
        return self

    def __next__(self) -> bytes:
        if self._first:
            first, self._first = self._first, b""
            return first
        while True:
            try:
                message = next(self._messages)
            except StopIteration:
                raise
            except Exception as exc:  # the loop stopped mid-stream: end the body, say why
                _log.warning("tidegate stream ended early: %s", exc)
                raise StopIteration from None
            last = not message.get("more_body", False)
            if last:
                self._messages.finish()
            chunk: bytes = message.get("body", b"")
            if chunk:
                return chunk
            if last:
                raise StopIteration

    def close(self) -> None:
        self._messages.close()
