"""Question text, read the way the cache needs it: a normalized key and the guard's features.

Both are computed once per question (on the request path, in microseconds) and the features are
kept with each semantic entry, so comparing a candidate costs set operations, not parsing.
"""

from __future__ import annotations

import operator
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterator
from itertools import repeat

from .lexicon import (
    ANTONYMS,
    CONTRACTIONS,
    DATE_MODIFIERS,
    DATE_UNITS,
    DATE_WORDS,
    NEGATING_PREFIXES,
    NEGATIONS,
    NUMBER_WORDS,
    ROMAN,
    STOPWORDS,
    SYNONYMS,
)

__all__ = ["Features", "features", "normalize_question", "position_masks", "stem"]

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})
_CONTRACTION = re.compile(
    r"\b(" + "|".join(re.escape(k) for k in sorted(CONTRACTIONS, key=len, reverse=True) if k != "n't")
    + r")\b|n't\b"
)
_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+")
_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_PUNCTUATION = "".join(
    ch for ch in map(chr, range(0x20, 0x3040)) if unicodedata.category(ch).startswith("P")
)
_THOUSANDS_COMMA = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_THOUSANDS_DOT = re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?")
_SENTENCE_END = re.compile(r"[.?!:;]")
_LONE_I = re.compile(r"\bI\b")
_ABBREVIATIONS = frozenset("dr mr mrs ms st prof mt jr sr vs etc inc ltd no".split())
_PRONOUN_ONE_AFTER = frozenset(
    "which this that the each any every another no a one some other".split()
)


def stem(word: str) -> str:
    """A light suffix stripper: both questions go through it, so only consistency matters."""
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 5 and word.endswith("ing"):
        word = _undouble(word[:-3])
    elif len(word) > 4 and word.endswith("ed"):
        word = _undouble(word[:-2])
    elif len(word) > 4 and (word.endswith(("ses", "xes", "zes", "ches", "shes"))):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def _undouble(base: str) -> str:
    if len(base) > 2 and base[-1] == base[-2] and base[-1] not in "lsz":
        return base[:-1]
    return base


SYNONYM_GROUPS: dict[str, frozenset[int]] = {}
for _index, _line in enumerate(SYNONYMS):
    for _word in _line.split():
        _key = stem(_word)
        SYNONYM_GROUPS[_key] = SYNONYM_GROUPS.get(_key, frozenset()) | {_index}
STOP_STEMS = frozenset(stem(w) for w in STOPWORDS) | STOPWORDS
COMPARED_ELSEWHERE = frozenset(NUMBER_WORDS) | frozenset(DATE_WORDS) | NEGATIONS
"""Words the guard compares as numbers, dates or negations, never as content words."""
_NOT_CONTENT = STOP_STEMS | COMPARED_ELSEWHERE
_NO_GROUPS: frozenset[int] = frozenset()
_NONE: frozenset[str] = frozenset()
"""The dates and names of the many questions that have none: one shared object (an empty
frozenset is ~200 bytes), so comparing them reads memory already in the CPU's cache."""

OPPOSITES: dict[str, frozenset[str]] = {}
"""Stem → stems of its antonyms, both ways ("enabl" ↔ "disabl")."""
for _a, _b in ANTONYMS:
    _x, _y = stem(_a), stem(_b)
    OPPOSITES[_x] = OPPOSITES.get(_x, frozenset()) | {_y}
    OPPOSITES[_y] = OPPOSITES.get(_y, frozenset()) | {_x}
_POLAR_STEMS = frozenset(OPPOSITES)
_PREFIXES_BY_INITIAL: dict[str, tuple[str, ...]] = {}
for _prefix in NEGATING_PREFIXES:
    _PREFIXES_BY_INITIAL[_prefix[0]] = (*_PREFIXES_BY_INITIAL.get(_prefix[0], ()), _prefix)
_NEGATABLE = re.compile("(?<![^ ])(?:" + "|".join(NEGATING_PREFIXES) + ")[^ ]{3,}")
"""A word of a space-separated list that a negating prefix could negate (see :func:`_negated`)."""
Polar = tuple[tuple[tuple[str, frozenset[str]], ...], tuple[tuple[str, str], ...]]
_NO_POLAR: Polar = ((), ())
"""Shared by the many questions with nothing polar: one object, warm in the CPU's cache."""

_STEMMED: dict[str, str] = {}
_STEMMED_MAX = 50_000
"""Token → its stem, interned. Stemming costs ~4 µs of Python a question, and questions reuse a
small vocabulary; kept bounded (emptied when full), as the vocabulary of users is not."""


