"""Run a suite: expand the grid, execute cells, report progress and a summary."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

import methods
from benchmark import learners
from benchmark.harness.cell import CellOutcome
from benchmark.harness.executors import EXECUTORS
from benchmark.harness.grid import Cell, expand
from benchmark.harness.suite import Suite, SuiteError

logger = logging.getLogger(__name__)


@dataclass
class RunSummary:
    cells: int = 0
    ok: int = 0
    failed: int = 0
    not_applicable: int = 0
    skipped: int = 0
    skipped_failed: int = 0
    wall_time_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    def add(self, outcome: CellOutcome) -> None:
        self.cells += 1
        self.ok += outcome.ok
        self.failed += outcome.failed
        self.not_applicable += outcome.not_applicable
        self.skipped += outcome.skipped
        self.skipped_failed += outcome.skipped_failed
        self.failures += outcome.failures


def validate_suite(suite: Suite) -> None:
    """Reject unknown tasks, methods, learners and missing recipes before any compute starts."""
    check_grid(suite, f"suite {suite.name!r}")
    override_learners = {name for o in suite.task_overrides.values() for name in o.get("learners", ())}
    for learner in suite.learner_methods:
        if learner not in set(suite.learners) | override_learners:
            raise SuiteError(f"suite {suite.name!r}: learner_methods names learner {learner!r}, which no task of "
                             f"the suite uses; add it to learners or drop the entry")
    for task, overrides in suite.task_overrides.items():
        if task not in suite.tasks:
            raise SuiteError(f"task_overrides names task {task!r}, which is not in the suite's tasks "
                             f"{list(suite.tasks)}")
        where = f"suite {suite.name!r}, task_overrides[{task!r}]"
        task_suite = suite.for_task(task)
        check_grid(task_suite, where)
        for learner in overrides.get("learner_methods", {}):
            if learner not in task_suite.learners:
                raise SuiteError(f"{where}: learner_methods names learner {learner!r}, which is not among the "
                                 f"task's learners {list(task_suite.learners)}; add it there or drop the entry")


def check_grid(suite: Suite, where: str) -> None:
    """Check that the suite's (or one task's) tasks, methods and learners exist and have recipes."""
    import tasks

    for name in suite.tasks:
        tasks.get(name)
    for name in [*suite.methods, *(m for names in suite.learner_methods.values() for m in names)]:
        methods.get(name)
    for name in suite.learners:
        learner = learners.get(name)
        if suite.tier not in learner.recipes:
            raise SuiteError(f"{where}: learner {name!r} has no {suite.tier!r} recipe; "
                             f"it has {sorted(learner.recipes)}")


def build_cells(suite: Suite, method_paths: dict[str, str] | None = None) -> list[Cell]:
    validate_suite(suite)
    names = set(suite.methods) | {m for o in suite.task_overrides.values() for m in o.get("methods", ())}
    tracks = {name: methods.get(name).tracks for name in names}
    families = {name: methods.get(name).families for name in names}
    return expand(suite, tracks, method_paths=method_paths, method_families=families)


def run_suite(suite: Suite, results_dir: str, executor: str = "local", overwrite: str = "never",
              method_paths: dict[str, str] | None = None, **executor_options: Any) -> RunSummary:
    """Run every cell of `suite` and write its records under `results_dir`."""
    if executor not in EXECUTORS:
        raise SuiteError(f"executor {executor!r} is unknown; use one of {sorted(EXECUTORS)}")
    if overwrite not in ("never", "failed", "all"):
        raise SuiteError(f"overwrite {overwrite!r} is invalid; use never, failed or all")
    cells = build_cells(suite, method_paths)
    runs = sum(len(c.runs) for c in cells)
    logger.info("suite %s (%s tier): %d cells, %d training runs, executor %s, results in %s",
                suite.name, suite.tier, len(cells), runs, executor, results_dir)
    summary = RunSummary()
    start = time.perf_counter()
    outcomes = EXECUTORS[executor](cells, results_dir, overwrite, **executor_options)
    with tqdm(total=len(cells), desc=f"{suite.name} cells", unit="cell") as progress:
        for outcome in outcomes:
            summary.add(outcome)
            progress.update(1)
            if outcome.ok or outcome.failed or outcome.not_applicable:
                shown = ", ".join(f"{k}={v:.3f}" for k, v in outcome.scores.items())
                logger.info("cell %s done: %d ok, %d failed, %d n/a %s", outcome.label, outcome.ok,
                            outcome.failed, outcome.not_applicable, shown)
    summary.wall_time_s = time.perf_counter() - start
    return summary
