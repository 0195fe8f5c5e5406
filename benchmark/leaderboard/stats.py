"""Seed statistics: mean, sample standard deviation, t-interval of the mean, metric direction."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

logger = logging.getLogger(__name__)

CONFIDENCE = 0.95

# Metrics where a smaller value is better. Every other metric counts as higher-is-better.
LOWER_IS_BETTER_METRICS = frozenset({"nll", "perplexity", "loss"})


def higher_is_better(metric: str) -> bool:
    """Return True when a larger value of `metric` is better (False for nll, perplexity, loss)."""
    return metric not in LOWER_IS_BETTER_METRICS


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof=1) and two-sided t-interval of the mean over n values.

    `std` and the interval are None when n < 2; every field except n is None when n = 0.
    """

    n: int
    mean: float | None = None
    std: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def bounds(self) -> tuple[float, float] | None:
        """Interval used to decide ties: the confidence interval, the point (mean, mean) when n = 1,
        or None when n = 0."""
        if self.mean is None:
            return None
        if self.ci_low is None or self.ci_high is None:
            return (self.mean, self.mean)
        return (self.ci_low, self.ci_high)


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Summarize `values` (one per run); the interval uses Student's t with n - 1 degrees of freedom."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"summarize: confidence must be in (0, 1), got {confidence!r}; "
                         f"pass e.g. 0.95 for a 95% interval")
    count = len(values)
    if count == 0:
        return Summary(n=0)
    mean = math.fsum(values) / count
    if count == 1:
        return Summary(n=1, mean=mean)

    std = math.sqrt(math.fsum((value - mean) ** 2 for value in values) / (count - 1))
    critical = float(scipy_stats.t.ppf((1.0 + confidence) / 2.0, count - 1))
    half_width = critical * std / math.sqrt(count)
    return Summary(n=count, mean=mean, std=std, ci_low=mean - half_width, ci_high=mean + half_width)


def intervals_overlap(first: tuple[float, float], second: tuple[float, float]) -> bool:
    """Return True when two closed intervals share a point; touching ends count as overlap."""
    return first[0] <= second[1] and second[0] <= first[1]
