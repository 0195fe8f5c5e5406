"""SyntheticSet on disk: round trips keep the content hash, tampering is detected, nothing is pickled."""

from __future__ import annotations

import json
import logging
import struct

import numpy as np
import pytest
import torch

import methods
import tasks
from benchmark.synthetic import SyntheticSet, SyntheticSetError
from methods.base import Budget, DistillContext, Pool

CONTEXT = DistillContext(seed=0, logger=logging.getLogger("test"), embed=lambda texts: np.zeros((len(texts), 4)))
PICKLE_OR_TORCH_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".npy", ".npz")


@pytest.fixture(scope="module")
def text_set() -> SyntheticSet:
    """A random selection from the real trec pool, with soft labels on every record."""
    data = tasks.load("trec")
    pool = Pool(data.task, data.pool.records, data.pool.fingerprint)
    synthetic = methods.get("random")().distill(pool, Budget(3, "per_class"), seed=0, context=CONTEXT)
    for record in synthetic.records:
        soft = [0.02] * 6
        soft[record["coarse_label"]] = 0.9
        record["soft_label"] = soft
    return synthetic


def glove_set(**extras: torch.Tensor) -> SyntheticSet:
    generator = torch.Generator().manual_seed(0)
    tensors = {
        "inputs": torch.randn(6, 5, 50, generator=generator),
        "attention_mask": torch.tensor([[1, 1, 1, 0, 0]] * 6),
        "labels": torch.tensor([0, 1, 0, 1, 0, 1]),
        "soft_labels": torch.softmax(torch.randn(6, 2, generator=generator), dim=1),
    }
    return SyntheticSet(task="sst2", method="test", form="embeddings", tensors=tensors,
                        backbone="glove-6b-50d", extras=dict(extras), manifest={"steps": 3})


def assert_no_pickle(folder) -> None:
    for path in folder.iterdir():
        assert not path.name.endswith(PICKLE_OR_TORCH_SUFFIXES), f"{path.name} is not a safetensors/JSON file"
        head = path.read_bytes()[:2]
        assert head[:1] != b"\x80", f"{path.name} starts with a pickle protocol byte"
        assert head != b"PK", f"{path.name} is a zip archive (torch.save format)"


def read_safetensors_header(path) -> dict:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + length])


# ---------------------------------------------------------------- round trips

def test_text_round_trip(text_set, tmp_path):
    folder = text_set.save(tmp_path / "text")
    loaded = SyntheticSet.load(folder, verify=True)
    assert loaded.content_hash() == text_set.content_hash()
    assert loaded.records == text_set.records
    assert loaded.form == "text"
    assert loaded.task == "trec"
    assert loaded.method == "random"
    assert loaded.manifest["selected_indices"] == text_set.manifest["selected_indices"]
    assert loaded.has_soft_labels
    assert loaded.hard_labels == text_set.hard_labels


def test_text_folder_has_no_pickle(text_set, tmp_path):
    folder = text_set.save(tmp_path / "text")
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "records.jsonl"]
    assert_no_pickle(folder)


def test_text_set_with_extras_round_trip(text_set, tmp_path):
    with_lrs = SyntheticSet(task=text_set.task, method="test", form="text", records=text_set.records,
                            extras={"lrs": torch.tensor([0.1, 0.05, 0.01])}, manifest=dict(text_set.manifest))
    folder = with_lrs.save(tmp_path / "text-lrs")
    loaded = SyntheticSet.load(folder)
    assert loaded.content_hash() == with_lrs.content_hash()
    assert torch.equal(loaded.extras["lrs"], with_lrs.extras["lrs"])
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "records.jsonl", "tensors.safetensors"]
    assert_no_pickle(folder)


def test_embedding_round_trip(tmp_path):
    synthetic = glove_set(lrs=torch.tensor([0.2, 0.1, 0.05]))
    folder = synthetic.save(tmp_path / "glove")
    loaded = SyntheticSet.load(folder, verify=True)
    assert loaded.content_hash() == synthetic.content_hash()
    assert loaded.backbone == "glove-6b-50d"
    assert loaded.manifest["steps"] == 3
    for name, tensor in synthetic.tensors.items():
        assert loaded.tensors[name].dtype == tensor.dtype
        assert torch.equal(loaded.tensors[name], tensor)
    assert torch.equal(loaded.extras["lrs"], synthetic.extras["lrs"])
    assert len(loaded) == 6


