"""Cross-architecture view: text-level sets by distillation backbone (rows) and learner (columns).

Each learner column carries its recipe id, so scores under different recipes stay apart.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from benchmark.leaderboard.aggregate import Aggregate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MatrixCell:
    """Mean score (None when the cell pools different tasks) and mean gap closed over n aggregates."""

    mean_score: float | None
    gap_closed: float | None
    n_aggregates: int


@dataclass(frozen=True)
class CrossArchMatrix:
    """One matrix for a track and protocol; `task` and `budget` are None in the pooled summary."""

    track: str
    protocol_version: str
    task: str | None
    budget: int | None
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    cells: dict[tuple[str, str], MatrixCell]

    @property
    def title(self) -> str:
        scope = ("all tasks and budgets, mean gap closed" if self.task is None
                 else f"{self.task}, budget {self.budget}")
        return f"track {self.track}, protocol {self.protocol_version}: {scope}"


def learner_column(aggregate: Aggregate) -> str:
    return f"{aggregate.cell.learner} ({aggregate.cell.recipe_id})"


def cross_architecture(aggregates: Sequence[Aggregate]) -> list[CrossArchMatrix]:
    """Per track and protocol: a pooled backbone x learner matrix of mean gap closed, then one
    (backbone, method) x learner matrix of mean score and gap per task and budget."""
    text_sets = [aggregate for aggregate in aggregates
                 if aggregate.is_text_set and aggregate.cell.budget is not None
                 and aggregate.summary.n > 0]
    scopes: dict[tuple[str, str], list[Aggregate]] = defaultdict(list)
    for aggregate in text_sets:
        scopes[(aggregate.cell.track, aggregate.cell.protocol_version)].append(aggregate)

    matrices: list[CrossArchMatrix] = []
    for (track, protocol), members in sorted(scopes.items()):
        matrices.append(_matrix(track, protocol, None, None, members,
                                row_of=lambda aggregate: aggregate.distill_backbone))
        cells: dict[tuple[str, int], list[Aggregate]] = defaultdict(list)
        for aggregate in members:
            cells[(aggregate.cell.task, aggregate.cell.budget)].append(aggregate)
        for (task, budget), cell_members in sorted(cells.items()):
            matrices.append(_matrix(track, protocol, task, budget, cell_members,
                                    row_of=lambda aggregate: f"{aggregate.distill_backbone} · "
                                                             f"{aggregate.method}"))
    return matrices


def _mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _matrix(track: str, protocol: str, task: str | None, budget: int | None,
            members: list[Aggregate], row_of) -> CrossArchMatrix:
    grouped: dict[tuple[str, str], list[Aggregate]] = defaultdict(list)
    for aggregate in members:
        grouped[(row_of(aggregate), learner_column(aggregate))].append(aggregate)
    cells = {}
    for position, cell_members in grouped.items():
        scores = [aggregate.summary.mean for aggregate in cell_members]
        gaps = [aggregate.gap_closed for aggregate in cell_members if aggregate.gap_closed is not None]
        cells[position] = MatrixCell(mean_score=None if task is None else _mean(scores),
                                     gap_closed=_mean(gaps), n_aggregates=len(cell_members))
    return CrossArchMatrix(track=track, protocol_version=protocol, task=task, budget=budget,
                           rows=tuple(sorted({row for row, _ in grouped})),
                           columns=tuple(sorted({column for _, column in grouped})), cells=cells)
