"""Whole-suite wall time: a cold run, a warm rerun (every cell recorded), and 1 against 2 worker processes.

Usage: python bench/suite_runs.py [--suite smoke] [--extra "--tasks sst2 ..."] [--skip-process]

Each run is a separate `tddbench run` process. "Cold" starts with an empty feature cache and an
empty results folder; "warm" reruns the same command on the folder the cold run filled, so every
cell is skipped as already recorded. The process-executor runs start cold again, with 1 and then
2 workers. The feature cache is emptied before every cold run; the dequantized SmolLM2 copy and
other backbone files stay in place, so no run pays for them. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import load_average, machine_line


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="smoke", help="suite name or YAML path (default: smoke)")
    parser.add_argument("--extra", default="", help="further `tddbench run` options, one quoted string")
    parser.add_argument("--warm-runs", type=int, default=3, help="warm reruns to time (default: 3)")
    parser.add_argument("--skip-process", action="store_true", help="leave out the process-executor runs")
    return parser.parse_args()


def run_once(arguments: list[str], results: Path, cache: Path) -> tuple[float, str]:
    """Run `tddbench run` once; return its wall seconds and its summary and failure lines."""
    env = dict(os.environ, TDDBENCH_CACHE_DIR=str(cache))
    command = [sys.executable, "-m", "benchmark.cli", "run", *arguments, "--results-dir", str(results)]
    start = time.perf_counter()
    finished = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    lines = (finished.stdout.strip() or finished.stderr.strip() or "(no output)").splitlines()
    if finished.returncode != 0:
        lines.append(f"exit status {finished.returncode}: {finished.stderr.strip().splitlines()[-1:]}")
    return elapsed, " | ".join(line for line in lines if line.startswith(("suite", "  FAILED", "exit")))


def fresh_cache(root: Path, name: str) -> Path:
    """Create an empty cache folder that links the shared backbone files, so only features start cold."""
    cache = root / name
    cache.mkdir()
    shared = Path(os.environ.get("TDDBENCH_CACHE_DIR", ".cache/tddbench")) / "backbones"
    if shared.exists():
        (cache / "backbones").symlink_to(shared.resolve())
    return cache


def main() -> None:
    args = parse_args()
    base = ["--suite", args.suite, *shlex.split(args.extra)]
    root = Path(tempfile.mkdtemp(prefix="bench-suite-"))
    print(machine_line())
    print(f"command: tddbench run {' '.join(base)}")
    try:
        cache = fresh_cache(root, "cache-local")
        cold, summary = run_once(base, root / "results-local", cache)
        print(f"cold, local executor:      {cold:7.1f} s  {summary}  (load {load_average()})")
        warm = []
        for _ in range(args.warm_runs):
            seconds, summary = run_once(base, root / "results-local", cache)
            warm.append(seconds)
        warm.sort()
        median = warm[len(warm) // 2]
        print(f"warm rerun, local (median of {len(warm)}): {median:6.2f} s  = {100 * median / cold:.1f}% of cold  "
              f"runs {[round(s, 2) for s in warm]}  {summary}")
        if not args.skip_process:
            for workers in (1, 2):
                extra = ["--executor", "process", "--workers", str(workers)]
                seconds, summary = run_once(base + extra, root / f"results-process-{workers}",
                                            fresh_cache(root, f"cache-process-{workers}"))
                print(f"cold, process, {workers} worker(s): {seconds:7.1f} s  {summary}  (load {load_average()})")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
