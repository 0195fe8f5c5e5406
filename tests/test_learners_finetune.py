"""Tests of the fine-tuning learners on the real MiniLM backbone and real task data."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

import tasks
from benchmark import learners
from benchmark.backbones import BackboneUnavailableError, encoder_path, MINILM
from benchmark.learners.base import NotApplicableError
from benchmark.learners.finetune import (
    BatchSampler,
    ClassificationObjective,
    build_optimizer,
    build_scheduler,
    soft_cross_entropy,
    step_learning_rates,
)
from benchmark.learners.qa import (
    QAWindow,
    SpanObjective,
    answer_char_span,
    best_span,
    decode_answers,
    label_window,
    tokenize_windows,
)
from benchmark.synthetic import SyntheticSet
from tasks.data import Split

pytestmark = pytest.mark.skipif(not os.environ.get("TDDBENCH_DATA_DIR"),
                                reason="set TDDBENCH_DATA_DIR to the local dataset mirror")

MINILM_FINETUNE = "minilm-finetune"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(encoder_path(MINILM))


def per_class_set(task_name: str, per_class: int, seed: int = 0) -> SyntheticSet:
    """A random `per_class`-per-class text set drawn from the task's real train pool."""
    data = tasks.load(task_name)
    label_field = data.task.label_field
    rng = np.random.default_rng(seed)
    records = []
    for label in range(data.task.num_classes):
        rows = [i for i, r in enumerate(data.pool.records) if r[label_field] == label]
        records += [dict(data.pool.records[i]) for i in rng.choice(rows, per_class, replace=False)]
    return SyntheticSet(task=task_name, method="random", form="text", records=records,
                        manifest={"label_field": label_field})


def learner_for(task_name: str, tier: str = "smoke", name: str = MINILM_FINETUNE, **changes):
    cls = learners.get(name)
    recipe = dataclasses.replace(cls.recipe_for(tier), **changes) if changes else cls.recipe_for(tier)
    return cls(tasks.get(task_name), recipe)


def head_split(task_name: str, rows: int) -> Split:
    test = tasks.load(task_name).test
    return Split("test-head", test.records[:rows], f"first {rows} rows of {test.origin}")


# ---------------------------------------------------------------- training helpers

def test_scheduler_warmup_then_linear_decay():
    recipe = learners.get(MINILM_FINETUNE).recipe_for("standard")
    optimizer = build_optimizer(torch.nn.Linear(2, 2), recipe)
    scheduler = build_scheduler(optimizer, recipe, steps=200)
    rates = []
    for _ in range(200):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    peak = int(np.argmax(rates))
    assert peak == 100
    assert rates[0] < rates[50] < rates[peak] <= recipe.lr
    assert rates[150] < rates[peak]
    assert rates[-1] < 0.02 * recipe.lr


def test_optimizer_skips_decay_on_biases():
    recipe = learners.get(MINILM_FINETUNE).recipe_for("quick")
    optimizer = build_optimizer(torch.nn.Linear(3, 2), recipe)
    decays = sorted(group["weight_decay"] for group in optimizer.param_groups)
    assert decays == [0.0, recipe.weight_decay]


def test_optimizer_rejects_sgd():
    recipe = dataclasses.replace(learners.get(MINILM_FINETUNE).recipe_for("smoke"), optimizer="sgd")
    with pytest.raises(ValueError, match="optimizer 'sgd' is not supported"):
        build_optimizer(torch.nn.Linear(2, 2), recipe)


def test_batch_sampler_covers_epoch():
    batches = iter(BatchSampler(size=10, batch_size=4, seed=3))
    first_epoch = [next(batches) for _ in range(3)]
    assert [len(b) for b in first_epoch] == [4, 4, 2]
    assert sorted(i for b in first_epoch for i in b) == list(range(10))


