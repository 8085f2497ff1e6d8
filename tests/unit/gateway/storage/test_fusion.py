"""Reciprocal rank fusion as tables: rankings in, fused ranking out."""

from __future__ import annotations

import pytest

from gateway.storage.fusion import rrf


def test_a_document_in_both_lists_beats_one_ranked_first_in_only_one() -> None:
    fused = rrf(dense=[1, 2, 3], keyword=[4, 2, 5], k=60, alpha=0.5, limit=10)
    assert fused[0].key == 2
    assert fused[0].ranks == {"dense": 2, "keyword": 2}
    assert fused[0].score == pytest.approx(0.5 / 62 + 0.5 / 62)


@pytest.mark.parametrize(
    ("dense", "keyword", "alpha", "expected"),
    [
        # equal weights: the same rank in either list scores the same; ties go to the better dense rank
        ([1, 2], [3, 4], 0.5, [1, 3, 2, 4]),
        # alpha 1: dense order alone (keyword-only documents score 0 and come last)
        ([1, 2], [3, 4], 1.0, [1, 2, 3, 4]),
        # alpha 0: keyword order alone
        ([1, 2], [3, 4], 0.0, [3, 4, 1, 2]),
        # leaning on keyword lifts its first above dense's first
        ([1, 2], [3, 4], 0.3, [3, 4, 1, 2]),
        # 1/61 + 1/63 is a hair above 2/62: two lists' first and third beat both lists' second
        ([1, 2, 3], [3, 2, 1], 0.5, [1, 3, 2]),
        ([], [7, 8], 0.5, [7, 8]),
        ([5, 6], [], 0.5, [5, 6]),
    ],
)
def test_fused_order(dense: list[int], keyword: list[int], alpha: float, expected: list[int]) -> None:
    assert [f.key for f in rrf(dense, keyword, k=60, alpha=alpha, limit=10)] == expected


def test_k_flattens_the_top_ranks() -> None:
    # With a small k, rank 1 in one list outweighs rank 4 in both; with k = 60 it does not.
    sharp = rrf([1, 5, 6, 3], [2, 7, 8, 3], k=1, alpha=0.5, limit=3)
    flat = rrf([1, 5, 6, 3], [2, 7, 8, 3], k=60, alpha=0.5, limit=3)
    assert sharp[0].key == 1 and flat[0].key == 3


def test_limit_and_ranks() -> None:
    fused = rrf([10, 11, 12], [12, 13], k=60, alpha=0.5, limit=2)
    assert [f.key for f in fused] == [12, 10]
    assert fused[0].ranks == {"dense": 3, "keyword": 1}
    assert fused[1].ranks == {"dense": 1}
