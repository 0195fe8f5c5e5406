"""The budget check: every synthetic set is validated against its task and budget before training.

A set over its budget is rejected, never truncated. A valid set gets SetStats: its size in
examples, per class, in whitespace tokens and in bytes, so methods can also be compared by size.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from benchmark.backbones import BACKBONES
from benchmark.synthetic import SOFT_LABEL_KEY, SyntheticSet
from methods.base import Budget
from tasks.spec import TaskSpec

logger = logging.getLogger(__name__)

# A soft label is a probability distribution; this absorbs float32 rounding in its sum.
SOFT_LABEL_SUM_TOLERANCE = 1e-3


class BudgetError(ValueError):
    """Raised when a synthetic set breaks its budget or is not a valid set for its task."""


@dataclass(frozen=True)
class SetStats:
    """Size of a checked set: examples, examples per class id, whitespace tokens and bytes.

    `tokens` counts whitespace-separated tokens of the input fields (text sets) or n x L token
    vectors (embedding sets, L = 1 for sentence-level inputs). `bytes` is the UTF-8 size of the
    records as JSON Lines plus the size of every tensor and extra.
    """

    examples: int
    class_counts: dict[int, int] = field(default_factory=dict)
    tokens: int = 0
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_set(synthetic: SyntheticSet, task: TaskSpec, budget: Budget | None, method: str, *,
              pool_class_sizes: Mapping[int, int] | None = None) -> SetStats:
    """Validate `synthetic` for `task` and `budget` and return its size; raises BudgetError.

    Per-class budgets need exactly `budget.value` examples of every class. A class may hold fewer
    when the task sets `allow_small_classes`, or when its pool class is smaller than the budget
    (pass `pool_class_sizes`, e.g. `TaskData.report.label_counts["pool"]`); then it must hold the
    whole pool class. A total budget is an upper bound. `budget=None` (the full-data reference)
    checks the records and computes the size without any count limit.
    """
    prefix = f"method {method!r} on task {task.name!r}"
    if budget is not None and budget.unit != task.budget_unit:
        raise BudgetError(f"{prefix}: budget {budget} does not fit the task, whose budgets count examples "
                          f"{_unit_words(task.budget_unit)}; pass Budget({budget.value}, {task.budget_unit!r})")
    if len(synthetic) == 0:
        raise BudgetError(f"{prefix}: the synthetic set is empty; a method must return at least one example")

    if synthetic.form == "text":
        _check_records(synthetic.records, task, prefix)
        labels = [record[task.label_field] for record in synthetic.records] if task.label_field else []
    else:
        _check_tensors(synthetic, task, prefix)
        labels = [int(v) for v in synthetic.tensors["labels"].tolist()]
    _check_tensor_values(synthetic.extras, "extra", prefix)

    counts = {label: 0 for label in range(task.num_classes)}
    for label in labels:
        counts[label] += 1
    if budget is not None:
        _check_counts(len(synthetic), counts, task, budget, prefix, pool_class_sizes)

    stats = SetStats(examples=len(synthetic), class_counts=counts, tokens=_count_tokens(synthetic, task),
                     bytes=_count_bytes(synthetic))
    logger.debug("%s: set passes budget %s: %s", prefix, budget, stats)
    return stats


# ---------------------------------------------------------------- counts

def _check_counts(size: int, counts: dict[int, int], task: TaskSpec, budget: Budget, prefix: str,
                  pool_class_sizes: Mapping[int, int] | None) -> None:
    if budget.unit == "total":
        if size > budget.value:
            raise BudgetError(f"{prefix}: the set has {size} examples, over the budget of {budget}; "
                              f"return at most {budget.value} (sets are rejected, never truncated)")
        return

    for label, count in counts.items():
        name = f"class {task.label_names[label]!r} (id {label})"
        if count > budget.value:
            raise BudgetError(f"{prefix}: {name} has {count} examples, over the budget of {budget}; "
                              f"return at most {budget.value} per class (sets are rejected, never truncated)")
        required = budget.value
        if pool_class_sizes is not None:
            required = min(required, int(pool_class_sizes.get(label, 0)))
        if count < required and not task.allow_small_classes:
            raise BudgetError(f"{prefix}: {name} has {count} examples, under the budget of {budget} "
                              f"(the pool allows {required}); return exactly {required} for this class, "
                              f"or set allow_small_classes in the task definition")


def _unit_words(unit: str) -> str:
    return "per class" if unit == "per_class" else "in total"


# ---------------------------------------------------------------- text sets

def optional_input_fields(task: TaskSpec) -> tuple[str, ...]:
    """Input fields that may be empty: the context field of an instruction task (Alpaca's 'input')."""
    # NOTE: instruction records put the instruction in the first input field. The context field
    # after it is empty in about 60% of Alpaca rows, so only that family has optional fields.
    return task.input_fields[1:] if task.family == "instruction" else ()


def _check_records(records: Sequence[Any], task: TaskSpec, prefix: str) -> None:
    optional = optional_input_fields(task)
    for index, record in enumerate(records):
        where = f"{prefix}: records[{index}]"
        if not isinstance(record, dict):
            raise BudgetError(f"{where} is a {type(record).__name__}, expected a dict in the task's schema "
                              f"{list(task.schema_fields)}")
        missing = [name for name in task.schema_fields if name not in record]
        if missing:
            raise BudgetError(f"{where} lacks field(s) {missing}; fields present: {sorted(record)}. "
                              f"Records of task {task.name!r} need {list(task.schema_fields)}")
        for name in task.input_fields:
            value = record[name]
            if not isinstance(value, str):
                raise BudgetError(f"{where}: input field {name!r} must be a string, got {type(value).__name__} "
                                  f"{value!r:.60}")
            if not value.strip() and name not in optional:
                raise BudgetError(f"{where}: input field {name!r} is empty or whitespace-only; "
                                  f"every input field must hold text")
        if task.label_field:
            _check_label(record[task.label_field], task, f"{where}: field {task.label_field!r}")
        _check_target(record, task, where)
        if SOFT_LABEL_KEY in record:
            _check_soft_label(record[SOFT_LABEL_KEY], task, f"{where}: {SOFT_LABEL_KEY!r}")


def _check_label(label: Any, task: TaskSpec, where: str) -> None:
    if isinstance(label, bool) or not isinstance(label, int):
        raise BudgetError(f"{where}: label {label!r} must be an integer class id, got {type(label).__name__}")
    if not 0 <= label < task.num_classes:
        raise BudgetError(f"{where}: label id {label} is out of range; task {task.name!r} has "
                          f"{task.num_classes} classes (0..{task.num_classes - 1}: {', '.join(task.label_names)})")


def _check_target(record: dict[str, Any], task: TaskSpec, where: str) -> None:
    if not task.target_field:
        return
    target = record[task.target_field]
    if task.family == "qa":
        texts = target.get("text") if isinstance(target, dict) else None
        starts = target.get("answer_start") if isinstance(target, dict) else None
        if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
            raise BudgetError(f"{where}: field {task.target_field!r} must be a dict of equal-length lists "
                              f"'text' and 'answer_start', got {target!r:.80}")
    elif not isinstance(target, str):
        raise BudgetError(f"{where}: field {task.target_field!r} must be a string, got {type(target).__name__}")


def _check_soft_label(soft_label: Any, task: TaskSpec, where: str) -> None:
    if not task.label_field:
        raise BudgetError(f"{where}: task {task.name!r} has no classes, so records cannot carry soft labels")
    if not isinstance(soft_label, list) or len(soft_label) != task.num_classes:
        length = len(soft_label) if isinstance(soft_label, list) else type(soft_label).__name__
        raise BudgetError(f"{where}: soft label must be a list of {task.num_classes} probabilities "
                          f"(one per class), got {length}")
    if not all(isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and p >= 0
               for p in soft_label):
        raise BudgetError(f"{where}: soft label {soft_label} must contain finite, non-negative numbers")
    total = math.fsum(soft_label)
    if abs(total - 1.0) > SOFT_LABEL_SUM_TOLERANCE:
        raise BudgetError(f"{where}: soft label sums to {total:.6g}, not 1; store probabilities, "
                          f"e.g. a softmax of the logits")


# ---------------------------------------------------------------- embedding sets

def _check_tensors(synthetic: SyntheticSet, task: TaskSpec, prefix: str) -> None:
    tensors = synthetic.tensors
    if not task.label_field:
        raise BudgetError(f"{prefix}: embedding sets need class labels, and task {task.name!r} "
                          f"({task.family}) has none; return a text set")
    inputs, labels = tensors["inputs"], tensors["labels"]
    if inputs.dim() not in (2, 3) or not inputs.is_floating_point():
        raise BudgetError(f"{prefix}: tensor 'inputs' must be a float tensor [n, L, d] or [n, d], got "
                          f"{inputs.dtype} of shape {list(inputs.shape)}")
    size = inputs.shape[0]
    if labels.dim() != 1 or labels.shape[0] != size or labels.is_floating_point() or labels.dtype == torch.bool:
        raise BudgetError(f"{prefix}: tensor 'labels' must be an integer tensor [{size}] (one class id per "
                          f"input), got {labels.dtype} of shape {list(labels.shape)}")
    for index, label in enumerate(labels.tolist()):
        _check_label(label, task, f"{prefix}: labels[{index}]")

    for name, tensor in tensors.items():
        if tensor.dim() == 0 or tensor.shape[0] != size:
            raise BudgetError(f"{prefix}: tensor {name!r} has shape {list(tensor.shape)}; every tensor of a "
                              f"set must have one row per example ([{size}, ...])")
    _check_attention_mask(tensors, prefix)
    _check_hidden_size(synthetic, prefix)
    if "soft_labels" in tensors:
        _check_soft_labels(tensors["soft_labels"], task, prefix)
    _check_tensor_values(tensors, "tensor", prefix)


def _check_attention_mask(tensors: dict[str, torch.Tensor], prefix: str) -> None:
    inputs, mask = tensors["inputs"], tensors.get("attention_mask")
    if inputs.dim() == 2:
        if mask is not None:
            raise BudgetError(f"{prefix}: sentence-level inputs {list(inputs.shape)} take no attention_mask; "
                              f"drop it, or store token-level inputs [n, L, d]")
        return
    if mask is None:
        raise BudgetError(f"{prefix}: token-level inputs {list(inputs.shape)} need tensor 'attention_mask' "
                          f"[n, L] (1 for a token, 0 for padding)")
    if tuple(mask.shape) != tuple(inputs.shape[:2]):
        raise BudgetError(f"{prefix}: attention_mask has shape {list(mask.shape)}, expected "
                          f"{list(inputs.shape[:2])} to match inputs {list(inputs.shape)}")
    empty = torch.nonzero(mask.reshape(mask.shape[0], -1).sum(dim=1) == 0).flatten().tolist()
    if empty:
        raise BudgetError(f"{prefix}: example(s) {empty[:10]} have an all-zero attention_mask, which is an "
                          f"empty text; every example needs at least one token")


def _check_hidden_size(synthetic: SyntheticSet, prefix: str) -> None:
    if synthetic.backbone not in BACKBONES:
        return
    expected = BACKBONES.get(synthetic.backbone).hidden_size
    width = synthetic.tensors["inputs"].shape[-1]
    if expected is not None and width != expected:
        raise BudgetError(f"{prefix}: inputs have width {width}, but backbone {synthetic.backbone!r} has "
                          f"{expected}-d vectors; store inputs in that backbone's space or name its backbone")


def _check_soft_labels(soft_labels: torch.Tensor, task: TaskSpec, prefix: str) -> None:
    expected = [soft_labels.shape[0], task.num_classes]
    if soft_labels.dim() != 2 or list(soft_labels.shape) != expected or not soft_labels.is_floating_point():
        raise BudgetError(f"{prefix}: tensor 'soft_labels' must be float {expected} (one probability per "
                          f"class), got {soft_labels.dtype} of shape {list(soft_labels.shape)}")
    values = soft_labels.double()
    if bool((values < 0).any()):
        raise BudgetError(f"{prefix}: tensor 'soft_labels' contains negative values; store probabilities")
    sums = values.sum(dim=1)
    bad = torch.nonzero((sums - 1.0).abs() > SOFT_LABEL_SUM_TOLERANCE).flatten().tolist()
    if bad:
        raise BudgetError(f"{prefix}: soft_labels rows {bad[:10]} do not sum to 1 (first sums to "
                          f"{float(sums[bad[0]]):.6g}); store probabilities, e.g. a softmax of the logits")


def _check_tensor_values(tensors: dict[str, torch.Tensor], kind: str, prefix: str) -> None:
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise BudgetError(f"{prefix}: {kind} {name!r} contains NaN or infinite values")


# ---------------------------------------------------------------- size

def _count_tokens(synthetic: SyntheticSet, task: TaskSpec) -> int:
    if synthetic.form == "embeddings":
        inputs = synthetic.tensors["inputs"]
        return int(inputs.shape[0] * (inputs.shape[1] if inputs.dim() == 3 else 1))
    return sum(len(str(record[name]).split()) for record in synthetic.records for name in task.input_fields)


def _count_bytes(synthetic: SyntheticSet) -> int:
    # Records are serialized exactly as SyntheticSet.save writes records.jsonl.
    size = sum(len((json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
               for record in synthetic.records)
    for tensor in (*synthetic.tensors.values(), *synthetic.extras.values()):
        size += tensor.numel() * tensor.element_size()
    return size