def _stems(tokens: tuple[str, ...]) -> tuple[str, ...]:
    stemmed = _STEMMED
    out = []
    for token in tokens:
        s = stemmed.get(token)
        if s is None:
            if len(stemmed) >= _STEMMED_MAX:
                stemmed.clear()
            s = stemmed[token] = sys.intern(stem(token))
        out.append(s)
    return tuple(out)


def _negated(words: list[str]) -> list[tuple[str, str]]:
    """(word, what is left after a negating prefix) of each word a prefix could negate."""
    out = []
    for word in words:
        for prefix in _PREFIXES_BY_INITIAL[word[0]]:
            if word.startswith(prefix) and len(word) - len(prefix) >= 3:
                out.append((word, word[len(prefix) :]))
    return out


def normalize_question(text: str) -> str:
    """The key of the normalized tier: case, width, spacing and edge punctuation folded away.

    Punctuation inside a token stays ("3.5" vs "35", "don't"), symbols stay ("$5" vs "€5"):
    only what never changes meaning is dropped, so two questions with one key are the same
    question and need no guard.
    """
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).casefold()
    return " ".join(token for raw in text.split() if (token := raw.strip(_PUNCTUATION)))


class Features:
    """What the trap guard compares between two questions.

    Numbers, dates and negations are read at once: the guard compares them first, and most
    refusals stop there ("parcel 17" / "parcel 18"). Stems, entities and the rest are read on
    first use, so a refused candidate never pays for them (on the request path they were more
    than half of the ~18 µs).
    """

    __slots__ = (
        "_entities",
        "_joined",
        "_polar",
        "_raw_set",
        "_stem_set",
        "_stems",
        "_synonyms",
        "_words",
        "dates",
        "negations",
        "numbers",
        "raw",
        "text",
    )

    def __init__(
        self,
        *,
        text: str,
        raw: tuple[str, ...],
        numbers: Counter[str],
        dates: frozenset[str],
        negations: int,
    ) -> None:
        self.text = text
        self.raw = raw
        self.numbers = numbers
        self.dates = dates
        self.negations = negations
        self._entities: frozenset[str] | None = None
        self._stem_set: frozenset[str] | None = None
        self._raw_set: frozenset[str] | None = None
        self._stems: tuple[str, ...] | None = None
        self._joined: frozenset[str] | None = None
        self._synonyms: frozenset[int] | None = None
        self._polar: Polar | None = None
        self._words: Words | None = None

    @property
    def signature(self) -> str:
        """What the guard requires to be equal in two questions, as one key: their numbers,
        dates and negation count ("" for a question with none). Questions of different
        signatures never serve each other, so the cache keeps their vectors apart."""
        if not self.numbers and not self.dates and not self.negations:
            return ""
        numbers = ",".join(f"{n}*{count}" for n, count in sorted(self.numbers.items()))
        return f"{numbers}|{','.join(sorted(self.dates))}|{self.negations}"

    @property
    def stems(self) -> tuple[str, ...]:
        if self._stems is None:
            self._stems = _stems(self.raw)
        return self._stems

    @property
    def stem_set(self) -> frozenset[str]:
        if self._stem_set is None:
            self._stem_set = frozenset(self.stems)
        return self._stem_set

    @property
    def raw_set(self) -> frozenset[str]:
        if self._raw_set is None:
            self._raw_set = frozenset(self.raw)
        return self._raw_set

    @property
    def entities(self) -> frozenset[str]:
        """Named entities (see :func:`_names`). A question whose only capitals are its first
        letter and the word "I" has none, and most are written so: one C-level test instead of
        reading it word by word (~8 µs, half of all the guard reads of a question)."""
        if self._entities is None:
            if _LONE_I.sub("", self.text)[1:].islower():
                self._entities = _NONE  # no letter that _names could read as capitalized
            else:
                self._entities = _names(self.text)[0] or _NONE
        return self._entities

    @property
    def joined(self) -> frozenset[str]:
        """Every token and every pair of neighbours written together ("log in" → "login")."""
        if self._joined is None:
            raw = self.raw
            self._joined = frozenset(map(operator.add, raw, raw[1:])).union(raw)
        return self._joined

    @property
    def synonyms(self) -> frozenset[int]:
        if self._synonyms is None:
            found = [groups for groups in map(SYNONYM_GROUPS.get, self.stems) if groups]
            self._synonyms = frozenset().union(*found) if found else _NO_GROUPS
        return self._synonyms

    @property
    def polar(self) -> Polar:
        """(stem, its antonyms' stems) for each stem that has antonyms, and (stem, what is left
        after a negating prefix) for each stem such a prefix could negate ("invalid" → "valid").
        Few questions have either, so the guard's polarity check usually reads two empty tuples
        instead of looping over every stem the other question lacks (~10 % of a comparison)."""
        if self._polar is None:
            stems = self.stem_set
            polar = stems & _POLAR_STEMS
            prefixed = _NEGATABLE.findall(" ".join(stems))
            if polar or prefixed:
                opposed = tuple((s, OPPOSITES[s]) for s in polar)
                self._polar = opposed, tuple(_negated(prefixed))
            else:
                self._polar = _NO_POLAR
        return self._polar

    @property
    def words(self) -> Words:
        if self._words is None:
            self._words = Words(self)
        return self._words

    def is_stop(self, index: int) -> bool:
        return self.stems[index] in STOP_STEMS or self.raw[index] in STOP_STEMS


