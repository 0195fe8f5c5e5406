"""`tddbench submit`: bundle a suite's records and sets into one folder to attach to a pull request."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from benchmark.commands.run import _names

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit", help="bundle result records and their synthetic sets, with checksums, into one folder",
        description="Verifies every record of the suite against the set it scored, then copies the records "
                    "and sets into OUTPUT with submission.json (an index) and CHECKSUMS.sha256. With --verify, "
                    "checks an existing bundle or results folder instead.")
    parser.add_argument("--results-dir", type=Path, default=Path("results"),
                        help="folder of result records (default: results)")
    parser.add_argument("--suite", help="suite whose records to bundle, e.g. quick (required unless --verify)")
    parser.add_argument("--output", type=Path, help="new or empty folder to write the bundle into")
    parser.add_argument("--methods", type=_names, help="comma-separated methods to include (default: all)")
    parser.add_argument("--verify", type=Path, metavar="FOLDER",
                        help="only verify FOLDER (a bundle or a results directory) and report problems")
    parser.set_defaults(func=submit)


def submit(args: argparse.Namespace) -> int:
    from benchmark.submission import SubmissionError, bundle, find_problems

    if args.verify is not None:
        try:
            problems = find_problems(args.verify)
        except FileNotFoundError as error:
            raise SystemExit(f"submit --verify: {error}") from None
        for problem in problems:
            print(f"REJECTED {problem}")
        print(f"{args.verify}: {len(problems)} problem(s)" if problems else f"{args.verify}: all records verified")
        return 1 if problems else 0

    if not args.suite or args.output is None:
        raise SystemExit("submit: --suite and --output are required (or pass --verify FOLDER)")
    try:
        summary = bundle(args.results_dir, args.suite, args.output, methods=list(args.methods or []) or None)
    except SubmissionError as error:
        raise SystemExit(f"submit: {error}") from None
    print(f"wrote {summary.output}: {summary.records} records, {summary.sets} sets, {summary.files} files listed "
          f"in CHECKSUMS.sha256; methods: {', '.join(summary.methods)}")
    print(f"check it with `tddbench submit --verify {summary.output}` and attach the folder to your pull request")
    return 0
