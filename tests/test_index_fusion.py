"""Fusion and page aggregation on hand-made rankings."""

from __future__ import annotations

import pytest

from reportqa.index.fusion import pages_from_chunks, rrf, weighted, with_continuation


def test_rrf_rewards_items_ranked_well_by_both_retrievers():
    fused = rrf([["a", "b", "c"], ["d", "b", "c"]], k=60)
    assert fused["b"] == pytest.approx(2 / 62)
    assert fused["a"] == pytest.approx(1 / 61)
    ranked = sorted(fused, key=fused.get, reverse=True)
    assert ranked[0] == "b" and ranked[-1] in ("a", "d")  # 2nd in both beats 1st in one
    assert fused["c"] > fused["a"]  # even 3rd in both does


def test_weighted_normalises_each_retrievers_scores_before_mixing():
    dense = {"a": 0.90, "b": 0.85, "c": 0.80}  # cosine: narrow range
    keyword = {"c": 30.0, "d": 3.0}  # bm25: wide range, different scale
    fused = weighted([dense, keyword], [0.5, 0.5])
    assert fused["a"] == pytest.approx(0.5)
    assert fused["c"] == pytest.approx(0.5)  # worst dense + best keyword
    assert fused["b"] == pytest.approx(0.25)
    assert fused["d"] == pytest.approx(0.0)
    only_dense = weighted([dense, keyword], [1.0, 0.0])
    assert max(only_dense, key=only_dense.get) == "a"


def test_pages_rank_by_best_chunk_down_weight_dividers_and_merge_duplicates():
    chunks = {"p1-c0": 0.5, "p1-c1": 0.4, "p2-c0": 0.6, "p3-c0": 0.55, "p9-c0": 0.9, "p10-c0": 0.3}

    def page_of(c):
        return int(c[1:c.index("-")])

    ranked = pages_from_chunks(
        chunks, page_of,
        page_weight=lambda p: 0.5 if p == 9 else 1.0,  # 9 is a divider page
        same_as=lambda p: 3 if p == 10 else p,  # 10 repeats page 3 verbatim
    )
    assert [p for p, _, _ in ranked] == [2, 3, 1, 9]  # 9: 0.9 * 0.5; 10 merged into 3
    assert ranked[0][1] == pytest.approx(0.6) and ranked[3][1] == pytest.approx(0.45)
    assert [c for c, _ in ranked[2][2]] == ["p1-c0", "p1-c1"]  # all matching chunks, best first
    merged = pages_from_chunks({"p10-c0": 0.7, "p3-c0": 0.2}, page_of, same_as=lambda p: 3 if p == 10 else p)
    assert [p for p, _, _ in merged] == [10]  # the better-scoring copy stands for both


def test_the_best_page_brings_the_other_half_of_its_slide():
    ranked = [(10, 0.9, ["a"]), (3, 0.8, ["b"]), (4, 0.7, ["c"]), (11, 0.2, ["d"])]
    assert with_continuation(ranked, 3, {10: 11, 11: 10}) == [(10, 0.9, ["a"]), (11, 0.2, ["d"]), (3, 0.8, ["b"])]
    assert with_continuation(ranked, 3, {10: 9}) == [(10, 0.9, ["a"]), (9, 0.9, []), (3, 0.8, ["b"])]  # matched nothing
    assert with_continuation(ranked, 3, {10: 4}) == ranked[:3]  # already there
    assert with_continuation(ranked, 3, {3: 4}) == ranked[:3]  # only the best page's partner
    assert with_continuation([], 3, {10: 11}) == []
