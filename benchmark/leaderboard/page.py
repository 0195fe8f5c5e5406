"""Render index.html: one self-contained page with sortable, filterable tables and embedded plots.

The page makes no network requests: CSS and JavaScript are inline, plots are base64 data URIs, and
a Content-Security-Policy forbids loading anything else.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from benchmark.leaderboard.aggregate import Aggregate
from benchmark.leaderboard.formatting import (MISSING, direction_mark, format_budget,
                                              format_interval, format_number)
from benchmark.leaderboard.model import Leaderboard
from benchmark.leaderboard.plots import PlotFile
from benchmark.leaderboard.ranking import TIE_RULE

logger = logging.getLogger(__name__)

FILTERS = ("task", "budget", "learner", "track")

CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                           "script-src 'unsafe-inline'")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
h1 { margin-bottom: 0.2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.45rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th.sortable { cursor: pointer; background: #eef2f7; user-select: none; }
th.sortable:hover { background: #dde5f0; }
th[aria-sort="ascending"]::after { content: " ▲"; }
th[aria-sort="descending"]::after { content: " ▼"; }
tr.contaminated { background: #fff4e0; }
.flag { color: #a35200; font-weight: bold; white-space: nowrap; }
.filters { position: sticky; top: 0; background: #fff; padding: 0.5rem 0; border-bottom: 1px solid #ccc; }
.filters label { margin-right: 1rem; }
.hidden { display: none; }
figure { display: inline-block; margin: 0.5rem; vertical-align: top; }
figure img { max-width: 600px; border: 1px solid #ddd; }
figcaption { font-size: 0.8rem; }
.note { font-size: 0.85rem; max-width: 60rem; }
"""

SCRIPT = """
(function () {
  "use strict";
  // Missing values (empty data-sort) stay at the bottom in both directions.
  function sortKey(cell) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent.trim(); }
    if (raw === "") { return null; }
    var number = Number(raw);
    return isNaN(number) ? raw.toLowerCase() : number;
  }
  function compare(a, b) {
    if (typeof a === typeof b) { return a < b ? -1 : (a > b ? 1 : 0); }
    return typeof a === "number" ? -1 : 1;
  }
  function sortTable(header) {
    var table = header.closest("table");
    var column = Array.prototype.indexOf.call(header.parentNode.children, header);
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th.sortable").forEach(function (other) { other.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (first, second) {
      var a = sortKey(first.cells[column]), b = sortKey(second.cells[column]);
      if (a === null || b === null) { return (a === null) - (b === null); }
      return ascending ? compare(a, b) : compare(b, a);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  function applyFilters() {
    var chosen = {};
    document.querySelectorAll("select[data-filter]").forEach(function (select) {
      chosen[select.getAttribute("data-filter")] = select.value;
    });
    document.querySelectorAll(".filterable").forEach(function (element) {
      var visible = Object.keys(chosen).every(function (name) {
        var value = chosen[name];
        var own = element.getAttribute("data-" + name);
        // An element without the attribute spans all values of that filter.
        return value === "" || own === null || own.split(" ").indexOf(value) >= 0;
      });
      element.classList.toggle("hidden", !visible);
    });
    document.querySelectorAll("[data-count-for]").forEach(function (counter) {
      var table = document.getElementById(counter.getAttribute("data-count-for"));
      counter.textContent = table.querySelectorAll("tbody tr:not(.hidden)").length;
    });
  }
  document.querySelectorAll("th.sortable").forEach(function (header) {
    header.addEventListener("click", function () { sortTable(header); });
  });
  document.querySelectorAll("select[data-filter]").forEach(function (select) {
    select.addEventListener("change", applyFilters);
  });
  applyFilters();
})();
"""


@dataclass(frozen=True)
class Cell:
    """One table cell: shown text, sort value ('' sorts last) and whether it is numeric."""

    text: str
    sort: str | None = None
    numeric: bool = False
    raw_html: bool = False


def _number_cell(value: float | None, digits: int = 4) -> Cell:
    return Cell(format_number(value, digits), "" if value is None else repr(float(value)), numeric=True)


def _int_cell(value: int) -> Cell:
    return Cell(str(value), str(value), numeric=True)


def _escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def _attributes(filters: dict[str, Iterable[str]]) -> str:
    return "".join(f' data-{name}="{_escape(" ".join(values))}"' for name, values in filters.items())


