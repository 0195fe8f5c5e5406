"""Shared machinery of the embedding-level distillers.

It draws the pool rows that initialise a synthetic set and turns pool rows into GloVe or MiniLM
input embeddings. It also provides a differentiable unrolled SGD loop over
`torch.func.functional_call`, the objective curve every distiller logs, and the SyntheticSet
builder for the learned tensors.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from benchmark.backbones import GLOVE, MINILM, load_encoder, load_glove
from benchmark.synthetic import SyntheticSet
from methods.base import Budget, Distiller, Pool
from methods.random import RandomSelection
from methods.selection import budget_groups

logger = logging.getLogger(__name__)

Params = dict[str, torch.Tensor]

# The max number of objective-curve points written to a manifest. Longer curves are averaged over
# consecutive blocks, so a 20,000-iteration run still writes a small manifest.
CURVE_POINTS = 500


# ---------------------------------------------------------------- seeds and initial rows

@contextlib.contextmanager
def seeded(seed: int, device: str = "cpu") -> Iterator[None]:
    """Seed torch's generators inside the block and restore the caller's generator state after it.

    Network initialisations and dropout masks draw from the global generator, so seeding it here
    makes a distillation repeatable without changing the random state seen by other code.
    """
    devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def draw_real_rows(pool: Pool, budget: Budget, seed: int, method: str) -> np.ndarray:
    """Pool indices of the rows that initialise the set: the rows the `random` baseline keeps at `seed`.

    Rows are grouped by class in class order. A class smaller than the budget is kept whole.
    Raises ValueError for a budget that does not count examples per class.
    """
    if budget.unit != "per_class":
        raise ValueError(f"method {method!r} distills classification and NLI tasks, whose budgets count "
                         f"examples per class; task {pool.task.name!r} has a {budget.unit!r} budget")
    groups = budget_groups(pool, budget)
    sampler = RandomSelection()
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for group in groups:
        if group.quota == 0:
            continue
        if group.quota >= len(group.indices):
            chosen.extend(int(i) for i in group.indices)
            continue
        positions = sampler.select(len(group.indices), None, group.quota, rng)
        chosen.extend(int(i) for i in group.indices[positions])
    if not chosen:
        raise ValueError(f"method {method!r}: the pool of task {pool.task.name!r} has no rows to start from")
    return np.asarray(chosen, dtype=np.int64)


def class_rows(labels: np.ndarray, num_classes: int) -> dict[int, np.ndarray]:
    """Indices of each class with at least one row."""
    return {c: np.flatnonzero(labels == c) for c in range(num_classes) if np.any(labels == c)}


def sample_rows(rows: np.ndarray, size: int, generator: torch.Generator) -> np.ndarray:
    """`size` distinct entries of `rows` drawn uniformly, or all of them when there are fewer."""
    if len(rows) <= size:
        return rows
    order = torch.randperm(len(rows), generator=generator)[:size].numpy()
    return rows[order]


def check_positive(method: str, **values: float | int | None) -> None:
    """Raise ValueError naming the first hyperparameter that is not None and not positive."""
    for name, value in values.items():
        if value is not None and not value > 0:
            raise ValueError(f"method {method!r}: hyperparameter {name}={value!r} is invalid; it must be positive")


# ---------------------------------------------------------------- token banks

@dataclass
class TokenBank:
    """Token ids [N, L] and masks [N, L] of texts, looked up in an embedding table [V, d] on demand.

    Ids of a 67k-row pool take a few MB where its vectors would take about 1 GB, so `embed` builds
    the input embeddings of a batch only when the batch is used.
    """

    ids: torch.Tensor
    mask: torch.Tensor
    table: torch.Tensor

    def embed(self, rows: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(rows, dtype=torch.int64)
        return self.table[self.ids[index]], self.mask[index]

    def to(self, device: str) -> TokenBank:
        return TokenBank(self.ids.to(device), self.mask.to(device), self.table.to(device))


def glove_bank(texts: Sequence[str], length: int) -> TokenBank:
    """GloVe-50d ids of `texts`, tokenized as the `textcnn-glove` learner does and padded to `length`."""
    from benchmark.learners.textcnn import glove_ids

    ids = glove_ids(texts, length)
    index = torch.zeros(len(ids), length, dtype=torch.int64)
    mask = torch.zeros(len(ids), length, dtype=torch.float32)
    for i, row in enumerate(ids):
        index[i, :len(row)] = torch.tensor(row, dtype=torch.int64)
        mask[i, :len(row)] = 1.0
    return TokenBank(index, mask, torch.from_numpy(load_glove().vectors))


def minilm_bank(texts: Sequence[str], length: int, tokenizer: Any, word_embeddings: torch.Tensor) -> TokenBank:
    """MiniLM word-piece ids of `texts` ([CLS] ... [SEP], truncated and padded to `length`)."""
    encoded = tokenizer(list(texts), truncation=True, max_length=length, padding="max_length", return_tensors="pt")
    return TokenBank(encoded["input_ids"], encoded["attention_mask"].to(torch.float32), word_embeddings)


def load_minilm(device: str = "cpu", *, eager_attention: bool = False) -> tuple[Any, nn.Module]:
    """MiniLM tokenizer and a frozen encoder copy in eval mode; `eager_attention` returns attention weights."""
    tokenizer, model = load_encoder(MINILM)
    if eager_attention:
        # The default SDPA kernel does not return attention probabilities.
        model.set_attn_implementation("eager")
    model.requires_grad_(False)
    return tokenizer, model.to(device).eval()


@dataclass
class GloveProblem:
    """A pool in GloVe space and the synthetic set's starting point, shared by the GloVe distillers."""

    bank: TokenBank  # every pool row, padded to `length`
    labels: torch.Tensor  # [N] int64 class ids of the pool rows
    init_rows: np.ndarray  # pool indices that initialise the synthetic set
    length: int
    num_classes: int

    def initial_set(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Copies of the initial rows: inputs [n, L, 50], mask [n, L] and labels [n]."""
        inputs, mask = self.bank.embed(self.init_rows)
        return inputs.clone(), mask.clone(), self.labels[torch.as_tensor(self.init_rows)].clone()

    def real_batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs, mask = self.bank.embed(rows)
        return inputs, mask, self.labels[torch.as_tensor(rows)]


def glove_problem(pool: Pool, budget: Budget, seed: int, method: str, max_length: int,
                  device: str = "cpu") -> GloveProblem:
    """Tokenize the pool into GloVe ids at min(max_length, task cap) tokens and draw the initial rows."""
    length = min(max_length, pool.task.max_length)
    init_rows = draw_real_rows(pool, budget, seed, method)
    bank = glove_bank(pool.texts(), length).to(device)
    labels = torch.as_tensor(pool.labels, dtype=torch.int64, device=device)
    return GloveProblem(bank, labels, init_rows, length, pool.task.num_classes)


def textcnn(num_classes: int, num_filters: int, dropout: float, device: str | torch.device = "cpu") -> nn.Module:
    """Build a freshly initialised TextCNN of the `textcnn-glove` learner (filter widths 3, 4 and 5)."""
    from benchmark.learners.textcnn import TextCNN

    return TextCNN(num_classes, num_filters=num_filters, dropout=dropout).to(device)


# ---------------------------------------------------------------- unrolled training

def model_params(model: nn.Module) -> Params:
    """Detached copies of a module's parameters that require grad, to be updated functionally."""
    return {name: p.detach().clone().requires_grad_(True) for name, p in model.named_parameters()}


def sgd_step(params: Params, loss: torch.Tensor, lr: torch.Tensor | float, *,
             create_graph: bool) -> Params:
    """Take one plain SGD step `p - lr * grad`; parameters that the loss does not use stay as they are.

    With `create_graph` the step stays differentiable, so an outer loss can backpropagate through it
    into the data and the learning rate.
    """
    names = [name for name, p in params.items() if p.requires_grad]
    grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph, allow_unused=True)
    updated = dict(params)
    for name, grad in zip(names, grads):
        if grad is not None:
            updated[name] = params[name] - lr * grad
    return updated


