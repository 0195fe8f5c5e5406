"""Fine-tuning throughput: the suite's `minilm-finetune` loop against the Hugging Face Trainer on the same run.

Usage: python bench/finetune_vs_trainer.py [--per-class 50] [--steps 40] [--rounds 2] [--threads 1]

Both sides train all-MiniLM-L6-v2 with a fresh 2-class head on the same random sst2 pool rows
with the quick recipe's settings (batch 16, max length 128, fused AdamW at lr 1e-4 with weight
decay 0.01, 10% linear warmup then linear decay, gradient clipping at 1.0) and dynamic padding, in
turns. The suite runs twice: with its recipe's length-grouped batches (rows of similar length share
a batch) and with plain random batches, which is what Trainer does by default. Each timing covers
model loading, tokenization and training, and examples/s counts steps x batch rows. Wall and
process CPU seconds are both printed; with one thread on a shared machine the CPU seconds are the
stable figure. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile

import numpy as np
import torch

from common import interleave, load_average, machine_line, paired_ratios


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=50, help="sst2 pool rows per class (default: 50)")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps (default: 40, the quick recipe)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each side (default: 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    return parser.parse_args()


def sst2_rows(per_class: int, seed: int = 0) -> tuple[object, list[dict]]:
    import tasks

    data = tasks.load("sst2")
    labels = np.array([record["label"] for record in data.pool.records])
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in (0, 1)])
    return data, [dict(data.pool.records[i]) for i in chosen]


def suite_fit(data, records: list[dict], steps: int, length_grouped: bool = True) -> None:
    from benchmark import learners
    from benchmark.synthetic import SyntheticSet

    cls = learners.get("minilm-finetune")
    recipe = cls.recipe_for("quick")
    options = tuple((k, v) for k, v in recipe.options if k != "length_grouped") + (("length_grouped", length_grouped),)
    recipe = dataclasses.replace(recipe, steps=steps, options=options)
    train = SyntheticSet(task="sst2", method="random", form="text", records=records, manifest={"label_field": "label"})
    cls(data.task, recipe).fit(train, seed=0)


def trainer_fit(records: list[dict], steps: int, batch_size: int, max_length: int) -> None:
    from datasets import Dataset
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainingArguments)
    from transformers.utils import logging as hf_logging

    from benchmark.backbones import MINILM, encoder_path

    hf_logging.set_verbosity_error()
    path = encoder_path(MINILM)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    dataset = Dataset.from_dict({"sentence": [r["sentence"] for r in records],
                                 "label": [int(r["label"]) for r in records]})
    dataset = dataset.map(lambda rows: tokenizer(rows["sentence"], truncation=True, max_length=max_length),
                          batched=True, remove_columns=["sentence"])
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as output_dir:
        arguments = TrainingArguments(
            output_dir=output_dir, max_steps=steps, per_device_train_batch_size=batch_size, learning_rate=1e-4,
            weight_decay=0.01, warmup_steps=int(0.1 * steps), lr_scheduler_type="linear", max_grad_norm=1.0,
            logging_strategy="no", save_strategy="no", report_to=[], use_cpu=True, seed=0,
            dataloader_num_workers=0, disable_tqdm=True)
        Trainer(model=model, args=arguments, train_dataset=dataset,
                data_collator=DataCollatorWithPadding(tokenizer)).train()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    data, records = sst2_rows(args.per_class)
    batch_size, max_length = 16, 128

    print(machine_line())
    print(f"sst2: {len(records)} rows, {args.steps} steps of {batch_size} rows, max length {max_length}")
    timings = interleave({
        "suite, length-grouped": lambda: suite_fit(data, records, args.steps),
        "suite, random batches": lambda: suite_fit(data, records, args.steps, length_grouped=False),
        "transformers Trainer": lambda: trainer_fit(records, args.steps, batch_size, max_length),
    }, args.rounds)
    examples = args.steps * batch_size
    for name, timing in timings.items():
        print(f"  {name:<22} CPU {timing.cpu_median:6.2f} s  wall {timing.median:6.2f} s  "
              f"{examples / timing.cpu_median:5.1f} examples per CPU s  {examples / timing.median:5.1f} examples/s wall  "
              f"CPU rounds {[round(x, 2) for x in timing.cpu_seconds]}")
    for name in ("suite, length-grouped", "suite, random batches"):
        cpu = paired_ratios(timings["transformers Trainer"], timings[name], cpu=True)
        wall = paired_ratios(timings["transformers Trainer"], timings[name])
        print(f"  speed-up of {name} over Trainer, per round: CPU {[round(r, 2) for r in cpu]}, "
              f"wall {[round(r, 2) for r in wall]}")
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
