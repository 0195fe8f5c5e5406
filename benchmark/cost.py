"""Wall time and peak memory of a block of work."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import psutil


@dataclass
class Cost:
    """Wall time in seconds and peak resident memory of the process in MiB during the block."""

    wall_time_s: float = 0.0
    peak_memory_mb: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@contextmanager
def measure(interval_s: float = 0.05) -> Iterator[Cost]:
    """Time the block and sample the process's RSS every `interval_s` to find its peak."""
    cost = Cost()
    process = psutil.Process()
    peak = [process.memory_info().rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval_s):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        yield cost
    finally:
        done.set()
        sampler.join()
        peak[0] = max(peak[0], process.memory_info().rss)
        cost.wall_time_s = time.perf_counter() - start
        cost.peak_memory_mb = peak[0] / 2**20
