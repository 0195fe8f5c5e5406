"""Dataset distillation by backpropagation through unrolled training (Wang et al. 2018), in GloVe space.

The synthetic set is a tensor of word vectors [n, L, 50] with learnable label logits and one
learnable learning rate per inner step. Each outer iteration trains a freshly initialised TextCNN
for a few differentiable SGD steps on the whole synthetic set and scores it on a real pool batch.
That loss is backpropagated through the unrolled steps into the vectors, the labels and the rates.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import torch
from torch.nn import functional as F

from benchmark.backbones import GLOVE
from benchmark.synthetic import SyntheticSet
from methods import register
from methods.base import Budget, DistillContext, Distiller, Pool
from methods.embedding_common import (
    ObjectiveCurve,
    call,
    check_positive,
    class_rows,
    embedding_set,
    glove_problem,
    model_params,
    sample_rows,
    seeded,
    soft_cross_entropy,
    textcnn,
    unrolled_sgd,
)

logger = logging.getLogger(__name__)


@register
class DDBPTT(Distiller):
    """Learn word vectors, soft labels and per-step learning rates through an unrolled inner loop."""

    name = "dd-bptt"
    category = "embedding-level"
    form = "embeddings"
    tracks = ("standard", "native")
    requires = (GLOVE,)
    citation = ("Wang et al. 2018, Dataset Distillation, arXiv:1811.10959; Sucholutsky and Schonlau 2021, "
                "Soft-Label Dataset Distillation and Text Dataset Distillation, IJCNN; Li and Li 2021, "
                "Data Distillation for Text Classification, arXiv:2104.08448.")
    description = """
        Learns a GloVe-space synthetic set (word vectors [n, L, 50] with the masks of the real rows
        it starts from), label logits stored as soft labels, and one learning rate per inner step
        (extra "lrs"). Every outer iteration draws a fresh TextCNN, trains it for len(lrs)
        differentiable SGD steps on the whole synthetic set, and minimises the cross-entropy of the
        trained network on a real pool batch by backpropagating through the unrolled steps (Adam on
        all learned tensors). Inputs start from the rows the random baseline keeps at the same seed.
        """
    # Whether the word vectors are learned; the +random-inputs companion keeps them fixed.
    learn_inputs: ClassVar[bool] = True
    # Each value with a published source names it. The other values are our choice for a 2-core CPU or a GPU.
    tier_params = {
        "smoke": dict(max_length=16, outer_steps=25, inner_steps=3, real_batch_size=64, num_filters=16),
        "quick": dict(max_length=32, outer_steps=150, inner_steps=10, real_batch_size=128, num_filters=100),
        # 30 inner steps: 10 steps x 3 epochs, as in Wang et al. 2018 (Sec. 4); outer iterations, batch
        # and learning rates are ours.
        "standard": dict(max_length=64, outer_steps=2000, inner_steps=30, real_batch_size=256, num_filters=100),
    }

    def __init__(self, *, max_length: int = 32, outer_steps: int = 150, inner_steps: int = 10,
                 real_batch_size: int = 128, lr_inputs: float = 0.05, lr_labels: float = 0.05,
                 lr_lrs: float = 0.05, init_lr: float = 0.5, label_init: float = 2.0, num_filters: int = 100,
                 dropout: float = 0.5, log_every: int = 10) -> None:
        self.max_length = max_length
        self.outer_steps = outer_steps
        self.inner_steps = inner_steps
        self.real_batch_size = real_batch_size
        self.lr_inputs = lr_inputs
        self.lr_labels = lr_labels
        self.lr_lrs = lr_lrs
        self.init_lr = init_lr
        self.label_init = label_init
        self.num_filters = num_filters
        self.dropout = dropout
        self.log_every = log_every

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext) -> SyntheticSet:
        check_positive(self.name, max_length=self.max_length, outer_steps=self.outer_steps,
                       inner_steps=self.inner_steps, real_batch_size=self.real_batch_size, init_lr=self.init_lr,
                       num_filters=self.num_filters, log_every=self.log_every)
        device = context.device
        problem = glove_problem(pool, budget, seed, self.name, self.max_length, device)
        inputs, mask, labels = problem.initial_set()
        num_classes = problem.num_classes
        context.logger.info("%s: %d synthetic rows of %d tokens, %d outer steps x %d inner steps (seed %d)",
                            self.name, len(labels), problem.length, self.outer_steps, self.inner_steps, seed)

        with seeded(seed, device):
            inputs.requires_grad_(self.learn_inputs)
            label_logits = (F.one_hot(labels, num_classes).float() * self.label_init).requires_grad_(True)
            # Rates are learned in log space so that they stay positive.
            log_lrs = torch.full((self.inner_steps,), math.log(self.init_lr), device=device, requires_grad=True)
            groups: list[dict[str, Any]] = [{"params": [label_logits], "lr": self.lr_labels},
                                            {"params": [log_lrs], "lr": self.lr_lrs}]
            if self.learn_inputs:
                groups.append({"params": [inputs], "lr": self.lr_inputs})
            optimizer = torch.optim.Adam(groups)
            generator = torch.Generator().manual_seed(seed)
            rows = torch.arange(len(problem.labels)).numpy()
            curve = ObjectiveCurve(self.name, context.logger, self.outer_steps, self.log_every)

            for _ in range(self.outer_steps):
                loss = self._outer_loss(problem, inputs, mask, label_logits, log_lrs, rows, generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                curve.record(loss.item())

        lrs = log_lrs.detach().exp()
        context.logger.info("%s: learned rates from %.4f to %.4f", self.name, float(lrs.min()), float(lrs.max()))
        return embedding_set(self, pool, backbone=GLOVE, inputs=inputs, mask=mask, labels=labels, curve=curve,
                             init_rows=problem.init_rows, label_logits=label_logits, extras={"lrs": lrs},
                             budget={"value": budget.value, "unit": budget.unit}, seed=seed,
                             classes_present=sorted(class_rows(labels.cpu().numpy(), num_classes)))

    def _outer_loss(self, problem, inputs: torch.Tensor, mask: torch.Tensor, label_logits: torch.Tensor,
                    log_lrs: torch.Tensor, rows, generator: torch.Generator) -> torch.Tensor:
        """Cross-entropy on a real batch of a fresh TextCNN after the unrolled steps on the synthetic set."""
        net = textcnn(problem.num_classes, self.num_filters, self.dropout, inputs.device)
        targets = torch.softmax(label_logits, dim=-1)

        def train_loss(model, params, step):
            return soft_cross_entropy(call(model, params, inputs, mask), targets)

        net.train()
        trained = unrolled_sgd(net, model_params(net), train_loss, log_lrs.exp())
        net.eval()
        real_inputs, real_mask, real_labels = problem.real_batch(sample_rows(rows, self.real_batch_size, generator))
        return F.cross_entropy(call(net, trained, real_inputs, real_mask), real_labels)


@register
class DDBPTTRandomInputs(DDBPTT):
    """The dd-bptt objective with the inputs fixed at random real rows: only labels and rates are learned."""

    name = "dd-bptt+random-inputs"
    category = "selection"
    tracks = ("native",)
    learn_inputs = False
    description = """
        Companion of dd-bptt for the native track: the same rows the random baseline keeps at this
        seed, in GloVe space, with soft labels and per-step learning rates learned by the dd-bptt
        objective while the word vectors stay fixed. Comparing dd-bptt with it under native
        separates the gain of the learned inputs from the gain of the learned extras.
        """
