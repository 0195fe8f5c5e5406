"""Supervised fine-tuning of SmolLM2-135M-Instruct on instruction records: the `smollm2-sft` learner.

Records (instruction, input, output) are written in SmolLM2's ChatML chat format with its
default system prompt, and the loss covers only the response tokens and the closing <|im_end|>.
Scores: `nll`, the mean negative log-likelihood per response token over a split (nats, lower
is better), and `rouge_l`, the mean ROUGE-L F1 (0 to 1) of greedy generations on the first K
records of the split. The model trains and runs in fp32.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.backbones import SMOLLM2, load_decoder
from benchmark.cost import measure
from benchmark.learners import register
from benchmark.learners.base import Learner, NotApplicableError, Recipe, TrainReport
from benchmark.learners.finetune import (
    Batch,
    BatchSampler,
    learned_rate_steps,
    length_sorted_batches,
    pick_device,
    seed_everything,
    step_learning_rates,
    train_steps,
)
from benchmark.metrics import rouge_l
from benchmark.synthetic import SyntheticSet
from tasks.data import Record, Split
from tasks.spec import TaskSpec

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label of prompt and padding positions; cross_entropy skips it
EVAL_BATCH_SIZE = 8  # 8 rows of 512 tokens make 0.8 GB of fp32 logits over the 49,152-token vocabulary

# SmolLM2's chat template (ChatML) rendered for one user turn with its default system prompt.
SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
END_OF_TURN = "<|im_end|>"


def format_prompt(instruction: str, input_text: str = "") -> str:
    """Render the chat prompt up to the start of the assistant turn; a non-empty input follows the instruction."""
    user = f"{instruction}\n\n{input_text}" if input_text.strip() else instruction
    return (f"<|im_start|>system\n{SYSTEM_PROMPT}{END_OF_TURN}\n"
            f"<|im_start|>user\n{user}{END_OF_TURN}\n"
            f"<|im_start|>assistant\n")


@dataclass
class SFTExample:
    """Prompt and response token ids of one record, already cut to the recipe's max length."""

    prompt_ids: list[int]
    response_ids: list[int]

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)


