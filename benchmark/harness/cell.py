"""Run one cell: distill once (or reuse the cached set), check the budget, train and score every run.

Every outcome becomes a record: scores, a failure (error type, message, traceback tail) or a
reason why the learner does not apply. A failure in one run never stops the other runs.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import methods
import tasks
from benchmark import PROTOCOL_VERSION, learners
from benchmark.budget import check_set
from benchmark.contamination import audit
from benchmark.cost import measure
from benchmark.encoder import shared_encoder
from benchmark.harness.grid import FULL_METHOD, Cell, Run
from benchmark.harness.provenance import provenance
from benchmark.harness.records import ResultRecord
from benchmark.harness.store import ResultStore
from benchmark.harness.timeout import time_limit
from benchmark.synthetic import SOFT_LABEL_KEY, SyntheticSet, SyntheticSetError
from methods.base import Budget, DistillContext, Distiller, Pool
from tasks.data import Record, Split, TaskData, _stratified_indices

logger = logging.getLogger(__name__)

Overwrite = str  # "never" | "failed" | "all"


@dataclass
class CellOutcome:
    """Counts of what happened to the runs of one cell in this invocation."""

    label: str
    ok: int = 0
    failed: int = 0
    not_applicable: int = 0
    skipped: int = 0
    skipped_failed: int = 0  # of the skipped runs, those whose stored record is a failure
    scores: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def needs_run(status: str | None, overwrite: Overwrite) -> bool:
    if status is None or overwrite == "all":
        return True
    return overwrite == "failed" and status == "failed"


# ---------------------------------------------------------------- inputs of a cell

def limit_records(records: tuple[Record, ...], limit: int | None, task: tasks.TaskSpec) -> tuple[Record, ...]:
    """A fixed subsample (seed 0, stratified by label where the task has labels), in original order."""
    if limit is None or limit >= len(records):
        return records
    rng = np.random.default_rng(0)
    if task.label_field:
        chosen = _stratified_indices(list(records), task.label_field, limit, rng)
    else:
        chosen = set(rng.permutation(len(records))[:limit].tolist())
    return tuple(r for i, r in enumerate(records) if i in chosen)


def cell_inputs(cell: Cell, data: TaskData) -> tuple[Pool, Split, dict[str, Split]]:
    task = data.task
    pool_records = limit_records(data.pool.records, cell.pool_limit, task)
    pool = Pool(task, pool_records, fingerprint=f"{data.fingerprint}:{cell.pool_limit}")
    test = Split("test", limit_records(data.test.records, cell.test_limit, task), data.test.origin)
    extra = {name: Split(name, split.records[: cell.extra_eval_limit], split.origin)
             for name, split in data.extra.items()}
    return pool, test, extra


def resolve_method(cell: Cell) -> type[Distiller]:
    if cell.method_path and cell.method not in methods.METHODS:
        module_name, _, class_name = cell.method_path.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        methods.register(cls, source=f"path:{cell.method_path}")
    return methods.get(cell.method)


# ---------------------------------------------------------------- distillation

def distill_context(cell: Cell, task: tasks.TaskSpec) -> DistillContext:
    encoder = shared_encoder(max_length=min(task.max_length, 256))
    return DistillContext(seed=cell.distill_seed, logger=logging.getLogger(f"methods.{cell.method}"),
                          embed=encoder.encode, tier=cell.tier)


def pool_class_sizes(pool: Pool, task: tasks.TaskSpec) -> dict[int, int] | None:
    """Rows per class of the pool for a per-class budget check; None for budgets in total examples."""
    if task.budget_unit != "per_class":
        return None
    return {label: len(rows) for label, rows in pool.indices_by_class().items()}


def obtain_set(cell: Cell, store: ResultStore, method_cls: type[Distiller], pool: Pool,
               data: TaskData) -> tuple[SyntheticSet, dict[str, float], Path]:
    """Load the cell's cached set, or distill it under the time limit and save it."""
    task = data.task
    set_dir = store.set_dir(cell.task, cell.method, cell.distill_hash(data.fingerprint))
    if (set_dir / "manifest.json").exists():
        try:
            synthetic = SyntheticSet.load(set_dir)
            if cell.budget is not None:  # a cached set passes the same budget check as a fresh one
                check_set(synthetic, task, Budget(cell.budget, task.budget_unit), cell.method,
                          pool_class_sizes=pool_class_sizes(pool, task))
            logger.debug("%s: reusing distilled set %s", cell.label, set_dir)
            return synthetic, synthetic.manifest.get("distill_cost", {}), set_dir
        except (SyntheticSetError, OSError, ValueError) as error:
            logger.warning("%s: cached set %s is unusable (%s); distilling again", cell.label, set_dir, error)

    method = method_cls.for_tier(cell.tier, **dict(cell.method_params))
    budget = Budget(cell.budget or 0, task.budget_unit)
    context = distill_context(cell, task)
    with measure() as cost, time_limit(cell.distill_timeout_s, f"method {cell.method!r} on {cell.label}"):
        synthetic = method.distill(pool, budget, cell.distill_seed, context)
    if not isinstance(synthetic, SyntheticSet):
        raise TypeError(f"method {cell.method!r} returned {type(synthetic).__name__}; "
                        f"distill() must return a SyntheticSet")
    distill_cost = cost.to_dict()
    # A method that reuses work done in an earlier cell (DiLM's trained generator) reports its
    # seconds as manifest "reused_work_s". They count in this cell's cost too, so every budget
    # shows what producing its set from scratch takes.
    reused = synthetic.manifest.get("reused_work_s")
    if isinstance(reused, (int, float)) and not isinstance(reused, bool) and reused > 0:
        distill_cost.update(wall_time_s=distill_cost["wall_time_s"] + float(reused), reused_work_s=float(reused))
    synthetic.manifest.update(task=cell.task, budget=cell.budget, budget_unit=task.budget_unit,
                              seed=cell.distill_seed, tier=cell.tier, distill_cost=distill_cost,
                              hyperparameters=method.get_params(), label_field=task.label_field)
    if cell.budget is not None:
        stats = check_set(synthetic, task, budget, cell.method, pool_class_sizes=pool_class_sizes(pool, task))
        synthetic.manifest["stats"] = dataclasses.asdict(stats)
    synthetic.save(set_dir)
    return synthetic, distill_cost, set_dir


