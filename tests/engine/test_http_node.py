"""http-request nodes against a real local server: body types, auth, params, the SSRF guard."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tidegate.engine import HttpPolicy, Services, WorkflowRunner, compile_workflow
from tidegate.engine.http import is_public_address
from tidegate.engine.nodes.base import NodeFailure

pytestmark = pytest.mark.usefixtures("no_leaks")


def workflow(kit: Any, **data: Any) -> dict[str, Any]:
    url = data.pop("url")
    return kit.dsl(
        [kit.start("name", "token"), kit.http("h", url, **data),
         kit.end(status=["h", "status_code"], body=["h", "body"], headers=["h", "headers"], files=["h", "files"])],
        kit.chain("start", "h", "end"),
        environment_variables=[{"name": "KEY", "value": "s3cret", "value_type": "secret"}],
    )


async def call(kit: Any, client: Any, *, allow_private: bool = True, inputs: dict[str, Any] | None = None,
               **data: Any) -> Any:
    runner = WorkflowRunner(compile_workflow(workflow(kit, **data)),
                            services=Services(http=client, http_policy=HttpPolicy(allow_private=allow_private)))
    return await runner.run_blocking(inputs or {"name": "Ada", "token": "t0k"})


async def echo(kit: Any, server: Any, client: Any, **data: Any) -> dict[str, Any]:
    result = await call(kit, client, url=f"{server.url}/echo", **data)
    assert result.status == "succeeded", result.error
    assert result.outputs["status"] == 200
    return json.loads(result.outputs["body"])


async def test_templated_url_params_headers(kit: Any, server: Any, http_client: Any) -> None:
    seen = await echo(kit, server, http_client, params="q:{{#start.name#}}\nlang: en",
                      headers="X-User:{{#start.name#}}\nX-Env: {{#env.KEY#}}")
    assert seen["method"] == "GET"
    assert seen["query"] == {"q": "Ada", "lang": "en"}
    assert seen["headers"]["x-user"] == "Ada" and seen["headers"]["x-env"] == "s3cret"


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        ({"type": "api-key", "config": {"type": "bearer", "api_key": "{{#start.token#}}"}}, "authorization", "Bearer t0k"),
        ({"type": "api-key", "config": {"type": "basic", "api_key": "u:p"}}, "authorization", "Basic dTpw"),
        ({"type": "api-key", "config": {"type": "custom", "api_key": "k1", "header": "X-Api-Key"}}, "x-api-key", "k1"),
    ],
)
async def test_auth(kit: Any, server: Any, http_client: Any, auth: dict[str, Any], header: str, value: str) -> None:
    seen = await echo(kit, server, http_client, authorization=auth)
    assert seen["headers"][header] == value


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ({"type": "json", "data": [{"type": "text", "value": '{"who": "{{#start.name#}}"}'}]},
         lambda s: s["content_type"] == "application/json" and json.loads(s["body"]) == {"who": "Ada"}),
        ({"type": "raw-text", "data": [{"type": "text", "value": "hi {{#start.name#}}"}]},
         lambda s: s["content_type"] == "text/plain" and s["body"] == "hi Ada"),
        ({"type": "x-www-form-urlencoded", "data": [{"key": "a", "type": "text", "value": "{{#start.name#}}"},
                                                    {"key": "b", "type": "text", "value": "2"}]},
         lambda s: s["form"] == {"a": "Ada", "b": "2"}),
        ({"type": "form-data", "data": [{"key": "f", "type": "text", "value": "{{#start.name#}}"}]},
         lambda s: s["content_type"] == "multipart/form-data" and s["form"] == {"f": "Ada"}),
        ({"type": "binary", "data": [{"type": "file", "file": ["start", "name"]}]},
         lambda s: s["body"] == "Ada"),
        ({"type": "none", "data": []}, lambda s: s["body"] == ""),
    ],
)
async def test_body_types(kit: Any, server: Any, http_client: Any, body: dict[str, Any], check: Any) -> None:
    seen = await echo(kit, server, http_client, method="post", body=body)
    assert seen["method"] == "POST"
    assert check(seen), seen


async def test_invalid_json_body_fails_the_node(kit: Any, server: Any, http_client: Any) -> None:
    body = {"type": "json", "data": [{"type": "text", "value": "{not json"}]}
    result = await call(kit, http_client, url=f"{server.url}/echo", method="post", body=body)
    assert result.status == "failed"
    assert result.error.startswith("node `h` (h) failed: the JSON body is not valid JSON")


async def test_binary_responses_become_files(kit: Any, server: Any, http_client: Any) -> None:
    result = await call(kit, http_client, url=f"{server.url}/binary")
    assert result.outputs["body"] == ""
    assert result.outputs["files"] == [
        {"type": "image", "mime_type": "image/png", "size": 264, "url": f"{server.url}/binary"}
    ]


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/echo", "http://localhost:{port}/echo",
                                 "http://[::1]:{port}/echo", "http://169.254.169.254/latest/meta-data",
                                 "http://10.0.0.1/", "http://[::ffff:127.0.0.1]:{port}/echo"])
async def test_ssrf_guard_refuses_private_targets(kit: Any, server: Any, http_client: Any, url: str) -> None:
    port = server.url.rsplit(":", 1)[1]
    result = await call(kit, http_client, allow_private=False, url=url.format(port=port))
    assert result.status == "failed"
    assert "refused to connect" in result.error and "`http.allow_private: true`" in result.error
    assert server.state.requests == []


async def test_redirects_are_checked_hop_by_hop(kit: Any, server: Any, http_client: Any) -> None:
    # Allowed: follow a redirect when private targets are allowed.
    result = await call(kit, http_client, url=f"{server.url}/redirect?to=/echo")
    assert json.loads(result.outputs["body"])["path"] == "/echo"
    # Refused: a public-looking first hop cannot bounce into a private address (checked per hop).
    policy = HttpPolicy(allow_private=False)
    with pytest.raises(NodeFailure, match=r"refused to connect: 127\.0\.0\.1 is not a public address"):
        await http_client.request("GET", f"{server.url}/redirect?to=/echo", policy=policy)


@pytest.mark.parametrize(("address", "public"), [("8.8.8.8", True), ("127.0.0.1", False), ("10.1.2.3", False),
                                                 ("172.16.0.1", False), ("192.168.1.1", False), ("169.254.1.1", False),
                                                 ("100.64.0.1", False), ("::1", False), ("fe80::1", False),
                                                 ("2001:4860:4860::8888", True), ("::ffff:10.0.0.1", False),
                                                 ("224.0.0.1", False), ("0.0.0.0", False)])
def test_public_address_classification(address: str, public: bool) -> None:
    assert is_public_address(address) is public
