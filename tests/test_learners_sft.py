"""Tests of the smollm2-sft learner on the shipped SmolLM2 weights and real Alpaca records."""

from __future__ import annotations

import os

import pytest
import torch

import tasks
from benchmark import learners
from benchmark.backbones import decoder_path
from benchmark.learners.base import NotApplicableError
from benchmark.learners.sft import IGNORE_INDEX, collate_examples, encode_example, format_prompt
from benchmark.synthetic import SyntheticSet
from tasks.data import Split

pytestmark = pytest.mark.skipif(not os.environ.get("TDDBENCH_DATA_DIR"),
                                reason="set TDDBENCH_DATA_DIR to the local dataset mirror")

SFT = "smollm2-sft"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(decoder_path())


def alpaca_set(rows: int) -> SyntheticSet:
    records = [dict(r) for r in tasks.load("alpaca").pool.records[:rows]]
    return SyntheticSet(task="alpaca", method="random", form="text", records=records)


def test_prompt_matches_chat_template(tokenizer):
    messages = [{"role": "user", "content": "Name a colour.\n\nSky at noon"}]
    expected = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert format_prompt("Name a colour.", "Sky at noon") == expected


def test_prompt_omits_empty_input():
    assert "Name a colour.<|im_end|>" in format_prompt("Name a colour.", "  ")


def test_labels_cover_response_only(tokenizer):
    records = [{"instruction": "Say hi.", "input": "", "output": "Hi there!"},
               {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}]
    examples = [encode_example(tokenizer, r, max_length=256) for r in records]
    batch = collate_examples(examples, tokenizer.pad_token_id)
    for row, (record, example) in enumerate(zip(records, examples)):
        labels = batch["labels"][row]
        response_labels = labels[labels != IGNORE_INDEX].tolist()
        assert tokenizer.decode(response_labels) == record["output"] + "<|im_end|>"
        assert (labels[:len(example.prompt_ids)] == IGNORE_INDEX).all()
        assert int(batch["attention_mask"][row].sum()) == example.length


def test_long_record_truncated_to_max_length(tokenizer):
    record = {"instruction": "Repeat. " * 40, "input": "", "output": "word " * 60}
    example = encode_example(tokenizer, record, max_length=64)
    assert example.length == 64
    assert len(example.response_ids) >= 32
    assert tokenizer.decode(example.prompt_ids).endswith("<|im_start|>assistant\n")


def test_sft_rejects_classification_task():
    cls = learners.get(SFT)
    with pytest.raises(NotApplicableError, match="not task 'sst2' of family 'classification'"):
        cls(tasks.get("sst2"), cls.recipe_for("smoke"))


def test_sft_rejects_other_task_set():
    cls = learners.get(SFT)
    learner = cls(tasks.get("alpaca"), cls.recipe_for("smoke"))
    other = SyntheticSet(task="sst2", method="random", form="text", records=[{"sentence": "x", "label": 0}])
    with pytest.raises(ValueError, match="needs a non-empty set of that task; got 1 records of task 'sst2'"):
        learner.fit(other, seed=0)


def test_sft_rejects_empty_split():
    cls = learners.get(SFT)
    learner = cls(tasks.get("alpaca"), cls.recipe_for("smoke"))
    with pytest.raises(ValueError, match="split 'empty' of task 'alpaca' is empty"):
        learner.evaluate(Split("empty", (), "none"))


def test_sft_seed_repeats_losses():
    cls = learners.get(SFT)
    train = alpaca_set(4)
    losses = []
    for _ in range(2):
        report = cls(tasks.get("alpaca"), cls.recipe_for("smoke")).fit(train, seed=0)
        losses.append(report.losses)
        assert report.steps == 2
        assert report.tokens > 0
    assert losses[0] == losses[1]


@pytest.mark.slow
def test_sft_lowers_held_out_nll():
    """20 Alpaca pool records, quick recipe; NLL on 16 test records before and after training."""
    cls = learners.get(SFT)
    data = tasks.load("alpaca")
    held_out = Split("test-head", data.test.records[:16], f"first 16 rows of {data.test.origin}")
    learner = cls(data.task, cls.recipe_for("quick"))
    before = learner.evaluate(held_out)
    report = learner.fit(alpaca_set(20), seed=0)
    after = learner.evaluate(held_out)
    print(f"alpaca smollm2-sft quick, 20 records: before {before}, after {after}, "
          f"{report.wall_time_s:.1f} s, peak {report.peak_memory_mb:.0f} MiB")
    assert set(after) == {"nll", "rouge_l"}
    assert 0.0 <= after["rouge_l"] <= 1.0
    assert after["nll"] < before["nll"] - 0.02  # measured: 2.00 before, 1.93 after
    assert torch.isfinite(torch.tensor(report.losses)).all()
