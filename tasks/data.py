"""Load a task's splits from a local mirror or the Hugging Face Hub, validate them and carve roles."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tasks.spec import SplitRule, TaskSpec

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "TDDBENCH_DATA_DIR"

Record = dict[str, Any]


class DataError(ValueError):
    """Raised when a data file or record is malformed."""


class MissingDataError(FileNotFoundError):
    """Raised when a split a task needs is not available."""


def data_dir_from_env() -> Path | None:
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value) if value else None


@dataclass(frozen=True)
class Split:
    """Rows of one split, with where they came from and a content fingerprint."""

    name: str
    records: tuple[Record, ...]
    origin: str

    def __len__(self) -> int:
        return len(self.records)

    @property
    def fingerprint(self) -> str:
        return fingerprint_records(self.records)


def fingerprint_records(records: Sequence[Record]) -> str:
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass
class ValidationReport:
    """Counts gathered while loading a task, shown by `tddbench data check`."""

    rows: dict[str, int] = field(default_factory=dict)
    empty_texts: dict[str, int] = field(default_factory=dict)
    dropped_unlabelled: dict[str, int] = field(default_factory=dict)
    label_counts: dict[str, dict[int, int]] = field(default_factory=dict)
    pool_test_duplicates: int = 0


@dataclass(frozen=True)
class TaskData:
    """The three roles of one task. Only `pool` may be handed to a distiller."""

    task: TaskSpec
    pool: Split
    dev: Split
    test: Split
    extra: dict[str, Split]
    report: ValidationReport

    @property
    def fingerprint(self) -> str:
        """Hash of the task's canonical content: its split rules and every role's rows."""
        parts = [self.task.name, repr(sorted(self.task.splits.items()))]
        parts += [self.pool.fingerprint, self.dev.fingerprint, self.test.fingerprint]
        parts += [f"{name}:{split.fingerprint}" for name, split in sorted(self.extra.items())]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


# ---------------------------------------------------------------- reading files

def read_jsonl(path: Path) -> list[Record]:
    """Read a JSON Lines file (optionally gzip-compressed); a bad line raises with file and line."""
    opener = gzip.open if path.suffix == ".gz" else open
    records = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: invalid JSON ({error.msg} at column {error.colno}); "
                                f"fix or remove this line") from None
            if not isinstance(value, dict):
                raise DataError(f"{path}:{number}: expected a JSON object per line, got {type(value).__name__}")
            records.append(value)
    if not records:
        raise DataError(f"{path}: the file is empty; restore it from the dataset source or remove it")
    return records


def mirror_file(data_dir: Path, folder: str, split: str) -> Path | None:
    for suffix in (".jsonl", ".jsonl.gz"):
        path = data_dir / folder / f"{split}{suffix}"
        if path.exists():
            return path
    return None


def load_source_split(task_name: str, data_dir: Path | None, folder: str, split: str, hf_path: str,
                      hf_config: str | None, hf_revision: str) -> tuple[list[Record], str]:
    """Return the rows of one source split and a description of where they were read."""
    if data_dir is not None:
        path = mirror_file(data_dir, folder, split)
        if path is None:
            raise MissingDataError(
                f"task {task_name!r}: split {split!r} is missing from the local mirror: expected "
                f"{data_dir / folder / split}.jsonl or .jsonl.gz. Add that file (Hugging Face field "
                f"names, one JSON object per line), unset {DATA_DIR_ENV} to load {hf_path!r} from the "
                f"Hub, or use an offline variant of the task if one is defined")
        return read_jsonl(path), str(path)
    return _load_from_hub(task_name, split, hf_path, hf_config, hf_revision)


def _load_from_hub(task_name: str, split: str, hf_path: str, hf_config: str | None,
                   hf_revision: str) -> tuple[list[Record], str]:
    import datasets

    try:
        dataset = datasets.load_dataset(hf_path, hf_config, split=split, revision=hf_revision)
    except (ConnectionError, OSError, ValueError) as error:
        raise MissingDataError(
            f"task {task_name!r}: could not load split {split!r} of {hf_path!r} "
            f"(config {hf_config!r}, revision {hf_revision!r}) from the Hugging Face Hub: {error}. "
            f"Offline, set {DATA_DIR_ENV} to a local mirror folder") from None
    return [dict(row) for row in dataset], f"hf://{hf_path}/{hf_config or ''}@{hf_revision}:{split}"


# ---------------------------------------------------------------- validation

def joined_text(task: TaskSpec, record: Record) -> str:
    """The record's input fields joined by a newline: the text a model or hash sees."""
    return "\n".join(str(record.get(name, "")) for name in task.input_fields)


