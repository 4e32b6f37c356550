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

from .lexicon import CONJUNCTIONS, DIRECTIONAL
from .lexicon import NEGATING_PREFIXES as NEGATING_PREFIXES  # read by the polarity test
from .text import MASKED_ROWS, SYNONYM_GROUPS, Features, Masks, Words, position_masks

__all__ = ["Reason", "refusal"]

Reason = Literal["number", "date", "negation", "entity", "object"]

FRAME = 0.55
"""Share of aligned tokens above which two questions count as one frame with a swapped slot."""


def refusal(new: Features, cached: Features) -> Reason | None:
    """Why ``cached``'s answer must not serve ``new``, or ``None`` when it may."""
    # Counter's == runs in Python (~10 % of a comparison); most questions have no numbers.
    if (new.numbers or cached.numbers) and new.numbers != cached.numbers:
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
    ("available" / "unavailable"), each missing from the other side.

    Reads only the few stems that have antonyms or a negating prefix (:attr:`Features.polar`,
    usually none), not every stem one side lacks: the same test, ~3× faster."""
    opposed, negated_a = a.polar
    negated_b = b.polar[1]
    if not (opposed or negated_a or negated_b):
        return False
    sa, sb = a.stem_set, b.stem_set
    for word, opposites in opposed:
        if word not in sb and any(o in sb and o not in sa for o in opposites):
            return True
    for word, base in negated_a:
        if base in sb and word not in sb:  # a base in sb is never in sa - sb
            return True
    for word, base in negated_b:
        if base in sa and word not in sa:
            return True
    return False


def _missing_entity(a: Features, b: Features) -> bool:
    if not a.entities:
        return False
    present = b.joined
    return any(entity not in present for entity in a.entities)


def _changed_object(a: Features, b: Features) -> bool:
    wa, wb = a.words, b.words
    only_a = _has_unaccounted(wa, wb)
    only_b = _has_unaccounted(wb, wa)
    if not only_a and not only_b:
        return _role_swap(a, b)
    if only_a and only_b:
        return _shares_frame(wa.stems, wb.stems, wb.masks)
    # One side only adds words: a qualifier ("at checkout") is fine, "… and my subscription" is not.
    wider, narrower = (a, b) if only_a else (b, a)
    added = sum(1 for t in wider.raw if t in CONJUNCTIONS) - sum(
        1 for t in narrower.raw if t in CONJUNCTIONS
    )
    return added > 0


def _has_unaccounted(a: Words, b: Words) -> bool:
    """Whether a content word of ``a`` has no counterpart (same stem, synonym, joined form,
    typo) in ``b``. Only whether, not which: a near duplicate lacks one or two of the other's
    stems, and the first word unaccounted for ends the search (it was ~40 % of a comparison
    to list them all, typo checks included)."""
    stems_b = b.stem_set
    for s, words in a.content.items():
        if s in stems_b:
            continue
        groups = SYNONYM_GROUPS.get(s)
        if groups is not None and not groups.isdisjoint(b.synonyms):
            continue
        for word, following, preceding in words:
            if word in b.joined:
                continue
            if following and word + following in b.raw_set:
                continue
            if preceding and preceding + word in b.raw_set:
                continue
            if len(word) >= 5 and _typo_in(word, b.typo_ends):
                continue
            return True
    return False


def _typo_in(word: str, ends: tuple[frozenset[str], tuple[str, ...]]) -> bool:
    """Whether one of the words of five letters or more of ``ends`` (see
    :func:`.text._typo_ends`) is ``word`` with one typo: only those sharing an end with it can."""
    keys, long = ends
    head, tail = word[:2], word[-2:]
    if head not in keys and tail not in keys:
        return False
    n = len(word)
    for other in long:
        shares_an_end = other[:2] == head or other[-2:] == tail
        if -1 <= len(other) - n <= 1 and shares_an_end and _one_edit(word, other):
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


def _needed(total: int) -> int:
    """The fewest aligned tokens for ``_similarity(...) >= FRAME`` on ``total`` tokens, by the
    same float expression, so the comparison on counts is the comparison on ratios."""
    matched = max(0, int(FRAME * total / 2) - 1)
    while 2.0 * matched / total < FRAME:
        matched += 1
    return matched


_NEEDED_MAX = 256
_NEEDED = (0, *(_needed(total) for total in range(1, _NEEDED_MAX)))


def _shares_frame(a: tuple[str, ...], b: tuple[str, ...], masks: Masks | None = None) -> bool:
    """``_similarity(a, b) >= FRAME``, answered as soon as it is known, on a bit grid.

    The same alignment (longest common run, then either side of it, earliest run on ties), on a
    grid of ``a`` × ``b`` matches (bit ``i * step + j`` is set when ``a[i] == b[j]``), where a
    run is found with a few integer operations instead of a loop over tokens. A cell stays in
    ``starts`` while the next ``size`` cells down its diagonal are set too, so the lowest one
    left is the earliest start (in ``a``, then ``b``) of a longest run: difflib's tie rule. Runs
    never wrap from one row into the next: the last column of a row is always clear.

    It stops once the runs found reach the share needed (or the shorter side of every span
    still open cannot), so near duplicates pass after one or two runs. ``masks`` is ``b``'s
    :attr:`Words.masks`. On near duplicates, about twice as fast as :func:`_similarity`
    (which was ~40 % of a comparison).
    """
    la, lb = len(a), len(b)
    if not la + lb:
        return True  # _similarity is 1.0
    need = _NEEDED[la + lb] if la + lb < _NEEDED_MAX else _needed(la + lb)
    room = la if la < lb else lb  # the most the spans still open can align
    if room < need:
        return False
    step, rows, empty, firsts = masks or position_masks(b)
    grid = int.from_bytes(b"".join(map(rows.get, a, empty)), "little")
    shift = step + 1  # one cell down a diagonal
    cells, matched = grid, 0
    alo, ahi, blo, bhi = 0, la, 0, lb
    spans: list[tuple[int, int, int, int]] = []
    while True:
        room -= ahi - alo if ahi - alo < bhi - blo else bhi - blo
        if cells:
            starts, size, enough = cells, 1, need - matched
            while size < enough and (longer := starts & cells >> size * shift):
                starts, size = longer, size + 1
            matched += size
            if matched >= need:
                return True
            i, j = divmod((starts & -starts).bit_length() - 1, step)
            if alo < i and blo < j:
                spans.append((alo, i, blo, j))
                room += i - alo if i - alo < j - blo else j - blo
            i, j = i + size, j + size
            if i < ahi and j < bhi:
                spans.append((i, ahi, j, bhi))
                room += ahi - i if ahi - i < bhi - j else bhi - j
        if matched + room < need or not spans:
            return False
        alo, ahi, blo, bhi = spans.pop()
        if la > MASKED_ROWS:
            firsts = int.from_bytes((b"\1" + bytes(step // 8 - 1)) * la, "little")
        cells = grid & ((1 << step * ahi) - (1 << step * alo)) & ((1 << bhi) - (1 << blo)) * firsts


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
