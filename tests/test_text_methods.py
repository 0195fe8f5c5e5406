"""Text-level distillers (dilm, vocab-projection, gradmm, lm-synthesis) on real data with real models.

Every adapter runs with its smoke hyperparameters on small fixed samples of real pools, and its set
must pass the harness's budget check, carry per-example token counts and perplexities, and hash
the same for the same seed. The generator is the shipped SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pytest
import torch

import methods
import tasks
from benchmark.budget import check_set
from benchmark.encoder import shared_encoder
from methods.base import Budget, DistillContext, Pool
from methods.dilm import DiLM, add_condition_tokens, clear_trained_generators, encode_record, matching_loss
from methods.generator import (
    context_token_id,
    example_statistics,
    fill_quota,
    label_log_probabilities,
    load_generator,
    parse_block,
)
from methods.gradmm import GRADMM, label_token_ids
from methods.lm_synthesis import LMSynthesis
from methods.vocab_projection import VocabProjection, allowed_tokens, project_to_tokens

POOL_SIZE = 120
TEXT_METHODS = ("dilm", "vocab-projection", "gradmm", "lm-synthesis")


def small_pool(name: str, size: int = POOL_SIZE) -> Pool:
    """A fixed random sample of a task's real pool (seed 0), so distillation stays in seconds."""
    data = tasks.load(name)
    rows = np.sort(np.random.default_rng(0).choice(len(data.pool), size=size, replace=False))
    return Pool(data.task, [data.pool.records[i] for i in rows], fingerprint=f"{name}-sample-{size}")


@pytest.fixture(scope="module")
def sst2() -> Pool:
    return small_pool("sst2")


@pytest.fixture(scope="module")
def rte() -> Pool:
    return small_pool("rte")


@pytest.fixture(scope="module")
def alpaca() -> Pool:
    return small_pool("alpaca")


def context(seed: int = 0) -> DistillContext:
    return DistillContext(seed=seed, logger=logging.getLogger("test"), embed=shared_encoder(max_length=128).encode,
                          tier="smoke")


def distill(method: str, pool: Pool, value: int, seed: int = 0, **params):
    budget = Budget(value, pool.task.budget_unit)
    synthetic = methods.get(method).for_tier("smoke", **params).distill(pool, budget, seed, context(seed))
    return synthetic, budget


def assert_valid_text_set(synthetic, pool: Pool, budget: Budget, method: str) -> None:
    stats = check_set(synthetic, pool.task, budget, method)
    assert synthetic.form == "text"
    assert synthetic.method == method
    if budget.unit == "per_class":
        assert stats.class_counts == {c: budget.value for c in range(pool.task.num_classes)}
    else:
        assert 1 <= stats.examples <= budget.value
    per_example = synthetic.manifest["per_example"]
    assert len(per_example) == len(synthetic.records)
    for entry in per_example:
        assert isinstance(entry["tokens"], int)
        assert entry["tokens"] > 0
        assert math.isfinite(entry["perplexity"])
        assert entry["perplexity"] > 1


# ---------------------------------------------------------------- registry and parameters

def test_registry_lists_text_methods():
    for name in TEXT_METHODS:
        cls = methods.get(name)
        assert cls.category == "text-level"
        assert cls.form == "text"
        assert set(cls.tier_params) == {"smoke", "quick", "standard"}
        assert cls.citation and cls.description
        for tier in cls.tier_params:
            assert cls.for_tier(tier).get_params()  # every tier's values are accepted hyperparameters


def test_lm_synthesis_covers_instruction():
    assert "instruction" in LMSynthesis.families
    assert "instruction" not in DiLM.families


