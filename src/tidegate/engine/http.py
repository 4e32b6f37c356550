"""The HTTP client behind http-request nodes, with an SSRF guard.

A DSL author can point a node at any URL, so by default only public addresses are reachable:
every address a host name resolves to must be global (not loopback, private, link-local,
reserved or multicast), IP literals are checked before connecting, and redirects are followed by
hand so each hop is checked too. ``allow_private`` lifts the guard per request; the client keeps a
separate connection pool for guarded and unguarded requests so a connection opened under one
policy is never reused under the other. One client (two long-lived sessions) per Gateway.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult

from ..errors import UsageError
from .nodes.base import NodeFailure

__all__ = ["HttpNodeClient", "HttpPolicy", "HttpResponse", "is_public_address"]


class HttpPolicy(msgspec.Struct, frozen=True, kw_only=True):
    allow_private: bool = False
    timeout: float = 30.0
    max_response_size: int = 10 * 1024 * 1024
    max_redirects: int = 5


class HttpResponse(msgspec.Struct, kw_only=True):
    status: int
    headers: dict[str, str]
    body: bytes
    url: str

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class _Blocked(OSError):
    pass


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class _GuardedResolver(AbstractResolver):
    """Resolve as usual, then refuse the whole name if any address is not public."""

    def __init__(self) -> None:
        self._inner = aiohttp.DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if not is_public_address(result["host"]):
                raise _Blocked(f"{host} resolves to the non-public address {result['host']}")
        return results

    async def close(self) -> None:
        await self._inner.close()


class HttpNodeClient:
    def __init__(self, *, max_connections: int = 100) -> None:
        self.max_connections = max_connections
        self.state: Literal["unopened", "open", "closed"] = "unopened"
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    async def start(self) -> None:
        if self.state != "unopened":
            raise UsageError(f"HttpNodeClient cannot start: it is {self.state}")
        for allow_private in (False, True):
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                resolver=None if allow_private else _GuardedResolver(),
                use_dns_cache=allow_private,
            )
            self._sessions[allow_private] = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None), auto_decompress=True
            )
        self.state = "open"

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        self.state = "closed"

    async def __aenter__(self) -> HttpNodeClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        policy: HttpPolicy,
        headers: Mapping[str, str] | None = None,
        params: list[tuple[str, str]] | None = None,
        data: Any = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        ssl_verify: bool = True,
    ) -> HttpResponse:
        if self.state != "open":
            raise UsageError(f"HttpNodeClient is {self.state}; start() it first")
        session = self._sessions[policy.allow_private]
        timeout = aiohttp.ClientTimeout(
            total=policy.timeout,
            sock_connect=min(connect_timeout, policy.timeout) if connect_timeout else None,
            sock_read=min(read_timeout, policy.timeout) if read_timeout else None,
        )
        method = method.upper()
        for _hop in range(policy.max_redirects + 1):
            _check_url(url, policy)
            try:
                async with session.request(
                    method, url, headers=dict(headers or {}), params=params, data=data, timeout=timeout,
                    allow_redirects=False, ssl=ssl_verify,
                ) as response:  # fmt: skip
                    if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                        url = urljoin(str(response.url), response.headers["Location"])
                        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                            method, data = "GET", None
                        params = None
                        continue
                    body = await _read_limited(response, policy.max_response_size)
                    return HttpResponse(
                        status=response.status,
                        headers={k.lower(): v for k, v in response.headers.items()},
                        body=body,
                        url=str(response.url),
                    )
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, _Blocked):
                    raise _refused(str(exc.os_error)) from None
                raise NodeFailure(f"cannot connect to {urlsplit(url).netloc}: {exc.os_error}", error_type="ConnectionError") from None
            except TimeoutError:
                raise NodeFailure(f"HTTP request to {urlsplit(url).netloc} timed out", error_type="TimeoutError") from None
            except aiohttp.ClientError as exc:
                raise NodeFailure(f"HTTP request failed: {type(exc).__name__}: {exc}", error_type="RequestError") from None
        raise NodeFailure(f"too many redirects (more than {policy.max_redirects})", error_type="TooManyRedirects")


def _check_url(url: str, policy: HttpPolicy) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NodeFailure(f"Expected an http(s) URL, got `{url}`", error_type="InvalidURL")
    if policy.allow_private:
        return
    host = parts.hostname
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return  # a name: the guarded resolver checks what it resolves to
    if not is_public_address(host):
        raise _refused(f"{host} is not a public address")


def _refused(reason: str) -> NodeFailure:
    return NodeFailure(
        f"refused to connect: {reason} (private, loopback and link-local targets need"
        " `http.allow_private: true` in the workflow config)",
        error_type="SSRFBlocked",
    )


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit:
        raise NodeFailure(f"response body is larger than {limit} bytes", error_type="ResponseTooLarge")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise NodeFailure(f"response body is larger than {limit} bytes", error_type="ResponseTooLarge")
        chunks.append(chunk)
    return b"".join(chunks)
