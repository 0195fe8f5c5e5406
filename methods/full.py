"""The full-data reference: the whole train pool, as the upper bound every budget is compared to."""

from __future__ import annotations

import logging

from benchmark.synthetic import SyntheticSet
from methods import register
from methods.base import Budget, DistillContext, Distiller, Pool
from methods.selection import selected_set

logger = logging.getLogger(__name__)


@register
class FullData(Distiller):
    """Returns every pool row; the harness scores it once per learner and gives it no budget check."""

    name = "full"
    category = "reference"
    form = "text"
    tracks = ("standard", "native")
    families = ("classification", "nli", "qa", "instruction")
    citation = "Upper bound used throughout dataset distillation: training on the whole train set."
    description = """
        Returns the whole train pool unchanged. Its score is the full-data reference in the
        gap-closed metric, (method - random) / (full - random); the budget is ignored.
        """

    def __init__(self) -> None:
        pass

    def distill(self, pool: Pool, budget: Budget | None, seed: int, context: DistillContext) -> SyntheticSet:
        logger.info("full: returning all %d pool rows of task %s", len(pool), pool.task.name)
        return selected_set(self, pool, list(range(len(pool))), full_data=True)
