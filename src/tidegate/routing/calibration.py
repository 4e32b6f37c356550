"""Calibrating and evaluating the router on a labeled prompt file.

The file is JSONL, one prompt a line: ``{"prompt": "...", "light_ok": true, "category": "faq"}``
(``messages`` may replace ``prompt`` for multi-turn examples). ``light_ok`` says the light model's
answer was as good as the strong one's.

Quality model: the strong tier answers everything acceptably; the light tier answers a prompt
acceptably iff ``light_ok``. Routing the top-scored share ``s`` of prompts to strong keeps a
quality of ``(#light_ok + #needs_strong routed strong) / n``; strong-only quality is 1. Random
routing keeps ``p + (1 - p)·s`` (``p`` = share light_ok), which is the baseline a scorer must beat.
Ties in score are averaged (as random tie-breaking would be in expectation), so a scorer cannot
look good by giving everything the same score.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from ..errors import ConfigError
from .scorer import Scorer

__all__ = [
    "Calibration",
    "CurvePoint",
    "Evaluation",
    "LabeledPrompt",
    "calibrate",
    "evaluate",
    "load_labeled",
    "threshold_for_share",
]


class LabeledPrompt(msgspec.Struct, kw_only=True):
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    light_ok: bool
    category: str | None = None

    def body(self) -> dict[str, Any]:
        """The chat request body this example stands for (what the scorer sees)."""
        if self.messages is not None:
            return {"model": "auto", "messages": self.messages}
        return {"model": "auto", "messages": [{"role": "user", "content": self.prompt or ""}]}

    def text(self) -> str:
        """The last user message, the text an embedding head sees."""
        if self.messages is None:
            return self.prompt or ""
        for message in reversed(self.messages):
            if message.get("role") == "user" and isinstance(message.get("content"), str):
                return str(message["content"])
        return ""


class CurvePoint(msgspec.Struct, frozen=True):
    strong_share: float
    quality_retained: float


class Evaluation(msgspec.Struct, frozen=True, kw_only=True):
    prompts: int
    light_ok_share: float
    curve: tuple[CurvePoint, ...]
    share_for_95: float
    """Smallest strong-tier share keeping 95 % of strong-only quality."""
    random_share_for_95: float
    auc: float
    """Area under quality-retained vs strong-share (1.0 perfect; random is (1 + p) / 2)."""

    def quality_at(self, share: float) -> float:
        """Quality retained when ``share`` of the prompts go to the strong tier (interpolated)."""
        points = self.curve
        for left, right in itertools.pairwise(points):
            if left.strong_share <= share <= right.strong_share:
                span = right.strong_share - left.strong_share
                t = 0.0 if span == 0 else (share - left.strong_share) / span
                return left.quality_retained + t * (right.quality_retained - left.quality_retained)
        return points[-1].quality_retained


class Calibration(msgspec.Struct, frozen=True, kw_only=True):
    score_below: float
    """Requests scoring below this go to the lighter tier (``when: {score_below: ...}``)."""
    target_strong_share: float
    strong_share: float
    """Share of the labeled prompts that this threshold sends to the strong tier."""
    quality_retained: float
    prompts: int

    def describe(self, tier: str = "light") -> str:
        return (
            f"routing.tiers[{tier}].when.score_below: {self.score_below:.4f}  "
            f"(strong share {self.strong_share:.1%} for a target of {self.target_strong_share:.1%}; "
            f"quality retained {self.quality_retained:.1%} on {self.prompts} prompts)"
        )


_decoder = msgspec.json.Decoder(LabeledPrompt)


def load_labeled(path: str | os.PathLike[str]) -> list[LabeledPrompt]:
    """Read a labeled JSONL file, naming the line of every bad record."""
    issues: list[str] = []
    examples: list[LabeledPrompt] = []
    source = str(path)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"Cannot read labeled prompts `{source}`: {exc.strerror or exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            example = _decoder.decode(line)
        except msgspec.DecodeError as exc:
            issues.append(f"{exc} - at line {number} ({source})")
            continue
        if example.prompt is None and example.messages is None:
            issues.append(
                f"Expected `prompt` or `messages`, got neither - at line {number} ({source})"
            )
            continue
        examples.append(example)
    if issues:
        raise ConfigError(issues, source=source)
    if not examples:
        raise ConfigError(f"Expected at least one labeled prompt, got an empty file ({source})")
    return examples


def evaluate(scores: Sequence[float], light_ok: Sequence[bool]) -> Evaluation:
    """The quality-vs-strong-share curve of routing the highest scores to the strong tier."""
    n = len(scores)
    if n == 0 or n != len(light_ok):
        raise ValueError(f"Expected one label per score, got {len(light_ok)} labels for {n} scores")
    order = sorted(range(n), key=lambda i: -scores[i])
    ok_count = sum(1 for flag in light_ok if flag)
    p = ok_count / n
    points = [CurvePoint(0.0, p)]
    captured = 0  # needs-strong prompts already routed strong
    start = 0
    while start < n:
        end = start
        while end < n and scores[order[end]] == scores[order[start]]:
            end += 1
        group_need = sum(1 for i in order[start:end] if not light_ok[i])
        size = end - start
        for k in range(1, size + 1):  # expected value under random tie-breaking
            gained = group_need * k / size
            points.append(CurvePoint((start + k) / n, (ok_count + captured + gained) / n))
        captured += group_need
        start = end
    share_95 = _share_reaching(points, 0.95)
    random_95 = 0.0 if p >= 0.95 else (0.95 - p) / (1.0 - p)
    auc = sum(
        (b.strong_share - a.strong_share) * (a.quality_retained + b.quality_retained) / 2.0
        for a, b in itertools.pairwise(points)
    )
    return Evaluation(
        prompts=n, light_ok_share=p, curve=tuple(points), share_for_95=share_95,
        random_share_for_95=random_95, auc=auc,
    )  # fmt: skip


def _share_reaching(points: Sequence[CurvePoint], level: float) -> float:
    previous = points[0]
    if previous.quality_retained >= level:
        return 0.0
    for point in points[1:]:
        if point.quality_retained >= level - 1e-12:
            rise = point.quality_retained - previous.quality_retained
            t = 1.0 if rise <= 0 else (level - previous.quality_retained) / rise
            return previous.strong_share + t * (point.strong_share - previous.strong_share)
        previous = point
    return 1.0


def threshold_for_share(scores: Sequence[float], share: float) -> float:
    """A ``score_below`` sending about ``share`` of these scores to the strong tier.

    Halfway between the lowest score routed strong and the highest routed light, so a fresh
    prompt scoring like either neighbour lands on the same side as it.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"Expected a share in [0, 1], got {share}")
    ranked = sorted(scores, reverse=True)
    k = round(share * len(ranked))
    if k <= 0:
        return math.nextafter(ranked[0], math.inf) if ranked else 1.0
    if k >= len(ranked):
        return ranked[-1]
    return (ranked[k - 1] + ranked[k]) / 2.0


def calibrate(
    labeled_file: str | os.PathLike[str],
    target_strong_share: float,
    *,
    weights: Mapping[str, float] | None = None,
    score: Callable[[LabeledPrompt], float] | None = None,
) -> Calibration:
    """Pick the score threshold that sends ``target_strong_share`` of the file to the strong tier.

    Scores come from the rule scorer (with ``weights`` overrides) unless ``score`` is given (e.g.
    the router's blended rules + head score).
    """
    examples = load_labeled(labeled_file)
    if score is None:
        scorer = Scorer(weights)

        def score(example: LabeledPrompt) -> float:
            return scorer.score(example.body()).value

    values = [score(example) for example in examples]
    threshold = threshold_for_share(values, target_strong_share)
    strong = [value >= threshold for value in values]
    kept = sum(
        1 for flag, example in zip(strong, examples, strict=True) if flag or example.light_ok
    )
    return Calibration(
        score_below=threshold, target_strong_share=target_strong_share,
        strong_share=sum(strong) / len(values), quality_retained=kept / len(values),
        prompts=len(values),
    )  # fmt: skip
