"""Contamination audit on real task data: copies of test rows are flagged, pool rows are not."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import tasks
from benchmark.contamination import (
    audit,
    contains,
    ngram_hashes,
    normalize,
    record_text,
    sorted_unique,
    task_index,
)
from benchmark.synthetic import SyntheticSet


@pytest.fixture(scope="module")
def sst2(data_dir):
    return tasks.load("sst2")


def text_set(task: str, records: list[dict]) -> SyntheticSet:
    return SyntheticSet(task=task, method="test-method", form="text", records=records)


def test_normalize_case_punctuation_space():
    assert normalize("  It's   a GREAT,\tfilm!! ") == "it s a great film"
    assert normalize("...") == ""


def test_ngram_hashes_skip_short_texts():
    hashes, owner = ngram_hashes(["one two three", "a b c d e", "x y z"], 3)
    assert len(hashes) == 1 + 3 + 1
    assert owner.tolist() == [0, 1, 1, 1, 2]
    empty, _ = ngram_hashes(["too short"], 3)
    assert len(empty) == 0


def test_ngram_hashes_do_not_cross_texts():
    # "b c d" exists only across the boundary of the two texts.
    joined, _ = ngram_hashes(["a b c d"], 3)
    split, _ = ngram_hashes(["a b", "c d"], 3)
    assert len(split) == 0
    assert len(joined) == 2


def test_contains_sorted_lookup():
    reference = sorted_unique(np.array([5, 1, 5, 9], dtype=np.uint64))
    assert reference.tolist() == [1, 5, 9]
    found = contains(reference, np.array([0, 1, 9, 10], dtype=np.uint64))
    assert found.tolist() == [False, True, True, False]
    assert contains(reference[:0], np.array([1], dtype=np.uint64)).tolist() == [False]


def test_copied_test_rows_flagged(sst2, caplog):
    index = task_index(sst2)
    fresh = [dict(r) for r in sst2.test.records if normalize(r["sentence"]) in index.test_only.texts][:10]
    with caplog.at_level(logging.WARNING, logger="benchmark.contamination"):
        result = audit(text_set("sst2", fresh), sst2)
    assert result["flagged"] is True
    assert result["test"]["exact"] == 10
    assert result["test"]["exact_share"] == 1.0
    assert "flagged as contaminated" in caplog.text


def test_pool_rows_not_flagged(sst2):
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(sst2.pool.records), size=50, replace=False)
    result = audit(text_set("sst2", [dict(sst2.pool.records[i]) for i in chosen]), sst2)
    assert result["flagged"] is False
    assert result["test"]["exact"] == 0
    assert result["test"]["ngram"] == 0
    assert result["pool"]["exact_share"] == 1.0


def test_test_rows_repeated_in_pool_not_flagged(sst2):
    index = task_index(sst2)
    assert index.test_rows_in_pool > 0  # SST-2 repeats a few validation sentences in its train split
    repeated = [dict(r) for r in sst2.test.records if normalize(r["sentence"]) in index.pool.texts]
    result = audit(text_set("sst2", repeated), sst2)
    assert result["flagged"] is False
    assert result["pool"]["exact"] == len(repeated)


def test_long_ngram_overlap_flagged(sst2):
    index = task_index(sst2)
    source = next(r["sentence"] for r in sst2.test.records
                  if normalize(r["sentence"]) in index.test_only.texts and len(r["sentence"].split()) >= 20)
    words = source.split()
    # Nine consecutive test words inside new text: not an exact copy, but an 8-gram overlap.
    paraphrase = "a completely new opening clause , " + " ".join(words[3:12]) + " and a new ending"
    result = audit(text_set("sst2", [{"sentence": paraphrase, "label": 1}]), sst2)
    assert result["test"]["exact"] == 0
    assert result["test"]["ngram"] == 1
    assert result["flagged"] is True
    shorter = audit(text_set("sst2", [{"sentence": paraphrase, "label": 1}]), sst2, n=12)
    assert shorter["test"]["ngram"] == 0


def test_threshold_allows_small_share(sst2):
    index = task_index(sst2)
    copied = next(dict(r) for r in sst2.test.records if normalize(r["sentence"]) in index.test_only.texts)
    records = [copied] + [dict(r) for r in sst2.pool.records[:9]]
    assert audit(text_set("sst2", records), sst2)["flagged"] is True
    lenient = audit(text_set("sst2", records), sst2, threshold=0.5)
    assert lenient["test"]["exact_share"] == pytest.approx(0.1)
    assert lenient["flagged"] is False


def test_index_built_once(sst2):
    assert task_index(sst2) is task_index(sst2)
    assert task_index(sst2, 8) is not task_index(sst2, 6)


def test_instruction_output_compared(data_dir):
    alpaca = tasks.load("alpaca")
    task = alpaca.task
    index = task_index(alpaca)
    row = next(r for r in alpaca.test.records
               if contains(index.test_only.ngrams, ngram_hashes([normalize(r["output"])], 8)[0]).any())
    assert row[task.target_field] in record_text(task, row)
    copied = {"instruction": "Write a short reply.", "input": "", "output": row["output"]}
    result = audit(text_set("alpaca", [copied]), alpaca)
    assert result["test"]["ngram"] == 1
    assert result["flagged"] is True


def test_embedding_set_not_applicable(sst2):
    synthetic = SyntheticSet(task="sst2", method="test-method", form="embeddings", backbone="glove-6b-50d",
                             tensors={"inputs": torch.zeros(2, 50), "labels": torch.tensor([0, 1])})
    result = audit(synthetic, sst2)
    assert result["applicable"] is False
    assert result["flagged"] is False
    assert "no text to compare" in result["reason"]


def test_audit_rejects_bad_n(sst2):
    with pytest.raises(ValueError, match="n-gram length 0 is invalid"):
        audit(text_set("sst2", [{"sentence": "x", "label": 0}]), sst2, n=0)


def test_audit_rejects_bad_threshold(sst2):
    with pytest.raises(ValueError, match="threshold 1.0 is invalid"):
        audit(text_set("sst2", [{"sentence": "x", "label": 0}]), sst2, threshold=1.0)


def test_audit_rejects_other_task(sst2):
    with pytest.raises(ValueError, match="belongs to task 'rte'"):
        audit(text_set("rte", [{"sentence1": "a", "sentence2": "b", "label": 0}]), sst2)
