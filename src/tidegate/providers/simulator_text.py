"""What the simulator says: deterministic words, token counts and tool-call directives.

Answers must be reproducible (same messages and model -> same text) so tests can compare a stream
with a non-stream answer and caches can be checked for hits; they must also be cheap, so the
vocabulary and its JSON-encoded forms are built once at import and a reply is only a list of
indices drawn from a PRNG seeded by the prompt's hash.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any

import msgspec

__all__ = [
    "VOCAB",
    "VOCAB_JSON",
    "Reply",
    "ToolCall",
    "message_text",
    "plan_reply",
    "prompt_tokens",
]

_WORDS = """
the of and to in is it that was for on are with as his they be at one have this from or had by
word but what some we can out other were all there when up use your how said an each she which do
their time if will way about many then them write would like so these her long make thing see him
two has look more day could go come did number sound no most people my over know water than call
first who may down side been now find any new work part take get place made live where after back
little only round man year came show every good me give our under name very through just form
sentence great think say help low line differ turn cause much mean before move right boy old too
same tell does set three want air well also play small end put home read hand port large spell add
even land here must big high such follow act why ask men change went light kind off need house
picture try us again animal point mother world near build self earth father head stand own page
should country found answer school grow study still learn plant cover food sun four between state
keep eye never last let thought city tree cross farm hard start might story saw far sea draw left
late run while press close night real life few north open seem together next white children begin
got walk example ease paper group always music those both mark often letter until mile river car
feet care second book carry took science eat room friend began idea fish mountain stop once base
hear horse cut sure watch color face wood main enough plain girl usual young ready above ever red
list though feel talk bird soon body dog family direct pose leave song measure door product black
short numeral class wind question happen complete ship area half rock order fire south problem
piece told knew pass since top whole king space heard best hour better true during hundred five
remember step early hold west ground interest reach fast verb sing listen six table travel less
morning ten simple several vowel toward war lay against pattern slow center love person money
serve appear road map rain rule govern pull cold notice voice unit power town fine certain fly fall
lead cry dark machine note wait plan figure star box noun field rest correct able pound done
beauty drive stood contain front teach week final gave green oh quick develop ocean warm free
minute strong special mind behind clear tail produce fact street inch multiply nothing course stay
wheel full force blue object decide surface deep moon island foot system busy test record boat
common gold possible plane stead dry wonder laugh thousand ago ran check game shape equate hot
miss brought heat snow tire bring yes distant fill east paint language among
"""

VOCAB: tuple[str, ...] = tuple(dict.fromkeys(_WORDS.split()))
"""The fixed English vocabulary every simulated answer is drawn from (de-duplicated, ordered)."""

VOCAB_JSON: tuple[bytes, ...] = tuple(msgspec.json.encode(w) for w in VOCAB)
"""Each word as a JSON string, for splicing into pre-built chunk templates."""

VOCAB_JSON_SPACED: tuple[bytes, ...] = tuple(msgspec.json.encode(" " + w) for w in VOCAB)
"""Each word with its leading space, as a JSON string: the form of every stream token but the first."""

_canonical = msgspec.json.Encoder(order="sorted")
_CALL = re.compile(r"call(?:@([1-9]\d{0,2}))?:([A-Za-z_][\w.-]*)\(")
_json_decoder = json.JSONDecoder()


class ToolCall(msgspec.Struct, frozen=True, gc=False):
    """One tool call the simulated model asks for; ``arguments`` is the JSON text OpenAI sends."""

    id: str
    name: str
    arguments: str


class Reply(msgspec.Struct, gc=False):
    """A planned answer: either words (``indices`` into the vocabulary or free ``pieces``) or calls.

    ``pieces`` are the stream deltas (the first without, the rest with, a leading space); joined
    they are ``text``. Token count is the number of pieces.
    """

    text: str | None
    pieces: list[str] | None
    indices: list[int] | None
    tool_calls: list[ToolCall] | None
    finish_reason: str
    completion_tokens: int


def message_text(content: object) -> str:
    """The text of a message's ``content``: a string, ``None``, or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def prompt_tokens(messages: list[Any]) -> int:
    """Cheap usage estimate: words of every message's text plus 4 per message."""
    total = 0
    for message in messages:
        total += 4
        if isinstance(message, dict):
            total += len(message_text(message.get("content")).split())
    return total


def seed_of(model: str, messages: object) -> int:
    """A stable 64-bit seed from the model name and the canonical JSON of the messages."""
    digest = hashlib.sha256(model.encode() + b"\x00" + _canonical.encode(messages)).digest()
    return int.from_bytes(digest[:8], "big")


