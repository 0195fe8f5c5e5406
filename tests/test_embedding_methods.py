"""Embedding-level distillers on a real SST-2 pool subset at smoke settings.

Every method runs once per module on 200 stratified pool rows at 2 examples per class. The tests
then check its objective curve, tensor shapes, the budget check, the disk round trip and that the
same seed repeats the same set.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

import methods
import tasks
from benchmark.backbones import GLOVE, MINILM
from benchmark.budget import check_set
from benchmark.encoder import shared_encoder
from benchmark.harness.cell import limit_records
from benchmark.synthetic import SyntheticSet
from methods.base import Budget, DistillContext, Pool
from methods.distribution_matching import DistributionMatchingMiniLM
from methods.embedding_common import (
    ObjectiveCurve,
    check_positive,
    draw_real_rows,
    embedding_set,
    glove_bank,
    load_minilm,
    minilm_bank,
)
from methods.gradient_matching import dc_loops, gradient_distance
from methods.trajectory_matching import TrajectoryMatching

BUDGET = Budget(2, "per_class")
POOL_ROWS = 200

# name -> (backbone, whether it learns soft labels, extras it stores)
LEARNING = {
    "dd-bptt": (GLOVE, True, {"lrs"}),
    "gradient-matching": (GLOVE, False, set()),
    "distribution-matching": (GLOVE, False, set()),
    "distribution-matching-minilm": (MINILM, False, set()),
    "trajectory-matching": (GLOVE, False, {"lrs"}),
    "attention-labels": (MINILM, True, {"lrs", "attention_targets"}),
}
COMPANIONS = {"dd-bptt+random-inputs": "dd-bptt", "trajectory-matching+random-inputs": "trajectory-matching",
              "attention-labels+random-inputs": "attention-labels"}
ALL = [*LEARNING, *COMPANIONS]


@pytest.fixture(scope="module")
def sst2_pool(data_dir) -> Pool:
    data = tasks.load("sst2")
    return Pool(data.task, limit_records(data.pool.records, POOL_ROWS, data.task), fingerprint=data.fingerprint)


def make_context(seed: int = 0) -> DistillContext:
    encoder = shared_encoder(max_length=64)
    return DistillContext(seed=seed, logger=logging.getLogger("tests.embedding"), embed=encoder.encode, tier="smoke")


def distill(name: str, pool: Pool, seed: int = 0) -> SyntheticSet:
    method = methods.get(name).for_tier("smoke")
    return method.distill(pool, BUDGET, seed, make_context(seed))


class DistilledSets:
    """Sets distilled on first use, once per method for the whole module."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.sets: dict[str, SyntheticSet] = {}

    def __getitem__(self, name: str) -> SyntheticSet:
        if name not in self.sets:
            self.sets[name] = distill(name, self.pool)
        return self.sets[name]


@pytest.fixture(scope="module")
def distilled(sst2_pool) -> DistilledSets:
    return DistilledSets(sst2_pool)


# ---------------------------------------------------------------- registry and metadata

@pytest.mark.parametrize("name", ALL)
def test_method_metadata(name):
    cls = methods.get(name)
    assert cls.form == "embeddings"
    assert cls.citation and cls.description
    assert set(cls.tier_params) == {"smoke", "quick", "standard"}
    for params in cls.tier_params.values():
        cls.for_tier("smoke", **params)  # every tier's values are accepted hyperparameters
    if name in COMPANIONS:
        assert cls.category == "selection"
        assert cls.tracks == ("native",)
    else:
        assert cls.category == "embedding-level"
        assert cls.tracks == ("standard", "native")
        assert cls.requires == (LEARNING[name][0],)


def test_hyperparameters_stored_unchanged():
    method = methods.get("dd-bptt")(outer_steps=7, init_lr=0.25)
    assert method.get_params()["outer_steps"] == 7
    assert method.get_params()["init_lr"] == 0.25


# ---------------------------------------------------------------- distilled sets