def test_length_grouped_batches_cover_epoch_with_less_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=2000).tolist()
    grouped = BatchSampler(size=2000, batch_size=16, seed=1, lengths=lengths).epoch()
    plain = BatchSampler(size=2000, batch_size=16, seed=1).epoch()
    assert sorted(i for b in grouped for i in b) == list(range(2000))
    assert len(grouped) == len(plain) == 125

    def padded_tokens(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    assert padded_tokens(grouped) < 0.8 * padded_tokens(plain)
    # Same seed, same batches; the batch order is shuffled, not sorted by length.
    assert grouped == BatchSampler(size=2000, batch_size=16, seed=1, lengths=lengths).epoch()
    longest = [max(lengths[i] for i in b) for b in grouped]
    assert longest != sorted(longest, reverse=True)


def test_small_sets_keep_random_batches():
    lengths = list(range(40))
    grouped = BatchSampler(size=40, batch_size=16, seed=2, lengths=lengths)
    plain = BatchSampler(size=40, batch_size=16, seed=2)
    epochs = [grouped.epoch() for _ in range(3)]
    assert epochs == [plain.epoch() for _ in range(3)]
    assert epochs[0] != epochs[1]


def test_batch_sampler_rejects_wrong_length_count():
    with pytest.raises(ValueError, match="got 3 lengths for 4 rows"):
        BatchSampler(size=4, batch_size=2, seed=0, lengths=[1, 2, 3])


def test_soft_cross_entropy_matches_hard_for_one_hot():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, 3.0]])
    labels = torch.tensor([0, 2])
    one_hot = torch.nn.functional.one_hot(labels, 3).float()
    expected = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(soft_cross_entropy(logits, one_hot), expected)


def test_step_lrs_rejects_negative():
    train = per_class_set("trec", 1)
    train.extras["lrs"] = torch.tensor([1e-4, -1e-4])
    with pytest.raises(ValueError, match="extra 'lrs' must hold"):
        step_learning_rates(train, native=True)


def test_step_lrs_ignored_without_native():
    train = per_class_set("trec", 1)
    train.extras["lrs"] = torch.tensor([1e-4, 2e-4])
    assert step_learning_rates(train, native=False) is None
    assert step_learning_rates(train, native=True).tolist() == pytest.approx([1e-4, 2e-4])


# ---------------------------------------------------------------- classification data

def test_pair_task_tokenized_as_pairs(tokenizer):
    task = tasks.get("mrpc")
    records = tasks.load("mrpc").pool.records[:3]
    features = ClassificationObjective(task, MINILM, 128).tokenize(tokenizer, records)
    for feature in features:
        assert feature["input_ids"].count(tokenizer.sep_token_id) == 2
        assert 1 in feature["token_type_ids"]
        assert len(feature["input_ids"]) <= 128


def test_soft_labels_used_only_native(tokenizer):
    objective = ClassificationObjective(tasks.get("sst2"), MINILM, 64)
    train = per_class_set("sst2", 2)
    train.records[0]["soft_label"] = [0.3, 0.7]
    native = objective.prepare(tokenizer, train, native=True)
    standard = objective.prepare(tokenizer, train, native=False)
    assert standard.soft_labels is None
    assert native.soft_labels[0].tolist() == pytest.approx([0.3, 0.7])
    hard = int(train.records[1]["label"])
    assert native.soft_labels[1].tolist() == [1.0 if c == hard else 0.0 for c in range(2)]


def test_soft_label_wrong_length_rejected(tokenizer):
    objective = ClassificationObjective(tasks.get("sst2"), MINILM, 64)
    train = per_class_set("sst2", 1)
    train.records[1]["soft_label"] = [0.2, 0.3, 0.5]
    with pytest.raises(ValueError, match="synthetic record 1: 'soft_label' has 3 values"):
        objective.prepare(tokenizer, train, native=True)


def test_label_out_of_range_rejected(tokenizer):
    objective = ClassificationObjective(tasks.get("sst2"), MINILM, 64)
    train = per_class_set("sst2", 1)
    train.records[1]["label"] = 2
    with pytest.raises(ValueError, match="label 2 of example 1 is out of range; task 'sst2' has classes 0..1"):
        objective.prepare(tokenizer, train, native=False)


