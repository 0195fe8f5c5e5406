"""Ranks with tie groups, within one cell and across tasks.

Tie rule, used at both levels: sort the entries best first. The first entry opens group 1. Each
next entry joins the current group when its interval overlaps the interval of the group's first
(best) entry, and otherwise opens the next group. Overlap is judged only against that best entry,
so a chain of pairwise overlaps does not merge groups. An entry with a single run (no interval) is
the point [mean, mean]. Within a group every entry gets the mean of the positions the group
occupies (fractional ranking), so two tied entries at positions 1 and 2 both rank 1.5.

- In one cell (task, budget, learner, recipe, track, protocol) the entries are methods, sorted by
  mean score in the metric's direction, with the 95% t-interval of the score over runs.
- Across tasks (per learner, recipe, track, protocol and budget, or over all budgets) the entries
  are methods, sorted by mean cell rank (lower first, ties by higher mean gap closed). Their
  interval is the 95% t-interval of the mean rank over the cells the method was ranked in.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from benchmark.leaderboard.aggregate import FULL_METHOD, Aggregate, CellKey, TableKey
from benchmark.leaderboard.stats import Summary, intervals_overlap, summarize

logger = logging.getLogger(__name__)

ALL_BUDGETS = "all"

# One-paragraph statement of the rule for the rendered pages; the module docstring has the details.
TIE_RULE = ("Entries are sorted best first. The first entry opens group 1; each next entry joins the "
            "current group when its 95% interval overlaps the interval of the group's best entry, "
            "otherwise it opens the next group. A single run counts as the point [mean, mean]. Tied "
            "entries share the mean of the positions their group occupies. Within a task and budget "
            "the interval is the t-interval of the score over runs; across tasks it is the "
            "t-interval of the mean rank over cells, and methods are sorted by mean rank, then by "
            "higher mean gap closed.")

T = TypeVar("T")


def tie_groups(ordered: Sequence[T], bounds: Callable[[T], tuple[float, float]]) -> list[list[T]]:
    """Split entries, sorted best first, into tie groups by overlap with each group's best entry."""
    groups: list[list[T]] = []
    for entry in ordered:
        if groups and intervals_overlap(bounds(entry), bounds(groups[-1][0])):
            groups[-1].append(entry)
        else:
            groups.append([entry])
    return groups


def fractional_ranks(groups: list[list[T]]) -> list[float]:
    """Rank of each group: the mean of the 1-based positions its entries occupy."""
    ranks, position = [], 0
    for group in groups:
        first, last = position + 1, position + len(group)
        ranks.append((first + last) / 2.0)
        position = last
    return ranks


@dataclass(frozen=True)
class CellRank:
    """Place of one method in its cell: tie group number (1 = best) and fractional rank."""

    group: int
    rank: float
    n_ranked: int


def rank_cell(members: Sequence[Aggregate]) -> dict[str, CellRank]:
    """Rank the methods of one budgeted cell that have ok runs; `full` and empty methods are left out."""
    ranked = [aggregate for aggregate in members
              if aggregate.summary.n > 0 and aggregate.method != FULL_METHOD]
    if not ranked:
        return {}
    sign = -1.0 if ranked[0].higher_is_better else 1.0
    ordered = sorted(ranked, key=lambda aggregate: (sign * aggregate.summary.mean, aggregate.method))
    groups = tie_groups(ordered, lambda aggregate: aggregate.summary.bounds)
    places: dict[str, CellRank] = {}
    for number, (group, rank) in enumerate(zip(groups, fractional_ranks(groups)), start=1):
        for aggregate in group:
            places[aggregate.method] = CellRank(group=number, rank=rank, n_ranked=len(ranked))
    return places


def rank_cells(aggregates: Sequence[Aggregate]) -> dict[tuple[CellKey, str], CellRank]:
    """CellRank of every ranked (cell, method) pair."""
    cells: dict[CellKey, list[Aggregate]] = defaultdict(list)
    for aggregate in aggregates:
        if aggregate.cell.budget is not None:
            cells[aggregate.cell].append(aggregate)
    places: dict[tuple[CellKey, str], CellRank] = {}
    for cell, members in cells.items():
        for method, place in rank_cell(members).items():
            places[(cell, method)] = place
    return places


