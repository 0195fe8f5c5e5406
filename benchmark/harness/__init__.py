"""The benchmark harness: grid of cells, distillation, scoring, result records, executors."""