def test_missing_label_field_rejected(tokenizer):
    objective = ClassificationObjective(tasks.get("sst2"), MINILM, 64)
    train = per_class_set("sst2", 1)
    del train.records[0]["label"]
    with pytest.raises(ValueError, match="record 0 has no label field 'label'"):
        objective.prepare(tokenizer, train, native=False)


def test_embedding_width_mismatch_rejected():
    objective = ClassificationObjective(tasks.get("sst2"), MINILM, 64)
    train = SyntheticSet(task="sst2", method="fake", form="embeddings", backbone=MINILM,
                         tensors={"inputs": torch.randn(2, 5, 50), "labels": torch.tensor([0, 1])})
    with pytest.raises(ValueError, match="inputs have 50 values per token.*takes 384-d"):
        objective.prepare(None, train, native=False)


def test_embedding_batches_trim_padding():
    objective = ClassificationObjective(tasks.get("sst2"), MINILM, 64)
    mask = torch.zeros(3, 10, dtype=torch.long)
    mask[0, :4] = 1
    mask[1, :6] = 1
    mask[2, :2] = 1
    train = SyntheticSet(task="sst2", method="fake", form="embeddings", backbone=MINILM,
                         tensors={"inputs": torch.randn(3, 10, 384), "attention_mask": mask,
                                  "labels": torch.tensor([0, 1, 0])})
    batch = objective.prepare(None, train, native=False).collate([0, 2])
    assert batch["inputs_embeds"].shape == (2, 4, 384)
    assert batch["attention_mask"].shape == (2, 4)


def test_sentence_vectors_not_applicable():
    objective = ClassificationObjective(tasks.get("sst2"), MINILM, 64)
    train = SyntheticSet(task="sst2", method="fake", form="embeddings", backbone=MINILM,
                         tensors={"inputs": torch.randn(4, 384), "labels": torch.tensor([0, 1, 0, 1])})
    with pytest.raises(NotApplicableError, match="token-level input embeddings"):
        objective.prepare(None, train, native=False)


# ---------------------------------------------------------------- QA spans

def test_best_span_skips_reversed_and_masked():
    start = torch.full((40,), -5.0)
    end = torch.full((40,), -5.0)
    mask = torch.ones(40, dtype=torch.bool)
    mask[:3] = False
    start[1], end[1] = 50.0, 50.0  # highest logits, but outside the context
    start[20], end[10] = 9.0, 9.0  # end before start
    start[12], end[15] = 3.0, 3.0
    assert best_span(start, end, mask) == (12, 15, 6.0)


def test_best_span_limits_length():
    start = torch.full((40,), -5.0)
    end = torch.full((40,), -5.0)
    start[4], end[38] = 8.0, 8.0  # a 35-token span
    span_start, span_end, _ = best_span(start, end, torch.ones(40, dtype=torch.bool))
    assert span_end - span_start < 30
    assert best_span(start, end, torch.ones(40, dtype=torch.bool), max_answer_tokens=40)[:2] == (4, 38)


def test_best_span_without_context_is_none():
    logits = torch.zeros(8)
    assert best_span(logits, logits, torch.zeros(8, dtype=torch.bool)) is None


def test_answer_char_span_fallbacks():
    context = "Paris is the capital of France."
    assert answer_char_span(context, {"text": ["France"], "answer_start": [24]}) == (24, 30)
    assert answer_char_span(context, {"text": ["France"], "answer_start": [3]}) == (24, 30)
    assert answer_char_span(context, {"text": ["Spain"], "answer_start": [0]}) is None
    assert answer_char_span(context, {"text": [], "answer_start": []}) is None


LONG_CONTEXT = (" ".join(f"Sentence number {i} talks about nothing in particular." for i in range(12))
                + " The treaty was signed by Margaret Holloway in Lisbon in 1904."
                + " ".join(f" Filler clause {i} closes the passage." for i in range(6)))
