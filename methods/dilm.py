"""DiLM: distil a dataset into a label-conditional generator, then sample the set from it.

Maekawa, Kosugi, Funakoshi and Okumura 2024, "DiLM: Distilling Dataset into Language Model for
Text-level Dataset Distillation", Findings of NAACL 2024 (arXiv:2404.00264).

Stage A fine-tunes the generator as a label-conditional LM: each class gets a new start token and
sentence pairs get a separator token. Stage B trains it further by gradient matching. Sampled text
is not differentiable, so each sampled example's loss is weighted by softmax(-NLL / tau) of the
generator's own per-example loss, and the matching loss reaches the generator through those
weights. Finally many candidates are sampled per class, and k-means on the learner's embeddings
keeps the candidate nearest each centroid.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import nn

from benchmark.backbones import MINILM, SMOLLM2
from benchmark.synthetic import SyntheticSet
from methods import register
from methods.base import Budget, DistillContext, Distiller, Pool
from methods.generator import (
    Generator,
    check_positive_floats,
    check_positive_ints,
    check_sampling,
    example_statistics,
    fill_quota,
    load_generator,
    normalized_key,
    sample_ids,
    seeded,
    token_nll,
)
from methods.kmeans import nearest_distinct
from methods.selection import budget_groups
from tasks.data import Record, joined_text
from tasks.spec import TaskSpec

logger = logging.getLogger(__name__)

SEPARATOR_TOKEN = "<|dilm_sep|>"


def label_token(label: int) -> str:
    return f"<|dilm_label_{label}|>"


@dataclass
class ConditionalGenerator:
    """A generator extended with one start token per class and, for pair tasks, a separator token."""

    generator: Generator
    label_ids: list[int]
    separator_id: int | None

    @property
    def model(self) -> nn.Module:
        return self.generator.model


def add_condition_tokens(generator: Generator, task: TaskSpec) -> ConditionalGenerator:
    """Add the class start tokens (and the separator of pair tasks) to a trainable generator.

    New embedding rows start from the mean embedding of the class name's tokens, and the separator
    from the newline token, so a few fine-tuning steps already give usable conditioning.
    """
    tokenizer, model = generator.tokenizer, generator.model
    pair = len(task.input_fields) == 2
    new_tokens = [label_token(c) for c in range(task.num_classes)] + ([SEPARATOR_TOKEN] if pair else [])
    tokenizer.add_special_tokens({"additional_special_tokens": new_tokens})
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)

    embeddings = model.get_input_embeddings().weight
    label_ids = [tokenizer.convert_tokens_to_ids(label_token(c)) for c in range(task.num_classes)]
    with torch.no_grad():
        for label, token_id in enumerate(label_ids):
            name_ids = tokenizer(" " + task.label_names[label].replace("_", " "), add_special_tokens=False)["input_ids"]
            embeddings[token_id] = embeddings[name_ids].mean(0)
        separator_id = None
        if pair:
            separator_id = tokenizer.convert_tokens_to_ids(SEPARATOR_TOKEN)
            newline_ids = tokenizer("\n", add_special_tokens=False)["input_ids"]
            embeddings[separator_id] = embeddings[newline_ids].mean(0)
    return ConditionalGenerator(generator, label_ids, separator_id)


def encode_record(conditional: ConditionalGenerator, task: TaskSpec, record: Record, max_length: int) -> list[int]:
    """Encode a pool record as `<label> field1 [<sep> field2] <eos>` token ids, truncated to `max_length`."""
    tokenizer = conditional.generator.tokenizer
    ids = [conditional.label_ids[int(record[task.label_field])]]
    for position, name in enumerate(task.input_fields):
        if position:
            ids.append(conditional.separator_id)
        ids.extend(tokenizer(str(record[name]), add_special_tokens=False)["input_ids"])
    ids.append(tokenizer.eos_token_id)
    return ids[:max_length]


def decode_sample(conditional: ConditionalGenerator, task: TaskSpec, ids: list[int]) -> dict[str, str] | None:
    """Decode the input fields of a sampled id sequence (after the class token), or None when it is malformed.

    A pair task's sample must hold exactly one separator, and every field must decode to text.
    """
    tokenizer = conditional.generator.tokenizer
    if ids and ids[-1] == tokenizer.eos_token_id:
        ids = ids[:-1]
    if conditional.separator_id is None:
        parts = [ids]
    else:
        if ids.count(conditional.separator_id) != 1:
            return None
        cut = ids.index(conditional.separator_id)
        parts = [ids[:cut], ids[cut + 1:]]
    values = {name: tokenizer.decode(part, skip_special_tokens=True).strip()
              for name, part in zip(task.input_fields, parts)}
    if any(not value for value in values.values()):
        return None
    return values


def sample_text(conditional: ConditionalGenerator, task: TaskSpec, ids: list[int]) -> str:
    """Return the text of a sampled sequence that the learner embeds, also for a malformed sample."""
    values = decode_sample(conditional, task, ids)
    if values is None:
        tokenizer = conditional.generator.tokenizer
        return tokenizer.decode(ids, skip_special_tokens=True).strip()
    return joined_text(task, values)


def flat_gradient(loss: torch.Tensor, parameters: list[nn.Parameter], create_graph: bool) -> torch.Tensor:
    gradients = torch.autograd.grad(loss, parameters, create_graph=create_graph)
    return torch.cat([g.reshape(-1) for g in gradients])


def matching_loss(conditional: ConditionalGenerator, head: nn.Linear, label: int, real_features: torch.Tensor,
                  synthetic_ids: list[list[int]], synthetic_features: torch.Tensor, tau: float) -> torch.Tensor:
    """Compute 1 - cos(real gradient, weighted synthetic gradient) of the head's loss for one class.

    The synthetic examples' losses are weighted by softmax(-NLL / tau) of their mean token NLL under
    the generator, and the synthetic gradient keeps its graph, so the result is differentiable with
    respect to the generator's parameters.
    """
    parameters = list(head.parameters())
    real_targets = torch.full((len(real_features),), label, dtype=torch.long)
    real_gradient = flat_gradient(nn.functional.cross_entropy(head(real_features), real_targets),
                                  parameters, create_graph=False).detach()

    sequences = [[conditional.label_ids[label]] + ids for ids in synthetic_ids]
    pad_id = conditional.generator.tokenizer.pad_token_id
    total, count = token_nll(conditional.model, sequences, [1] * len(sequences), pad_id)
    mean_nll = total / count.clamp(min=1)
    weights = torch.softmax(-mean_nll / tau, dim=0)

    synthetic_targets = torch.full((len(synthetic_features),), label, dtype=torch.long)
    losses = nn.functional.cross_entropy(head(synthetic_features), synthetic_targets, reduction="none")
    synthetic_gradient = flat_gradient((weights * losses).sum(), parameters, create_graph=True)
    return 1 - nn.functional.cosine_similarity(real_gradient, synthetic_gradient, dim=0)


@dataclass
class TrainedGenerator:
    """The generator after stages A and B, with the loss of every step of each stage."""

    conditional: ConditionalGenerator
    lm_losses: list[float]
    gm_losses: list[float]
    wall_time_s: float


# Stages A and B do not depend on the budget, so one trained generator serves every budget of a
# (pool, seed, hyperparameters) key. The last one stays in memory for the next cell of the process.
# A cell that reuses it reports the training time as "reused_work_s", which the harness adds to
# the cell's distillation cost.
_trained: dict[tuple, TrainedGenerator] = {}
SAMPLING_ONLY_PARAMS = frozenset({"candidates_per_example", "max_rounds"})


def clear_trained_generators() -> None:
    """Drop the kept trained generator, so the next `distill` trains from scratch."""
    _trained.clear()


@register
class DiLM(Distiller):
    """Label-conditional generator trained by gradient matching; the set is sampled from it."""

    name = "dilm"
    category = "text-level"
    requires = (SMOLLM2, MINILM)
    citation = ("Maekawa, Kosugi, Funakoshi and Okumura 2024, DiLM: Distilling Dataset into Language Model "
                "for Text-level Dataset Distillation, Findings of NAACL 2024, arXiv:2404.00264.")
    description = """
        Fine-tunes a causal LM (SmolLM2-135M-Instruct by default; DiLM used GPT-2) as a
        label-conditional generator: one new start token per class, and a separator token between
        the two sentences of a pair task. It then trains the generator by gradient matching against
        a learner made of frozen all-MiniLM-L6-v2 sentence embeddings and a linear head. Per class,
        the real gradient of the head's loss comes from a batch drawn from a k-means coreset of the
        pool. The synthetic gradient comes from sampled text whose losses are weighted by
        softmax(-NLL / tau) of the generator's own per-example NLL, so 1 - cosine of the two
        gradients reaches the generator through the weights. Between generator steps the head trains
        on real data. The set is built by sampling `candidates_per_example` x budget candidates per
        class and keeping the candidate nearest each of `budget` k-means centroids of their MiniLM
        embeddings. Training does not depend on the budget, so within one process the trained
        generator is reused for every budget of the same pool, seed and training hyperparameters.
        """
    tier_params = {
        "smoke": dict(lm_steps=1, lm_batch_size=2, max_length=24, gm_steps=1, gm_real_batch=4,
                      gm_synthetic_batch=2, coreset_size=8, head_steps=1, candidates_per_example=2,
                      sample_batch_size=4),
        "quick": dict(lm_steps=30, lm_batch_size=8, lm_lr=1e-4, max_length=48, gm_steps=4, gm_real_batch=32,
                      gm_synthetic_batch=8, coreset_size=50, head_steps=5, candidates_per_example=4,
                      sample_batch_size=16),
        # The standard values follow the authors' released configurations (arumaekawa/DiLM,
        # configs/train/lm.yaml and configs/train/dc.yaml). Stage A: 80,000 steps of 64 rows at lr
        # 1e-5. Stage B: 20,000 generator steps at lr 3e-7 with 64 synthetic and 200 real rows per
        # class (k-means coresets of 200), the learner reset every 10 generator steps and trained
        # 20 steps between them. Sampling: 100 candidates per kept example, top-p 0.95. Their learner is
        # BERT-base with only the classifier's gradient matched; here it is a linear head on frozen
        # MiniLM sentence embeddings, and their generator is GPT-2 (pass generator="gpt2" online).
        "standard": dict(lm_steps=80_000, lm_batch_size=64, lm_lr=1e-5, max_length=64, gm_steps=20_000,
                         gm_lr=3e-7, gm_real_batch=200, gm_synthetic_batch=64, coreset_size=200, head_steps=20,
                         head_reset_every=10, candidates_per_example=100, sample_batch_size=64, top_p=0.95),
    }

    def __init__(self, *, generator: str = SMOLLM2, lm_steps: int = 200, lm_batch_size: int = 16,
                 lm_lr: float = 5e-5, max_length: int = 64, gm_steps: int = 20, gm_lr: float = 1e-5,
                 gm_real_batch: int = 64, gm_synthetic_batch: int = 16, coreset_size: int = 100,
                 tau: float = 1.0, head_steps: int = 5, head_lr: float = 1e-2, head_reset_every: int = 10,
                 candidates_per_example: int = 20, sample_batch_size: int = 32, max_rounds: int = 3,
                 temperature: float = 1.0, top_p: float = 0.95) -> None:
        self.generator = generator
        self.lm_steps = lm_steps
        self.lm_batch_size = lm_batch_size
        self.lm_lr = lm_lr
        self.max_length = max_length
        self.gm_steps = gm_steps
        self.gm_lr = gm_lr
        self.gm_real_batch = gm_real_batch
        self.gm_synthetic_batch = gm_synthetic_batch
        self.coreset_size = coreset_size
        self.tau = tau
        self.head_steps = head_steps
        self.head_lr = head_lr
        self.head_reset_every = head_reset_every
        self.candidates_per_example = candidates_per_example
        self.sample_batch_size = sample_batch_size
        self.max_rounds = max_rounds
        self.temperature = temperature
        self.top_p = top_p

    def check_params(self) -> None:
        """Raise ValueError on the first invalid hyperparameter, before any model is loaded."""
        check_positive_ints(self.name, lm_batch_size=self.lm_batch_size, max_length=self.max_length,
                            gm_real_batch=self.gm_real_batch, gm_synthetic_batch=self.gm_synthetic_batch,
                            coreset_size=self.coreset_size, head_reset_every=self.head_reset_every,
                            candidates_per_example=self.candidates_per_example,
                            sample_batch_size=self.sample_batch_size, max_rounds=self.max_rounds)
        # Zero steps skip a stage, which the ablations of stage A and stage B need.
        for key in ("lm_steps", "gm_steps", "head_steps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"method {self.name!r}: {key}={value!r} is invalid; use an integer >= 0")
        check_positive_floats(self.name, lm_lr=self.lm_lr, gm_lr=self.gm_lr, tau=self.tau, head_lr=self.head_lr)
        check_sampling(self.name, self.temperature, self.top_p)
        if self.max_length < 4:
            raise ValueError(f"method {self.name!r}: max_length={self.max_length} is too short to hold a class "
                             f"token, text and an eos token; use at least 4")

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext) -> SyntheticSet:
        task = pool.task
        budget_groups(pool, budget)
        if task.family not in self.families:
            raise ValueError(f"method {self.name!r} handles families {list(self.families)}, not task "
                             f"{task.name!r} of family {task.family!r}")
        if len(task.input_fields) > 2:
            raise ValueError(f"method {self.name!r}: task {task.name!r} has {len(task.input_fields)} input fields; "
                             f"DiLM generates one sentence or a sentence pair")
        self.check_params()

        key = self.training_key(pool, seed)
        reused = key in _trained
        if reused:
            logger.info("dilm: reusing the generator trained on this pool with seed %d", seed)
            trained = _trained[key]
        else:
            _trained.clear()
            trained = self.train_generator(pool, seed, context)
            _trained[key] = trained
        # Sampling draws from its own seeded stream, so a reused generator yields the same set.
        sampling_rng = np.random.default_rng([seed, 1])
        records, repeated = self.select_samples(trained.conditional, pool, budget.value, sampling_rng, context)

        statistics = example_statistics(load_generator(self.generator), task, records)
        logger.info("dilm: %d records for task %s (budget %s, seed %d)", len(records), task.name, budget, seed)
        return self.text_set(pool, records, budget={"value": budget.value, "unit": budget.unit}, seed=seed,
                             per_example=statistics, perplexity_model=self.generator,
                             repeated_examples=repeated, lm_losses=trained.lm_losses,
                             gm_losses=trained.gm_losses, generator_reused=reused,
                             generator_training_s=trained.wall_time_s,
                             reused_work_s=trained.wall_time_s if reused else 0.0)

    def training_key(self, pool: Pool, seed: int) -> tuple:
        """Return the cache key of the trained generator: the pool, the seed and the training hyperparameters."""
        params = tuple((k, v) for k, v in sorted(self.get_params().items()) if k not in SAMPLING_ONLY_PARAMS)
        return pool.task.name, pool.fingerprint, len(pool), seed, params

    def train_generator(self, pool: Pool, seed: int, context: DistillContext) -> TrainedGenerator:
        """Run stages A and B on a fresh copy of the pretrained generator, seeded by `seed`."""
        started = time.perf_counter()
        rng = np.random.default_rng([seed, 0])
        conditional = add_condition_tokens(load_generator(self.generator, trainable=True), pool.task)
        features = torch.from_numpy(np.asarray(context.pool_embeddings(pool), dtype=np.float32))
        with seeded(int(rng.integers(2**31 - 1))):
            lm_losses = self.fit_language_model(conditional, pool, rng)
            gm_losses = self.match_gradients(conditional, pool, features, rng, context)
        return TrainedGenerator(conditional, lm_losses, gm_losses, time.perf_counter() - started)

    # ------------------------------------------------------------ stage A

    def fit_language_model(self, conditional: ConditionalGenerator, pool: Pool,
                           rng: np.random.Generator) -> list[float]:
        """Fine-tune the generator on pool records with the LM loss; returns the loss of every step."""
        if self.lm_steps == 0:
            return []
        task, model = pool.task, conditional.model
        pad_id = conditional.generator.tokenizer.pad_token_id
        optimizer = torch.optim.AdamW(model.parameters(), lr=self.lm_lr)
        model.train()
        losses = []
        for step in range(self.lm_steps):
            rows = rng.choice(len(pool), size=min(self.lm_batch_size, len(pool)), replace=False)
            sequences = [encode_record(conditional, task, pool.records[i], self.max_length) for i in rows]
            total, count = token_nll(model, sequences, [1] * len(sequences), pad_id)
            loss = total.sum() / count.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(float(loss.detach()))
        logger.info("dilm stage A: %d LM steps, loss %.3f -> %.3f", self.lm_steps, losses[0], losses[-1])
        return losses

    # ------------------------------------------------------------ stage B

    def coresets(self, pool: Pool, features: torch.Tensor, rng: np.random.Generator) -> dict[int, np.ndarray]:
        """Select each class's k-means coreset: the pool rows nearest `coreset_size` centroids."""
        coresets = {}
        for label, rows in pool.indices_by_class().items():
            if len(rows) <= self.coreset_size:
                coresets[label] = rows
                continue
            points = features[rows].numpy()
            model = KMeans(n_clusters=self.coreset_size, n_init=1, random_state=int(rng.integers(2**31 - 1)))
            model.fit(points)
            coresets[label] = rows[nearest_distinct(points, model.cluster_centers_)]
        return coresets

    def match_gradients(self, conditional: ConditionalGenerator, pool: Pool, features: torch.Tensor,
                        rng: np.random.Generator, context: DistillContext) -> list[float]:
        """Train the generator by gradient matching against a MiniLM + linear-head learner.

        Returns the matching loss (summed over classes) of every generator step.
        """
        if self.gm_steps == 0:
            return []
        task, model = pool.task, conditional.model
        coresets = self.coresets(pool, features, rng)
        labels = torch.from_numpy(pool.labels)
        optimizer = torch.optim.AdamW(model.parameters(), lr=self.gm_lr)
        head = nn.Linear(features.shape[1], task.num_classes)
        head_optimizer = torch.optim.Adam(head.parameters(), lr=self.head_lr)
        losses = []
        for step in range(self.gm_steps):
            if step % self.head_reset_every == 0:
                head.reset_parameters()
                head_optimizer = torch.optim.Adam(head.parameters(), lr=self.head_lr)

            model.train()
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for label, coreset in coresets.items():
                if len(coreset) == 0:
                    continue
                real_rows = rng.choice(coreset, size=min(self.gm_real_batch, len(coreset)), replace=False)
                synthetic_ids = self.sample_class(conditional, task, label, self.gm_synthetic_batch, rng)
                texts = [sample_text(conditional, task, ids) for ids in synthetic_ids]
                synthetic_features = torch.from_numpy(np.asarray(context.embed(texts), dtype=np.float32))
                model.train()
                loss = matching_loss(conditional, head, label, features[real_rows], synthetic_ids,
                                     synthetic_features, self.tau)
                loss.backward()
                total += float(loss.detach())
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            head.zero_grad(set_to_none=True)
            losses.append(total)

            # Train the head on real data, so the next step matches gradients of a partly trained learner.
            for _ in range(self.head_steps):
                rows = rng.choice(len(pool), size=min(self.gm_real_batch * task.num_classes, len(pool)), replace=False)
                head_loss = nn.functional.cross_entropy(head(features[rows]), labels[rows])
                head_optimizer.zero_grad(set_to_none=True)
                head_loss.backward()
                head_optimizer.step()
        logger.info("dilm stage B: %d generator steps, matching loss %.3f -> %.3f", self.gm_steps, losses[0],
                    losses[-1])
        return losses

    # ------------------------------------------------------------ sampling the set

    def sample_class(self, conditional: ConditionalGenerator, task: TaskSpec, label: int, count: int,
                     rng: np.random.Generator) -> list[list[int]]:
        """Sample `count` id sequences of class `label` (without the class token), in chunks.

        For a pair task, a sample that ends without the separator gets the separator appended
        and a second sentence of up to `max_length // 2` tokens sampled after it, so that a
        briefly fine-tuned generator still yields well-formed pairs.
        """
        conditional.model.eval()
        prefix = [conditional.label_ids[label]]
        sequences: list[list[int]] = []
        while len(sequences) < count:
            size = min(self.sample_batch_size, count - len(sequences))
            sequences += sample_ids(conditional.generator, [prefix], size, max_new_tokens=self.max_length - 1,
                                    temperature=self.temperature, top_p=self.top_p,
                                    seed=int(rng.integers(2**31 - 1)))
        if conditional.separator_id is None:
            return sequences

        eos = conditional.generator.tokenizer.eos_token_id
        unfinished = [i for i, ids in enumerate(sequences) if conditional.separator_id not in ids]
        for start in range(0, len(unfinished), self.sample_batch_size):
            chunk = unfinished[start:start + self.sample_batch_size]
            firsts = [[t for t in sequences[i] if t != eos] + [conditional.separator_id] for i in chunk]
            seconds = sample_ids(conditional.generator, [prefix + first for first in firsts], 1,
                                 max_new_tokens=max(self.max_length // 2, 1), temperature=self.temperature,
                                 top_p=self.top_p, seed=int(rng.integers(2**31 - 1)))
            for i, first, second in zip(chunk, firsts, seconds):
                sequences[i] = first + second
        return sequences

    def select_samples(self, conditional: ConditionalGenerator, pool: Pool, quota: int, rng: np.random.Generator,
                       context: DistillContext) -> tuple[list[Record], int]:
        """Sample candidates per class and keep `quota` of them by k-means on their MiniLM embeddings.

        Returns the records and how many of them repeat another record of their class (see fill_quota).
        """
        task = pool.task
        records: list[Record] = []
        repeated = 0
        for label in range(task.num_classes):
            target = self.candidates_per_example * quota
            candidates: list[dict[str, Any]] = []
            seen: set[str] = set()
            # Malformed and repeated samples are dropped, so more rounds are drawn while too few remain.
            for _ in range(self.max_rounds):
                for ids in self.sample_class(conditional, task, label, target, rng):
                    values = decode_sample(conditional, task, ids)
                    if values is None or normalized_key(joined_text(task, values)) in seen:
                        continue
                    seen.add(normalized_key(joined_text(task, values)))
                    candidates.append(values)
                if len(candidates) >= quota:
                    break
            chosen = list(range(len(candidates)))
            if len(candidates) > quota:
                points = np.asarray(context.embed([joined_text(task, c) for c in candidates]), dtype=np.float64)
                model = KMeans(n_clusters=quota, n_init=1, random_state=int(rng.integers(2**31 - 1)))
                model.fit(points)
                chosen = nearest_distinct(points, model.cluster_centers_).tolist()
            chosen, extra = fill_quota(chosen, quota, f"dilm: class {label} of task {task.name}")
            repeated += extra
            records += [{**candidates[i], task.label_field: label} for i in chosen]
        return records, repeated
