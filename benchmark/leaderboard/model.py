"""The computed leaderboard: aggregates, cell ranks, rankings and cross-architecture matrices."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.leaderboard.aggregate import Aggregate, CellKey, TableKey, aggregate_records
from benchmark.leaderboard.crossarch import CrossArchMatrix, cross_architecture
from benchmark.leaderboard.loading import LoadResult
from benchmark.leaderboard.ranking import CellRank, Ranking, rank_across_tasks, rank_cells

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResultTable:
    """Methods of one task and budget under one table key; budget None is the full-data table."""

    table_key: TableKey
    task: str
    budget: int | None
    budget_unit: str
    metric: str
    higher_is_better: bool
    rows: tuple[Aggregate, ...]

    @property
    def title(self) -> str:
        budget = "full data" if self.budget is None else f"budget {self.budget} ({self.budget_unit})"
        return f"{self.task}, {budget}"


@dataclass
class Leaderboard:
    """Everything the writers render, computed from records alone."""

    results_dir: Path
    status_counts: dict[str, int]
    files_read: int
    aggregates: list[Aggregate]
    cell_ranks: dict[tuple[CellKey, str], CellRank]
    tables: list[ResultTable]
    rankings: list[Ranking]
    cross_arch: list[CrossArchMatrix]
    warnings: list[str] = field(default_factory=list)

    @property
    def n_records(self) -> int:
        return sum(self.status_counts.values())

    @property
    def table_keys(self) -> list[TableKey]:
        return sorted({aggregate.cell.table_key for aggregate in self.aggregates})


def compute_leaderboard(loaded: LoadResult) -> Leaderboard:
    """Aggregate, rank and cross-tabulate the loaded records; warnings collect from every step."""
    aggregation = aggregate_records(loaded.records)
    cell_ranks = rank_cells(aggregation.aggregates)
    leaderboard = Leaderboard(
        results_dir=loaded.results_dir, status_counts=loaded.status_counts,
        files_read=loaded.files_read, aggregates=aggregation.aggregates, cell_ranks=cell_ranks,
        tables=result_tables(aggregation.aggregates, cell_ranks),
        rankings=rank_across_tasks(aggregation.aggregates, cell_ranks),
        cross_arch=cross_architecture(aggregation.aggregates),
        warnings=[*loaded.warnings, *aggregation.warnings],
    )
    logger.info("computed %d aggregates in %d tables and %d rankings from %d records",
                len(leaderboard.aggregates), len(leaderboard.tables), len(leaderboard.rankings),
                leaderboard.n_records)
    return leaderboard


def result_tables(aggregates: list[Aggregate],
                  cell_ranks: dict[tuple[CellKey, str], CellRank]) -> list[ResultTable]:
    """Build one table per (table key, task, budget), rows ordered by tie group, score and name."""
    cells: dict[CellKey, list[Aggregate]] = defaultdict(list)
    for aggregate in aggregates:
        cells[aggregate.cell].append(aggregate)

    tables = []
    for cell, members in cells.items():
        first = members[0]
        sign = -1.0 if first.higher_is_better else 1.0

        def order(aggregate: Aggregate) -> tuple:
            place = cell_ranks.get(aggregate.key)
            mean = aggregate.summary.mean
            return (place.group if place else math.inf,
                    sign * mean if mean is not None else math.inf, aggregate.method)

        tables.append(ResultTable(table_key=cell.table_key, task=cell.task, budget=cell.budget,
                                  budget_unit=first.budget_unit, metric=first.metric,
                                  higher_is_better=first.higher_is_better,
                                  rows=tuple(sorted(members, key=order))))
    return sorted(tables, key=lambda table: (table.table_key, table.task,
                                             math.inf if table.budget is None else table.budget))
