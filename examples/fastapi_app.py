"""Your FastAPI app, with tidegate's surfaces mounted under /ai as documented routes.

Run: uvicorn examples.fastapi_app:app   (then open /docs, or POST /ai/v1/chat/completions)
"""

from pathlib import Path

import tidegate_fastapi
from fastapi import FastAPI
from tidegate_fastapi import GatewayDep

app = FastAPI(title="My app")


@app.get("/")
async def homepage():
    return {"hello": "this route belongs to the host app"}


@app.post("/summarize")
async def summarize(text: str, gateway: GatewayDep):
    """Host code calling the gateway in-process (same models, limits and metrics as /ai)."""
    answer = await gateway.chat([{"role": "user", "content": f"Summarize: {text}"}], model="light")
    return {"summary": answer["choices"][0]["message"]["content"]}


tidegate_fastapi.mount(app, Path(__file__).with_name("tidegate.yaml"))