@pytest.mark.parametrize("method, params, message", [
    (DiLM, {"lm_batch_size": 0}, r"lm_batch_size=0 is invalid; use a positive integer"),
    (DiLM, {"lm_steps": -1}, r"lm_steps=-1 is invalid; use an integer >= 0"),
    (DiLM, {"tau": 0.0}, r"tau=0.0 is invalid; use a positive number"),
    (DiLM, {"top_p": 1.5}, r"top_p=1.5 is invalid; use a number in \(0, 1\]"),
    (DiLM, {"max_length": 3}, r"max_length=3 is too short"),
    (VocabProjection, {"objective": "moments"}, r"objective='moments' is invalid"),
    (VocabProjection, {"init": "zeros"}, r"init='zeros' is invalid"),
    (VocabProjection, {"steps": 0}, r"steps=0 is invalid"),
    (GRADMM, {"rho": 0}, r"rho=0 is invalid; use a positive number"),
    (GRADMM, {"top_k": True}, r"top_k=True is invalid"),
    (LMSynthesis, {"temperature": -1.0}, r"temperature=-1.0 is invalid"),
    (LMSynthesis, {"shots": 0}, r"shots=0 is invalid"),
])
def test_invalid_hyperparameter_rejected(sst2, method, params, message):
    with pytest.raises(ValueError, match=message):
        method(**params).distill(sst2, Budget(1, "per_class"), 0, context())


@pytest.mark.parametrize("method", [DiLM, VocabProjection, GRADMM, LMSynthesis])
def test_wrong_budget_unit_rejected(sst2, method):
    with pytest.raises(ValueError, match=r"does not fit task 'sst2'"):
        method().distill(sst2, Budget(2, "total"), 0, context())


@pytest.mark.parametrize("method", [DiLM, VocabProjection, GRADMM])
def test_instruction_family_rejected(alpaca, method):
    with pytest.raises(ValueError, match=r"handles families \['classification', 'nli'\], not task 'alpaca'"):
        method().distill(alpaca, Budget(2, "total"), 0, context())


def test_dilm_rejects_three_fields(sst2):
    task = dataclasses.replace(sst2.task, input_fields=("a", "b", "c"))
    pool = Pool(task, [{"a": "x", "b": "y", "c": "z", "label": c} for c in (0, 1)], "three-fields")
    with pytest.raises(ValueError, match=r"has 3 input fields; DiLM generates one sentence or a sentence pair"):
        DiLM().distill(pool, Budget(1, "per_class"), 0, context())


def test_fill_quota_repeats_and_rejects_empty():
    assert fill_quota([3, 4], 5, "test") == ([3, 4, 3, 4, 3], 3)
    assert fill_quota([1, 2, 3], 2, "test") == ([1, 2, 3], 0)
    with pytest.raises(RuntimeError, match=r"test: the generator produced no usable sample"):
        fill_quota([], 1, "test")


# ---------------------------------------------------------------- prompt format

def test_parse_block_single_sentence(sst2):
    values, complete = parse_block(sst2.task, " a gentle , funny film .\n###\nsentence: next")
    assert values == {"sentence": "a gentle , funny film ."}
    assert complete
    values, complete = parse_block(sst2.task, " cut off in the midd")
    assert values == {"sentence": "cut off in the midd"}
    assert not complete


def test_parse_block_pair_needs_both_fields(rte):
    values, complete = parse_block(rte.task, " A man sleeps.\nsentence2: Someone sleeps.\n###")
    assert values == {"sentence1": "A man sleeps.", "sentence2": "Someone sleeps."}
    assert complete
    assert parse_block(rte.task, " A man sleeps.\n###")[0] is None
    assert parse_block(rte.task, " A man sleeps.\nsentence2:   \n###")[0] is None


def test_parse_block_instruction_keeps_multiline_output(alpaca):
    text = " List two colors.\ninput: \noutput: 1. red\n2. blue\n###\ninstruction:"
    values, complete = parse_block(alpaca.task, text)
    assert values == {"instruction": "List two colors.", "input": "", "output": "1. red\n2. blue"}
    assert complete


def test_context_token_requires_eos_or_bos():
    class NoSpecialTokens:
        bos_token_id = None
        eos_token_id = None

        def get_vocab(self):
            return {"a": 0}

    with pytest.raises(ValueError, match=r"has neither an eos nor a bos token"):
        context_token_id(NoSpecialTokens())