ANSWER = "Margaret Holloway"


def test_windows_label_answer_in_long_context(tokenizer):
    windows = tokenize_windows(tokenizer, ["Who signed the treaty?"], [LONG_CONTEXT], max_length=64, stride=16)
    char_start = LONG_CONTEXT.index(ANSWER)
    labelled = []
    for window in windows:
        label_window(window, char_start, char_start + len(ANSWER))
        if window.start:
            labelled.append(window)
        else:
            assert window.end == 0
    assert len(windows) > 3
    assert labelled
    for window in labelled:
        text = LONG_CONTEXT[window.offsets[window.start][0]:window.offsets[window.end][1]]
        assert text == ANSWER
        assert len(window.tokens["input_ids"]) <= 64


def test_decode_answers_picks_best_window(tokenizer):
    windows = tokenize_windows(tokenizer, ["Who signed the treaty?"], [LONG_CONTEXT], max_length=64, stride=16)
    char_start = LONG_CONTEXT.index(ANSWER)
    starts, ends = [], []
    for number, window in enumerate(windows):
        label_window(window, char_start, char_start + len(ANSWER))
        start_logits = torch.randn(len(window.offsets), generator=torch.Generator().manual_seed(number))
        end_logits = torch.randn(len(window.offsets), generator=torch.Generator().manual_seed(100 + number))
        if window.start:
            start_logits[window.start] = end_logits[window.end] = 20.0
        starts.append(start_logits)
        ends.append(end_logits)
    assert decode_answers(windows, starts, ends, [LONG_CONTEXT]) == [ANSWER]


def test_decode_answers_empty_without_context():
    window = QAWindow(example=0, tokens={"input_ids": [101, 102]}, offsets=[None, None])
    assert decode_answers([window], [torch.zeros(2)], [torch.zeros(2)], ["ctx"]) == [""]


def test_qa_stride_too_large_rejected():
    with pytest.raises(ValueError, match="QA stride 100 must be positive and below 61"):
        SpanObjective(tasks.get("xquad_en"), MINILM, max_length=128, stride=100)


def test_qa_set_without_answers_rejected(tokenizer):
    record = {"id": "x", "title": "t", "question": "Who?", "context": "Nobody knows.",
              "answers": {"text": ["Alice"], "answer_start": [0]}}
    train = SyntheticSet(task="xquad_en", method="fake", form="text", records=[record])
    objective = SpanObjective(tasks.get("xquad_en"), MINILM, max_length=128, stride=32)
    with pytest.raises(ValueError, match="no record's answer text occurs in its context"):
        objective.prepare(tokenizer, train, native=False)


# ---------------------------------------------------------------- learner contract and errors

def test_registry_lists_finetune_learners():
    names = learners.names()
    for name in ("minilm-finetune", "bert-base-finetune", "roberta-base-finetune"):
        assert name in names


def test_minilm_rejects_instruction_task():
    with pytest.raises(NotApplicableError, match="not task 'alpaca' of family 'instruction'"):
        learner_for("alpaca")


def test_minilm_rejects_glove_embeddings():
    learner = learner_for("sst2")
    train = SyntheticSet(task="sst2", method="fake", form="embeddings", backbone="glove-6b-50d",
                         tensors={"inputs": torch.randn(2, 4, 50), "labels": torch.tensor([0, 1])})
    with pytest.raises(NotApplicableError, match="glove-6b-50d cannot be scored by minilm-finetune"):
        learner.fit(train, seed=0)


def test_minilm_rejects_qa_embeddings():
    learner = learner_for("xquad_en")
    train = SyntheticSet(task="xquad_en", method="fake", form="embeddings", backbone=MINILM,
                         tensors={"inputs": torch.randn(2, 4, 384), "labels": torch.tensor([0, 1])})
    with pytest.raises(NotApplicableError, match="only for classification and nli"):
        learner.fit(train, seed=0)


