"""Selection baselines (random, herding, k-centers, kmeans, full) on real task pools."""

from __future__ import annotations

import logging
import time
from collections import Counter

import numpy as np
import pytest

import methods
import tasks
from benchmark.budget import check_set
from benchmark.cli import main as cli_main
from benchmark.encoder import shared_encoder
from methods.base import Budget, DistillContext, Pool
from methods.kmeans import nearest_distinct

BASELINES = ("random", "herding", "k-centers", "kmeans")
TASKS = ("sst2", "trec", "rte")
SUBPOOL_ROWS = 300


def stratified_subpool(name: str, rows: int = SUBPOOL_ROWS, seed: int = 0) -> Pool:
    """A seeded sub-pool with an equal share of rows per class (all rows of a smaller class)."""
    data = tasks.load(name)
    pool = Pool(data.task, data.pool.records, data.pool.fingerprint)
    rng = np.random.default_rng(seed)
    share = rows // data.task.num_classes
    keep = []
    for indices in pool.indices_by_class().values():
        keep.extend(rng.permutation(indices)[:share].tolist())
    keep.sort()
    return Pool(data.task, [pool.records[i] for i in keep], f"{data.pool.fingerprint}:subpool-{rows}-{seed}")


def points_context(points: np.ndarray, seed: int = 0) -> DistillContext:
    """A context whose `embed` returns the given points, whatever the texts."""
    def embed(texts):
        assert len(texts) == len(points), "the test built points for another pool"
        return points
    return DistillContext(seed=seed, logger=logging.getLogger("test"), embed=embed)


@pytest.fixture(scope="module")
def subpools() -> dict[str, Pool]:
    return {name: stratified_subpool(name) for name in TASKS}


@pytest.fixture(scope="module")
def minilm_context() -> DistillContext:
    return DistillContext(seed=0, logger=logging.getLogger("test"), embed=shared_encoder().encode)


# ---------------------------------------------------------------- budgets on real pools

@pytest.mark.parametrize("task_name", TASKS)
@pytest.mark.parametrize("method", BASELINES)
def test_baseline_exact_budget(method, task_name, subpools, minilm_context):
    pool = subpools[task_name]
    budget = Budget(5, "per_class")
    synthetic = methods.get(method)().distill(pool, budget, seed=0, context=minilm_context)

    counts = Counter(synthetic.hard_labels)
    assert synthetic.form == "text"
    assert synthetic.method == method
    assert dict(counts) == {c: 5 for c in range(pool.task.num_classes)}
    indices = synthetic.manifest["selected_indices"]
    assert len(set(indices)) == len(indices)
    assert synthetic.records == [pool.records[i] for i in indices]
    assert [pool.labels[i] for i in indices] == synthetic.hard_labels
    stats = check_set(synthetic, pool.task, budget, method)
    assert stats.examples == 5 * pool.task.num_classes


@pytest.mark.parametrize("method", BASELINES)
def test_baseline_deterministic_for_seed(method, subpools, minilm_context):
    pool = subpools["trec"]
    first = methods.get(method)().distill(pool, Budget(10, "per_class"), seed=3, context=minilm_context)
    second = methods.get(method)().distill(pool, Budget(10, "per_class"), seed=3, context=minilm_context)
    assert first.manifest["selected_indices"] == second.manifest["selected_indices"]
    assert first.content_hash() == second.content_hash()


def test_random_differs_across_seeds(subpools, minilm_context):
    pool = subpools["sst2"]
    draws = {tuple(methods.get("random")().distill(pool, Budget(10, "per_class"), seed=seed,
                                                   context=minilm_context).manifest["selected_indices"])
             for seed in range(4)}
    assert len(draws) == 4


def test_herding_ignores_seed(subpools, minilm_context):
    pool = subpools["rte"]
    picks = [methods.get("herding")().distill(pool, Budget(5, "per_class"), seed=seed,
                                              context=minilm_context).manifest["selected_indices"]
             for seed in (0, 1)]
    assert picks[0] == picks[1]


@pytest.mark.parametrize("method", BASELINES)
def test_baseline_total_budget(method):
    # QA budgets count examples in total; points stand in for sentence embeddings.
    data = tasks.load("squad_dev_split")
    pool = Pool(data.task, data.pool.records[:200], "squad-first-200")
    points = np.random.default_rng(0).standard_normal((len(pool), 8))
    synthetic = methods.get(method)().distill(pool, Budget(20, "total"), seed=0, context=points_context(points))
    indices = synthetic.manifest["selected_indices"]
    assert len(synthetic) == 20
    assert len(set(indices)) == 20
    assert synthetic.records == [pool.records[i] for i in indices]
    check_set(synthetic, pool.task, Budget(20, "total"), method)


