"""Question text, read the way the cache needs it: a normalized key and the guard's features.

Both are computed once per question (on the request path, in microseconds) and the features are
kept with each semantic entry, so comparing a candidate costs set operations, not parsing.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import Counter

from .lexicon import (
    CONTRACTIONS,
    DATE_MODIFIERS,
    DATE_UNITS,
    DATE_WORDS,
    NEGATIONS,
    NUMBER_WORDS,
    ROMAN,
    STOPWORDS,
    SYNONYMS,
)

__all__ = ["Features", "features", "normalize_question", "stem"]

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


_SYNONYM_GROUPS: dict[str, frozenset[int]] = {}
for _index, _line in enumerate(SYNONYMS):
    for _word in _line.split():
        _key = stem(_word)
        _SYNONYM_GROUPS[_key] = _SYNONYM_GROUPS.get(_key, frozenset()) | {_index}
STOP_STEMS = frozenset(stem(w) for w in STOPWORDS) | STOPWORDS
COMPARED_ELSEWHERE = frozenset(NUMBER_WORDS) | frozenset(DATE_WORDS) | NEGATIONS
"""Words the guard compares as numbers, dates or negations, never as content words."""
_NO_GROUPS: frozenset[int] = frozenset()


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

    __slots__ = ("_content", "_entities", "_joined", "_long_words", "_raw_set", "_stem_set", "_stems", "_synonyms", "dates", "negations", "numbers", "raw", "text")

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
        self._content: tuple[tuple[str, str, frozenset[int], str, str], ...] | None = None
        self._stem_set: frozenset[str] | None = None
        self._raw_set: frozenset[str] | None = None
        self._long_words: dict[int, tuple[str, ...]] | None = None
        self._stems: tuple[str, ...] | None = None
        self._joined: frozenset[str] | None = None
        self._synonyms: frozenset[int] | None = None

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
            self._stems = tuple(stem(t) for t in self.raw)
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
    def long_words(self) -> dict[int, tuple[str, ...]]:
        """Tokens of five letters or more by length: the ones the guard checks for typos."""
        if self._long_words is None:
            by_length: dict[int, set[str]] = {}
            for token in self.raw_set:
                if len(token) >= 5:
                    by_length.setdefault(len(token), set()).add(token)
            self._long_words = {n: tuple(words) for n, words in by_length.items()}
        return self._long_words

    @property
    def entities(self) -> frozenset[str]:
        if self._entities is None:
            self._entities = _names(self.text)[0]
        return self._entities

    @property
    def joined(self) -> frozenset[str]:
        """Every token and every pair of neighbours written together ("log in" → "login")."""
        if self._joined is None:
            raw = self.raw
            self._joined = frozenset(a + b for a, b in itertools.pairwise(raw)) | frozenset(raw)
        return self._joined

    @property
    def synonyms(self) -> frozenset[int]:
        if self._synonyms is None:
            groups: set[int] = set()
            for s in self.stems:
                groups.update(_SYNONYM_GROUPS.get(s, ()))
            self._synonyms = frozenset(groups)
        return self._synonyms

    @property
    def content(self) -> tuple[tuple[str, str, frozenset[int], str, str], ...]:
        """(word, stem, synonym groups, word joined with the next, the previous joined with it)
        of each content word: what the guard looks up in the other question, read once."""
        if self._content is None:
            raw, stems = self.raw, self.stems
            last = len(raw) - 1
            out = []
            for i, word in enumerate(raw):
                s = stems[i]
                if s in STOP_STEMS or word in STOP_STEMS or word in COMPARED_ELSEWHERE or word.isdigit():
                    continue
                after = word + raw[i + 1] if i < last else ""
                before = raw[i - 1] + word if i else ""
                out.append((word, s, _SYNONYM_GROUPS.get(s, _NO_GROUPS), after, before))
            self._content = tuple(out)
        return self._content

    def is_stop(self, index: int) -> bool:
        return self.stems[index] in STOP_STEMS or self.raw[index] in STOP_STEMS


def synonym_groups(stemmed: str) -> frozenset[int]:
    return _SYNONYM_GROUPS.get(stemmed, frozenset())


def features(text: str) -> Features:
    """Tokens, numbers, dates and negation count of one question (the rest on first use)."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    lowered = _CONTRACTION.sub(_expand, text.lower())
    tokens = _TOKEN.findall(lowered)
    numbers: Counter[str] = Counter()
    dates: set[str] = set()
    negations = 0
    capitalized: frozenset[str] | None = None  # read only for the words that need it
    for i, token in enumerate(tokens):
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
        text=text, raw=tuple(tokens), numbers=numbers, dates=frozenset(dates),
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
