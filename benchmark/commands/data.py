"""`tddbench data check`: load tasks, validate every row and print a table of what was found."""

from __future__ import annotations

import argparse
import logging

import tasks

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="inspect task data")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate task data and print split sizes, empty texts, "
                                              "pool/test duplicates and fingerprints")
    check.add_argument("names", nargs="*", metavar="TASK", help="tasks to check (default: all)")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    names = args.names or tasks.names()
    for name in names:  # fail on a typo before loading anything
        tasks.get(name)
    header = (f"{'task':<20} {'status':<8} {'pool':>7} {'dev':>6} {'test':>6} {'empty':>6} "
              f"{'dropped':>7} {'dup':>5}  fingerprint / problem")
    print(header)
    print("-" * len(header))
    failures = 0
    for name in names:
        try:
            data = tasks.load(name)
        except tasks.MissingDataError as error:
            print(f"{name:<20} {'missing':<8} {'':>7} {'':>6} {'':>6} {'':>6} {'':>7} {'':>5}  {error}")
            continue
        except tasks.DataError as error:
            failures += 1
            print(f"{name:<20} {'invalid':<8} {'':>7} {'':>6} {'':>6} {'':>6} {'':>7} {'':>5}  {error}")
            continue
        report = data.report
        print(f"{name:<20} {'ok':<8} {len(data.pool):>7} {len(data.dev):>6} {len(data.test):>6} "
              f"{sum(report.empty_texts.values()):>6} {sum(report.dropped_unlabelled.values()):>7} "
              f"{report.pool_test_duplicates:>5}  {data.fingerprint[:16]}")
    return 1 if failures else 0
