"""`tddbench tasks`: list the registered tasks with their family, splits, budgets and availability."""

from __future__ import annotations

import argparse

import tasks
from tasks.data import data_dir_from_env, mirror_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tasks", help="list tasks with family, split sizes, budgets and availability")
    parser.set_defaults(func=run)


def availability(spec: tasks.TaskSpec) -> str:
    """'local', 'hub', or which mirror files are missing."""
    data_dir = data_dir_from_env()
    if data_dir is None:
        return "hub"
    sources = [rule.source for rule in spec.splits.values() if rule.source]
    missing = [s for s in sources if mirror_file(data_dir, spec.mirror, s) is None]
    return "local" if not missing else "missing " + ", ".join(f"{spec.mirror}/{s}" for s in missing)


def run(args: argparse.Namespace) -> int:
    header = f"{'task':<20} {'family':<15} {'unit':<10} {'budgets':<16} {'pool':>7} {'dev':>6} {'test':>6}  data"
    print(header)
    print("-" * len(header))
    for name in tasks.names():
        spec = tasks.get(name)
        status = availability(spec)
        sizes = ("", "", "")
        if status == "local":
            data = tasks.load(name)
            sizes = (len(data.pool), len(data.dev), len(data.test))
        budgets = ",".join(map(str, spec.budgets))
        print(f"{name:<20} {spec.family:<15} {spec.budget_unit:<10} {budgets:<16} "
              f"{sizes[0]:>7} {sizes[1]:>6} {sizes[2]:>6}  {status}")
    return 0
