"""Dataset distillation with attention labels for fine-tuning a pretrained encoder (Maekawa et al. 2023).

The synthetic set contains MiniLM input embeddings [n, L, 384], label logits (stored as soft
labels), one learning rate per inner step, and attention targets. An attention target is, for one
example, layer and head, the distribution over the L keys that the [CLS] query should attend to. Each outer iteration puts a
fresh head on the pretrained MiniLM, takes `inner_steps` differentiable SGD steps on the synthetic
set with loss CE + lambda * KL(target || [CLS] attention), and minimises the cross-entropy of the
result on a real pool batch with respect to all four learned tensors.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchmark.backbones import MINILM
from benchmark.learners.finetune import EPSILON, attention_kl, cls_attention, load_pretrained
from benchmark.synthetic import SyntheticSet
from methods import register
from methods.base import Budget, DistillContext, Distiller, Pool
from methods.embedding_common import (
    ObjectiveCurve,
    Params,
    TokenBank,
    call,
    check_positive,
    draw_real_rows,
    embedding_set,
    minilm_bank,
    sample_rows,
    seeded,
    soft_cross_entropy,
    unrolled_sgd,
)

logger = logging.getLogger(__name__)


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis of logits [n, layers, heads, L] with padding keys (mask [n, L] = 0) at 0."""
    keep = mask[:, None, None, :].bool()
    return torch.softmax(logits.masked_fill(~keep, float("-inf")), dim=-1)


def load_classifier(num_classes: int, device: str) -> tuple[Any, nn.Module]:
    """MiniLM with a sequence-classification head, as `minilm-finetune` builds it, returning attention weights."""
    from transformers import AutoModelForSequenceClassification

    # The default SDPA kernel does not return attention probabilities; the eager one does.
    tokenizer, model = load_pretrained(AutoModelForSequenceClassification, MINILM, num_labels=num_classes,
                                       attn_implementation="eager")
    # Dropout stays off in the inner loop, as in Maekawa et al.'s released configuration.
    return tokenizer, model.to(device).eval()


