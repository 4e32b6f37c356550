"""Rule-based complexity score of a chat request, in microseconds and explainable.

A weighted sum of cheap signals (length, code, math, reasoning and multi-step cues, number of
questions, conversation depth, non-English text, tools, structured output, hard constraints,
small-talk cues), clipped to [0, 1]. No model call: the published routers show prompt length
alone beats random and cue words add more; what a learned head adds is in ``head.py``.

Speed is the point (the scorer runs on every ``model: auto`` request), so the text is scanned
once: lower-cased and capped, split into words that are looked up in one dict mapping cue words
to their signal; phrases are plain substring checks (C speed). Each signal reports its
contribution so the debug header can say *why* a request went where it did.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["DEFAULT_WEIGHTS", "Score", "Scorer", "prompt_text"]

DEFAULT_WEIGHTS: dict[str, float] = {
    "base": 0.10,
    "length": 0.35,
    "code": 0.30,
    "math": 0.25,
    "reasoning": 0.28,
    "multi_step": 0.15,
    "questions": 0.10,
    "depth": 0.10,
    "language": 0.05,
    "tools": 0.15,
    "structured": 0.08,
    "constraints": 0.12,
    "simple": -0.15,
    "brevity": -0.15,
}
"""Contribution of each signal at full strength (each feature is in [0, 1])."""

_SCAN_CHARS = 1000
_PHRASE_CHARS = 300
"""Cues are looked for in the first this-many characters (words / phrases): long prompts already
score on length, and a bounded scan keeps the p99 in microseconds whatever the client sends."""

_SPACES = str.maketrans({char: " " for char in string.punctuation if char not in "_'"})

_CUES: dict[str, str] = {}
for _signal, _words in {
    "code": (
        "def class function func return import lambda async await const var let struct impl "
        "fn pub void int printf println sql select insert join regex api endpoint refactor "
        "debug bug stacktrace traceback exception compile compiler segfault python javascript "
        "typescript rust golang java kotlin cpp bash dockerfile kubernetes yaml json algorithm "
        "recursion recursive complexity implement implementation unittest pytest concurrency "
        "thread threads mutex deadlock"
    ),
    "math": (
        "integral derivative differentiate integrate equation equations theorem lemma proof "
        "prove probability expected variance matrix eigenvalue eigenvalues polynomial "
        "logarithm prime primes modulo inequality optimize optimization minimize maximize "
        "combinatorics permutations combinations geometry triangle vector vectors calculus "
        "limit converge converges series bayes bayesian regression statistics solve fraction "
        "fractions"
    ),
    "reasoning": (
        "why explain analyze analyse analysis compare contrast evaluate assess critique "
        "derive justify reason reasoning tradeoff tradeoffs implications consequences design "
        "architect architecture strategy strategies plan hypothesis argue argument debate "
        "diagnose investigate infer deduce counterargument nuanced rigorous ethical ethics moral"
    ),
    "multi_step": (
        "first then next finally afterwards subsequently steps stages phases also additionally "
        "furthermore moreover"
    ),
    "constraints": (
        "must exactly without constraint constraints requirement requirements ensure guarantee"
    ),
}.items():
    for _word in _words.split():
        _CUES[_word] = _signal

_CUE_WORDS = frozenset(_CUES)

_PHRASES: dict[str, tuple[str, ...]] = {
    "reasoning": (
        "step by step", "step-by-step", "pros and cons", "trade-off", "what would happen",
        "walk me through", "in depth", "in detail", "root cause", "think through", ", and what",
        ", and why", ", and how", "and explain", "then explain", "each side", "each way",
    ),
    "math": ("\\frac", "\\sum", "\\int", "solve for", "how many ways", "x^2", "n^2"),
    "code": ("```", "();", "=>", "->", "!=", "==", "#include", "</", "{\n"),
    "constraints": (
        "at least", "at most", "no more than", "less than", "word limit", "o(n", "edge case",
    ),
    "brevity": (
        "one sentence", "one line", "one-line", "briefly", "brief answer", "short answer",
        "keep it short", "simple terms", "simply", "just the", "three words", "in two", "tl;dr",
        "bullet points", "for a child", "no other changes", "don't change anything",
    ),
}  # fmt: skip


def _phrase_key(phrase: str) -> str | None:
    parts = phrase.encode("ascii", "replace").decode("ascii").translate(_SPACES).split()
    return parts[0] if parts else None


_PHRASE_INDEX: tuple[tuple[str | None, str, str, int], ...] = tuple(
    (_phrase_key(phrase), phrase, signal, 2 if signal == "code" else 1)
    for signal, phrases in _PHRASES.items()
    for phrase in phrases
)

_SIMPLE_START = (
    "hi", "hello", "hey", "thanks", "thank you", "good morning", "good night", "what is", "what's",
    "who is", "who was", "when is", "when was", "where is", "define", "translate", "spell",
    "how do you say", "what time", "what does", "is it", "can you tell me", "what are your",
)  # fmt: skip

_NUMBERED = re.compile(r"\n[ \t]*(?:\d+[.)]|[-*•])[ \t]+\S")
"""Starts with a literal newline so the regex engine jumps between lines instead of trying every
character (the text is scanned with a newline prepended so a list on the first line counts)."""
_BIG_NUMBER = re.compile(r"\d(?:\d{3,}\s*[-+*/^×÷%]|\s*\^\s*\d{2,}|\d*(?:st|nd|rd|th)\b)")
"""Every branch starts with a digit, so the engine skips ahead on a character class (~4x faster)."""
_ARITH = re.compile(r"\d\s*[-+*/^×÷=<>]\s*\(?\d")


class Score(msgspec.Struct, frozen=True, gc=False):
    """A score in [0, 1] and the signals that made it, largest contribution first."""

    value: float
    signals: tuple[tuple[str, float], ...] = ()

    def explain(self, limit: int = 4) -> str:
        """``code+0.30,length+0.12`` — the debug header's words for this score."""
        return ",".join(f"{name}{weight:+.2f}" for name, weight in self.signals[:limit])


