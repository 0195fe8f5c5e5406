"""Check that a method adapter keeps the adapter contract, on small real pools of the smoke tasks.

The checks cover the class metadata and the hyperparameters, which the constructor must store
unchanged (get_params round trip). For every budget of a small grid, the returned set must pass
`benchmark.budget.check_set` (budget, output schema, label ids) and the pool must stay unmodified.
The same seed must give the same set, and distillation must not access the network. Whether
different seeds give different sets, and the runtime and peak memory of each distillation, are
reported without passing or failing.
"""

from __future__ import annotations

import inspect
import logging
import socket
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import tasks
from benchmark.budget import check_set
from benchmark.cost import Cost, measure
from benchmark.encoder import shared_encoder
from benchmark.harness.cell import limit_records
from benchmark.harness.timeout import time_limit
from benchmark.synthetic import SyntheticSet
from methods.base import Budget, Category, DistillContext, Distiller, Pool, Track
from tasks.data import fingerprint_records
from tasks.spec import TaskSpec

logger = logging.getLogger(__name__)

Outcome = Literal["PASS", "FAIL", "INFO"]

SMOKE_TASKS = ("sst2", "rte")
SMOKE_BUDGETS = (1, 2, 5)
SMOKE_POOL_LIMIT = 200
DISTILL_TIMEOUT_S = 600.0


class NetworkAccessError(OSError):
    """Raised inside distill() when a method tries to open a network connection during validation."""


@dataclass(frozen=True)
class CheckResult:
    """One line of the validation report: the check's name, its outcome and the reason."""

    name: str
    outcome: Outcome
    detail: str

    def __str__(self) -> str:
        return f"{self.outcome} {self.name}: {self.detail}"


@dataclass
class ValidationReport:
    """Every check run on one method adapter, in the order they ran."""

    method: str
    checks: list[CheckResult] = field(default_factory=list)

    def add(self, name: str, outcome: Outcome, detail: str) -> None:
        self.checks.append(CheckResult(name, outcome, detail))
        logger.debug("validate %s: %s %s: %s", self.method, outcome, name, detail)

    @property
    def failures(self) -> list[CheckResult]:
        return [check for check in self.checks if check.outcome == "FAIL"]

    @property
    def passed(self) -> bool:
        return not self.failures

    def outcome_of(self, name: str) -> Outcome:
        """Worst outcome among checks called `name` or starting with `name` and a space."""
        matching = [c.outcome for c in self.checks if c.name == name or c.name.startswith(f"{name} ")]
        if not matching:
            raise KeyError(f"no check called {name!r}; checks run: {sorted({c.name for c in self.checks})}")
        if "FAIL" in matching:
            return "FAIL"
        if "PASS" in matching:
            return "PASS"
        return "INFO"


# ---------------------------------------------------------------- network guard

@dataclass
class NetworkAttempts:
    """Network calls a method made while the guard was active, as `call(target)` strings."""

    calls: list[str] = field(default_factory=list)


