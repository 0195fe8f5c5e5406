"""The `tddbench` command line. Each subcommand lives in `benchmark/commands/<name>.py`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

# Each module defines `register(subparsers)`, which adds its parser and sets `func`.
COMMAND_MODULES = [
    "benchmark.commands.tasks",
    "benchmark.commands.data",
    "benchmark.commands.methods",
    "benchmark.commands.leaderboard",
    "benchmark.commands.run",
    "benchmark.commands.validate_method",
    "benchmark.commands.evaluate_set",
    "benchmark.commands.submit",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tddbench", description="TDD-Bench: text dataset distillation benchmark")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="local mirror folder of the datasets (default: $TDDBENCH_DATA_DIR, else the Hub)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log DEBUG messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.data_dir is not None:
        import os

        from tasks.data import DATA_DIR_ENV
        os.environ[DATA_DIR_ENV] = str(args.data_dir.resolve())
    from benchmark.harness.suite import SuiteError
    from benchmark.registry import UnknownNameError

    try:
        return int(args.func(args) or 0)
    except (SuiteError, UnknownNameError) as error:
        # These messages already name the value and the fix; a traceback would only hide them.
        print(f"tddbench {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
