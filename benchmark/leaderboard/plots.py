"""PNG plots drawn with matplotlib's Agg canvas (no pyplot, so no global figure state or display).

Kinds: score vs budget per task (one line per method with its 95% interval band), heat map of
mean gap closed (method x task), and score vs distillation wall time per task.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmark.leaderboard.aggregate import FULL_METHOD, Aggregate, TableKey
from benchmark.leaderboard.formatting import direction_mark
from benchmark.leaderboard.model import Leaderboard

logger = logging.getLogger(__name__)

PLOT_PREFIXES = ("score_vs_budget__", "gap_heatmap__", "score_vs_cost__")
DPI = 90


@dataclass(frozen=True)
class PlotFile:
    """A written plot and what it shows; `task` is empty for plots that span tasks."""

    path: Path
    kind: str
    title: str
    table_key: TableKey
    task: str = ""


def _slug(*parts: str) -> str:
    return "__".join(re.sub(r"[^A-Za-z0-9._-]+", "-", part).strip("-") for part in parts)


def _key_parts(table_key: TableKey) -> tuple[str, ...]:
    return (table_key.learner, table_key.recipe_id, table_key.track, f"p{table_key.protocol_version}")


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI, format="png")


def remove_old_plots(output_dir: Path) -> int:
    """Delete plots a previous build wrote, so the folder holds only current ones; return the count."""
    stale = [path for path in output_dir.glob("*.png") if path.name.startswith(PLOT_PREFIXES)]
    for path in stale:
        path.unlink()
    return len(stale)


def write_plots(leaderboard: Leaderboard, output_dir: Path) -> list[PlotFile]:
    """Write every plot into `output_dir` and return them in a stable order."""
    by_task: dict[tuple[TableKey, str], list[Aggregate]] = defaultdict(list)
    by_key: dict[TableKey, list[Aggregate]] = defaultdict(list)
    for aggregate in leaderboard.aggregates:
        if aggregate.summary.n == 0:
            continue
        by_task[(aggregate.cell.table_key, aggregate.cell.task)].append(aggregate)
        by_key[aggregate.cell.table_key].append(aggregate)

    plots: list[PlotFile] = []
    for (table_key, task), members in sorted(by_task.items()):
        plots.append(_score_vs_budget(table_key, task, members, output_dir))
        cost_plot = _score_vs_cost(table_key, task, members, output_dir)
        if cost_plot is not None:
            plots.append(cost_plot)
    for table_key, members in sorted(by_key.items()):
        heatmap = _gap_heatmap(table_key, members, output_dir)
        if heatmap is not None:
            plots.append(heatmap)
    logger.info("wrote %d plots to %s", len(plots), output_dir)
    return plots


def _score_vs_budget(table_key: TableKey, task: str, members: list[Aggregate],
                     output_dir: Path) -> PlotFile:
    figure = Figure(figsize=(6.4, 4.0))
    axes = figure.add_subplot()
    metric = members[0].metric
    lines: dict[str, list[Aggregate]] = defaultdict(list)
    for aggregate in members:
        lines[aggregate.method].append(aggregate)

    for method, points in sorted(lines.items()):
        if method == FULL_METHOD:
            continue
        points = sorted((aggregate for aggregate in points if aggregate.cell.budget is not None),
                        key=lambda aggregate: aggregate.cell.budget)
        budgets = [aggregate.cell.budget for aggregate in points]
        means = [aggregate.summary.mean for aggregate in points]
        (line,) = axes.plot(budgets, means, marker="o", label=method)
        # The band spans the budgets that have an interval; single runs get no band.
        banded = [aggregate for aggregate in points if aggregate.summary.ci_low is not None]
        if banded:
            axes.fill_between([aggregate.cell.budget for aggregate in banded],
                              [aggregate.summary.ci_low for aggregate in banded],
                              [aggregate.summary.ci_high for aggregate in banded],
                              color=line.get_color(), alpha=0.15, linewidth=0)

    for full in lines.get(FULL_METHOD, []):
        axes.axhline(full.summary.mean, color="black", linestyle="--", linewidth=1, label="full data")
        if full.summary.ci_low is not None:
            axes.axhspan(full.summary.ci_low, full.summary.ci_high, color="black", alpha=0.07)

    budgets = sorted({aggregate.cell.budget for aggregate in members
                      if aggregate.cell.budget is not None})
    if budgets and budgets[0] > 0 and budgets[-1] / budgets[0] >= 10:
        axes.set_xscale("log")
    if budgets:
        axes.set_xticks(budgets, [str(budget) for budget in budgets])
    axes.set_xlabel(f"budget ({members[0].budget_unit})")
    axes.set_ylabel(f"{metric} {direction_mark(members[0].higher_is_better)}")
    title = f"{task}: {metric} vs budget"
    axes.set_title(f"{title}\n{table_key.label}", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    path = output_dir / f"score_vs_budget__{_slug(task, *_key_parts(table_key))}.png"
    _save(figure, path)
    return PlotFile(path=path, kind="score vs budget", title=title, table_key=table_key, task=task)


def _score_vs_cost(table_key: TableKey, task: str, members: list[Aggregate],
                   output_dir: Path) -> PlotFile | None:
    costed = [aggregate for aggregate in members
              if aggregate.distill_wall_time_s is not None and aggregate.method != FULL_METHOD]
    if not costed:
        return None
    figure = Figure(figsize=(6.4, 4.0))
    axes = figure.add_subplot()
    by_method: dict[str, list[Aggregate]] = defaultdict(list)
    for aggregate in costed:
        by_method[aggregate.method].append(aggregate)
    for method, points in sorted(by_method.items()):
        axes.scatter([aggregate.distill_wall_time_s for aggregate in points],
                     [aggregate.summary.mean for aggregate in points], label=method)
        for aggregate in points:
            axes.annotate(str(aggregate.cell.budget),
                          (aggregate.distill_wall_time_s, aggregate.summary.mean),
                          fontsize=6, xytext=(3, 3), textcoords="offset points")
    if all(aggregate.distill_wall_time_s > 0 for aggregate in costed):
        axes.set_xscale("log")
    axes.set_xlabel("mean distillation wall time (s); labels are budgets")
    axes.set_ylabel(f"{costed[0].metric} {direction_mark(costed[0].higher_is_better)}")
    title = f"{task}: {costed[0].metric} vs distillation cost"
    axes.set_title(f"{title}\n{table_key.label}", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    path = output_dir / f"score_vs_cost__{_slug(task, *_key_parts(table_key))}.png"
    _save(figure, path)
    return PlotFile(path=path, kind="score vs cost", title=title, table_key=table_key, task=task)


def _gap_heatmap(table_key: TableKey, members: list[Aggregate], output_dir: Path) -> PlotFile | None:
    gaps: dict[tuple[str, str], list[float]] = defaultdict(list)
    for aggregate in members:
        if aggregate.gap_closed is not None:
            gaps[(aggregate.method, aggregate.cell.task)].append(aggregate.gap_closed)
    if not gaps:
        return None
    methods = sorted({method for method, _ in gaps})
    tasks = sorted({task for _, task in gaps})
    values = np.full((len(methods), len(tasks)), np.nan)
    for (method, task), cell in gaps.items():
        values[methods.index(method), tasks.index(task)] = math.fsum(cell) / len(cell)

    figure = Figure(figsize=(max(5.5, 1.1 * len(tasks) + 2.5), max(2.5, 0.45 * len(methods) + 1.5)))
    axes = figure.add_subplot()
    # Colors clip to [0, 1]: below random and above full data share the end colors, the labels do not.
    image = axes.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    for row, column in np.ndindex(values.shape):
        label = "–" if np.isnan(values[row, column]) else f"{values[row, column]:.2f}"
        axes.text(column, row, label, ha="center", va="center", fontsize=7)
    axes.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
    axes.set_yticks(range(len(methods)), methods)
    figure.colorbar(image, ax=axes, label="gap closed (mean over budgets)")
    title = "gap closed by method and task"
    axes.set_title(f"{title}\n{table_key.label}", fontsize=9)
    path = output_dir / f"gap_heatmap__{_slug(*_key_parts(table_key))}.png"
    _save(figure, path)
    return PlotFile(path=path, kind="gap heat map", title=title, table_key=table_key)
