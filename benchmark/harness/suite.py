"""Suites: YAML files that fix a benchmark grid (tasks, methods, budgets, learners, seeds, limits)."""

from __future__ import annotations

import dataclasses
import re
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
        """Return whether `learner` scores the sets of `method` in this suite."""
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


# A suite name becomes a folder under the results directory, so it may not contain path separators.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
TIERS = ("smoke", "quick", "standard")
_SEED_FIELDS = ("distill_seeds", "random_seeds", "train_seeds")
_LIMIT_FIELDS = ("pool_limit", "test_limit", "extra_eval_limit")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_values(raw: dict[str, Any], where: str) -> None:
    """Reject empty grids, negative seeds, non-positive budgets, limits and timeouts, and bad names."""
    if "tier" in raw and raw["tier"] not in TIERS:
        raise SuiteError(f"{where}: tier {raw['tier']!r} is invalid; use one of {', '.join(TIERS)}")
    if "name" in raw and not (isinstance(raw["name"], str) and _NAME.fullmatch(raw["name"])):
        raise SuiteError(f"{where}: name {raw['name']!r} is invalid; use letters, digits, '.', '_' and '-' "
                         f"(it names the folder of the suite's records)")
    for key in ("tasks", "methods", "learners", "distill_seeds", "train_seeds", "tracks"):
        if key in raw and not raw[key]:
            raise SuiteError(f"{where}: {key} is empty; list at least one value")
    for key in _SEED_FIELDS:
        for seed in raw.get(key) or ():
            if not _is_int(seed) or seed < 0:
                raise SuiteError(f"{where}: {key} contains {seed!r}; seeds are non-negative integers")
    for unit, values in raw.get("budgets", {}).items():
        if not values or not all(_is_int(v) and v > 0 for v in values):
            raise SuiteError(f"{where}: budgets.{unit} is {list(values)}; give positive integers such as [1, 10]")
    for key in _LIMIT_FIELDS:
        value = raw.get(key)
        if value is not None and (not _is_int(value) or value < 1):
            raise SuiteError(f"{where}: {key} is {value!r}; give a positive number of rows, or leave it out "
                             f"to use the whole split")
    for key in ("distill_timeout_s", "train_timeout_s"):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise SuiteError(f"{where}: {key} is {value!r}; give a positive number of seconds")
    overrides = raw.get("task_overrides")
    if overrides is not None and not (isinstance(overrides, dict)
                                      and all(isinstance(v, dict) for v in overrides.values())):
        raise SuiteError(f"{where}: task_overrides must map a task name to a mapping of fields, "
                         f"e.g. {{sst2: {{budgets: {{per_class: [1, 10]}}}}}}; got {overrides!r}")


def parse_suite(raw: dict[str, Any], where: str) -> Suite:
    if not isinstance(raw, dict):
        raise SuiteError(f"{where}: a suite is a mapping of fields (name, tier, tasks, ...); got a "
                         f"{type(raw).__name__}")
    allowed = {f.name for f in dataclasses.fields(Suite)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise SuiteError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    raw = dict(raw)
    for key in _TUPLE_FIELDS:
        if raw.get(key) is not None:
            if not isinstance(raw[key], (list, tuple)):
                raise SuiteError(f"{where}: {key} must be a list, e.g. {key}: [{raw[key]!r}]; got {raw[key]!r}")
            raw[key] = tuple(raw[key])
    budgets = raw.get("budgets") or {}
    if not isinstance(budgets, dict) or not all(isinstance(v, (list, tuple)) for v in budgets.values()):
        raise SuiteError(f"{where}: budgets must map a unit to a list, e.g. {{per_class: [1, 10]}}; got {budgets!r}")
    raw["budgets"] = {unit: tuple(values) for unit, values in budgets.items()}
    _check_values(raw, where)
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
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle) or {}
    except yaml.YAMLError as error:
        raise SuiteError(f"{path}: not valid YAML ({error}); fix the syntax at the position shown") from None
    return parse_suite(raw, str(path))
