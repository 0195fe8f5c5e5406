"""Dataset condensation with gradient matching (Zhao et al. 2021, DC), in GloVe space.

Per class, the synthetic word vectors are moved so that the loss gradients they induce in a
TextCNN match the gradients of a real batch of the same class, layer by layer. The network is
re-initialised every iteration and, between matching steps, trained for a few steps on the
synthetic set so that gradients are matched along a training trajectory and not only at init.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.backbones import GLOVE
from benchmark.synthetic import SyntheticSet
from methods import register
from methods.base import Budget, DistillContext, Distiller, Pool
from methods.embedding_common import (
    GloveProblem,
    ObjectiveCurve,
    check_positive,
    class_rows,
    embedding_set,
    glove_problem,
    sample_rows,
    seeded,
    textcnn,
)

logger = logging.getLogger(__name__)

# (matching steps per iteration, network steps between them) by examples per class, from Zhao et
# al.'s released code (VICO-UoE/DatasetCondensation, utils.get_loops). A budget between two keys
# takes the schedule of the next smaller key.
DC_LOOPS: dict[int, tuple[int, int]] = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15),
                                        50: (50, 10)}


def dc_loops(per_class: int) -> tuple[int, int]:
    """Matching steps and network steps per iteration that DC uses at `per_class` examples per class."""
    key = max([k for k in DC_LOOPS if k <= per_class], default=1)
    return DC_LOOPS[key]


def gradient_distance(synthetic: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of (1 - cosine similarity) per output unit, comparing two gradient lists.

    Each weight gradient is viewed as [outputs, -1]. Bias gradients are skipped because the cosine
    of a single number per unit is only +1 or -1 and carries no direction.
    """
    total = synthetic[0].new_zeros(())
    for g_syn, g_real in zip(synthetic, real):
        if g_syn.dim() < 2:
            continue
        a = g_syn.reshape(g_syn.shape[0], -1)
        b = g_real.reshape(g_real.shape[0], -1)
        total = total + (1 - F.cosine_similarity(a, b, dim=1, eps=1e-6)).sum()
    return total