def test_minilm_rejects_other_task_set():
    with pytest.raises(ValueError, match="is for task 'trec'.*built for task 'sst2'"):
        learner_for("sst2").fit(per_class_set("trec", 1), seed=0)


def test_minilm_rejects_empty_set():
    empty = SyntheticSet(task="sst2", method="fake", form="text", records=[])
    with pytest.raises(ValueError, match="is empty"):
        learner_for("sst2").fit(empty, seed=0)


def test_evaluate_before_fit_rejected():
    with pytest.raises(RuntimeError, match=r"call fit\(\) before evaluate\(\)"):
        learner_for("sst2").evaluate(head_split("sst2", 4))


def test_unknown_tier_rejected():
    with pytest.raises(KeyError, match="has no recipe for tier 'smoke'"):
        learners.get("bert-base-finetune").recipe_for("smoke")


def test_hub_learner_offline_raises(monkeypatch):
    import huggingface_hub.constants

    # Offline mode makes the Hub client fail at once instead of retrying for about a minute.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("bert-base-finetune", "roberta-base-finetune"):
        learner = learner_for("sst2", tier="standard", name=name)
        with pytest.raises(BackboneUnavailableError, match="is not shipped with the suite.*HF_HUB_OFFLINE=1"):
            learner.fit(per_class_set("sst2", 1), seed=0)


# ---------------------------------------------------------------- training runs

def test_minilm_seed_repeats_and_varies():
    train = per_class_set("trec", 2)
    split = head_split("trec", 48)
    runs = {}
    for label, seed in (("first", 0), ("again", 0), ("other", 1)):
        learner = learner_for("trec")
        report = learner.fit(train, seed=seed)
        runs[label] = (report, learner.evaluate(split))
    assert runs["first"][0].losses == runs["again"][0].losses
    assert runs["first"][1] == runs["again"][1]
    assert runs["first"][0].losses != runs["other"][0].losses
    report = runs["first"][0]
    assert report.steps == 10
    assert report.examples == 12
    assert report.tokens > 0
    assert report.wall_time_s > 0
    assert report.peak_memory_mb > 0


def test_minilm_lrs_extra_sets_steps():
    train = per_class_set("trec", 1)
    train.extras["lrs"] = torch.tensor([1e-4, 5e-5, 1e-5])
    learner = learner_for("trec")
    assert learner.fit(train, seed=0, native=True).steps == 3
    assert learner.fit(train, seed=0, native=False).steps == 10


def test_minilm_trains_on_embedding_set(tokenizer):
    """An embedding set built from MiniLM's own word embeddings trains and scores on real text."""
    from transformers import AutoModel

    text_set = per_class_set("sst2", 3)
    encoded = tokenizer([r["sentence"] for r in text_set.records], padding=True, truncation=True,
                        max_length=32, return_tensors="pt")
    words = AutoModel.from_pretrained(encoder_path(MINILM)).get_input_embeddings()
    with torch.no_grad():
        inputs = words(encoded["input_ids"])
    labels = torch.tensor([r["label"] for r in text_set.records])
    train = SyntheticSet(task="sst2", method="fake", form="embeddings", backbone=MINILM,
                         tensors={"inputs": inputs, "attention_mask": encoded["attention_mask"], "labels": labels,
                                  "soft_labels": torch.full((len(labels), 2), 0.5)})
    learner = learner_for("sst2")
    report = learner.fit(train, seed=0, native=True)
    assert report.examples == 6
    assert report.tokens == 10 * int(encoded["attention_mask"].sum())  # each step's batch is all 6 rows
    scores = learner.evaluate(head_split("sst2", 16))
    assert set(scores) == {"accuracy", "macro_f1"}


