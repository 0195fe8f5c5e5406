"""Extractive question answering for the fine-tuning learners: windows, answer labels, span decoding.

A (question, context) pair is tokenized into windows of at most `max_length` tokens. A context
that does not fit is cut into overlapping windows (`stride` tokens shared by neighbours), and
only the context is ever truncated. Training marks the answer's first and last token in each
window that contains the whole answer, and points windows without it at the first token
([CLS]), as in BERT's SQuAD recipe. Prediction takes, over all windows of an example, the
context span with the highest start plus end logit, with end >= start and at most 30 tokens.
The offset mapping then turns that span into the exact substring of the context.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.learners.finetune import EVAL_BATCH_SIZE, Batch, length_sorted_batches, load_pretrained, pad_token_lists
from benchmark.metrics import squad_scores
from benchmark.synthetic import SyntheticSet
from tasks.data import Record, Split
from tasks.spec import TaskSpec

logger = logging.getLogger(__name__)

MAX_ANSWER_TOKENS = 30
MAX_QUESTION_TOKENS = 64  # longer questions are cut, so a window always has room for context

Offsets = list[tuple[int, int] | None]


@dataclass
class QAWindow:
    """One tokenized window of a (question, context) pair.

    `offsets` contains the character span in the context of every context token and None for
    question and special tokens. `start` and `end` are the answer's token positions, 0 and 0
    when the answer is not inside this window.
    """

    example: int
    tokens: dict[str, list[int]]
    offsets: Offsets
    start: int = 0
    end: int = 0

    def context_mask(self) -> torch.Tensor:
        return torch.tensor([span is not None for span in self.offsets], dtype=torch.bool)


def clip_question(tokenizer: Any, question: str, max_tokens: int = MAX_QUESTION_TOKENS) -> str:
    """Strip leading whitespace and keep at most `max_tokens` tokens of the question."""
    question = question.lstrip()
    encoded = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    if len(encoded["input_ids"]) <= max_tokens:
        return question
    return question[:encoded["offset_mapping"][max_tokens - 1][1]]


def tokenize_windows(tokenizer: Any, questions: Sequence[str], contexts: Sequence[str], max_length: int,
                     stride: int) -> list[QAWindow]:
    """Tokenize question/context pairs into windows that truncate and overlap the context only."""
    questions = [clip_question(tokenizer, q) for q in questions]
    encoded = tokenizer(list(questions), list(contexts), truncation="only_second", max_length=max_length,
                        stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in encoded]
    windows = []
    for i, example in enumerate(encoded["overflow_to_sample_mapping"]):
        sequence_ids = encoded.sequence_ids(i)
        offsets: Offsets = [tuple(span) if sequence_ids[t] == 1 else None
                            for t, span in enumerate(encoded["offset_mapping"][i])]
        windows.append(QAWindow(example, {k: encoded[k][i] for k in keys}, offsets))
    return windows


def answer_char_span(context: str, answers: dict[str, list]) -> tuple[int, int] | None:
    """Character span [start, end) of the first reference answer in `context`, None if absent.

    A wrong `answer_start` (possible in generated sets) falls back to the first occurrence.
    """
    if not answers.get("text"):
        return None
    text = answers["text"][0]
    starts = answers.get("answer_start") or [-1]
    start = starts[0]
    if not text or not isinstance(start, int):
        return None
    if start < 0 or context[start:start + len(text)] != text:
        start = context.find(text)
        if start < 0:
            return None
    return start, start + len(text)


def label_window(window: QAWindow, char_start: int, char_end: int) -> None:
    """Set the window's answer token positions; (0, 0) when the answer is not wholly inside it."""
    context_tokens = [t for t, span in enumerate(window.offsets) if span is not None]
    if not context_tokens:
        window.start = window.end = 0
        return
    first, last = context_tokens[0], context_tokens[-1]
    if window.offsets[first][0] > char_start or window.offsets[last][1] < char_end:
        window.start = window.end = 0
        return
    window.start = max(t for t in context_tokens if window.offsets[t][0] <= char_start)
    window.end = min(t for t in context_tokens if window.offsets[t][1] >= char_end)


def best_span(start_logits: torch.Tensor, end_logits: torch.Tensor, context_mask: torch.Tensor,
              max_answer_tokens: int = MAX_ANSWER_TOKENS) -> tuple[int, int, float] | None:
    """Highest-scoring (start, end, start + end logit) with both in the context, end >= start and
    at most `max_answer_tokens` tokens; None when the window has no context token."""
    length = start_logits.shape[0]
    scores = start_logits.float()[:, None] + end_logits.float()[None, :]
    positions = torch.arange(length)
    width = positions[None, :] - positions[:, None]
    valid = context_mask[:, None] & context_mask[None, :] & (width >= 0) & (width < max_answer_tokens)
    if not valid.any():
        return None
    scores = scores.masked_fill(~valid, float("-inf"))
    flat = int(scores.argmax())
    start, end = divmod(flat, length)
    return start, end, float(scores[start, end])


