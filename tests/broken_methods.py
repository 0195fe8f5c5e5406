"""Method adapters for the harness tests: ones that misbehave on purpose, and one that reports reused work."""

from __future__ import annotations

import time

from methods.base import Budget, DistillContext, Distiller, Pool


class RaisingDistiller(Distiller):
    name = "test-raises"
    category = "selection"
    description = "Raises inside distill()."

    def __init__(self) -> None:
        pass

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext):
        raise RuntimeError("deliberate failure inside distill")


class HangingDistiller(Distiller):
    name = "test-hangs"
    category = "selection"
    description = "Sleeps far longer than any time limit."

    def __init__(self) -> None:
        pass

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext):
        time.sleep(3600)
        raise AssertionError("unreachable")


class OverBudgetDistiller(Distiller):
    name = "test-over-budget"
    category = "selection"
    description = "Returns the first budget + 1 rows of every class."

    def __init__(self) -> None:
        pass

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext):
        chosen = [int(i) for idx in pool.indices_by_class().values() for i in idx[: budget.value + 1]]
        return self.text_set(pool, pool.subset(chosen))


class ReusingDistiller(Distiller):
    name = "test-reuses"
    category = "selection"
    description = "Returns the first budget rows of every class and reports 30 s of work reused from an earlier cell."

    def __init__(self) -> None:
        pass

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext):
        chosen = [int(i) for idx in pool.indices_by_class().values() for i in idx[: budget.value]]
        return self.text_set(pool, pool.subset(chosen), reused_work_s=30.0)
