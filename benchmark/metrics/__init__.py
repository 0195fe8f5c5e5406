"""Metrics implemented in the suite, so scoring works offline and matches the official definitions."""

from benchmark.metrics.classification import classification_scores
from benchmark.metrics.generation import rouge_l
from benchmark.metrics.squad import normalize_answer, squad_scores

__all__ = ["classification_scores", "normalize_answer", "rouge_l", "squad_scores"]