def _table(table_id: str, header: Sequence[str],
           rows: Sequence[tuple[dict[str, Iterable[str]], Sequence[Cell], bool]]) -> str:
    head = "".join(f'<th class="sortable" title="click to sort">{_escape(name)}</th>' for name in header)
    body = []
    for filters, cells, flagged in rows:
        tds = []
        for cell in cells:
            classes = ' class="num"' if cell.numeric else ""
            sort = "" if cell.sort is None else f' data-sort="{_escape(cell.sort)}"'
            text = cell.text if cell.raw_html else _escape(cell.text)
            tds.append(f"<td{classes}{sort}>{text}</td>")
        row_class = "filterable contaminated" if flagged else "filterable"
        body.append(f'<tr class="{row_class}"{_attributes(filters)}>{"".join(tds)}</tr>')
    return (f'<p class="note">Rows shown: <span data-count-for="{table_id}">{len(rows)}</span> of '
            f'{len(rows)}.</p><table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _flag_cell(contaminated: bool, reasons: Sequence[str] = ()) -> Cell:
    parts = ['<span class="flag">⚠ contaminated</span>'] if contaminated else []
    parts += [_escape(reason) for reason in reasons]
    return Cell("; ".join(parts), "1" if contaminated else "0", raw_html=True)


def _results_rows(leaderboard: Leaderboard) -> list:
    rows = []
    for table in leaderboard.tables:
        for aggregate in table.rows:
            rows.append(_result_row(leaderboard, aggregate))
    return rows


def _result_row(leaderboard: Leaderboard, aggregate: Aggregate) -> tuple:
    cell, summary = aggregate.cell, aggregate.summary
    place = leaderboard.cell_ranks.get(aggregate.key)
    filters = {"task": [cell.task], "budget": [format_budget(cell.budget)],
               "learner": [cell.learner], "track": [cell.track]}
    cells = [
        Cell(cell.task), Cell(format_budget(cell.budget), "" if cell.budget is None else str(cell.budget),
                              numeric=True),
        Cell(cell.learner), Cell(cell.recipe_id), Cell(cell.track), Cell(cell.protocol_version),
        Cell(aggregate.method), Cell(aggregate.method_category),
        Cell(f"{aggregate.metric} {direction_mark(aggregate.higher_is_better)}"),
        Cell(str(place.group) if place else MISSING, str(place.group) if place else "", numeric=True),
        _number_cell(place.rank if place else None, 1),
        _int_cell(summary.n), _number_cell(summary.mean), _number_cell(summary.std),
        Cell(format_interval(summary), "" if summary.ci_low is None else repr(summary.ci_low)),
        _number_cell(aggregate.gain_over_random), _number_cell(aggregate.gap_closed, 3),
        _number_cell(aggregate.distill_wall_time_s, 1), _number_cell(aggregate.distill_peak_memory_mb, 0),
        _int_cell(aggregate.n_failed), _int_cell(aggregate.n_not_applicable),
        _flag_cell(aggregate.n_contaminated > 0, aggregate.reasons),
    ]
    return filters, cells, aggregate.n_contaminated > 0


RESULT_HEADER = ("task", "budget", "learner", "recipe", "track", "protocol", "method", "category",
                 "metric", "group", "rank", "n", "mean", "std", "95% CI", "gain vs random",
                 "gap closed", "distill time (s)", "peak memory (MB)", "failed", "not applicable",
                 "flags")

RANKING_HEADER = ("learner", "recipe", "track", "protocol", "budget", "tasks", "group", "method",
                  "mean rank", "95% CI of rank", "cells", "mean gap closed", "failed",
                  "not applicable", "flags")


def _ranking_rows(leaderboard: Leaderboard) -> list:
    rows = []
    for ranking in leaderboard.rankings:
        key = ranking.table_key
        # A ranking over all budgets matches every budget filter value, so it carries no budget.
        filters = {"task": ranking.tasks, "learner": [key.learner], "track": [key.track]}
        if ranking.budget != "all":
            filters["budget"] = [ranking.budget]
        for entry in ranking.entries:
            cells = [Cell(key.learner), Cell(key.recipe_id), Cell(key.track), Cell(key.protocol_version),
                     Cell(ranking.budget, "" if ranking.budget == "all" else ranking.budget, numeric=True),
                     Cell(", ".join(ranking.tasks)), _int_cell(entry.group), Cell(entry.method),
                     _number_cell(entry.mean_rank, 2), Cell(format_interval(entry.rank_summary, 2)),
                     _int_cell(entry.n_cells), _number_cell(entry.mean_gap_closed, 3),
                     _int_cell(entry.n_failed), _int_cell(entry.n_not_applicable),
                     _flag_cell(entry.n_contaminated > 0)]
            rows.append((filters, cells, entry.n_contaminated > 0))
    return rows


def _cross_arch_html(leaderboard: Leaderboard) -> str:
    if not leaderboard.cross_arch:
        return "<p>No text-level sets in these records.</p>"
    parts = []
    for number, matrix in enumerate(leaderboard.cross_arch):
        filters = {"track": [matrix.track]}
        if matrix.task is not None:
            filters.update(task=[matrix.task], budget=[format_budget(matrix.budget)])
        rows = []
        for row in matrix.rows:
            cells = [Cell(row)]
            for column in matrix.columns:
                entry = matrix.cells.get((row, column))
                if entry is None:
                    cells.append(Cell(MISSING, ""))
                elif matrix.task is None:
                    cells.append(_number_cell(entry.gap_closed, 3))
                else:
                    cells.append(Cell(f"{format_number(entry.mean_score)} / "
                                      f"{format_number(entry.gap_closed, 3)}",
                                      "" if entry.mean_score is None else repr(entry.mean_score),
                                      numeric=True))
            rows.append(({}, cells, False))
        first = "distill backbone" if matrix.task is None else "backbone · method"
        parts.append(f'<div class="filterable"{_attributes(filters)}><h3>{_escape(matrix.title)}</h3>'
                     f'{_table(f"cross-arch-{number}", [first, *matrix.columns], rows)}</div>')
    return "".join(parts)


def _plots_html(plots: Sequence[PlotFile]) -> str:
    figures = []
    for plot in plots:
        encoded = base64.b64encode(plot.path.read_bytes()).decode("ascii")
        filters = {"learner": [plot.table_key.learner], "track": [plot.table_key.track]}
        if plot.task:
            filters["task"] = [plot.task]
        caption = f"{plot.title} ({plot.table_key.label})"
        figures.append(f'<figure class="filterable"{_attributes(filters)}>'
                       f'<img alt="{_escape(caption)}" src="data:image/png;base64,{encoded}">'
                       f"<figcaption>{_escape(caption)}</figcaption></figure>")
    return "".join(figures) or "<p>No plots.</p>"


def _filter_bar(leaderboard: Leaderboard) -> str:
    values = {
        "task": sorted({aggregate.cell.task for aggregate in leaderboard.aggregates}),
        "budget": [format_budget(budget) for budget in sorted(
            {aggregate.cell.budget for aggregate in leaderboard.aggregates},
            key=lambda budget: (budget is None, budget or 0))],
        "learner": sorted({aggregate.cell.learner for aggregate in leaderboard.aggregates}),
        "track": sorted({aggregate.cell.track for aggregate in leaderboard.aggregates}),
    }
    selects = []
    for name in FILTERS:
        options = "".join(f'<option value="{_escape(value)}">{_escape(value)}</option>'
                          for value in values[name])
        selects.append(f'<label>{name} <select id="filter-{name}" data-filter="{name}">'
                       f'<option value="">all</option>{options}</select></label>')
    return f'<div class="filters">{"".join(selects)}</div>'


def render_page(leaderboard: Leaderboard, plots: Sequence[PlotFile]) -> str:
    """Render the complete index.html text."""
    counts = leaderboard.status_counts
    warnings = "".join(f"<li>{_escape(warning)}</li>" for warning in leaderboard.warnings)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>TDD-Bench leaderboard</title>
<style>{STYLE}</style>
</head>
<body>
<h1>TDD-Bench leaderboard</h1>
<p class="note">Built from {leaderboard.n_records} result records under
<code>{_escape(leaderboard.results_dir)}</code> ({counts['ok']} ok, {counts['failed']} failed,
{counts['not_applicable']} not applicable). Scores are means over distillation seeds x training
seeds with the sample standard deviation and the 95% t-interval of the mean. Gap closed is
(method - random) / (full data - random) at the same task, budget, learner, recipe and track;
gain vs random is signed so that positive is better. Rows marked
<span class="flag">⚠ contaminated</span> contain runs flagged for n-gram overlap with the test
split. Click a column header to sort; the selects filter every table and plot.</p>
<p class="note"><strong>Tie groups.</strong> {_escape(TIE_RULE)}</p>
{_filter_bar(leaderboard)}
<h2>Rankings across tasks</h2>
{_table("rankings", RANKING_HEADER, _ranking_rows(leaderboard))}
<h2>Results by task and budget</h2>
{_table("results", RESULT_HEADER, _results_rows(leaderboard))}
<h2>Cross-architecture (text-level sets)</h2>
<p class="note">Rows: distillation backbone (none when the method used no model). Columns: the
learner that trained on the set, with its recipe. Per-task cells show mean score / gap closed; the
pooled matrix shows mean gap closed.</p>
{_cross_arch_html(leaderboard)}
<h2>Plots</h2>
{_plots_html(plots)}
<h2>Warnings</h2>
{f"<ul>{warnings}</ul>" if warnings else "<p>None.</p>"}
<script>{SCRIPT}</script>
</body>
</html>
"""
