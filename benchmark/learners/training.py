"""Training helpers shared by the torch learners: seeding, label targets, batches, optimizers, LR schedules.

Everything here is independent of the model, so any learner (probe, TextCNN, fine-tuning, SFT)
can build its loop from these pieces and stay reproducible for a given seed.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch

from benchmark.learners.base import Learner, NotApplicableError, Recipe, Schedule
from benchmark.synthetic import SOFT_LABEL_KEY, SyntheticSet
from tasks.data import Split
from tasks.spec import TaskSpec

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch's global generators; return a fresh torch Generator seeded with `seed`.

    Learners draw batch orders from the returned generator so that sampling does not depend on
    what else consumed the global generator.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


# ---------------------------------------------------------------- labels

def hard_labels(synthetic: SyntheticSet, label_field: str | None = None) -> torch.Tensor:
    """Class ids [n] int64 of a set, read from `label_field` for text sets (default: the manifest's)."""
    if synthetic.form == "embeddings":
        return synthetic.tensors["labels"].detach().to(torch.int64).reshape(-1).clone()
    field_name = label_field or synthetic.manifest.get("label_field", "label")
    missing = [i for i, record in enumerate(synthetic.records) if field_name not in record]
    if missing:
        raise ValueError(f"synthetic set of method {synthetic.method!r}: record {missing[0]} (and "
                         f"{len(missing) - 1} more) has no label field {field_name!r}; every record of a "
                         f"labelled task must carry its class id")
    return torch.tensor([int(record[field_name]) for record in synthetic.records], dtype=torch.int64)


def soft_label_matrix(synthetic: SyntheticSet, num_classes: int) -> torch.Tensor | None:
    """Soft labels [n, C] float32 of a set, or None when it has none.

    Text records without a `soft_label` get a row of NaN, so callers can fall back to the
    one-hot hard label for those rows only (see `label_targets`).
    """
    if synthetic.form == "embeddings":
        soft = synthetic.tensors.get("soft_labels")
        if soft is None:
            return None
        soft = soft.detach().to(torch.float32)
        if soft.dim() != 2 or soft.shape != (len(synthetic), num_classes):
            raise ValueError(f"synthetic set of method {synthetic.method!r}: tensor 'soft_labels' has shape "
                             f"{tuple(soft.shape)}; expected [{len(synthetic)}, {num_classes}] (one row of "
                             f"class probabilities per example)")
        return soft.clone()
    if not synthetic.has_soft_labels:
        return None
    rows = []
    for i, record in enumerate(synthetic.records):
        value = record.get(SOFT_LABEL_KEY)
        if value is None:
            rows.append([math.nan] * num_classes)
            continue
        if len(value) != num_classes:
            raise ValueError(f"synthetic set of method {synthetic.method!r}: record {i} has a "
                             f"{SOFT_LABEL_KEY!r} of length {len(value)}; the task has {num_classes} classes")
        rows.append([float(v) for v in value])
    return torch.tensor(rows, dtype=torch.float32)


def label_targets(synthetic: SyntheticSet, num_classes: int, *, use_soft: bool,
                  label_field: str | None = None) -> torch.Tensor:
    """Training targets [n, C]: soft labels where `use_soft` and present, one-hot hard labels elsewhere.

    Soft rows must be probability distributions (non-negative, summing to 1 within 1e-3).
    """
    labels = hard_labels(synthetic, label_field)
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"synthetic set of method {synthetic.method!r}: label {int(labels.max())} or "
                         f"{int(labels.min())} is outside 0..{num_classes - 1}")
    targets = torch.nn.functional.one_hot(labels, num_classes).to(torch.float32)
    soft = soft_label_matrix(synthetic, num_classes) if use_soft else None
    if soft is None:
        return targets
    present = ~torch.isnan(soft).any(dim=1)
    rows = soft[present]
    if rows.numel() and ((rows < 0).any() or not torch.allclose(rows.sum(1), torch.ones(len(rows)), atol=1e-3)):
        raise ValueError(f"synthetic set of method {synthetic.method!r}: soft labels must be probabilities "
                         f"(non-negative rows summing to 1); apply softmax to logits before storing them")
    targets[present] = rows
    return targets


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of `logits` [B, C] against target distributions [B, C]; equals CE for one-hot targets."""
    return -(targets * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


# ---------------------------------------------------------------- batches

def batch_indices(n: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Yield `steps` index tensors of size min(batch_size, n) from reshuffled passes over range(n).

    Passes are concatenated, so a batch may span two passes and every batch has the same size.
    A set no larger than `batch_size` is one batch at every step.
    """
    if n < 1:
        raise ValueError("cannot draw batches from an empty training set; the synthetic set has 0 examples")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}; fix the recipe")
    size = min(batch_size, n)
    buffer = torch.empty(0, dtype=torch.int64)
    for _ in range(steps):
        while len(buffer) < size:
            buffer = torch.cat([buffer, torch.randperm(n, generator=generator)])
        yield buffer[:size]
        buffer = buffer[size:]


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Split indices into batches of examples of similar length (stable sort), so padding stays small."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def padding_share(lengths: Sequence[int], batches: Iterable[Sequence[int]]) -> float:
    """Fraction of padded positions when each batch pads to its own longest example."""
    lengths = np.asarray(lengths)
    padded = real = 0
    for batch in batches:
        batch_lengths = lengths[np.asarray(batch)]
        padded += int(batch_lengths.max(initial=0)) * len(batch_lengths)
        real += int(batch_lengths.sum())
    return 0.0 if padded == 0 else 1.0 - real / padded


