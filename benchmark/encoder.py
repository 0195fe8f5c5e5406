"""Sentence embeddings from a frozen encoder, with length-sorted dynamic batches and a disk cache."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from benchmark.backbones import MINILM, load_encoder
from benchmark.cache import cache_dir

logger = logging.getLogger(__name__)


class SentenceEncoder:
    """Mean-pooled, L2-normalized sentence embeddings of one encoder backbone.

    Texts are sorted by length so each batch pads only to its own longest text, and every
    computed matrix is stored under the cache root, keyed by backbone, max length and content.
    """

    def __init__(self, backbone: str = MINILM, max_length: int = 128, batch_size: int = 64) -> None:
        self.backbone = backbone
        self.max_length = max_length
        self.batch_size = batch_size
        self._model = None
        self._tokenizer = None

    def _load(self) -> None:
        if self._model is None:
            self._tokenizer, self._model = load_encoder(self.backbone)

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
        order = np.argsort([len(ids) for ids in encoded], kind="stable")
        hidden = model.config.hidden_size
        output = np.zeros((len(texts), hidden), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch_index = order[start:start + self.batch_size]
                batch = tokenizer.pad({"input_ids": [encoded[i] for i in batch_index]}, return_tensors="pt")
                states = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                output[batch_index] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return output


_encoders: dict[tuple[str, int], SentenceEncoder] = {}


def shared_encoder(backbone: str = MINILM, max_length: int = 128) -> SentenceEncoder:
    """One encoder per (backbone, max length) per process, so weights load once across cells."""
    key = (backbone, max_length)
    if key not in _encoders:
        _encoders[key] = SentenceEncoder(backbone, max_length)
    return _encoders[key]
