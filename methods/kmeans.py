"""K-means selection: the real rows nearest the centroids of each class's sentence embeddings."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans as SklearnKMeans

from benchmark.backbones import MINILM
from benchmark.synthetic import SyntheticSet
from methods import register
from methods.base import Budget, DistillContext, Pool
from methods.selection import SelectionDistiller


def nearest_distinct(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Positions of distinct rows of `points`, one per centroid, in centroid order.

    Pairs are matched greedily by distance: the closest (centroid, row) pair over all unmatched
    centroids and rows is taken first, so two centroids never claim the same row.
    """
    points = np.asarray(points, dtype=np.float64)
    centroids = np.asarray(centroids, dtype=np.float64)
    squared = (np.einsum("ij,ij->i", centroids, centroids)[:, None]
               - 2.0 * centroids @ points.T
               + np.einsum("ij,ij->i", points, points)[None, :])
    count, size = squared.shape
    # Each centroid can only lose a row to the `count - 1` others, so its `count` nearest rows
    # always contain its match; restricting to them keeps the greedy loop small.
    width = min(count, size)
    candidates = np.argpartition(squared, width - 1, axis=1)[:, :width]
    distances = np.take_along_axis(squared, candidates, axis=1)

    matched = np.full(count, -1, dtype=np.int64)
    taken = np.zeros(size, dtype=bool)
    for _ in range(count):
        blocked = taken[candidates] | (matched >= 0)[:, None]
        masked = np.where(blocked, np.inf, distances)
        centroid, slot = np.unravel_index(int(np.argmin(masked)), masked.shape)
        matched[centroid] = candidates[centroid, slot]
        taken[matched[centroid]] = True
    return matched


@register
class KMeansSelection(SelectionDistiller):
    """Per-class k-means with k = budget; keeps the real row nearest each centroid."""

    name = "kmeans"
    requires = (MINILM,)
    citation = ("Lloyd 1982, Least Squares Quantization in PCM, IEEE Trans. Information Theory; "
                "k-means++ seeding: Arthur and Vassilvitskii 2007, SODA.")
    description = """
        Clusters the unit-length all-MiniLM-L6-v2 sentence embeddings of each class (or of the
        whole pool for total budgets) into k = budget clusters with scikit-learn's k-means
        (k-means++ seeding from the distillation seed, Lloyd iterations), then keeps the real row
        nearest each centroid. Two centroids never keep the same row: the closest centroid-row
        pairs are matched first.
        """

    def __init__(self, *, n_init: int = 1, max_iter: int = 100) -> None:
        self.n_init = n_init
        self.max_iter = max_iter

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext) -> SyntheticSet:
        # Checked before the pool is embedded, which can take minutes.
        for key in ("n_init", "max_iter"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"method {self.name!r}: {key}={value!r} is invalid; use a positive integer")
        return super().distill(pool, budget, seed, context)

    def select(self, size: int, points: np.ndarray | None, count: int,
               rng: np.random.Generator) -> np.ndarray:
        state = int(rng.integers(2**31 - 1))
        model = SklearnKMeans(n_clusters=count, n_init=self.n_init, max_iter=self.max_iter, random_state=state)
        model.fit(np.asarray(points, dtype=np.float32))
        return nearest_distinct(points, model.cluster_centers_)