class Words:
    """The wording of one question, as the guard's changed-object check reads it.

    Built on the first comparison that gets that far, all at once: each such comparison reads
    nearly all of it, and plain attributes cost a fraction of lazy properties (a dozen property
    reads were ~20 % of a comparison). Shared by every comparison: never mutate.
    """

    __slots__ = (
        "content",
        "joined",
        "masks",
        "raw_set",
        "stem_set",
        "stems",
        "synonyms",
        "typo_ends",
    )

    def __init__(self, f: Features) -> None:
        self.stems = f.stems
        self.stem_set = f.stem_set
        self.raw_set = f.raw_set
        self.joined = f.joined
        self.synonyms = f.synonyms
        self.content = _content(f.raw, f.stems)
        self.typo_ends = _typo_ends(self.raw_set)
        self.masks = position_masks(self.stems)


Content = dict[str, tuple[tuple[str, str, str], ...]]


def _content(raw: tuple[str, ...], stems: tuple[str, ...]) -> Content:
    """Stem → (word, the next word, the previous word) of each content word of that stem: what
    the guard looks up in the other question, by stem, as it first asks whether the other
    question has the stem at all (and the neighbours as they are, shared and warm in the CPU's
    cache, rather than the joined forms, one more string each)."""
    last = len(raw) - 1
    words: dict[str, list[tuple[str, str, str]]] = {}
    for i, word in enumerate(raw):
        s = stems[i]
        if s in STOP_STEMS or word in _NOT_CONTENT or word.isdigit():
            continue
        following = raw[i + 1] if i < last else ""
        words.setdefault(s, []).append((word, following, raw[i - 1] if i else ""))
    return {s: tuple(found) for s, found in words.items()}


