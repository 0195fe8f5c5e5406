"""Executors: where cells run. All of them call `run_cell`, so they produce the same records.

- `local`: one cell after another in this process (the default).
- `process`: a pool of worker processes on this machine.
- `ray`: each cell is a Ray task, on a local Ray instance or the cluster at `ray_address`. Workers
  write records and sets themselves, so on a multi-machine cluster the results directory must be
  on a filesystem that every node mounts at the same path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Literal

from benchmark.harness.cell import CellOutcome, run_cell
from benchmark.harness.grid import Cell

logger = logging.getLogger(__name__)

ExecutorName = Literal["local", "process", "ray"]


def _worker_env() -> dict[str, str]:
    """Settings a worker needs to find the same data, cache and threads as the driver."""
    keys = ("TDDBENCH_DATA_DIR", "TDDBENCH_CACHE_DIR", "HF_HUB_OFFLINE", "OMP_NUM_THREADS")
    return {k: os.environ[k] for k in keys if k in os.environ}


def _init_worker(env: dict[str, str], threads: int | None) -> None:
    os.environ.update(env)
    if threads:
        import torch
        torch.set_num_threads(threads)


def run_local(cells: list[Cell], results_dir: str, overwrite: str, **_: object) -> Iterator[CellOutcome]:
    for cell in cells:
        yield run_cell(cell, results_dir, overwrite)


def run_process(cells: list[Cell], results_dir: str, overwrite: str, workers: int = 2,
                **_: object) -> Iterator[CellOutcome]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(_worker_env(), threads)) as pool:
        futures = [pool.submit(run_cell, cell, results_dir, overwrite) for cell in cells]
        for future in as_completed(futures):
            yield future.result()


def run_ray(cells: list[Cell], results_dir: str, overwrite: str, workers: int = 2,
            ray_address: str | None = None, **_: object) -> Iterator[CellOutcome]:
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        env = _worker_env()
        if ray_address:
            ray.init(address=ray_address, runtime_env={"env_vars": env}, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, runtime_env={"env_vars": env},
                     log_to_driver=False)
    threads = max(1, (os.cpu_count() or 1) // workers)

    @ray.remote(num_cpus=threads)
    def remote_cell(cell: Cell) -> CellOutcome:
        _init_worker({}, threads)
        return run_cell(cell, results_dir, overwrite)

    try:
        pending = [remote_cell.remote(cell) for cell in cells]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()


EXECUTORS: dict[str, Callable[..., Iterator[CellOutcome]]] = {
    "local": run_local, "process": run_process, "ray": run_ray,
}
