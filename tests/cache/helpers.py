"""Helpers for the cache tests: a hand-driven clock, answers shaped like OpenAI's, and an upstream
stand-in that counts calls (tests that cross a socket use the real simulator instead)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any


class Clock:
    """Time that moves only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def completion(text: str, *, finish: str = "stop", model: str = "m") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }  # fmt: skip


def chunks(text: str, *, finish: str | None = "stop", usage: bool = False) -> list[dict[str, Any]]:
    head = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    out = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    words = text.split(" ")
    pieces = [w + " " for w in words[:-1]] + words[-1:]
    out += [{**head, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    if finish is not None:
        out.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if usage:
        out.append({**head, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
    return out


def text_of(stream: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in stream if c.get("choices"))


def ask(question: str, *, model: str = "m", system: str | None = None, **params: Any) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system else []
    return {"model": model, "messages": [*messages, {"role": "user", "content": question}], **params}


class Upstream:
    """Answers with a numbered reply; ``gate`` holds calls until released, ``fail`` raises."""

    def __init__(self) -> None:
        self.calls = 0
        self.cancelled = 0
        self.gate: asyncio.Event | None = None
        self.fail: BaseException | None = None

    async def complete(self) -> dict[str, Any]:
        self.calls += 1
        n = self.calls
        try:
            if self.gate is not None:
                await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.fail is not None:
            raise self.fail
        return completion(f"answer {n}")

    def stream(self, *, words: int = 3, fail_after: int | None = None, finish: str | None = "stop") -> Callable[[], AsyncIterator[dict[str, Any]]]:
        async def produce() -> AsyncIterator[dict[str, Any]]:
            self.calls += 1
            n = self.calls
            parts = chunks(" ".join(f"w{n}.{i}" for i in range(words)), finish=finish)
            try:
                for i, chunk in enumerate(parts):
                    if fail_after is not None and i == fail_after and self.fail is not None:
                        raise self.fail
                    if self.gate is not None:
                        await self.gate.wait()
                    yield chunk
                    await asyncio.sleep(0)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise

        return produce



async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for ``condition`` instead of sleeping a guessed amount (the machine may be busy)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)


def decided(ctx: Any) -> bool:
    """The cache chose this request's fate (its Cache-Status is set just before it waits)."""
    return any(name == "cache-status" for name, _ in ctx.response_headers)
