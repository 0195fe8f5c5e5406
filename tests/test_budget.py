"""The budget check: valid sets pass with their size, and every broken set is rejected by name."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from collections import Counter

import numpy as np
import pytest
import torch

import methods
import tasks
from benchmark.budget import BudgetError, SetStats, check_set
from benchmark.synthetic import SyntheticSet
from methods.base import Budget, DistillContext, Distiller, Pool

CONTEXT = DistillContext(seed=0, logger=logging.getLogger("test"), embed=lambda texts: np.zeros((len(texts), 4)))
PER_CLASS_5 = Budget(5, "per_class")


def real_pool(name: str) -> Pool:
    data = tasks.load(name)
    return Pool(data.task, data.pool.records, data.pool.fingerprint)


def random_set(name: str, budget: Budget = PER_CLASS_5, seed: int = 0) -> SyntheticSet:
    return methods.get("random")().distill(real_pool(name), budget, seed=seed, context=CONTEXT)


def text_set(task_name: str, records: list[dict]) -> SyntheticSet:
    spec = tasks.get(task_name)
    return SyntheticSet(task=task_name, method="test", form="text", records=records,
                        manifest={"label_field": spec.label_field})


def embedding_set(n: int = 4, length: int = 6, width: int = 50, **overrides) -> SyntheticSet:
    """A valid GloVe-space token-level set for sst2, with `overrides` replacing tensors."""
    tensors = {
        "inputs": torch.randn(n, length, width),
        "attention_mask": torch.ones(n, length, dtype=torch.long),
        "labels": torch.tensor([i % 2 for i in range(n)], dtype=torch.long),
        "soft_labels": torch.full((n, 2), 0.5),
    }
    extras = {"lrs": torch.full((3,), 0.01)}
    for key, value in overrides.items():
        if key == "lrs":
            extras[key] = value
        elif value is None:
            tensors.pop(key)
        else:
            tensors[key] = value
    return SyntheticSet(task="sst2", method="test", form="embeddings", tensors=tensors,
                        backbone="glove-6b-50d", extras=extras)


# ---------------------------------------------------------------- a deliberately broken adapter

class BrokenSelection(Distiller):
    """Random selection, then one deliberate fault."""

    name = "broken"
    category = "selection"

    def __init__(self, *, fault: str = "over_budget") -> None:
        self.fault = fault

    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext) -> SyntheticSet:
        synthetic = methods.get("random")().distill(pool, budget, seed, context)
        records = copy.deepcopy(synthetic.records)
        label_field = pool.task.label_field
        if self.fault == "over_budget":
            extra = next(r for r in pool.records if r[label_field] == 1 and r not in records)
            records.append(dict(extra))
        elif self.fault == "wrong_label":
            records[0][label_field] = pool.task.num_classes
        elif self.fault == "empty_text":
            records[2][pool.task.input_fields[0]] = "   "
        return self.text_set(pool, records)


@pytest.mark.parametrize(("fault", "message"), [
    ("over_budget", r"method 'broken' on task 'sst2': class 'positive' \(id 1\) has 6 examples, "
                    r"over the budget of 5 per class"),
    ("wrong_label", r"records\[0\]: field 'label': label id 2 is out of range; task 'sst2' has 2 classes"),
    ("empty_text", r"records\[2\]: input field 'sentence' is empty or whitespace-only"),
])
def test_broken_adapter_rejected(fault, message):
    synthetic = BrokenSelection(fault=fault).distill(real_pool("sst2"), PER_CLASS_5, seed=0, context=CONTEXT)
    with pytest.raises(BudgetError, match=message):
        check_set(synthetic, tasks.get("sst2"), PER_CLASS_5, "broken")


def test_budget_error_is_value_error():
    assert issubclass(BudgetError, ValueError)


# ---------------------------------------------------------------- valid sets and their size

def test_valid_set_stats(tmp_path):
    synthetic = random_set("rte")
    task = tasks.get("rte")
    stats = check_set(synthetic, task, PER_CLASS_5, "random")

    tokens = sum(len(r["sentence1"].split()) + len(r["sentence2"].split()) for r in synthetic.records)
    synthetic.save(tmp_path / "set")
    assert isinstance(stats, SetStats)
    assert stats.examples == 10
    assert stats.class_counts == {0: 5, 1: 5}
    assert stats.tokens == tokens
    assert stats.bytes == (tmp_path / "set" / "records.jsonl").stat().st_size
    assert json.loads(json.dumps(stats.to_dict()))["examples"] == 10


def test_valid_soft_labels_pass():
    synthetic = random_set("trec")
    for record in synthetic.records:
        record["soft_label"] = [0.5, 0.1, 0.1, 0.1, 0.1, 0.1]
    stats = check_set(synthetic, tasks.get("trec"), PER_CLASS_5, "random")
    assert stats.class_counts == {c: 5 for c in range(6)}


def test_full_set_without_budget():
    pool = real_pool("rte")
    synthetic = methods.get("full")().distill(pool, None, seed=0, context=CONTEXT)
    stats = check_set(synthetic, pool.task, None, "full")
    assert stats.examples == len(pool)
    assert stats.class_counts == dict(Counter(pool.labels.tolist()))


def test_total_budget_under_allowed():
    synthetic = random_set("squad_dev_split", Budget(10, "total"))
    synthetic.records = synthetic.records[:7]
    stats = check_set(synthetic, tasks.get("squad_dev_split"), Budget(10, "total"), "random")
    assert stats.examples == 7
    assert stats.class_counts == {}


def test_instruction_empty_input_allowed():
    task = tasks.get("alpaca")
    record = {"instruction": "Name a prime number.", "input": "", "output": "7"}
    stats = check_set(text_set("alpaca", [record]), task, Budget(10, "total"), "test")
    assert stats.tokens == 4


def test_embedding_set_stats():
    synthetic = embedding_set(n=4, length=6)
    stats = check_set(synthetic, tasks.get("sst2"), Budget(2, "per_class"), "test")
    expected_bytes = 4 * 6 * 50 * 4 + 4 * 6 * 8 + 4 * 8 + 4 * 2 * 4 + 3 * 4
    assert stats.examples == 4
    assert stats.class_counts == {0: 2, 1: 2}
    assert stats.tokens == 24
    assert stats.bytes == expected_bytes


def test_sentence_level_embedding_set():
    synthetic = embedding_set(n=2, inputs=torch.randn(2, 384), attention_mask=None)
    synthetic.backbone = "all-MiniLM-L6-v2"
    stats = check_set(synthetic, tasks.get("sst2"), Budget(1, "per_class"), "test")
    assert stats.tokens == 2


# ---------------------------------------------------------------- counts

def test_under_per_class_rejected():
    synthetic = random_set("trec")
    synthetic.records = [r for r in synthetic.records if r["coarse_label"] != 3] + \
        [r for r in synthetic.records if r["coarse_label"] == 3][:4]
    with pytest.raises(BudgetError, match=r"class 'HUM' \(id 3\) has 4 examples, under the budget of 5 per "
                                          r"class \(the pool allows 5\)"):
        check_set(synthetic, tasks.get("trec"), PER_CLASS_5, "random")


def test_missing_class_rejected():
    synthetic = random_set("sst2")
    synthetic.records = [r for r in synthetic.records if r["label"] == 0]
    with pytest.raises(BudgetError, match=r"class 'positive' \(id 1\) has 0 examples, under the budget"):
        check_set(synthetic, tasks.get("sst2"), PER_CLASS_5, "random")


def test_small_classes_allowed_by_task():
    synthetic = random_set("trec")
    synthetic.records = synthetic.records[1:]
    task = dataclasses.replace(tasks.get("trec"), allow_small_classes=True)
    stats = check_set(synthetic, task, PER_CLASS_5, "random")
    assert stats.examples == 29


def test_small_pool_class_sets_limit():
    synthetic = random_set("trec")
    keep_abbr = [r for r in synthetic.records if r["coarse_label"] == 0][:3]
    synthetic.records = [r for r in synthetic.records if r["coarse_label"] != 0] + keep_abbr
    pool_sizes = {0: 3, 1: 900, 2: 900, 3: 900, 4: 900, 5: 900}
    stats = check_set(synthetic, tasks.get("trec"), PER_CLASS_5, "random", pool_class_sizes=pool_sizes)
    assert stats.class_counts[0] == 3

    synthetic.records = synthetic.records[:-1]
    with pytest.raises(BudgetError, match=r"class 'ABBR' \(id 0\) has 2 examples.*the pool allows 3"):
        check_set(synthetic, tasks.get("trec"), PER_CLASS_5, "random", pool_class_sizes=pool_sizes)


def test_over_total_rejected():
    synthetic = random_set("squad_dev_split", Budget(11, "total"))
    with pytest.raises(BudgetError, match=r"the set has 11 examples, over the budget of 10 in total; "
                                          r"return at most 10"):
        check_set(synthetic, tasks.get("squad_dev_split"), Budget(10, "total"), "random")


def test_wrong_budget_unit_rejected():
    with pytest.raises(BudgetError, match=r"budget 5 in total does not fit the task.*Budget\(5, 'per_class'\)"):
        check_set(random_set("sst2"), tasks.get("sst2"), Budget(5, "total"), "random")


def test_empty_set_rejected():
    with pytest.raises(BudgetError, match="the synthetic set is empty"):
        check_set(text_set("sst2", []), tasks.get("sst2"), PER_CLASS_5, "test")


# ---------------------------------------------------------------- text records

def sst2_record(**changes) -> dict:
    return {"sentence": "a fine film", "label": 1, **changes}


@pytest.mark.parametrize(("record", "message"), [
    ("not a record", r"records\[0\] is a str, expected a dict"),
    ({"sentence": "no label"}, r"records\[0\] lacks field\(s\) \['label'\]"),
    (sst2_record(sentence=""), r"input field 'sentence' is empty or whitespace-only"),
    (sst2_record(sentence=" \n\t"), r"input field 'sentence' is empty or whitespace-only"),
    (sst2_record(sentence=3), r"input field 'sentence' must be a string, got int"),
    (sst2_record(label=-1), r"label id -1 is out of range"),
    (sst2_record(label=True), r"label True must be an integer class id, got bool"),
    (sst2_record(label="1"), r"label '1' must be an integer class id, got str"),
    (sst2_record(soft_label=[1.0]), r"soft label must be a list of 2 probabilities \(one per class\), got 1"),
    (sst2_record(soft_label="0.5"), r"soft label must be a list of 2 probabilities \(one per class\), got str"),
    (sst2_record(soft_label=[0.7, 0.7]), r"soft label sums to 1.4, not 1"),
    (sst2_record(soft_label=[1.5, -0.5]), r"must contain finite, non-negative numbers"),
    (sst2_record(soft_label=[float("nan"), 1.0]), r"must contain finite, non-negative numbers"),
])
def test_invalid_record_rejected(record, message):
    with pytest.raises(BudgetError, match=message):
        check_set(text_set("sst2", [record]), tasks.get("sst2"), None, "test")


def test_pair_second_field_empty_rejected():
    record = {"sentence1": "A man sleeps.", "sentence2": "", "label": 0}
    with pytest.raises(BudgetError, match=r"input field 'sentence2' is empty"):
        check_set(text_set("rte", [record]), tasks.get("rte"), None, "test")


def test_instruction_empty_instruction_rejected():
    record = {"instruction": " ", "input": "context", "output": "answer"}
    with pytest.raises(BudgetError, match=r"input field 'instruction' is empty"):
        check_set(text_set("alpaca", [record]), tasks.get("alpaca"), None, "test")


def test_instruction_target_type_rejected():
    record = {"instruction": "Say hi.", "input": "", "output": ["hi"]}
    with pytest.raises(BudgetError, match=r"field 'output' must be a string, got list"):
        check_set(text_set("alpaca", [record]), tasks.get("alpaca"), None, "test")


def test_qa_answers_malformed_rejected():
    record = {"question": "Who?", "context": "Ann wrote it.", "answers": {"text": ["Ann"], "answer_start": []}}
    with pytest.raises(BudgetError, match=r"field 'answers' must be a dict of equal-length lists"):
        check_set(text_set("squad_dev_split", [record]), tasks.get("squad_dev_split"), None, "test")


def test_soft_label_on_unlabelled_task_rejected():
    record = {"instruction": "Say hi.", "input": "", "output": "hi", "soft_label": [1.0]}
    with pytest.raises(BudgetError, match=r"task 'alpaca' has no classes, so records cannot carry soft labels"):
        check_set(text_set("alpaca", [record]), tasks.get("alpaca"), None, "test")


# ---------------------------------------------------------------- embedding sets

@pytest.mark.parametrize(("overrides", "message"), [
    ({"labels": torch.tensor([0, 1, 0])}, r"tensor 'labels' must be an integer tensor \[4\]"),
    ({"labels": torch.tensor([0.0, 1.0, 0.0, 1.0])}, r"tensor 'labels' must be an integer tensor"),
    ({"labels": torch.tensor([0, 1, 2, 1])}, r"labels\[2\]: label id 2 is out of range"),
    ({"inputs": torch.ones(4, 6, 50, dtype=torch.long)}, r"tensor 'inputs' must be a float tensor"),
    ({"inputs": torch.randn(4, 6, 50, 2)}, r"tensor 'inputs' must be a float tensor \[n, L, d\] or \[n, d\]"),
    ({"attention_mask": torch.ones(4, 5)}, r"attention_mask has shape \[4, 5\], expected \[4, 6\]"),
    ({"attention_mask": None}, r"need tensor 'attention_mask' \[n, L\]"),
    ({"attention_mask": torch.tensor([[1] * 6, [0] * 6, [1] * 6, [1] * 6])},
     r"example\(s\) \[1\] have an all-zero attention_mask"),
    ({"inputs": torch.randn(4, 6, 384)}, r"inputs have width 384, but backbone 'glove-6b-50d' has 50-d vectors"),
    ({"soft_labels": torch.full((4, 3), 1 / 3)}, r"tensor 'soft_labels' must be float \[4, 2\]"),
    ({"soft_labels": torch.full((4, 2), 0.6)}, r"soft_labels rows \[0, 1, 2, 3\] do not sum to 1"),
    ({"soft_labels": torch.tensor([[1.5, -0.5]] * 4)}, r"tensor 'soft_labels' contains negative values"),
    ({"inputs": torch.full((4, 6, 50), float("nan"))}, r"tensor 'inputs' contains NaN or infinite values"),
    ({"lrs": torch.tensor([0.1, float("inf")])}, r"extra 'lrs' contains NaN or infinite values"),
    ({"label_logits": torch.randn(3, 2)}, r"tensor 'label_logits' has shape \[3, 2\]; every tensor of a set "
                                          r"must have one row per example \(\[4, ...\]\)"),
])
def test_invalid_embedding_set_rejected(overrides, message):
    with pytest.raises(BudgetError, match=message):
        check_set(embedding_set(**overrides), tasks.get("sst2"), None, "test")


def test_sentence_inputs_with_mask_rejected():
    synthetic = embedding_set(n=2, inputs=torch.randn(2, 50), attention_mask=torch.ones(2, 1))
    with pytest.raises(BudgetError, match=r"sentence-level inputs \[2, 50\] take no attention_mask"):
        check_set(synthetic, tasks.get("sst2"), None, "test")


def test_embedding_set_on_unlabelled_task_rejected():
    with pytest.raises(BudgetError, match=r"embedding sets need class labels, and task 'alpaca' \(instruction\)"):
        check_set(embedding_set(), tasks.get("alpaca"), None, "test")


def test_embedding_over_budget_rejected():
    with pytest.raises(BudgetError, match=r"class 'negative' \(id 0\) has 2 examples, over the budget of 1 per class"):
        check_set(embedding_set(n=4), tasks.get("sst2"), Budget(1, "per_class"), "test")
