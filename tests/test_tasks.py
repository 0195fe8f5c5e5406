"""Task registry, data loading, validation errors and split carving on the real mirror."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tasks
from benchmark.cli import main
from benchmark.registry import UnknownNameError
from tasks.data import DataError, MissingDataError, joined_text, load_task_data, read_jsonl
from tasks.spec import TaskSpecError, parse_task

ISSUE_TASKS = ["sst2", "ag_news", "trec", "rotten_tomatoes", "imdb", "subj", "sst5", "mnli", "qnli", "qqp",
               "rte", "mrpc", "sick", "xnli_en", "squad", "xquad_en", "alpaca"]


def manifest(data_dir: Path) -> dict:
    return json.loads((data_dir / "MANIFEST.json").read_text())


def available_tasks(data_dir: Path) -> list[str]:
    index = manifest(data_dir)
    found = []
    for name in tasks.names():
        spec = tasks.get(name)
        entry = index.get(spec.mirror, {})
        present = {f["split"] for f in entry.get("files", [])}
        if all(rule.source in present for rule in spec.splits.values() if rule.source):
            found.append(name)
    return found


def test_registry_defines_required_tasks():
    assert set(ISSUE_TASKS) <= set(tasks.names())


def test_unknown_task_names_closest_match():
    with pytest.raises(UnknownNameError, match=r"unknown task 'sst22'; did you mean 'sst2'\? Known tasks: .*trec"):
        tasks.get("sst22")


def test_every_local_task_matches_mirror_sizes(data_dir):
    index = manifest(data_dir)
    loaded = available_tasks(data_dir)
    assert {"sst2", "trec", "rte", "xquad_en", "alpaca", "sick", "xnli_en"} <= set(loaded)
    for name in loaded:
        data = tasks.load(name)
        rows = {f["split"]: f["rows"] for f in index[data.task.mirror]["files"]}
        sources = {role: rule.source for role, rule in data.task.splits.items() if rule.source}
        dropped = data.report.dropped_unlabelled
        # Rows of each source split end up in exactly one role (carved roles take from their parent).
        total_loaded = len(data.pool) + len(data.dev) + len(data.test)
        total_source = sum(rows[s] for s in set(sources.values())) - sum(dropped.values())
        assert total_loaded == total_source, name
        if "test" in sources:
            assert len(data.test) == rows[sources["test"]] - dropped.get("test", 0), name


def test_sst2_uses_validation_as_test():
    data = tasks.load("sst2")
    assert len(data.test) == 872
    assert len(data.dev) == 1000
    assert len(data.pool) == 67349 - 1000
    assert data.report.label_counts["test"] == {0: 428, 1: 444}


def test_trec_uses_coarse_labels():
    data = tasks.load("trec")
    assert data.task.num_classes == 6
    assert set(data.report.label_counts["pool"]) == set(range(6))


def test_dev_carve_deterministic_and_disjoint(data_dir):
    spec = tasks.get("rte")
    first = load_task_data(spec, data_dir)
    second = load_task_data(spec, data_dir)
    assert first.fingerprint == second.fingerprint
    assert [r["idx"] for r in first.dev.records] == [r["idx"] for r in second.dev.records]
    pool_ids = {r["idx"] for r in first.pool.records}
    dev_ids = {r["idx"] for r in first.dev.records}
    assert not pool_ids & dev_ids
    assert len(pool_ids | dev_ids) == 2490
    # Stratified: class shares of dev follow the train split within one row.
    counts = first.report.label_counts
    for label in (0, 1):
        share = (counts["pool"][label] + counts["dev"][label]) / 2490
        assert abs(counts["dev"][label] - share * 250) <= 1


def test_xquad_split_by_article_shares_no_context():
    data = tasks.load("xquad_en")
    titles = {role: {r["title"] for r in getattr(data, role).records} for role in ("pool", "dev", "test")}
    assert not titles["pool"] & titles["test"]
    assert not titles["pool"] & titles["dev"]
    assert not titles["dev"] & titles["test"]
    assert len(titles["pool"] | titles["dev"] | titles["test"]) == 48
    contexts = {role: {r["context"] for r in getattr(data, role).records} for role in ("pool", "test")}
    assert not contexts["pool"] & contexts["test"]


def test_alpaca_has_extra_eval_sets():
    data = tasks.load("alpaca")
    assert len(data.test) == 500
    assert len(data.extra["alpaca_eval"]) == 805
    assert len(data.extra["self_instruct_user_oriented"]) == 252
    first = data.extra["self_instruct_user_oriented"].records[0]
    assert set(first) == {"instruction", "input", "output"}


def test_missing_split_names_file_and_fix(data_dir):
    with pytest.raises(MissingDataError, match=r"split 'train' is missing .*ag_news/train\.jsonl.* offline variant"):
        load_task_data(tasks.get("ag_news"), data_dir)


def test_fingerprint_changes_with_content(data_dir, tmp_path):
    spec = mini_spec()
    write_mirror(tmp_path, [{"text": "good film", "label": 1}, {"text": "bad film", "label": 0}] * 5)
    first = load_task_data(spec, tmp_path).fingerprint
    write_mirror(tmp_path, [{"text": "good film!", "label": 1}, {"text": "bad film", "label": 0}] * 5)
    assert load_task_data(spec, tmp_path).fingerprint != first


# ---------------------------------------------------------------- bad input

def mini_spec(**changes) -> tasks.TaskSpec:
    raw = {
        "name": "mini", "family": "classification", "description": "two-class test task",
        "citation": "none", "license": "none", "hf_path": "none/mini", "hf_revision": "main",
        "mirror": "mini", "input_fields": ["text"], "label_field": "label",
        "label_names": ["neg", "pos"], "metrics": ["accuracy"], "main_score": "accuracy",
        "budgets": [1], "max_length": 32,
        "splits": {"pool": {"source": "train"}, "dev": {"carve_from": "pool", "size": 2, "seed": 0},
                   "test": {"source": "test"}},
    }
    raw.update(changes)
    return parse_task(raw, "mini.yaml")


def write_mirror(root: Path, train: list, test: list | None = None, raw_train: str | None = None) -> None:
    folder = root / "mini"
    folder.mkdir(parents=True, exist_ok=True)
    lines = raw_train if raw_train is not None else "".join(json.dumps(r) + "\n" for r in train)
    (folder / "train.jsonl").write_text(lines)
    test = test if test is not None else [{"text": "fine", "label": 1}]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))


def test_malformed_line_names_file_and_line(tmp_path):
    write_mirror(tmp_path, [], raw_train='{"text": "a", "label": 0}\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match=r"mini/train\.jsonl:2: invalid JSON"):
        load_task_data(mini_spec(), tmp_path)


def test_missing_field_is_named(tmp_path):
    write_mirror(tmp_path, [{"text": "a", "label": 0}, {"sentence": "b", "label": 1}])
    with pytest.raises(DataError, match=r"row 2: required field 'text' is missing; fields present: \['label', 'sentence'\]"):
        load_task_data(mini_spec(), tmp_path)


def test_label_out_of_range(tmp_path):
    write_mirror(tmp_path, [{"text": "a", "label": 0}, {"text": "b", "label": 7}])
    with pytest.raises(DataError, match=r"row 2: label 7 in field 'label' is out of range; task 'mini' has 2 classes"):
        load_task_data(mini_spec(), tmp_path)


def test_wrong_field_type(tmp_path):
    write_mirror(tmp_path, [{"text": "a", "label": "positive"}])
    with pytest.raises(DataError, match=r"field 'label' must be int, got str"):
        load_task_data(mini_spec(), tmp_path)


def test_empty_file_rejected(tmp_path):
    write_mirror(tmp_path, [], raw_train="")
    with pytest.raises(DataError, match=r"train\.jsonl: the file is empty"):
        load_task_data(mini_spec(), tmp_path)


def test_non_object_line_rejected(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "a"}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: expected a JSON object per line, got list"):
        read_jsonl(path)


def test_empty_texts_counted(tmp_path):
    write_mirror(tmp_path, [{"text": "a", "label": 0}, {"text": "  ", "label": 1}, {"text": "c", "label": 1},
                            {"text": "d", "label": 0}, {"text": "e", "label": 0}])
    report = load_task_data(mini_spec(), tmp_path).report
    assert report.empty_texts["pool"] == 1


def test_unlabelled_rows_dropped_and_counted(tmp_path):
    write_mirror(tmp_path, [{"text": t, "label": 0} for t in "abcde"],
                 test=[{"text": "x", "label": -1}, {"text": "y", "label": 1}])
    data = load_task_data(mini_spec(unlabelled_label=-1), tmp_path)
    assert len(data.test) == 1
    assert data.report.dropped_unlabelled == {"test": 1}


def test_pool_test_duplicates_counted(tmp_path):
    write_mirror(tmp_path, [{"text": t, "label": 0} for t in ["a", "b", "c", "d", "fine"]])
    data = load_task_data(mini_spec(), tmp_path)
    assert data.report.pool_test_duplicates == int(any(joined_text(data.task, r) == "fine" for r in data.pool.records))


@pytest.mark.parametrize("changes, message", [
    ({"colour": "red"}, r"unknown field\(s\) \['colour'\]"),
    ({"family": "regression"}, r"family 'regression' is invalid"),
    ({"main_score": "f1"}, r"main_score 'f1' is not among metrics \['accuracy'\]"),
    ({"budget_unit": "total"}, r"budget_unit 'total' is invalid for family 'classification'"),
    ({"budgets": [0, 5]}, r"budgets must be positive integers"),
    ({"splits": {"pool": {"source": "train"}, "test": {"source": "test"}}}, r"'dev' is missing"),
    ({"splits": {"pool": {"source": "train"}, "dev": {"carve_from": "pool"}, "test": {"source": "test"}}},
     r"needs exactly one of 'size' or 'fraction'"),
    ({"splits": {"pool": {"source": "train", "shuffle": True}, "dev": {"source": "d"}, "test": {"source": "t"}}},
     r"split 'pool': unknown field\(s\) \['shuffle'\]"),
])
def test_invalid_task_definition(changes, message):
    with pytest.raises(TaskSpecError, match=message):
        mini_spec(**changes)


def test_task_definition_missing_field():
    data = {k: v for k, v in _raw_mini().items() if k != "max_length"}
    with pytest.raises(TaskSpecError, match=r"missing required field\(s\) \[.max_length.\]"):
        parse_task(data, "x.yaml")


def _raw_mini() -> dict:
    return {
        "name": "mini", "family": "classification", "description": "d", "citation": "c", "license": "l",
        "hf_path": "none/mini", "hf_revision": "main", "mirror": "mini", "input_fields": ["text"],
        "label_field": "label", "label_names": ["neg", "pos"], "metrics": ["accuracy"],
        "main_score": "accuracy", "budgets": [1], "max_length": 32,
        "splits": {"pool": {"source": "train"}, "dev": {"carve_from": "pool", "size": 2}, "test": {"source": "test"}},
    }


# ---------------------------------------------------------------- CLI

def test_cli_tasks_lists_availability(capsys):
    assert main(["tasks"]) == 0
    output = capsys.readouterr().out
    assert "sst2" in output
    assert "classification" in output
    assert "missing ag_news/train" in output


def test_cli_data_check(capsys):
    assert main(["data", "check", "trec", "ag_news"]) == 0
    output = capsys.readouterr().out
    assert "trec" in output
    assert " ok " in output
    assert "missing" in output


def test_cli_data_check_unknown_task(capsys):
    assert main(["data", "check", "sts2"]) == 2
    assert "tddbench data: unknown task 'sts2'; did you mean 'sst2'?" in capsys.readouterr().err