def _tool_calls(text: str, first_id: int, step: int = 1) -> list[ToolCall]:
    """The calls of ``step``: ``call:`` directives belong to step 1, ``call@K:`` ones to step K."""
    calls: list[ToolCall] = []
    for match in _CALL.finditer(text):
        if int(match.group(1) or 1) != step:
            continue
        pos = match.end()
        if text.startswith(")", pos):
            arguments: object = {}
        else:
            try:
                arguments, end = _json_decoder.raw_decode(text, pos)
            except ValueError:
                continue
            if not text.startswith(")", end):
                continue
        name = match.group(2)
        encoded = msgspec.json.encode(arguments).decode()
        calls.append(ToolCall(id=f"call_{first_id + len(calls)}", name=name, arguments=encoded))
    return calls


def _all_calls(text: str) -> list[ToolCall]:
    """Every directive of every step, in step order (what a ReAct model acts out one by one)."""
    steps = sorted({int(m.group(1) or 1) for m in _CALL.finditer(text)})
    return [call for step in steps for call in _tool_calls(text, 1, step)]


def _words(text: str, limit: int) -> Reply:
    pieces = text.split(" ")
    pieces = [pieces[0], *(" " + p for p in pieces[1:])] if pieces else []
    finish = "length" if len(pieces) > limit else "stop"
    pieces = pieces[:limit]
    return Reply(
        text="".join(pieces),
        pieces=pieces,
        indices=None,
        tool_calls=None,
        finish_reason=finish,
        completion_tokens=len(pieces),
    )


def plan_reply(
    messages: list[Any],
    *,
    model: str,
    natural: int,
    limit: int | None,
    tools: bool,
    style: str = "openai",
) -> Reply:
    """Decide the answer to ``messages``.

    ``natural`` is the length the model "wants" to write, ``limit`` the client's max tokens; the
    answer is cut at the limit with ``finish_reason="length"``. With ``tools`` offered, the last
    user message's ``call:NAME({...})`` directives become tool calls; ``call@K:NAME(...)`` ones
    are asked for in round K, after K-1 rounds of tool results, so one prompt scripts a multi-step
    agent run. After tool messages with no round left, the answer quotes their results so a test
    can see them come back. ``style="react"`` plays a model without native tool calling that
    follows a ReAct prompt (see :func:`_react_reply`).
    """
    cap = natural if limit is None else min(natural, limit)
    budget = 1 << 30 if limit is None else limit
    if style == "react":
        react = _react_reply(messages, budget)
        if react is not None:
            return react
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    if last.get("role") == "tool" or tools:
        reply = _scripted_calls(messages) if tools else None
        if reply is not None:
            return reply
    if last.get("role") == "tool":
        results: list[str] = []
        for message in reversed(messages):
            if not isinstance(message, dict) or message.get("role") != "tool":
                break
            results.append(message_text(message.get("content")))
        results.reverse()
        return _words("Tool results: " + " ; ".join(results), budget)
    rng = random.Random(seed_of(model, messages))
    indices = rng.choices(range(len(VOCAB)), k=cap)
    text = " ".join([VOCAB[i] for i in indices])
    if style == "react":
        return _words("Thought: I can answer directly.\nFinal Answer: " + text, budget)
    return Reply(
        text=text,
        pieces=None,
        indices=indices,
        tool_calls=None,
        finish_reason="length" if cap < natural else "stop",
        completion_tokens=cap,
    )


def _scripted_calls(messages: list[Any]) -> Reply | None:
    """The tool calls of the next round scripted in the last user message, if any are left."""
    rounds = 0
    earlier = 0
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "assistant":
            earlier += len(message.get("tool_calls") or ())
    for message in reversed(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            rounds += 1
        if role == "user":
            calls = _tool_calls(message_text(message.get("content")), earlier + 1, rounds + 1)
            if not calls:
                return None
            used = sum(1 + len(c.arguments) // 4 for c in calls)
            return Reply(
                text=None,
                pieces=None,
                indices=None,
                tool_calls=calls,
                finish_reason="tool_calls",
                completion_tokens=used,
            )
    return None


def _react_reply(messages: list[Any], budget: int) -> Reply | None:
    """A ReAct turn: one ``Action`` per directive, then a ``Final Answer`` quoting observations.

    The goal is the latest user message holding directives; every assistant message after it
    is one action already taken, and the user messages after it carry the observations.
    """
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        actions = _all_calls(message_text(message.get("content")))
        if not actions:
            continue
        later = [m for m in messages[index + 1 :] if isinstance(m, dict)]
        taken = sum(1 for m in later if m.get("role") == "assistant")
        if taken < len(actions):
            call = actions[taken]
            text = f"Thought: I should use {call.name}.\nAction: {call.name}\nAction Input: {call.arguments}"
            return _words(text, budget)
        observations = [
            message_text(m.get("content")).removeprefix("Observation:").strip()
            for m in later
            if m.get("role") in ("user", "tool")
        ]
        return _words("Thought: I now know the final answer.\nFinal Answer: Tool results: "
                      + " ; ".join(observations), budget)  # fmt: skip
    return None
