"""Sentence embeddings from a frozen encoder, with length-sorted dynamic batches and a disk cache."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from benchmark.backbones import MINILM, load_encoder
from benchmark.cache import cache_dir

logger = logging.getLogger(__name__)


class SentenceEncoder:
    """Mean-pooled, L2-normalized sentence embeddings of one encoder backbone.

    Texts are sorted by token count and cut into batches of at most `batch_size` rows and
    `max_batch_tokens` padded tokens, so each batch pads only to its own longest text and long texts
    come in smaller batches. Every computed matrix is stored under the cache root, keyed by
    backbone, max length and content.
    """

    # A 1,024-token budget took 9-13% less CPU time than fixed 64-row batches on rte pairs and
    # 1-9% less on sst2 sentences (bench/encoder_throughput.py, one torch thread, AMD EPYC).
    # Budgets of 2,048 and 4,096 tokens were slower there, because they pad more.
    def __init__(self, backbone: str = MINILM, max_length: int = 128, batch_size: int = 64,
                 max_batch_tokens: int = 1024) -> None:
        self.backbone = backbone
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self._model = None
        self._tokenizer = None

    def _load(self) -> None:
        if self._model is None:
            self._tokenizer, self._model = _shared_weights(self.backbone)

    def cache_path(self, texts: Sequence[str]) -> Path:
        digest = hashlib.sha256(f"{self.backbone}|{self.max_length}|".encode())
        for text in texts:
            digest.update(text.encode("utf-8"))
            digest.update(b"\x00")
        folder = cache_dir() / "features" / self.backbone
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{digest.hexdigest()[:32]}.npy"

    def encode(self, texts: Sequence[str], cache: bool = True) -> np.ndarray:
        """Return a float32 array [len(texts), hidden] of unit-length embeddings."""
        texts = list(texts)
        path = self.cache_path(texts) if cache else None
        if path is not None and path.exists():
            logger.debug("feature cache hit %s (%d texts)", path.name, len(texts))
            return np.load(path)
        embeddings = self._encode(texts)
        if path is not None:
            staging = path.with_suffix(".tmp.npy")
            np.save(staging, embeddings)
            staging.replace(path)
        return embeddings

    def _encode(self, texts: list[str]) -> np.ndarray:
        self._load()
        tokenizer, model = self._tokenizer, self._model
        encoded = tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        lengths = [len(ids) for ids in encoded]
        hidden = model.config.hidden_size
        output = np.zeros((len(texts), hidden), dtype=np.float32)
        with torch.inference_mode():
            for batch_index in token_budget_batches(lengths, self.batch_size, self.max_batch_tokens):
                batch = tokenizer.pad({"input_ids": [encoded[i] for i in batch_index]}, return_tensors="pt")
                states = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                output[batch_index] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return output


def token_budget_batches(lengths: Sequence[int], max_rows: int, max_tokens: int) -> list[np.ndarray]:
    """Index batches in ascending length order, each of at most `max_rows` rows and `max_tokens` padded tokens.

    A batch's padded size is its row count times its longest row. A row longer than `max_tokens`
    forms a batch of its own.
    """
    if max_rows < 1 or max_tokens < 1:
        raise ValueError(f"batch limits max_rows={max_rows}, max_tokens={max_tokens} are invalid; "
                         f"both must be positive")
    sorted_lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(sorted_lengths, kind="stable")
    sorted_lengths = sorted_lengths[order]
    batches = []
    start = 0
    while start < len(order):
        # Rows are sorted, so the last row of a batch is its longest: grow while rows x last fits.
        end = start + 1
        while (end < len(order) and end - start < max_rows
               and (end + 1 - start) * int(sorted_lengths[end]) <= max_tokens):
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


@lru_cache(maxsize=None)
def _shared_weights(backbone: str):
    """(tokenizer, model) of `backbone`, loaded once per process and shared by every SentenceEncoder.

    The model is frozen and only run under inference mode, so sharing it is safe.
    """
    return load_encoder(backbone)


_encoders: dict[tuple[str, int], SentenceEncoder] = {}


def shared_encoder(backbone: str = MINILM, max_length: int = 128) -> SentenceEncoder:
    """One encoder per (backbone, max length) per process, so weights load once across cells."""
    key = (backbone, max_length)
    if key not in _encoders:
        _encoders[key] = SentenceEncoder(backbone, max_length)
    return _encoders[key]
