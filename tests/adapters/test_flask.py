"""The Flask extension: surfaces inside a WSGI app, sync helpers, backpressure and shutdown.

Driven through werkzeug's test client (a real WSGI call, no socket) against a real simulator;
the conformance suite covers the same app under a threaded WSGI server.
"""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from tidegate_flask import Tidegate

from tidegate import NotFoundError, RequestError, ShuttingDown, UsageError
from tidegate.config import parse_config
from tidegate.providers.simulator import Simulator

MESSAGES = [{"role": "user", "content": "Can I change my delivery address?"}]
KEY = {"authorization": "Bearer sk-app"}


def config(sim: Simulator, **extra: Any) -> Any:
    models = {
        "light": {"url": sim.url},
        "slow": {"url": sim.url, "headers": {"X-Sim-TPS": "20", "X-Sim-Tokens": "200"}},
        "long": {"url": sim.url, "headers": {"X-Sim-Tokens": "400"}},
    }
    return parse_config({"models": models, "auth": {"api_keys": {"app": "sk-app"}}, **extra})


@pytest.fixture
def made(thread_sim: Simulator) -> Iterator[tuple[Flask, Tidegate]]:
    app = Flask(__name__)
    extension = Tidegate(app, config(thread_sim))
    yield app, extension
    extension.close()


def chat_body(model: str = "light", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, **extra}


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tidegate-loop"]


