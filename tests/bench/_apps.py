"""ASGI apps the benchmarks serve in their own uvicorn processes.

``bare`` is a one-route Starlette host app; ``wrapped`` is the same app with tidegate's middleware,
configured from the file named by ``TIDEGATE_BENCH_CONFIG``.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tidegate import TidegateMiddleware


async def ping(request: object) -> PlainTextResponse:
    return PlainTextResponse("pong")


def make_host() -> Starlette:
    return Starlette(routes=[Route("/ping", ping)])


bare = make_host()
wrapped = (
    TidegateMiddleware(make_host(), config=os.environ["TIDEGATE_BENCH_CONFIG"])
    if os.environ.get("TIDEGATE_BENCH_CONFIG")
    else None
)
