"""TextCNN over frozen GloVe 6B 50-d word vectors, trained from scratch (Kim 2014, EMNLP).

The network reads word vectors, not word ids. So the same module scores text sets (tokenized and
looked up here) and GloVe-space embedding sets ([n, L, 50] vectors with an attention mask), and
an embedding-level distiller can train it with `torch.func.functional_call`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from benchmark.backbones import GLOVE, load_glove
from benchmark.cost import measure
from benchmark.learners import register
from benchmark.learners.base import Learner, Recipe, TrainReport
from benchmark.learners.training import (
    batch_indices,
    clip_gradients,
    label_targets,
    length_sorted_batches,
    make_optimizer,
    make_scheduler,
    require_applicable,
    require_fitted,
    seed_everything,
    soft_cross_entropy,
    split_labels,
    step_learning_rates,
)
from benchmark.metrics import classification_scores
from benchmark.synthetic import SyntheticSet
from tasks.data import Split, joined_text
from tasks.spec import TaskSpec

logger = logging.getLogger(__name__)

GLOVE_DIM = 50
FILTER_SIZES = (3, 4, 5)
EVAL_BATCH_SIZE = 64

# GloVe 6B was built from PTB-style tokens, so "don't" is stored as "do" + "n't" and "it's" as
# "it" + "'s". The tokenizer splits clitics the same way before matching words and punctuation.
_NEGATION = re.compile(r"(\w)n't\b")
_TOKEN = re.compile(r"n't|'\w+|\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-case `text` and split it into words, clitics ('s, n't) and single punctuation marks."""
    return _TOKEN.findall(_NEGATION.sub(r"\1 n't", text.lower()))


