"""Accuracy, macro-F1 and binary F1 of the positive class (as GLUE reports F1 for MRPC and QQP)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _f1(tp: int, fp: int, fn: int) -> float:
    denominator = 2 * tp + fp + fn
    return 0.0 if denominator == 0 else 2 * tp / denominator


def classification_scores(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int,
                          names: Sequence[str] = ("accuracy", "macro_f1")) -> dict[str, float]:
    """Return the requested metrics; `f1` is the F1 of class 1, `macro_f1` averages all classes."""
    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    if truth.shape != predicted.shape or truth.size == 0:
        raise ValueError(f"need equal, non-empty label arrays; got {truth.shape} and {predicted.shape}")
    per_class = []
    for c in range(num_classes):
        tp = int(np.sum((predicted == c) & (truth == c)))
        fp = int(np.sum((predicted == c) & (truth != c)))
        fn = int(np.sum((predicted != c) & (truth == c)))
        per_class.append(_f1(tp, fp, fn))
    available = {
        "accuracy": float(np.mean(truth == predicted)),
        "macro_f1": float(np.mean(per_class)),
        "f1": per_class[1] if num_classes == 2 else float("nan"),
    }
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise ValueError(f"unknown classification metric(s) {unknown}; available: {sorted(available)}")
    return {name: available[name] for name in names}
