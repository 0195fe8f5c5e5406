"""The leaderboard, rebuilt only from result records: tables, rankings, plots and a static page."""

from benchmark.leaderboard.aggregate import Aggregate, CellKey, TableKey, aggregate_records
from benchmark.leaderboard.build import BuildSummary, build_leaderboard, write_outputs
from benchmark.leaderboard.loading import (LoadedRecord, NoRecordsError, RecordFileError,
                                           load_records)
from benchmark.leaderboard.model import Leaderboard, compute_leaderboard
from benchmark.leaderboard.ranking import TIE_RULE, rank_across_tasks, rank_cells, tie_groups
from benchmark.leaderboard.stats import Summary, higher_is_better, summarize

__all__ = [
    "Aggregate", "BuildSummary", "CellKey", "Leaderboard", "LoadedRecord", "NoRecordsError",
    "RecordFileError", "Summary", "TIE_RULE", "TableKey", "aggregate_records", "build_leaderboard",
    "compute_leaderboard", "higher_is_better", "load_records", "rank_across_tasks", "rank_cells",
    "summarize", "tie_groups", "write_outputs",
]
