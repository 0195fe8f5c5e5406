"""`tddbench evaluate-set`: score a set produced outside the suite next to the random baseline."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from benchmark.commands.run import _ints, _names

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate-set", help="score a JSON Lines set made outside the suite, with the random baseline",
        description="Validates the set's rows, infers its budget, trains the suite's learners on it and on "
                    "random draws at the same budget, and writes result records with method "
                    "'submitted:NAME'.")
    parser.add_argument("path", type=Path, help="a JSON Lines file in the task's schema, or a folder of such "
                                                "files (sets of one budget, e.g. several seeds)")
    parser.add_argument("--task", required=True, help="task the set is for, e.g. sst2")
    parser.add_argument("--name", help="method name in the records, after 'submitted:' (default: the file or "
                                       "folder name)")
    parser.add_argument("--field-map", metavar="SOURCE=TARGET,...",
                        help="rename fields of the rows to the task's, e.g. labels=label,text=sentence")
    parser.add_argument("--budget", type=int,
                        help="budget to score at, in the task's unit (default: inferred from the set)")
    parser.add_argument("--suite", default="quick",
                        help="suite whose tier, learners, seeds and pool and test caps apply (default: quick)")
    parser.add_argument("--learners", type=_names, help="comma-separated learners, replacing the suite's")
    parser.add_argument("--seeds", type=_ints, help="training seeds, e.g. 0,1 (default: the suite's)")
    parser.add_argument("--random-draws", type=_ints,
                        help="seeds of the random baseline draws, e.g. 0,1,2 (default: the suite's)")
    parser.add_argument("--results-dir", type=Path, default=Path("results"),
                        help="folder of result records (default: results)")
    parser.add_argument("--overwrite", choices=("never", "failed", "all"), default="never",
                        help="which existing records to recompute (default: never)")
    parser.set_defaults(func=evaluate)


def evaluate(args: argparse.Namespace) -> int:
    from benchmark.evaluate_set import SubmittedSetError, evaluate_set, parse_field_map
    from benchmark.harness.suite import SuiteError
    from benchmark.registry import UnknownNameError

    try:
        summary = evaluate_set(args.path, args.task, name=args.name, field_map=parse_field_map(args.field_map),
                               suite=args.suite, learner_names=args.learners, train_seeds=args.seeds,
                               random_draws=args.random_draws, budget=args.budget,
                               results_dir=args.results_dir, overwrite=args.overwrite)
    except (SubmittedSetError, SuiteError, UnknownNameError) as error:
        raise SystemExit(f"evaluate-set: {error}") from None

    unit = "per class" if summary.budget_unit == "per_class" else "in total"
    print(f"{summary.method} on {summary.task}: budget {summary.budget} {unit}, suite {summary.suite}")
    for index, (set_hash, flagged) in enumerate(zip(summary.set_hashes, summary.contamination_flagged)):
        print(f"  set {index}: hash {set_hash[:12]}" + ("  CONTAMINATED (overlaps the test split)" if flagged else ""))
    print(f"  {summary.main_score} by learner: submitted | random baseline")
    for learner, submitted, random in summary.table():
        print(f"  {learner}: {submitted} | {random}")
    print(f"records: {summary.written} written, {summary.failed} failed, {summary.skipped} already recorded "
          f"(under {args.results_dir / summary.suite / 'records'})")
    for failure in summary.failures:
        print(f"  FAILED {failure}")
    return 1 if summary.failed else 0
