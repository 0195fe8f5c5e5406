"""The text generator shared by the text-level methods: loading, prompts, sampling and scoring.

A generator is a causal LM: SmolLM2-135M-Instruct from its pip package by default, or any causal
LM id from the Hugging Face Hub (GPT-2 is what DiLM used). It runs in fp32 on CPU unless a method
moves it. Records are written for the generator as field blocks, one `field: value` line per
field, and blocks are separated by a `###` line, so a sampled continuation can be parsed back into
a record of the task's schema.
"""

from __future__ import annotations

import copy
import logging
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmark.backbones import SMOLLM2, load_decoder
from benchmark.budget import optional_input_fields
from tasks.data import Record, joined_text
from tasks.spec import TaskSpec

logger = logging.getLogger(__name__)

BLOCK_END = "###"
DOCUMENT_SEPARATOR = "<|endoftext|>"
SCORE_BATCH_SIZE = 16


@dataclass
class Generator:
    """A causal LM with its tokenizer; `name` is the backbone name or Hub id it was loaded from."""

    name: str
    tokenizer: Any
    model: nn.Module

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


_loaded: dict[str, tuple[Any, nn.Module]] = {}


def load_generator(name: str = SMOLLM2, *, trainable: bool = False) -> Generator:
    """Load generator `name` once per process; `trainable` returns a private copy a method may change.

    The shared copy is frozen and in eval mode, so methods that only sample or score can use it
    without reloading the weights. A trainable copy has its own tokenizer, so added tokens stay private.
    """
    if name not in _loaded:
        tokenizer, model = load_decoder(name)
        model.eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        _loaded[name] = (tokenizer, model)
    tokenizer, model = _loaded[name]
    if not trainable:
        return Generator(name, tokenizer, model)
    model = copy.deepcopy(model)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return Generator(name, copy.deepcopy(tokenizer), model)


def check_positive_ints(method: str, **values: Any) -> None:
    """Raise ValueError naming the first hyperparameter of `method` that is not a positive integer."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"method {method!r}: {key}={value!r} is invalid; use a positive integer")


def check_positive_floats(method: str, **values: Any) -> None:
    """Raise ValueError naming the first hyperparameter of `method` that is not a positive finite number."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise ValueError(f"method {method!r}: {key}={value!r} is invalid; use a positive number")


def check_sampling(method: str, temperature: Any, top_p: Any) -> None:
    """Raise ValueError when the nucleus-sampling settings of `method` are out of range."""
    check_positive_floats(method, temperature=temperature)
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise ValueError(f"method {method!r}: top_p={top_p!r} is invalid; use a number in (0, 1]")


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global generator for a block and restore its previous state afterwards.

    `generate` and dropout draw from the global generator, so this keeps sampling reproducible
    without changing the randomness seen by the code around it.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ---------------------------------------------------------------- record <-> text

def record_fields(task: TaskSpec) -> tuple[str, ...]:
    """Fields a generator writes for one record: the inputs, plus the target of instruction tasks."""
    if task.family == "instruction" and task.target_field:
        return task.input_fields + (task.target_field,)
    return task.input_fields


def record_text(task: TaskSpec, record: Record) -> str:
    """Return the text of a record on which perplexity and token counts are measured."""
    text = joined_text(task, record)
    if task.family == "instruction" and task.target_field:
        text = f"{text}\n{record.get(task.target_field, '')}"
    return text


def task_summary(task: TaskSpec) -> str:
    """Return the first sentence of the task description, which describes the examples."""
    first = re.split(r"(?<=[.!?])\s", task.description.strip(), maxsplit=1)[0]
    return first.strip()


def format_block(task: TaskSpec, record: Record) -> str:
    """Format one record as `field: value` lines followed by the block separator."""
    lines = [f"{name}: {record.get(name, '')}" for name in record_fields(task)]
    return "\n".join(lines) + f"\n{BLOCK_END}\n"


def class_prompt(task: TaskSpec, label: int | None, shots: Sequence[Record]) -> str:
    """Build a prompt asking for one more record of class `label` (None: no label) after example records.

    The prompt ends with the first field's name, so the continuation is that field's value.
    """
    header = f"{task_summary(task)}\n"
    if label is not None:
        header += f'Every example below has the label "{task.label_names[label]}".\n'
    header += "\n"
    body = "".join(format_block(task, shot) for shot in shots)
    return f"{header}{body}{record_fields(task)[0]}:"