def test_embedding_folder_is_safetensors(tmp_path):
    folder = glove_set(lrs=torch.tensor([0.2])).save(tmp_path / "glove")
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "tensors.safetensors"]
    header = read_safetensors_header(folder / "tensors.safetensors")
    assert sorted(k for k in header if k != "__metadata__") == [
        "extra.lrs", "tensor.attention_mask", "tensor.inputs", "tensor.labels", "tensor.soft_labels"]
    assert header["tensor.inputs"]["shape"] == [6, 5, 50]
    assert_no_pickle(folder)


def test_sentence_embedding_round_trip(tmp_path):
    synthetic = SyntheticSet(task="sst2", method="test", form="embeddings", backbone="all-MiniLM-L6-v2",
                             tensors={"inputs": torch.randn(4, 384), "labels": torch.tensor([0, 0, 1, 1])})
    loaded = SyntheticSet.load(synthetic.save(tmp_path / "minilm"))
    assert loaded.content_hash() == synthetic.content_hash()
    assert loaded.hard_labels == [0, 0, 1, 1]


def test_save_replaces_existing_folder(text_set, tmp_path):
    folder = glove_set().save(tmp_path / "set")
    text_set.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "records.jsonl"]
    assert [p.name for p in tmp_path.iterdir()] == ["set"]
    assert SyntheticSet.load(folder).content_hash() == text_set.content_hash()


def test_hash_tracks_content(text_set):
    changed = SyntheticSet(task=text_set.task, method=text_set.method, form="text",
                           records=[dict(r) for r in text_set.records], manifest=text_set.manifest)
    assert changed.content_hash() == text_set.content_hash()
    changed.records[0]["text"] += "!"
    assert changed.content_hash() != text_set.content_hash()


# ---------------------------------------------------------------- tampering

def test_tampered_records_fail_verify(text_set, tmp_path):
    folder = text_set.save(tmp_path / "text")
    path = folder / "records.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["coarse_label"] = (first["coarse_label"] + 1) % 6
    path.write_text("\n".join([json.dumps(first, sort_keys=True), *lines[1:]]) + "\n", encoding="utf-8")

    with pytest.raises(SyntheticSetError, match=r"content hash [0-9a-f]{12} does not match the manifest's"):
        SyntheticSet.load(folder, verify=True)
    assert SyntheticSet.load(folder, verify=False).records[0]["coarse_label"] == first["coarse_label"]


def test_tampered_tensors_fail_verify(tmp_path):
    folder = glove_set().save(tmp_path / "glove")
    path = folder / "tensors.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF  # flip the last byte of the last tensor's data
    path.write_bytes(bytes(raw))
    with pytest.raises(SyntheticSetError, match="the files were changed after saving"):
        SyntheticSet.load(folder, verify=True)


def test_load_without_manifest_fails(tmp_path):
    with pytest.raises(SyntheticSetError, match=r"no manifest.json; is this a synthetic set folder\?"):
        SyntheticSet.load(tmp_path)


# ---------------------------------------------------------------- construction errors

def test_invalid_form_rejected():
    with pytest.raises(SyntheticSetError, match=r"form 'tokens' is invalid; use 'text' or 'embeddings'"):
        SyntheticSet(task="sst2", method="test", form="tokens")


def test_embedding_set_needs_backbone():
    with pytest.raises(SyntheticSetError, match=r"method 'test': an embedding set must name its backbone"):
        SyntheticSet(task="sst2", method="test", form="embeddings",
                     tensors={"inputs": torch.zeros(1, 4), "labels": torch.zeros(1, dtype=torch.long)})


def test_embedding_set_needs_labels():
    with pytest.raises(SyntheticSetError, match=r"embedding set lacks tensor 'labels'"):
        SyntheticSet(task="sst2", method="test", form="embeddings", backbone="glove-6b-50d",
                     tensors={"inputs": torch.zeros(1, 50)})