def standard_view(synthetic: SyntheticSet) -> SyntheticSet:
    """The set as the standard track sees it: hard labels only, no extras."""
    if synthetic.form == "text":
        records = [{k: v for k, v in r.items() if k != SOFT_LABEL_KEY} for r in synthetic.records]
        return dataclasses.replace(synthetic, records=records, extras={})
    tensors = {k: v for k, v in synthetic.tensors.items() if k != "soft_labels"}
    return dataclasses.replace(synthetic, tensors=tensors, extras={})


# ---------------------------------------------------------------- records

def base_record(cell: Cell, run: Run, task: tasks.TaskSpec, method_cls: type[Distiller] | None,
                recipe_id: str, fingerprint: str) -> dict[str, Any]:
    return dict(
        suite=cell.suite, task=cell.task, task_family=task.family, main_score=task.main_score,
        method=cell.method, method_category=method_cls.category if method_cls else "unknown",
        budget=cell.budget, budget_unit=task.budget_unit, distill_seed=cell.distill_seed,
        learner=run.learner, recipe_id=recipe_id, train_seed=run.train_seed, track=run.track,
        protocol_version=PROTOCOL_VERSION,
        config=cell.config() | {"task_fingerprint": fingerprint},
        provenance=provenance() | {"dataset_fingerprint": fingerprint},
    )


def error_info(error: BaseException) -> dict[str, str]:
    tail = "".join(traceback.format_exception(error)).strip().splitlines()[-15:]
    return {"type": type(error).__name__, "message": str(error), "traceback_tail": "\n".join(tail)}


def set_summary(synthetic: SyntheticSet, set_dir: Path, method_cls: type[Distiller]) -> dict[str, Any]:
    stats = synthetic.manifest.get("stats", {})
    return {"hash": synthetic.content_hash(), "size": len(synthetic), "form": synthetic.form,
            "backbone": synthetic.backbone, "distill_backbone": (method_cls.requires or (None,))[0],
            "tokens": stats.get("tokens"), "bytes": stats.get("bytes"), "path": str(set_dir)}


def recipe_id_for(learner_name: str, tier: str) -> str:
    try:
        return learners.get(learner_name).recipe_for(tier).recipe_id
    except (KeyError, learners.NotApplicableError):
        return "unknown"


# ---------------------------------------------------------------- scoring

def score_run(cell: Cell, run: Run, synthetic: SyntheticSet, task: tasks.TaskSpec, test: Split,
              extra: dict[str, Split]) -> dict[str, Any]:
    """Train `run.learner` on the set and score it; returns the record fields that vary by outcome."""
    learner_cls = learners.get(run.learner)
    train_set = synthetic if run.track == "native" else standard_view(synthetic)
    reason = learner_cls.applicability(task, train_set)
    if reason:
        return {"status": "not_applicable", "reason": reason}
    learner = learner_cls(task, learner_cls.recipe_for(cell.tier))
    what = f"learner {run.learner!r} (train seed {run.train_seed}) on {cell.label}"
    with time_limit(cell.train_timeout_s, what):
        report = learner.fit(train_set, run.train_seed, full_data=cell.method == FULL_METHOD,
                             native=run.track == "native")
        scores = learner.evaluate(test)
        extra_scores = {name: learner.evaluate(split) for name, split in extra.items()}
    return {"status": "ok", "scores": scores, "extra_scores": extra_scores, "train_cost": report.to_dict()}


