"""Aggregate runs per (task, budget, learner, recipe, track, protocol, method) and relate them to
the random and full-data baselines of the same cell."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from benchmark.leaderboard.loading import LoadedRecord, RecordFileError
from benchmark.leaderboard.stats import Summary, higher_is_better, summarize

logger = logging.getLogger(__name__)

RANDOM_METHOD = "random"
COMPANION_SUFFIX = "+random-inputs"
FULL_METHOD = "full"
NO_BACKBONE = "none"


@dataclass(frozen=True, order=True)
class TableKey:
    """Identity of one table. Results under another recipe or protocol always go to another table."""

    recipe_id: str
    protocol_version: str
    learner: str
    track: str

    @property
    def label(self) -> str:
        return (f"learner {self.learner}, recipe {self.recipe_id}, track {self.track}, "
                f"protocol {self.protocol_version}")


@dataclass(frozen=True)
class CellKey:
    """One comparison cell: methods in it are scored on the same task, budget and protocol."""

    task: str
    budget: int | None
    learner: str
    recipe_id: str
    track: str
    protocol_version: str

    @property
    def table_key(self) -> TableKey:
        return TableKey(self.recipe_id, self.protocol_version, self.learner, self.track)

    @property
    def label(self) -> str:
        budget = "full data" if self.budget is None else f"budget {self.budget}"
        return f"task {self.task}, {budget}, {self.table_key.label}"

    def with_budget(self, budget: int | None) -> CellKey:
        return CellKey(self.task, budget, self.learner, self.recipe_id, self.track, self.protocol_version)


@dataclass
class Aggregate:
    """All runs of one method in one cell: score summary over seeds, run counts and baselines.

    `gain_over_random` is signed so that a positive value is better than random, also for
    lower-is-better metrics. `gap_closed` is (mean - random) / (full - random), which needs no sign
    change because numerator and denominator flip together.
    """

    cell: CellKey
    method: str
    method_category: str
    task_family: str
    budget_unit: str
    metric: str
    summary: Summary
    n_failed: int = 0
    n_not_applicable: int = 0
    n_contaminated: int = 0
    distill_seeds: tuple[int, ...] = ()
    train_seeds: tuple[int, ...] = ()
    forms: tuple[str, ...] = ()
    distill_backbones: tuple[str, ...] = ()
    distill_wall_time_s: float | None = None
    distill_peak_memory_mb: float | None = None
    reasons: tuple[str, ...] = ()
    gain_over_random: float | None = None
    gap_closed: float | None = None
    reference_method: str = "random"

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.metric)

    @property
    def key(self) -> tuple[CellKey, str]:
        return (self.cell, self.method)

    @property
    def is_text_set(self) -> bool:
        """Text-level method or a set in text form, so it is portable to any learner."""
        return self.method_category == "text-level" or "text" in self.forms

    @property
    def distill_backbone(self) -> str:
        return "+".join(self.distill_backbones) if self.distill_backbones else NO_BACKBONE

    def to_row(self) -> dict[str, Any]:
        """Flat dict for CSV and JSON output; missing values are None."""
        cell, summary = self.cell, self.summary
        return {
            "task": cell.task, "task_family": self.task_family, "budget": cell.budget,
            "budget_unit": self.budget_unit, "learner": cell.learner, "recipe_id": cell.recipe_id,
            "track": cell.track, "protocol_version": cell.protocol_version, "method": self.method,
            "method_category": self.method_category, "metric": self.metric,
            "higher_is_better": self.higher_is_better, "n": summary.n, "mean": summary.mean,
            "std": summary.std, "ci_low": summary.ci_low, "ci_high": summary.ci_high,
            "gain_over_random": self.gain_over_random, "gap_closed": self.gap_closed,
            "reference_method": self.reference_method,
            "distill_wall_time_s": self.distill_wall_time_s,
            "distill_peak_memory_mb": self.distill_peak_memory_mb,
            "n_failed": self.n_failed, "n_not_applicable": self.n_not_applicable,
            "n_contaminated": self.n_contaminated, "distill_backbone": self.distill_backbone,
            "forms": "+".join(self.forms), "distill_seeds": list(self.distill_seeds),
            "train_seeds": list(self.train_seeds),
        }


@dataclass
class AggregationResult:
    aggregates: list[Aggregate]
    warnings: list[str] = field(default_factory=list)


def aggregate_records(records: list[LoadedRecord]) -> AggregationResult:
    """Group records by cell and method, summarize ok runs, count the others, attach baselines.

    Raises RecordFileError when an ok record lacks its main score, and ValueError when one group
    mixes main-score metrics. A non-finite score counts as a failed run and logs a warning.
    """
    groups: dict[tuple[CellKey, str], list[LoadedRecord]] = defaultdict(list)
    for loaded in records:
        record = loaded.record
        cell = CellKey(record.task, record.budget, record.learner, record.recipe_id, record.track,
                       record.protocol_version)
        groups[(cell, record.method)].append(loaded)

    warnings: list[str] = []
    aggregates = [_summarize_group(cell, method, members, warnings)
                  for (cell, method), members in sorted(groups.items(), key=_group_order)]
    _attach_baselines(aggregates, warnings)
    return AggregationResult(aggregates=aggregates, warnings=warnings)


def _group_order(item: tuple[tuple[CellKey, str], list[LoadedRecord]]) -> tuple:
    (cell, method), _ = item
    budget = math.inf if cell.budget is None else cell.budget
    return (cell.table_key, cell.task, budget, method)


def _warn(warnings: list[str], message: str) -> None:
    """Log and keep `message` once, because one condition met by several methods of a cell is one warning."""
    if message not in warnings:
        logger.warning(message)
        warnings.append(message)


def _summarize_group(cell: CellKey, method: str, members: list[LoadedRecord],
                     warnings: list[str]) -> Aggregate:
    metrics = sorted({loaded.record.main_score for loaded in members})
    if len(metrics) > 1:
        raise ValueError(f"records for {cell.label}, method {method} use different main scores "
                         f"{metrics}; records of one task must share one main score, so check "
                         f"the task definition the runs used")
    metric = metrics[0]

    values: list[float] = []
    ok_runs: list[LoadedRecord] = []
    n_failed = n_not_applicable = 0
    reasons: set[str] = set()
    for loaded in members:
        record = loaded.record
        if record.status == "failed":
            n_failed += 1
            if record.error:
                reasons.add(f"failed: {record.error.get('type', 'error')}")
            continue
        if record.status == "not_applicable":
            n_not_applicable += 1
            if record.reason:
                reasons.add(f"not applicable: {record.reason}")
            continue
        if metric not in record.scores:
            raise RecordFileError(f"{loaded.path}: status is 'ok' but scores {sorted(record.scores)} "
                                  f"lack the main score {metric!r}; repair or delete the record")
        value = float(record.scores[metric])
        if not math.isfinite(value):
            n_failed += 1
            reasons.add(f"failed: non-finite {metric}")
            _warn(warnings, f"{loaded.path}: {metric} is {value}; the run is counted as failed")
            continue
        values.append(value)
        ok_runs.append(loaded)

    first = members[0].record
    wall_time, peak_memory = _distill_costs(ok_runs)
    return Aggregate(
        cell=cell, method=method, method_category=first.method_category,
        task_family=first.task_family, budget_unit=first.budget_unit, metric=metric,
        summary=summarize(values), n_failed=n_failed, n_not_applicable=n_not_applicable,
        n_contaminated=sum(1 for loaded in ok_runs if loaded.record.contamination.get("flagged")),
        distill_seeds=tuple(sorted({loaded.record.distill_seed for loaded in ok_runs})),
        train_seeds=tuple(sorted({loaded.record.train_seed for loaded in ok_runs})),
        forms=tuple(sorted({str(loaded.record.synthetic_set["form"]) for loaded in members
                            if loaded.record.synthetic_set.get("form")})),
        distill_backbones=tuple(sorted({str(loaded.record.synthetic_set["distill_backbone"])
                                        for loaded in members
                                        if loaded.record.synthetic_set.get("distill_backbone")})),
        distill_wall_time_s=wall_time, distill_peak_memory_mb=peak_memory,
        reasons=tuple(sorted(reasons)),
    )


def _distill_costs(ok_runs: list[LoadedRecord]) -> tuple[float | None, float | None]:
    """Mean wall time and maximum peak memory over distillations.

    Every training seed of one distillation repeats that distillation's cost, so each distill seed
    is counted once.
    """
    per_seed: dict[int, dict[str, float]] = {}
    for loaded in ok_runs:
        per_seed.setdefault(loaded.record.distill_seed, loaded.record.distill_cost)
    wall_times = [float(cost["wall_time_s"]) for cost in per_seed.values()
                  if cost.get("wall_time_s") is not None]
    peaks = [float(cost["peak_memory_mb"]) for cost in per_seed.values()
             if cost.get("peak_memory_mb") is not None]
    wall_time = math.fsum(wall_times) / len(wall_times) if wall_times else None
    return wall_time, (max(peaks) if peaks else None)


def _reference_method(aggregate: Aggregate, means: dict[tuple[CellKey, str], float]) -> str:
    """The baseline a method is measured against: under the native track, a method that learns
    extras is compared with its `<method>+random-inputs` companion (random real inputs with the
    same learned extras) when that companion was run; otherwise with plain random selection.
    """
    companion = f"{aggregate.method}{COMPANION_SUFFIX}"
    if aggregate.cell.track == "native" and (aggregate.cell, companion) in means:
        return companion
    return RANDOM_METHOD


def _attach_baselines(aggregates: list[Aggregate], warnings: list[str]) -> None:
    """Fill gain over random and gap closed; warn once per cell whose baselines are missing."""
    means = {aggregate.key: aggregate.summary.mean for aggregate in aggregates}
    cells: dict[CellKey, list[Aggregate]] = defaultdict(list)
    for aggregate in aggregates:
        if aggregate.cell.budget is not None and aggregate.summary.n > 0:
            cells[aggregate.cell].append(aggregate)

    for cell, members in cells.items():
        full_mean = means.get((cell.with_budget(None), FULL_METHOD))
        if (cell, RANDOM_METHOD) not in means:
            _warn(warnings, f"no ok '{RANDOM_METHOD}' runs for {cell.label}: gain over random and "
                            f"gap closed are missing for {len(members)} method(s)")
            continue
        for aggregate in members:
            aggregate.reference_method = _reference_method(aggregate, means)
            random_mean = means[(cell, aggregate.reference_method)]
            difference = aggregate.summary.mean - random_mean
            gain = difference if aggregate.higher_is_better else -difference
            aggregate.gain_over_random = gain + 0.0  # turns -0.0 into 0.0 for display

        if full_mean is None:
            _warn(warnings, f"no ok '{FULL_METHOD}' runs (budget None) for {cell.label}: gap closed "
                            f"is missing for {len(members)} method(s)")
            continue
        for aggregate in members:
            random_mean = means[(cell, aggregate.reference_method)]
            full_gain = full_mean - random_mean if aggregate.higher_is_better else random_mean - full_mean
            if full_gain <= 0:
                # With no gap to close (the learner does no better on the full pool than on the
                # reference set), the ratio is undefined or only amplifies noise.
                _warn(warnings, f"full-data mean ({full_mean:.4g}) is not better than the "
                                f"{aggregate.reference_method} mean ({random_mean:.4g}) for {cell.label}: "
                                f"gap closed is undefined and left missing")
                continue
            gap = (aggregate.summary.mean - random_mean) / (full_mean - random_mean)
            aggregate.gap_closed = gap + 0.0  # turns -0.0 into 0.0 for display