# ---------------------------------------------------------------- generator scoring

@pytest.mark.slow
def test_example_statistics_counts_generator_tokens(sst2):
    generator = load_generator()
    records = [dict(r) for r in sst2.records[:3]]
    statistics = example_statistics(generator, sst2.task, records)
    for record, entry in zip(records, statistics):
        assert entry["tokens"] == len(generator.tokenizer(record["sentence"], add_special_tokens=False)["input_ids"])
        assert math.isfinite(entry["perplexity"])
        assert entry["perplexity"] > 1


@pytest.mark.slow
def test_label_log_probabilities_normalized(sst2):
    records = [{"sentence": "a wonderful , moving film .", "label": 1},
               {"sentence": "a dull , tedious mess .", "label": 0}]
    log_probabilities = label_log_probabilities(load_generator(), sst2.task, records)
    assert log_probabilities.shape == (2, 2)
    np.testing.assert_allclose(np.exp(log_probabilities).sum(1), 1.0, atol=1e-6)


@pytest.mark.slow
def test_gradmm_label_tokens_must_differ(sst2):
    task = dataclasses.replace(sst2.task, label_names=("good film", "good show"))
    with pytest.raises(ValueError, match=r"start with the same generator token"):
        label_token_ids(load_generator().tokenizer, task)


# ---------------------------------------------------------------- dilm

@pytest.mark.slow
def test_dilm_matching_loss_reaches_generator(sst2):
    task = sst2.task
    conditional = add_condition_tokens(load_generator(trainable=True), task)
    records = [r for r in sst2.records if r["label"] == 1][:3]
    synthetic_ids = [encode_record(conditional, task, r, 24)[1:] for r in records]
    features = torch.from_numpy(shared_encoder(max_length=128).encode([r["sentence"] for r in records]))
    real = torch.from_numpy(shared_encoder(max_length=128).encode(
        [r["sentence"] for r in sst2.records if r["label"] == 1][3:11]))
    head = torch.nn.Linear(features.shape[1], task.num_classes)

    loss = matching_loss(conditional, head, 1, real, synthetic_ids, features, tau=1.0)
    loss.backward()

    assert 0 <= float(loss.detach()) <= 2
    layer_gradient = conditional.model.base_model.layers[0].mlp.up_proj.weight.grad
    assert layer_gradient is not None and float(layer_gradient.abs().sum()) > 0
    # The class token's embedding row is the conditioning input, so it must be trained too.
    embedding_gradient = conditional.model.get_input_embeddings().weight.grad
    assert float(embedding_gradient[conditional.label_ids[1]].abs().sum()) > 0


@pytest.mark.slow
def test_dilm_sst2_valid_and_deterministic(sst2):
    first, budget = distill("dilm", sst2, 2)
    clear_trained_generators()
    second, _ = distill("dilm", sst2, 2)
    # A generator kept from the previous call must give the same set as a freshly trained one.
    reused, _ = distill("dilm", sst2, 2)
    assert_valid_text_set(first, sst2, budget, "dilm")
    assert first.content_hash() == second.content_hash()
    assert reused.content_hash() == first.content_hash()
    assert not second.manifest["generator_reused"]
    assert reused.manifest["generator_reused"]
    assert reused.manifest["generator_training_s"] == second.manifest["generator_training_s"]
    assert len(first.manifest["lm_losses"]) == DiLM.tier_params["smoke"]["lm_steps"]
    assert len(first.manifest["gm_losses"]) == DiLM.tier_params["smoke"]["gm_steps"]


@pytest.mark.slow
def test_dilm_rte_pairs_valid(rte):
    synthetic, budget = distill("dilm", rte, 1)
    assert_valid_text_set(synthetic, rte, budget, "dilm")
    for record in synthetic.records:
        assert "<|dilm" not in record["sentence1"] + record["sentence2"]


# ---------------------------------------------------------------- vocab-projection