@register
class AttentionLabels(Distiller):
    """Learn MiniLM input embeddings, soft labels, per-step rates and [CLS] attention targets."""

    name = "attention-labels"
    category = "embedding-level"
    form = "embeddings"
    tracks = ("standard", "native")
    requires = (MINILM,)
    citation = ("Maekawa, Kobayashi, Funakoshi and Okumura 2023, Dataset Distillation with Attention Labels "
                "for Fine-tuning BERT, ACL (short papers).")
    description = """
        Learns MiniLM input embeddings [n, L, 384] (fed through `inputs_embeds`), label logits
        stored as soft labels, one learning rate per inner step (extra "lrs") and attention targets
        (extra "attention_targets" [n, layers, heads, L]: the distribution the [CLS] query of every
        layer and head should put over the keys). Each outer iteration gives the pretrained MiniLM a
        fresh classification head, runs inner_steps differentiable SGD steps on the synthetic set
        with loss CE(soft labels) + attention_lambda * KL(target || model [CLS] attention), and
        minimises the cross-entropy of the updated model on a real pool batch (AdamW with warmup and
        linear decay, gradient clipping). Inputs start from the rows the random baseline keeps at
        the same seed, attention targets from the pretrained model's own [CLS] attention on them.
        """
    learn_inputs: ClassVar[bool] = True
    # Each value with a published source names it. The other values are our choice for a 2-core CPU or a GPU.
    tier_params = {
        # With only tens of outer steps a 1e-2 starting rate barely moves a fresh head, so the CPU
        # tiers start at 0.1 (our choice).
        "smoke": dict(max_length=8, outer_steps=10, inner_steps=1, real_batch_size=32, init_lr=0.1),
        "quick": dict(max_length=16, outer_steps=15, inner_steps=1, real_batch_size=32, init_lr=0.1),
        # These values follow Maekawa et al.'s released configuration
        # (arumaekawa/dataset-distillation-with-attention-labels, configs/default.yaml): one inner
        # step, learning rates 1e-2 for the data and the initial step rate, lambda 1, 30 passes over
        # the pool with real batches of 32, 10% warmup and clipping at 1. Its sequence length of 512
        # is capped by the task's max_length.
        "standard": dict(max_length=512, outer_steps=None, inner_steps=1, real_batch_size=32),
    }

    def __init__(self, *, max_length: int = 16, outer_steps: int | None = 15, passes: float = 30.0,
                 inner_steps: int = 1, real_batch_size: int = 32, lr: float = 0.01, init_lr: float = 0.01,
                 label_init: float = 2.0, attention_lambda: float = 1.0, warmup_ratio: float = 0.1,
                 max_grad_norm: float = 1.0, log_every: int = 2) -> None:
        self.max_length = max_length
        self.outer_steps = outer_steps
        self.passes = passes
        self.inner_steps = inner_steps
        self.real_batch_size = real_batch_size
        self.lr = lr
        self.init_lr = init_lr
        self.label_init = label_init
        self.attention_lambda = attention_lambda
        self.warmup_ratio = warmup_ratio
        self.max_grad_norm = max_grad_norm
        self.log_every = log_every

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext) -> SyntheticSet:
        check_positive(self.name, max_length=self.max_length, outer_steps=self.outer_steps, passes=self.passes,
                       inner_steps=self.inner_steps, real_batch_size=self.real_batch_size, lr=self.lr,
                       init_lr=self.init_lr, log_every=self.log_every)
        device = context.device
        num_classes = pool.task.num_classes
        length = min(self.max_length, pool.task.max_length)
        init_rows = draw_real_rows(pool, budget, seed, self.name)
        outer_steps = self.outer_steps or max(1, math.ceil(self.passes * len(pool) / self.real_batch_size))

        tokenizer, model = load_classifier(num_classes, device)
        bank = minilm_bank(pool.texts(), length, tokenizer, model.get_input_embeddings().weight.detach()).to(device)
        pool_labels = torch.as_tensor(pool.labels, dtype=torch.int64, device=device)
        inputs, mask = bank.embed(init_rows)
        inputs = inputs.clone()
        labels = pool_labels[torch.as_tensor(init_rows)].clone()
        context.logger.info("%s: %d synthetic rows of %d word pieces, %d outer steps x %d inner steps (seed %d)",
                            self.name, len(labels), length, outer_steps, self.inner_steps, seed)

        with seeded(seed, device):
            with torch.no_grad():
                initial = cls_attention(model(inputs_embeds=inputs, attention_mask=mask,
                                              output_attentions=True).attentions)
            learned = {
                "inputs": inputs.requires_grad_(self.learn_inputs),
                "label_logits": (F.one_hot(labels, num_classes).float() * self.label_init).requires_grad_(True),
                "attention_logits": initial.clamp(min=EPSILON).log().requires_grad_(True),
                # Rates are learned directly, as in the paper, so AdamW at lr 1e-2 can double a 1e-2
                # rate in one step. They are clamped at 0 when stored.
                "lrs": torch.full((self.inner_steps,), self.init_lr, device=device, requires_grad=True),
            }
            optimizer = torch.optim.AdamW([t for t in learned.values() if t.requires_grad], lr=self.lr,
                                          weight_decay=0.0)
            scheduler = warmup_linear(optimizer, outer_steps, self.warmup_ratio)
            generator = torch.Generator().manual_seed(seed)
            rows = np.arange(len(pool))
            curve = ObjectiveCurve(self.name, context.logger, outer_steps, self.log_every)

            for _ in range(outer_steps):
                real = sample_rows(rows, self.real_batch_size, generator)
                loss = self._outer_loss(model, learned, mask, bank, real, pool_labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([t for t in learned.values() if t.requires_grad], self.max_grad_norm)
                optimizer.step()
                scheduler.step()
                curve.record(loss.item())

        targets = masked_softmax(learned["attention_logits"].detach(), mask)
        # minilm-finetune replays these rates as plain SGD steps with the attention loss (native track).
        lrs = learned["lrs"].detach().clamp(min=0.0)
        return embedding_set(self, pool, backbone=MINILM, inputs=learned["inputs"], mask=mask, labels=labels,
                             curve=curve, init_rows=init_rows, label_logits=learned["label_logits"],
                             extras={"lrs": lrs, "attention_targets": targets},
                             budget={"value": budget.value, "unit": budget.unit}, seed=seed,
                             attention_lambda=self.attention_lambda)

    def _outer_loss(self, model: nn.Module, learned: dict[str, torch.Tensor], mask: torch.Tensor,
                    bank: TokenBank, real_rows: np.ndarray, pool_labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on real rows of the model after the inner steps on the synthetic set."""
        params = fresh_head_params(model)
        targets = torch.softmax(learned["label_logits"], dim=-1)
        attention_targets = masked_softmax(learned["attention_logits"], mask)

        def train_loss(net: nn.Module, current: Params, step: int) -> torch.Tensor:
            output = call(net, current, inputs_embeds=learned["inputs"], attention_mask=mask, output_attentions=True)
            attention = cls_attention(output.attentions)
            return (soft_cross_entropy(output.logits, targets)
                    + self.attention_lambda * attention_kl(attention_targets, attention))

        trained = unrolled_sgd(model, params, train_loss, learned["lrs"])
        index = torch.as_tensor(real_rows)
        logits = call(model, trained, input_ids=bank.ids[index], attention_mask=bank.mask[index]).logits
        return F.cross_entropy(logits, pool_labels[index])


def fresh_head_params(model: nn.Module) -> Params:
    """Copy the model's parameters as differentiable tensors, with a newly drawn classification head.

    The head is drawn as transformers initialises a new BERT head: weights from N(0, initializer_range),
    biases at zero. The encoder weights stay pretrained.
    """
    params: Params = {}
    std = model.config.initializer_range
    for name, p in model.named_parameters():
        value = p.detach().clone()
        if name.startswith("classifier."):
            value = torch.randn_like(value) * std if value.dim() > 1 else torch.zeros_like(value)
        params[name] = value.requires_grad_(True)
    return params


def warmup_linear(optimizer: torch.optim.Optimizer, steps: int, warmup_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over warmup_ratio * steps, then linear decay to 0 at `steps`."""
    warmup = int(warmup_ratio * steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, 1.0 - (step - warmup) / max(1, steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@register
class AttentionLabelsRandomInputs(AttentionLabels):
    """The attention-labels objective with fixed random real inputs: labels, rates and attention targets are learned."""

    name = "attention-labels+random-inputs"
    category = "selection"
    tracks = ("native",)
    learn_inputs = False
    description = """
        Companion of attention-labels for the native track: the rows the random baseline keeps at
        this seed as MiniLM input embeddings, with soft labels, per-step learning rates and [CLS]
        attention targets learned by the attention-labels objective while the inputs stay fixed.
        """
