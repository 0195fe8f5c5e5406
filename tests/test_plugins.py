"""Method plugins through entry points, and the adapter validator on real smoke pools."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import methods
from benchmark.cli import main
from benchmark.plugins import ENTRY_POINT_GROUP, register_entry_points
from benchmark.registry import Registry
from benchmark.validate import NetworkAccessError, block_network, validate_method
from methods.base import Distiller
from tests.broken_methods import RaisingDistiller

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_DIST = "tddbench-example-method"
EXAMPLE_NAME = "example-median-length"
BROKEN_PATH = "tddbench_example_method.broken:BrokenSelection"


@pytest.fixture(scope="module")
def example_installed() -> None:
    try:
        importlib.metadata.distribution(EXAMPLE_DIST)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"the example plugin is not installed; run `.venv/bin/pip install -e "
                    f"examples/{EXAMPLE_DIST}`")


def entry_point(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "benchmark.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


# ---------------------------------------------------------------- entry points

def test_example_plugin_registered(example_installed):
    assert EXAMPLE_NAME in methods.names()
    assert methods.METHODS.source(EXAMPLE_NAME) == f"entry-point:{EXAMPLE_DIST}"


def test_example_plugin_in_installed_group(example_installed):
    found = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert found[EXAMPLE_NAME] == "tddbench_example_method.median_length:MedianLengthSelection"


def test_entry_point_missing_module_skipped(caplog):
    registry: Registry = Registry("method")
    with caplog.at_level(logging.WARNING, logger="benchmark.plugins"):
        scan = register_entry_points(registry, [entry_point("ghost", "no_such_module_xyz:Ghost")])
    assert len(registry) == 0
    assert "ghost = no_such_module_xyz:Ghost" in scan.skipped
    assert "skipped method plugin" in caplog.text
    assert "No module named 'no_such_module_xyz'" in caplog.text


def test_entry_point_not_distiller_skipped(caplog):
    registry: Registry = Registry("method")
    with caplog.at_level(logging.WARNING, logger="benchmark.plugins"):
        scan = register_entry_points(registry, [entry_point("loads", "json:loads")])
    assert len(registry) == 0
    assert "not a subclass of methods.base.Distiller" in scan.skipped["loads = json:loads"]


def test_entry_point_abstract_skipped():
    registry: Registry = Registry("method")
    scan = register_entry_points(registry, [entry_point("base", "methods.base:Distiller")])
    assert len(registry) == 0
    assert "is abstract" in scan.skipped["base = methods.base:Distiller"]


def test_entry_point_name_mismatch_skipped(example_installed):
    registry: Registry = Registry("method")
    value = "tddbench_example_method.median_length:MedianLengthSelection"
    scan = register_entry_points(registry, [entry_point("other-name", value)])
    assert len(registry) == 0
    assert "use the class's `name` as the entry-point name" in scan.skipped[f"other-name = {value}"]


def test_entry_point_duplicate_name_skipped(caplog):
    registry: Registry = Registry("method")
    registry.register("test-raises", object)
    with caplog.at_level(logging.WARNING, logger="benchmark.plugins"):
        scan = register_entry_points(registry, [entry_point("test-raises", "tests.broken_methods:RaisingDistiller")])
    assert registry.get("test-raises") is object
    assert "already registered" in scan.skipped["test-raises = tests.broken_methods:RaisingDistiller"]


def test_entry_point_good_one_loaded():
    registry: Registry = Registry("method")
    scan = register_entry_points(registry, [entry_point("test-raises", "tests.broken_methods:RaisingDistiller")])
    assert registry.get("test-raises") is RaisingDistiller
    assert registry.source("test-raises") == "entry-point:unknown"
    assert scan.loaded == {"test-raises": "entry-point:unknown"}


def test_broken_entry_point_keeps_cli_alive(monkeypatch, capsys, example_installed):
    broken = [entry_point("ghost", "no_such_module_xyz:Ghost")]
    monkeypatch.setattr("benchmark.plugins.importlib.metadata.entry_points", lambda group: broken)
    monkeypatch.setattr(methods, "_plugins_scanned", False)
    code = main(["validate-method", "random", "--tasks", "sst2", "--budgets", "1"])
    assert code == 0
    assert "PASS no network" in capsys.readouterr().out


# ---------------------------------------------------------------- network guard

def test_network_guard_blocks_and_records():
    original = socket.getaddrinfo
    with block_network() as attempts:
        with pytest.raises(NetworkAccessError, match="network access is blocked"):
            socket.getaddrinfo("localhost", 80)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            with pytest.raises(NetworkAccessError, match=r"connect\(\('127.0.0.1', 9\)\)"):
                sock.connect(("127.0.0.1", 9))
    assert len(attempts.calls) == 2
    assert socket.getaddrinfo is original


# ---------------------------------------------------------------- the validator

def test_validator_passes_example(example_installed):
    report = validate_method(methods.get(EXAMPLE_NAME))
    assert report.passed, [str(c) for c in report.failures]
    for name in ("metadata", "hyperparameters", "budget", "pool unchanged", "same seed", "no network"):
        assert report.outcome_of(name) == "PASS"
    assert report.outcome_of("cost") == "INFO"
    budget_checks = [c.name for c in report.checks if c.name.startswith("budget ")]
    assert budget_checks == ["budget sst2 1", "budget sst2 2", "budget sst2 5",
                             "budget rte 1", "budget rte 2", "budget rte 5"]


def test_validator_fails_broken_adapter(example_installed):
    from tddbench_example_method.broken import BrokenSelection

    report = validate_method(BrokenSelection)
    assert not report.passed
    assert report.outcome_of("hyperparameters") == "FAIL"
    assert report.outcome_of("budget") == "FAIL"
    assert report.outcome_of("same seed") == "FAIL"
    assert report.outcome_of("no network") == "FAIL"
    assert report.outcome_of("metadata") == "PASS"
    assert report.outcome_of("pool unchanged") == "PASS"
    assert report.outcome_of("other seed") == "INFO"
    network = next(c for c in report.checks if c.name == "no network")
    assert "127.0.0.1" in network.detail


class PositionalParams(Distiller):
    name = "test-positional"
    category = "selection"
    description = "Takes a positional hyperparameter."

    def __init__(self, k: int = 1) -> None:
        self.k = k

    def distill(self, pool, budget, seed, context):
        raise AssertionError("unreachable: the validator stops at the constructor")


class ForgetsParam(Distiller):
    name = "test-forgets-param"
    category = "selection"
    description = "Does not store its hyperparameter."

    def __init__(self, *, k: int = 1) -> None:
        pass

    def distill(self, pool, budget, seed, context):
        raise AssertionError("unreachable: the validator stops at get_params()")


class ReturnsList(Distiller):
    name = "test-returns-list"
    category = "selection"
    description = "Returns a list instead of a SyntheticSet."

    def __init__(self) -> None:
        pass

    def distill(self, pool, budget, seed, context):
        return list(pool.records[:2])


class EmptyDescription(ReturnsList):
    name = "test-no-description"
    category = "magic"
    description = ""


def test_validator_rejects_positional_params():
    report = validate_method(PositionalParams, budgets=(1,))
    assert report.outcome_of("hyperparameters") == "FAIL"
    assert "must be keyword-only" in report.failures[0].detail
    with pytest.raises(KeyError, match="no check called 'budget'"):
        report.outcome_of("budget")


def test_validator_rejects_unstored_param():
    report = validate_method(ForgetsParam, budgets=(1,))
    assert report.outcome_of("hyperparameters") == "FAIL"
    assert "store every constructor argument as an attribute" in report.failures[0].detail


def test_validator_reports_distill_error():
    report = validate_method(RaisingDistiller, task_names=("sst2",), budgets=(1,))
    budget = next(c for c in report.checks if c.name == "budget sst2 1")
    assert budget.outcome == "FAIL"
    assert "RuntimeError: deliberate failure inside distill" in budget.detail
    assert report.outcome_of("same seed") == "FAIL"


def test_validator_rejects_wrong_return_type():
    report = validate_method(ReturnsList, task_names=("sst2",), budgets=(1,))
    assert report.outcome_of("budget") == "FAIL"
    assert "must return a SyntheticSet" in report.failures[0].detail


def test_validator_rejects_bad_metadata():
    report = validate_method(EmptyDescription, task_names=("sst2",), budgets=(1,))
    metadata = next(c for c in report.checks if c.name == "metadata")
    assert metadata.outcome == "FAIL"
    assert "category 'magic'" in metadata.detail
    assert "`description` is empty" in metadata.detail


def test_validator_no_applicable_task(example_installed):
    from tddbench_example_method.broken import BrokenSelection

    report = validate_method(BrokenSelection, task_names=("xquad_en",), budgets=(2,))
    assert report.outcome_of("tasks") == "FAIL"
    assert report.outcome_of("skipped") == "INFO"


def test_validator_empty_budgets_rejected():
    with pytest.raises(ValueError, match="budgets is empty"):
        validate_method(ReturnsList, budgets=())


def test_validator_other_seed_is_info_only():
    # Returning the first rows of each class ignores the seed; that is allowed.
    class FirstRows(ReturnsList):
        name = "test-first-rows"

        def distill(self, pool, budget, seed, context):
            chosen = [int(i) for rows in pool.indices_by_class().values() for i in rows[: budget.value]]
            return self.text_set(pool, pool.subset(chosen))

    report = validate_method(FirstRows, task_names=("sst2",), budgets=(1, 2))
    assert report.passed
    other = next(c for c in report.checks if c.name == "other seed sst2")
    assert other.outcome == "INFO"
    assert "give the same set" in other.detail


# ---------------------------------------------------------------- the command

def test_cli_validate_example_exit_zero(example_installed):
    result = run_cli("validate-method", EXAMPLE_NAME)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"(source: entry-point:{EXAMPLE_DIST})" in result.stdout
    assert "PASS budget rte 5" in result.stdout
    assert "0 failed" in result.stdout


def test_cli_validate_broken_exit_one(example_installed):
    result = run_cli("validate-method", "example-broken", "--method-path", BROKEN_PATH)
    assert result.returncode == 1
    assert "FAIL hyperparameters" in result.stdout
    assert "FAIL no network" in result.stdout
    assert "FAIL same seed sst2" in result.stdout


def test_cli_unknown_method():
    with pytest.raises(SystemExit, match="unknown method 'no-such-method'"):
        main(["validate-method", "no-such-method"])


def test_cli_bad_pool_limit():
    with pytest.raises(SystemExit, match="--pool-limit 0 is invalid"):
        main(["validate-method", "random", "--pool-limit", "0"])


def test_cli_bad_method_path():
    with pytest.raises(SystemExit, match="use MODULE:CLASS"):
        main(["validate-method", "random", "--method-path", "no_colon_here"])
