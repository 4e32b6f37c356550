"""The simulator's request handlers: timing, fault injection, stream pacing and counters.

Kept apart from the server wrapper (``simulator.py``) so the behaviour a test relies on - what a
fault does, when a token goes out - reads in one place. Every wait is ``asyncio.sleep`` or a future
that only cancellation ends, so a simulated hang costs nothing and never blocks the loop.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Mapping
from typing import Any

import msgspec
from aiohttp import web

from ..config.simulator import FAULT_KINDS, SimulatorConfig
from .simulator_embed import HashEmbedder
from .simulator_http import (
    BadRequest,
    Stats,
    abort_connection,
    header_number,
    json_response,
    positive_int,
)
from .simulator_text import plan_reply, prompt_tokens
from .simulator_wire import (
    StreamFrames,
    chat_body,
    chat_frames,
    completion_body,
    completion_frames,
    malformed_body,
    malformed_frame,
)

__all__ = ["Engine", "sample_ttft"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def sample_ttft(config: SimulatorConfig, rng: random.Random) -> float:
    """One time-to-first-token draw in seconds.

    ``uniform`` spreads ``ttft ± ttft_jitter`` (clamped at 0); ``lognormal`` has mean ``ttft`` and
    standard deviation ``ttft_jitter``, the long right tail real model servers show under load.
    """
    mean, jitter = float(config.ttft), float(config.ttft_jitter)
    if config.ttft_dist == "fixed" or jitter == 0.0 or mean == 0.0:
        return mean
    if config.ttft_dist == "uniform":
        return max(0.0, rng.uniform(mean - jitter, mean + jitter))
    sigma2 = math.log1p((jitter / mean) ** 2)
    return rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))


class Engine:
    """Answers model requests under the current config; the server owns sockets and lifecycle."""

    def __init__(self, config: SimulatorConfig, stats: Stats, embedder: HashEmbedder) -> None:
        self.stopping = False
        self._stats = stats
        self._embedder = embedder
        self.config = config
        self._fault_table: list[tuple[str, float]] = []
        self._fault_rng = random.Random(0)
        self._jitter_rng = random.Random(0)
        self.configure(config)
        self.reseed()

    def configure(self, config: SimulatorConfig) -> None:
        """Swap the config at runtime; in-flight requests keep the values they started with."""
        reseed = config.seed != self.config.seed
        self.config = config
        self._fault_table = [(k, config.faults[k]) for k in FAULT_KINDS if config.faults.get(k)]
        if reseed:
            self.reseed()

    def reseed(self) -> None:
        self._fault_rng = random.Random(f"faults:{self.config.seed}")
        self._jitter_rng = random.Random(f"jitter:{self.config.seed}")

    # -- per-request decisions ---------------------------------------------------------------

    async def _body(self, request: web.BaseRequest) -> dict[str, Any]:
        try:
            body = _decode(await request.content.read())
        except msgspec.DecodeError as exc:
            raise BadRequest(f"Expected a JSON body, got invalid JSON ({exc})") from None
        if not isinstance(body, dict):
            raise BadRequest(f"Expected a JSON object, got `{type(body).__name__}`")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("Expected `model` to be a non-empty string", "model")
        return body

    def _fault(self, headers: Mapping[str, str]) -> str | None:
        kind = headers.get("X-Sim-Fault")
        if kind is not None:
            if kind not in FAULT_KINDS:
                raise BadRequest(
                    f"Expected `X-Sim-Fault` to be one of {', '.join(FAULT_KINDS)}, got `{kind}`",
                    "X-Sim-Fault",
                )
        elif self.config.fail_all:
            kind = self.config.fail_kind
        elif self._fault_table:
            draw = self._fault_rng.random()
            for candidate, rate in self._fault_table:
                draw -= rate
                if draw < 0:
                    kind = candidate
                    break
        if kind is not None:
            self._stats.faults[kind] += 1
        return kind

    def _ttft(self, headers: Mapping[str, str]) -> float:
        override = header_number(headers, "X-Sim-TTFT-Ms")
        if override is not None:
            return override / 1000.0
        return sample_ttft(self.config, self._jitter_rng)

    def _tps(self, headers: Mapping[str, str]) -> float:
        override = header_number(headers, "X-Sim-TPS")
        return self.config.tokens_per_second if override is None else override

    def _natural(self, headers: Mapping[str, str]) -> int:
        override = header_number(headers, "X-Sim-Tokens")
        return self.config.tokens if override is None else int(override)

    async def _early_fault(
        self, request: web.BaseRequest, fault: str | None, *, stream: bool
    ) -> web.StreamResponse | None:
        """Faults that strike before any answer; ``None`` lets the request proceed."""
        if fault is None:
            return None
        if fault in ("500", "503"):
            message = f"The simulated upstream failed with {fault} (injected fault)."
            return json_response(
                int(fault), message, kind="server_error", code=f"simulated_{fault}"
            )
        if fault == "429":
            retry = header_number(request.headers, "X-Sim-Retry-After")
            retry = self.config.retry_after if retry is None else retry
            return json_response(
                429,
                "Rate limit reached on the simulated upstream (injected fault).",
                kind="rate_limit_error",
                code="rate_limit_exceeded",
                headers={"Retry-After": f"{retry:g}"},
            )
        if fault == "hang" and not (stream and "X-Sim-Fault-After" in request.headers):
            await asyncio.get_running_loop().create_future()  # ends only by cancellation
        if fault == "reset" and not stream:
            abort_connection(request)
            return web.Response()
        return None

    def _tool_style(self, headers: Mapping[str, str]) -> str:
        style = headers.get("X-Sim-Tool-Style", "openai")
        if style not in ("openai", "react"):
            raise BadRequest(
                f"Expected `X-Sim-Tool-Style` to be openai or react, got `{style}`", "X-Sim-Tool-Style"
            )
        return style

    def _fault_after(self, headers: Mapping[str, str]) -> int:
        after = header_number(headers, "X-Sim-Fault-After")
        return self.config.fault_after if after is None else int(after)

    # -- endpoints -----------------------------------------------------------------------------

    async def chat(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await self._body(request)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("Expected `messages` to be a non-empty array", "messages")
        limit = positive_int(body, "max_completion_tokens") or positive_int(body, "max_tokens")
        return await self._answer(
            request, body, messages, limit=limit, chat=True,
            tools=bool(body.get("tools")) and body.get("tool_choice") != "none",
        )

    async def completions(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await self._body(request)
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            prompt = "\n".join(p if isinstance(p, str) else str(p) for p in prompt)
        if not isinstance(prompt, str):
            raise BadRequest("Expected `prompt` to be a string or an array", "prompt")
        messages = [{"role": "user", "content": prompt}]
        limit = positive_int(body, "max_tokens")
        return await self._answer(request, body, messages, limit=limit, tools=False, chat=False)

    async def _answer(
        self,
        request: web.BaseRequest,
        body: dict[str, Any],
        messages: list[Any],
        *,
        limit: int | None,
        tools: bool,
        chat: bool,
    ) -> web.StreamResponse:
        headers = request.headers
        stream = body.get("stream") is True
        ttft, tps, natural = self._ttft(headers), self._tps(headers), self._natural(headers)
        fault = self._fault(headers)
        early = await self._early_fault(request, fault, stream=stream)
        if early is not None:
            return early
        model = "simulator/" + body["model"]
        style = self._tool_style(headers) if chat else "openai"
        reply = plan_reply(
            messages, model=body["model"], natural=natural, limit=limit, tools=tools, style=style
        )
        prompt = prompt_tokens(messages)
        self._stats.prompt_tokens += prompt
        self._stats.completion_tokens += reply.completion_tokens
        if stream:
            options = body.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            build = chat_frames if chat else completion_frames
            frames = build(reply, model=model, prompt_tokens=prompt, include_usage=usage)
            after = self._fault_after(headers) if fault is not None else 0
            return await self._stream(request, frames, ttft=ttft, tps=tps, fault=fault, after=after)
        await asyncio.sleep(ttft + (reply.completion_tokens / tps if tps > 0 else 0.0))
        if fault == "malformed":
            return web.Response(body=malformed_body(model), content_type="application/json")
        encode = chat_body if chat else completion_body
        return web.Response(
            body=encode(reply, model=model, prompt_tokens=prompt), content_type="application/json"
        )

    async def _stream(
        self,
        request: web.BaseRequest,
        frames: StreamFrames,
        *,
        ttft: float,
        tps: float,
        fault: str | None,
        after: int,
    ) -> web.StreamResponse:
        """Send ``frames`` paced by ``tps``; coalesce frames already due into one write."""
        self._stats.streams += 1
        response = web.StreamResponse(headers=_SSE_HEADERS)
        loop = asyncio.get_running_loop()
        tokens = frames.tokens
        cut = min(after, len(tokens)) if fault is not None else -1
        try:
            await response.prepare(request)
            if ttft > 0:
                await asyncio.sleep(ttft)
            interval = 1.0 / tps if tps > 0 else 0.0
            start = loop.time()
            pending = [frames.lead]
            for index in range(len(tokens) + 1):
                if index == cut:
                    if fault == "malformed":
                        pending.append(malformed_frame())
                    else:
                        await response.write(b"".join(pending))
                        pending = []
                        if fault == "reset":
                            abort_connection(request)
                            return response
                        await loop.create_future()  # hang: ends only by cancellation
                if index == len(tokens):
                    break
                if interval:
                    delay = start + index * interval - loop.time()
                    if delay > 0.0005:
                        await response.write(b"".join(pending))
                        pending = []
                        await asyncio.sleep(delay)
                pending.append(tokens[index])
            pending.append(frames.trailer)
            await response.write(b"".join(pending))
            await response.write_eof()
        except ConnectionResetError:
            if not self.stopping:
                self._stats.aborted += 1
        return response

    async def embeddings(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await self._body(request)
        raw = body.get("input")
        texts: list[str]
        if isinstance(raw, str):
            texts = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
            texts = raw
        elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            texts = [" ".join(map(str, raw))]
        elif isinstance(raw, list) and raw and all(isinstance(x, list) for x in raw):
            texts = [" ".join(map(str, x)) for x in raw]
        else:
            raise BadRequest("Expected `input` to be a string or a non-empty array", "input")
        dim = positive_int(body, "dimensions") or self.config.embedding_dim
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise BadRequest(
                f"Expected `encoding_format` float or base64, got `{fmt}`", "encoding_format"
            )
        fault = self._fault(request.headers)
        early = await self._early_fault(request, fault, stream=False)
        if early is not None:
            return early
        model = "simulator/" + body["model"]
        ttft = self._ttft(request.headers)
        if ttft > 0:
            await asyncio.sleep(ttft)
        if fault == "malformed":
            return web.Response(body=malformed_body(model), content_type="application/json")
        b64 = fmt == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": self._embedder.encode(t, dim, as_base64=b64),
            }
            for i, t in enumerate(texts)
        ]
        used = sum(max(1, len(t.split())) for t in texts)
        self._stats.prompt_tokens += used
        usage = {"prompt_tokens": used, "total_tokens": used}
        payload = {"object": "list", "data": data, "model": model, "usage": usage}
        return web.Response(body=_encode(payload), content_type="application/json")
