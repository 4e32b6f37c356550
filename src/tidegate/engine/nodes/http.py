"""http-request: call an HTTP API with Dify's body types, auth modes and timeouts.

URL, headers, params, auth keys and body values are ``{{#…#}}`` templates compiled at load. The
request goes through the Gateway's :class:`~tidegate.engine.http.HttpNodeClient`, whose SSRF guard
refuses non-public targets unless the workflow's ``http.allow_private`` allows them.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Literal

import aiohttp
import msgspec

from ...dsl.spec import NodeSpec
from ..http import HttpPolicy, HttpResponse
from ..pool import MISSING, VariablePool
from ..template import Template
from .base import Compiler, Node, NodeContext, NodeFailure, NodeResult

__all__ = ["NODES", "HttpRequestNode"]

_TEXT_TYPES = ("json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "graphql")


class _AuthConfig(msgspec.Struct):
    type: Literal["basic", "bearer", "custom"] = "bearer"
    api_key: str = ""
    header: str = ""


class _Auth(msgspec.Struct):
    type: Literal["no-auth", "api-key"] = "no-auth"
    config: _AuthConfig | None = None


class _BodyItem(msgspec.Struct):
    key: str = ""
    type: Literal["text", "file"] = "text"
    value: str = ""
    file: list[str] = msgspec.field(default_factory=list)


class _Body(msgspec.Struct):
    type: Literal["none", "json", "form-data", "x-www-form-urlencoded", "raw-text", "binary"] = "none"
    data: list[_BodyItem] | str | None = None


class _Timeout(msgspec.Struct):
    connect: float | None = None
    read: float | None = None
    write: float | None = None


class _Data(msgspec.Struct):
    method: str = "get"
    url: str = ""
    authorization: _Auth = msgspec.field(default_factory=_Auth)
    headers: str = ""
    params: str = ""
    body: _Body | None = None
    timeout: _Timeout | None = None
    ssl_verify: bool | None = None


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def _pairs(text: str) -> list[tuple[Template, Template]]:
    """``key:value`` lines (Dify's headers/params editor format), each side a template."""
    pairs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, _, value = line.partition(":")
        pairs.append((Template(key.strip()), Template(value.strip())))
    return pairs


class HttpRequestNode(Node):
    type = "http-request"

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _Data) or _Data()
        self.method = data.method.upper()
        if self.method not in _METHODS:
            compiler.problem(spec, f"Expected an HTTP method ({', '.join(_METHODS)}), got `{data.method}`", "method")
        if not data.url.strip():
            compiler.problem(spec, "Expected a URL, got `''`", "url")
        self.url = Template(data.url.strip())
        self.headers = _pairs(data.headers)
        self.params = _pairs(data.params)
        auth = data.authorization
        self.auth: tuple[str, Template, str] | None = None
        if auth.type == "api-key":
            if auth.config is None:
                compiler.problem(spec, "Expected an api-key `config`, got none", "authorization.config")
            else:
                self.auth = (auth.config.type, Template(auth.config.api_key), auth.config.header)
        body = data.body or _Body()
        items = body.data
        if isinstance(items, str):  # very old exports kept raw bodies as one string
            items = [_BodyItem(value=items)]
        self.body_type = body.type
        self.body: list[tuple[Template, str, Template, tuple[str, ...]]] = [
            (Template(item.key), item.type, Template(item.value), tuple(item.file)) for item in items or []
        ]
        self.timeout = data.timeout or _Timeout()
        self.ssl_verify = data.ssl_verify is not False

    async def run(self, ctx: NodeContext) -> NodeResult:
        client = ctx.services.http
        if client is None:
            raise NodeFailure("http-request nodes need an HTTP client, which is not configured", error_type="ConfigError")
        policy: HttpPolicy = ctx.services.http_policy or HttpPolicy()
        pool = ctx.pool
        url = self.url.render(pool)
        headers = {k.render(pool): v.render(pool) for k, v in self.headers if k.render(pool)}
        params = [(k.render(pool), v.render(pool)) for k, v in self.params if k.render(pool)]
        if self.auth is not None:
            kind, key_template, header = self.auth
            key = key_template.render(pool)
            if kind == "bearer":
                headers["Authorization"] = f"Bearer {key}"
            elif kind == "basic":
                headers["Authorization"] = f"Basic {base64.b64encode(key.encode()).decode()}"
            else:
                headers[header or "Authorization"] = key
        payload = self._payload(pool, headers)
        response = await client.request(
            self.method, url, policy=policy, headers=headers, params=params or None, data=payload,
            connect_timeout=self.timeout.connect, read_timeout=self.timeout.read, ssl_verify=self.ssl_verify,
        )  # fmt: skip
        inputs = {"method": self.method, "url": url, "headers": headers, "params": dict(params)}
        return NodeResult(_outputs(response), inputs=inputs, process_data={"request": f"{self.method} {url}"})

    def _payload(self, pool: VariablePool, headers: dict[str, str]) -> Any:
        kind = self.body_type
        lower = {k.lower() for k in headers}
        if kind == "none" or not self.body:
            return None
        if kind in ("json", "raw-text"):
            text = self.body[0][2].render(pool)
            if kind == "json":
                try:
                    json.loads(text)
                except ValueError as exc:
                    raise NodeFailure(f"the JSON body is not valid JSON: {exc}", error_type="InvalidBody") from None
                if "content-type" not in lower:
                    headers["Content-Type"] = "application/json"
            elif "content-type" not in lower:
                headers["Content-Type"] = "text/plain"
            return text.encode("utf-8")
        if kind == "x-www-form-urlencoded":
            return {key.render(pool): value.render(pool) for key, _, value, _ in self.body}
        if kind == "binary":
            return _file_bytes(pool, self.body[0][3])
        form = aiohttp.FormData(default_to_multipart=True)
        for key, item_type, value, file in self.body:
            if item_type == "file":
                form.add_field(key.render(pool), _file_bytes(pool, file), filename=key.render(pool) or "file")
            else:
                form.add_field(key.render(pool), value.render(pool))
        return form


def _file_bytes(pool: VariablePool, selector: tuple[str, ...]) -> bytes:
    value = pool.get(selector) if len(selector) >= 2 else MISSING
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, dict):
        value = value.get("content", MISSING)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise NodeFailure("the file to send has no content tidegate can read", error_type="InvalidBody")


def _outputs(response: HttpResponse) -> dict[str, Any]:
    content_type = response.content_type.split(";")[0].strip().lower()
    disposition = response.headers.get("content-disposition", "")
    textual = (
        content_type.startswith("text/")
        or any(t in content_type for t in _TEXT_TYPES)
        or not content_type
    ) and "attachment" not in disposition
    files: list[dict[str, Any]] = []
    if textual:
        body = response.body.decode("utf-8", "replace")
    else:
        body = ""
        main = content_type.split("/")[0]
        files.append({
            "type": main if main in ("image", "audio", "video") else "document",
            "mime_type": content_type,
            "size": len(response.body),
            "url": response.url,
        })  # fmt: skip
    return {"status_code": response.status, "body": body, "headers": response.headers, "files": files}


NODES = (HttpRequestNode,)
