"""Task metadata: a validated, declarative description of one benchmark task."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

Family = Literal["classification", "nli", "qa", "instruction"]
BudgetUnit = Literal["per_class", "total"]
Role = Literal["pool", "dev", "test"]

FAMILY_BUDGET_UNIT: dict[str, str] = {
    "classification": "per_class", "nli": "per_class", "qa": "total", "instruction": "total",
}


class TaskSpecError(ValueError):
    """Raised when a task definition is invalid."""


@dataclass(frozen=True)
class SplitRule:
    """How one role (pool, dev or test) is obtained.

    Either `source` names a split of the mirror or Hub dataset, or `carve_from` names an earlier
    role whose rows are divided: `size` rows (or `fraction` of them) are moved out by `seed`,
    stratified by label when `stratify` is set, or whole groups of `group_by` at a time.
    """

    source: str | None = None
    carve_from: Role | None = None
    size: int | None = None
    fraction: float | None = None
    seed: int = 0
    stratify: bool = False
    group_by: str | None = None

    def describe(self) -> str:
        if self.source:
            return f"split {self.source!r}"
        amount = f"{self.size} rows" if self.size is not None else f"{self.fraction:.0%} of rows"
        how = f"whole {self.group_by!r} groups" if self.group_by else (
            "stratified by label" if self.stratify else "uniformly")
        return f"{amount} carved from {self.carve_from} ({how}, seed {self.seed})"


@dataclass(frozen=True)
class ExtraEval:
    """An additional evaluation set scored next to the test split (instruction tasks)."""

    mirror: str
    split: str
    hf_path: str
    hf_config: str | None = None
    hf_revision: str = "main"
    transform: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class TaskSpec:
    name: str
    family: Family
    description: str
    citation: str
    license: str
    hf_path: str
    hf_revision: str
    mirror: str
    input_fields: tuple[str, ...]
    splits: dict[str, SplitRule]
    metrics: tuple[str, ...]
    main_score: str
    budgets: tuple[int, ...]
    max_length: int
    budget_unit: BudgetUnit
    hf_config: str | None = None
    label_field: str | None = None
    label_names: tuple[str, ...] = ()
    target_field: str | None = None
    unlabelled_label: int | None = None
    allow_small_classes: bool = False
    offline_variant_of: str | None = None
    extra_eval: dict[str, ExtraEval] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def is_labelled(self) -> bool:
        return self.label_field is not None

    @property
    def schema_fields(self) -> tuple[str, ...]:
        """Fields a record of this task must carry, in order."""
        extra = (self.label_field,) if self.label_field else ()
        extra += (self.target_field,) if self.target_field else ()
        return self.input_fields + extra


def _reject_unknown(raw: dict[str, Any], cls: type, where: str) -> None:
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise TaskSpecError(f"{where}: unknown field(s) {unknown}; allowed fields are {sorted(allowed)}")
    missing = sorted(
        f.name for f in dataclasses.fields(cls)
        if f.name not in raw and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING)
    if missing:
        raise TaskSpecError(f"{where}: missing required field(s) {missing}")


def _check_split_rules(rules: dict[str, SplitRule], where: str) -> None:
    for role in ("pool", "dev", "test"):
        if role not in rules:
            raise TaskSpecError(f"{where}: splits must define 'pool', 'dev' and 'test'; {role!r} is missing")
    for role, rule in rules.items():
        if role not in get_args(Role):
            raise TaskSpecError(f"{where}: unknown split role {role!r}; use pool, dev or test")
        if (rule.source is None) == (rule.carve_from is None):
            raise TaskSpecError(f"{where}: split {role!r} needs exactly one of 'source' or 'carve_from'")
        if rule.carve_from is not None:
            if (rule.size is None) == (rule.fraction is None):
                raise TaskSpecError(f"{where}: carved split {role!r} needs exactly one of 'size' or 'fraction'")
            if rule.carve_from not in rules or rule.carve_from == role:
                raise TaskSpecError(f"{where}: split {role!r} is carved from {rule.carve_from!r}, "
                                    f"which is not another defined role")
    if rules["pool"].carve_from is not None:
        raise TaskSpecError(f"{where}: the pool must come from a source split; carve dev and test from it")


def parse_task(raw: dict[str, Any], where: str) -> TaskSpec:
    """Build a TaskSpec from a parsed YAML mapping, rejecting unknown or inconsistent fields."""
    if not isinstance(raw, dict):
        raise TaskSpecError(f"{where}: expected a mapping of task fields, got {type(raw).__name__}")
    raw = dict(raw)
    raw.setdefault("budget_unit", FAMILY_BUDGET_UNIT.get(raw.get("family", ""), "total"))
    _reject_unknown(raw, TaskSpec, where)

    rules = {}
    for role, rule in (raw.get("splits") or {}).items():
        if not isinstance(rule, dict):
            raise TaskSpecError(f"{where}: split {role!r} must be a mapping, got {rule!r}")
        _reject_unknown(rule, SplitRule, f"{where}: split {role!r}")
        rules[role] = SplitRule(**rule)
    _check_split_rules(rules, where)
    raw["splits"] = rules

    extras = {}
    for name, extra in (raw.get("extra_eval") or {}).items():
        _reject_unknown(extra, ExtraEval, f"{where}: extra_eval {name!r}")
        extras[name] = ExtraEval(**extra)
    raw["extra_eval"] = extras

    for key in ("input_fields", "metrics", "budgets", "label_names"):
        if key in raw:
            raw[key] = tuple(raw[key])
    spec = TaskSpec(**raw)
    _check_consistency(spec, where)
    return spec


def _check_consistency(spec: TaskSpec, where: str) -> None:
    if spec.family not in get_args(Family):
        raise TaskSpecError(f"{where}: family {spec.family!r} is invalid; use one of {get_args(Family)}")
    expected_unit = FAMILY_BUDGET_UNIT[spec.family]
    if spec.budget_unit != expected_unit:
        raise TaskSpecError(f"{where}: budget_unit {spec.budget_unit!r} is invalid for family "
                            f"{spec.family!r}; it must be {expected_unit!r}")
    if spec.family in ("classification", "nli"):
        if not spec.label_field or len(spec.label_names) < 2:
            raise TaskSpecError(f"{where}: family {spec.family!r} needs label_field and at least two label_names")
    elif not spec.target_field:
        raise TaskSpecError(f"{where}: family {spec.family!r} needs target_field")
    if spec.main_score not in spec.metrics:
        raise TaskSpecError(f"{where}: main_score {spec.main_score!r} is not among metrics {list(spec.metrics)}")
    if not spec.budgets or any(b < 1 for b in spec.budgets):
        raise TaskSpecError(f"{where}: budgets must be positive integers, got {list(spec.budgets)}")


def load_task_file(path: Path) -> TaskSpec:
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    spec = parse_task(raw, str(path))
    if spec.name != path.stem:
        raise TaskSpecError(f"{path}: task name {spec.name!r} must match the file name {path.stem!r}")
    return spec
