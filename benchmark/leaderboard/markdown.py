"""Render the leaderboard as LEADERBOARD.md: rankings, one table per task and budget, cross-architecture."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from benchmark.leaderboard.crossarch import CrossArchMatrix
from benchmark.leaderboard.formatting import (MISSING, direction_mark, format_interval,
                                              format_number)
from benchmark.leaderboard.model import Leaderboard, ResultTable
from benchmark.leaderboard.ranking import TIE_RULE, Ranking

logger = logging.getLogger(__name__)

CONTAMINATION_FLAG = "⚠ contaminated"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
    return [line(header), "|" + "|".join("---" for _ in header) + "|", *map(line, rows), ""]


def render_markdown(leaderboard: Leaderboard) -> str:
    """Render the complete LEADERBOARD.md text."""
    counts = leaderboard.status_counts
    lines = [
        "# TDD-Bench leaderboard", "",
        f"Built from {leaderboard.n_records} result records under `{leaderboard.results_dir}` "
        f"({counts['ok']} ok, {counts['failed']} failed, {counts['not_applicable']} not applicable): "
        f"{len(leaderboard.aggregates)} aggregates in {len(leaderboard.tables)} tables.", "",
        "Scores are means over distillation seeds x training seeds, with the sample standard "
        "deviation and the 95% t-interval of the mean. *Gain vs random* is the difference to the "
        "random baseline of the same task, budget, learner, recipe and track, signed so that "
        "positive is better. *Gap closed* is (method - random) / (full data - random). "
        "↑ marks higher-is-better metrics and ↓ lower-is-better ones. "
        f"{CONTAMINATION_FLAG} marks entries with runs flagged for n-gram overlap with the test split. "
        "Tables never mix recipe ids or protocol versions.", "",
        f"**Tie groups.** {TIE_RULE}", "",
    ]
    lines += _rankings_section(leaderboard.rankings)
    lines += _results_section(leaderboard)
    lines += _cross_arch_section(leaderboard.cross_arch)
    if leaderboard.warnings:
        lines += ["## Warnings", "", *(f"- {warning}" for warning in leaderboard.warnings), ""]
    return "\n".join(lines)


def _rankings_section(rankings: list[Ranking]) -> list[str]:
    lines = ["## Rankings across tasks", ""]
    header = ["group", "method", "mean rank", "95% CI of rank", "cells", "mean gap closed",
              "failed", "not applicable", "flags"]
    for ranking in rankings:
        budget = "all budgets" if ranking.budget == "all" else f"budget {ranking.budget}"
        lines += [f"### {ranking.table_key.label}: {budget}", "",
                  f"Tasks: {', '.join(ranking.tasks)}. Task-budget cells: {ranking.n_cells}.", ""]
        rows = [[str(entry.group), entry.method, format_number(entry.mean_rank, 2),
                 format_interval(entry.rank_summary, 2), str(entry.n_cells),
                 format_number(entry.mean_gap_closed, 3), str(entry.n_failed),
                 str(entry.n_not_applicable), CONTAMINATION_FLAG if entry.n_contaminated else ""]
                for entry in ranking.entries]
        lines += _table(header, rows)
    return lines


def _results_section(leaderboard: Leaderboard) -> list[str]:
    lines = ["## Results by task and budget", ""]
    current_key = None
    for table in leaderboard.tables:
        if table.table_key != current_key:
            current_key = table.table_key
            lines += [f"### {current_key.label}", ""]
        lines += [f"#### {table.title}: {table.metric} {direction_mark(table.higher_is_better)}", ""]
        lines += _result_table(leaderboard, table)
    return lines


def _result_table(leaderboard: Leaderboard, table: ResultTable) -> list[str]:
    header = ["group", "method", "category", "n", "mean", "std", "95% CI", "gain vs random",
              "gap closed", "distill time (s)", "peak memory (MB)", "failed", "not applicable",
              "flags"]
    rows = []
    for aggregate in table.rows:
        place = leaderboard.cell_ranks.get(aggregate.key)
        summary = aggregate.summary
        flags = [CONTAMINATION_FLAG] if aggregate.n_contaminated else []
        flags += list(aggregate.reasons)
        rows.append([str(place.group) if place else MISSING, aggregate.method,
                     aggregate.method_category, str(summary.n), format_number(summary.mean),
                     format_number(summary.std), format_interval(summary),
                     format_number(aggregate.gain_over_random), format_number(aggregate.gap_closed, 3),
                     format_number(aggregate.distill_wall_time_s, 1),
                     format_number(aggregate.distill_peak_memory_mb, 0), str(aggregate.n_failed),
                     str(aggregate.n_not_applicable), "; ".join(flags)])
    return _table(header, rows)


def _cross_arch_section(matrices: list[CrossArchMatrix]) -> list[str]:
    if not matrices:
        return []
    lines = ["## Cross-architecture (text-level sets)", "",
             "Rows are the distillation backbone (`none` when the method used no model), columns the "
             "learner that trained on the set. Cells show mean score / mean gap closed (n aggregates).",
             ""]
    for matrix in matrices:
        lines += [f"### {matrix.title}", ""]
        rows = []
        for row in matrix.rows:
            cells = [row]
            for column in matrix.columns:
                cell = matrix.cells.get((row, column))
                if cell is None:
                    cells.append(MISSING)
                elif matrix.task is None:
                    cells.append(f"{format_number(cell.gap_closed, 3)} ({cell.n_aggregates})")
                else:
                    cells.append(f"{format_number(cell.mean_score)} / "
                                 f"{format_number(cell.gap_closed, 3)}")
            rows.append(cells)
        lines += _table(["distill backbone" if matrix.task is None else "backbone · method",
                         *matrix.columns], rows)
    return lines