def _expected_types(task: TaskSpec) -> dict[str, tuple[type, ...]]:
    types: dict[str, tuple[type, ...]] = {name: (str,) for name in task.input_fields}
    if task.label_field:
        types[task.label_field] = (int,)
    if task.target_field:
        types[task.target_field] = (dict,) if task.family == "qa" else (str,)
    return types


def validate_records(task: TaskSpec, records: list[Record], origin: str,
                     report: ValidationReport, split_name: str) -> list[Record]:
    """Check fields, types and label range; drop unlabelled rows where the task allows it."""
    kept = []
    dropped = empty = 0
    for number, record in enumerate(records, start=1):
        where = f"{origin}: row {number}"
        for name, types in _expected_types(task).items():
            if name not in record:
                raise DataError(f"{where}: required field {name!r} is missing; fields present: "
                                f"{sorted(record)}. Task {task.name!r} needs {list(task.schema_fields)}")
            value = record[name]
            if isinstance(value, bool) or not isinstance(value, types):
                raise DataError(f"{where}: field {name!r} must be {types[0].__name__}, "
                                f"got {type(value).__name__} {value!r:.60}")
        if task.label_field:
            label = record[task.label_field]
            if task.unlabelled_label is not None and label == task.unlabelled_label:
                dropped += 1
                continue
            if not 0 <= label < task.num_classes:
                raise DataError(f"{where}: label {label} in field {task.label_field!r} is out of range; "
                                f"task {task.name!r} has {task.num_classes} classes "
                                f"(0..{task.num_classes - 1}: {', '.join(task.label_names)})")
        if task.family == "qa":
            _check_answers(record[task.target_field], record, where)
        if not joined_text(task, record).strip():
            empty += 1
        kept.append(record)
    report.empty_texts[split_name] = report.empty_texts.get(split_name, 0) + empty
    if dropped:
        report.dropped_unlabelled[split_name] = dropped
        logger.warning("%s: dropped %d unlabelled rows (label %s)", origin, dropped, task.unlabelled_label)
    return kept


def _check_answers(answers: dict, record: Record, where: str) -> None:
    texts, starts = answers.get("text"), answers.get("answer_start")
    if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
        raise DataError(f"{where}: field 'answers' must hold equal-length lists 'text' and "
                        f"'answer_start', got {answers!r:.80}")


# ---------------------------------------------------------------- carving

def carve(records: list[Record], rule: SplitRule, task: TaskSpec) -> tuple[list[Record], list[Record]]:
    """Split `records` into (kept, carved) by `rule`; deterministic for the rule's seed."""
    rng = np.random.default_rng(rule.seed)
    if rule.group_by:
        groups = sorted({str(r[rule.group_by]) for r in records})
        order = rng.permutation(len(groups))
        wanted = rule.size if rule.size is not None else round(rule.fraction * len(groups))
        chosen = {groups[i] for i in order[:wanted]}
        carved = [r for r in records if str(r[rule.group_by]) in chosen]
        kept = [r for r in records if str(r[rule.group_by]) not in chosen]
        return kept, carved

    wanted = rule.size if rule.size is not None else round(rule.fraction * len(records))
    if wanted >= len(records):
        raise DataError(f"task {task.name!r}: cannot carve {wanted} rows from {len(records)}; "
                        f"lower 'size' or 'fraction' in the task definition")
    if rule.stratify and task.label_field:
        chosen = _stratified_indices(records, task.label_field, wanted, rng)
    else:
        chosen = set(rng.permutation(len(records))[:wanted].tolist())
    kept = [r for i, r in enumerate(records) if i not in chosen]
    carved = [r for i, r in enumerate(records) if i in chosen]
    return kept, carved


