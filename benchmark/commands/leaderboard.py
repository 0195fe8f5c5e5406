"""`tddbench leaderboard`: rebuild tables, plots and the HTML page from result records."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "leaderboard", help="build LEADERBOARD.md, CSV, JSON, plots and index.html from result records")
    parser.add_argument("--results-dir", type=Path, default=Path("results"),
                        help="folder searched recursively for records/*.json (default: results/)")
    parser.add_argument("--output", type=Path, default=Path("leaderboard"),
                        help="folder the leaderboard files are written to (default: leaderboard/)")
    parser.add_argument("--no-verify", action="store_true",
                        help="keep records whose synthetic set is missing or fails its hash check")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: the leaderboard pulls in pandas, scipy and matplotlib, which other commands do not need.
    from benchmark.leaderboard import NoRecordsError, RecordFileError, build_leaderboard

    if args.output.exists() and not args.output.is_dir():
        print(f"tddbench leaderboard: --output {args.output} is a file; pass a folder (it is created if missing)",
              file=sys.stderr)
        return 1
    try:
        summary = build_leaderboard(args.results_dir, args.output, verify=not args.no_verify)
    except (NoRecordsError, RecordFileError) as error:
        print(f"tddbench leaderboard: {error}", file=sys.stderr)
        return 1
    print(summary.paragraph())
    return 0
