"""Random selection: the reference that every other method must beat."""

from __future__ import annotations

import numpy as np

from methods import register
from methods.selection import SelectionDistiller


@register
class RandomSelection(SelectionDistiller):
    """Uniform sample without replacement, within each class or over the whole pool."""

    name = "random"
    tracks = ("standard", "native")
    uses_embeddings = False
    citation = ("Standard baseline of dataset distillation, e.g. Wang et al. 2018, Dataset Distillation, "
                "arXiv:1811.10959; Zhao et al. 2021, Dataset Condensation with Gradient Matching, ICLR.")
    description = """
        Keeps real pool rows drawn uniformly without replacement, seeded by the distillation seed.
        Under per-class budgets it draws exactly the budget from each class (a class with fewer
        rows is kept whole); under total budgets (QA, instruction tuning) it draws over the whole
        pool. Under the native track the harness applies other methods' extras to this set.
        """

    def __init__(self) -> None:
        pass

    def select(self, size: int, points: np.ndarray | None, count: int,
               rng: np.random.Generator) -> np.ndarray:
        # Sorted, so the set lists rows in pool order; the draw itself is uniform.
        return np.sort(rng.choice(size, size=count, replace=False))
