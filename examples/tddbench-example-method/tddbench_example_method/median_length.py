"""Median-length selection: keeps the pool rows whose length is closest to their group's median."""

from __future__ import annotations

import logging

import numpy as np

from benchmark.synthetic import SyntheticSet
from methods.base import Budget, DistillContext, Distiller, Pool

logger = logging.getLogger(__name__)

LENGTH_UNITS = ("words", "characters")


class MedianLengthSelection(Distiller):
    """Pick the rows of typical length in each class (per-class budgets) or in the pool (total budgets)."""

    name = "example-median-length"
    category = "selection"
    families = ("classification", "nli", "qa", "instruction")
    citation = "Example plugin of TDD-Bench; not a published method."
    description = """
        Keeps the real pool rows whose input length is closest to the median length of their budget
        group (one class under per-class budgets, the whole pool under total budgets). Ties are
        broken by a random order drawn from the distillation seed, so different seeds may return
        different sets and the same seed always returns the same set.
        """
    tier_params = {"smoke": {"length_unit": "words"}}

    def __init__(self, *, length_unit: str = "words") -> None:
        # Stored unchanged, as the adapter contract requires; it is validated in distill().
        self.length_unit = length_unit

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext) -> SyntheticSet:
        if self.length_unit not in LENGTH_UNITS:
            raise ValueError(f"method {self.name!r}: length_unit {self.length_unit!r} is invalid; "
                             f"use one of {LENGTH_UNITS}")
        texts = pool.texts()
        lengths = np.array([len(t.split()) if self.length_unit == "words" else len(t) for t in texts])
        if budget.unit == "per_class":
            groups = list(pool.indices_by_class().values())
        else:
            groups = [np.arange(len(pool))]

        rng = np.random.default_rng(seed)
        chosen: list[int] = []
        for rows in groups:
            if len(rows) == 0:
                continue
            distance = np.abs(lengths[rows] - np.median(lengths[rows]))
            tie_break = rng.permutation(len(rows))
            # lexsort sorts by the last key first: distance to the median, then the seeded order.
            order = np.lexsort((tie_break, distance))
            chosen.extend(int(rows[i]) for i in order[: budget.value])

        logger.info("%s: kept %d of %d rows (budget %s, seed %d)", self.name, len(chosen), len(pool), budget, seed)
        return self.text_set(pool, pool.subset(sorted(chosen)), seed=seed)