def glove_ids(texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Row ids in the GloVe table of each text's first `max_length` tokens; unknown words get the UNK row."""
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1 token, got {max_length}")
    glove = load_glove()
    return [[glove.index.get(token, glove.UNK) for token in tokenize(text)[:max_length]] for text in texts]


@lru_cache(maxsize=1)
def _glove_table() -> torch.Tensor:
    return torch.from_numpy(load_glove().vectors)


def pad_ids(ids: Sequence[Sequence[int]], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """GloVe row ids [n, L] int64 and float mask [n, L] of id lists, padded to `length` (default: longest, at least 1)."""
    length = length if length is not None else max([len(row) for row in ids] + [1])
    index = torch.zeros(len(ids), length, dtype=torch.int64)
    mask = torch.zeros(len(ids), length, dtype=torch.float32)
    for i, row in enumerate(ids):
        row = list(row)[:length]
        index[i, :len(row)] = torch.tensor(row, dtype=torch.int64)
        mask[i, :len(row)] = 1.0
    return index, mask


def vectors_from_ids(ids: Sequence[Sequence[int]], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Word vectors [n, L, 50] and float mask [n, L] of id lists, padded as in `pad_ids`."""
    index, mask = pad_ids(ids, length)
    return _glove_table()[index], mask


def trim_padding(vectors: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop trailing positions that are masked in every row of the batch (TextCNN output does not change)."""
    used = torch.nonzero(mask.sum(0) > 0)
    length = int(used.max()) + 1 if len(used) else 1
    return vectors[:, :length], mask[:, :length]


def glove_tokenize(texts: Sequence[str], max_length: int, *,
                   pad_to_max: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize `texts` and look up GloVe-50d vectors: ([n, L, 50] float32, [n, L] float mask).

    L is the longest text's token count capped at `max_length`, or `max_length` itself with
    `pad_to_max`. Padding positions have zero vectors and mask 0; unknown words have zero vectors
    and mask 1.
    """
    ids = glove_ids(texts, max_length)
    return vectors_from_ids(ids, max_length if pad_to_max else None)


class TextCNN(nn.Module):
    """Kim's CNN: parallel 1-D convolutions, ReLU, max-over-time pooling, dropout and a linear head.

    `forward(vectors [B, L, D], mask [B, L]) -> logits [B, num_classes]`. Every unmasked position
    starts one window per filter, and windows that run past the end of the input read zeros. So
    the logits of a row do not depend on how much padding its batch adds.
    """

    def __init__(self, num_classes: int, embedding_dim: int = GLOVE_DIM,
                 filter_sizes: Sequence[int] = FILTER_SIZES, num_filters: int = 100, dropout: float = 0.5) -> None:
        super().__init__()
        self.filter_sizes = tuple(int(size) for size in filter_sizes)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, num_filters, size) for size in self.filter_sizes)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(num_filters * len(self.filter_sizes), num_classes)

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            mask = torch.ones(vectors.shape[:2], dtype=vectors.dtype, device=vectors.device)
        mask = mask.to(vectors.dtype)
        extra = max(self.filter_sizes) - 1
        vectors = nn.functional.pad(vectors * mask.unsqueeze(-1), (0, 0, 0, extra))
        mask = nn.functional.pad(mask, (0, extra))
        inputs = vectors.transpose(1, 2)  # [B, D, L + extra] for Conv1d

        pooled = []
        for conv in self.convs:
            features = torch.relu(conv(inputs))  # [B, F, L + extra - size + 1], at least L positions
            valid = mask[:, :features.shape[-1]].unsqueeze(1)
            # After ReLU every value is >= 0, so zeroing invalid windows leaves the max over valid ones.
            pooled.append((features * valid).amax(dim=-1))
        return self.head(self.dropout(torch.cat(pooled, dim=-1)))


def _recipe(tier: str, steps: int, full_data_steps: int, batch_size: int, max_length: int,
            num_filters: int) -> Recipe:
    return Recipe(learner="textcnn-glove", tier=tier, model=f"textcnn-{GLOVE}", steps=steps,
                  full_data_steps=full_data_steps, lr=1e-3, batch_size=batch_size, max_length=max_length,
                  optimizer="adam", schedule="constant", weight_decay=0.0, grad_clip=3.0,
                  options=(("dropout", 0.5), ("filter_sizes", FILTER_SIZES), ("num_filters", num_filters)))


@register
class TextCNNLearner(Learner):
    """TextCNN on frozen GloVe-50d vectors; text sets and GloVe-space embedding sets ([n, L, 50] plus mask).

    Under `native` it trains on the set's soft labels and, when the set carries learned per-step
    learning rates (`lrs`), runs len(lrs) full-batch plain SGD steps with those rates instead of the recipe.
    """

    name = "textcnn-glove"
    families = ("classification", "nli")
    accepts_soft_labels = True
    embedding_backbone = GLOVE
    description = ("Kim (2014) TextCNN with filter widths 3, 4 and 5 over frozen GloVe 6B 50-d vectors, "
                   "trained from scratch with Adam.")
    recipes = {
        "smoke": _recipe("smoke", steps=20, full_data_steps=40, batch_size=32, max_length=32, num_filters=16),
        "quick": _recipe("quick", steps=100, full_data_steps=300, batch_size=50, max_length=64, num_filters=100),
        "standard": _recipe("standard", steps=1000, full_data_steps=10000, batch_size=50, max_length=128,
                            num_filters=100),
    }

    def __init__(self, task: TaskSpec, recipe: Recipe) -> None:
        super().__init__(task, recipe)
        self.model: TextCNN | None = None

    @classmethod
    def applicability(cls, task: TaskSpec, synthetic: SyntheticSet) -> str | None:
        reason = super().applicability(task, synthetic)
        if reason is None and synthetic.form == "embeddings":
            inputs = synthetic.tensors["inputs"]
            if inputs.dim() != 3 or inputs.shape[-1] != GLOVE_DIM:
                return (f"{cls.name} needs token-level {GLOVE} inputs [n, L, {GLOVE_DIM}]; "
                        f"the set has inputs of shape {list(inputs.shape)}")
        return reason

    @property
    def max_length(self) -> int:
        """Tokens kept per text: the recipe's cap, lowered to the task's own cap."""
        return min(self.recipe.max_length, self.task.max_length)

    def _rows(self, synthetic: SyntheticSet) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(GloVe ids [n, L] or vectors [n, L, 50], mask [n, L], whether the first are ids).

        Text sets stay as ids, so a pool of tens of thousands of rows takes megabytes, not a
        gigabyte of vectors. Each batch looks its vectors up when it is drawn.
        """
        if synthetic.form == "embeddings":
            vectors = synthetic.tensors["inputs"].detach().to(torch.float32)
            mask = synthetic.tensors.get("attention_mask")
            mask = torch.ones(vectors.shape[:2]) if mask is None else mask.detach().to(torch.float32)
            return vectors, mask, False
        texts = [joined_text(self.task, record) for record in synthetic.records]
        index, mask = pad_ids(glove_ids(texts, self.max_length))
        return index, mask, True

    def fit(self, train: SyntheticSet, seed: int, *, full_data: bool = False,
            native: bool = False) -> TrainReport:
        require_applicable(self, train)
        recipe = self.recipe
        lrs = train.extras.get("lrs") if native else None
        if lrs is not None:
            if lrs.dim() != 1 or len(lrs) == 0:
                raise ValueError(f"synthetic set of method {train.method!r}: extra 'lrs' has shape {list(lrs.shape)}; "
                                 f"expected a non-empty 1-D tensor with one learning rate per training step")
            lrs = step_learning_rates(train, native)
            steps = len(lrs)
        else:
            steps = recipe.full_data_steps if full_data else recipe.steps
        logger.info("%s: training on %d examples of %s for %d steps (seed %d, %s track%s)", self.name, len(train),
                    train.method, steps, seed, "native" if native else "standard",
                    ", learned lrs" if lrs is not None else "")

        with measure() as cost:
            generator = seed_everything(seed)
            rows, mask, are_ids = self._rows(train)
            targets = label_targets(train, self.task.num_classes, use_soft=native,
                                    label_field=self.task.label_field)
            model = TextCNN(self.task.num_classes, filter_sizes=recipe.option("filter_sizes", FILTER_SIZES),
                            num_filters=recipe.option("num_filters", 100), dropout=recipe.option("dropout", 0.5))
            if lrs is not None:
                # Learned rates belong to the distiller's unrolled inner loop: plain SGD steps on the
                # whole set. Adam, weight decay, clipping, the schedule and batching do not apply.
                optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
                scheduler, max_norm, batch_size = None, None, len(train)
            else:
                optimizer = make_optimizer(model.parameters(), recipe)
                scheduler, max_norm = make_scheduler(optimizer, recipe, steps), recipe.grad_clip
                batch_size = recipe.batch_size

            model.train()
            losses, tokens = [], 0
            for step, index in enumerate(batch_indices(len(train), batch_size, steps, generator)):
                if lrs is not None:
                    for group in optimizer.param_groups:
                        group["lr"] = float(lrs[step])
                vectors = _glove_table()[rows[index]] if are_ids else rows[index]
                vectors, batch_mask = trim_padding(vectors, mask[index])
                loss = soft_cross_entropy(model(vectors, batch_mask), targets[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                clip_gradients(model.parameters(), max_norm)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                losses.append(loss.item())
                tokens += int(batch_mask.sum())

        self.model = model.eval()
        logger.info("%s: trained in %.1f s, final loss %.4f", self.name, cost.wall_time_s, losses[-1] if losses else float("nan"))
        return TrainReport(wall_time_s=cost.wall_time_s, peak_memory_mb=cost.peak_memory_mb, tokens=tokens,
                           steps=steps, examples=len(train), losses=losses)

    def predict(self, split: Split) -> np.ndarray:
        """Class probabilities [n, C] of a split's texts, computed in length-sorted batches."""
        require_fitted(self, self.model is not None)
        ids = glove_ids([joined_text(self.task, record) for record in split.records], self.max_length)
        probabilities = np.zeros((len(ids), self.task.num_classes), dtype=np.float32)
        with torch.inference_mode():
            for batch in length_sorted_batches([len(row) for row in ids], EVAL_BATCH_SIZE):
                vectors, mask = vectors_from_ids([ids[i] for i in batch])
                probabilities[batch] = torch.softmax(self.model(vectors, mask), dim=-1).numpy()
        return probabilities

    def evaluate(self, split: Split) -> dict[str, float]:
        predicted = self.predict(split).argmax(axis=1)
        return classification_scores(split_labels(self.task, split), predicted, self.task.num_classes,
                                     self.task.metrics)
