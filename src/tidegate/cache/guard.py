"""The trap guard: refuses a semantic hit when two similar questions ask different things.

Embedding cosine cannot tell "cancel my order" from "cancel my subscription", or "my package
arrived" from "my package has not arrived": minimal edits keep almost every token, so they score
*higher* than honest paraphrases. The guard looks at exactly what an edit changes:

- numbers (digits, number words, ordinals), dates and times, negations (including ``un-``/``in-``
  prefixes and antonym pairs such as enable/disable) must agree;
- named entities (mixed case, acronyms, capitalized mid-sentence) of one must appear in the other;
- when the two questions share most of their wording (a common frame), a content word unique to
  each side means a slot was swapped (the changed object) — unless the words are synonyms,
  spelling variants or typos of each other;
- a role swap ("from Paris to London" / "from London to Paris") and a scope widened with "and …"
  are refused too.

It errs toward refusing: a refused paraphrase costs one upstream call, a served trap a wrong answer.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Literal

from .lexicon import (
    ANTONYMS,
    CONJUNCTIONS,
    DATE_WORDS,
    DIRECTIONAL,
    NEGATING_PREFIXES,
    NEGATIONS,
    NUMBER_WORDS,
)
from .text import Features, stem, synonym_groups

__all__ = ["Reason", "refusal"]

Reason = Literal["number", "date", "negation", "entity", "object"]

FRAME = 0.55
"""Share of aligned tokens above which two questions count as one frame with a swapped slot."""

_ANTONYMS = [(stem(a), stem(b)) for a, b in ANTONYMS]
_COMPARED_ELSEWHERE = frozenset(NUMBER_WORDS) | frozenset(DATE_WORDS) | NEGATIONS


def refusal(new: Features, cached: Features) -> Reason | None:
    """Why ``cached``'s answer must not serve ``new``, or ``None`` when it may."""
    if new.numbers != cached.numbers:
        return "number"
    if new.dates != cached.dates:
        return "date"
    if new.negations != cached.negations or _polarity(new, cached):
        return "negation"
    if _missing_entity(new, cached) or _missing_entity(cached, new):
        return "entity"
    if _changed_object(new, cached):
        return "object"
    return None


def _polarity(a: Features, b: Features) -> bool:
    sa, sb = set(a.stems), set(b.stems)
    for x, y in _ANTONYMS:
        if (x in sa and y in sb and y not in sa and x not in sb) or (
            y in sa and x in sb and x not in sa and y not in sb
        ):
            return True
    for one, other in ((sa - sb, sb), (sb - sa, sa)):
        for word in one:
            for prefix in NEGATING_PREFIXES:
                if word.startswith(prefix) and len(word) - len(prefix) >= 3:
                    base = word[len(prefix) :]
                    if base in other and base not in one:
                        return True
    return False


def _missing_entity(a: Features, b: Features) -> bool:
    if not a.entities:
        return False
    present = b.joined
    return any(entity not in present for entity in a.entities)


def _changed_object(a: Features, b: Features) -> bool:
    only_a = _unaccounted(a, b)
    only_b = _unaccounted(b, a)
    if not only_a and not only_b:
        return _role_swap(a, b)
    if only_a and only_b:
        ratio = SequenceMatcher(None, a.stems, b.stems, autojunk=False).ratio()
        return ratio >= FRAME
    # One side only adds words: a qualifier ("at checkout") is fine, "… and my subscription" is not.
    wider, narrower = (a, b) if only_a else (b, a)
    added = sum(1 for t in wider.raw if t in CONJUNCTIONS) - sum(
        1 for t in narrower.raw if t in CONJUNCTIONS
    )
    return added > 0


def _unaccounted(a: Features, b: Features) -> list[str]:
    """Content words of ``a`` with no counterpart (same stem, synonym, joined form, typo) in ``b``."""
    stems_b = set(b.stems)
    raw_b = set(b.raw)
    out = []
    raw = a.raw
    for i, word in enumerate(raw):
        if a.is_stop(i) or word in _COMPARED_ELSEWHERE or word.isdigit():
            continue
        s = a.stems[i]
        if s in stems_b or word in b.joined or synonym_groups(s) & b.synonyms:
            continue
        if (i + 1 < len(raw) and word + raw[i + 1] in raw_b) or (i and raw[i - 1] + word in raw_b):
            continue
        if len(word) >= 5 and any(
            len(other) >= 5 and abs(len(other) - len(word)) <= 1 and _one_edit(word, other)
            for other in raw_b
        ):
            continue
        out.append(s)
    return out


def _role_swap(a: Features, b: Features) -> bool:
    """The same words in swapped roles: "convert PDF to Word" / "convert Word to PDF"."""
    objects_a = _objects(a)
    objects_b = _objects(b)
    stems_a, stems_b = set(a.stems), set(b.stems)
    for prep, obj in objects_a.items():
        other = objects_b.get(prep)
        if other is not None and other != obj and other in stems_a and obj in stems_b:
            return True
    return False


def _objects(f: Features) -> dict[str, str]:
    found: dict[str, str] = {}
    for i, word in enumerate(f.raw):
        if word in DIRECTIONAL and word not in found:
            for j in range(i + 1, len(f.raw)):
                if not f.is_stop(j):
                    found[word] = f.stems[j]
                    break
    return found


def _one_edit(x: str, y: str) -> bool:
    """Levenshtein distance <= 1, or one transposition of neighbours (a typo)."""
    if x == y:
        return True
    if len(x) == len(y):
        diff = [i for i in range(len(x)) if x[i] != y[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and x[diff[0]] == y[diff[1]] and x[diff[1]] == y[diff[0]]
    if len(x) > len(y):
        x, y = y, x
    i = 0
    while i < len(x) and x[i] == y[i]:
        i += 1
    return x[i:] == y[i + 1 :]
