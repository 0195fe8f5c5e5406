"""The harness end to end on real data: smoke suite, resume after SIGKILL, failure isolation, Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from benchmark.leaderboard import build_leaderboard
from benchmark.harness.records import ResultRecord
from benchmark.harness.runner import build_cells, run_suite
from benchmark.harness.suite import SuiteError, load_suite, parse_suite

REPO = Path(__file__).resolve().parent.parent


def records(results: Path, suite: str = "smoke") -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((results / suite / "records").glob("*.json"))}


def smoke_keys() -> set[str]:
    return {cell.record_key(run) for cell in build_cells(load_suite("smoke")) for run in cell.runs}


def run_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "benchmark.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_grid_expands_cells_and_runs():
    suite = load_suite("smoke")
    cells = build_cells(suite)
    # random has 2 draws, herding 1, full 1 (no budget): 4 cells of 2 learners each
    assert [c.label for c in cells] == ["sst2/random/b2/d0", "sst2/random/b2/d1", "sst2/herding/b2/d0",
                                        "sst2/full/full/d0"]
    assert all(len(c.runs) == 2 for c in cells)


def test_task_override_applies():
    suite = load_suite("quick")
    cells = [c for c in build_cells(suite) if c.task == "xquad_en"]
    assert {c.method for c in cells} == {"random", "kmeans", "full"}
    assert all(run.learner == "minilm-finetune" for c in cells for run in c.runs)


def test_learner_methods_limit_a_learner():
    cells = [c for c in build_cells(load_suite("quick")) if c.task == "sst2"]
    fine_tuned = {c.method for c in cells if any(run.learner == "minilm-finetune" for run in c.runs)}
    assert fine_tuned == {"random", "full", "distribution-matching-minilm", "attention-labels",
                          "attention-labels+random-inputs"}
    herding = next(c for c in cells if c.method == "herding")
    assert {run.learner for run in herding.runs} == {"tfidf-logreg", "minilm-probe", "textcnn-glove"}


def test_learner_methods_must_name_a_suite_learner(tmp_path):
    suite = load_suite("smoke").replace(learner_methods={"minilm-finetune": ["random"]})
    with pytest.raises(SuiteError, match="learner_methods names learner 'minilm-finetune', which no task"):
        run_suite(suite, str(tmp_path))
    override = load_suite("smoke").replace(
        task_overrides={"sst2": {"learner_methods": {"textcnn-glove": ["random"]}}})
    with pytest.raises(SuiteError, match=r"task_overrides\['sst2'\]: learner_methods names learner 'textcnn-glove'"):
        run_suite(override, str(tmp_path))
    with pytest.raises(SuiteError, match="learner_methods must map a learner name to a list"):
        load_suite("smoke").replace(learner_methods={"tfidf-logreg": "random"})


def test_suite_rejects_unknown_field():
    with pytest.raises(SuiteError, match=r"unknown field\(s\) \['learner'\]"):
        parse_suite({"name": "x", "tier": "smoke", "tasks": ["sst2"], "methods": ["random"],
                     "learners": ["tfidf-logreg"], "learner": "x"}, "x.yaml")


SMOKE_FIELDS = {"name": "x", "tier": "smoke", "tasks": ["sst2"], "methods": ["random"], "learners": ["tfidf-logreg"]}


@pytest.mark.parametrize("change, message", [
    ({"name": "../escaped"}, r"name '\.\./escaped' is invalid"),
    ({"name": ""}, "name '' is invalid"),
    ({"tier": "smok"}, "tier 'smok' is invalid; use one of smoke, quick, standard"),
    ({"methods": []}, "methods is empty"),
    ({"methods": "random"}, r"methods must be a list, e.g. methods: \['random'\]"),
    ({"distill_seeds": [-1]}, "distill_seeds contains -1; seeds are non-negative integers"),
    ({"train_seeds": [0.5]}, "train_seeds contains 0.5"),
    ({"budgets": {"per_class": ["two"]}}, r"budgets.per_class is \['two'\]; give positive integers"),
    ({"budgets": {"per_class": [0]}}, "give positive integers"),
    ({"pool_limit": -5}, "pool_limit is -5; give a positive number of rows"),
    ({"test_limit": "abc"}, "test_limit is 'abc'"),
    ({"distill_timeout_s": -1}, "distill_timeout_s is -1; give a positive number of seconds"),
    ({"task_overrides": {"sst2": [1]}}, "task_overrides must map a task name to a mapping of fields"),
])
def test_suite_rejects_bad_values(change, message):
    with pytest.raises(SuiteError, match=message):
        parse_suite({**SMOKE_FIELDS, **change}, "x.yaml")


def test_suite_rejects_non_mapping_and_bad_yaml(tmp_path):
    with pytest.raises(SuiteError, match="a suite is a mapping of fields"):
        parse_suite(["a", "b"], "x.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ntasks: [sst2\n")
    with pytest.raises(SuiteError, match="not valid YAML"):
        load_suite(str(broken))


def test_cli_suite_error_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SMOKE_FIELDS, "methods": ["randon"]}))
    result = run_cli("run", "--suite", str(bad), "--results-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "tddbench run: unknown method 'randon'; did you mean 'random'?" in result.stderr


def test_suite_unknown_name_lists_known():
    with pytest.raises(SuiteError, match=r"suite 'quik' not found; known suites: .*quick"):
        load_suite("quik")


def test_unknown_method_fails_before_compute(tmp_path):
    suite = load_suite("smoke").replace(methods=("randon",))
    with pytest.raises(KeyError, match=r"unknown method 'randon'; did you mean 'random'"):
        run_suite(suite, str(tmp_path))


def test_smoke_suite_end_to_end(tmp_path):
    summary = run_suite(load_suite("smoke"), str(tmp_path))
    assert summary.failed == 0
    found = records(tmp_path)
    assert set(found) == smoke_keys()
    for data in found.values():
        record = ResultRecord.from_dict(data)
        assert record.status == "ok"
        assert 0.0 <= record.scores["accuracy"] <= 1.0
        assert record.provenance["dataset_fingerprint"]
        assert record.provenance["packages"]["torch"]
        assert record.train_cost["wall_time_s"] > 0
        assert record.synthetic_set["hash"]
        if record.method != "full":
            assert record.synthetic_set["size"] == 4  # 2 per class x 2 classes
    # Full data beats two examples per class on the TF-IDF learner.
    full = found["sst2__full__full__d0__tfidf-logreg__t0__standard"]["scores"]["accuracy"]
    random = found["sst2__random__b2__d0__tfidf-logreg__t0__standard"]["scores"]["accuracy"]
    assert full > random

    # Rerun: everything is skipped, no file changes.
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "smoke" / "records").glob("*.json")}
    again = run_suite(load_suite("smoke"), str(tmp_path))
    assert again.skipped == len(before)
    assert again.ok == 0
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "smoke" / "records").glob("*.json")}

    # The leaderboard builds from these records; a set edited after scoring is rejected by name.
    summary = build_leaderboard(tmp_path, tmp_path / "board")
    assert summary.status_counts["ok"] == len(found)
    assert (tmp_path / "board" / "index.html").exists()
    herding = found["sst2__herding__b2__d0__tfidf-logreg__t0__standard"]
    records_file = Path(herding["synthetic_set"]["path"]) / "records.jsonl"
    records_file.write_text(records_file.read_text().replace("a", "e", 1))
    tampered = build_leaderboard(tmp_path, tmp_path / "board2")
    assert tampered.status_counts["ok"] == len(found) - 2  # both learners scored the herding set
    assert any("sst2__herding__b2__d0__tfidf-logreg__t0__standard" in w for w in tampered.warnings)


def test_killed_run_resumes_without_loss_or_duplicates(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "benchmark.cli", "run", "--suite", "smoke", "--results-dir", str(tmp_path)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records_dir = tmp_path / "smoke" / "records"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len(list(records_dir.glob("*.json"))) < 3:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = set(records(tmp_path))
    assert 0 < len(partial) < len(smoke_keys())

    result = run_cli("run", "--suite", "smoke", "--results-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    final = records(tmp_path)
    assert set(final) == smoke_keys()
    assert all(r["status"] == "ok" for r in final.values())
    assert not list(records_dir.glob(".tmp-*.json"))
    assert f"{len(partial)} already recorded" in result.stdout


def failure_suite(tmp_path: Path) -> Path:
    raw = load_suite("smoke").to_dict() | {
        "name": "failing", "methods": ["random", "test-raises", "test-hangs", "test-over-budget"],
        "learners": ["tfidf-logreg"], "random_seeds": None, "distill_timeout_s": 3,
    }
    path = tmp_path / "failing.yaml"
    path.write_text(yaml.safe_dump({k: (list(v) if isinstance(v, tuple) else v) for k, v in raw.items()}))
    return path


def test_raising_and_hanging_methods_become_failure_records(tmp_path):
    suite_path = failure_suite(tmp_path)
    paths = ["tests.broken_methods:RaisingDistiller", "tests.broken_methods:HangingDistiller",
             "tests.broken_methods:OverBudgetDistiller"]
    args = ["run", "--suite", str(suite_path), "--results-dir", str(tmp_path / "out")]
    for path in paths:
        args += ["--method-path", path]
    result = run_cli(*args)
    assert result.returncode == 1
    found = records(tmp_path / "out", "failing")
    by_method = {r["method"]: r for r in found.values()}
    assert by_method["random"]["status"] == "ok"
    assert by_method["test-raises"]["status"] == "failed"
    assert by_method["test-raises"]["error"]["type"] == "RuntimeError"
    assert "deliberate failure" in by_method["test-raises"]["error"]["message"]
    assert by_method["test-hangs"]["status"] == "failed"
    assert by_method["test-hangs"]["error"]["type"] == "CellTimeoutError"
    assert "time limit of 3 s" in by_method["test-hangs"]["error"]["message"]
    assert by_method["test-over-budget"]["status"] == "failed"
    assert by_method["test-over-budget"]["error"]["type"] == "BudgetError"
    assert "FAILED sst2/test-raises/b2/d0" in result.stdout

    # A plain rerun keeps the failure records and prints how to retry them.
    again = run_cli(*args)
    assert "3 of the already recorded runs are failures" in again.stdout
    assert "--overwrite failed" in again.stdout

    # --overwrite failed retries only the failed records.
    before = {k: v["created_at"] for k, v in found.items()}
    time.sleep(1.1)
    retry = run_cli(*args, "--overwrite", "failed", "--methods", "random,test-raises")
    assert retry.returncode == 1
    after = records(tmp_path / "out", "failing")
    random_key = next(k for k, v in after.items() if v["method"] == "random")
    raises_key = next(k for k, v in after.items() if v["method"] == "test-raises")
    assert after[random_key]["created_at"] == before[random_key]
    assert after[raises_key]["created_at"] != before[raises_key]


def test_missing_task_data_fails_only_its_cells(tmp_path):
    # ag_news has no train split in the local mirror, so its cells cannot load their data.
    suite = load_suite("smoke").replace(name="missing", tasks=("ag_news", "sst2"), methods=("random",),
                                        learners=("tfidf-logreg",), random_seeds=None)
    summary = run_suite(suite, str(tmp_path))
    assert summary.ok == 1
    assert summary.failed == 1
    by_task = {r["task"]: r for r in records(tmp_path, "missing").values()}
    assert by_task["sst2"]["status"] == "ok"
    assert by_task["ag_news"]["status"] == "failed"
    assert by_task["ag_news"]["error"]["type"] == "MissingDataError"


def test_tampered_cached_set_is_distilled_again(tmp_path):
    from benchmark.synthetic import SyntheticSet

    suite = load_suite("smoke").replace(name="tamper", methods=("herding",), learners=("tfidf-logreg",),
                                        random_seeds=None)
    run_suite(suite, str(tmp_path))
    (set_dir,) = (tmp_path / "tamper" / "sets" / "sst2" / "herding").iterdir()
    original = SyntheticSet.load(set_dir)
    grown = SyntheticSet(task=original.task, method=original.method, form=original.form,
                         records=original.records * 3, manifest=original.manifest)
    grown.save(set_dir)  # a valid hash, but three times the budget

    run_suite(suite, str(tmp_path), overwrite="all")
    (record,) = records(tmp_path, "tamper").values()
    assert record["status"] == "ok"
    assert record["synthetic_set"]["size"] == len(original)
    assert SyntheticSet.load(set_dir).content_hash() == original.content_hash()


def test_changed_config_is_reported_not_mixed(tmp_path, caplog):
    suite = load_suite("smoke").replace(name="config", methods=("random",), learners=("tfidf-logreg",),
                                        random_seeds=None)
    run_suite(suite, str(tmp_path))
    with caplog.at_level("WARNING", logger="benchmark.harness.cell"):
        summary = run_suite(suite, str(tmp_path))
    assert summary.skipped == 1
    assert not [r for r in caplog.records if "another configuration" in r.getMessage()]
    with caplog.at_level("WARNING", logger="benchmark.harness.cell"):
        summary = run_suite(suite.replace(pool_limit=100), str(tmp_path))
    assert summary.skipped == 1
    (warning,) = [r.getMessage() for r in caplog.records if "another configuration" in r.getMessage()]
    assert "pool_limit 200 -> 100" in warning
    assert "--overwrite all" in warning


def test_reused_work_counts_in_distillation_cost(tmp_path):
    from benchmark.commands.run import load_method_paths

    paths = load_method_paths(["tests.broken_methods:ReusingDistiller"])
    suite = load_suite("smoke").replace(name="reusing", methods=("test-reuses",), learners=("tfidf-logreg",),
                                        random_seeds=None)
    summary = run_suite(suite, str(tmp_path), method_paths=paths)
    assert summary.failed == 0
    assert summary.ok == 1
    (record,) = records(tmp_path, "reusing").values()
    assert record["distill_cost"]["reused_work_s"] == 30.0
    assert 30.0 <= record["distill_cost"]["wall_time_s"] < 60.0


def test_native_run_of_plain_set_reuses_standard_scores(tmp_path):
    suite = load_suite("smoke").replace(name="tracks", methods=("random",), learners=("tfidf-logreg",),
                                        random_seeds=None, tracks=("standard", "native"))
    summary = run_suite(suite, str(tmp_path))
    assert summary.failed == 0
    assert summary.ok == 2
    found = records(tmp_path, "tracks")
    by_track = {r["track"]: r for r in found.values()}
    standard_key = next(key for key, r in found.items() if r["track"] == "standard")
    assert by_track["native"]["scores"] == by_track["standard"]["scores"]
    assert by_track["native"]["train_cost"]["reused_from"] == standard_key
    assert "reused_from" not in by_track["standard"]["train_cost"]


@pytest.mark.slow
def test_ray_executor_matches_local(tmp_path):
    local = tmp_path / "local"
    remote = tmp_path / "ray"
    suite = load_suite("smoke").replace(methods=("random", "herding"), random_seeds=(0,))
    run_suite(suite, str(local))
    summary = run_suite(suite, str(remote), executor="ray", workers=2)
    assert summary.failed == 0
    local_scores = {k: v["scores"] for k, v in records(local).items()}
    ray_scores = {k: v["scores"] for k, v in records(remote).items()}
    assert local_scores and local_scores == ray_scores


def test_process_executor_matches_local(tmp_path):
    suite = load_suite("smoke").replace(methods=("random",), random_seeds=(0,), learners=("tfidf-logreg",))
    run_suite(suite, str(tmp_path / "local"))
    run_suite(suite, str(tmp_path / "process"), executor="process", workers=2)
    local = {k: v["scores"] for k, v in records(tmp_path / "local").items()}
    process = {k: v["scores"] for k, v in records(tmp_path / "process").items()}
    assert local and local == process
