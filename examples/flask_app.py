"""Your Flask app, with tidegate's surfaces served under /ai by one extension line.

Run: waitress-serve --threads=16 examples.flask_app:app   (or `python examples/flask_app.py`)
"""

from pathlib import Path

from flask import Flask, request
from tidegate_flask import Tidegate

app = Flask(__name__)
tidegate = Tidegate(app, Path(__file__).with_name("tidegate.yaml"))


@app.get("/")
def homepage():
    return {"hello": "this route belongs to the host app"}


@app.post("/summarize")
def summarize():
    """Sync view code calling the gateway (it runs on tidegate's own event-loop thread)."""
    text = request.get_json()["text"]
    answer = tidegate.chat([{"role": "user", "content": f"Summarize: {text}"}], model="light")
    return {"summary": answer["choices"][0]["message"]["content"]}


if __name__ == "__main__":
    from waitress import serve

    serve(app, host="127.0.0.1", port=8000, threads=16)