@contextmanager
def block_network() -> Iterator[NetworkAttempts]:
    """Record and reject name lookups and socket connections made inside the block.

    It patches `socket.getaddrinfo` and the connect methods of `socket.socket`, which cover
    urllib, requests, http.client and huggingface_hub. NOTE: C extensions that open sockets
    without going through Python's socket module are not seen.
    """
    attempts = NetworkAttempts()
    originals = {"getaddrinfo": socket.getaddrinfo, "connect": socket.socket.connect,
                 "connect_ex": socket.socket.connect_ex}

    def reject(call: str, target: Any) -> NetworkAccessError:
        attempts.calls.append(f"{call}({target!r})")
        return NetworkAccessError(f"network access is blocked while a method is validated: {call}({target!r})")

    def getaddrinfo(host, port, *args, **kwargs):
        raise reject("getaddrinfo", (host, port))

    def connect(self, address):
        if self.family == socket.AF_UNIX:
            return originals["connect"](self, address)
        raise reject("connect", address)

    def connect_ex(self, address):
        if self.family == socket.AF_UNIX:
            return originals["connect_ex"](self, address)
        raise reject("connect_ex", address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    try:
        yield attempts
    finally:
        socket.getaddrinfo = originals["getaddrinfo"]
        socket.socket.connect = originals["connect"]
        socket.socket.connect_ex = originals["connect_ex"]


# ---------------------------------------------------------------- single checks

def check_metadata(cls: type[Distiller], report: ValidationReport) -> None:
    problems = []
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        problems.append("class attribute `name` must be a non-empty string")
    if getattr(cls, "category", None) not in get_args(Category):
        problems.append(f"category {getattr(cls, 'category', None)!r} is not one of {get_args(Category)}")
    if cls.form not in ("text", "embeddings"):
        problems.append(f"form {cls.form!r} is not 'text' or 'embeddings'")
    bad_tracks = [t for t in cls.tracks if t not in get_args(Track)]
    if not cls.tracks or bad_tracks:
        problems.append(f"tracks {list(cls.tracks)} must be a non-empty subset of {get_args(Track)}")
    bad_families = [f for f in cls.families if f not in ("classification", "nli", "qa", "instruction")]
    if bad_families:
        problems.append(f"families {bad_families} are unknown")
    if not inspect.cleandoc(cls.description or ""):
        problems.append("class attribute `description` is empty; describe the method in a paragraph")
    if problems:
        report.add("metadata", "FAIL", "; ".join(problems))
    else:
        report.add("metadata", "PASS", f"name {cls.name!r}, category {cls.category}, form {cls.form}, "
                                       f"tracks {list(cls.tracks)}, families {list(cls.families)}")


def check_params(cls: type[Distiller], tier: str, report: ValidationReport) -> Distiller | None:
    """Build the adapter for `tier` and check the scikit-learn constructor convention."""
    signature = inspect.signature(cls.__init__)
    positional = [p.name for p in signature.parameters.values()
                  if p.name != "self" and p.kind not in (p.KEYWORD_ONLY, p.VAR_KEYWORD)]
    if positional:
        report.add("hyperparameters", "FAIL", f"constructor parameters {positional} must be keyword-only "
                                              f"(declare them after `*`) so get_params() sees them")
        return None
    try:
        method = cls.for_tier(tier)
    except Exception as error:  # a broken constructor is the finding, not a crash of the validator
        report.add("hyperparameters", "FAIL", f"building the {tier!r} tier adapter failed: "
                                              f"{type(error).__name__}: {error}")
        return None
    try:
        params = method.get_params()
    except AttributeError as error:
        report.add("hyperparameters", "FAIL", f"get_params() failed ({error}); store every constructor "
                                              f"argument as an attribute of the same name")
        return None

    expected = {**{name: p.default for name, p in signature.parameters.items()
                   if p.kind == p.KEYWORD_ONLY and p.default is not p.empty},
                **cls.tier_params.get(tier, {})}
    changed = {name: (expected[name], params[name]) for name in expected
               if name in params and not _same(params[name], expected[name])}
    if changed:
        shown = ", ".join(f"{name}: passed {given!r}, stored {stored!r}" for name, (given, stored) in changed.items())
        report.add("hyperparameters", "FAIL", f"the constructor changed hyperparameters ({shown}); store each "
                                              f"argument unchanged and convert it inside distill()")
        return method
    try:
        rebuilt = cls(**params).get_params()
    except Exception as error:
        report.add("hyperparameters", "FAIL", f"cls(**get_params()) failed: {type(error).__name__}: {error}")
        return method
    if not _same(rebuilt, params):
        report.add("hyperparameters", "FAIL", f"get_params() does not round-trip: {params!r} became {rebuilt!r}")
        return method
    report.add("hyperparameters", "PASS", f"get_params() round-trips {params!r}")
    return method


def _same(left: Any, right: Any) -> bool:
    try:
        return bool(left == right)
    except Exception:  # array-valued parameters compare element-wise
        return repr(left) == repr(right)


# ---------------------------------------------------------------- distillation runs

@dataclass
class DistillRun:
    """One guarded distillation: the set (or the error), its cost and the network calls it made."""

    synthetic: SyntheticSet | None
    cost: Cost
    error: str | None = None


def smoke_pool(task: TaskSpec, pool_limit: int) -> Pool:
    data = tasks.load(task.name)
    records = limit_records(data.pool.records, pool_limit, task)
    return Pool(task, records, fingerprint=f"{data.fingerprint}:{pool_limit}")


def run_distill(cls: type[Distiller], tier: str, pool: Pool, budget: Budget, seed: int,
                attempts: NetworkAttempts, timeout_s: float) -> DistillRun:
    """Build a fresh adapter as the harness does and distill once, under the network guard."""
    task = pool.task
    encoder = shared_encoder(max_length=min(task.max_length, 256))
    context = DistillContext(seed=seed, logger=logging.getLogger(f"methods.{cls.name}"), embed=encoder.encode,
                             tier=tier)
    synthetic = None
    error = None
    with measure() as cost, block_network() as guard:
        try:
            method = cls.for_tier(tier)
            with time_limit(timeout_s, f"method {cls.name!r} on {task.name}"):
                synthetic = method.distill(pool, budget, seed, context)
        except Exception as caught:  # the validator reports a crash as a failed check
            error = f"{type(caught).__name__}: {caught}"
    attempts.calls.extend(guard.calls)
    if error is None and not isinstance(synthetic, SyntheticSet):
        error = f"distill() returned {type(synthetic).__name__}; it must return a SyntheticSet"
        synthetic = None
    return DistillRun(synthetic, cost, error)


def check_budgets(cls: type[Distiller], tier: str, pool: Pool, budgets: Sequence[int],
                  attempts: NetworkAttempts, timeout_s: float, report: ValidationReport) -> list[DistillRun]:
    task = pool.task
    pool_before = fingerprint_records(pool.records)
    # A class of the capped pool that is smaller than the budget may be returned whole.
    class_sizes = Counter(r[task.label_field] for r in pool.records) if task.label_field else None
    runs = []
    for value in budgets:
        budget = Budget(value, task.budget_unit)
        run = run_distill(cls, tier, pool, budget, 0, attempts, timeout_s)
        runs.append(run)
        name = f"budget {task.name} {value}"
        if run.error:
            report.add(name, "FAIL", f"distill() failed at budget {budget}: {run.error}")
            continue
        try:
            stats = check_set(run.synthetic, task, budget, cls.name, pool_class_sizes=class_sizes)
        except Exception as error:  # BudgetError, or a set too malformed to check: both fail the check
            report.add(name, "FAIL", f"{type(error).__name__}: {error}")
            continue
        report.add(name, "PASS", f"{len(run.synthetic)} examples within {budget}, accepted by check_set "
                                 f"({_stats_text(stats)})")
    if fingerprint_records(pool.records) != pool_before:
        report.add(f"pool unchanged {task.name}", "FAIL", "distill() modified the pool's records; copy rows "
                                                          "before editing them (Pool.subset returns copies)")
    else:
        report.add(f"pool unchanged {task.name}", "PASS", "the pool's records are unchanged after distill()")
    return runs


def _stats_text(stats: Any) -> str:
    tokens, size = getattr(stats, "tokens", None), getattr(stats, "bytes", None)
    parts = [f"{tokens} tokens" if tokens is not None else "", f"{size} bytes" if size is not None else ""]
    return ", ".join(p for p in parts if p) or "no size statistics"


def check_seeds(cls: type[Distiller], tier: str, pool: Pool, budget_value: int, first: SyntheticSet | None,
                attempts: NetworkAttempts, timeout_s: float, report: ValidationReport) -> None:
    """Same seed must give the same content hash; a different seed is reported only."""
    task = pool.task
    budget = Budget(budget_value, task.budget_unit)
    if first is None:
        report.add(f"same seed {task.name}", "FAIL", f"no set at budget {budget} to compare (distill failed)")
        return
    again = run_distill(cls, tier, pool, budget, 0, attempts, timeout_s)
    if again.error:
        report.add(f"same seed {task.name}", "FAIL", f"second distill() with seed 0 failed: {again.error}")
        return
    first_hash, again_hash = first.content_hash(), again.synthetic.content_hash()
    if first_hash == again_hash:
        report.add(f"same seed {task.name}", "PASS", f"seed 0 twice gives hash {first_hash[:12]}")
    else:
        report.add(f"same seed {task.name}", "FAIL",
                   f"seed 0 gave hashes {first_hash[:12]} and {again_hash[:12]}; derive all randomness "
                   f"from `seed` (context.rng, context.torch_generator())")
    other = run_distill(cls, tier, pool, budget, 1, attempts, timeout_s)
    if other.error:
        report.add(f"other seed {task.name}", "FAIL", f"distill() with seed 1 failed: {other.error}")
        return
    differs = other.synthetic.content_hash() != first_hash
    report.add(f"other seed {task.name}", "INFO", "seeds 0 and 1 give different sets" if differs
               else "seeds 0 and 1 give the same set (allowed: the method may be deterministic)")


def check_network(attempts: NetworkAttempts, report: ValidationReport) -> None:
    if attempts.calls:
        shown = ", ".join(sorted(set(attempts.calls))[:5])
        report.add("no network", "FAIL", f"{len(attempts.calls)} network call(s) during distill(), e.g. {shown}; "
                                         f"a method must read only the pool and locally installed models")
    else:
        report.add("no network", "PASS", "no name lookup or socket connection during distill()")


def report_cost(task: TaskSpec, runs: list[DistillRun], report: ValidationReport) -> None:
    if not runs:
        return
    wall = [run.cost.wall_time_s for run in runs]
    peak = max(run.cost.peak_memory_mb for run in runs)
    report.add(f"cost {task.name}", "INFO", f"{len(runs)} distillation(s), one per budget: {sum(wall):.2f} s in total, "
                                            f"{max(wall):.2f} s at most; peak RSS {peak:.0f} MiB")


# ---------------------------------------------------------------- the whole validation

def validate_method(cls: type[Distiller], task_names: Sequence[str] = SMOKE_TASKS,
                    budgets: Sequence[int] = SMOKE_BUDGETS, pool_limit: int = SMOKE_POOL_LIMIT,
                    tier: str = "smoke", timeout_s: float = DISTILL_TIMEOUT_S) -> ValidationReport:
    """Run every contract check of `cls` on `task_names`, each pool capped at `pool_limit` rows.

    `budgets` are in each task's own unit (per class or in total). The seed checks use the middle
    budget. Nothing is written to disk except the shared embedding cache.
    """
    if not budgets:
        raise ValueError("budgets is empty; pass at least one budget, e.g. (1, 2, 5)")
    report = ValidationReport(getattr(cls, "name", cls.__name__))
    check_metadata(cls, report)
    if check_params(cls, tier, report) is None:
        return report

    specs = [tasks.get(name) for name in task_names]
    applicable = [task for task in specs if task.family in cls.families]
    for task in specs:
        if task not in applicable:
            report.add(f"skipped {task.name}", "INFO", f"the method handles {list(cls.families)}, "
                                                       f"not the {task.family} family")
    if not applicable:
        report.add("tasks", "FAIL", f"none of the tasks {list(task_names)} is of a family the method handles "
                                    f"({list(cls.families)}); pass --tasks with one that is")
        return report

    attempts = NetworkAttempts()
    seed_budget = sorted(budgets)[len(budgets) // 2]
    for task in applicable:
        pool = smoke_pool(task, pool_limit)
        runs = check_budgets(cls, tier, pool, budgets, attempts, timeout_s, report)
        first = runs[list(budgets).index(seed_budget)].synthetic
        check_seeds(cls, tier, pool, seed_budget, first, attempts, timeout_s, report)
        report_cost(task, runs, report)
    check_network(attempts, report)
    logger.info("validated method %s: %d checks, %d failed", report.method, len(report.checks), len(report.failures))
    return report
