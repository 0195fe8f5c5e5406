"""Number formatting shared by the Markdown and HTML writers; missing values render as an en dash."""

from __future__ import annotations

import logging

from benchmark.leaderboard.stats import Summary

logger = logging.getLogger(__name__)

MISSING = "–"


def format_number(value: float | None, digits: int = 4) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def format_interval(summary: Summary, digits: int = 4) -> str:
    if summary.ci_low is None or summary.ci_high is None:
        return MISSING
    return f"[{summary.ci_low:.{digits}f}, {summary.ci_high:.{digits}f}]"


def format_budget(budget: int | str | None) -> str:
    return "full" if budget is None else str(budget)


def direction_mark(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"
