"""Sentence-embedding throughput: the suite's SentenceEncoder against sentence-transformers, and against matmul peak.

Usage: python bench/encoder_throughput.py [--sst2 2000] [--rte 500] [--rounds 2] [--threads 1]

Three encoders run on the same texts (sst2 pool sentences, then rte premise/hypothesis pairs
joined as the suite joins them), the same model folder and max length 128, in turns (A B C A B C):
the suite's encoder with its token-budget batches, the same encoder with fixed 64-row batches
(its batching before the token budget), and sentence-transformers' `encode` with batch size 64.
Times are wall and process CPU seconds. On a shared machine the CPU seconds of a one-thread run
are the stable figure, so model FLOP utilization (MFU) counts forward FLOPs of the real
(unpadded) tokens per CPU second against the best fp32 rate of a torch matmul in CPU seconds,
measured in the same run with the same thread count. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import interleave, load_average, machine_line, paired_ratios

MAX_LENGTH = 128
BATCH_SIZE = 64


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sst2", type=int, default=2000, help="sst2 pool sentences to embed (default: 2000)")
    parser.add_argument("--rte", type=int, default=500, help="rte pool pairs to embed (default: 500)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each encoder (default: 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    return parser.parse_args()


def pool_texts(task_name: str, count: int, seed: int = 0) -> list[str]:
    """Draw `count` pool texts of a task without replacement, with a fixed seed."""
    import tasks
    from tasks.data import joined_text

    data = tasks.load(task_name)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(data.pool.records), size=min(count, len(data.pool.records)), replace=False)
    return [joined_text(data.task, data.pool.records[i]) for i in chosen]


def matmul_peak_flops(sizes: tuple[int, ...] = (512, 1024, 2048), repeats: int = 5) -> tuple[float, int]:
    """Best fp32 FLOP per CPU second of square torch matmuls (2 n^3 FLOPs each), and the size that reached it."""
    best_rate, best_size = 0.0, 0
    for size in sizes:
        a = torch.randn(size, size)
        b = torch.randn(size, size)
        torch.mm(a, b)  # warm-up: thread pool start and page faults
        for _ in range(repeats):
            start = time.process_time()
            torch.mm(a, b)
            rate = 2.0 * size**3 / max(time.process_time() - start, 1e-9)
            if rate > best_rate:
                best_rate, best_size = rate, size
    return best_rate, best_size


def forward_flops(config, lengths: np.ndarray) -> float:
    """Forward FLOPs of a BERT encoder over sequences of `lengths` tokens (2 per multiply-add).

    Counts the dense layers (Q, K, V, output and the two feed-forward matrices) and the two
    attention products; embeddings, norms and softmax are left out as negligible.
    """
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    dense_per_token = 2 * (4 * hidden * hidden + 2 * hidden * inner)
    tokens = float(lengths.sum())
    attention = float((4 * hidden * lengths.astype(np.float64) ** 2).sum())  # QK^T and AV, 2 FLOPs per MAC
    return layers * (dense_per_token * tokens + attention)


def padding_report(tokenizer, texts: list[str], max_batch_tokens: int) -> tuple[np.ndarray, dict[str, float]]:
    """Token counts, and the padding share of token-budget, length-sorted and in-order batches."""
    from benchmark.encoder import token_budget_batches
    from benchmark.learners.training import length_sorted_batches, padding_share

    lengths = np.array([len(ids) for ids in tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]])
    in_order = [np.arange(s, min(s + BATCH_SIZE, len(lengths))) for s in range(0, len(lengths), BATCH_SIZE)]
    return lengths, {
        "token budget": padding_share(lengths, token_budget_batches(lengths, BATCH_SIZE, max_batch_tokens)),
        "64-row sorted": padding_share(lengths, length_sorted_batches(lengths, BATCH_SIZE)),
        "64-row in order": padding_share(lengths, in_order),
    }


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    from sentence_transformers import SentenceTransformer

    from benchmark.backbones import MINILM, encoder_path
    from benchmark.encoder import SentenceEncoder

    suite = SentenceEncoder(MINILM, MAX_LENGTH, BATCH_SIZE)
    # A token budget of rows x max length never binds, so this is plain 64-row length-sorted batching.
    fixed = SentenceEncoder(MINILM, MAX_LENGTH, BATCH_SIZE, max_batch_tokens=BATCH_SIZE * MAX_LENGTH)
    reference = SentenceTransformer(encoder_path(MINILM), device="cpu")
    reference.max_seq_length = MAX_LENGTH
    for encoder in (suite, fixed):
        encoder.encode(["warm up"], cache=False)
    reference.encode(["warm up"])

    peak, peak_size = matmul_peak_flops()
    print(machine_line())
    print(f"fp32 matmul peak (best of 5 at 512, 1024, 2048; reached at {peak_size}): "
          f"{peak / 1e9:.1f} GFLOP per CPU second")
    for task_name, count in (("sst2", args.sst2), ("rte", args.rte)):
        texts = pool_texts(task_name, count)
        lengths, shares = padding_report(suite._tokenizer, texts, suite.max_batch_tokens)
        flops = forward_flops(suite._model.config, lengths)
        outputs: dict[str, np.ndarray] = {}
        variants = {
            "suite": lambda: outputs.__setitem__("suite", suite.encode(texts, cache=False)),
            "suite, 64-row batches": lambda: outputs.__setitem__("fixed", fixed.encode(texts, cache=False)),
            "sentence-transformers": lambda: outputs.__setitem__(
                "reference", reference.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True,
                                              convert_to_numpy=True)),
        }
        timings = interleave(variants, args.rounds)
        agreement = min(float(np.min(np.sum(outputs["suite"] * outputs[other], axis=1)))
                        for other in ("fixed", "reference"))
        print(f"\n{task_name}: {len(texts)} texts, {int(lengths.sum())} tokens (mean {lengths.mean():.1f}, "
              f"max {lengths.max()}), model forward {flops / 1e9:.1f} GFLOP; padding share "
              + ", ".join(f"{name} {100 * share:.1f}%" for name, share in shares.items())
              + f"; min cosine between the three outputs {agreement:.6f}")
        for name, timing in timings.items():
            print(f"  {name:<22} CPU {timing.cpu_median:6.2f} s  wall {timing.median:6.2f} s  "
                  f"{len(texts) / timing.cpu_median:6.0f} texts per CPU s  "
                  f"MFU {100 * flops / timing.cpu_median / peak:5.1f}%  "
                  f"CPU rounds {[round(x, 2) for x in timing.cpu_seconds]}")
        for other in ("sentence-transformers", "suite, 64-row batches"):
            cpu = paired_ratios(timings[other], timings["suite"], cpu=True)
            wall = paired_ratios(timings[other], timings["suite"])
            print(f"  speed-up of suite over {other}, per round: CPU {[round(r, 2) for r in cpu]}, "
                  f"wall {[round(r, 2) for r in wall]}")
    print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()
