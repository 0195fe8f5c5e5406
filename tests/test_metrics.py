"""Metrics against values computed by hand, including SQuAD normalization edge cases and error paths."""

from __future__ import annotations

import math

import pytest

from benchmark.metrics import classification_scores, normalize_answer, rouge_l, squad_scores

# ---------------------------------------------------------------- classification


def test_binary_accuracy_f1_macro() -> None:
    # class 1: tp 1, fp 0, fn 2 -> F1 2/4; class 0: tp 2, fp 2, fn 0 -> F1 4/6
    scores = classification_scores([0, 1, 1, 0, 1], [0, 1, 0, 0, 0], 2, ("accuracy", "f1", "macro_f1"))
    assert scores["accuracy"] == pytest.approx(3 / 5)
    assert scores["f1"] == pytest.approx(0.5)
    assert scores["macro_f1"] == pytest.approx((0.5 + 4 / 6) / 2)


def test_multiclass_macro_f1() -> None:
    # class 0: tp 1, fp 1, fn 1 -> 2/4; class 1: tp 1, fp 1, fn 0 -> 2/3; class 2: tp 2, fp 0, fn 1 -> 4/5
    scores = classification_scores([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3, ("accuracy", "macro_f1", "f1"))
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)
    assert math.isnan(scores["f1"])  # binary F1 is undefined for three classes


def test_macro_f1_absent_class_counts_zero() -> None:
    scores = classification_scores([0, 1], [0, 1], 3)
    assert scores["accuracy"] == 1.0
    assert scores["macro_f1"] == pytest.approx(2 / 3)


def test_classification_returns_requested_order() -> None:
    scores = classification_scores([1, 1], [1, 0], 2, ("macro_f1", "accuracy"))
    assert list(scores) == ["macro_f1", "accuracy"]


def test_classification_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="equal, non-empty label arrays"):
        classification_scores([0, 1, 1], [0, 1], 2)


def test_classification_empty_raises() -> None:
    with pytest.raises(ValueError, match="equal, non-empty label arrays"):
        classification_scores([], [], 2)


def test_classification_unknown_metric_raises() -> None:
    with pytest.raises(ValueError, match=r"unknown classification metric\(s\) \['precision'\]"):
        classification_scores([0, 1], [0, 1], 2, ("accuracy", "precision"))


# ---------------------------------------------------------------- SQuAD


@pytest.mark.parametrize(("text", "expected"), [
    ("The  Quick, brown fox!", "quick brown fox"),
    ("an apple a day", "apple day"),
    ("theater anthem", "theater anthem"),  # articles are whole words only
    ("U.S.", "us"),
    ("  New\tYork \n", "new york"),
    ("A", ""),
    ("", ""),
])
def test_normalize_answer_cases(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_squad_exact_match_after_normalization() -> None:
    scores = squad_scores(["the Eiffel Tower."], [["Eiffel  tower"]])
    assert scores == {"exact_match": 100.0, "f1": 100.0}


def test_squad_best_reference_counts() -> None:
    scores = squad_scores(["Denver Broncos"], [["Carolina Panthers", "the Denver Broncos", "Broncos"]])
    assert scores["exact_match"] == 100.0
    assert scores["f1"] == 100.0


def test_squad_partial_f1() -> None:
    # prediction tokens [cat, sat, on, mat], reference [cat, sat]: precision 1/2, recall 1, F1 2/3
    scores = squad_scores(["the cat sat on a mat"], [["a cat sat"]])
    assert scores["exact_match"] == 0.0
    assert scores["f1"] == pytest.approx(200 / 3)


def test_squad_repeated_tokens_clip() -> None:
    # common tokens are counted with multiplicity: [x, x, x] vs [x, y] share one x
    scores = squad_scores(["x x x"], [["x y"]])
    assert scores["f1"] == pytest.approx(100 * 2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_squad_means_over_predictions() -> None:
    scores = squad_scores(["Paris", "the cat sat on a mat", ""], [["paris"], ["a cat sat"], ["anything"]])
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx((100 + 200 / 3 + 0) / 3)


def test_squad_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="as many predictions as reference lists; got 2 and 1"):
        squad_scores(["a", "b"], [["a"]])


def test_squad_empty_raises() -> None:
    with pytest.raises(ValueError, match="as many predictions as reference lists; got 0 and 0"):
        squad_scores([], [])


def test_squad_no_references_raises() -> None:
    with pytest.raises(ValueError, match="prediction 'Paris' has no reference answers"):
        squad_scores(["Paris"], [[]])


# ---------------------------------------------------------------- ROUGE-L


def test_rouge_l_equal_lengths() -> None:
    # LCS "the cat on the mat" has 5 of 6 tokens on both sides
    assert rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)


def test_rouge_l_unequal_lengths() -> None:
    # LCS 2: precision 2/4, recall 2/2
    assert rouge_l("a b c d", "a c") == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_rouge_l_order_matters() -> None:
    assert rouge_l("b a", "a b") == pytest.approx(0.5)


def test_rouge_l_ignores_case_and_punctuation() -> None:
    assert rouge_l("Hello, World!", "hello world") == 1.0


def test_rouge_l_empty_or_disjoint_is_zero() -> None:
    assert rouge_l("", "reference") == 0.0
    assert rouge_l("prediction", "") == 0.0
    assert rouge_l("alpha beta", "gamma delta") == 0.0
