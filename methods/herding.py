"""Herding selection on sentence embeddings (Welling 2009; Chen et al. 2010)."""

from __future__ import annotations

import numpy as np

from benchmark.backbones import MINILM
from methods import register
from methods.selection import SelectionDistiller


def herd(points: np.ndarray, count: int) -> np.ndarray:
    """Greedy herding: positions of `count` rows whose running mean tracks the mean of `points`.

    Step t picks the unpicked row x that minimizes ||mean - (sum of picked + x) / t||. Ties go to
    the lowest position, so the result is deterministic.
    """
    # float32 products halve the memory traffic of the one matrix-vector product per step; the
    # running sums stay in float64.
    points = np.ascontiguousarray(points, dtype=np.float32)
    size = points.shape[0]
    mean = points.mean(axis=0, dtype=np.float64)
    squared_norms = np.einsum("ij,ij->i", points, points, dtype=np.float64)
    picked_sum = np.zeros_like(mean)
    available = np.ones(size, dtype=bool)
    order = np.empty(count, dtype=np.int64)

    for step in range(1, count + 1):
        # ||t*mean - picked_sum - x||^2 = ||x||^2 - 2 x.residual + ||residual||^2, and the last
        # term is the same for every candidate, so it is left out of the comparison.
        residual = step * mean - picked_sum
        scores = squared_norms - 2.0 * (points @ residual.astype(np.float32))
        scores[~available] = np.inf
        best = int(np.argmin(scores))
        order[step - 1] = best
        available[best] = False
        picked_sum += points[best]
    return order


@register
class Herding(SelectionDistiller):
    """Per-class greedy herding on unit-length MiniLM sentence embeddings."""

    name = "herding"
    requires = (MINILM,)
    citation = ("Welling 2009, Herding Dynamical Weights to Learn, ICML. Chen, Welling and Smola 2010, "
                "Super-Samples from Kernel Herding, UAI. Used as a baseline in Cui et al. 2022, "
                "DC-BENCH: Dataset Condensation Benchmark, NeurIPS Datasets and Benchmarks.")
    description = """
        Keeps real pool rows chosen by greedy herding: within each class (or over the whole pool
        for total budgets) it repeatedly adds the row that brings the mean of the chosen sentence
        embeddings closest to the group's mean embedding. Embeddings are the unit-length,
        mean-pooled all-MiniLM-L6-v2 vectors of the pool's input text. The result does not depend
        on the seed.
        """

    def __init__(self) -> None:
        pass

    def select(self, size: int, points: np.ndarray | None, count: int,
               rng: np.random.Generator) -> np.ndarray:
        return herd(points, count)
