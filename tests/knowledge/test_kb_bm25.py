"""BM25 keyword scoring: rare exact tokens win, removals are clean, CJK works."""

from __future__ import annotations

from tidegate.knowledge.bm25 import BM25Index, tokenize


def test_tokenize_drops_stopwords_and_splits_cjk() -> None:
    assert tokenize("Where is my order HP12345678?") == ["order", "hp12345678"]
    assert tokenize("退款多久") == ["退款", "款多", "多久"]


def test_rare_exact_token_ranks_first() -> None:
    index = BM25Index()
    index.add([(1, "order status and tracking"), (2, "error code E42 on the coffee machine"),
               (3, "order order order tracking")])  # fmt: skip
    assert index.search("what does E42 mean", 3)[0][0] == 2
    assert [k for k, _ in index.search("order tracking", 3)][:2] == [3, 1]


def test_remove_and_replace() -> None:
    index = BM25Index()
    index.add([(1, "alpha beta"), (2, "beta gamma")])
    index.remove([1])
    assert [k for k, _ in index.search("alpha beta", 5)] == [2]
    index.add([(2, "alpha")])  # re-adding a key replaces its text
    assert [k for k, _ in index.search("gamma", 5)] == []
    assert len(index) == 1 and index.search("alpha", 5)[0][0] == 2
    index.remove([2, 99])
    assert index.search("alpha", 5) == [] and len(index) == 0