@pytest.mark.slow
@pytest.mark.parametrize(("task_name", "minimum"), [("sst2", 0.54), ("trec", 0.45)])
def test_minilm_quick_beats_chance(task_name, minimum):
    """10 examples per class from the real pool, quick recipe, scored on the real test split.

    Chance is 0.5 on sst2 and 0.28 (the majority class) on trec. Three pool draws scored
    0.58 to 0.64 on sst2 and 0.59 to 0.68 on trec, so the bounds leave room for numeric drift.
    """
    learner = learner_for(task_name, tier="quick")
    learner.fit(per_class_set(task_name, 10), seed=0)
    scores = learner.evaluate(tasks.load(task_name).test)
    print(f"{task_name} minilm-finetune quick, 10 per class: {scores}")
    assert scores["accuracy"] > minimum


HANDMADE_QA = [
    ("Who painted the blue door?", "The blue door was painted by Oskar Lindqvist in the spring.", "Oskar Lindqvist"),
    ("Where did the ferry sink?", "After a storm, the old ferry sank near Cape Morrow last winter.", "Cape Morrow"),
    ("How many lamps were bought?", "The library bought seventeen lamps for the reading room.", "seventeen"),
    ("What colour was the kite?", "Her kite was bright orange and flew above the hill all day.", "bright orange"),
]


def test_minilm_qa_learns_handmade_spans():
    """Trained on four handmade pairs, the span head extracts each exact answer from its context."""
    records = [{"id": str(i), "title": "handmade", "question": question, "context": context,
                "answers": {"text": [answer], "answer_start": [context.index(answer)]}}
               for i, (question, context, answer) in enumerate(HANDMADE_QA)]
    train = SyntheticSet(task="xquad_en", method="handmade", form="text", records=records)
    learner = learner_for("xquad_en", steps=30, lr=3e-4)
    learner.fit(train, seed=0)
    predictions = learner.objective.predict(learner.tokenizer, learner.model, records, learner.device)
    assert predictions == [answer for _, _, answer in HANDMADE_QA]
    scores = learner.evaluate(Split("handmade", tuple(records), "handmade"))
    assert scores == {"exact_match": 100.0, "f1": 100.0}


@pytest.mark.slow
def test_minilm_qa_runs_on_xquad():
    data = tasks.load("xquad_en")
    train = SyntheticSet(task="xquad_en", method="random", form="text",
                         records=[dict(r) for r in data.pool.records[:40]])
    learner = learner_for("xquad_en")
    report = learner.fit(train, seed=0)
    scores = learner.evaluate(data.test)
    print(f"xquad_en minilm-finetune smoke, 40 records: {scores}, {report.wall_time_s:.1f} s")
    assert set(scores) == {"exact_match", "f1"}
    assert 0.0 <= scores["exact_match"] <= scores["f1"] <= 100.0
    assert report.examples >= 40


# ---------------------------------------------------------------- native track: learned rates and attention labels

def attention_label_set(rows: int = 4, length: int = 6, lrs: tuple[float, ...] = (0.05, 0.02),
                        layers: int = 6, heads: int = 12, **manifest) -> SyntheticSet:
    """An sst2 embedding set shaped like attention-labels output: inputs, soft labels, rates and targets."""
    generator = torch.Generator().manual_seed(0)
    mask = torch.ones(rows, length)
    mask[0, -2:] = 0
    targets = torch.softmax(torch.randn(rows, layers, heads, length, generator=generator), dim=-1)
    targets = targets * mask[:, None, None, :]
    targets = targets / targets.sum(-1, keepdim=True)
    labels = torch.arange(rows) % 2
    return SyntheticSet(task="sst2", method="attention-labels", form="embeddings", backbone=MINILM,
                        tensors={"inputs": 0.05 * torch.randn(rows, length, 384, generator=generator),
                                 "attention_mask": mask, "labels": labels,
                                 "soft_labels": torch.softmax(torch.randn(rows, 2, generator=generator), dim=-1)},
                        extras={"lrs": torch.tensor(lrs), "attention_targets": targets},
                        manifest={"attention_lambda": 1.0, **manifest})