@pytest.mark.parametrize("method", BASELINES)
def test_baseline_small_class_kept_whole(method, subpools):
    pool = subpools["trec"]
    by_class = pool.indices_by_class()
    keep = sorted([*by_class[0][:3].tolist(), *(i for c in range(1, 6) for i in by_class[c][:12].tolist())])
    small = Pool(pool.task, [pool.records[i] for i in keep], "trec-small-class")
    points = np.random.default_rng(1).standard_normal((len(small), 6))
    synthetic = methods.get(method)().distill(small, Budget(5, "per_class"), seed=0, context=points_context(points))
    counts = Counter(synthetic.hard_labels)
    assert counts[0] == 3
    assert all(counts[c] == 5 for c in range(1, 6))
    check_set(synthetic, small.task, Budget(5, "per_class"), method, pool_class_sizes=Counter(small.labels.tolist()))


@pytest.mark.parametrize("method", BASELINES)
def test_baseline_rejects_wrong_unit(method, subpools, minilm_context):
    with pytest.raises(ValueError, match=r"budget 5 in total does not fit task 'sst2'.*Budget\(5, 'per_class'\)"):
        methods.get(method)().distill(subpools["sst2"], Budget(5, "total"), seed=0, context=minilm_context)


def test_baseline_rejects_zero_budget(subpools, minilm_context):
    with pytest.raises(ValueError, match="budget value 0 is invalid"):
        methods.get("random")().distill(subpools["sst2"], Budget(0, "per_class"), seed=0, context=minilm_context)


def test_baseline_rejects_misshapen_embeddings(subpools):
    pool = subpools["sst2"]
    context = DistillContext(seed=0, logger=logging.getLogger("test"), embed=lambda texts: np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"embeddings have shape \(3, 4\), expected \[300, d\]"):
        methods.get("herding")().distill(pool, Budget(5, "per_class"), seed=0, context=context)


def test_records_are_copies(subpools, minilm_context):
    pool = subpools["sst2"]
    synthetic = methods.get("random")().distill(pool, Budget(2, "per_class"), seed=0, context=minilm_context)
    index = synthetic.manifest["selected_indices"][0]
    original = pool.records[index]["sentence"]
    synthetic.records[0]["sentence"] = "changed"
    assert pool.records[index]["sentence"] == original


def test_manifest_records_budget_and_params(subpools, minilm_context):
    synthetic = methods.get("k-centers")(start="random").distill(
        subpools["trec"], Budget(2, "per_class"), seed=4, context=minilm_context)
    assert synthetic.manifest["hyperparameters"] == {"start": "random"}
    assert synthetic.manifest["budget"] == 2
    assert synthetic.manifest["budget_unit"] == "per_class"
    assert synthetic.manifest["seed"] == 4
    assert synthetic.manifest["label_field"] == "coarse_label"


# ---------------------------------------------------------------- full data

def test_full_returns_whole_pool(subpools, minilm_context):
    pool = subpools["rte"]
    synthetic = methods.get("full")().distill(pool, None, seed=0, context=minilm_context)
    assert synthetic.records == list(pool.records)
    assert synthetic.manifest["full_data"] is True
    assert synthetic.manifest["selected_indices"] == list(range(len(pool)))
    assert methods.get("full").category == "reference"
    stats = check_set(synthetic, pool.task, None, "full")
    assert stats.examples == len(pool)


# ---------------------------------------------------------------- against brute-force references

def reference_herding(points: np.ndarray, count: int) -> list[int]:
    """Herding written plainly: try every unpicked point and keep the best running mean."""
    mean = points.mean(axis=0)
    picked: list[int] = []
    for _ in range(count):
        best, best_distance = None, None
        for i in range(len(points)):
            if i in picked:
                continue
            running_mean = points[picked + [i]].mean(axis=0)
            distance = np.linalg.norm(mean - running_mean)
            if best_distance is None or distance < best_distance:
                best, best_distance = i, distance
        picked.append(best)
    return picked


def reference_k_centers(points: np.ndarray, count: int, first: int) -> list[int]:
    """Greedy k-center written plainly: add the point farthest from its nearest center."""
    centers = [first]
    while len(centers) < count:
        best, best_distance = None, None
        for i in range(len(points)):
            if i in centers:
                continue
            distance = min(np.linalg.norm(points[i] - points[c]) for c in centers)
            if best_distance is None or distance > best_distance:
                best, best_distance = i, distance
        centers.append(best)
    return centers


def cloud_pool(seed: int) -> tuple[Pool, np.ndarray]:
    """Real sst2 rows (two classes) with a random point cloud in place of their embeddings."""
    pool = stratified_subpool("sst2", rows=60, seed=seed)
    points = np.random.default_rng(seed).standard_normal((len(pool), 5))
    return pool, points


def per_class_reference(pool: Pool, points: np.ndarray, select) -> list[int]:
    chosen = []
    for indices in pool.indices_by_class().values():
        chosen.extend(int(indices[i]) for i in select(points[indices]))
    return chosen


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("budget", [1, 4, 9])
def test_herding_matches_reference(seed, budget):
    pool, points = cloud_pool(seed)
    synthetic = methods.get("herding")().distill(pool, Budget(budget, "per_class"), seed=0,
                                                 context=points_context(points))
    expected = per_class_reference(pool, points, lambda p: reference_herding(p, budget))
    assert synthetic.manifest["selected_indices"] == expected


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("budget", [1, 4, 9])
def test_kcenters_matches_reference(seed, budget):
    pool, points = cloud_pool(seed)
    synthetic = methods.get("k-centers")().distill(pool, Budget(budget, "per_class"), seed=0,
                                                   context=points_context(points))

    def select(group_points):
        first = int(np.argmin(np.linalg.norm(group_points - group_points.mean(axis=0), axis=1)))
        return reference_k_centers(group_points, budget, first)

    assert synthetic.manifest["selected_indices"] == per_class_reference(pool, points, select)


