"""The synthetic set: what a distiller returns and what learners train on.

A set has one of two forms. *text*: records in the task's own schema (its input fields and its
label or target field), each with an optional `soft_label` distribution over the classes.
*embeddings*: tensors tied to one backbone, `inputs` of shape [n, L, d] (token level, with an
`attention_mask` [n, L]) or [n, d] (sentence level), `labels` [n] and optionally `soft_labels` [n, C].
Either form may carry extras: learned per-step learning rates (`lrs`), label logits, attention
targets. On disk a set is `records.jsonl` (text) or `tensors.safetensors` (tensors and extras) plus
`manifest.json`; nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file

Form = Literal["text", "embeddings"]

SOFT_LABEL_KEY = "soft_label"
MANIFEST = "manifest.json"
RECORDS = "records.jsonl"
TENSORS = "tensors.safetensors"


class SyntheticSetError(ValueError):
    """Raised when a synthetic set is malformed or fails to load."""


@dataclass
class SyntheticSet:
    """A distilled set: text records or backbone-tied tensors, plus extras and a manifest."""

    task: str
    method: str
    form: Form
    records: list[dict[str, Any]] = field(default_factory=list)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    backbone: str | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.form not in ("text", "embeddings"):
            raise SyntheticSetError(f"form {self.form!r} is invalid; use 'text' or 'embeddings'")
        if self.form == "embeddings":
            if not self.backbone:
                raise SyntheticSetError(f"method {self.method!r}: an embedding set must name its backbone")
            for key in ("inputs", "labels"):
                if key not in self.tensors:
                    raise SyntheticSetError(f"method {self.method!r}: embedding set lacks tensor {key!r}")

    def __len__(self) -> int:
        return len(self.records) if self.form == "text" else int(self.tensors["labels"].shape[0])

    @property
    def hard_labels(self) -> list[int]:
        """Class id of every example (text sets of labelled tasks read `label_field` of the manifest)."""
        if self.form == "embeddings":
            return [int(v) for v in self.tensors["labels"].tolist()]
        label_field = self.manifest.get("label_field", "label")
        return [int(r[label_field]) for r in self.records]

    @property
    def has_soft_labels(self) -> bool:
        if self.form == "embeddings":
            return "soft_labels" in self.tensors
        return any(SOFT_LABEL_KEY in r for r in self.records)

    def content_hash(self) -> str:
        """sha256 over the content that training sees: records or tensors, extras and form."""
        digest = hashlib.sha256()
        digest.update(f"{self.form}|{self.backbone}|".encode())
        for record in self.records:
            digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8"))
            digest.update(b"\n")
        for prefix, tensors in (("t", self.tensors), ("x", self.extras)):
            for name in sorted(tensors):
                value = tensors[name].detach().cpu().contiguous()
                digest.update(f"{prefix}:{name}:{value.dtype}:{tuple(value.shape)}".encode())
                digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
        return digest.hexdigest()

    # ------------------------------------------------------------ disk format

    def save(self, directory: Path) -> Path:
        """Write the set into `directory` atomically (a temporary folder renamed into place)."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=directory.parent))
        if self.form == "text":
            with open(staging / RECORDS, "w", encoding="utf-8") as handle:
                for record in self.records:
                    handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        tensors = {f"tensor.{k}": v.detach().cpu().contiguous() for k, v in self.tensors.items()}
        tensors |= {f"extra.{k}": v.detach().cpu().contiguous() for k, v in self.extras.items()}
        if tensors:
            save_file(tensors, str(staging / TENSORS))
        manifest = dict(self.manifest, task=self.task, method=self.method, form=self.form,
                        backbone=self.backbone, size=len(self), hash=self.content_hash())
        with open(staging / MANIFEST, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True, default=str)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
        return directory

    @classmethod
    def load(cls, directory: Path, verify: bool = True) -> SyntheticSet:
        """Read a set written by `save`; with `verify`, a hash mismatch raises SyntheticSetError."""
        directory = Path(directory)
        manifest_path = directory / MANIFEST
        if not manifest_path.exists():
            raise SyntheticSetError(f"{directory}: no {MANIFEST}; is this a synthetic set folder?")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        records = []
        if manifest["form"] == "text":
            with open(directory / RECORDS, encoding="utf-8") as handle:
                records = [json.loads(line) for line in handle if line.strip()]
        tensors, extras = {}, {}
        if (directory / TENSORS).exists():
            for key, value in load_file(str(directory / TENSORS)).items():
                kind, name = key.split(".", 1)
                (tensors if kind == "tensor" else extras)[name] = value
        stored_hash = manifest.pop("hash", None)
        manifest.pop("size", None)
        synthetic = cls(task=manifest.pop("task"), method=manifest.pop("method"), form=manifest.pop("form"),
                        records=records, tensors=tensors, backbone=manifest.pop("backbone"),
                        extras=extras, manifest=manifest)
        if verify and stored_hash is None:
            raise SyntheticSetError(f"{directory}: manifest.json has no 'hash', so the files cannot be checked; "
                                    f"write the set with SyntheticSet.save, which stores it")
        if verify and synthetic.content_hash() != stored_hash:
            raise SyntheticSetError(f"{directory}: content hash {synthetic.content_hash()[:12]} does not match "
                                    f"the manifest's {stored_hash[:12]}; the files were changed after saving")
        return synthetic

