"""Greedy k-center selection on sentence embeddings (Sener and Savarese 2018)."""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from benchmark.backbones import MINILM
from benchmark.synthetic import SyntheticSet
from methods import register
from methods.base import Budget, DistillContext, Pool
from methods.selection import SelectionDistiller

Start = Literal["mean", "random"]


def k_center_greedy(points: np.ndarray, count: int, first: int) -> np.ndarray:
    """Positions of `count` rows chosen by greedy k-center, starting from row `first`.

    Each step adds the row farthest (Euclidean) from its nearest chosen center. Ties go to the
    lowest position.
    """
    # float32 products halve the memory traffic of the one matrix-vector product per step.
    points = np.ascontiguousarray(points, dtype=np.float32)
    squared_norms = np.einsum("ij,ij->i", points, points, dtype=np.float64)
    nearest = np.full(points.shape[0], np.inf)
    order = np.empty(count, dtype=np.int64)
    order[0] = first

    for step in range(1, count):
        center = order[step - 1]
        # Squared distances through the norm expansion: one matrix-vector product per step.
        distances = squared_norms - 2.0 * (points @ points[center]).astype(np.float64) + squared_norms[center]
        np.minimum(nearest, np.maximum(distances, 0.0), out=nearest)
        # Chosen rows have distance 0 already; -1 also keeps them out when every row is a duplicate.
        nearest[order[:step]] = -1.0
        order[step] = int(np.argmax(nearest))
    return order


def nearest_to_mean(points: np.ndarray) -> int:
    """Position of the row closest (Euclidean) to the mean of `points`; ties go to the lowest."""
    points = np.asarray(points, dtype=np.float64)
    return int(np.argmin(np.linalg.norm(points - points.mean(axis=0), axis=1)))


@register
class KCenters(SelectionDistiller):
    """Per-class greedy k-center on unit-length MiniLM sentence embeddings."""

    name = "k-centers"
    requires = (MINILM,)
    citation = ("Sener and Savarese 2018, Active Learning for Convolutional Neural Networks: "
                "A Core-Set Approach, ICLR.")
    description = """
        Keeps real pool rows chosen by greedy k-center: within each class (or over the whole pool
        for total budgets) it starts from one row and repeatedly adds the row farthest from its
        nearest chosen row, in the space of unit-length all-MiniLM-L6-v2 sentence embeddings.
        With start="mean" (the default) the first row is the one nearest the group's mean
        embedding and the result does not depend on the seed; with start="random" the first row
        is drawn with the seed.
        """

    def __init__(self, *, start: Start = "mean") -> None:
        self.start = start

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext) -> SyntheticSet:
        # Checked before the pool is embedded, which can take minutes.
        if self.start not in get_args(Start):
            raise ValueError(f"method {self.name!r}: start={self.start!r} is invalid; "
                             f"use one of {list(get_args(Start))}")
        return super().distill(pool, budget, seed, context)

    def select(self, size: int, points: np.ndarray | None, count: int,
               rng: np.random.Generator) -> np.ndarray:
        first = nearest_to_mean(points) if self.start == "mean" else int(rng.integers(size))
        return k_center_greedy(points, count, first)
