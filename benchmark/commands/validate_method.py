"""`tddbench validate-method`: check a method adapter against the adapter contract on smoke pools."""

from __future__ import annotations

import argparse
import logging

from benchmark.commands.run import _ints, _names, load_method_paths

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    # Defaults are resolved in validate(), so building the parser does not import torch.
    parser = subparsers.add_parser(
        "validate-method", help="check a method adapter against the adapter contract on small real pools",
        description="Runs the adapter on small pools of the smoke tasks and prints each check as PASS, FAIL "
                    "or INFO. Exits with status 1 when any check failed.")
    parser.add_argument("name", help="method name: built-in, from an installed plugin, or loaded by --method-path")
    parser.add_argument("--method-path", action="append", default=[], metavar="MODULE:CLASS",
                        help="load a method adapter from an importable module first (repeatable)")
    parser.add_argument("--tasks", type=_names, help="comma-separated tasks to run on (default: sst2,rte)")
    parser.add_argument("--budgets", type=_ints,
                        help="comma-separated budgets in each task's unit (default: 1,2,5)")
    parser.add_argument("--pool-limit", type=int,
                        help="rows of each task's pool handed to the method (default: 200)")
    parser.add_argument("--tier", choices=("smoke", "quick", "standard"), default="smoke",
                        help="scale tier whose hyperparameters the adapter is built with (default: smoke)")
    parser.set_defaults(func=validate)


def validate(args: argparse.Namespace) -> int:
    import methods
    from benchmark.registry import UnknownNameError
    from benchmark.validate import SMOKE_BUDGETS, SMOKE_POOL_LIMIT, SMOKE_TASKS, validate_method

    task_names = args.tasks or SMOKE_TASKS
    budgets = args.budgets or SMOKE_BUDGETS
    pool_limit = SMOKE_POOL_LIMIT if args.pool_limit is None else args.pool_limit
    if pool_limit < 1:
        raise SystemExit(f"--pool-limit {pool_limit} is invalid; pass a positive number of rows")
    loaded = load_method_paths(args.method_path)
    try:
        cls = methods.get(args.name)
    except UnknownNameError as error:
        hint = (f"--method-path loaded {sorted(loaded)}; pass the `name` the class declares"
                if loaded else "install the plugin or pass --method-path MODULE:CLASS")
        raise SystemExit(f"validate-method: {str(error).rstrip('.')}. Fix: {hint}") from None

    report = validate_method(cls, task_names=task_names, budgets=budgets, pool_limit=pool_limit, tier=args.tier)
    print(f"validate-method {report.method} (source: {methods.METHODS.source(args.name)})")
    for check in report.checks:
        print(f"  {check}")
    failed = len(report.failures)
    print(f"{report.method}: {len(report.checks)} checks, {failed} failed"
          + ("" if failed else "; the adapter keeps the contract on these tasks"))
    return 1 if failed else 0