@dataclass(frozen=True)
class RankingEntry:
    """One method across the cells of a ranking scope."""

    method: str
    group: int
    rank_summary: Summary
    n_cells: int
    mean_gap_closed: float | None
    n_gap_closed: int
    n_failed: int
    n_not_applicable: int
    n_contaminated: int

    @property
    def mean_rank(self) -> float:
        return float(self.rank_summary.mean)


@dataclass(frozen=True)
class Ranking:
    """Methods ranked across tasks for one table key and one budget (or ALL_BUDGETS)."""

    table_key: TableKey
    budget: str
    tasks: tuple[str, ...]
    n_cells: int
    entries: tuple[RankingEntry, ...]


def rank_across_tasks(aggregates: Sequence[Aggregate],
                      cell_ranks: dict[tuple[CellKey, str], CellRank]) -> list[Ranking]:
    """Rankings per (table key, budget), plus one over all budgets where a table key has several."""
    scopes: dict[tuple[TableKey, str], list[Aggregate]] = defaultdict(list)
    for aggregate in aggregates:
        if aggregate.cell.budget is None or aggregate.method == FULL_METHOD:
            continue
        scopes[(aggregate.cell.table_key, str(aggregate.cell.budget))].append(aggregate)
        scopes[(aggregate.cell.table_key, ALL_BUDGETS)].append(aggregate)

    budgets_per_key: dict[TableKey, set[str]] = defaultdict(set)
    for table_key, budget in scopes:
        budgets_per_key[table_key].add(budget)
    # With a single budget the pooled ranking would repeat that budget's ranking, so it is skipped.
    rankings = [_rank_scope(table_key, budget, members, cell_ranks)
                for (table_key, budget), members in scopes.items()
                if budget != ALL_BUDGETS or len(budgets_per_key[table_key]) > 2]
    rankings = [ranking for ranking in rankings if ranking.entries]
    return sorted(rankings, key=lambda ranking: (ranking.table_key, _budget_order(ranking.budget)))


def _budget_order(budget: str) -> tuple[int, float]:
    return (1, math.inf) if budget == ALL_BUDGETS else (0, float(budget))


def _rank_scope(table_key: TableKey, budget: str, members: list[Aggregate],
                cell_ranks: dict[tuple[CellKey, str], CellRank]) -> Ranking:
    by_method: dict[str, list[Aggregate]] = defaultdict(list)
    for aggregate in members:
        by_method[aggregate.method].append(aggregate)

    entries: list[RankingEntry] = []
    for method, method_aggregates in by_method.items():
        ranks = [cell_ranks[aggregate.key].rank for aggregate in method_aggregates
                 if aggregate.key in cell_ranks]
        if not ranks:
            continue  # no ok run in any cell of this scope: shown in the cell tables only
        gaps = [aggregate.gap_closed for aggregate in method_aggregates
                if aggregate.gap_closed is not None and aggregate.key in cell_ranks]
        entries.append(RankingEntry(
            method=method, group=0, rank_summary=summarize(ranks), n_cells=len(ranks),
            mean_gap_closed=math.fsum(gaps) / len(gaps) if gaps else None, n_gap_closed=len(gaps),
            n_failed=sum(aggregate.n_failed for aggregate in method_aggregates),
            n_not_applicable=sum(aggregate.n_not_applicable for aggregate in method_aggregates),
            n_contaminated=sum(aggregate.n_contaminated for aggregate in method_aggregates),
        ))

    # NOTE: with few cells the t-interval of the mean rank is very wide (df=1 multiplies by 12.7),
    # so cross-task tie groups are generous until a scope spans several tasks and budgets.
    ordered = sorted(entries, key=lambda entry: (
        entry.mean_rank,
        -entry.mean_gap_closed if entry.mean_gap_closed is not None else math.inf,
        entry.method))
    groups = tie_groups(ordered, lambda entry: entry.rank_summary.bounds)
    grouped = tuple(replace(entry, group=number)
                    for number, group in enumerate(groups, start=1) for entry in group)
    cells = {aggregate.cell for aggregate in members if aggregate.key in cell_ranks}
    return Ranking(table_key=table_key, budget=budget,
                   tasks=tuple(sorted({cell.task for cell in cells})), n_cells=len(cells),
                   entries=grouped)

