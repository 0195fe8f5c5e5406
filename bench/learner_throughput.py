"""Training and inference throughput of the CPU learners on real sst2 data, and the padding share of their batches.

Usage: python bench/learner_throughput.py [--tier quick] [--per-class 50] [--full-data] [--warm-cache]

Training throughput counts example passes (steps x rows per batch; one pass over the set for the
L-BFGS fit of tfidf-logreg) per second of `fit`. Inference throughput is test rows per second of
`evaluate`, first with an empty feature cache (unless --warm-cache), then again with the cache
that the first call filled. Numbers depend on the machine and its load; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class Measurement:
    learner: str
    train_rows: int
    steps: int
    train_examples_per_s: float
    first_eval_rows_per_s: float
    second_eval_rows_per_s: float
    eval_padding_sorted: float | None
    eval_padding_unsorted: float | None
    train_padding: float | None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="quick", help="recipe tier of every learner (default: quick)")
    parser.add_argument("--per-class", type=int, default=50,
                        help="random sst2 pool rows per class to train on (default: 50)")
    parser.add_argument("--full-data", action="store_true",
                        help="train with recipe.full_data_steps, as the full-data reference does")
    parser.add_argument("--warm-cache", action="store_true",
                        help="keep $TDDBENCH_CACHE_DIR, so cached sentence embeddings are reused "
                             "(default: an empty temporary cache)")
    parser.add_argument("--seed", type=int, default=0, help="subset and training seed (default: 0)")
    return parser.parse_args()


def sst2_subset(per_class: int, seed: int):
    import tasks
    from benchmark.synthetic import SyntheticSet

    data = tasks.load("sst2")
    labels = np.array([record["label"] for record in data.pool.records])
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in (0, 1)])
    records = [dict(data.pool.records[i]) for i in chosen]
    return data, SyntheticSet(task="sst2", method="random", form="text", records=records,
                              manifest={"label_field": "label"})


def padding_shares(learner, train, test, steps: int) -> tuple[float | None, float | None, float | None]:
    """Padding share of evaluation batches (length-sorted and in split order) and of `steps` training batches."""
    import torch

    from benchmark.backbones import MINILM
    from benchmark.encoder import shared_encoder
    from benchmark.learners.probe import _tokenizer
    from benchmark.learners.textcnn import EVAL_BATCH_SIZE, glove_ids
    from benchmark.learners.training import batch_indices, length_sorted_batches, padding_share
    from tasks.data import joined_text

    texts = [joined_text(learner.task, record) for record in test.records]
    train_texts = [joined_text(learner.task, record) for record in train.records]
    if learner.name == "textcnn-glove":
        lengths = [len(ids) for ids in glove_ids(texts, learner.max_length)]
        batch_size = EVAL_BATCH_SIZE
        train_lengths = [len(ids) for ids in glove_ids(train_texts, learner.max_length)]
        draws = batch_indices(len(train), learner.recipe.batch_size, steps, torch.Generator().manual_seed(0))
        train_share = padding_share(train_lengths, [index.numpy() for index in draws])
    elif learner.name == "minilm-probe":
        encoder = shared_encoder(MINILM, learner.recipe.max_length)
        tokenizer, batch_size = _tokenizer(), encoder.batch_size
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=encoder.max_length)["input_ids"]]
        # The probe's training embeds its set in the same length-sorted encoder batches.
        train_lengths = [len(ids) for ids in
                         tokenizer(train_texts, truncation=True, max_length=encoder.max_length)["input_ids"]]
        train_share = padding_share(train_lengths, length_sorted_batches(train_lengths, batch_size))
    else:
        return None, None, None  # sparse TF-IDF rows have no padding
    in_order = [np.arange(start, min(start + batch_size, len(lengths))) for start in range(0, len(lengths), batch_size)]
    return (padding_share(lengths, length_sorted_batches(lengths, batch_size)),
            padding_share(lengths, in_order), train_share)


def measure_learner(name: str, tier: str, data, train, seed: int, full_data: bool) -> Measurement:
    from benchmark import learners

    cls = learners.get(name)
    learner = cls(data.task, cls.recipe_for(tier))
    test = data.test
    report = learner.fit(train, seed=seed, full_data=full_data)
    if name == "tfidf-logreg":
        passes = len(train)
    else:
        passes = report.steps * min(learner.recipe.batch_size, len(train))

    timings = []
    for _ in range(2):
        start = time.perf_counter()
        learner.evaluate(test)
        timings.append(time.perf_counter() - start)
    sorted_share, unsorted_share, train_share = padding_shares(learner, train, test, report.steps)
    return Measurement(name, len(train), report.steps, passes / report.wall_time_s, len(test) / timings[0],
                       len(test) / timings[1], sorted_share, unsorted_share, train_share)


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def main() -> None:
    args = parse_args()
    if not args.warm_cache:
        # Set before the suite is imported, so every cache lookup goes to the empty folder.
        os.environ["TDDBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="tddbench-throughput-")
    import torch

    data, train = sst2_subset(args.per_class, args.seed)
    print(f"sst2: {len(train)} training rows, {len(data.test)} test rows, tier {args.tier}, "
          f"{'full-data steps' if args.full_data else 'steps'}, torch threads {torch.get_num_threads()}, "
          f"cache {'warm' if args.warm_cache else 'empty at start'}")
    header = (f"{'learner':<15}{'steps':>7}{'train ex/s':>12}{'eval 1 rows/s':>15}{'eval 2 rows/s':>15}"
              f"{'pad sorted':>12}{'pad unsorted':>14}{'pad train':>11}")
    print(header)
    for name in ("tfidf-logreg", "minilm-probe", "textcnn-glove"):
        m = measure_learner(name, args.tier, data, train, args.seed, args.full_data)
        print(f"{m.learner:<15}{m.steps:>7}{m.train_examples_per_s:>12.0f}{m.first_eval_rows_per_s:>15.0f}"
              f"{m.second_eval_rows_per_s:>15.0f}{percent(m.eval_padding_sorted):>12}"
              f"{percent(m.eval_padding_unsorted):>14}{percent(m.train_padding):>11}")


if __name__ == "__main__":
    main()
