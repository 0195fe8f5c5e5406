"""Score a text set produced outside the suite, next to the random baseline at the same budget.

The set is a JSON Lines file in the task's schema, or a folder of such files (several sets of one
method at one budget, e.g. several distillation seeds). `field_map` renames common variants
(`labels` to `label`, `text` to `sentence`). Rows are validated with errors naming file and line.
The budget is inferred from the per-class counts (the maximum over classes) or, for QA and
instruction tasks, from the number of rows. The learners, training seeds, pool and test caps come
from a suite, so the records land beside that suite's own and are comparable with them. They carry
method `submitted:<name>`, category "submitted" and the set's content hash.
"""

from __future__ import annotations

import json
import logging
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tasks
from benchmark import learners
from benchmark.budget import check_set
from benchmark.contamination import audit
from benchmark.harness.cell import (
    base_record,
    cell_inputs,
    error_info,
    needs_run,
    recipe_id_for,
    run_cell,
    score_run,
)
from benchmark.harness.grid import RANDOM_METHOD, Cell, Run
from benchmark.harness.records import ResultRecord
from benchmark.harness.store import ResultStore
from benchmark.harness.suite import Suite, load_suite
from benchmark.synthetic import SOFT_LABEL_KEY, SyntheticSet
from tasks.data import Record, TaskData
from tasks.spec import TaskSpec

logger = logging.getLogger(__name__)

SUBMITTED_PREFIX = "submitted:"
SUBMITTED_CATEGORY = "submitted"
SET_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SubmittedSetError(ValueError):
    """Raised when a submitted set file, its rows or the evaluation options are invalid."""


# ---------------------------------------------------------------- reading and validating rows

def parse_field_map(text: str | None) -> dict[str, str]:
    """Parse `source=target,...` (e.g. `labels=label,text=sentence`) into {source field: task field}."""
    mapping: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        source, sep, target = (part.strip() for part in item.partition("="))
        if not sep or not source or not target:
            raise SubmittedSetError(f"field map entry {item!r} is invalid; write SOURCE=TARGET pairs separated "
                                    f"by commas, e.g. labels=label,text=sentence")
        if source in mapping:
            raise SubmittedSetError(f"field map renames {source!r} twice; give each source field once")
        mapping[source] = target
    return mapping