def decode_answers(windows: Sequence[QAWindow], start_logits: Sequence[torch.Tensor],
                   end_logits: Sequence[torch.Tensor], contexts: Sequence[str]) -> list[str]:
    """Decode the best span of each example over all its windows into a substring of its context."""
    best: dict[int, tuple[float, str]] = {}
    for window, starts, ends in zip(windows, start_logits, end_logits):
        span = best_span(starts, ends, window.context_mask())
        if span is None:
            continue
        start, end, score = span
        if window.example not in best or score > best[window.example][0]:
            text = contexts[window.example][window.offsets[start][0]:window.offsets[end][1]]
            best[window.example] = (score, text)
    return [best[i][1] if i in best else "" for i in range(len(contexts))]


@dataclass
class WindowExamples:
    """Labelled training windows, padded per batch."""

    windows: list[QAWindow]
    pad_id: int

    def __len__(self) -> int:
        return len(self.windows)

    def lengths(self) -> list[int]:
        return [len(w.tokens["input_ids"]) for w in self.windows]

    def collate(self, indices: list[int]) -> Batch:
        chosen = [self.windows[i] for i in indices]
        batch = pad_token_lists([w.tokens for w in chosen], self.pad_id)
        batch["start_positions"] = torch.tensor([w.start for w in chosen], dtype=torch.long)
        batch["end_positions"] = torch.tensor([w.end for w in chosen], dtype=torch.long)
        return batch


class SpanObjective:
    """Span extraction with a start/end logit head (family qa), scored by SQuAD exact match and F1."""

    def __init__(self, task: TaskSpec, backbone: str, max_length: int, stride: int) -> None:
        if len(task.input_fields) != 2:
            raise ValueError(f"task {task.name!r}: QA needs input_fields [question, context], "
                             f"got {list(task.input_fields)}")
        room = max_length - MAX_QUESTION_TOKENS - 3  # [CLS] question [SEP] context [SEP]
        if not 0 < stride < room:
            raise ValueError(f"task {task.name!r}: QA stride {stride} must be positive and below {room}, the "
                             f"context room of a {max_length}-token window after a {MAX_QUESTION_TOKENS}-token "
                             f"question; lower the recipe option 'qa_stride' or raise 'qa_max_length'")
        self.task = task
        self.backbone = backbone
        self.max_length = max_length
        self.stride = stride

    def build_model(self) -> tuple[Any, nn.Module]:
        from transformers import AutoModelForQuestionAnswering

        return load_pretrained(AutoModelForQuestionAnswering, self.backbone)

    def windows(self, tokenizer: Any, records: Sequence[Record]) -> list[QAWindow]:
        question_field, context_field = self.task.input_fields
        return tokenize_windows(tokenizer, [str(r[question_field]) for r in records],
                                [str(r[context_field]) for r in records], self.max_length, self.stride)

    def prepare(self, tokenizer: Any, train: SyntheticSet, native: bool) -> WindowExamples:
        _, context_field = self.task.input_fields
        spans = [answer_char_span(str(r[context_field]), r[self.task.target_field]) for r in train.records]
        usable = [r for r, span in zip(train.records, spans) if span is not None]
        if len(usable) < len(train.records):
            logger.warning("set of method %s: skipped %d of %d QA records whose answer text is not in the context",
                           train.method, len(train.records) - len(usable), len(train.records))
        if not usable:
            raise ValueError(f"set of method {train.method!r}: no record's answer text occurs in its context, "
                             f"so there is nothing to train the span head on")
        spans = [span for span in spans if span is not None]
        windows = self.windows(tokenizer, usable)
        for window in windows:
            label_window(window, *spans[window.example])
        return WindowExamples(windows, tokenizer.pad_token_id)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k not in ("start_positions", "end_positions")}
        output = model(**inputs)
        return (F.cross_entropy(output.start_logits, batch["start_positions"])
                + F.cross_entropy(output.end_logits, batch["end_positions"])) / 2

    def predict(self, tokenizer: Any, model: nn.Module, records: Sequence[Record],
                device: torch.device) -> list[str]:
        """Predict the answer text of every record, in input order."""
        windows = self.windows(tokenizer, records)
        starts: list[torch.Tensor] = [torch.empty(0)] * len(windows)
        ends: list[torch.Tensor] = [torch.empty(0)] * len(windows)
        model.eval()
        with torch.inference_mode():
            for indices in length_sorted_batches([len(w.offsets) for w in windows], EVAL_BATCH_SIZE):
                batch = pad_token_lists([windows[i].tokens for i in indices], tokenizer.pad_token_id)
                output = model(**{k: v.to(device) for k, v in batch.items()})
                for row, i in enumerate(indices):
                    length = len(windows[i].offsets)
                    starts[i] = output.start_logits[row, :length].cpu()
                    ends[i] = output.end_logits[row, :length].cpu()
        _, context_field = self.task.input_fields
        return decode_answers(windows, starts, ends, [str(r[context_field]) for r in records])

    def score(self, tokenizer: Any, model: nn.Module, split: Split, device: torch.device) -> dict[str, float]:
        predictions = self.predict(tokenizer, model, split.records, device)
        references = [r[self.task.target_field]["text"] for r in split.records]
        scores = squad_scores(predictions, references)
        return {name: scores[name] for name in self.task.metrics}