def scores_of_standard_twin(store: ResultStore, key: str, set_hash: str, recipe_id: str) -> dict[str, Any] | None:
    """Return the outcome fields of the standard-track record `key`, marked as reused.

    Returns None unless that record is ok and scored this very set with the same recipe and protocol.
    """
    record = store.load(key)
    if (record is None or record.status != "ok" or record.synthetic_set.get("hash") != set_hash
            or record.recipe_id != recipe_id or record.protocol_version != PROTOCOL_VERSION):
        return None
    return {"status": "ok", "scores": record.scores, "extra_scores": record.extra_scores,
            "train_cost": {**record.train_cost, "reused_from": key}}


def warn_if_config_changed(cell: Cell, stored: Iterable[dict | None]) -> None:
    """Log once per cell when kept records were computed with another configuration of the cell."""
    expected = json.loads(json.dumps(cell.config(), default=str))  # as stored: tuples become lists
    for data in stored:
        config = dict(data.get("config") or {}) if isinstance(data, dict) else {}
        config.pop("task_fingerprint", None)
        changed = sorted(k for k in expected if k in config and config[k] != expected[k])
        if changed:
            differences = ", ".join(f"{k} {config[k]!r} -> {expected[k]!r}" for k in changed[:4])
            logger.warning("%s: stored records were computed with another configuration (%s); they are kept. "
                           "Use --overwrite all or another --results-dir to run the new one", cell.label, differences)
            return


def run_cell(cell: Cell, results_dir: str, overwrite: Overwrite = "never") -> CellOutcome:
    """Distill and score one cell, writing each record as soon as it exists."""
    store = ResultStore(Path(results_dir), cell.suite)
    outcome = CellOutcome(cell.label)
    stored = {run: store.read(cell.record_key(run)) for run in cell.runs}
    statuses = {run: data.get("status") if isinstance(data, dict) else None for run, data in stored.items()}
    warn_if_config_changed(cell, stored.values())
    pending = [run for run in cell.runs if needs_run(statuses[run], overwrite)]
    pending.sort(key=lambda run: run.track != "standard")  # standard first, so native runs can reuse it
    outcome.skipped = len(cell.runs) - len(pending)
    outcome.skipped_failed = sum(1 for run in cell.runs if run not in pending and statuses[run] == "failed")
    if not pending:
        return outcome

    logger.info("cell %s start: %d runs to do, %d already recorded", cell.label, len(pending), outcome.skipped)
    task = tasks.get(cell.task)
    data: TaskData | None = None
    method_cls: type[Distiller] | None = None
    try:
        data = tasks.load(cell.task)
        pool, test, extra = cell_inputs(cell, data)
        method_cls = resolve_method(cell)
        synthetic, distill_cost, set_dir = obtain_set(cell, store, method_cls, pool, data)
    except Exception as error:  # missing data or a broken method fails its own cell only
        stage = "loading the task data" if data is None else "distillation"
        logger.error("%s: %s failed: %s: %s", cell.label, stage, type(error).__name__, error)
        fingerprint = data.fingerprint if data is not None else "unavailable"
        for run in pending:
            fields = base_record(cell, run, task, method_cls, recipe_id_for(run.learner, cell.tier), fingerprint)
            store.write(ResultRecord(**fields, status="failed", error=error_info(error)))
            outcome.failed += 1
        outcome.failures.append(f"{cell.label}: {type(error).__name__}: {error}")
        return outcome

    summary = set_summary(synthetic, set_dir, method_cls)
    contamination = audit(synthetic, data)
    # A set without soft labels or extras trains the same way under both tracks, so its native run
    # takes the scores of the standard run with the same learner and seed instead of training twice.
    same_on_both_tracks = summary["hash"] == standard_view(synthetic).content_hash()
    for run in pending:
        fields = base_record(cell, run, task, method_cls, recipe_id_for(run.learner, cell.tier), data.fingerprint)
        fields.update(synthetic_set=summary, distill_cost=distill_cost, contamination=contamination)
        twin = Run(run.learner, run.train_seed, "standard")
        try:
            if run.track == "native" and same_on_both_tracks and twin in cell.runs:
                fields.update(scores_of_standard_twin(store, cell.record_key(twin), summary["hash"],
                                                      fields["recipe_id"]) or
                              score_run(cell, run, synthetic, task, test, extra))
            else:
                fields.update(score_run(cell, run, synthetic, task, test, extra))
        except Exception as error:  # one learner's failure must not stop the others
            logger.error("%s: %s (seed %d, %s) failed: %s: %s", cell.label, run.learner, run.train_seed,
                         run.track, type(error).__name__, error)
            fields.update(status="failed", error=error_info(error))
            outcome.failures.append(f"{cell.label} {run.learner}: {type(error).__name__}: {error}")
        store.write(ResultRecord(**fields))
        status = fields["status"]
        if status == "ok":
            outcome.ok += 1
            outcome.scores[f"{run.learner}/t{run.train_seed}/{run.track}"] = fields["scores"][task.main_score]
        elif status == "failed":
            outcome.failed += 1
        else:
            outcome.not_applicable += 1
    return outcome