@pytest.mark.parametrize("name", list(LEARNING))
def test_objective_decreases(distilled, name):
    curve = distilled[name].manifest["objective_curve"]
    assert len(curve) >= 6
    first, last = np.mean(curve[:3]), np.mean(curve[-3:])
    assert last < first, f"{name}: objective went from {first:.5f} to {last:.5f}"


@pytest.mark.parametrize("name", ALL)
def test_set_shapes(distilled, name):
    synthetic = distilled[name]
    backbone, soft, extras = LEARNING[COMPANIONS.get(name, name)]
    width = 50 if backbone == GLOVE else 384
    inputs = synthetic.tensors["inputs"]
    assert synthetic.backbone == backbone
    assert inputs.dim() == 3
    assert inputs.shape[0] == 4
    assert inputs.shape[2] == width
    assert synthetic.tensors["attention_mask"].shape == inputs.shape[:2]
    assert sorted(synthetic.tensors["labels"].tolist()) == [0, 0, 1, 1]
    assert ("soft_labels" in synthetic.tensors) == soft
    assert set(synthetic.extras) == extras
    if soft:
        assert synthetic.tensors["soft_labels"].shape == (4, 2)
    if "attention_targets" in extras:
        targets = synthetic.extras["attention_targets"]
        assert targets.shape == (4, 6, 12, inputs.shape[1])
        assert torch.allclose(targets.sum(-1), torch.ones(4, 6, 12), atol=1e-4)
    if "lrs" in extras:
        assert (synthetic.extras["lrs"] > 0).all()


@pytest.mark.parametrize("name", ALL)
def test_set_passes_budget_check(distilled, sst2_pool, name):
    stats = check_set(distilled[name], sst2_pool.task, BUDGET, name)
    assert stats.class_counts == {0: 2, 1: 2}


@pytest.mark.parametrize("name", ALL)
def test_set_round_trips(distilled, tmp_path, name):
    synthetic = distilled[name]
    loaded = SyntheticSet.load(synthetic.save(tmp_path / name))
    assert loaded.content_hash() == synthetic.content_hash()
    assert loaded.manifest["objective_curve"] == synthetic.manifest["objective_curve"]


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_hash(distilled, sst2_pool, name):
    assert distill(name, sst2_pool).content_hash() == distilled[name].content_hash()


def test_other_seed_other_set(distilled, sst2_pool):
    assert distill("distribution-matching", sst2_pool, seed=1).content_hash() != \
        distilled["distribution-matching"].content_hash()


@pytest.mark.parametrize("name", ALL)
def test_init_rows_are_random_baseline_rows(distilled, sst2_pool, name):
    baseline = methods.get("random")().distill(sst2_pool, BUDGET, 0, make_context())
    assert distilled[name].manifest["init_rows"] == baseline.manifest["selected_indices"]


@pytest.mark.parametrize("name", list(COMPANIONS))
def test_companion_keeps_inputs(distilled, sst2_pool, name):
    companion, method = distilled[name], distilled[COMPANIONS[name]]
    texts = sst2_pool.texts()
    rows_texts = [texts[i] for i in companion.manifest["init_rows"]]
    length = companion.tensors["inputs"].shape[1]
    if companion.backbone == GLOVE:
        bank = glove_bank(rows_texts, length)
    else:
        tokenizer, model = load_minilm()
        bank = minilm_bank(rows_texts, length, tokenizer, model.get_input_embeddings().weight.detach())
    start, _ = bank.embed(np.arange(len(rows_texts)))
    assert torch.equal(companion.tensors["inputs"], start)
    assert not torch.equal(companion.tensors["inputs"], method.tensors["inputs"])


# ---------------------------------------------------------------- learners train on the sets

def test_textcnn_trains_on_dd_bptt_native(distilled, sst2_pool):
    from benchmark.learners.textcnn import TextCNNLearner

    synthetic = distilled["dd-bptt"]
    learner = TextCNNLearner(sst2_pool.task, TextCNNLearner.recipe_for("smoke"))
    report = learner.fit(synthetic, seed=0, native=True)
    assert report.steps == len(synthetic.extras["lrs"])
    assert all(math.isfinite(v) for v in report.losses)


