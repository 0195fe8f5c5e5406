"""ROUGE-L F-measure on whitespace tokens, lower-cased, for greedy generations."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\w+")


def _lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """F1 of the longest common subsequence of word tokens (ROUGE-L with beta = 1)."""
    predicted, truth = _TOKEN.findall(prediction.lower()), _TOKEN.findall(reference.lower())
    if not predicted or not truth:
        return 0.0
    lcs = _lcs_length(predicted, truth)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(predicted), lcs / len(truth)
    return 2 * precision * recall / (precision + recall)
