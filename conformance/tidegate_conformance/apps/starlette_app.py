"""Host: a Starlette app with ``TidegateMiddleware`` added like ``examples/starlette_app.py``."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tidegate import Gateway, TidegateMiddleware

from . import MESSAGES, config_path, digest, stream_lines


async def index(request: Request) -> JSONResponse:
    return JSONResponse({"host": "starlette"})


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(digest(await request.body()))


async def stream(request: Request) -> StreamingResponse:
    n = int(request.query_params.get("n", "10"))
    return StreamingResponse(iter(stream_lines(n)), media_type="text/plain")


async def host_chat(request: Request) -> JSONResponse:
    answer = await gateway.chat(MESSAGES, model="light", max_tokens=5)
    return JSONResponse({"content": answer["choices"][0]["message"]["content"]})


gateway = Gateway(config_path())
app = Starlette(routes=[
    Route("/", index), Route("/echo", echo, methods=["POST"]), Route("/stream", stream),
    Route("/host-chat", host_chat),
])  # fmt: skip
app.add_middleware(TidegateMiddleware, gateway=gateway)
