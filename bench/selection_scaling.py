"""Selection baselines (herding, k-centers, k-means) against plain NumPy references, at growing pool sizes.

Usage: python bench/selection_scaling.py [--sizes 1000,10000,66349] [--per-class 50] [--rounds 3]

The pool is the first N rows of the sst2 train pool (66,349 rows, real labels). Its embeddings are random unit
vectors [N, 384] drawn with a fixed seed, because embedding all 67k texts with MiniLM takes about
half an hour on 2 CPU cores. The suite's timing is a whole `distill` call (grouping by class,
selection, copying the chosen records) with an embedding function that returns the stored matrix.
The references are plain per-class loops written here for comparison; k-means draws its seeds
differently, so its picks are not expected to match the suite's. Variants run in turns, and both
wall and process CPU seconds are printed (CPU seconds count every BLAS thread).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from common import interleave, load_average, machine_line

DIM = 384


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,66349",
                        help="pool sizes, comma-separated; capped at the sst2 pool's 66,349 rows")
    parser.add_argument("--per-class", type=int, default=50, help="budget in rows per class (default: 50)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each variant (default: 3)")
    parser.add_argument("--methods", default="herding,k-centers,kmeans", help="methods, comma-separated")
    return parser.parse_args()


# ---------------------------------------------------------------- plain NumPy references

def reference_herding(points: np.ndarray, count: int) -> np.ndarray:
    """Herding by recomputing every candidate's distance to the target mean at each step."""
    points = points.astype(np.float64)
    mean = points.mean(axis=0)
    picked_sum = np.zeros(points.shape[1])
    available = np.ones(len(points), dtype=bool)
    order = []
    for step in range(1, count + 1):
        distances = np.linalg.norm(mean - (picked_sum + points) / step, axis=1)
        distances[~available] = np.inf
        best = int(np.argmin(distances))
        order.append(best)
        available[best] = False
        picked_sum += points[best]
    return np.array(order)


def reference_k_centers(points: np.ndarray, count: int) -> np.ndarray:
    """Greedy k-center from the row nearest the mean, with direct Euclidean distances."""
    points = points.astype(np.float64)
    first = int(np.argmin(np.linalg.norm(points - points.mean(axis=0), axis=1)))
    nearest = np.linalg.norm(points - points[first], axis=1)
    order = [first]
    for _ in range(1, count):
        nearest[order] = -1.0
        best = int(np.argmax(nearest))
        order.append(best)
        nearest = np.minimum(nearest, np.linalg.norm(points - points[best], axis=1))
    return np.array(order)


def reference_kmeans(points: np.ndarray, count: int, rng: np.random.Generator, max_iter: int = 30) -> np.ndarray:
    """k-means++ then Lloyd with a [n, k] distance table built one centroid at a time; nearest row per centroid."""
    points = points.astype(np.float64)
    centroids = [points[rng.integers(len(points))]]
    nearest = np.full(len(points), np.inf)
    for _ in range(1, count):
        nearest = np.minimum(nearest, ((points - centroids[-1]) ** 2).sum(axis=1))
        centroids.append(points[rng.choice(len(points), p=nearest / nearest.sum())])
    centroids = np.array(centroids)
    assignment = None
    for _ in range(max_iter):
        distances = np.stack([((points - c) ** 2).sum(axis=1) for c in centroids], axis=1)
        new_assignment = distances.argmin(axis=1)
        if assignment is not None and np.array_equal(new_assignment, assignment):
            break
        assignment = new_assignment
        for k in range(count):
            members = points[assignment == k]
            if len(members):
                centroids[k] = members.mean(axis=0)
    chosen: list[int] = []
    for c in centroids:
        distances = ((points - c) ** 2).sum(axis=1)
        distances[chosen] = np.inf
        chosen.append(int(np.argmin(distances)))
    return np.array(chosen)


REFERENCES = {"herding": lambda p, k, rng: reference_herding(p, k),
              "k-centers": lambda p, k, rng: reference_k_centers(p, k),
              "kmeans": reference_kmeans}


# ---------------------------------------------------------------- runs

def make_pool(size: int | None):
    import tasks
    from methods.base import Pool

    data = tasks.load("sst2")
    return Pool(data.task, data.pool.records[:size], data.fingerprint)


def suite_run(method_name: str, pool, embeddings: np.ndarray, per_class: int) -> list[int]:
    import methods
    from methods.base import Budget, DistillContext

    context = DistillContext(seed=0, logger=logging.getLogger("bench"), embed=lambda texts: embeddings)
    synthetic = methods.get(method_name)().distill(pool, Budget(per_class, "per_class"), 0, context)
    return synthetic.manifest["selected_indices"]


def reference_run(method_name: str, pool, embeddings: np.ndarray, per_class: int) -> list[int]:
    rng = np.random.default_rng(0)
    chosen: list[int] = []
    for rows in pool.indices_by_class().values():
        chosen.extend(int(i) for i in rows[REFERENCES[method_name](embeddings[rows], per_class, rng)])
    return chosen


def main() -> None:
    args = parse_args()
    full_pool = make_pool(None)
    sizes = [min(int(v), len(full_pool)) for v in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((max(sizes), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    print(machine_line())
    print(f"budget {args.per_class} per class, random unit vectors [N, {DIM}], medians of {args.rounds} rounds")
    print(f"{'method':<10}{'N':>7}{'suite wall s':>14}{'suite CPU s':>13}{'ref wall s':>12}{'ref CPU s':>11}"
          f"{'speed-up CPU':>14}{'same picks':>12}")
    for method_name in args.methods.split(","):
        # Untimed warm-up: imports, the method registry and the first BLAS calls.
        warm_pool = make_pool(min(sizes))
        suite_run(method_name, warm_pool, vectors[:len(warm_pool)], args.per_class)
        reference_run(method_name, warm_pool, vectors[:len(warm_pool)], args.per_class)
        for size in sizes:
            pool = make_pool(size)
            embeddings = vectors[:size]
            picks: dict[str, list[int]] = {}
            timings = interleave({
                "suite": lambda: picks.__setitem__("suite", suite_run(method_name, pool, embeddings, args.per_class)),
                "reference": lambda: picks.__setitem__(
                    "reference", reference_run(method_name, pool, embeddings, args.per_class)),
            }, args.rounds)
            same = len(set(picks["suite"]) & set(picks["reference"])) / len(picks["suite"])
            suite, reference = timings["suite"], timings["reference"]
            print(f"{method_name:<10}{size:>7}{suite.median:>14.3f}{suite.cpu_median:>13.3f}{reference.median:>12.3f}"
                  f"{reference.cpu_median:>11.3f}{reference.cpu_median / suite.cpu_median:>13.1f}x{100 * same:>11.0f}%")
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