def prompt_text(content: Any) -> str:
    """The text of a message's ``content`` (a string or a list of OpenAI content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text", "") for part in content if isinstance(part, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


class Scorer:
    """Scores OpenAI chat request bodies; build once, call :meth:`score` per request."""

    __slots__ = ("weights",)

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        merged = dict(DEFAULT_WEIGHTS)
        for name, weight in (weights or {}).items():
            if name not in merged:
                raise ValueError(
                    f"Expected a signal name ({', '.join(sorted(merged))}), got `{name}`"
                )
            merged[name] = float(weight)
        self.weights = merged

    def score(self, body: Mapping[str, Any]) -> Score:
        messages = body.get("messages")
        text = ""
        user_turns = 0
        if isinstance(messages, list):
            for message in messages:
                if isinstance(message, dict) and message.get("role") == "user":
                    user_turns += 1
                    text = prompt_text(message.get("content"))
        features = self.features(text, user_turns=user_turns)
        if body.get("tools") or body.get("functions"):
            features["tools"] = 1.0
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            features["structured"] = 1.0
        return self.combine(features)

    def combine(self, features: Mapping[str, float]) -> Score:
        weights = self.weights
        total = weights["base"]
        signals: list[tuple[str, float]] = []
        for name, strength in features.items():
            if strength:
                contribution = weights[name] * strength
                total += contribution
                signals.append((name, contribution))
        signals.sort(key=lambda item: -abs(item[1]))
        value = 0.0 if total < 0.0 else 1.0 if total > 1.0 else total
        return Score(value, tuple(signals))

    @staticmethod
    def features(text: str, *, user_turns: int = 1) -> dict[str, float]:
        """Each signal's strength in [0, 1] for one prompt (zeros omitted)."""
        features: dict[str, float] = {}
        length = len(text)
        if length > 40:  # ~8 words; log scale saturating near 2,000 characters
            features["length"] = min(1.0, math.log(length / 40.0) / math.log(50.0))
        head = text[:_SCAN_CHARS].lower()
        counts = {
            "code": 0,
            "math": 0,
            "reasoning": 0,
            "multi_step": 0,
            "constraints": 0,
            "brevity": 0,
        }
        # Distinct cue words: a set intersection in C is ~2x faster than a Python loop over every
        # word, and a word repeated ten times is no more evidence than once.
        # str.translate has a fast path for ASCII only; cue words are ASCII, so drop the rest.
        ascii_head = head if head.isascii() else head.encode("ascii", "replace").decode("ascii")
        words = set(ascii_head.translate(_SPACES).split())
        for word in _CUE_WORDS.intersection(words):
            counts[_CUES[word]] += 1
        start = head[:_PHRASE_CHARS]
        # A phrase is searched for only when its first word occurs at all: a set lookup instead
        # of a substring scan for most of them.
        for key, phrase, signal, points in _PHRASE_INDEX:
            if (key is None or key in words) and phrase in start:
                counts[signal] += points
        if _ARITH.search(start) is not None:
            counts["math"] += 1
        if _BIG_NUMBER.search(start) is not None:  # multi-digit arithmetic trips small models
            counts["math"] += 2
        numbered = len(_NUMBERED.findall("\n" + head)) if "\n" in head or head[:1] in "-*•" else 0
        if numbered >= 2:
            counts["multi_step"] += numbered
        symbols = head.count("{") + head.count(";") + head.count("(")
        if symbols >= 6:
            counts["code"] += 2
        for signal, count in counts.items():
            if count:
                features[signal] = min(1.0, count / 3.0)
        if counts["brevity"]:
            features["brevity"] = 1.0  # one "in one sentence" says it all
        questions = head.count("?")
        if questions >= 2:
            features["questions"] = min(1.0, (questions - 1) / 3.0)
        if user_turns > 1:
            features["depth"] = min(1.0, (user_turns - 1) / 6.0)
        if length and _non_ascii_share(head) > 0.3:
            features["language"] = 1.0
        if (
            length < 70
            and head.lstrip().startswith(_SIMPLE_START)
            and "code" not in features
            and "math" not in features
        ):
            features["simple"] = 1.0
        return features


def _non_ascii_share(text: str) -> float:
    """Roughly the share of non-ASCII characters, from the UTF-8 length (C speed, no char loop).

    Each non-ASCII character adds 1-3 bytes, so this overestimates for CJK; the threshold only
    needs to separate "mostly another script" from "English with a few accents".
    """
    if text.isascii():
        return 0.0
    return (len(text.encode("utf-8", "surrogatepass")) - len(text)) / (1.5 * len(text))
