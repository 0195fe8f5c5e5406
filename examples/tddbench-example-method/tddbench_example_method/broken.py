"""An adapter that breaks the contract on purpose, so that `tddbench validate-method` can be seen failing.

It changes a hyperparameter in its constructor, returns one row more than the budget per class,
draws rows from unseeded randomness and tries to download a file. It is not registered as an entry
point; load it with `--method-path tddbench_example_method.broken:BrokenSelection`.
"""

from __future__ import annotations

import random
import urllib.request

from benchmark.synthetic import SyntheticSet
from methods.base import Budget, DistillContext, Distiller, Pool


class BrokenSelection(Distiller):
    """Random rows, but with four contract violations (see the module docstring)."""

    name = "example-broken"
    category = "selection"
    description = "Deliberately broken adapter used to show and test the validator's failures."

    def __init__(self, *, keep_percent: float = 50.0) -> None:
        # Violation: the stored value differs from the argument, so get_params() does not round-trip.
        self.keep_percent = keep_percent / 100

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext) -> SyntheticSet:
        # Violation: a network request during distillation. The address is loopback and port 9
        # (discard), so even without the validator's block the request stays on this machine.
        try:
            urllib.request.urlopen("http://127.0.0.1:9/extra-data.jsonl", timeout=0.5)
        except OSError:
            pass

        # Violations: randomness that ignores `seed`, and budget + 1 rows per class.
        draw = random.Random()
        chosen: list[int] = []
        for rows in pool.indices_by_class().values():
            chosen.extend(int(i) for i in draw.sample(list(rows), min(len(rows), budget.value + 1)))
        return self.text_set(pool, pool.subset(sorted(chosen)))