def encode_example(tokenizer: Any, record: Record, max_length: int) -> SFTExample:
    """Tokenize a record's prompt and response, cut to at most `max_length` tokens together.

    An overlong row keeps at least half of the window for the response. The prompt loses its
    start, so the assistant-turn header at its end survives.
    """
    prompt = tokenizer(format_prompt(str(record["instruction"]), str(record.get("input", ""))),
                       add_special_tokens=False)["input_ids"]
    response = tokenizer(str(record["output"]) + END_OF_TURN, add_special_tokens=False)["input_ids"]
    if len(prompt) + len(response) > max_length:
        response = response[:max_length - min(len(prompt), max_length // 2)]
        prompt = prompt[len(prompt) - (max_length - len(response)):]
    return SFTExample(prompt, response)


def collate_examples(examples: Sequence[SFTExample], pad_id: int) -> Batch:
    """Right-padded input ids, attention mask and labels (IGNORE_INDEX outside the responses)."""
    width = max(e.length for e in examples)
    ids, mask, labels = [], [], []
    for e in examples:
        padding = width - e.length
        ids.append(e.prompt_ids + e.response_ids + [pad_id] * padding)
        mask.append([1] * e.length + [0] * padding)
        labels.append([IGNORE_INDEX] * len(e.prompt_ids) + e.response_ids + [IGNORE_INDEX] * padding)
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}


def response_nll(model: nn.Module, batch: Batch, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy over the labelled (response) positions of `batch`."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    predicted = logits[:, :-1].reshape(-1, logits.shape[-1])
    targets = batch["labels"][:, 1:].reshape(-1)
    return F.cross_entropy(predicted.float(), targets, ignore_index=IGNORE_INDEX, reduction=reduction)


@register
class SmolLM2SFT(Learner):
    """Full supervised fine-tuning of SmolLM2-135M-Instruct. Recipe options: `generate_records`
    (K, records scored by ROUGE-L) and `max_new_tokens` (length cap of each greedy generation)."""

    name = "smollm2-sft"
    families = ("instruction",)
    description = ("Supervised fine-tuning of SmolLM2-135M-Instruct (30-layer Llama decoder) on the response "
                   "tokens; scores held-out NLL per token and ROUGE-L of greedy generations.")
    recipes = {
        "smoke": Recipe(learner="smollm2-sft", tier="smoke", model=SMOLLM2, steps=2, full_data_steps=2, lr=5e-5,
                        batch_size=2, max_length=128, warmup_ratio=0.0, weight_decay=0.0, grad_clip=1.0,
                        options=(("generate_records", 2), ("max_new_tokens", 16), ("length_grouped", True))),
        # Sized for a 2-core CPU: a step on 4 Alpaca rows took about 35 s there on one thread under load.
        # lr 1e-4 lowered dev NLL after 10 steps on 20 records as much as 5e-5 and more than 2e-5.
        "quick": Recipe(learner="smollm2-sft", tier="quick", model=SMOLLM2, steps=10, full_data_steps=20, lr=1e-4,
                        batch_size=4, max_length=256, warmup_ratio=0.1, weight_decay=0.0, grad_clip=1.0,
                        options=(("generate_records", 8), ("max_new_tokens", 48), ("length_grouped", True))),
        # NOTE: the standard values follow common Alpaca fine-tuning settings and were not tuned here.
        "standard": Recipe(learner="smollm2-sft", tier="standard", model=SMOLLM2, steps=200, full_data_steps=2000,
                           lr=2e-5, batch_size=32, max_length=512, warmup_ratio=0.1, weight_decay=0.0, grad_clip=1.0,
                           options=(("generate_records", 100), ("max_new_tokens", 128), ("length_grouped", True))),
    }

    def __init__(self, task: TaskSpec, recipe: Recipe) -> None:
        super().__init__(task, recipe)
        unknown = sorted(set(task.metrics) - {"nll", "rouge_l"})
        if unknown:
            raise ValueError(f"learner {self.name!r} cannot compute metric(s) {unknown} of task {task.name!r}; "
                             f"it computes ['nll', 'rouge_l']")
        missing = sorted({"instruction", "input"} - set(task.input_fields))
        if missing or task.target_field != "output":
            raise ValueError(f"learner {self.name!r} needs records with fields instruction, input and output; "
                             f"task {task.name!r} has inputs {list(task.input_fields)} and target {task.target_field!r}")
        self.device = pick_device()
        self.tokenizer: Any = None
        self.model: nn.Module | None = None

    def _load(self) -> nn.Module:
        self.tokenizer, model = load_decoder(SMOLLM2)
        return model.to(self.device)

    def fit(self, train: SyntheticSet, seed: int, *, full_data: bool = False,
            native: bool = False) -> TrainReport:
        # Set-up: validate before any compute.
        reason = self.applicability(self.task, train)
        if reason is not None:
            raise NotApplicableError(reason)
        if train.task != self.task.name or len(train) == 0:
            raise ValueError(f"learner {self.name!r} for task {self.task.name!r} needs a non-empty set of that "
                             f"task; got {len(train)} records of task {train.task!r} from method {train.method!r}")
        step_lrs = None if full_data else step_learning_rates(train, native)
        steps = self.recipe.full_data_steps if full_data else self.recipe.steps
        if step_lrs is not None:
            steps = int(step_lrs.numel())
        logger.info("%s on %s: %d records, %d steps, seed %d, recipe %s", self.name, self.task.name, len(train),
                    steps, seed, self.recipe.recipe_id)
        seed_everything(seed)

        with measure() as cost:
            model = self._load()

            # Data: tokenize once; batches are padded to their own longest row.
            examples = [encode_example(self.tokenizer, r, self.recipe.max_length) for r in train.records]
            pad_id = self.tokenizer.pad_token_id
            if step_lrs is not None:
                whole = {k: v.to(self.device) for k, v in collate_examples(examples, pad_id).items()}
                losses, tokens = learned_rate_steps(model, whole, response_nll, step_lrs)
            else:
                lengths = [e.length for e in examples] if self.recipe.option("length_grouped", False) else None
                sampler = iter(BatchSampler(len(examples), self.recipe.batch_size, seed, lengths))
                batches = ({k: v.to(self.device) for k, v in
                            collate_examples([examples[i] for i in next(sampler)], pad_id).items()}
                           for _ in range(steps))
                losses, tokens = train_steps(model, batches, response_nll, self.recipe, steps)

        model.eval()
        self.model = model
        logger.info("%s trained in %.1f s, final loss %.4f", self.name, cost.wall_time_s,
                    losses[-1] if losses else float("nan"))
        return TrainReport(wall_time_s=cost.wall_time_s, peak_memory_mb=cost.peak_memory_mb, tokens=tokens,
                           steps=steps, examples=len(examples), losses=losses)

    def evaluate(self, split: Split) -> dict[str, float]:
        """Score NLL per response token and ROUGE-L on `split`; before `fit`, the pretrained model is scored."""
        if len(split) == 0:
            raise ValueError(f"split {split.name!r} of task {self.task.name!r} is empty; nothing to evaluate")
        scores = {"nll": self.mean_nll(split.records),
                  "rouge_l": self.mean_rouge_l(split.records[:self.recipe.option("generate_records", 8)])}
        return {name: scores[name] for name in self.task.metrics}

    def scored_model(self) -> nn.Module:
        """Return the model trained by `fit`, or load the pretrained one when `fit` was not called."""
        if self.model is None:
            logger.info("%s: fit() was not called, so the pretrained model is scored", self.name)
            self.model = self._load().eval()
        return self.model

    def mean_nll(self, records: Sequence[Record]) -> float:
        """Compute the mean negative log-likelihood (nats) per reference response token over `records`."""
        model = self.scored_model()
        examples = [encode_example(self.tokenizer, r, self.recipe.max_length) for r in records]
        total, count = 0.0, 0
        with torch.inference_mode():
            for indices in length_sorted_batches([e.length for e in examples], EVAL_BATCH_SIZE):
                batch = collate_examples([examples[i] for i in indices], self.tokenizer.pad_token_id)
                batch = {k: v.to(self.device) for k, v in batch.items()}
                total += float(response_nll(model, batch, reduction="sum"))
                count += int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        return total / count

    def generate(self, record: Record) -> str:
        """Generate the greedy continuation of the record's prompt, up to `max_new_tokens` tokens or <|im_end|>."""
        model = self.scored_model()
        prompt = format_prompt(str(record["instruction"]), str(record.get("input", "")))
        ids = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        ids = ids[:, -self.recipe.max_length:].to(self.device)
        with torch.inference_mode():
            output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                    max_new_tokens=self.recipe.option("max_new_tokens", 48),
                                    eos_token_id=self.tokenizer.eos_token_id,
                                    pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.decode(output[0, ids.shape[1]:], skip_special_tokens=True).strip()

    def mean_rouge_l(self, records: Sequence[Record]) -> float:
        """Compute the mean ROUGE-L F1 of greedy generations against the reference outputs of `records`."""
        scores = [rouge_l(self.generate(r), str(r["output"])) for r in records]
        return sum(scores) / len(scores)
