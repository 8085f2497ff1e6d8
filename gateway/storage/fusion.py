"""Reciprocal rank fusion: one ranking from a dense and a keyword ranking, by rank alone.

RRF (Cormack et al., 2009) scores a document `sum(weight / (k + rank))` over the lists it is in
(ranks from 1). It needs no calibration between cosine similarities and BM25 scores, which live on
unrelated scales; `k` (60 in the paper) flattens the difference between the first few ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

DENSE = "dense"
KEYWORD = "keyword"


@dataclass(frozen=True)
class Fused:
    """One document of a fused ranking: its key, RRF score and its rank in each list it came from."""

    key: int
    score: float
    ranks: dict[str, int] = field(default_factory=dict)


def rrf(dense: Sequence[int], keyword: Sequence[int], k: int, alpha: float, limit: int) -> list[Fused]:
    """Fuse two rankings (keys, best first): score = alpha/(k + dense rank) + (1 - alpha)/(k + keyword rank).

    `alpha` 1 is dense alone, 0 keyword alone, 0.5 both equally (plain RRF, halved). Ties keep the
    better dense rank first, then the better keyword rank, so the order is deterministic.
    """
    weights = {DENSE: alpha, KEYWORD: 1.0 - alpha}
    ranks: dict[int, dict[str, int]] = {}
    for name, keys in ((DENSE, dense), (KEYWORD, keyword)):
        for rank, key in enumerate(keys, start=1):
            ranks.setdefault(key, {}).setdefault(name, rank)
    fused = [
        Fused(key, sum(weights[name] / (k + rank) for name, rank in where.items()), where)
        for key, where in ranks.items()
    ]
    missing = len(dense) + len(keyword) + 1  # rank used to break ties for a list a document is not in
    fused.sort(key=lambda f: (-f.score, f.ranks.get(DENSE, missing), f.ranks.get(KEYWORD, missing)))
    return fused[:limit]