@register
class GradientMatching(Distiller):
    """Match per-class TextCNN gradients of synthetic and real batches (DC)."""

    name = "gradient-matching"
    category = "embedding-level"
    form = "embeddings"
    tracks = ("standard", "native")
    requires = (GLOVE,)
    citation = "Zhao, Mopuri and Bilen 2021, Dataset Condensation with Gradient Matching, ICLR."
    description = """
        Learns GloVe-space word vectors [n, L, 50] with hard labels. Each iteration draws a fresh
        TextCNN; then, `outer_loop` times, it moves the synthetic vectors of every class so that the
        gradient of the network's cross-entropy on them matches the gradient on a real batch of that
        class (sum over weight tensors of 1 - cosine per output unit), and trains the network for
        `net_steps` SGD steps on the synthetic set. Inputs start from the rows the random baseline
        keeps at the same seed and are updated with Adam (the paper uses SGD at rates set for pixels).
        """
    # Each value with a published source names it. The other values are our choice for a 2-core CPU or a GPU.
    tier_params = {
        "smoke": dict(max_length=16, iterations=20, outer_loop=3, net_steps=2, real_batch_per_class=32,
                      num_filters=16, lr_inputs=0.01),
        "quick": dict(max_length=32, iterations=40, outer_loop=5, net_steps=5, real_batch_per_class=64,
                      num_filters=100),
        # 1000 iterations, 256 real rows per class, network SGD at 0.01 and the loop schedule by
        # budget (outer_loop/net_steps None) follow Zhao et al. 2021 and their released code.
        "standard": dict(max_length=64, iterations=1000, outer_loop=None, net_steps=None,
                         real_batch_per_class=256, num_filters=100),
    }

    def __init__(self, *, max_length: int = 32, iterations: int = 40, outer_loop: int | None = 5,
                 net_steps: int | None = 5, real_batch_per_class: int = 64, lr_inputs: float = 0.002,
                 lr_net: float = 0.01, num_filters: int = 100, dropout: float = 0.5, log_every: int = 5) -> None:
        self.max_length = max_length
        self.iterations = iterations
        self.outer_loop = outer_loop
        self.net_steps = net_steps
        self.real_batch_per_class = real_batch_per_class
        self.lr_inputs = lr_inputs
        self.lr_net = lr_net
        self.num_filters = num_filters
        self.dropout = dropout
        self.log_every = log_every

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext) -> SyntheticSet:
        check_positive(self.name, max_length=self.max_length, iterations=self.iterations,
                       outer_loop=self.outer_loop, net_steps=self.net_steps,
                       real_batch_per_class=self.real_batch_per_class, lr_inputs=self.lr_inputs,
                       lr_net=self.lr_net, num_filters=self.num_filters, log_every=self.log_every)
        default_outer, default_net = dc_loops(budget.value)
        outer_loop = self.outer_loop or default_outer
        net_steps = self.net_steps or default_net
        device = context.device
        problem = glove_problem(pool, budget, seed, self.name, self.max_length, device)
        inputs, mask, labels = problem.initial_set()
        context.logger.info("%s: %d synthetic rows of %d tokens, %d iterations x %d matching steps, %d network "
                            "steps between them (seed %d)", self.name, len(labels), problem.length,
                            self.iterations, outer_loop, net_steps, seed)

        with seeded(seed, device):
            inputs.requires_grad_(True)
            optimizer = torch.optim.Adam([inputs], lr=self.lr_inputs)
            generator = torch.Generator().manual_seed(seed)
            real_by_class = class_rows(problem.labels.cpu().numpy(), problem.num_classes)
            syn_by_class = class_rows(labels.cpu().numpy(), problem.num_classes)
            classes = [c for c in syn_by_class if c in real_by_class]
            curve = ObjectiveCurve(self.name, context.logger, self.iterations, self.log_every)

            for _ in range(self.iterations):
                net = textcnn(problem.num_classes, self.num_filters, self.dropout, inputs.device)
                net_optimizer = torch.optim.SGD(net.parameters(), lr=self.lr_net)
                distances = []
                for step in range(outer_loop):
                    distance = self._match(net, problem, inputs, mask, labels, classes, real_by_class,
                                           syn_by_class, generator)
                    optimizer.zero_grad(set_to_none=True)
                    distance.backward()
                    optimizer.step()
                    distances.append(distance.item())
                    if step < outer_loop - 1:
                        self._train_net(net, net_optimizer, inputs.detach(), mask, labels, net_steps)
                # The curve follows the distance at the fresh network: later matching steps see a network
                # already trained on the synthetic set, whose distance grows as that set gets easier to fit.
                curve.record(distances[0])
                context.logger.debug("%s: mean distance over the matching steps %.4f", self.name,
                                     sum(distances) / len(distances))

        return embedding_set(self, pool, backbone=GLOVE, inputs=inputs, mask=mask, labels=labels, curve=curve,
                             init_rows=problem.init_rows, budget={"value": budget.value, "unit": budget.unit},
                             seed=seed, outer_loop=outer_loop, net_steps=net_steps)

    def _match(self, net: nn.Module, problem: GloveProblem, inputs: torch.Tensor, mask: torch.Tensor,
               labels: torch.Tensor, classes: list[int], real_by_class, syn_by_class,
               generator: torch.Generator) -> torch.Tensor:
        """Gradient distance summed over classes; differentiable with respect to the synthetic inputs."""
        # Dropout off while matching, so both gradients come from the same network.
        net.eval()
        weights = [p for p in net.parameters()]
        total = inputs.new_zeros(())
        for c in classes:
            real_inputs, real_mask, real_labels = problem.real_batch(
                sample_rows(real_by_class[c], self.real_batch_per_class, generator))
            real_loss = F.cross_entropy(net(real_inputs, real_mask), real_labels)
            real_grads = [g.detach() for g in torch.autograd.grad(real_loss, weights)]
            rows = torch.as_tensor(syn_by_class[c], device=inputs.device)
            syn_loss = F.cross_entropy(net(inputs[rows], mask[rows]), labels[rows])
            syn_grads = torch.autograd.grad(syn_loss, weights, create_graph=True)
            total = total + gradient_distance(list(syn_grads), real_grads)
        return total

    def _train_net(self, net: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
                   mask: torch.Tensor, labels: torch.Tensor, steps: int) -> None:
        net.train()
        for _ in range(steps):
            loss = F.cross_entropy(net(inputs, mask), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