def unrolled_sgd(model: nn.Module, params: Params, loss_fn: Callable[[nn.Module, Params, int], torch.Tensor],
                 lrs: Sequence[torch.Tensor | float] | torch.Tensor, *, create_graph: bool = True) -> Params:
    """Run len(lrs) SGD steps from `params`, where `loss_fn(model, params, step)` is the training loss at a step.

    The caller's `loss_fn` calls the model through `functional_call(model, params, ...)`.
    """
    for step in range(len(lrs)):
        loss = loss_fn(model, params, step)
        params = sgd_step(params, loss, lrs[step], create_graph=create_graph)
    return params


def call(model: nn.Module, params: Params, *args: Any, **kwargs: Any) -> Any:
    """`model(*args, **kwargs)` with `params` in place of its own parameters (buffers kept)."""
    return functional_call(model, params, args, kwargs)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits [B, C] against target distributions [B, C]."""
    return -(targets * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


# ---------------------------------------------------------------- objective curve

@dataclass
class ObjectiveCurve:
    """The objective value of each outer iteration, logged every `log_every` iterations."""

    method: str
    log: logging.Logger
    total: int
    log_every: int = 10
    values: list[float] = field(default_factory=list)

    def record(self, value: float) -> None:
        if not math.isfinite(value):
            raise FloatingPointError(f"method {self.method!r}: the objective became {value} at iteration "
                                     f"{len(self.values)}; lower the learning rates of the synthetic data")
        self.values.append(float(value))
        step = len(self.values)
        if step == 1 or step % self.log_every == 0 or step == self.total:
            recent = self.values[-self.log_every:]
            self.log.info("%s: iteration %d/%d, objective %.5f (mean of last %d: %.5f)", self.method, step,
                          self.total, value, len(recent), sum(recent) / len(recent))

    def manifest_entry(self) -> dict[str, Any]:
        """Return the manifest entries: the curve as at most CURVE_POINTS block means, and the block length."""
        block = max(1, math.ceil(len(self.values) / CURVE_POINTS))
        points = [float(np.mean(self.values[i:i + block])) for i in range(0, len(self.values), block)]
        return {"objective_curve": points, "objective_curve_block": block, "objective_iterations": len(self.values)}


# ---------------------------------------------------------------- the synthetic set

def embedding_set(method: Distiller, pool: Pool, *, backbone: str, inputs: torch.Tensor, mask: torch.Tensor,
                  labels: torch.Tensor, curve: ObjectiveCurve, init_rows: np.ndarray,
                  label_logits: torch.Tensor | None = None, extras: dict[str, torch.Tensor] | None = None,
                  **manifest: Any) -> SyntheticSet:
    """Wrap learned tensors into an embedding SyntheticSet; label logits are stored as soft-label probabilities."""
    if backbone not in (GLOVE, MINILM):
        raise ValueError(f"method {method.name!r}: backbone {backbone!r} is not an embedding space of this "
                         f"suite; use {GLOVE!r} or {MINILM!r}")
    tensors = {"inputs": inputs.detach().to("cpu", torch.float32).contiguous(),
               "attention_mask": mask.detach().to("cpu", torch.float32).contiguous(),
               "labels": labels.detach().to("cpu", torch.int64).contiguous()}
    if label_logits is not None:
        tensors["soft_labels"] = torch.softmax(label_logits.detach().to("cpu", torch.float32), dim=-1).contiguous()
    stored_extras = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in (extras or {}).items()}
    info = {"label_field": pool.task.label_field, "hyperparameters": method.get_params(),
            "init_rows": [int(i) for i in init_rows], **curve.manifest_entry(), **manifest}
    return SyntheticSet(task=pool.task.name, method=method.name, form="embeddings", tensors=tensors,
                        backbone=backbone, extras=stored_extras, manifest=info)