def row_label(value: Any, task: TaskSpec, where: str) -> int:
    """Class id of a label given as an id or as one of the task's label names."""
    if isinstance(value, str) and value in task.label_names:
        return task.label_names.index(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SubmittedSetError(f"{where}: label {value!r} in field {task.label_field!r} must be a class id "
                                f"(0..{task.num_classes - 1}) or a label name {list(task.label_names)}")
    if not 0 <= value < task.num_classes:
        raise SubmittedSetError(f"{where}: label id {value} is out of range; task {task.name!r} has classes "
                                f"0..{task.num_classes - 1} ({', '.join(task.label_names)})")
    return value


def _check_soft_label(value: Any, task: TaskSpec, where: str) -> None:
    if not task.label_field:
        raise SubmittedSetError(f"{where}: task {task.name!r} has no classes, so rows cannot carry "
                                f"{SOFT_LABEL_KEY!r}; remove the field")
    valid = (isinstance(value, list) and len(value) == task.num_classes
             and all(isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and p >= 0
                     for p in value))
    if not valid or abs(math.fsum(value) - 1.0) > 1e-3:
        raise SubmittedSetError(f"{where}: {SOFT_LABEL_KEY!r} must be a list of {task.num_classes} "
                                f"non-negative probabilities summing to 1, got {value!r:.80}")


def convert_row(raw: dict[str, Any], task: TaskSpec, field_map: dict[str, str], where: str,
                dropped: Counter) -> Record:
    """Rename, check and reduce one row to the task's schema (plus an optional soft label)."""
    row = dict(raw)
    for source, target in field_map.items():
        if source not in row:
            continue
        if target in row and target != source:
            raise SubmittedSetError(f"{where}: the row has both {source!r} and {target!r}, so the field map "
                                    f"{source}={target} is ambiguous; remove one of them")
        row[target] = row.pop(source)

    missing = [name for name in task.schema_fields if name not in row]
    if missing:
        raise SubmittedSetError(f"{where}: missing field(s) {missing}; fields present: {sorted(row)}. "
                                f"Task {task.name!r} needs {list(task.schema_fields)}; rename variants with "
                                f"--field-map, e.g. labels=label,text={task.input_fields[0]}")
    record: Record = {}
    for name in task.input_fields:
        value = row[name]
        if not isinstance(value, str):
            raise SubmittedSetError(f"{where}: field {name!r} must be a string, got {type(value).__name__} "
                                    f"{value!r:.60}")
        record[name] = value
    if not "".join(record.values()).strip():
        raise SubmittedSetError(f"{where}: the input fields {list(task.input_fields)} are all empty")
    if task.label_field:
        record[task.label_field] = row_label(row[task.label_field], task, where)
    if task.target_field:
        target = row[task.target_field]
        expected = dict if task.family == "qa" else str
        if not isinstance(target, expected):
            raise SubmittedSetError(f"{where}: field {task.target_field!r} must be a {expected.__name__}, "
                                    f"got {type(target).__name__}")
        record[task.target_field] = target
    if SOFT_LABEL_KEY in row:
        _check_soft_label(row[SOFT_LABEL_KEY], task, where)
        record[SOFT_LABEL_KEY] = row[SOFT_LABEL_KEY]
    dropped.update(name for name in row if name not in record)
    return record


def read_set_file(path: Path, task: TaskSpec, field_map: dict[str, str]) -> list[Record]:
    """Read one JSON Lines set; every problem raises SubmittedSetError naming the file and line."""
    records = []
    dropped: Counter = Counter()
    data = path.read_bytes()
    try:
        # Split on newlines only: str.splitlines would also cut at U+2028 inside a JSON string.
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise SubmittedSetError(f"{path}:{line}: not UTF-8 text (byte {error.object[error.start]:#04x}); "
                                f"save the file as UTF-8") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as error:
            raise SubmittedSetError(f"{where}: invalid JSON ({error.msg} at column {error.colno}); "
                                    f"write one JSON object per line") from None
        if not isinstance(raw, dict):
            raise SubmittedSetError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        records.append(convert_row(raw, task, field_map, where, dropped))
    if not records:
        raise SubmittedSetError(f"{path}: the file contains no rows; a submitted set needs at least one example")
    if dropped:
        logger.warning("%s: ignored field(s) outside the schema of task %s: %s", path, task.name,
                       ", ".join(f"{name} ({count} rows)" for name, count in sorted(dropped.items())))
    return records


def set_files(path: Path) -> list[Path]:
    """Return the JSON Lines files of a submission: `path` itself, or the sorted `*.jsonl` files of a folder."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.glob("*.jsonl") if p.is_file())
        if not files:
            raise SubmittedSetError(f"{path}: the folder contains no *.jsonl files; pass a JSON Lines file or a "
                                    f"folder of them")
        return files
    raise SubmittedSetError(f"{path}: no such file or folder; pass the path of a JSON Lines set")


# ---------------------------------------------------------------- budget

def infer_budget(records: list[Record], task: TaskSpec) -> int:
    """Per-class budgets: the largest class count; total budgets: the number of rows."""
    if task.budget_unit == "total":
        return len(records)
    counts = Counter(record[task.label_field] for record in records)
    return max(counts.values())


@dataclass
class SubmittedSet:
    """One submitted file: the text set built from it and the budget it is scored at."""

    path: Path
    synthetic: SyntheticSet
    budget: int
    stats: dict[str, Any]


def load_submission(path: Path, task: TaskSpec, name: str, field_map: dict[str, str],
                    budget: int | None = None) -> list[SubmittedSet]:
    """Read and check every set of a submission; all files must share one budget."""
    method = f"{SUBMITTED_PREFIX}{name}"
    submitted = []
    for file in set_files(Path(path)):
        records = read_set_file(file, task, field_map)
        inferred = infer_budget(records, task)
        if budget is not None and inferred > budget:
            raise SubmittedSetError(f"{file}: the set contains {inferred} examples "
                                    f"{'per class' if task.budget_unit == 'per_class' else 'in total'}, over "
                                    f"--budget {budget}; sets are rejected, never truncated")
        synthetic = SyntheticSet(task=task.name, method=method, form="text", records=records,
                                 manifest={"label_field": task.label_field, "source_file": file.name,
                                           "field_map": field_map})
        stats = check_set(synthetic, task, None, method)
        _warn_uneven(file, stats.class_counts, budget or inferred, task)
        submitted.append(SubmittedSet(file, synthetic, budget or inferred, stats.to_dict()))

    budgets = {s.budget for s in submitted}
    if len(budgets) > 1:
        shown = ", ".join(f"{s.path.name}: {s.budget}" for s in submitted)
        raise SubmittedSetError(f"{path}: the sets have different budgets ({shown}); a folder must hold sets of "
                                f"one budget, so evaluate each budget's sets separately or pass --budget")
    return submitted


def _warn_uneven(file: Path, counts: dict[int, int], budget: int, task: TaskSpec) -> None:
    if task.budget_unit != "per_class":
        return
    short = {task.label_names[label]: count for label, count in counts.items() if count < budget}
    if short:
        logger.warning("%s: scored at %d per class, but class(es) %s hold fewer examples", file, budget, short)


# ---------------------------------------------------------------- the evaluation

@dataclass(frozen=True)
class EvaluationPlan:
    """Protocol of one evaluation: the suite's settings for the task, with the caller's overrides."""

    suite: Suite
    learners: tuple[str, ...]
    train_seeds: tuple[int, ...]
    random_draws: tuple[int, ...]


def make_plan(suite_name: str, task: TaskSpec, learner_names: tuple[str, ...] | None,
              train_seeds: tuple[int, ...] | None, random_draws: tuple[int, ...] | None) -> EvaluationPlan:
    """Resolve and check the learners and seeds before any training starts."""
    suite = load_suite(suite_name).for_task(task.name)
    names = tuple(learner_names or suite.learners)
    for name in names:
        learner = learners.get(name)
        if suite.tier not in learner.recipes:
            raise SubmittedSetError(f"learner {name!r} has no {suite.tier!r} recipe (suite {suite.name!r}); "
                                    f"it has {sorted(learner.recipes)}")
        if task.family not in learner.families:
            raise SubmittedSetError(f"learner {name!r} handles {list(learner.families)}, not task {task.name!r} "
                                    f"of family {task.family!r}; choose another with --learners")
    draws = tuple(random_draws or suite.random_seeds or suite.distill_seeds)
    return EvaluationPlan(suite, names, tuple(train_seeds or suite.train_seeds), draws)


@dataclass
class EvaluationSummary:
    """What one evaluation wrote: record counts, the sets' hashes and main scores of both methods."""

    method: str
    task: str
    budget: int
    budget_unit: str
    suite: str
    main_score: str
    set_hashes: list[str] = field(default_factory=list)
    contamination_flagged: list[bool] = field(default_factory=list)
    written: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    # learner -> method ("submitted" or "random") -> main scores of every ok run
    scores: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add_score(self, learner: str, which: str, value: float) -> None:
        self.scores.setdefault(learner, {}).setdefault(which, []).append(value)

    def table(self) -> list[tuple[str, str, str]]:
        """Rows (learner, submitted mean, random mean +- std) of the main score."""
        rows = []
        for learner, by_method in sorted(self.scores.items()):
            rows.append((learner, _mean_text(by_method.get("submitted", [])),
                         _mean_text(by_method.get("random", []))))
        return rows


def _mean_text(values: list[float]) -> str:
    if not values:
        return "n/a"
    spread = f" +- {statistics.stdev(values):.3f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.3f}{spread} (n={len(values)})"


def make_cell(plan: EvaluationPlan, task: TaskSpec, method: str, budget: int, seed: int,
              method_params: tuple[tuple[str, Any], ...] = ()) -> Cell:
    suite = plan.suite
    runs = tuple(Run(learner, train_seed, "standard") for learner in plan.learners
                 for train_seed in plan.train_seeds)
    return Cell(suite=suite.name, tier=suite.tier, task=task.name, method=method, budget=budget,
                distill_seed=seed, runs=runs, pool_limit=suite.pool_limit, test_limit=suite.test_limit,
                extra_eval_limit=suite.extra_eval_limit, distill_timeout_s=suite.distill_timeout_s,
                train_timeout_s=suite.train_timeout_s, method_params=method_params)


def score_submitted(cell: Cell, submitted: SubmittedSet, data: TaskData, store: ResultStore,
                    contamination: dict[str, Any], overwrite: str, summary: EvaluationSummary) -> None:
    """Train and score every run of the cell on the submitted set, writing one record per run."""
    synthetic = submitted.synthetic
    set_hash = synthetic.content_hash()
    set_dir = store.set_dir(cell.task, cell.method, set_hash[:20])
    if not (set_dir / "manifest.json").exists():
        synthetic.save(set_dir)
    set_summary = {"hash": set_hash, "size": len(synthetic), "form": "text", "backbone": None,
                   "distill_backbone": None, "tokens": submitted.stats["tokens"],
                   "bytes": submitted.stats["bytes"], "path": str(set_dir), "source": str(submitted.path)}
    _, test, extra = cell_inputs(cell, data)
    task = data.task
    for run in cell.runs:
        if not needs_run(store.status(cell.record_key(run)), overwrite):
            summary.skipped += 1
            continue
        fields = base_record(cell, run, task, None, recipe_id_for(run.learner, cell.tier), data.fingerprint)
        fields.update(method_category=SUBMITTED_CATEGORY, synthetic_set=set_summary, distill_cost={},
                      contamination=contamination)
        try:
            fields.update(score_run(cell, run, synthetic, task, test, extra))
        except Exception as error:  # one learner's failure must not stop the others, as in run_cell
            logger.error("%s: %s (seed %d) failed: %s: %s", cell.label, run.learner, run.train_seed,
                         type(error).__name__, error)
            fields.update(status="failed", error=error_info(error))
            summary.failures.append(f"{cell.label} {run.learner}: {type(error).__name__}: {error}")
        store.write(ResultRecord(**fields))
        if fields["status"] == "failed":
            summary.failed += 1
        else:
            summary.written += 1


def collect_scores(store: ResultStore, cells: list[Cell], which: str, summary: EvaluationSummary) -> None:
    for cell in cells:
        for run in cell.runs:
            path = store.record_path(cell.record_key(run))
            if not path.exists():
                continue
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("status") == "ok":
                summary.add_score(run.learner, which, record["scores"][summary.main_score])


def evaluate_set(path: Path, task_name: str, *, name: str | None = None, field_map: dict[str, str] | None = None,
                 suite: str = "quick", learner_names: tuple[str, ...] | None = None,
                 train_seeds: tuple[int, ...] | None = None, random_draws: tuple[int, ...] | None = None,
                 budget: int | None = None, results_dir: Path = Path("results"),
                 overwrite: str = "never") -> EvaluationSummary:
    """Score the set(s) at `path` for `task_name` and the random baseline at the same budget.

    Records go to `<results_dir>/<suite>/records/`; runs already recorded are skipped unless
    `overwrite` is "failed" or "all". Only the standard track (hard labels) is scored.
    """
    path = Path(path)
    name = name or (path.stem if path.is_file() else path.name)
    if not SET_NAME_PATTERN.match(name):
        raise SubmittedSetError(f"set name {name!r} is invalid; use letters, digits, '.', '_' and '-' "
                                f"(pass --name)")
    if budget is not None and budget < 1:
        raise SubmittedSetError(f"--budget {budget} is invalid; pass a positive number of examples")
    if overwrite not in ("never", "failed", "all"):
        raise SubmittedSetError(f"overwrite {overwrite!r} is invalid; use never, failed or all")
    task = tasks.get(task_name)
    plan = make_plan(suite, task, learner_names, train_seeds, random_draws)
    submitted = load_submission(path, task, name, field_map or {}, budget)
    set_budget = submitted[0].budget

    method = f"{SUBMITTED_PREFIX}{name}"
    summary = EvaluationSummary(method=method, task=task.name, budget=set_budget, budget_unit=task.budget_unit,
                                suite=plan.suite.name, main_score=task.main_score)
    logger.info("evaluating %d set(s) of %s on %s at budget %d (%s), learners %s, train seeds %s",
                len(submitted), method, task.name, set_budget, task.budget_unit, list(plan.learners),
                list(plan.train_seeds))
    data = tasks.load(task.name)
    store = ResultStore(Path(results_dir), plan.suite.name)

    submitted_cells = []
    for seed, item in enumerate(submitted):
        # NOTE: the native track (soft labels of the rows) is not scored for submitted sets yet.
        contamination = audit(item.synthetic, data)
        summary.set_hashes.append(item.synthetic.content_hash())
        summary.contamination_flagged.append(bool(contamination["flagged"]))
        mapped = ",".join(f"{source}={target}" for source, target in sorted((field_map or {}).items()))
        params = (("field_map", mapped), ("source_file", item.path.name))
        cell = make_cell(plan, task, method, set_budget, seed, params)
        submitted_cells.append(cell)
        score_submitted(cell, item, data, store, contamination, overwrite, summary)

    random_cells = [make_cell(plan, task, RANDOM_METHOD, set_budget, seed) for seed in plan.random_draws]
    for cell in random_cells:
        outcome = run_cell(cell, str(results_dir), overwrite)
        summary.written += outcome.ok + outcome.not_applicable
        summary.failed += outcome.failed
        summary.skipped += outcome.skipped
        summary.failures += outcome.failures

    collect_scores(store, submitted_cells, "submitted", summary)
    collect_scores(store, random_cells, "random", summary)
    logger.info("evaluated %s: %d records written, %d failed, %d already recorded", method, summary.written,
                summary.failed, summary.skipped)
    return summary