# ---------------------------------------------------------------- optimizer and schedule

def make_optimizer(parameters: Iterable[torch.nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    """Build the recipe's optimizer at `recipe.lr` with `recipe.weight_decay`."""
    parameters = list(parameters)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)
    raise ValueError(f"recipe {recipe.recipe_id}: optimizer {recipe.optimizer!r} is not available for "
                     f"gradient-step training; use 'adamw', 'adam' or 'sgd'")


def lr_factor(step: int, total_steps: int, schedule: Schedule, warmup_steps: int = 0) -> float:
    """Multiplier of the base learning rate at 0-based `step`: linear warmup, then constant, linear or cosine decay to 0."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"schedule {schedule!r} is invalid; use 'constant', 'linear' or 'cosine'")


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe,
                   total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """LR scheduler following `recipe.schedule` over `total_steps`, with `recipe.warmup_ratio` of them as warmup."""
    lr_factor(0, total_steps, recipe.schedule)  # rejects an invalid schedule before training starts
    warmup = int(round(recipe.warmup_ratio * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, recipe.schedule, warmup))


def clip_gradients(parameters: Iterable[torch.nn.Parameter], max_norm: float | None) -> None:
    """Clip the global gradient norm to `max_norm`; None leaves gradients unchanged."""
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(parameters, max_norm)


# ---------------------------------------------------------------- checks shared by learners

def require_applicable(learner: Learner, synthetic: SyntheticSet) -> None:
    """Raise NotApplicableError with the learner's reason when it cannot train on `synthetic`."""
    reason = learner.applicability(learner.task, synthetic)
    if reason is not None:
        raise NotApplicableError(reason)
    if len(synthetic) == 0:
        raise ValueError(f"synthetic set of method {synthetic.method!r} for task {learner.task.name!r} is empty; "
                         f"{learner.name} needs at least one example to train on")


def require_fitted(learner: Learner, fitted: bool) -> None:
    """Raise RuntimeError when `evaluate` is called before `fit`."""
    if not fitted:
        raise RuntimeError(f"learner {learner.name!r} has no trained model; call fit() before evaluate()")


def split_labels(task: TaskSpec, split: Split) -> np.ndarray:
    """Gold class ids [n] of a labelled split."""
    if not task.label_field:
        raise ValueError(f"task {task.name!r} ({task.family}) has no label field to score against")
    return np.array([int(record[task.label_field]) for record in split.records], dtype=np.int64)


def step_learning_rates(train: SyntheticSet, native: bool) -> torch.Tensor | None:
    """Return the set's learned per-step learning rates (extra "lrs") under `native`, else None."""
    if not native or "lrs" not in train.extras:
        return None
    lrs = train.extras["lrs"].detach().float().flatten()
    if lrs.numel() == 0 or not torch.isfinite(lrs).all() or (lrs < 0).any():
        raise ValueError(f"set of method {train.method!r}: extra 'lrs' must hold at least one finite, "
                         f"non-negative learning rate per step; got {train.extras['lrs'].tolist()[:8]}")
    return lrs
