"""Dataset distillation by matching training trajectories (Cazenavette et al. 2022, MTT), in GloVe space.

Expert TextCNNs are trained on the real pool and their parameters are saved after every epoch.
Each iteration starts a student at a random expert checkpoint t, trains it for N differentiable SGD
steps on the synthetic set with a learnable learning rate, and minimises
||theta_N - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2 with respect to the synthetic word
vectors and the rate.
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
    GloveProblem,
    ObjectiveCurve,
    Params,
    call,
    check_positive,
    embedding_set,
    glove_problem,
    seeded,
    textcnn,
    unrolled_sgd,
)

logger = logging.getLogger(__name__)

Trajectory = list[Params]  # parameters at the start and after every epoch


def flat(params: Params) -> torch.Tensor:
    return torch.cat([p.reshape(-1) for p in params.values()])


@register
class TrajectoryMatching(Distiller):
    """Match N student steps on the synthetic set to M expert epochs on real data (MTT)."""

    name = "trajectory-matching"
    category = "embedding-level"
    form = "embeddings"
    tracks = ("standard", "native")
    requires = (GLOVE,)
    citation = ("Cazenavette et al. 2022, Dataset Distillation by Matching Training Trajectories, CVPR.")
    description = """
        Learns GloVe-space word vectors [n, L, 50] (hard labels) and one learning rate. Expert
        TextCNNs are first trained on the pool with plain SGD, saving parameters after every
        epoch. Each iteration starts a student at a random expert epoch t < max_start_epoch, runs
        syn_steps differentiable SGD steps on the whole synthetic set at the learned rate, and
        minimises the squared distance to the expert's parameters at epoch t + match_epochs,
        normalised by the expert's own movement over those epochs (Adam on the vectors and the log
        rate). The rate is stored as extra "lrs", repeated native_steps times, for the native track.
        """
    learn_inputs: ClassVar[bool] = True
    # Each value with a published source names it. The other values are our choice for a 2-core CPU or a GPU.
    tier_params = {
        "smoke": dict(max_length=16, num_experts=1, expert_epochs=3, match_epochs=1, max_start_epoch=2,
                      syn_steps=5, iterations=20, num_filters=16, native_steps=20),
        "quick": dict(max_length=32, num_experts=2, expert_epochs=6, match_epochs=2, max_start_epoch=4,
                      syn_steps=20, iterations=80, num_filters=100, native_steps=300),
        # syn_steps 30, match_epochs 2, max_start_epoch 20 and 5,000 iterations are the CIFAR-10
        # 10-per-class command of the authors' README (GeorgeCazenavette/mtt-distillation). The
        # expert count and length are ours.
        "standard": dict(max_length=64, num_experts=20, expert_epochs=30, match_epochs=2, max_start_epoch=20,
                         syn_steps=30, iterations=5000, num_filters=100, native_steps=1000),
    }

    def __init__(self, *, max_length: int = 32, num_experts: int = 2, expert_epochs: int = 6,
                 expert_lr: float = 0.1, expert_batch_size: int = 64, match_epochs: int = 2,
                 max_start_epoch: int = 4, syn_steps: int = 20, iterations: int = 80, lr_inputs: float = 0.01,
                 lr_lr: float = 0.01, num_filters: int = 100, dropout: float = 0.5, native_steps: int = 300,
                 log_every: int = 10) -> None:
        self.max_length = max_length
        self.num_experts = num_experts
        self.expert_epochs = expert_epochs
        self.expert_lr = expert_lr
        self.expert_batch_size = expert_batch_size
        self.match_epochs = match_epochs
        self.max_start_epoch = max_start_epoch
        self.syn_steps = syn_steps
        self.iterations = iterations
        self.lr_inputs = lr_inputs
        self.lr_lr = lr_lr
        self.num_filters = num_filters
        self.dropout = dropout
        self.native_steps = native_steps
        self.log_every = log_every

    def _check(self) -> None:
        check_positive(self.name, max_length=self.max_length, num_experts=self.num_experts,
                       expert_epochs=self.expert_epochs, expert_lr=self.expert_lr,
                       expert_batch_size=self.expert_batch_size, match_epochs=self.match_epochs,
                       max_start_epoch=self.max_start_epoch, syn_steps=self.syn_steps, iterations=self.iterations,
                       num_filters=self.num_filters, native_steps=self.native_steps, log_every=self.log_every)
        if self.max_start_epoch + self.match_epochs > self.expert_epochs:
            raise ValueError(f"method {self.name!r}: max_start_epoch ({self.max_start_epoch}) + match_epochs "
                             f"({self.match_epochs}) exceeds expert_epochs ({self.expert_epochs}); the last "
                             f"start would have no expert target, so raise expert_epochs or lower the others")

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext) -> SyntheticSet:
        self._check()
        device = context.device
        problem = glove_problem(pool, budget, seed, self.name, self.max_length, device)
        inputs, mask, labels = problem.initial_set()

        with seeded(seed, device):
            experts = [self._train_expert(problem, e, context) for e in range(self.num_experts)]
            context.logger.info("%s: %d synthetic rows of %d tokens, %d iterations of %d student steps "
                                "(seed %d)", self.name, len(labels), problem.length, self.iterations,
                                self.syn_steps, seed)
            inputs.requires_grad_(self.learn_inputs)
            log_lr = torch.tensor(math.log(self.expert_lr), device=device, requires_grad=True)
            groups: list[dict[str, Any]] = [{"params": [log_lr], "lr": self.lr_lr}]
            if self.learn_inputs:
                groups.append({"params": [inputs], "lr": self.lr_inputs})
            optimizer = torch.optim.Adam(groups)
            generator = torch.Generator().manual_seed(seed)
            net = textcnn(problem.num_classes, self.num_filters, self.dropout, device)
            curve = ObjectiveCurve(self.name, context.logger, self.iterations, self.log_every)

            for _ in range(self.iterations):
                expert = experts[int(torch.randint(len(experts), (1,), generator=generator))]
                start = int(torch.randint(self.max_start_epoch, (1,), generator=generator))
                loss = self._matching_loss(net, expert, start, inputs, mask, labels, log_lr)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                curve.record(loss.item())

        lr = float(log_lr.detach().exp())
        context.logger.info("%s: learned learning rate %.4f (started at %.4f)", self.name, lr, self.expert_lr)
        return embedding_set(self, pool, backbone=GLOVE, inputs=inputs, mask=mask, labels=labels, curve=curve,
                             init_rows=problem.init_rows, extras={"lrs": torch.full((self.native_steps,), lr)},
                             budget={"value": budget.value, "unit": budget.unit}, seed=seed, learned_lr=lr)

    def _matching_loss(self, net, expert: Trajectory, start: int, inputs: torch.Tensor, mask: torch.Tensor,
                       labels: torch.Tensor, log_lr: torch.Tensor) -> torch.Tensor:
        """Normalised distance between the student after syn_steps and the expert match_epochs later."""
        origin = flat(expert[start])
        target = flat(expert[start + self.match_epochs])
        params = {name: p.clone().requires_grad_(True) for name, p in expert[start].items()}

        def train_loss(model, current, step):
            return F.cross_entropy(call(model, current, inputs, mask), labels)

        net.train()
        lr = log_lr.exp()
        student = unrolled_sgd(net, params, train_loss, [lr] * self.syn_steps)
        return ((flat(student) - target) ** 2).sum() / ((origin - target) ** 2).sum().clamp(min=1e-12)

    def _train_expert(self, problem: GloveProblem, index: int, context: DistillContext) -> Trajectory:
        """Train one TextCNN on the pool with plain SGD; return its parameters at every epoch boundary."""
        net = textcnn(problem.num_classes, self.num_filters, self.dropout, problem.labels.device)
        optimizer = torch.optim.SGD(net.parameters(), lr=self.expert_lr)
        trajectory = [{k: v.detach().clone() for k, v in net.named_parameters()}]
        net.train()
        for epoch in range(self.expert_epochs):
            order = torch.randperm(len(problem.labels)).numpy()
            total = 0.0
            for begin in range(0, len(order), self.expert_batch_size):
                real_inputs, real_mask, real_labels = problem.real_batch(order[begin:begin + self.expert_batch_size])
                loss = F.cross_entropy(net(real_inputs, real_mask), real_labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(real_labels)
            trajectory.append({k: v.detach().clone() for k, v in net.named_parameters()})
            context.logger.debug("%s: expert %d epoch %d, training loss %.4f", self.name, index, epoch + 1,
                                 total / len(order))
        context.logger.info("%s: expert %d trained for %d epochs, last epoch loss %.4f", self.name, index,
                            self.expert_epochs, total / len(order))
        return trajectory


@register
class TrajectoryMatchingRandomInputs(TrajectoryMatching):
    """The MTT objective with the inputs fixed at random real rows: only the learning rate is learned."""

    name = "trajectory-matching+random-inputs"
    category = "selection"
    tracks = ("native",)
    learn_inputs = False
    description = """
        Companion of trajectory-matching for the native track: the rows the random baseline keeps
        at this seed, in GloVe space, with the learning rate learned by the trajectory-matching
        objective while the word vectors stay fixed (extra "lrs").
        """