def test_projection_recovers_exact_embeddings():
    from benchmark.backbones import load_encoder

    tokenizer, encoder = load_encoder()
    vocabulary = encoder.get_input_embeddings().weight.detach()
    ids = torch.tensor(tokenizer("a moving , funny film", add_special_tokens=False)["input_ids"])
    projected, similarity = project_to_tokens(vocabulary[ids], vocabulary, allowed_tokens(tokenizer))
    assert projected.tolist() == ids.tolist()
    np.testing.assert_allclose(similarity.numpy(), 1.0, atol=1e-5)


@pytest.mark.slow
def test_vocab_projection_sst2_valid_and_deterministic(sst2):
    first, budget = distill("vocab-projection", sst2, 2)
    second, _ = distill("vocab-projection", sst2, 2)
    assert_valid_text_set(first, sst2, budget, "vocab-projection")
    assert first.content_hash() == second.content_hash()
    assert len(first.manifest["losses"]) == VocabProjection.tier_params["smoke"]["steps"]


@pytest.mark.slow
def test_vocab_projection_gradient_objective(rte):
    synthetic, budget = distill("vocab-projection", rte, 1, objective="gradient")
    assert_valid_text_set(synthetic, rte, budget, "vocab-projection")
    assert 0 < synthetic.manifest["projection_cosine"] <= 1


# ---------------------------------------------------------------- gradmm

@pytest.mark.slow
def test_gradmm_projection_keeps_exact_tokens(sst2):
    generator = load_generator()
    method = GRADMM(top_k=1, seq_length=6)
    template = method.initial_template(generator, sst2, 1, np.random.default_rng(0))
    embeddings = generator.model.get_input_embeddings().weight.detach()
    slots = template.ids[:, template.slots]
    projected = method.project(generator, template, embeddings[slots], embeddings, torch.ones(len(embeddings),
                                                                                               dtype=torch.bool))
    assert projected.tolist() == slots.tolist()


@pytest.mark.slow
def test_gradmm_sst2_valid_and_deterministic(sst2):
    first, budget = distill("gradmm", sst2, 1)
    second, _ = distill("gradmm", sst2, 1)
    assert_valid_text_set(first, sst2, budget, "gradmm")
    assert first.content_hash() == second.content_hash()
    assert len(first.manifest["admm"]) == GRADMM.tier_params["smoke"]["iterations"]


# ---------------------------------------------------------------- lm-synthesis

@pytest.mark.slow
def test_lm_synthesis_sst2_valid_and_deterministic(sst2):
    first, budget = distill("lm-synthesis", sst2, 2)
    second, _ = distill("lm-synthesis", sst2, 2)
    assert_valid_text_set(first, sst2, budget, "lm-synthesis")
    assert first.content_hash() == second.content_hash()
    pool_texts = {r["sentence"].strip().lower() for r in sst2.records}
    assert not any(r["sentence"].strip().lower() in pool_texts for r in first.records)


@pytest.mark.slow
def test_lm_synthesis_rte_pairs_valid(rte):
    synthetic, budget = distill("lm-synthesis", rte, 1)
    assert_valid_text_set(synthetic, rte, budget, "lm-synthesis")


@pytest.mark.slow
def test_lm_synthesis_alpaca_within_total_budget(alpaca):
    synthetic, budget = distill("lm-synthesis", alpaca, 2)
    assert_valid_text_set(synthetic, alpaca, budget, "lm-synthesis")
    for record in synthetic.records:
        assert set(record) == {"instruction", "input", "output"}
        assert record["instruction"] and record["output"]


@pytest.mark.slow
def test_lm_synthesis_no_usable_sample_raises(rte):
    # Two new tokens cannot reach the second field's name, so no sample parses into a pair.
    method = LMSynthesis(shots=1, candidates_per_example=1, max_new_tokens=1, max_rounds=1)
    with pytest.raises(RuntimeError, match=r"class 0 of task rte: the generator produced no usable sample"):
        method.distill(rte, Budget(1, "per_class"), 0, context())
