"""Okapi BM25 over chunks, for the keyword half of hybrid search.

Embeddings miss exact tokens users type (order numbers, product codes, error strings); BM25 finds
them. Words are lowercased ``\\w+`` runs minus a small English stopword list; CJK text has no
spaces, so it is indexed as overlapping character bigrams. The index lives in memory and is
rebuilt from the documents store on load (it is cheap next to embedding). Calls are blocking and
guarded by a lock, since searches run on pool threads while ingest updates it.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter

__all__ = ["BM25Index", "tokenize"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+")
_STOP = frozenset(
    "a an and are as at be but by can could do does did for from has have how i if in into is it"
    " its me my of on or our so that the their them then there these they this to was we were what"
    " when where which who why will with would you your".split()
)


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    for word in _WORD.findall(text.lower()):
        if _CJK.search(word):
            for run in _CJK.findall(word):
                tokens.extend(run[i : i + 2] for i in range(max(1, len(run) - 1)))
            rest = _CJK.sub(" ", word).split()
            tokens.extend(w for w in rest if w not in _STOP)
        elif word not in _STOP:
            tokens.append(word)
    return tokens


class BM25Index:
    def __init__(self, *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._postings: dict[str, dict[int, int]] = {}
        self._lengths: dict[int, int] = {}
        self._terms: dict[int, tuple[str, ...]] = {}
        self._total = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._lengths)

    def add(self, items: list[tuple[int, str]]) -> None:
        counted = [(key, Counter(tokenize(text))) for key, text in items]
        with self._lock:
            for key, counts in counted:
                if key in self._lengths:
                    self._remove(key)
                length = sum(counts.values())
                self._lengths[key] = length
                self._terms[key] = tuple(counts)
                self._total += length
                for token, tf in counts.items():
                    self._postings.setdefault(token, {})[key] = tf

    def remove(self, keys: list[int]) -> None:
        with self._lock:
            for key in keys:
                self._remove(key)

    def _remove(self, key: int) -> None:
        length = self._lengths.pop(key, None)
        if length is None:
            return
        self._total -= length
        for token in self._terms.pop(key, ()):
            postings = self._postings[token]
            del postings[key]
            if not postings:
                del self._postings[token]

    def search(self, query: str, count: int) -> list[tuple[int, float]]:
        """Top ``count`` ``(key, raw BM25 score)``, best first."""
        terms = set(tokenize(query))
        with self._lock:
            n = len(self._lengths)
            if not n or not terms:
                return []
            average = self._total / n
            scores: dict[int, float] = {}
            for term in terms:
                postings = self._postings.get(term)
                if not postings:
                    continue
                idf = math.log(1.0 + (n - len(postings) + 0.5) / (len(postings) + 0.5))
                for key, tf in postings.items():
                    norm = self.k1 * (1.0 - self.b + self.b * self._lengths[key] / average)
                    scores[key] = scores.get(key, 0.0) + idf * tf * (self.k1 + 1.0) / (tf + norm)
        ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
        return ranked[:count]
