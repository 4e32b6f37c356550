"""The trap guard and the text it reads: each trap kind is refused, paraphrases pass."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidegate.cache import features, normalize_question, refusal


def why(cached: str, new: str) -> str | None:
    return refusal(features(new), features(cached))


@pytest.mark.parametrize(
    ("cached", "new", "reason"),
    [
        ("Can I return an item after 30 days?", "Can I return an item after 60 days?", "number"),
        ("Can I bring two bags?", "Can I bring three bags?", "number"),
        ("Is the iPhone 14 compatible?", "Is the iPhone 15 compatible?", "number"),
        ("Is there a fee over $1,000?", "Is there a fee over $10,000?", "number"),
        ("Summarize the third chapter.", "Summarize the fourth chapter.", "number"),
        ("When did World War I end?", "When did World War II end?", "number"),
        ("Is the store open on Sunday?", "Is the store open on Monday?", "date"),
        ("What events are on this weekend?", "What events are on next weekend?", "date"),
        ("Will it arrive before Christmas?", "Will it arrive after Christmas?", "date"),
        ("What are the bank holidays in May?", "What are the bank holidays in August?", "date"),
        ("My package has arrived.", "My package has not arrived.", "negation"),
        ("I want marketing emails.", "I don't want marketing emails.", "negation"),
        ("The tracking number is valid.", "The tracking number is invalid.", "negation"),
        ("How do I enable dark mode?", "How do I disable dark mode?", "negation"),
        ("How do I turn on notifications?", "How do I turn off notifications?", "negation"),
        ("Is smoking allowed in the rooms?", "Are the rooms non-smoking?", "negation"),
        ("How do I reset my iPhone?", "How do I reset my Samsung Galaxy?", "entity"),
        ("Can I pay with PayPal?", "Can I pay with Apple Pay?", "entity"),
        ("Is Dr. Smith accepting new patients?", "Is Dr. Patel accepting new patients?", "entity"),
        ("How do I cancel my order?", "How do I cancel my subscription?", "object"),
        ("How many calories are in an apple?", "How many calories are in a banana?", "object"),
        ("How do I convert PDF to Word?", "How do I convert Word to PDF?", "object"),
        ("How do I convert a list to a string?", "How do I convert a string to a list?", "object"),
        ("How do I cancel my order?", "How do I cancel my order and my subscription?", "object"),
        ("How do I sign in?", "How do I sign up?", "object"),
    ],
)
def test_traps_are_refused_with_their_reason(cached: str, new: str, reason: str) -> None:
    assert why(cached, new) == reason
    assert why(new, cached) is not None  # symmetric enough: the other direction is refused too


@pytest.mark.parametrize(
    ("cached", "new"),
    [
        ("How do I get a refund?", "how do i get a refund"),
        ("How do I delete my account?", "How do I delete my acount?"),  # typo
        ("How do I change my username?", "how do i change my user name"),  # split word
        ("How do I verify my email address?", "How do I verify my e-mail address?"),
        ("How do I change my password?", "How do I update my password?"),  # synonyms
        ("How do I restart my router?", "How can I reboot my router?"),
        ("How do I apply a discount code?", "How do I apply a discount code at checkout?"),  # qualifier
        ("Why can't I log in?", "I'm unable to sign in, what's wrong?"),  # one negation each
        ("How do I enable two-factor authentication?", "How do I enable two factor authentication"),
        ("What's the difference between TCP and UDP?", "What's the difference between UDP and TCP?"),
        ("Tell me more about the second one.", "Tell me more about the second idea."),
        ("How do I get a refund?", "What's the process for getting my money back?"),  # rephrased
    ],
)
def test_paraphrases_and_near_repeats_pass(cached: str, new: str) -> None:
    assert why(cached, new) is None


def test_features_read_numbers_dates_negations_and_names() -> None:
    f = features("Didn't Maria order 2 pizzas and a dozen wings next Friday for $1,200.50 via PayPal?")
    assert f.numbers == {"2": 1, "12": 1, "1200.5": 1}
    assert f.dates == frozenset({"next:friday"})
    assert f.negations == 1
    assert f.entities == frozenset({"maria", "paypal"})
    assert features("Which one is cheaper?").numbers == {}  # "one" as a pronoun
    assert features("May I ask about March?").dates == frozenset({"march"})  # the modal is not a month


def test_normalized_text_folds_only_what_never_changes_meaning() -> None:
    assert normalize_question("  How do I get a REFUND?? ") == normalize_question("how do i get a refund")
    assert normalize_question("Is it $5?") != normalize_question("Is it €5?")
    assert normalize_question("Version 3.5") != normalize_question("Version 35")
    assert normalize_question("don't") != normalize_question("dont")


questions = st.text(
    alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyz ABCDEF0123456789?.,'-$")), max_size=60
)


@given(text=questions)
def test_a_question_never_refuses_itself(text: str) -> None:
    assert refusal(features(text), features(text)) is None


@given(text=questions, number=st.integers(0, 10_000), other=st.integers(0, 10_000))
def test_a_changed_number_is_always_refused(text: str, number: int, other: int) -> None:
    a = features(f"{text} {number}")
    b = features(f"{text} {other}")
    assert (refusal(a, b) is None) == (number == other)


# -- the guard's fast paths agree with their definitions ---------------------------------------------

_TOKENS = st.lists(st.sampled_from("a b c d e the my order plan refund".split()), max_size=12).map(tuple)


@given(_TOKENS, _TOKENS)
def test_frame_similarity_is_difflibs_ratio(a: tuple[str, ...], b: tuple[str, ...]) -> None:
    from difflib import SequenceMatcher

    from tidegate.cache.guard import _similarity

    assert _similarity(a, b) == SequenceMatcher(None, a, b, autojunk=False).ratio()


def _within_one_edit(x: str, y: str) -> bool:
    """The definition: equal, one substitution, insertion or deletion, or two neighbours swapped."""
    alphabet = set(x + y)
    edits = {x[:i] + x[i + 1 :] for i in range(len(x))}
    edits |= {x[:i] + c + x[i + 1 :] for i in range(len(x)) for c in alphabet}
    edits |= {x[:i] + c + x[i:] for i in range(len(x) + 1) for c in alphabet}
    edits |= {x[:i] + x[i + 1] + x[i] + x[i + 2 :] for i in range(len(x) - 1)}
    return y == x or y in edits


@given(st.text("abc", max_size=7), st.text("abc", max_size=7))
def test_one_edit_matches_its_definition(x: str, y: str) -> None:
    from tidegate.cache.guard import _one_edit

    if abs(len(x) - len(y)) <= 1:  # the only pairs the guard asks about
        assert _one_edit(x, y) == _within_one_edit(x, y)


_WORDS = st.lists(st.sampled_from("enable disable open close closed available unavailable on off in out the my".split()), max_size=6)


@given(_WORDS, _WORDS)
def test_polarity_matches_the_antonym_list(a: list[str], b: list[str]) -> None:
    from tidegate.cache.guard import NEGATING_PREFIXES, _polarity
    from tidegate.cache.lexicon import ANTONYMS
    from tidegate.cache.text import stem

    fa, fb = features(" ".join(a)), features(" ".join(b))
    sa, sb = set(fa.stems), set(fb.stems)
    expected = any(
        (stem(x) in sa - sb and stem(y) in sb - sa) or (stem(y) in sa - sb and stem(x) in sb - sa)
        for x, y in ANTONYMS
    ) or any(
        word.startswith(prefix) and len(word) - len(prefix) >= 3 and word[len(prefix) :] in other
        and word[len(prefix) :] not in one
        for one, other in ((sa - sb, sb), (sb - sa, sa)) for word in one for prefix in NEGATING_PREFIXES
    )  # fmt: skip
    assert _polarity(fa, fb) == expected


_PHRASES = st.lists(
    st.sampled_from("where is my order 12 1,200 two second not never today next week Monday May may plan the".split()),
    max_size=8,
).map(" ".join)


@given(_PHRASES, _PHRASES)
def test_equal_signatures_are_exactly_what_the_guards_first_checks_let_through(a: str, b: str) -> None:
    # The cache keeps vectors apart by signature; that must never hide a question the guard
    # would have let through, nor mix ones it always refuses.
    fa, fb = features(a), features(b)
    passes = fa.numbers == fb.numbers and fa.dates == fb.dates and fa.negations == fb.negations
    assert (fa.signature == fb.signature) == passes
    if fa.signature != fb.signature:
        assert refusal(fa, fb) in ("number", "date", "negation")


_FRAME_TOKENS = st.lists(st.sampled_from("a b c d the my order".split()), max_size=14).map(tuple)
_LONG_FRAME_TOKENS = st.lists(st.sampled_from("a b c d e f g".split()), max_size=90).map(tuple)


@given(_FRAME_TOKENS, _FRAME_TOKENS)
def test_frame_predicate_is_the_similarity_threshold(
    a: tuple[str, ...], b: tuple[str, ...]
) -> None:
    from tidegate.cache.guard import FRAME, _shares_frame, _similarity
    from tidegate.cache.text import position_masks

    assert _shares_frame(a, b) == (_similarity(a, b) >= FRAME)
    assert _shares_frame(a, b, position_masks(b)) == (_similarity(a, b) >= FRAME)


@given(_LONG_FRAME_TOKENS, _LONG_FRAME_TOKENS)
def test_frame_predicate_holds_past_the_shared_grid_rows(
    a: tuple[str, ...], b: tuple[str, ...]
) -> None:
    from tidegate.cache.guard import FRAME, _shares_frame, _similarity

    assert _shares_frame(a, b) == (_similarity(a, b) >= FRAME)
    assert _shares_frame(a + a, b + a) == (_similarity(a + a, b + a) >= FRAME)


_LONG_WORDS = st.text("abcde", min_size=5, max_size=8)


@given(_LONG_WORDS, st.frozensets(_LONG_WORDS | st.text("abcde", max_size=4), max_size=6))
def test_typo_prefilter_keeps_every_typo(word: str, others: frozenset[str]) -> None:
    from tidegate.cache.guard import _one_edit, _typo_in
    from tidegate.cache.text import _typo_ends

    near = [o for o in others if len(o) >= 5 and abs(len(o) - len(word)) <= 1]
    typos = [o for o in near if _one_edit(word, o)]
    for other in typos:  # one typo in five letters or more leaves an end in place
        assert word[:2] == other[:2] or word[-2:] == other[-2:]
    assert _typo_in(word, _typo_ends(others)) == bool(typos)


_PIECES = [*"aAbBiIxXmM .,?!;:'’-_19", *"ΣßİǅℂÉéﬁ", " I ", "I'm", "Dr. "]
_CASED = st.lists(st.sampled_from(_PIECES), max_size=16).map("".join)


@given(_CASED)
def test_entities_shortcut_reads_what_the_word_by_word_reading_does(text: str) -> None:
    from tidegate.cache.text import _names, stem

    f = features(text)
    assert f.entities == _names(f.text)[0]
    assert f.stems == tuple(stem(t) for t in f.raw)


@given(st.lists(st.text("unidsmolbac", min_size=1, max_size=9), max_size=8))
def test_polar_stems_are_those_with_antonyms_or_a_negating_prefix(words: list[str]) -> None:
    from tidegate.cache.lexicon import NEGATING_PREFIXES
    from tidegate.cache.text import OPPOSITES

    f = features(" ".join(words))
    opposed, negated = f.polar
    assert sorted(opposed) == sorted((s, OPPOSITES[s]) for s in f.stem_set if s in OPPOSITES)
    prefixed = [(s, p) for s in f.stem_set for p in NEGATING_PREFIXES if s.startswith(p)]
    assert sorted(negated) == sorted((s, s[len(p) :]) for s, p in prefixed if len(s) - len(p) >= 3)


class _ReadsAll(frozenset):
    def __contains__(self, item: object) -> bool:
        return True


def _read_words() -> list[str]:
    from tidegate.cache.lexicon import DATE_UNITS, DATE_WORDS, NEGATIONS, NUMBER_WORDS, ROMAN

    words = {*NEGATIONS, *NUMBER_WORDS, *ROMAN, *DATE_UNITS, *DATE_WORDS, "new", "may", "march"}
    return sorted(w for w in words if w.isalpha())


_READ_PIECES = st.sampled_from(_read_words()).flatmap(lambda w: st.sampled_from([w, w.title(), w.upper()]))
_MIXED = st.lists(
    _READ_PIECES
    | st.sampled_from("the order which of another next last this 12 3rd 1,200 x2 . ? I".split())
    | st.text("abcmrvixn", min_size=1, max_size=5),
    max_size=10,
).map(" ".join)


@given(_MIXED)
def test_skipping_plain_words_reads_what_the_full_loop_reads(text: str) -> None:
    # features() skips alphabetic words outside _READ; reading every token must agree.
    from unittest.mock import patch

    from tidegate.cache import text as module

    fast = features(text)
    with patch.object(module, "_READ", _ReadsAll()):
        full = features(text)
    assert (fast.numbers, fast.dates, fast.negations) == (full.numbers, full.dates, full.negations)
