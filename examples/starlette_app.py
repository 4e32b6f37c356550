"""Your Starlette app, with tidegate's surfaces mounted under /ai by one middleware line.

Run: uvicorn examples.starlette_app:app   (then POST /ai/v1/chat/completions)
"""

from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tidegate import TidegateMiddleware


async def homepage(request):
    return JSONResponse({"hello": "this route belongs to the host app"})


app = Starlette(routes=[Route("/", homepage)])
app.add_middleware(TidegateMiddleware, config=Path(__file__).with_name("tidegate.yaml"))