def _stratified_indices(records: list[Record], label_field: str, wanted: int,
                        rng: np.random.Generator) -> set[int]:
    """Pick `wanted` indices with class shares as in `records` (largest-remainder rounding)."""
    labels = np.array([r[label_field] for r in records])
    shuffled = rng.permutation(len(records))
    classes = np.unique(labels)
    by_class = {c: shuffled[labels[shuffled] == c] for c in classes}
    exact = {c: wanted * len(by_class[c]) / len(records) for c in classes}
    quota = {c: int(exact[c]) for c in classes}
    by_remainder = sorted(classes, key=lambda c: (-(exact[c] - quota[c]), c))
    for c in by_remainder[: wanted - sum(quota.values())]:
        quota[c] += 1
    return {int(i) for c in classes for i in by_class[c][: quota[c]]}


# ---------------------------------------------------------------- transforms

def _self_instruct_first_instance(record: Record) -> Record:
    instance = (record.get("instances") or [{}])[0]
    return {"instruction": record["instruction"], "input": instance.get("input", ""),
            "output": instance.get("output", "")}


def _fill_missing_input(record: Record) -> Record:
    return {"input": "", **record}


TRANSFORMS: dict[str, Callable[[Record], Record]] = {
    "self_instruct_first_instance": _self_instruct_first_instance,
}


# ---------------------------------------------------------------- loading a task

def load_task_data(task: TaskSpec, data_dir: Path | None = None) -> TaskData:
    """Load, validate and carve all roles of `task`; raises MissingDataError or DataError."""
    data_dir = data_dir if data_dir is not None else data_dir_from_env()
    report = ValidationReport()
    roles: dict[str, list[Record]] = {}
    origins: dict[str, str] = {}

    for role, rule in task.splits.items():
        if rule.source is None:
            continue
        rows, origin = load_source_split(task.name, data_dir, task.mirror, rule.source, task.hf_path,
                                         task.hf_config, task.hf_revision)
        roles[role] = validate_records(task, rows, origin, report, role)
        origins[role] = origin

    for role, rule in task.splits.items():
        if rule.carve_from is None:
            continue
        parent = rule.carve_from
        roles[parent], roles[role] = carve(roles[parent], rule, task)
        origins[role] = f"{rule.describe()} of {origins[parent]}"

    extra = {}
    for name, spec in task.extra_eval.items():
        rows, origin = load_source_split(name, data_dir, spec.mirror, spec.split, spec.hf_path,
                                         spec.hf_config, spec.hf_revision)
        transform = TRANSFORMS[spec.transform] if spec.transform else _fill_missing_input
        rows = [transform(row) for row in rows][: spec.limit]
        extra[name] = Split(name, tuple(validate_records(task, rows, origin, report, name)), origin)

    splits = {role: Split(role, tuple(rows), origins[role]) for role, rows in roles.items()}
    for role, split in splits.items():
        report.rows[role] = len(split)
        if task.label_field:
            counts = Counter(r[task.label_field] for r in split.records)
            report.label_counts[role] = dict(sorted(counts.items()))
    pool_texts = {joined_text(task, r) for r in splits["pool"].records}
    report.pool_test_duplicates = sum(joined_text(task, r) in pool_texts for r in splits["test"].records)
    if report.pool_test_duplicates:
        logger.info("task %s: %d test rows also appear in the pool", task.name, report.pool_test_duplicates)
    return TaskData(task, splits["pool"], splits["dev"], splits["test"], extra, report)
