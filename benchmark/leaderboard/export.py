"""Machine-readable outputs: long and wide CSV, and leaderboard.json."""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.leaderboard.formatting import format_budget
from benchmark.leaderboard.model import Leaderboard
from benchmark.leaderboard.ranking import TIE_RULE

logger = logging.getLogger(__name__)

WIDE_INDEX = ["task", "learner", "recipe_id", "track", "protocol_version", "metric", "method"]


def long_rows(leaderboard: Leaderboard) -> list[dict[str, Any]]:
    """Return one dict per aggregate with its cell rank, tie group and the reasons of non-ok runs."""
    rows = []
    for aggregate in leaderboard.aggregates:
        place = leaderboard.cell_ranks.get(aggregate.key)
        rows.append({**aggregate.to_row(), "group": place.group if place else None,
                     "rank": place.rank if place else None, "reasons": list(aggregate.reasons)})
    return rows


def write_long_csv(leaderboard: Leaderboard, path: Path) -> None:
    rows = long_rows(leaderboard)
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]) if rows else ["task"])
        writer.writeheader()
        for row in rows:
            writer.writerow({name: " ".join(map(str, value)) if isinstance(value, list) else value
                             for name, value in row.items()})


def wide_frame(leaderboard: Leaderboard) -> pd.DataFrame:
    """Mean score of each method (rows) at each budget (columns, then `full`), one row per table key."""
    frame = pd.DataFrame([aggregate.to_row() for aggregate in leaderboard.aggregates])
    if frame.empty:
        return pd.DataFrame(columns=WIDE_INDEX)
    budgets = sorted({budget for budget in frame["budget"] if budget is not None and not pd.isna(budget)})
    frame["budget_label"] = [format_budget(None if pd.isna(budget) else int(budget))
                             for budget in frame["budget"]]
    # (table key, task, method, budget) is unique per aggregate, so unstacking never collides.
    wide = frame.set_index([*WIDE_INDEX, "budget_label"])["mean"].unstack("budget_label")
    columns = [str(int(budget)) for budget in budgets] + (["full"] if "full" in wide.columns else [])
    wide = wide.reindex(columns=columns)
    wide.columns.name = None
    return wide.reset_index()


def write_wide_csv(leaderboard: Leaderboard, path: Path) -> None:
    wide_frame(leaderboard).to_csv(path, index=False)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def leaderboard_payload(leaderboard: Leaderboard) -> dict[str, Any]:
    """Everything the leaderboard computed, as plain JSON values (NaN and infinity become null)."""
    rankings = [{**asdict(ranking.table_key), "budget": ranking.budget, "tasks": list(ranking.tasks),
                 "n_cells": ranking.n_cells,
                 "entries": [{"method": entry.method, "group": entry.group,
                              "mean_rank": entry.mean_rank, "rank_ci_low": entry.rank_summary.ci_low,
                              "rank_ci_high": entry.rank_summary.ci_high, "n_cells": entry.n_cells,
                              "mean_gap_closed": entry.mean_gap_closed,
                              "n_gap_closed": entry.n_gap_closed, "n_failed": entry.n_failed,
                              "n_not_applicable": entry.n_not_applicable,
                              "n_contaminated": entry.n_contaminated}
                             for entry in ranking.entries]}
                for ranking in leaderboard.rankings]
    cross_arch = [{"track": matrix.track, "protocol_version": matrix.protocol_version,
                   "task": matrix.task, "budget": matrix.budget, "rows": list(matrix.rows),
                   "columns": list(matrix.columns),
                   "cells": [{"row": row, "column": column, **asdict(cell)}
                             for (row, column), cell in sorted(matrix.cells.items())]}
                  for matrix in leaderboard.cross_arch]
    payload = {
        "results_dir": str(leaderboard.results_dir),
        "record_counts": {"files_read": leaderboard.files_read, **leaderboard.status_counts},
        "tie_rule": TIE_RULE,
        "aggregates": long_rows(leaderboard),
        "rankings": rankings,
        "cross_architecture": cross_arch,
        "warnings": list(leaderboard.warnings),
    }
    return _finite_or_none(payload)


def write_json(leaderboard: Leaderboard, path: Path) -> None:
    path.write_text(json.dumps(leaderboard_payload(leaderboard), indent=2, allow_nan=False) + "\n",
                    encoding="utf-8")