def _typo_ends(words: frozenset[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """The first two and the last two letters of the words of five letters or more, and those
    words. One typo in a word of five letters or more leaves its first two letters or its last
    two in place, so a word with neither among these ends is no typo of any of them: one set
    lookup instead of edit comparisons, which fail for nearly every word asked about."""
    long = tuple([word for word in words if len(word) >= 5])
    return frozenset([word[:2] for word in long] + [word[-2:] for word in long]), long


Masks = tuple[int, dict[str, bytes], Iterator[bytes], int]
MASKED_ROWS = 64
_SHARED_WIDTHS = range(1, 9)
_ONE_BIT_ROWS = {
    width: tuple((1 << j).to_bytes(width, "little") for j in range(8 * width))
    for width in _SHARED_WIDTHS
}
_EMPTY_ROWS = {width: repeat(bytes(width)) for width in _SHARED_WIDTHS}
_FIRSTS = {
    width: int.from_bytes((b"\1" + bytes(width - 1)) * MASKED_ROWS, "little")
    for width in _SHARED_WIDTHS
}


def position_masks(tokens: tuple[str, ...]) -> Masks:
    """The rows of the bit grid on which the guard aligns another question with this one.

    (bits per row, token → bit mask of its positions as little-endian bytes, an endless supply
    of empty rows for the other question's other tokens, bit 0 of each of the first
    ``MASKED_ROWS`` rows). A row has at least one clear bit after the last position, so
    diagonal runs never wrap from one row into the next. Questions of up to 63 tokens share
    their one-position rows and the rest: fewer objects to fetch from memory per comparison.
    """
    width = len(tokens) // 8 + 1
    shared = _ONE_BIT_ROWS.get(width)
    rows = dict(zip(tokens, shared or (), strict=False))
    if len(rows) < len(tokens):  # repeated tokens, or too long a question to share its rows
        masks: dict[str, int] = {}
        for j, token in enumerate(tokens):
            masks[token] = masks.get(token, 0) | 1 << j
        for token, mask in masks.items():
            if mask & (mask - 1) or not shared:
                rows[token] = mask.to_bytes(width, "little")
    if shared is None:
        firsts = int.from_bytes((b"\1" + bytes(width - 1)) * MASKED_ROWS, "little")
        return 8 * width, rows, repeat(bytes(width)), firsts
    return 8 * width, rows, _EMPTY_ROWS[width], _FIRSTS[width]


def synonym_groups(stemmed: str) -> frozenset[int]:
    return SYNONYM_GROUPS.get(stemmed, frozenset())


def features(text: str) -> Features:
    """Tokens, numbers, dates and negation count of one question (the rest on first use)."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    lowered = _CONTRACTION.sub(_expand, text.lower())
    tokens = [sys.intern(t) for t in _TOKEN.findall(lowered)]  # shared: compared by identity
    numbers: Counter[str] = Counter()
    dates: set[str] = set()
    negations = 0
    capitalized: frozenset[str] | None = None  # read only for the words that need it
    for i, token in enumerate(tokens):
        if token.isalpha() and token not in _READ:
            continue  # most words: none of the tests below applies (~40 % of this loop's time)
        prev = tokens[i - 1] if i else ""
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in NEGATIONS:
            negations += 1
        if not token.isalpha() and any(ch.isdigit() for ch in token):
            for match in _DIGITS.findall(token):
                numbers[_number(match)] += 1
        elif token in NUMBER_WORDS:
            if token != "one" or not _pronoun_one(prev, nxt):
                numbers[NUMBER_WORDS[token]] += 1
        elif token in ROMAN:
            if capitalized is None:
                capitalized = _names(text)[1]
            if token in capitalized:
                numbers[ROMAN[token]] += 1
        if token in _CASE_DATES and capitalized is None:
            capitalized = _names(text)[1]
        date = _date(token, prev, nxt, capitalized or frozenset())
        if date is not None:
            dates.add(date)
    return Features(
        text=text, raw=tuple(tokens), numbers=numbers, dates=frozenset(dates) if dates else _NONE,
        negations=negations,
    )  # fmt: skip


def _pronoun_one(prev: str, nxt: str) -> bool:
    """"which one", "the second one", "one of them": a stand-in for a noun, not a count."""
    return prev in _PRONOUN_ONE_AFTER or prev in NUMBER_WORDS or nxt in ("", "of", "another")


def _expand(match: re.Match[str]) -> str:
    word = match.group(0)
    if word == "n't":
        return " not"
    return CONTRACTIONS[word]


def _number(text: str) -> str:
    if _THOUSANDS_COMMA.fullmatch(text):
        text = text.replace(",", "")
    elif _THOUSANDS_DOT.fullmatch(text):
        text = text.replace(".", "").replace(",", ".")
    else:
        text = text.replace(",", ".")
    if "." in text:
        text = text.rstrip("0").rstrip(".") or "0"
    return text.lstrip("0") or "0"


_CASE_DATES = frozenset({"may", "march"})
"""Months that are also common words: a date only when capitalized mid-sentence or by a number."""
_READ = frozenset({*NEGATIONS, *NUMBER_WORDS, *ROMAN, *_CASE_DATES, *DATE_UNITS, *DATE_WORDS})
"""The alphabetic tokens :func:`features` reads: negations, number words, Roman numerals and
date words ("year" among them, for "new year"); the rest matter only as content words."""


def _date(token: str, prev: str, nxt: str, capitalized: frozenset[str]) -> str | None:
    if token in DATE_UNITS and prev in DATE_MODIFIERS:
        return f"{prev}:{DATE_UNITS[token]}"
    if token == "year" and prev == "new":
        return "newyear"
    if token in _CASE_DATES and token not in capitalized:
        if not (nxt[:1].isdigit() or prev[:1].isdigit()):
            return None
    date = DATE_WORDS.get(token)
    if date is None:
        return None
    if prev in DATE_MODIFIERS:
        return f"{prev}:{date}"
    return date


def _names(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """Named entities by their spelling — mixed case (iPhone), acronyms (AWS), capitalized
    mid-sentence (Maria) — and every word capitalized mid-sentence (for "May" vs "may")."""
    found: set[str] = set()
    capitalized: set[str] = set()
    start = True
    previous = ""
    position = 0
    for match in _TOKEN.finditer(text):
        gap = text[position : match.start()]
        position = match.end()
        if _SENTENCE_END.search(gap) and previous.lower() not in _ABBREVIATIONS:
            start = True
        word = match.group(0)
        previous = word
        lower = word.lower()
        rest = word[1:]
        inner_upper = rest != rest.lower()
        if inner_upper or (word[:1].isupper() and not start):
            capitalized.add(lower)
            if not (lower in STOPWORDS or lower in DATE_WORDS or lower in NUMBER_WORDS or word == "I" or word.isdigit()):
                found.add(lower)
        start = False
    return frozenset(found), frozenset(capitalized)
