"""Shared machinery of the selection baselines: budget groups, and copying the chosen pool rows.

A selection baseline keeps real rows of the pool. Under a per-class budget it picks within each
class, and under a total budget it picks over the whole pool. A group with no more rows than its
quota is kept whole, so every baseline returns exactly the budget wherever the pool allows it.
"""

from __future__ import annotations

import copy
import logging
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from benchmark.synthetic import SyntheticSet
from methods.base import Budget, DistillContext, Distiller, Pool

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Group:
    """Pool rows that share one budget: one class (per-class budgets) or the whole pool (total)."""

    label: int | None
    indices: np.ndarray  # pool indices, ascending
    quota: int  # rows to select: the budget value, or the group's size when that is smaller


def budget_groups(pool: Pool, budget: Budget) -> list[Group]:
    """Split the pool into the groups that `budget` counts; raises ValueError on a mismatched budget."""
    task = pool.task
    if budget.unit != task.budget_unit:
        raise ValueError(f"budget {budget} does not fit task {task.name!r}, whose {task.family} budgets "
                         f"count examples {'per class' if task.budget_unit == 'per_class' else 'in total'}; "
                         f"pass Budget({budget.value}, {task.budget_unit!r})")
    if budget.value < 1:
        raise ValueError(f"budget value {budget.value} is invalid; it must be a positive number of examples")
    if budget.unit == "total":
        return [Group(None, np.arange(len(pool)), min(budget.value, len(pool)))]
    return [Group(label, rows, min(budget.value, len(rows)))
            for label, rows in pool.indices_by_class().items()]


class SelectionDistiller(Distiller):
    """A baseline that keeps real pool rows. Subclasses pick `count` distinct rows of one group."""

    category = "selection"
    form = "text"
    families = ("classification", "nli", "qa", "instruction")
    uses_embeddings: ClassVar[bool] = True

    @abstractmethod
    def select(self, size: int, points: np.ndarray | None, count: int,
               rng: np.random.Generator) -> np.ndarray:
        """Return `count` distinct positions in 0..size-1, in the order they were picked.

        `points` [size, d] contains the group's sentence embeddings, or is None for a method that sets
        `uses_embeddings = False`. It is only called with 0 < count < size.
        """

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext) -> SyntheticSet:
        groups = budget_groups(pool, budget)
        embeddings = self._pool_embeddings(pool, context) if self.uses_embeddings else None
        rng = np.random.default_rng(seed)

        chosen: list[int] = []
        for group in groups:
            if group.quota == 0:
                continue
            if group.quota >= len(group.indices):
                chosen.extend(int(i) for i in group.indices)
                continue
            points = embeddings[group.indices] if embeddings is not None else None
            positions = self.select(len(group.indices), points, group.quota, rng)
            chosen.extend(int(i) for i in group.indices[positions])

        logger.info("%s: selected %d of %d pool rows of task %s (budget %s, seed %d)",
                    self.name, len(chosen), len(pool), pool.task.name, budget, seed)
        return selected_set(self, pool, chosen, budget=budget.value, budget_unit=budget.unit, seed=seed)

    def _pool_embeddings(self, pool: Pool, context: DistillContext) -> np.ndarray:
        embeddings = np.asarray(context.pool_embeddings(pool))
        if embeddings.ndim != 2 or embeddings.shape[0] != len(pool):
            raise ValueError(f"method {self.name!r}: the context's embeddings have shape {embeddings.shape}, "
                             f"expected [{len(pool)}, d] (one row per pool row); check DistillContext.embed")
        return embeddings


def selected_set(method: Distiller, pool: Pool, indices: list[int], **manifest: Any) -> SyntheticSet:
    """Text set of copies of the pool rows at `indices`, with those indices in the manifest."""
    # Deep copies, so a learner that edits a record (for example a QA answers dict) cannot change the pool.
    records = [copy.deepcopy(pool.records[i]) for i in indices]
    return method.text_set(pool, records, selected_indices=list(indices), **manifest)
