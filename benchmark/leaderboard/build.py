"""Build every leaderboard output from a results directory into one output folder."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.leaderboard.export import write_json, write_long_csv, write_wide_csv
from benchmark.leaderboard.loading import LoadResult, load_records
from benchmark.leaderboard.markdown import render_markdown
from benchmark.leaderboard.model import Leaderboard, compute_leaderboard
from benchmark.leaderboard.page import render_page
from benchmark.leaderboard.plots import remove_old_plots, write_plots
from benchmark.submission import find_problems

logger = logging.getLogger(__name__)

MARKDOWN_FILE = "LEADERBOARD.md"
LONG_CSV_FILE = "leaderboard_long.csv"
WIDE_CSV_FILE = "leaderboard_wide.csv"
JSON_FILE = "leaderboard.json"
PAGE_FILE = "index.html"


@dataclass
class BuildSummary:
    """Counts of records read and aggregates built, and the files written, for one build."""

    results_dir: Path
    output_dir: Path
    files_read: int
    status_counts: dict[str, int]
    n_aggregates: int
    n_tables: int
    n_rankings: int
    n_cross_arch: int
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def paragraph(self) -> str:
        """One-paragraph summary for the command line."""
        counts = self.status_counts
        n_plots = sum(1 for path in self.files if path.suffix == ".png")
        return (f"Read {self.files_read} record files from {self.results_dir} "
                f"({counts['ok']} ok, {counts['failed']} failed, {counts['not_applicable']} not "
                f"applicable, {self.files_read - sum(counts.values())} superseded duplicates). "
                f"Built {self.n_aggregates} aggregates in {self.n_tables} task-budget tables, "
                f"{self.n_rankings} cross-task rankings and {self.n_cross_arch} cross-architecture "
                f"matrices. Wrote {len(self.files)} files ({n_plots} plots) to {self.output_dir}: "
                f"{MARKDOWN_FILE}, {PAGE_FILE}, {JSON_FILE}, {LONG_CSV_FILE}, {WIDE_CSV_FILE}. "
                f"{len(self.warnings)} warning(s)"
                + (f", see the Warnings section of {MARKDOWN_FILE}." if self.warnings else "."))


def write_outputs(leaderboard: Leaderboard, output_dir: Path) -> list[Path]:
    """Write Markdown, CSV, JSON, plots and the HTML page into `output_dir`; return the paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    removed = remove_old_plots(output_dir)
    if removed:
        logger.debug("removed %d plots of a previous build from %s", removed, output_dir)

    markdown_path = output_dir / MARKDOWN_FILE
    markdown_path.write_text(render_markdown(leaderboard), encoding="utf-8")
    long_path, wide_path, json_path = (output_dir / LONG_CSV_FILE, output_dir / WIDE_CSV_FILE,
                                       output_dir / JSON_FILE)
    write_long_csv(leaderboard, long_path)
    write_wide_csv(leaderboard, wide_path)
    write_json(leaderboard, json_path)

    plots = write_plots(leaderboard, output_dir)
    page_path = output_dir / PAGE_FILE
    page_path.write_text(render_page(leaderboard, plots), encoding="utf-8")
    return [markdown_path, long_path, wide_path, json_path, page_path, *(plot.path for plot in plots)]


def verified_records(results_dir: Path) -> LoadResult:
    """Load records, dropping each one whose set or checksums fail verification (with a warning)."""
    loaded = load_records(results_dir)
    problems = find_problems(results_dir)
    rejected = {problem.path.resolve() for problem in problems}
    for problem in problems:
        logger.warning("rejected: %s", problem)
    kept = [record for record in loaded.records if Path(record.path).resolve() not in rejected]
    return dataclasses.replace(loaded, records=kept,
                               warnings=[*loaded.warnings, *(f"rejected: {p}" for p in problems)])


def build_leaderboard(results_dir: Path, output_dir: Path, verify: bool = True) -> BuildSummary:
    """Read every record under `results_dir` and write all outputs to `output_dir`.

    With `verify`, records whose synthetic set is missing or does not match its hash, or whose
    files fail CHECKSUMS.sha256, are left out and listed as warnings.

    Raises NoRecordsError when there are no records and RecordFileError for an unreadable one.
    """
    results_dir, output_dir = Path(results_dir), Path(output_dir)
    logger.info("building leaderboard from %s into %s", results_dir, output_dir)
    loaded = verified_records(results_dir) if verify else load_records(results_dir)
    leaderboard = compute_leaderboard(loaded)
    files = write_outputs(leaderboard, output_dir)
    logger.info("leaderboard written: %d files, %d warnings", len(files), len(leaderboard.warnings))
    return BuildSummary(results_dir=results_dir, output_dir=output_dir,
                        files_read=leaderboard.files_read, status_counts=leaderboard.status_counts,
                        n_aggregates=len(leaderboard.aggregates), n_tables=len(leaderboard.tables),
                        n_rankings=len(leaderboard.rankings), n_cross_arch=len(leaderboard.cross_arch),
                        files=files, warnings=list(leaderboard.warnings))