@pytest.mark.slow
def test_minilm_finetune_trains_on_attention_labels(distilled, sst2_pool):
    from benchmark.learners.finetune import MiniLMFinetune

    learner = MiniLMFinetune(sst2_pool.task, MiniLMFinetune.recipe_for("smoke"))
    report = learner.fit(distilled["attention-labels"], seed=0, native=False)
    assert report.steps == MiniLMFinetune.recipe_for("smoke").steps
    assert all(math.isfinite(v) for v in report.losses)


# ---------------------------------------------------------------- helpers and error paths

def test_gradient_distance_zero_for_equal_gradients():
    grads = [torch.randn(4, 3, 2), torch.randn(4)]
    assert gradient_distance(grads, grads).item() == pytest.approx(0.0, abs=1e-5)
    assert gradient_distance([-grads[0], grads[1]], grads).item() == pytest.approx(8.0, abs=1e-4)


def test_dc_loops_follow_budget():
    assert dc_loops(1) == (1, 1)
    assert dc_loops(10) == (10, 50)
    assert dc_loops(15) == (10, 50)
    assert dc_loops(50) == (50, 10)


def test_total_budget_rejected(sst2_pool):
    with pytest.raises(ValueError, match="budgets count examples per class"):
        draw_real_rows(sst2_pool, Budget(4, "total"), 0, "dd-bptt")


def test_empty_pool_rejected(sst2_pool):
    empty = Pool(sst2_pool.task, [], fingerprint="empty")
    with pytest.raises(ValueError, match="has no rows to start from"):
        draw_real_rows(empty, BUDGET, 0, "dd-bptt")


def test_non_positive_hyperparameter_rejected(sst2_pool):
    with pytest.raises(ValueError, match=r"hyperparameter outer_steps=0 is invalid"):
        check_positive("dd-bptt", outer_steps=0)
    with pytest.raises(ValueError, match=r"hyperparameter iterations=-1 is invalid"):
        methods.get("distribution-matching").for_tier("smoke", iterations=-1).distill(
            sst2_pool, BUDGET, 0, make_context())


def test_expert_span_rejected(sst2_pool):
    method = TrajectoryMatching.for_tier("smoke", expert_epochs=2, max_start_epoch=2, match_epochs=1)
    with pytest.raises(ValueError, match=r"max_start_epoch \(2\) \+ match_epochs \(1\) exceeds expert_epochs"):
        method.distill(sst2_pool, BUDGET, 0, make_context())


def test_non_finite_objective_rejected():
    curve = ObjectiveCurve("dd-bptt", logging.getLogger("tests"), total=3)
    with pytest.raises(FloatingPointError, match="the objective became nan at iteration 0"):
        curve.record(float("nan"))


def test_curve_is_block_averaged():
    curve = ObjectiveCurve("dd-bptt", logging.getLogger("tests"), total=1200, log_every=10_000)
    for value in range(1200):
        curve.record(float(value))
    entry = curve.manifest_entry()
    assert entry["objective_curve_block"] == 3
    assert len(entry["objective_curve"]) == 400
    assert entry["objective_curve"][0] == 1.0


def test_unknown_backbone_rejected(sst2_pool):
    method = methods.get("dd-bptt")()
    curve = ObjectiveCurve("dd-bptt", logging.getLogger("tests"), total=1)
    with pytest.raises(ValueError, match="backbone 'bert-base' is not an embedding space"):
        embedding_set(method, sst2_pool, backbone="bert-base", inputs=torch.zeros(1, 2, 3),
                      mask=torch.ones(1, 2), labels=torch.zeros(1), curve=curve, init_rows=np.array([0]))


def test_wrong_embedding_shape_rejected(sst2_pool):
    method = DistributionMatchingMiniLM()
    with pytest.raises(ValueError, match=r"the context's embeddings have shape \(3, 384\)"):
        method._class_means(np.zeros((3, 384)), sst2_pool.labels, 2, "cpu")
