"""Helpers shared by the bench scripts: interleaved A/B timing, load average and machine facts."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Timings:
    """Wall and process CPU times in seconds of one variant, one entry per round."""

    name: str
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_seconds)


def interleave(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, Timings]:
    """Time every variant once per round, in turn (A B A B ...), so drifting machine load hits all alike."""
    timings = {name: Timings(name) for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            run()
            timings[name].seconds.append(time.perf_counter() - start)
            timings[name].cpu_seconds.append(time.process_time() - cpu_start)
    return timings


def paired_ratios(slow: Timings, fast: Timings, cpu: bool = False) -> list[float]:
    """Per-round ratios slow/fast of wall (or CPU) time; above 1 means `fast` took less time in that round."""
    if cpu:
        return [a / b for a, b in zip(slow.cpu_seconds, fast.cpu_seconds)]
    return [a / b for a, b in zip(slow.seconds, fast.seconds)]


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine_line() -> str:
    """One line naming CPU model, core count, memory and torch threads."""
    import torch

    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as handle:
            memory_kb = int(handle.readline().split()[1])
    except OSError:
        memory_kb = 0
    return (f"{model}, nproc {os.cpu_count()}, {memory_kb / 2**20:.0f} GiB RAM, torch {torch.__version__} "
            f"with {torch.get_num_threads()} threads, load average {load_average()}")
