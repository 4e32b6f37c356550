"""The files in examples/ run as documented against the suite's simulator, and stop cleanly."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from tidegate_conformance import HostSpec, Suite
from tidegate_conformance.clients import openai_client, request
from tidegate_conformance.processes import ServerProcess, exited_cleanly, free_port, unclean_lines

EXAMPLES = [
    HostSpec("starlette", "asgi", "examples.starlette_app:app"),
    HostSpec("fastapi", "asgi", "examples.fastapi_app:app", ("tidegate_fastapi",)),
    HostSpec("flask", "wsgi", "examples.flask_app:app", ("tidegate_flask", "waitress")),
]
# Examples whose host code calls the gateway in-process: how to call that route.
SUMMARIZE = {
    "fastapi": ("/summarize?text=tides", None),
    "flask": ("/summarize", {"text": "tides"}),
}


@pytest.mark.parametrize("spec", EXAMPLES, ids=[spec.name for spec in EXAMPLES])
def test_example_runs(spec: HostSpec, conformance: Suite) -> None:
    root = conformance.rootdir
    if not (root / "examples" / f"{spec.name}_app.py").exists():
        pytest.skip(f"no examples/{spec.name}_app.py under {root}")
    missing = [mod for mod in spec.requires if importlib.util.find_spec(mod) is None]
    if missing:
        pytest.skip(f"needs {missing}")
    port = free_port()
    server = ServerProcess(
        f"example-{spec.name}", spec.command(port), "/ai/healthz", port=port, cwd=Path(root),
        env={"SIM_URL": conformance.simulator.url + "/v1"},
    )  # fmt: skip
    try:
        server.launch().wait_ready()
        assert request("GET", server.url + "/").status == 200
        host = type("ExampleHost", (), {"api_base": server.url + "/ai/v1", "api_key": "unused"})()
        with openai_client(host) as client:  # type: ignore[arg-type]
            answer = client.chat.completions.create(model="light", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content
        if spec.name in SUMMARIZE:
            path, body = SUMMARIZE[spec.name]
            reply = request("POST", server.url + path, body=body or b"")
            assert reply.status == 200, reply.body
            assert reply.json()["summary"]
    finally:
        code, output = server.stop()
    assert exited_cleanly(code), output
    assert unclean_lines(output) == [], output
