"""`tddbench run`: run a suite's grid, resuming from the records already written."""

from __future__ import annotations

import argparse
import importlib
import logging


logger = logging.getLogger(__name__)


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run a benchmark suite (distill, train, score, record)")
    parser.add_argument("--suite", default="quick", help="suite name (smoke, quick, standard) or YAML path")
    parser.add_argument("--tasks", type=_names, help="comma-separated tasks, replacing the suite's")
    parser.add_argument("--methods", type=_names, help="comma-separated methods, replacing the suite's")
    parser.add_argument("--budgets", type=_ints,
                        help="comma-separated budgets for every task, in each task's own unit")
    parser.add_argument("--learners", type=_names, help="comma-separated learners, replacing the suite's")
    parser.add_argument("--seeds", type=_ints, help="distillation seeds, e.g. 0,1,2")
    parser.add_argument("--train-seeds", type=_ints, help="training seeds, e.g. 0,1")
    parser.add_argument("--track", choices=("standard", "native", "both"), help="scoring track(s)")
    parser.add_argument("--results-dir", default="results", help="folder of result records (default: results)")
    parser.add_argument("--executor", choices=("local", "process", "ray"), default="local",
                        help="where cells run (default: local, in this process)")
    parser.add_argument("--workers", type=_positive_int, default=2, help="worker processes or Ray tasks at once")
    parser.add_argument("--ray-address", help="address of a running Ray cluster (default: start a local one)")
    parser.add_argument("--overwrite", choices=("never", "failed", "all"), default="never",
                        help="which existing records to recompute (default: never)")
    parser.add_argument("--method-path", action="append", default=[], metavar="MODULE:CLASS",
                        help="load a method adapter from an importable module (repeatable)")
    parser.set_defaults(func=run)


def load_method_paths(paths: list[str]) -> dict[str, str]:
    """Import each MODULE:CLASS, register it, and return {method name: path}."""
    import methods

    loaded = {}
    for path in paths:
        module_name, _, class_name = path.partition(":")
        if not module_name or not class_name:
            raise SystemExit(f"--method-path {path!r} is invalid; use MODULE:CLASS, e.g. my_methods:MyDistiller")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as error:
            raise SystemExit(f"--method-path {path!r}: cannot load it ({error}); check that the module "
                             f"is importable (on PYTHONPATH) and defines {class_name}") from None
        if cls.name not in methods.METHODS:
            methods.register(cls, source=f"path:{path}")
        loaded[cls.name] = path
    return loaded


def run(args: argparse.Namespace) -> int:
    from benchmark.harness.runner import run_suite
    from benchmark.harness.suite import load_suite

    suite = load_suite(args.suite)
    changes: dict = {}
    for option, key in (("tasks", "tasks"), ("methods", "methods"), ("learners", "learners"),
                        ("seeds", "distill_seeds"), ("train_seeds", "train_seeds")):
        if getattr(args, option):
            changes[key] = getattr(args, option)
    if args.tasks:  # overrides of tasks left out of the run no longer apply
        changes["task_overrides"] = {t: o for t, o in suite.task_overrides.items() if t in args.tasks}
    if args.seeds:
        changes["random_seeds"] = None
    if args.budgets:
        changes["budgets"] = {"per_class": args.budgets, "total": args.budgets}
    if args.track:
        changes["tracks"] = ("standard", "native") if args.track == "both" else (args.track,)
    if changes:  # an option given on the command line also replaces the per-task overrides
        overrides = changes.pop("task_overrides", suite.task_overrides)
        changes["task_overrides"] = {task: {k: v for k, v in values.items() if k not in changes}
                                     for task, values in overrides.items()}
        suite = suite.replace(**changes)
    method_paths = load_method_paths(args.method_path)
    in_grid = set(suite.methods) | {m for o in suite.task_overrides.values() for m in o.get("methods", ())}
    for name in sorted(set(method_paths) - in_grid):
        logger.warning("method %r from --method-path is not in the grid of suite %s; add --methods with its "
                       "name to run it", name, suite.name)
    summary = run_suite(suite, args.results_dir, executor=args.executor, overwrite=args.overwrite,
                        method_paths=method_paths, workers=args.workers, ray_address=args.ray_address)
    print(f"suite {suite.name}: {summary.cells} cells in {summary.wall_time_s:.0f} s; runs: {summary.ok} ok, "
          f"{summary.failed} failed, {summary.not_applicable} not applicable, {summary.skipped} already recorded")
    if summary.skipped_failed:
        print(f"  {summary.skipped_failed} of the already recorded runs are failures from an earlier run; "
              f"retry them with --overwrite failed")
    for failure in summary.failures:
        print(f"  FAILED {failure}")
    return 1 if summary.failed else 0
