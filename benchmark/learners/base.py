"""The learner contract and versioned training recipes.

A learner trains a fresh model on a synthetic set with a seed and scores it on a split. What it
trains with is fixed by a Recipe; any change to a recipe value gives a new recipe id, and every
result stores the id, so scores from different recipes are never compared.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from benchmark.synthetic import SyntheticSet
from tasks.data import Split
from tasks.spec import TaskSpec

Schedule = Literal["constant", "linear", "cosine"]


@dataclass(frozen=True)
class Recipe:
    """A fixed training recipe for one learner at one scale tier.

    `steps` is the number of optimizer steps on a synthetic set; `full_data_steps` the number
    when training on the whole pool for the full-data reference. `batch_size` is an upper bound:
    a set smaller than it is used as one batch. `options` holds learner-specific values (for
    example TextCNN filter sizes) as sorted (key, value) pairs so the recipe stays hashable.
    """

    learner: str
    tier: str
    model: str
    steps: int
    full_data_steps: int
    lr: float
    batch_size: int
    max_length: int
    optimizer: Literal["adamw", "adam", "sgd", "lbfgs"] = "adamw"
    schedule: Schedule = "linear"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def recipe_id(self) -> str:
        """`learner@tier-hash`, where the hash covers every value of the recipe."""
        payload = json.dumps(asdict(self), sort_keys=True, default=str)
        return f"{self.learner}@{self.tier}-{hashlib.sha256(payload.encode()).hexdigest()[:8]}"

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "options": dict(self.options), "recipe_id": self.recipe_id}


@dataclass
class TrainReport:
    """What one training run cost and did."""

    wall_time_s: float
    peak_memory_mb: float
    tokens: int
    steps: int
    examples: int
    losses: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NotApplicableError(ValueError):
    """Raised when a learner cannot train on a set (another backbone's embeddings, a wrong family)."""


class Learner(ABC):
    """Base class of downstream learners.

    Subclasses declare the task families they handle, whether they read soft labels, and the
    backbone whose embedding sets they accept (None: text sets only).
    """

    name: ClassVar[str]
    families: ClassVar[tuple[str, ...]]
    accepts_soft_labels: ClassVar[bool] = False
    embedding_backbone: ClassVar[str | None] = None
    accepts_text: ClassVar[bool] = True
    recipes: ClassVar[dict[str, Recipe]] = {}
    description: ClassVar[str] = ""

    def __init__(self, task: TaskSpec, recipe: Recipe) -> None:
        if task.family not in self.families:
            raise NotApplicableError(f"learner {self.name!r} handles {list(self.families)}, "
                                     f"not task {task.name!r} of family {task.family!r}")
        self.task = task
        self.recipe = recipe

    @classmethod
    def recipe_for(cls, tier: str) -> Recipe:
        if tier not in cls.recipes:
            raise KeyError(f"learner {cls.name!r} has no recipe for tier {tier!r}; "
                           f"available: {sorted(cls.recipes)}")
        return cls.recipes[tier]

    @classmethod
    def applicability(cls, task: TaskSpec, synthetic: SyntheticSet) -> str | None:
        """None when the learner can train on `synthetic` for `task`, else the reason it cannot."""
        if task.family not in cls.families:
            return f"learner {cls.name} does not handle the {task.family} family"
        if synthetic.form == "embeddings":
            if synthetic.backbone != cls.embedding_backbone:
                return (f"embedding set of backbone {synthetic.backbone} cannot be scored by "
                        f"{cls.name} (accepts {cls.embedding_backbone or 'text only'})")
        elif not cls.accepts_text:
            return f"learner {cls.name} accepts embedding sets only"
        return None

    @abstractmethod
    def fit(self, train: SyntheticSet, seed: int, *, full_data: bool = False,
            native: bool = False) -> TrainReport:
        """Train a fresh model on `train` with `seed`.

        `full_data` selects `recipe.full_data_steps`. With `native`, the learner applies the set's
        extras that it supports (soft labels, learned per-step learning rates); otherwise it trains
        on hard labels with the recipe as written.
        """

    @abstractmethod
    def evaluate(self, split: Split) -> dict[str, float]:
        """Score the trained model on `split`; keys are the task's metric names."""
