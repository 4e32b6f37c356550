"""Host: a bare ASGI app (no framework) wrapped by ``TidegateMiddleware``."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from tidegate import Gateway, TidegateMiddleware

from . import MESSAGES, config_path, digest, stream_lines


async def _json(send: Any, status: int, data: object) -> None:
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


async def host(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path, method = scope["path"], scope["method"]
    if (method, path) == ("GET", "/"):
        await _json(send, 200, {"host": "asgi"})
    elif (method, path) == ("POST", "/echo"):
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await _json(send, 200, digest(b"".join(chunks)))
    elif (method, path) == ("GET", "/stream"):
        n = int(parse_qs(scope["query_string"].decode()).get("n", ["10"])[0])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for line in stream_lines(n):
            await send({"type": "http.response.body", "body": line, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif (method, path) == ("GET", "/host-chat"):
        answer = await gateway.chat(MESSAGES, model="light", max_tokens=5)
        await _json(send, 200, {"content": answer["choices"][0]["message"]["content"]})
    else:
        await _json(send, 404, {"host_error": "not found"})


gateway = Gateway(config_path())
app = TidegateMiddleware(host, gateway=gateway)
