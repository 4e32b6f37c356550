"""Host: a FastAPI app with its own lifespan, tidegate mounted like ``examples/fastapi_app.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import tidegate_fastapi
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from tidegate_fastapi import GatewayDep

from . import MESSAGES, config_path, digest, stream_lines


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
    yield {"user_lifespan": True}  # the user's own lifespan state must survive the merge


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def index(request: Request) -> dict[str, object]:
    return {"host": "fastapi", "user_lifespan": request.state.user_lifespan}


@app.post("/echo")
async def echo(request: Request) -> dict[str, object]:
    return digest(await request.body())


@app.get("/stream")
async def stream(n: int = 10) -> StreamingResponse:
    def lines() -> Iterator[bytes]:
        yield from stream_lines(n)

    return StreamingResponse(lines(), media_type="text/plain")


@app.get("/host-chat")
async def host_chat(gateway: GatewayDep) -> dict[str, object]:
    answer = await gateway.chat(MESSAGES, model="light", max_tokens=5)
    return {"content": answer["choices"][0]["message"]["content"]}


tidegate_fastapi.mount(app, config_path())