@pytest.mark.parametrize("seed", range(3))
def test_kcenters_random_start_matches_reference(seed):
    pool, points = cloud_pool(seed)
    synthetic = methods.get("k-centers")(start="random").distill(pool, Budget(6, "per_class"), seed=seed,
                                                                 context=points_context(points))
    chosen = synthetic.manifest["selected_indices"]
    for label, indices in pool.indices_by_class().items():
        picked = [i for i in chosen if pool.labels[i] == label]
        positions = [int(np.flatnonzero(indices == i)[0]) for i in picked]
        assert positions == reference_k_centers(points[indices], 6, positions[0])


def test_kcenters_rejects_unknown_start(subpools, minilm_context):
    with pytest.raises(ValueError, match=r"start='median' is invalid; use one of \['mean', 'random'\]"):
        methods.get("k-centers")(start="median").distill(subpools["sst2"], Budget(1, "per_class"), seed=0,
                                                         context=minilm_context)


def test_kmeans_one_pick_per_blob():
    # Five tight, far-apart blobs per class: k-means with k = 5 must keep one row from each blob.
    pool = stratified_subpool("sst2", rows=100, seed=0)
    rng = np.random.default_rng(0)
    blob_centers = rng.standard_normal((5, 16)) * 20
    blob = np.arange(len(pool)) % 5
    points = blob_centers[blob] + 0.01 * rng.standard_normal((len(pool), 16))
    for seed in range(3):
        synthetic = methods.get("kmeans")().distill(pool, Budget(5, "per_class"), seed=seed,
                                                    context=points_context(points))
        for label, indices in pool.indices_by_class().items():
            picked = [i for i in synthetic.manifest["selected_indices"] if pool.labels[i] == label]
            assert sorted(blob[picked].tolist()) == [0, 1, 2, 3, 4]


def test_kmeans_distinct_for_shared_nearest():
    # Both centroids sit nearest row 0; the closer one keeps it and the other takes row 1.
    points = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]])
    centroids = np.array([[0.2, 0.0], [0.1, 0.0]])
    assert nearest_distinct(points, centroids).tolist() == [1, 0]


def test_kmeans_rejects_bad_max_iter(subpools, minilm_context):
    with pytest.raises(ValueError, match=r"max_iter=0 is invalid; use a positive integer"):
        methods.get("kmeans")(max_iter=0).distill(subpools["sst2"], Budget(1, "per_class"), seed=0,
                                                  context=minilm_context)


def test_kmeans_duplicate_rows():
    # Every row identical: the seeding and matching must still return distinct rows.
    pool = stratified_subpool("sst2", rows=40, seed=0)
    points = np.ones((len(pool), 3))
    synthetic = methods.get("kmeans")().distill(pool, Budget(4, "per_class"), seed=0, context=points_context(points))
    indices = synthetic.manifest["selected_indices"]
    assert len(set(indices)) == 8


# ---------------------------------------------------------------- registry and CLI

def test_baselines_declare_metadata():
    for name in (*BASELINES, "full"):
        info = methods.get(name).describe()
        assert info["form"] == "text"
        assert info["citation"]
        assert info["description"]
        assert info["category"] == ("reference" if name == "full" else "selection")
        assert set(info["families"]) == {"classification", "nli", "qa", "instruction"}


def test_cli_methods_lists_baselines(capsys):
    assert cli_main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["method", "category", "form", "tracks", "families", "source"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["herding"][1:3] == ["selection", "text"]
    assert rows["full"][1] == "reference"
    assert rows["random"][3] == "standard,native"
    assert rows["kmeans"][5] == "builtin"


# ---------------------------------------------------------------- speed at sst2 scale

@pytest.mark.slow
@pytest.mark.parametrize("method", BASELINES)
def test_baseline_speed_full_sst2(method):
    # The whole sst2 pool (66k rows) with random unit vectors in place of MiniLM embeddings.
    data = tasks.load("sst2")
    pool = Pool(data.task, data.pool.records, data.pool.fingerprint)
    points = np.random.default_rng(0).standard_normal((len(pool), 384)).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    start = time.process_time()
    synthetic = methods.get(method)().distill(pool, Budget(50, "per_class"), seed=0, context=points_context(points))
    elapsed = time.process_time() - start
    assert len(synthetic) == 100
    # NOTE: CPU seconds on a shared 2-core machine; the bound only catches a quadratic slip.
    assert elapsed < 30, f"{method} took {elapsed:.1f} CPU s on 66k x 384"
