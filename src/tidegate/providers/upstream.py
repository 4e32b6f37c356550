"""The OpenAI-compatible HTTP client for one upstream deployment.

One long-lived ``aiohttp.ClientSession`` per upstream (a session per request costs ~3× more), with
the pool bounded by ``max_concurrency``. aiohttp's default ``total=300`` would kill long streams, so
the session has no total timeout; we enforce our own deadlines instead: first byte (response
headers), silence between chunks, and an overall deadline, each reported as ``UpstreamTimeout``.
Cancelling a call or closing a stream closes the connection, which is how an abort reaches vLLM.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Literal

import aiohttp
import msgspec

from ..config.schema import ModelConfig
from ..context import RequestContext
from ..errors import UpstreamError, UpstreamTimeout, UsageError

__all__ = ["Upstream"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_MAX_ERROR_BODY = 64 * 1024

State = Literal["unopened", "open", "closed"]


class Upstream:
    """Calls one deployment; maps its failures into our errors with the upstream status kept."""

    def __init__(self, name: str, config: ModelConfig) -> None:
        self.name = name
        self.config = config
        self.model = config.model or name
        self.state: State = "unopened"
        self._session: aiohttp.ClientSession | None = None
        self._headers = {"Content-Type": "application/json", **config.headers}
        if config.api_key:
            self._headers["Authorization"] = f"Bearer {config.api_key}"
        self._first_byte = float(config.first_byte_timeout or config.timeout)
        self.observe: Callable[[str, str, float], None] | None = None
        """Called with (upstream name, outcome ``ok``/``error``, seconds) after every call."""
        self.pace: Callable[[], Awaitable[None]] | None = None
        """Awaited when an answer (or a stream chunk) has arrived, before it is processed: the
        Gateway's turn budget, which spreads answers that land together over loop turns."""

    def __repr__(self) -> str:
        return f"Upstream({self.name!r}, url={self.config.url!r}, state={self.state!r})"

    async def start(self) -> None:
        if self.state != "unopened":
            raise UsageError(f"Upstream {self.name!r} cannot start: it is {self.state}")
        connector = aiohttp.TCPConnector(
            limit=self.config.max_concurrency, limit_per_host=0, ttl_dns_cache=300
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=float(self.config.connect_timeout),
            sock_read=float(self.config.read_timeout) if self.config.read_timeout else None,
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers=self._headers, auto_decompress=True
        )
        self.state = "open"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.state = "closed"

    # -- calls ---------------------------------------------------------------------------------

    async def chat(self, body: dict[str, Any], *, ctx: RequestContext | None = None) -> dict[str, Any]:
        """A non-streamed chat completion; returns the upstream's JSON as a dict."""
        return await self._json("/chat/completions", {**body, "model": self.model, "stream": False}, ctx)

    async def embeddings(
        self, body: dict[str, Any], *, ctx: RequestContext | None = None
    ) -> dict[str, Any]:
        return await self._json("/embeddings", {**body, "model": self.model}, ctx)

    async def stream(
        self, body: dict[str, Any], *, ctx: RequestContext | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Yield ``chat.completion.chunk`` dicts as the upstream sends them.

        Closing the iterator early (or cancelling its consumer) closes the upstream connection.
        """
        payload = {**body, "model": self.model, "stream": True}
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + float(self.config.timeout)
        # Durations use perf_counter: uvloop's loop.time() ticks in whole milliseconds, which
        # would make sub-millisecond upstream calls look like tidegate's own overhead.
        clock = time.perf_counter
        began = mark = clock()
        try:
            response = await self._post("/chat/completions", payload, started, deadline)
        except BaseException:
            if ctx is not None:
                ctx.upstream_seconds += clock() - mark
            if self.observe is not None:
                self.observe(self.name, "error", clock() - began)
            raise
        clean = False
        waiting = True
        try:
            content = response.content
            data: list[bytes] = []
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        line = await content.readline()
                except TimeoutError:
                    raise UpstreamTimeout(
                        f"upstream {self.name!r} stream exceeded its {self.config.timeout:g}s deadline",
                        upstream=self.name,
                    ) from None
                except aiohttp.ClientError as exc:
                    raise self._connection_error(exc) from exc
                if not line:
                    raise UpstreamError(
                        f"upstream {self.name!r} closed the stream before [DONE]", upstream=self.name
                    )
                if self.pace is not None:  # a wait for our own turn is not upstream time
                    paced = clock()
                    await self.pace()
                    mark += clock() - paced
                line = line.rstrip(b"\r\n")
                if line.startswith(b"data:"):
                    data.append(line[5:].lstrip(b" "))
                    continue
                if line or not data:
                    continue  # comments, event:/id: fields, keep-alive blank lines
                chunk = data[0] if len(data) == 1 else b"\n".join(data)
                data = []
                if chunk == b"[DONE]":
                    clean = True
                    return
                try:
                    event = _decode(chunk)
                except msgspec.DecodeError:
                    raise UpstreamError(
                        f"upstream {self.name!r} sent a malformed stream chunk: {chunk[:200]!r}",
                        upstream=self.name,
                    ) from None
                if isinstance(event, dict) and "error" in event and "choices" not in event:
                    raise UpstreamError(
                        f"upstream {self.name!r} failed mid-stream: {_error_message(event)}",
                        upstream=self.name,
                    )
                if ctx is not None:  # count only time spent waiting on the upstream
                    ctx.upstream_seconds += clock() - mark
                waiting = False
                yield event
                waiting = True
                mark = clock()
        finally:
            if clean:
                response.release()
            else:
                response.close()  # abort: the upstream sees the connection drop
            if ctx is not None and waiting:
                ctx.upstream_seconds += clock() - mark
            if self.observe is not None:
                self.observe(self.name, "ok" if clean else "error", clock() - began)

    # -- plumbing ------------------------------------------------------------------------------

    async def _json(
        self, path: str, payload: dict[str, Any], ctx: RequestContext | None
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + float(self.config.timeout)
        began = time.perf_counter()  # durations: see stream()
        outcome = "error"
        paced = 0.0
        try:
            response = await self._post(path, payload, started, deadline)
            try:
                async with asyncio.timeout_at(deadline):
                    raw = await response.read()
            except TimeoutError:
                response.close()
                raise UpstreamTimeout(
                    f"upstream {self.name!r} did not finish within {self.config.timeout:g}s",
                    upstream=self.name,
                ) from None
            except aiohttp.ClientError as exc:
                response.close()
                raise self._connection_error(exc) from exc
            response.release()
            if self.pace is not None:  # a wait for our own turn is not upstream time
                mark = time.perf_counter()
                await self.pace()
                paced = time.perf_counter() - mark
            try:
                result = _decode(raw)
            except msgspec.DecodeError:
                raise UpstreamError(
                    f"upstream {self.name!r} returned a body that is not JSON: {raw[:200]!r}",
                    upstream=self.name,
                    upstream_status=response.status,
                ) from None
            if not isinstance(result, dict):
                raise UpstreamError(
                    f"upstream {self.name!r} returned JSON that is not an object", upstream=self.name
                )
            outcome = "ok"
            return result
        finally:
            elapsed = time.perf_counter() - began - paced
            if ctx is not None:
                ctx.upstream_seconds += elapsed
            if self.observe is not None:
                self.observe(self.name, outcome, elapsed)

    async def _post(
        self, path: str, payload: dict[str, Any], started: float, deadline: float
    ) -> aiohttp.ClientResponse:
        session = self._session
        if session is None:
            raise UsageError(f"Upstream {self.name!r} is {self.state}; start() it first")
        url = self.config.url + path
        try:
            async with asyncio.timeout_at(min(deadline, started + self._first_byte)):
                response = await session.post(url, data=_encode(payload))
        except TimeoutError:
            raise UpstreamTimeout(
                f"upstream {self.name!r} sent no response headers within "
                f"{min(self._first_byte, float(self.config.timeout)):g}s",
                upstream=self.name,
            ) from None
        except aiohttp.ClientError as exc:
            raise self._connection_error(exc) from exc
        if response.status >= 400:
            await self._raise_status(response, deadline)
        return response

    async def _raise_status(self, response: aiohttp.ClientResponse, deadline: float) -> None:
        try:
            async with asyncio.timeout_at(deadline):
                raw = await response.content.read(_MAX_ERROR_BODY)
        except (TimeoutError, aiohttp.ClientError):
            raw = b""
        finally:
            response.close()
        text = raw.decode("utf-8", "replace")
        try:
            detail = _error_message(_decode(raw))
        except msgspec.DecodeError:
            detail = text[:200] or response.reason or ""
        raise UpstreamError(
            f"upstream {self.name!r} answered {response.status}: {detail}",
            upstream=self.name,
            upstream_status=response.status,
            retry_after=_retry_after(response.headers.get("Retry-After")),
            body=text,
        )

    def _connection_error(self, exc: BaseException) -> UpstreamError:
        if isinstance(exc, aiohttp.ServerTimeoutError):
            return UpstreamTimeout(f"upstream {self.name!r} timed out: {exc}", upstream=self.name)
        kind = type(exc).__name__
        return UpstreamError(f"upstream {self.name!r} connection failed ({kind}): {exc}", upstream=self.name)


def _error_message(payload: object) -> str:
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            return str(error.get("message") or error)
        return str(error)
    return str(payload)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
