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

from typing import Literal

from .lexicon import (
    ANTONYMS,
    CONJUNCTIONS,
    DIRECTIONAL,
    NEGATING_PREFIXES,
)
from .text import Features, stem

__all__ = ["Reason", "refusal"]

Reason = Literal["number", "date", "negation", "entity", "object"]

FRAME = 0.55
"""Share of aligned tokens above which two questions count as one frame with a swapped slot."""

_OPPOSITES: dict[str, frozenset[str]] = {}
for _a, _b in ANTONYMS:
    _x, _y = stem(_a), stem(_b)
    _OPPOSITES[_x] = _OPPOSITES.get(_x, frozenset()) | {_y}
    _OPPOSITES[_y] = _OPPOSITES.get(_y, frozenset()) | {_x}
_PREFIXES_BY_INITIAL: dict[str, tuple[str, ...]] = {}
for _prefix in NEGATING_PREFIXES:
    _PREFIXES_BY_INITIAL[_prefix[0]] = (*_PREFIXES_BY_INITIAL.get(_prefix[0], ()), _prefix)


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
    """An antonym on each side ("enable" / "disable"), or a word and its negated form
    ("available" / "unavailable"), each missing from the other side."""
    sa, sb = a.stem_set, b.stem_set
    only_a, only_b = sa - sb, sb - sa
    for word in only_a:
        opposites = _OPPOSITES.get(word)
        if opposites is not None and not opposites.isdisjoint(only_b):
            return True
    for one, other in ((only_a, sb), (only_b, sa)):
        for word in one:
            for prefix in _PREFIXES_BY_INITIAL.get(word[:1], ()):
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
        return _similarity(a.stems, b.stems) >= FRAME
    # One side only adds words: a qualifier ("at checkout") is fine, "… and my subscription" is not.
    wider, narrower = (a, b) if only_a else (b, a)
    added = sum(1 for t in wider.raw if t in CONJUNCTIONS) - sum(
        1 for t in narrower.raw if t in CONJUNCTIONS
    )
    return added > 0


def _unaccounted(a: Features, b: Features) -> list[str]:
    """Content words of ``a`` with no counterpart (same stem, synonym, joined form, typo) in ``b``."""
    stems_b, raw_b, joined_b, synonyms_b = b.stem_set, b.raw_set, b.joined, b.synonyms
    out = []
    for word, s, groups, after, before in a.content:
        if s in stems_b or word in joined_b:
            continue
        if groups and not groups.isdisjoint(synonyms_b):
            continue
        if (after and after in raw_b) or (before and before in raw_b):
            continue
        if len(word) >= 5 and _typo_of_one(word, b.long_words):
            continue
        out.append(s)
    return out


def _typo_of_one(word: str, long_words: dict[int, tuple[str, ...]]) -> bool:
    """Whether one of ``long_words`` (five letters or more) is ``word`` with one typo."""
    n = len(word)
    for length in (n - 1, n, n + 1):
        for other in long_words.get(length, ()):
            if _one_edit(word, other):
                return True
    return False


def _similarity(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """``difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()``, without its setup.

    The same algorithm (longest common run first, then either side of it, earliest run on ties),
    so the same number: a test compares the two on arbitrary token lists. On questions a few
    words long this is ~4× faster, and the guard calls it for nearly every refused paraphrase.
    """
    total = len(a) + len(b)
    if not total:
        return 1.0
    where: dict[str, list[int]] = {}
    for j, token in enumerate(b):
        where.setdefault(token, []).append(j)
    matched = 0
    spans = [(0, len(a), 0, len(b))]
    while spans:
        alo, ahi, blo, bhi = spans.pop()
        besti, bestj, size = alo, blo, 0
        runs: dict[int, int] = {}
        for i in range(alo, ahi):
            longer: dict[int, int] = {}
            for j in where.get(a[i], ()):
                if j < blo:
                    continue
                if j >= bhi:
                    break
                k = longer[j] = runs.get(j - 1, 0) + 1
                if k > size:
                    besti, bestj, size = i - k + 1, j - k + 1, k
            runs = longer
        if size:
            matched += size
            if alo < besti and blo < bestj:
                spans.append((alo, besti, blo, bestj))
            if besti + size < ahi and bestj + size < bhi:
                spans.append((besti + size, ahi, bestj + size, bhi))
    return 2.0 * matched / total


def _role_swap(a: Features, b: Features) -> bool:
    """The same words in swapped roles: "convert PDF to Word" / "convert Word to PDF"."""
    objects_a = _objects(a)
    objects_b = _objects(b)
    stems_a, stems_b = a.stem_set, b.stem_set
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
        i = 0
        while x[i] == y[i]:
            i += 1
        if x[i + 1 :] == y[i + 1 :]:  # one substitution
            return True
        return x[i + 2 :] == y[i + 2 :] and i + 1 < len(x) and x[i] == y[i + 1] and x[i + 1] == y[i]
    if len(x) > len(y):
        x, y = y, x
    i = 0
    while i < len(x) and x[i] == y[i]:
        i += 1
    return x[i:] == y[i + 1 :]
