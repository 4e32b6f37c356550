"""HTTP endpoints as tools, filled from the model's arguments and fenced by the SSRF guard.

Requests go through the engine's :class:`~tidegate.engine.http.HttpNodeClient`, the same client
(and SSRF guard) http-request nodes use: long-lived sessions, private and loopback targets refused
unless the tool says ``allow_private``, every redirect hop checked, response size capped. The
tool's own deadline (from :func:`~tidegate.agent.tools.execute`) bounds each call; the client's
total timeout is set looser so the tool's deadline is what a model sees reported.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import msgspec

from ..config.agents import HttpToolConfig, RetryConfig
from ..engine.http import HttpNodeClient, HttpPolicy
from ..engine.nodes.base import NodeFailure
from .tools import Tool, ToolContext, ToolFailure

__all__ = ["HttpTool"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_MAX_REDIRECTS = 3


def _placeholders(*templates: object) -> list[str]:
    names: dict[str, None] = {}

    def walk(value: object) -> None:
        if isinstance(value, str):
            names.update(dict.fromkeys(_PLACEHOLDER.findall(value)))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for template in templates:
        walk(template)
    return list(names)


def _fill(template: Any, arguments: Mapping[str, Any]) -> Any:
    """Replace ``{name}`` in strings; a string that is only a placeholder keeps the value's type."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole:
            return _argument(arguments, whole.group(1))

        def text(match: re.Match[str]) -> str:
            value = _argument(arguments, match.group(1))
            return value if isinstance(value, str) else _encode(value).decode()

        return _PLACEHOLDER.sub(text, template)
    if isinstance(template, Mapping):
        return {key: _fill(value, arguments) for key, value in template.items()}
    if isinstance(template, list):
        return [_fill(value, arguments) for value in template]
    return template


def _argument(arguments: Mapping[str, Any], name: str) -> Any:
    if name not in arguments:
        raise ToolFailure(f"missing argument `{name}`")
    return arguments[name]


class HttpTool(Tool):
    kind = "http"

    def __init__(
        self,
        name: str,
        config: HttpToolConfig,
        *,
        client: HttpNodeClient,
        description: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
        retry: RetryConfig | None = None,
        max_concurrency: int = 64,
    ) -> None:
        self.config = config
        self._client = client
        self._url_names = set(_PLACEHOLDER.findall(config.url))
        names = _placeholders(config.url, config.body)
        if parameters is None:
            parameters = {
                "type": "object",
                "properties": {n: {"type": "string"} for n in names},
                "required": names,
            }
        super().__init__(
            name,
            description=description or f"{config.method} {config.url}",
            parameters=parameters,
            timeout=timeout,
            retry=retry,
            max_concurrency=max_concurrency,
        )
        auth = config.auth
        self._headers = dict(config.headers)
        if auth.type == "bearer":
            self._headers["Authorization"] = f"Bearer {auth.token}"
        elif auth.type == "api-key":
            self._headers[auth.header] = auth.token or ""
        elif auth.type == "basic":
            pair = f"{auth.username or ''}:{auth.password or ''}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        self._policy = HttpPolicy(
            allow_private=config.allow_private,
            timeout=self.timeout * 2 + 1.0,
            max_response_size=int(config.max_response_size),
            max_redirects=_MAX_REDIRECTS,
        )

    def request_for(self, arguments: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The URL and client options for one call (no I/O)."""
        config = self.config

        def url_value(match: re.Match[str]) -> str:
            value = _argument(arguments, match.group(1))
            return quote(value if isinstance(value, str) else _encode(value).decode(), safe="")

        url = _PLACEHOLDER.sub(url_value, config.url)
        options: dict[str, Any] = {"headers": self._headers}
        if config.body is not None:
            options["data"] = _encode(_fill(config.body, arguments))
            options["headers"] = {"Content-Type": "application/json", **self._headers}
        else:
            rest = {k: v for k, v in arguments.items() if k not in self._url_names}
            if config.method in ("GET", "DELETE"):
                if rest:
                    options["params"] = [(k, v if isinstance(v, str) else _encode(v).decode()) for k, v in rest.items()]
            else:
                options["data"] = _encode(rest)
                options["headers"] = {"Content-Type": "application/json", **self._headers}
        return url, options

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        url, options = self.request_for(arguments)
        method = self.config.method
        try:
            response = await self._client.request(method, url, policy=self._policy, **options)
        except NodeFailure as exc:
            message = str(exc)
            if exc.error_type == "SSRFBlocked":  # the client's advice names the workflow setting
                message = message.split(" (", 1)[0] + " (set `allow_private: true` on the tool to allow it)"
            raise ToolFailure(message) from None
        text = response.body.decode("utf-8", "replace")
        if response.status >= 400:
            raise ToolFailure(f"HTTP {response.status} from {method} {response.url}: {text[:500]}")
        if "json" in response.content_type:
            try:
                return _decode(response.body)
            except msgspec.DecodeError:
                return text
        return text
