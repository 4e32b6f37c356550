"""``protect:`` rules on a Flask app's own routes: refused with tidegate's 429/503, and an
admitted request's slot held until its response is closed (streamed, file and failed responses).

Driven through werkzeug's test client (a real WSGI call); the conformance suite runs the rate
scenario under waitress.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response, send_file
from tidegate_flask import Tidegate

from tidegate.config import parse_config
from tidegate.providers.simulator import Simulator

PROTECT = [
    {"name": "api-rate", "path": "/api/*", "key": "ip", "requests": "2/minute"},
    {"name": "one-at-a-time", "path": ["/slow/*", "/file", "/boom"], "key": "global", "concurrency": 1},
]


def build(sim: Simulator, protect: list[dict[str, Any]] | None = PROTECT) -> tuple[Flask, Tidegate]:
    app = Flask(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = True

    @app.get("/api/<name>")
    def api(name: str) -> dict[str, str]:
        return {"host": name}

    @app.get("/open")
    def unguarded() -> dict[str, str]:
        return {"host": "open"}

    @app.get("/slow/<name>")
    def slow(name: str) -> Response:
        return Response(iter([b"one\n", b"two\n"]), mimetype="text/plain")

    @app.get("/file")
    def file() -> Response:  # direct_passthrough: Flask's on-close callbacks never run for it
        return send_file(io.BytesIO(b"file body"), mimetype="text/plain")

    @app.get("/boom")
    def boom() -> Response:
        raise RuntimeError("the view failed")

    extra = {"protect": protect} if protect else {}
    config = parse_config({"models": {"light": {"url": sim.url}}, **extra})
    return app, Tidegate(app, config)


@pytest.fixture
def made(thread_sim: Simulator) -> Iterator[tuple[Flask, Tidegate]]:
    app, extension = build(thread_sim)
    yield app, extension
    extension.close()


def test_rate_rule_refuses_with_tidegates_429(made: tuple[Flask, Tidegate]) -> None:
    app, _ = made
    client = app.test_client()
    for name in ("a", "b"):  # admitted: the host's own answer, untouched
        reply = client.get(f"/api/{name}")
        assert reply.status_code == 200 and reply.get_json() == {"host": name}
    refused = client.get("/api/c")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/json"
    assert refused.headers["content-length"] == str(len(refused.data))
    error = refused.get_json()["error"]
    assert error["status"] == 429 and error["code"] and "api-rate" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-limit"] == "2" and refused.headers["ratelimit-remaining"] == "0"
    # Another address has its own count; unguarded routes and tidegate's prefix are not counted.
    other = client.get("/api/d", environ_overrides={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200
    assert all(client.get("/open").status_code == 200 for _ in range(3))
    assert all(client.get("/ai/healthz").status_code == 200 for _ in range(3))
    assert client.get("/nowhere").status_code == 404


def test_streamed_response_holds_its_slot_until_closed(made: tuple[Flask, Tidegate]) -> None:
    app, _ = made
    client = app.test_client()
    first = client.get("/slow/1", buffered=False)
    assert first.status_code == 200  # the body is not sent yet: the request still holds the slot
    busy = client.get("/slow/2")
    assert busy.status_code == 503 and busy.get_json()["error"]["status"] == 503
    assert b"".join(first.response) == b"one\ntwo\n"
    first.close()  # what the WSGI server does once the body is sent
    again = client.get("/slow/3")
    assert again.status_code == 200 and again.data == b"one\ntwo\n"


def test_file_and_failed_responses_release_too(made: tuple[Flask, Tidegate]) -> None:
    app, _ = made
    client = app.test_client()
    held = client.get("/file", buffered=False)
    assert client.get("/slow/x").status_code == 503
    held.close()
    assert client.get("/file").data == b"file body"
    with pytest.raises(RuntimeError, match="the view failed"):
        client.get("/boom")
    assert client.get("/slow/y").status_code == 200  # the failed request gave its slot back


def test_after_close_guarded_routes_answer_503(thread_sim: Simulator) -> None:
    app, extension = build(thread_sim)
    extension.close()
    reply = app.test_client().get("/api/a")
    assert reply.status_code == 503
    assert reply.get_json()["error"]["code"] == "shutting_down"


def test_without_protect_rules_the_app_is_not_wrapped(thread_sim: Simulator) -> None:
    app, extension = build(thread_sim, protect=None)
    try:
        assert app.wsgi_app.__func__ is Flask.wsgi_app  # type: ignore[attr-defined]  # no loop hop per request
        assert all(app.test_client().get("/api/a").status_code == 200 for _ in range(3))
    finally:
        extension.close()
