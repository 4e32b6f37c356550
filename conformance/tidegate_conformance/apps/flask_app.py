"""Host: a Flask app with the ``Tidegate`` extension, like ``examples/flask_app.py``."""

from __future__ import annotations

from flask import Flask, Response, request
from tidegate_flask import Tidegate

from . import MESSAGES, config_path, digest, stream_lines

app = Flask(__name__)
tidegate = Tidegate(app, config_path())


@app.get("/")
def index() -> dict[str, object]:
    return {"host": "flask"}


@app.post("/echo")
def echo() -> dict[str, object]:
    return digest(request.get_data())


@app.get("/stream")
def stream() -> Response:
    return Response(iter(stream_lines(int(request.args.get("n", "10")))), mimetype="text/plain")


@app.get("/host-chat")
def host_chat() -> dict[str, object]:
    answer = tidegate.chat(MESSAGES, model="light", max_tokens=5)
    return {"content": answer["choices"][0]["message"]["content"]}