def wait_for(predicate: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_surfaces_answer_inside_the_flask_app(made: tuple[Flask, Tidegate]) -> None:
    app, _ = made
    client = app.test_client()
    assert client.get("/ai/healthz").get_json()["state"] == "running"  # started by init_app
    reply = client.post("/ai/v1/chat/completions", json=chat_body(max_tokens=5), headers=KEY)
    assert reply.status_code == 200
    assert reply.headers["x-tidegate-model"] == "light"
    assert reply.headers["content-length"] == str(len(reply.data))
    assert reply.get_json()["usage"]["completion_tokens"] == 5
    reply = client.post("/ai/v1/chat/completions", data=b"{nope", headers={**KEY, "content-type": "application/json"})
    assert (reply.status_code, reply.get_json()["error"]["code"]) == (400, "invalid_json")
    assert client.post("/ai/v1/chat/completions", json=chat_body()).status_code == 401
    assert client.get("/ai/v1/models?x=1", headers=KEY).get_json()["data"][0]["id"] == "light"
    assert client.get("/ai/v1/chat/completions", headers=KEY).status_code == 405
    assert b"tidegate_requests_total" in client.get("/ai/metrics").data
    assert client.get("/aix").status_code == 404 and b"error" not in client.get("/aix").data


def test_body_limit_is_tidegates(thread_sim: Simulator) -> None:
    app = Flask(__name__)
    extension = Tidegate(app, config(thread_sim, max_body_size="2kb"))
    try:
        big = chat_body(messages=[{"role": "user", "content": "x" * 5000}])
        reply = app.test_client().post("/ai/v1/chat/completions", json=big, headers=KEY)
        assert (reply.status_code, reply.get_json()["error"]["code"]) == (413, "request_too_large")
    finally:
        extension.close()


def test_streaming_comes_through_incrementally(made: tuple[Flask, Tidegate]) -> None:
    app, _ = made
    reply = app.test_client().post(
        "/ai/v1/chat/completions", json=chat_body(stream=True, max_tokens=6), headers=KEY, buffered=False
    )
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in reply.headers
    chunks = list(reply.response)
    reply.close()
    assert len(chunks) > 2  # one WSGI chunk per SSE event, not one buffered body
    events = b"".join(chunks).decode().split("\n\n")
    assert events[-2] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


def test_slow_client_holds_the_stream_back(thread_sim: Simulator) -> None:
    app = Flask(__name__)
    extension = Tidegate(app, config(thread_sim), queue_size=2)
    try:
        reply = app.test_client().post(
            "/ai/v1/chat/completions", json=chat_body("long", stream=True), headers=KEY, buffered=False
        )
        chunks = iter(reply.response)
        next(chunks)
        # 400 unpaced tokens would be produced in milliseconds; with a client that stopped
        # reading, the bounded queue must keep the request in flight instead of buffering them.
        assert not wait_for(lambda: extension.gateway.in_flight == 0, 0.5)
        rest = list(chunks)
        reply.close()
        assert rest[-1] == b"data: [DONE]\n\n" and len(rest) > 400
        assert wait_for(lambda: extension.gateway.in_flight == 0)
    finally:
        extension.close()


def test_client_leaving_mid_stream_aborts_the_upstream(made: tuple[Flask, Tidegate], thread_sim: Simulator) -> None:
    app, extension = made
    reply = app.test_client().post(
        "/ai/v1/chat/completions", json=chat_body("slow", stream=True), headers=KEY, buffered=False
    )
    next(iter(reply.response))
    reply.close()  # what a WSGI server does when the client disconnects
    assert wait_for(lambda: thread_sim.stats["aborted"] == 1)
    assert wait_for(lambda: extension.gateway.in_flight == 0)


def test_response_closed_before_reading_aborts_too(made: tuple[Flask, Tidegate], thread_sim: Simulator) -> None:
    app, extension = made
    reply = app.test_client().post(
        "/ai/v1/chat/completions", json=chat_body("slow", stream=True), headers=KEY, buffered=False
    )
    reply.close()  # never iterated: a plain generator would never run its cleanup
    assert wait_for(lambda: thread_sim.stats["aborted"] == 1)
    assert wait_for(lambda: extension.gateway.in_flight == 0)


def test_dropped_helper_stream_cancels_the_upstream(made: tuple[Flask, Tidegate], thread_sim: Simulator) -> None:
    _, extension = made
    stream = extension.stream_chat(MESSAGES, model="slow")
    assert wait_for(lambda: thread_sim.stats["in_flight"] == 1)
    del stream
    gc.collect()
    assert wait_for(lambda: thread_sim.stats["aborted"] == 1)


def test_sync_helpers(made: tuple[Flask, Tidegate], thread_sim: Simulator) -> None:
    _, extension = made
    answer = extension.chat(MESSAGES, model="light", max_tokens=4)
    assert answer["usage"]["completion_tokens"] == 4
    chunks = list(extension.stream_chat(MESSAGES, model="light", max_tokens=4))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == answer["choices"][0]["message"]["content"]
    stream = extension.stream_chat(MESSAGES, model="slow")
    next(stream)
    stream.close()  # leaving early cancels the producer and the upstream call
    assert wait_for(lambda: thread_sim.stats["aborted"] == 1)
    with pytest.raises(Exception, match="does not exist"):
        extension.chat(MESSAGES, model="missing")


GREET = Path(__file__).resolve().parents[2] / "conformance/tidegate_conformance/workflows/greet.yml"


def test_workflow_helpers_run_a_real_workflow(thread_sim: Simulator) -> None:
    app = Flask(__name__)
    extension = Tidegate(app, config(thread_sim, workflows={"greet": {"file": str(GREET)}}))
    try:
        result = extension.run_workflow("greet", {"name": "Ada", "visits": 3}, user="u1")
        assert result.status == "succeeded"
        assert result.outputs == {"greeting": "Hello Ada, visit number 3!"}
        events = list(extension.stream_workflow("greet", {"name": "Bo", "visits": 1}))
        kinds = [type(event).__name__ for event in events]
        assert kinds[0] == "WorkflowStarted" and kinds[-1] == "WorkflowFinished"
        assert kinds.count("NodeFinished") == 3  # start → template-transform → end
        text = "".join(e.text for e in events if type(e).__name__ == "TextChunk")
        assert text == events[-1].outputs["greeting"] == "Hello Bo, visit number 1!"
        with pytest.raises(NotFoundError, match="The workflow `nope` does not exist"):
            extension.run_workflow("nope", {})
        with pytest.raises(RequestError, match="Name is required"):
            extension.run_workflow("greet", {})
    finally:
        extension.close()


def test_workflow_helpers_without_workflows_say_so(made: tuple[Flask, Tidegate]) -> None:
    _, extension = made
    with pytest.raises(NotFoundError, match="No workflows are configured"):
        extension.run_workflow("greet", {"name": "Ada"})
    stream = extension.stream_workflow("greet", {"name": "Ada"})
    with pytest.raises(NotFoundError, match="No workflows are configured"):
        next(stream)


def test_close_drains_then_stops_everything(thread_sim: Simulator) -> None:
    app = Flask(__name__)
    extension = Tidegate(app, config(thread_sim, shutdown_timeout="200ms"))
    gateway = extension.gateway
    assert len(loop_threads()) == 1
    reply = app.test_client().post(
        "/ai/v1/chat/completions", json=chat_body("slow", stream=True), headers=KEY, buffered=False
    )
    chunks = iter(reply.response)
    next(chunks)
    closer = threading.Thread(target=extension.close)
    closer.start()
    rest = b"".join(chunks).decode()  # the stream ends with a clean error event, not a cut
    closer.join(10)
    reply.close()
    assert '"code":"shutting_down"' in rest and rest.endswith("data: [DONE]\n\n")
    assert gateway.state == "stopped"
    assert loop_threads() == []
    extension.close()  # idempotent
    after = app.test_client().get("/ai/healthz")
    assert after.status_code == 503 and after.get_json()["error"]["code"] == "shutting_down"
    with pytest.raises(ShuttingDown):
        extension.chat(MESSAGES, model="light")


def test_lazy_start_and_config_from_app_config(thread_sim: Simulator, tmp_path: Any) -> None:
    path = tmp_path / "tidegate.yaml"
    path.write_text(f"prefix: /gw\nmodels:\n  light: {{url: '{thread_sim.url}'}}\n")
    app = Flask(__name__)
    app.config["TIDEGATE_CONFIG"] = str(path)
    extension = Tidegate(start=False)
    extension.init_app(app)
    try:
        assert loop_threads() == []  # nothing runs until first use
        reply = app.test_client().post("/gw/v1/chat/completions", json=chat_body(max_tokens=2))
        assert reply.status_code == 200
        assert app.extensions["tidegate"] is extension
    finally:
        extension.close()
    with pytest.raises(UsageError, match="needs a config"):
        Tidegate(Flask(__name__))
    with pytest.raises(UsageError, match="queue_size"):
        Tidegate(queue_size=0)
