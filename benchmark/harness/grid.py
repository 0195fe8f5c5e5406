"""The grid: cells of task x method x budget x distillation seed, and the runs inside each cell."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

import tasks
from benchmark.harness.records import record_key
from benchmark.harness.suite import Suite

logger = logging.getLogger(__name__)

FULL_METHOD = "full"
RANDOM_METHOD = "random"


@dataclass(frozen=True)
class Run:
    """One training run inside a cell: a learner, a training seed and a track."""

    learner: str
    train_seed: int
    track: str


@dataclass(frozen=True)
class Cell:
    """One distillation: a method at a budget with a seed on one task, plus the runs that score it.

    `budget` is None for the full-data reference. `method_params` are the method's resolved
    hyperparameters for the suite's tier.
    """

    suite: str
    tier: str
    task: str
    method: str
    budget: int | None
    distill_seed: int
    runs: tuple[Run, ...]
    pool_limit: int | None
    test_limit: int | None
    extra_eval_limit: int | None
    distill_timeout_s: float
    train_timeout_s: float
    method_params: tuple[tuple[str, Any], ...] = ()
    method_path: str | None = None

    @property
    def label(self) -> str:
        budget = "full" if self.budget is None else f"b{self.budget}"
        return f"{self.task}/{self.method}/{budget}/d{self.distill_seed}"

    def config(self) -> dict[str, Any]:
        """Resolved configuration of the distillation; stored in every record of the cell."""
        data = asdict(self)
        data.pop("runs")
        data["method_params"] = dict(self.method_params)
        return data

    def distill_hash(self, dataset_fingerprint: str) -> str:
        """Key of the cached synthetic set: everything that changes what the method returns."""
        keys = ("tier", "task", "method", "budget", "distill_seed", "pool_limit", "method_params")
        payload = {k: self.config()[k] for k in keys} | {"dataset": dataset_fingerprint}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def record_key(self, run: Run) -> str:
        return record_key(self.suite, self.task, self.method, self.budget, self.distill_seed,
                          run.learner, run.train_seed, run.track)


def task_budgets(suite: Suite, task: tasks.TaskSpec) -> tuple[int, ...]:
    return suite.budgets.get(task.budget_unit, task.budgets)


def expand(suite: Suite, method_tracks: dict[str, tuple[str, ...]],
           method_params: dict[str, dict[str, Any]] | None = None,
           method_paths: dict[str, str] | None = None,
           method_families: dict[str, tuple[str, ...]] | None = None) -> list[Cell]:
    """List the cells of `suite` in a stable order (task, method, budget, seed).

    `method_tracks` gives the tracks each method supports; a method is scored on the suite's
    tracks that it supports. A method whose `method_families` exclude a task's family gets no
    cell for that task.
    """
    method_params = method_params or {}
    method_paths = method_paths or {}
    cells = []
    for task_name in suite.tasks:
        task = tasks.get(task_name)
        task_suite = suite.for_task(task_name)
        for method in task_suite.methods:
            if method_families and task.family not in method_families.get(method, (task.family,)):
                logger.debug("skipping method %s on task %s: it does not handle the %s family",
                             method, task_name, task.family)
                continue
            tracks = [t for t in task_suite.tracks if t in method_tracks[method]]
            runs = tuple(Run(learner, seed, track) for learner in task_suite.learners
                         if task_suite.scores(learner, method)
                         for seed in task_suite.train_seeds for track in tracks)
            if method == FULL_METHOD:
                budgets: tuple[int | None, ...] = (None,)
                seeds: tuple[int, ...] = (0,)
            else:
                budgets = task_budgets(task_suite, task)
                seeds = task_suite.random_seeds if method == RANDOM_METHOD and task_suite.random_seeds \
                    else task_suite.distill_seeds
            for budget in budgets:
                for seed in seeds:
                    cells.append(Cell(
                        suite=suite.name, tier=suite.tier, task=task_name, method=method, budget=budget,
                        distill_seed=seed, runs=runs, pool_limit=task_suite.pool_limit,
                        test_limit=task_suite.test_limit, extra_eval_limit=task_suite.extra_eval_limit,
                        distill_timeout_s=task_suite.distill_timeout_s,
                        train_timeout_s=task_suite.train_timeout_s,
                        method_params=tuple(sorted(method_params.get(method, {}).items())),
                        method_path=method_paths.get(method)))
    return cells
