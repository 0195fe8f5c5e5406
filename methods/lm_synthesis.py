"""LM synthesis: prompt the generator to write new examples, without any gradient information.

A generation baseline in the line of ZeroGen (Ye et al. 2022, label-conditional prompts) and
Self-Instruct (Wang et al. 2023, new instruction/response pairs in the style of a few seed
examples). The prompt contains the task description, the class name and a few pool rows of that
class. Sampled continuations are parsed into records, duplicates and copies of pool rows are
dropped, and the generator's own scores pick the records that are kept.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from benchmark.backbones import SMOLLM2
from benchmark.synthetic import SyntheticSet
from methods import register
from methods.base import Budget, DistillContext, Distiller, Pool
from methods.generator import (
    BLOCK_END,
    Generator,
    check_positive_ints,
    check_sampling,
    class_prompt,
    continuation_nll,
    example_statistics,
    fill_quota,
    format_block,
    label_log_probabilities,
    load_generator,
    normalized_key,
    parse_block,
    record_fields,
    record_text,
    sample_continuations,
)
from methods.selection import budget_groups
from tasks.data import Record
from tasks.spec import TaskSpec

logger = logging.getLogger(__name__)


@dataclass
class Candidate:
    """A parsed sample: its field values, whether the block separator was reached, and its score."""

    values: dict[str, str]
    complete: bool
    score: float = -math.inf


def response_log_likelihood(generator: Generator, task: TaskSpec, candidates: list[Candidate]) -> np.ndarray:
    """Compute the mean token log-likelihood [n] of each candidate's target given its input fields."""
    target = task.target_field
    contexts, texts = [], []
    for candidate in candidates:
        block = format_block(task, candidate.values).rsplit(BLOCK_END, 1)[0]
        head, _, _ = block.rpartition(f"{target}:")
        contexts.append(f"{head}{target}:")
        texts.append(f" {candidate.values[target]}")
    totals, counts = continuation_nll(generator, contexts, texts)
    return -totals / np.maximum(counts, 1)


