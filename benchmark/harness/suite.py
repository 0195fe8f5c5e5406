"""Suites: YAML files that fix a benchmark grid (tasks, methods, budgets, learners, seeds, limits)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"


class SuiteError(ValueError):
    """Raised when a suite file or an override is invalid."""


@dataclass(frozen=True)
class Suite:
    """A benchmark grid at one scale tier.

    `budgets` maps a budget unit ("per_class", "total") to its grid; a task uses the grid of its
    unit, or its own default grid when the unit is absent. `pool_limit` and `test_limit` cap the
    pool and the test split by a stratified draw with seed 0 (part of the protocol, stored with
    each result); None uses them whole. `random_seeds` gives the random baseline more draws than
    the other methods. `learner_methods` limits a costly learner to the sets of the listed
    methods (for example fine-tuning only the MiniLM embedding sets and their baselines); a
    learner not named there scores every method. Timeouts are in seconds.
    """

    name: str
    tier: Literal["smoke", "quick", "standard"]
    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    learners: tuple[str, ...]
    budgets: dict[str, tuple[int, ...]] = field(default_factory=dict)
    distill_seeds: tuple[int, ...] = (0,)
    random_seeds: tuple[int, ...] | None = None
    train_seeds: tuple[int, ...] = (0,)
    tracks: tuple[str, ...] = ("standard",)
    pool_limit: int | None = None
    test_limit: int | None = None
    extra_eval_limit: int | None = None
    distill_timeout_s: float = 1800.0
    train_timeout_s: float = 1800.0
    learner_methods: dict[str, tuple[str, ...]] = field(default_factory=dict)
    task_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""

    def scores(self, learner: str, method: str) -> bool:
        """Whether `learner` scores the sets of `method` in this suite."""
        return learner not in self.learner_methods or method in self.learner_methods[learner]

    def for_task(self, task: str) -> Suite:
        """This suite with the task's overrides applied (for example its own learners)."""
        overrides = self.task_overrides.get(task)
        return self.replace(**overrides) if overrides else self

    def replace(self, **changes: Any) -> Suite:
        return parse_suite({**self.to_dict(), **changes}, f"suite {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_TUPLE_FIELDS = ("tasks", "methods", "learners", "distill_seeds", "random_seeds", "train_seeds", "tracks")


def parse_suite(raw: dict[str, Any], where: str) -> Suite:
    allowed = {f.name for f in dataclasses.fields(Suite)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise SuiteError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    raw = dict(raw)
    for key in _TUPLE_FIELDS:
        if raw.get(key) is not None:
            raw[key] = tuple(raw[key])
    raw["budgets"] = {unit: tuple(values) for unit, values in (raw.get("budgets") or {}).items()}
    learner_methods = raw.get("learner_methods") or {}
    if not isinstance(learner_methods, dict) or not all(isinstance(v, (list, tuple)) for v in learner_methods.values()):
        raise SuiteError(f"{where}: learner_methods must map a learner name to a list of method names, "
                         f"e.g. {{minilm-finetune: [random, attention-labels]}}; got {learner_methods!r}")
    raw["learner_methods"] = {learner: tuple(names) for learner, names in learner_methods.items()}
    bad_units = sorted(set(raw["budgets"]) - {"per_class", "total"})
    if bad_units:
        raise SuiteError(f"{where}: budget unit(s) {bad_units} are invalid; use 'per_class' or 'total'")
    bad_tracks = sorted(set(raw.get("tracks", ())) - {"standard", "native"})
    if bad_tracks:
        raise SuiteError(f"{where}: track(s) {bad_tracks} are invalid; use 'standard' or 'native'")
    try:
        return Suite(**raw)
    except TypeError as error:
        raise SuiteError(f"{where}: {error}") from None


def load_suite(name_or_path: str) -> Suite:
    """Load a suite by name (a file in benchmark/suites/) or by path to a YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
        raise SuiteError(f"suite {name_or_path!r} not found; known suites: {', '.join(known)}, "
                         f"or pass the path of a YAML file")
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle) or {}
    return parse_suite(raw, str(path))