def parse_block(task: TaskSpec, continuation: str) -> tuple[dict[str, str] | None, bool]:
    """Parse a continuation of `class_prompt` into field values; returns (fields or None, complete).

    `complete` is True when the block separator was reached. Classification and NLI values are one
    line each; an instruction task's last field (its target) may span lines up to the separator.
    Returns None for the fields when one is missing, or empty where `check_set` requires text.
    """
    complete = BLOCK_END in continuation
    block = continuation.split(BLOCK_END, 1)[0]
    names = record_fields(task)
    text = f"{names[0]}:{block}"
    values: dict[str, str] = {}
    for position, name in enumerate(names):
        prefix = f"{name}:"
        if not text.startswith(prefix):
            return None, complete
        text = text[len(prefix):]
        following = names[position + 1] if position + 1 < len(names) else None
        if following is not None:
            match = re.search(rf"\n{re.escape(following)}:", text)
            if match is None:
                return None, complete
            value, text = text[:match.start()], text[match.start() + 1:]
        else:
            value = text
        multiline = task.family == "instruction"
        value = value.strip() if multiline else value.strip().split("\n", 1)[0].strip()
        values[name] = value
    optional = optional_input_fields(task)
    if any(not values[name] for name in names if name not in optional):
        return None, complete
    return values, complete


def normalized_key(text: str) -> str:
    """Return the key under which two texts count as duplicates: lower case, single spaces."""
    return " ".join(text.lower().split())


def fill_quota(items: list[Any], quota: int, what: str) -> tuple[list[Any], int]:
    """Repeat `items` in order up to `quota` entries when there are fewer; returns them and the repeat count.

    Per-class budgets require exactly `quota` examples. A class with too few distinct samples
    therefore repeats its samples instead of failing the cell, and the caller stores the count.
    """
    if not items:
        raise RuntimeError(f"{what}: the generator produced no usable sample; raise max_new_tokens or the "
                           f"number of candidates, or check the generator's output format")
    if len(items) >= quota:
        return items, 0
    repeated = quota - len(items)
    logger.warning("%s: only %d distinct usable samples for a quota of %d; repeating %d of them",
                   what, len(items), quota, repeated)
    return [items[i % len(items)] for i in range(quota)], repeated


# ---------------------------------------------------------------- sampling

def sample_continuations(generator: Generator, prompt: str, count: int, *, max_new_tokens: int,
                         temperature: float, top_p: float, seed: int,
                         stop: Sequence[str] = (BLOCK_END,)) -> list[str]:
    """Sample `count` continuations of `prompt` (nucleus sampling), seeded by `seed`.

    Generation of a sequence stops at any string in `stop` or after `max_new_tokens` new tokens.
    """
    tokenizer, model = generator.tokenizer, generator.model
    encoded = tokenizer(prompt, return_tensors="pt").to(generator.device)
    with seeded(seed), torch.inference_mode():
        output = model.generate(
            **encoded, do_sample=True, temperature=temperature, top_p=top_p, top_k=0,
            max_new_tokens=max_new_tokens, num_return_sequences=count,
            pad_token_id=tokenizer.pad_token_id, stop_strings=list(stop) or None, tokenizer=tokenizer)
    new_tokens = output[:, encoded["input_ids"].shape[1]:]
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