@register
class LMSynthesis(Distiller):
    """Few-shot prompted generation, kept by the generator's own label likelihood."""

    name = "lm-synthesis"
    category = "text-level"
    families = ("classification", "nli", "instruction")
    requires = (SMOLLM2,)
    citation = ("Ye et al. 2022, ZeroGen: Efficient Zero-shot Learning via Dataset Generation, EMNLP; "
                "Wang et al. 2023, Self-Instruct: Aligning Language Models with Self-Generated Instructions, ACL.")
    description = """
        Prompts a causal LM (SmolLM2-135M-Instruct by default) with the task description, the class
        name and `shots` random pool rows of that class written as `field: value` blocks. It samples
        continuations of up to `max_new_tokens` tokens per field and parses them back into records.
        Duplicates, malformed samples and copies of pool rows are dropped. Of the rest, each class
        keeps the `budget` records with the highest generator probability of their intended class
        name given the text, normalized over the task's classes. For instruction tasks it writes
        instruction/input/output records in the style of `shots` pool rows and keeps the `budget`
        records (in total) whose output has the highest mean token log-likelihood given the
        instruction. Samples that reached the end of their block rank before truncated ones.
        """
    # NOTE: the "standard" values are our own scale-up; ZeroGen and Self-Instruct used much larger
    # generators and candidate pools, which a 135M generator cannot reproduce.
    tier_params = {
        "smoke": dict(shots=2, candidates_per_example=2, max_new_tokens=24, sample_batch_size=4),
        "quick": dict(shots=3, candidates_per_example=3, max_new_tokens=40, sample_batch_size=8),
        "standard": dict(shots=4, candidates_per_example=10, max_new_tokens=128, sample_batch_size=32),
    }

    def __init__(self, *, generator: str = SMOLLM2, shots: int = 3, candidates_per_example: int = 4,
                 max_new_tokens: int = 48, sample_batch_size: int = 8, max_rounds: int = 3,
                 shot_max_chars: int = 400, temperature: float = 1.0, top_p: float = 0.95) -> None:
        self.generator = generator
        self.shots = shots
        self.candidates_per_example = candidates_per_example
        self.max_new_tokens = max_new_tokens
        self.sample_batch_size = sample_batch_size
        self.max_rounds = max_rounds
        self.shot_max_chars = shot_max_chars
        self.temperature = temperature
        self.top_p = top_p

    def check_params(self) -> None:
        """Raise ValueError on the first invalid hyperparameter, before any model is loaded."""
        check_positive_ints(self.name, shots=self.shots, candidates_per_example=self.candidates_per_example,
                            max_new_tokens=self.max_new_tokens, sample_batch_size=self.sample_batch_size,
                            max_rounds=self.max_rounds, shot_max_chars=self.shot_max_chars)
        check_sampling(self.name, self.temperature, self.top_p)

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext) -> SyntheticSet:
        task = pool.task
        groups = budget_groups(pool, budget)
        if task.family not in self.families:
            raise ValueError(f"method {self.name!r} handles families {list(self.families)}, not task "
                             f"{task.name!r} of family {task.family!r}")
        self.check_params()
        rng = np.random.default_rng(seed)
        generator = load_generator(self.generator)
        pool_keys = {normalized_key(record_text(task, record)) for record in pool.records}

        records: list[Record] = []
        repeated = 0
        for group in groups:
            candidates = self.sample_candidates(generator, pool, group.label, group.indices, budget.value,
                                                pool_keys, rng)
            self.score(generator, task, group.label, candidates)
            ranked = sorted(candidates, key=lambda c: (c.complete, c.score), reverse=True)[:budget.value]
            what = f"lm-synthesis: {'task' if group.label is None else f'class {group.label} of task'} {task.name}"
            if not ranked:
                raise RuntimeError(f"{what}: the generator produced no usable sample; raise max_new_tokens, "
                                   f"candidates_per_example or max_rounds")
            if budget.unit == "per_class":
                ranked, extra = fill_quota(ranked, budget.value, what)
                repeated += extra
            for candidate in ranked:
                record: Record = dict(candidate.values)
                if task.label_field:
                    record[task.label_field] = group.label
                records.append(record)

        statistics = example_statistics(generator, task, records)
        logger.info("lm-synthesis: %d records for task %s (budget %s, seed %d)", len(records), task.name, budget, seed)
        return self.text_set(pool, records, budget={"value": budget.value, "unit": budget.unit}, seed=seed,
                             per_example=statistics, perplexity_model=self.generator, repeated_examples=repeated)

    def sample_candidates(self, generator: Generator, pool: Pool, label: int | None, rows: np.ndarray,
                          quota: int, pool_keys: set[str], rng: np.random.Generator) -> list[Candidate]:
        """Distinct, well-formed samples for one budget group, `candidates_per_example` x `quota` per round.

        Every prompt draws fresh shots, so the samples do not all imitate the same few rows. Rounds
        repeat, up to `max_rounds`, until at least `quota` candidates are usable.
        """
        task = pool.task
        short = np.array([i for i in rows if len(record_text(task, pool.records[i])) <= self.shot_max_chars])
        shot_rows = short if len(short) >= self.shots else rows
        target = self.candidates_per_example * quota
        max_new_tokens = self.max_new_tokens * len(record_fields(task))
        candidates: list[Candidate] = []
        seen: set[str] = set()
        for _ in range(self.max_rounds):
            drawn = 0
            while drawn < target:
                # A class without pool rows gets a zero-shot prompt: description and class name only.
                picked = []
                if len(shot_rows):
                    picked = rng.choice(shot_rows, size=min(self.shots, len(shot_rows)), replace=False)
                shots = [pool.records[int(i)] for i in picked]
                size = min(self.sample_batch_size, target - drawn)
                continuations = sample_continuations(
                    generator, class_prompt(task, label, shots), size, max_new_tokens=max_new_tokens,
                    temperature=self.temperature, top_p=self.top_p, seed=int(rng.integers(2**31 - 1)))
                drawn += size
                for continuation in continuations:
                    values, complete = parse_block(task, continuation)
                    if values is None:
                        continue
                    key = normalized_key(record_text(task, values))
                    if key in seen or key in pool_keys:
                        continue
                    seen.add(key)
                    candidates.append(Candidate(values, complete))
            if len(candidates) >= quota:
                break
        return candidates

    def score(self, generator: Generator, task: TaskSpec, label: int | None, candidates: list[Candidate]) -> None:
        """Set each candidate's score: log P(its class | text), or the response log-likelihood."""
        if not candidates:
            return
        if label is None:
            scores = response_log_likelihood(generator, task, candidates)
        else:
            records = [{**c.values, task.label_field: label} for c in candidates]
            scores = label_log_probabilities(generator, task, records)[:, label]
        for candidate, value in zip(candidates, scores):
            candidate.score = float(value)