def replay_inner_loop(train: SyntheticSet, seed: int, weight: float) -> dict[str, torch.Tensor]:
    """Plain SGD on the whole set with the set's rates, written out step by step; returns the final weights."""
    from benchmark.learners.finetune import attention_kl, cls_attention
    from benchmark.learners.training import seed_everything

    seed_everything(seed)
    _, model = ClassificationObjective(tasks.get("sst2"), MINILM, 64).build_model(attn_implementation="eager")
    model.eval()
    mask = train.tensors["attention_mask"].long()
    for rate in train.extras["lrs"].tolist():
        output = model(inputs_embeds=train.tensors["inputs"], attention_mask=mask, output_attentions=True)
        loss = soft_cross_entropy(output.logits, train.tensors["soft_labels"])
        loss = loss + weight * attention_kl(train.extras["attention_targets"], cls_attention(output.attentions))
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.grad is not None:  # the word-embedding table is unused with inputs_embeds
                    parameter -= rate * parameter.grad
    return {name: p.detach() for name, p in model.named_parameters()}


@pytest.mark.parametrize("weight", [1.0, 0.0])
def test_native_track_replays_inner_loop(weight):
    train = attention_label_set(attention_lambda=weight)
    learner = learner_for("sst2")
    report = learner.fit(train, seed=3, native=True)
    assert report.steps == 2
    assert len(report.losses) == 2
    expected = replay_inner_loop(train, seed=3, weight=weight)
    for name, parameter in learner.model.named_parameters():
        torch.testing.assert_close(parameter.detach(), expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_attention_term_changes_native_training():
    with_term = learner_for("sst2").fit(attention_label_set(attention_lambda=1.0), seed=0, native=True)
    without = learner_for("sst2").fit(attention_label_set(attention_lambda=0.0), seed=0, native=True)
    # The KL term is non-negative, and positive for targets unlike the model's own attention.
    assert with_term.losses[0] > without.losses[0] + 1e-3


def test_standard_track_ignores_rates_and_targets():
    recipe = learners.get(MINILM_FINETUNE).recipe_for("smoke")
    report = learner_for("sst2").fit(attention_label_set(), seed=0, native=False)
    assert report.steps == recipe.steps


def test_attention_targets_wrong_heads_rejected():
    with pytest.raises(ValueError, match="has 6 layers x 4 heads, but the model has 6 x 12"):
        learner_for("sst2").fit(attention_label_set(heads=4), seed=0, native=True)


def test_attention_targets_wrong_length_rejected():
    train = attention_label_set()
    train.extras["attention_targets"] = train.extras["attention_targets"][..., :3]
    with pytest.raises(ValueError, match=r"extra 'attention_targets' has shape \(4, 6, 12, 3\); expected \[4, "):
        learner_for("sst2").fit(train, seed=0, native=True)


@pytest.mark.parametrize("value", [-1.0, "high", float("nan")])
def test_bad_attention_lambda_rejected(value):
    with pytest.raises(ValueError, match="manifest 'attention_lambda' is"):
        learner_for("sst2").fit(attention_label_set(attention_lambda=value), seed=0, native=True)


def test_attention_targets_on_text_set_rejected():
    train = per_class_set("sst2", 1)
    train.extras.update(lrs=torch.tensor([0.01]), attention_targets=torch.full((2, 6, 12, 4), 0.25))
    with pytest.raises(ValueError, match="'attention_targets' needs a MiniLM embedding set"):
        learner_for("sst2").fit(train, seed=0, native=True)


def test_attention_targets_without_rates_ignored():
    train = attention_label_set()
    del train.extras["lrs"]
    examples = ClassificationObjective(tasks.get("sst2"), MINILM, 64).prepare(None, train, native=True)
    assert examples.attention_targets is None
    report = learner_for("sst2").fit(train, seed=0, native=True)
    assert report.steps == learners.get(MINILM_FINETUNE).recipe_for("smoke").steps


def test_attention_targets_not_distributions_rejected():
    train = attention_label_set()
    train.extras["attention_targets"] = -torch.ones_like(train.extras["attention_targets"])
    with pytest.raises(ValueError, match="'attention_targets' must hold probability distributions"):
        learner_for("sst2").fit(train, seed=0, native=True)
