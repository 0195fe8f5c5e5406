"""Exact match and token F1 with the answer normalization of the official SQuAD v1.1 script.

Normalization lower-cases, removes punctuation, removes the articles a, an and the, and collapses
whitespace. Each prediction is scored against every reference answer and the best score counts.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    predicted, truth = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = sum((Counter(predicted) & Counter(truth)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(truth)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean best-over-references exact match and F1, in percent as the official script reports."""
    if len(predictions) != len(references) or not predictions:
        raise ValueError(f"need as many predictions as reference lists; got {len(predictions)} and {len(references)}")
    em = f1 = 0.0
    for prediction, answers in zip(predictions, references):
        if not answers:
            raise ValueError(f"prediction {prediction!r} has no reference answers")
        em += max(exact_match(prediction, a) for a in answers)
        f1 += max(token_f1(prediction, a) for a in answers)
    return {"exact_match": 100 * em / len(predictions), "f1": 100 * f1 / len(predictions)}
