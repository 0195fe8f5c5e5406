"""The method adapter contract.

A distiller follows the scikit-learn estimator convention: its constructor only stores keyword
hyperparameters, and one method, `distill(pool, budget, seed, context)`, does the work and returns
a SyntheticSet. The harness hands it a Pool, which exposes the train pool and nothing else.
"""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from benchmark.synthetic import Form, SyntheticSet
from tasks.data import Record, joined_text
from tasks.spec import TaskSpec

Category = Literal["selection", "embedding-level", "text-level", "reference"]
Track = Literal["standard", "native"]


@dataclass(frozen=True)
class Budget:
    """How many examples a set may hold: `value` per class, or `value` in total."""

    value: int
    unit: Literal["per_class", "total"]

    def __str__(self) -> str:
        return f"{self.value} {'per class' if self.unit == 'per_class' else 'in total'}"


class Pool:
    """The train pool of one task: the only data a distiller may read.

    It holds the pool rows and the task's metadata; dev and test rows are not reachable from it.
    """

    def __init__(self, task: TaskSpec, records: Sequence[Record], fingerprint: str) -> None:
        self.task = task
        self.records: tuple[Record, ...] = tuple(records)
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.records)

    def texts(self) -> list[str]:
        """Input fields of every row joined by a newline."""
        return [joined_text(self.task, r) for r in self.records]

    @property
    def labels(self) -> np.ndarray:
        if not self.task.label_field:
            raise AttributeError(f"task {self.task.name!r} ({self.task.family}) has no labels")
        return np.array([r[self.task.label_field] for r in self.records], dtype=np.int64)

    def indices_by_class(self) -> dict[int, np.ndarray]:
        labels = self.labels
        return {c: np.flatnonzero(labels == c) for c in range(self.task.num_classes)}

    def subset(self, indices: Sequence[int]) -> list[Record]:
        return [dict(self.records[i]) for i in indices]


@dataclass
class DistillContext:
    """Shared services for a distiller: seeded randomness, embeddings, backbones and a logger."""

    seed: int
    logger: logging.Logger
    embed: Callable[[Sequence[str]], np.ndarray]
    tier: str = "quick"
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def rng(self) -> np.random.Generator:
        """A fresh generator seeded by the cell's distillation seed."""
        return np.random.default_rng(self.seed)

    def torch_generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    def pool_embeddings(self, pool: Pool) -> np.ndarray:
        """Unit-length sentence embeddings [len(pool), d] of the pool, cached on disk."""
        return self.embed(pool.texts())


class Distiller(ABC):
    """Base class of every method adapter."""

    name: ClassVar[str]
    category: ClassVar[Category]
    form: ClassVar[Form] = "text"
    tracks: ClassVar[tuple[Track, ...]] = ("standard",)
    families: ClassVar[tuple[str, ...]] = ("classification", "nli")
    requires: ClassVar[tuple[str, ...]] = ()  # backbones or generators the method loads
    citation: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # Hyperparameters per scale tier ("smoke", "quick", "standard"); constructor defaults apply
    # where a tier sets nothing. Subclasses take hyperparameters as keyword-only constructor
    # arguments and store each one unchanged under its own name, as scikit-learn estimators do.
    tier_params: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def param_names(cls) -> list[str]:
        """Keyword hyperparameters of the constructor, as scikit-learn's `get_params` reads them."""
        signature = inspect.signature(cls.__init__)
        return [p.name for p in signature.parameters.values()
                if p.name != "self" and p.kind == p.KEYWORD_ONLY]

    def get_params(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.param_names()}

    @classmethod
    def for_tier(cls, tier: str, **overrides: Any) -> Distiller:
        """Build the adapter with the tier's hyperparameters, then `overrides` on top."""
        params = {**cls.tier_params.get(tier, {}), **overrides}
        unknown = sorted(set(params) - set(cls.param_names()))
        if unknown:
            raise TypeError(f"method {cls.name!r}: unknown hyperparameter(s) {unknown}; "
                            f"accepted: {cls.param_names()}")
        return cls(**params)

    @abstractmethod
    def distill(self, pool: Pool, budget: Budget, seed: int, context: DistillContext) -> SyntheticSet:
        """Return a synthetic set within `budget`, built from `pool` only."""

    # ------------------------------------------------------------ helpers for subclasses

    def text_set(self, pool: Pool, records: list[Record], **manifest: Any) -> SyntheticSet:
        """Wrap records of the pool's schema into a text SyntheticSet with the standard manifest."""
        info = {"label_field": pool.task.label_field, "hyperparameters": self.get_params(), **manifest}
        return SyntheticSet(task=pool.task.name, method=self.name, form="text", records=records, manifest=info)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "category": cls.category, "form": cls.form, "tracks": list(cls.tracks),
                "families": list(cls.families), "requires": list(cls.requires), "citation": cls.citation,
                "description": inspect.cleandoc(cls.description)}
