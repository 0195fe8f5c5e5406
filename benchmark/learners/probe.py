"""Linear probe on frozen all-MiniLM-L6-v2 sentence embeddings (mean-pooled, unit length).

Text is embedded by the shared, disk-cached sentence encoder, so a set and a split are embedded
once per content. Embedding sets of MiniLM are accepted as sentence vectors [n, 384], used as
they are, or as input embeddings [n, L, 384] with an attention mask, which the frozen encoder
turns into sentence vectors by the same mean pooling.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from benchmark.backbones import MINILM, encoder_path, load_encoder
from benchmark.cost import measure
from benchmark.encoder import shared_encoder
from benchmark.learners import register
from benchmark.learners.base import Learner, Recipe, TrainReport
from benchmark.learners.training import (
    batch_indices,
    clip_gradients,
    label_targets,
    make_optimizer,
    make_scheduler,
    require_applicable,
    require_fitted,
    seed_everything,
    soft_cross_entropy,
    split_labels,
)
from benchmark.metrics import classification_scores
from benchmark.synthetic import SyntheticSet
from tasks.data import Split, joined_text
from tasks.spec import TaskSpec

logger = logging.getLogger(__name__)

HIDDEN_SIZE = 384
INPUT_EMBEDS_BATCH_SIZE = 64


@lru_cache(maxsize=1)
def _tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(encoder_path(MINILM))


@lru_cache(maxsize=1)
def _frozen_encoder() -> nn.Module:
    return load_encoder(MINILM)[1]


def count_tokens(texts: Sequence[str], max_length: int) -> int:
    """Number of MiniLM word-piece tokens (with [CLS] and [SEP]) in `texts` after truncation to `max_length`."""
    encoded = _tokenizer()(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return sum(len(ids) for ids in encoded)


def pool_input_embeddings(inputs: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sentence vectors [n, 384] of MiniLM input embeddings [n, L, 384]: frozen encoder, masked mean, L2 norm.

    The encoder adds position and token-type embeddings itself, as for its own word embeddings.
    """
    model = _frozen_encoder()
    pooled = []
    with torch.inference_mode():
        for start in range(0, len(inputs), INPUT_EMBEDS_BATCH_SIZE):
            batch = inputs[start:start + INPUT_EMBEDS_BATCH_SIZE].to(torch.float32)
            mask = attention_mask[start:start + INPUT_EMBEDS_BATCH_SIZE].to(torch.float32)
            states = model(inputs_embeds=batch, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1)
            mean = (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            pooled.append(nn.functional.normalize(mean, dim=-1))
    return torch.cat(pooled) if pooled else torch.zeros(0, HIDDEN_SIZE)


def _recipe(tier: str, steps: int, full_data_steps: int, batch_size: int) -> Recipe:
    return Recipe(learner="minilm-probe", tier=tier, model=f"linear-probe-{MINILM}", steps=steps,
                  full_data_steps=full_data_steps, lr=3e-2, batch_size=batch_size, max_length=128,
                  optimizer="adamw", schedule="constant", weight_decay=0.01, grad_clip=None)


@register
class MiniLMProbe(Learner):
    """Linear softmax head on frozen MiniLM sentence embeddings; soft labels are used under `native`."""

    name = "minilm-probe"
    families = ("classification", "nli")
    accepts_soft_labels = True
    embedding_backbone = MINILM
    description = ("Linear probe (softmax regression trained with AdamW) on frozen, mean-pooled, "
                   "L2-normalized all-MiniLM-L6-v2 sentence embeddings.")
    recipes = {
        "smoke": _recipe("smoke", steps=30, full_data_steps=60, batch_size=256),
        "quick": _recipe("quick", steps=300, full_data_steps=1000, batch_size=256),
        "standard": _recipe("standard", steps=1000, full_data_steps=5000, batch_size=256),
    }

    def __init__(self, task: TaskSpec, recipe: Recipe) -> None:
        super().__init__(task, recipe)
        self.head: nn.Linear | None = None

    @classmethod
    def applicability(cls, task: TaskSpec, synthetic: SyntheticSet) -> str | None:
        reason = super().applicability(task, synthetic)
        if reason is None and synthetic.form == "embeddings":
            shape = list(synthetic.tensors["inputs"].shape)
            if len(shape) not in (2, 3) or shape[-1] != HIDDEN_SIZE:
                return (f"{cls.name} needs {MINILM} sentence vectors [n, {HIDDEN_SIZE}] or input embeddings "
                        f"[n, L, {HIDDEN_SIZE}]; the set has inputs of shape {shape}")
        return reason

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Cached sentence embeddings [n, 384] of `texts` at the recipe's max length."""
        return torch.from_numpy(shared_encoder(MINILM, self.recipe.max_length).encode(texts))

    def _features(self, synthetic: SyntheticSet) -> tuple[torch.Tensor, int]:
        """Sentence vectors of the set and the number of tokens the encoder read to make them."""
        if synthetic.form == "text":
            texts = [joined_text(self.task, record) for record in synthetic.records]
            return self.embed(texts), count_tokens(texts, self.recipe.max_length)
        inputs = synthetic.tensors["inputs"].detach().to(torch.float32)
        if inputs.dim() == 2:
            return inputs, 0
        mask = synthetic.tensors.get("attention_mask")
        mask = torch.ones(inputs.shape[:2]) if mask is None else mask.detach().to(torch.float32)
        return pool_input_embeddings(inputs, mask), int(mask.sum())

    def fit(self, train: SyntheticSet, seed: int, *, full_data: bool = False,
            native: bool = False) -> TrainReport:
        require_applicable(self, train)
        recipe = self.recipe
        steps = recipe.full_data_steps if full_data else recipe.steps
        logger.info("%s: training on %d examples of %s for %d steps (seed %d, %s track)", self.name, len(train),
                    train.method, steps, seed, "native" if native else "standard")

        with measure() as cost:
            features, tokens = self._features(train)
            targets = label_targets(train, self.task.num_classes, use_soft=native,
                                    label_field=self.task.label_field)
            generator = seed_everything(seed)
            head = nn.Linear(features.shape[1], self.task.num_classes)
            optimizer = make_optimizer(head.parameters(), recipe)
            scheduler = make_scheduler(optimizer, recipe, steps)

            losses = []
            for index in batch_indices(len(train), recipe.batch_size, steps, generator):
                loss = soft_cross_entropy(head(features[index]), targets[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                clip_gradients(head.parameters(), recipe.grad_clip)
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())

        self.head = head.eval()
        logger.info("%s: trained in %.1f s, final loss %.4f", self.name, cost.wall_time_s, losses[-1] if losses else float("nan"))
        return TrainReport(wall_time_s=cost.wall_time_s, peak_memory_mb=cost.peak_memory_mb, tokens=tokens,
                           steps=steps, examples=len(train), losses=losses)

    def predict(self, split: Split) -> np.ndarray:
        """Class probabilities [n, C] of a split's texts; the encoder embeds them in length-sorted batches."""
        require_fitted(self, self.head is not None)
        features = self.embed([joined_text(self.task, record) for record in split.records])
        with torch.inference_mode():
            return torch.softmax(self.head(features), dim=-1).numpy()

    def evaluate(self, split: Split) -> dict[str, float]:
        predicted = self.predict(split).argmax(axis=1)
        return classification_scores(split_labels(self.task, split), predicted, self.task.num_classes,
                                     self.task.metrics)
