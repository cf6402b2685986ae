"""Rankings -> one ranking: reciprocal rank fusion, and the joins of rankings made by different searches."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hkai_qa.types import Hit

# The constant of reciprocal rank fusion: a place r adds 1 / (RRF_K + r + 1).
RRF_K = 60


def merge_rankings(first: list[Hit], second: list[Hit], k: int) -> list[Hit]:
    """Two searches' hits (of different chunks) as one ranking by fused score, the first search's hit first on
    a tie, ranks renumbered. Scores are on one scale (1 is first in every ranking the mode fuses), so a chunk
    both the model and its words put high comes before one only the model found."""
    merged = sorted([*first, *second], key=lambda hit: -hit.score)[:k]
    return [replace(hit, rank=rank) for rank, hit in enumerate(merged)]


def fuse_with_order(hits: list[Hit], similarities: np.ndarray, weight: float, k: int) -> list[Hit]:
    """`hits` in their order, fused by reciprocal rank with the order of `similarities` (one per hit), which
    weighs `weight`; the best `k`, ties kept in the order of `hits`. Scores are the fused ones, 1 for first in
    both orders."""
    positions = 1.0 / (RRF_K + 1 + np.arange(len(hits)))
    fused = positions.copy()
    fused[np.argsort(-similarities, kind="stable")] += weight * positions
    top = (1.0 + weight) / (RRF_K + 1)
    order = np.argsort(-fused, kind="stable")[:k]
    return [replace(hits[i], rank=rank, score=min(float(fused[i]) / top, 1.0)) for rank, i in enumerate(order)]