def sample_ids(generator: Generator, prefixes: Sequence[Sequence[int]], per_prefix: int, *, max_new_tokens: int,
               temperature: float, top_p: float, seed: int) -> list[list[int]]:
    """Sample `per_prefix` token sequences after each prefix, each cut after its first eos token.

    Returns the new tokens only, `per_prefix` consecutive entries per prefix in prefix order.
    Prefixes of different lengths are left-padded, so they share one `generate` call.
    """
    tokenizer, model = generator.tokenizer, generator.model
    width = max(len(prefix) for prefix in prefixes)
    ids = torch.full((len(prefixes), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prefix in enumerate(prefixes):
        if prefix:
            ids[row, width - len(prefix):] = torch.tensor(list(prefix), dtype=torch.long)
            mask[row, width - len(prefix):] = 1
    with seeded(seed), torch.inference_mode():
        output = model.generate(
            input_ids=ids.to(generator.device), attention_mask=mask.to(generator.device), do_sample=True,
            temperature=temperature, top_p=top_p, top_k=0, max_new_tokens=max_new_tokens,
            num_return_sequences=per_prefix, pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id)
    sequences = []
    for row in output[:, width:].tolist():
        if tokenizer.eos_token_id in row:
            row = row[:row.index(tokenizer.eos_token_id) + 1]
        sequences.append(row)
    return sequences


# ---------------------------------------------------------------- scoring

def context_token_id(tokenizer: Any) -> int:
    """Return the token placed before a text scored on its own: the LM's pretraining document separator.

    That is `<|endoftext|>` where the vocabulary has it (GPT-2, SmolLM2), else the bos token, else
    the eos token. SmolLM2's eos token `<|im_end|>` closes a chat turn and is almost always followed
    by a newline, so scoring after it would inflate the first token's loss.
    """
    vocabulary = tokenizer.get_vocab()
    if DOCUMENT_SEPARATOR in vocabulary:
        return int(vocabulary[DOCUMENT_SEPARATOR])
    token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token is None:
        raise ValueError(f"generator tokenizer {type(tokenizer).__name__} has neither an eos nor a bos "
                         f"token, so a text cannot be scored from its first token; use a causal LM "
                         f"tokenizer that defines one")
    return int(token)


def token_nll(model: nn.Module, sequences: Sequence[Sequence[int]], scored_from: Sequence[int],
              pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Compute the summed negative log-likelihood [n] and the number of scored tokens [n] of token sequences.

    Token j of sequence i is scored when j >= scored_from[i] (j >= 1 always, as token 0 has no
    context). Gradients flow to the model unless the caller disables them.
    """
    device = next(model.parameters()).device
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(sequences), width), dtype=torch.long, device=device)
    scored = torch.zeros((len(sequences), width), dtype=torch.bool, device=device)
    for i, (sequence, start) in enumerate(zip(sequences, scored_from)):
        ids[i, :len(sequence)] = torch.tensor(list(sequence), dtype=torch.long)
        mask[i, :len(sequence)] = 1
        scored[i, max(start, 1):len(sequence)] = True

    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    targets = ids[:, 1:]
    losses = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                         reduction="none").view(targets.shape)
    weights = scored[:, 1:].to(losses.dtype)
    return (losses * weights).sum(1), weights.sum(1)


def continuation_nll(generator: Generator, contexts: Sequence[str], texts: Sequence[str],
                     batch_size: int = SCORE_BATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Compute the summed NLL and token count of each `texts[i]` given `contexts[i]`, without gradients.

    Every sequence starts with `context_token_id`, so an empty context scores the text on its own.
    Sequences are scored in batches sorted by length, so padding stays small.
    """
    tokenizer = generator.tokenizer
    start_token = context_token_id(tokenizer)
    sequences, starts = [], []
    for context, text in zip(contexts, texts):
        context_ids = tokenizer(context, add_special_tokens=False)["input_ids"] if context else []
        text_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        prefix = [start_token] + context_ids
        sequences.append(prefix + text_ids)
        starts.append(len(prefix))
    totals = np.zeros(len(sequences))
    counts = np.zeros(len(sequences))
    order = np.argsort([len(s) for s in sequences], kind="stable")
    with torch.inference_mode():
        for begin in range(0, len(order), batch_size):
            chunk = order[begin:begin + batch_size]
            nll, count = token_nll(generator.model, [sequences[i] for i in chunk], [starts[i] for i in chunk],
                                   tokenizer.pad_token_id)
            totals[chunk] = nll.double().cpu().numpy()
            counts[chunk] = count.double().cpu().numpy()
    return totals, counts


def example_statistics(generator: Generator, task: TaskSpec, records: Sequence[Record]) -> list[dict[str, Any]]:
    """Measure every record's length in generator tokens and its perplexity under the generator.

    Perplexity is exp(mean token NLL) of the record text after the document separator token; a record
    with no tokens gets perplexity NaN.
    """
    texts = [record_text(task, record) for record in records]
    totals, counts = continuation_nll(generator, [""] * len(texts), texts)
    statistics = []
    for total, count in zip(totals, counts):
        perplexity = math.exp(total / count) if count else float("nan")
        statistics.append({"tokens": int(count), "perplexity": float(perplexity)})
    return statistics


def label_log_probabilities(generator: Generator, task: TaskSpec, records: Sequence[Record]) -> np.ndarray:
    """Compute log P(label name | record) [n, C] under the generator, normalized over the task's classes.

    Each record is written as its field block followed by `label:`. The score of a class is the
    summed log-probability of its name's tokens after a space.
    """
    contexts, texts = [], []
    prefix = f"{task_summary(task)}\n\n"
    for record in records:
        block = format_block(task, record).rsplit(BLOCK_END, 1)[0]
        for name in task.label_names:
            contexts.append(f"{prefix}{block}label:")
            texts.append(f" {name}")
    totals, _ = continuation_nll(generator, contexts, texts)
    scores = -totals.reshape(len(records), task.num_classes)
    return scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)
