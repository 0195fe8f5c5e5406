"""evaluate-set on real sst2 rows in a variant schema, scored next to the random baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tasks
from benchmark.cli import main
from benchmark.evaluate_set import (
    SubmittedSetError,
    evaluate_set,
    infer_budget,
    load_submission,
    make_plan,
    parse_field_map,
    read_set_file,
)
from benchmark.synthetic import SyntheticSet

SUITE = "smoke"
VARIANT_MAP = {"labels": "label", "text": "sentence"}


@pytest.fixture(scope="module")
def sst2(data_dir):
    return tasks.load("sst2")


def variant_rows(data, per_class: int, offset: int = 0) -> list[dict]:
    """Pool rows of each class in a variant schema: `text` and `labels`, plus an unknown field."""
    rows = []
    for label in (0, 1):
        chosen = [r for r in data.pool.records if r["label"] == label][offset:offset + per_class]
        rows += [{"text": r["sentence"], "labels": r["label"], "id": i} for i, r in enumerate(chosen)]
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def records(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((results / SUITE / "records").glob("*.json"))}


# ---------------------------------------------------------------- end to end

def test_variant_set_scored_beside_random(sst2, tmp_path):
    rows = variant_rows(sst2, 4)
    path = write_jsonl(tmp_path / "my-set.jsonl", rows)
    results = tmp_path / "results"
    summary = evaluate_set(path, "sst2", field_map=VARIANT_MAP, suite=SUITE, learner_names=("tfidf-logreg",),
                           random_draws=(0, 1), results_dir=results)
    assert summary.budget == 4
    assert summary.failed == 0
    found = records(results)
    submitted = found["sst2__submitted:my-set__b4__d0__tfidf-logreg__t0__standard"]
    assert submitted["status"] == "ok"
    assert submitted["method_category"] == "submitted"
    assert submitted["budget"] == 4
    assert submitted["synthetic_set"]["size"] == 8
    assert submitted["contamination"]["flagged"] is False
    assert submitted["contamination"]["pool"]["exact_share"] == 1.0
    stored = SyntheticSet.load(Path(submitted["synthetic_set"]["path"]))
    assert stored.content_hash() == submitted["synthetic_set"]["hash"] == summary.set_hashes[0]
    assert stored.records == [{"sentence": row["text"], "label": row["labels"]} for row in rows]

    for draw in (0, 1):
        baseline = found[f"sst2__random__b4__d{draw}__tfidf-logreg__t0__standard"]
        assert baseline["status"] == "ok"
        assert baseline["budget"] == 4
        assert baseline["synthetic_set"]["size"] == 8
    assert set(summary.scores["tfidf-logreg"]) == {"submitted", "random"}
    assert len(summary.scores["tfidf-logreg"]["random"]) == 2

    again = evaluate_set(path, "sst2", field_map=VARIANT_MAP, suite=SUITE, learner_names=("tfidf-logreg",),
                         random_draws=(0, 1), results_dir=results)
    assert again.skipped == 3
    assert again.written == 0


def test_folder_of_sets_gets_seeds(sst2, tmp_path):
    folder = tmp_path / "seeds"
    write_jsonl(folder / "a.jsonl", variant_rows(sst2, 2))
    write_jsonl(folder / "b.jsonl", variant_rows(sst2, 2, offset=2))
    results = tmp_path / "results"
    summary = evaluate_set(folder, "sst2", field_map=VARIANT_MAP, suite=SUITE, learner_names=("tfidf-logreg",),
                           random_draws=(0,), results_dir=results)
    found = records(results)
    assert summary.method == "submitted:seeds"
    assert len(set(summary.set_hashes)) == 2
    assert found["sst2__submitted:seeds__b2__d0__tfidf-logreg__t0__standard"]["config"]["method_params"] == \
        {"field_map": "labels=label,text=sentence", "source_file": "a.jsonl"}
    assert "sst2__submitted:seeds__b2__d1__tfidf-logreg__t0__standard" in found


def test_cli_evaluate_set(sst2, tmp_path, capsys):
    path = write_jsonl(tmp_path / "cli.jsonl", variant_rows(sst2, 1))
    code = main(["evaluate-set", str(path), "--task", "sst2", "--field-map", "labels=label,text=sentence",
                 "--suite", SUITE, "--learners", "tfidf-logreg", "--random-draws", "0",
                 "--results-dir", str(tmp_path / "results")])
    assert code == 0
    out = capsys.readouterr().out
    assert "submitted:cli on sst2: budget 1 per class, suite smoke" in out
    assert "tfidf-logreg:" in out


def test_cli_evaluate_set_error(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"text": "fine", "labels": 0}])
    with pytest.raises(SystemExit, match=r"evaluate-set: .*bad.jsonl:1: missing field\(s\) \['sentence', 'label'\]"):
        main(["evaluate-set", str(path), "--task", "sst2", "--suite", SUITE, "--learners", "tfidf-logreg"])


# ---------------------------------------------------------------- reading rows

def test_field_map_parsed():
    assert parse_field_map("labels=label, text=sentence") == VARIANT_MAP
    assert parse_field_map(None) == {}


def test_field_map_invalid_entry():
    with pytest.raises(SubmittedSetError, match="field map entry 'labels' is invalid"):
        parse_field_map("labels")


def test_field_map_repeated_source():
    with pytest.raises(SubmittedSetError, match="renames 'a' twice"):
        parse_field_map("a=label,a=sentence")


def test_label_names_accepted(sst2, tmp_path):
    path = write_jsonl(tmp_path / "names.jsonl", [{"sentence": "bad", "label": "negative"},
                                                  {"sentence": "good", "label": "positive"}])
    rows = read_set_file(path, sst2.task, {})
    assert [r["label"] for r in rows] == [0, 1]


def test_soft_label_kept(sst2, tmp_path):
    path = write_jsonl(tmp_path / "soft.jsonl", [{"sentence": "meh", "label": 0, "soft_label": [0.6, 0.4]}])
    assert read_set_file(path, sst2.task, {})[0]["soft_label"] == [0.6, 0.4]


@pytest.mark.parametrize(("lines", "message"), [
    (['{"sentence": "a", "label": 0}', "{oops"], r"bad.jsonl:2: invalid JSON"),
    (['["a", 0]'], r"bad.jsonl:1: expected a JSON object, got list"),
    (['{"sentence": "a", "label": 5}'], r"bad.jsonl:1: label id 5 is out of range"),
    (['{"sentence": "a", "label": "great"}'], r"bad.jsonl:1: label 'great' in field 'label' must be a class id"),
    (['{"sentence": "a", "label": true}'], r"bad.jsonl:1: label True"),
    (['{"sentence": 3, "label": 0}'], r"bad.jsonl:1: field 'sentence' must be a string, got int"),
    (['{"sentence": "   ", "label": 0}'], r"bad.jsonl:1: the input fields \['sentence'\] are all empty"),
    (['{"sentence": "a", "label": 0, "soft_label": [0.5, 0.6]}'], r"bad.jsonl:1: 'soft_label' must be a list"),
    (['{"text": "a", "sentence": "b", "labels": 0}'], r"bad.jsonl:1: the row has both 'text' and 'sentence'"),
    (["", "  "], r"bad.jsonl: the file contains no rows"),
])
def test_invalid_rows_name_file_and_line(sst2, tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SubmittedSetError, match=message):
        read_set_file(path, sst2.task, VARIANT_MAP if "text" in lines[0] else {})


def test_non_utf8_file_names_line(sst2, tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes('{"sentence": "ok", "label": 0}\n{"sentence": "caf\u00e9", "label": 1}\n'.encode("latin-1"))
    with pytest.raises(SubmittedSetError, match=r"latin.jsonl:2: not UTF-8 text \(byte 0xe9\); save the file as UTF-8"):
        read_set_file(path, sst2.task, {})


def test_line_separator_inside_string_kept(sst2, tmp_path):
    path = tmp_path / "sep.jsonl"
    path.write_text('{"sentence": "one\u2028two", "label": 0}\n', encoding="utf-8")
    assert read_set_file(path, sst2.task, {})[0]["sentence"] == "one\u2028two"


def test_missing_path_rejected(sst2, tmp_path):
    with pytest.raises(SubmittedSetError, match="no such file or folder"):
        load_submission(tmp_path / "absent.jsonl", sst2.task, "x", {})


def test_empty_folder_rejected(sst2, tmp_path):
    with pytest.raises(SubmittedSetError, match=r"contains no \*.jsonl files"):
        load_submission(tmp_path, sst2.task, "x", {})


# ---------------------------------------------------------------- budgets

def test_budget_max_per_class(sst2):
    rows = [{"sentence": "a", "label": 0}] * 3 + [{"sentence": "b", "label": 1}]
    assert infer_budget(rows, sst2.task) == 3


def test_budget_total_for_qa(data_dir):
    xquad = tasks.load("xquad_en")
    assert infer_budget([dict(r) for r in xquad.pool.records[:7]], xquad.task) == 7


def test_uneven_classes_warned(sst2, tmp_path, caplog):
    rows = variant_rows(sst2, 3)[:5]  # 3 negative, 2 positive
    path = write_jsonl(tmp_path / "uneven.jsonl", rows)
    submitted = load_submission(path, sst2.task, "uneven", VARIANT_MAP)
    assert submitted[0].budget == 3
    assert "class(es) {'positive': 2} hold fewer examples" in caplog.text


def test_explicit_budget_too_small(sst2, tmp_path):
    path = write_jsonl(tmp_path / "big.jsonl", variant_rows(sst2, 3))
    with pytest.raises(SubmittedSetError, match="over --budget 2; sets are rejected, never truncated"):
        load_submission(path, sst2.task, "big", VARIANT_MAP, budget=2)


def test_folder_budgets_must_match(sst2, tmp_path):
    write_jsonl(tmp_path / "mixed" / "a.jsonl", variant_rows(sst2, 1))
    write_jsonl(tmp_path / "mixed" / "b.jsonl", variant_rows(sst2, 2))
    with pytest.raises(SubmittedSetError, match=r"different budgets \(a.jsonl: 1, b.jsonl: 2\)"):
        load_submission(tmp_path / "mixed", sst2.task, "mixed", VARIANT_MAP)


# ---------------------------------------------------------------- options

def test_plan_uses_suite_settings(sst2):
    plan = make_plan(SUITE, sst2.task, None, None, None)
    assert plan.learners == ("tfidf-logreg", "minilm-probe")
    assert plan.random_draws == (0, 1)
    assert plan.suite.pool_limit == 200


def test_plan_rejects_wrong_family(data_dir):
    with pytest.raises(SubmittedSetError, match="learner 'tfidf-logreg' handles"):
        make_plan(SUITE, tasks.get("xquad_en"), ("tfidf-logreg",), None, None)


def test_invalid_set_name(sst2, tmp_path):
    path = write_jsonl(tmp_path / "ok.jsonl", variant_rows(sst2, 1))
    with pytest.raises(SubmittedSetError, match="set name 'bad name' is invalid"):
        evaluate_set(path, "sst2", name="bad name", suite=SUITE)


def test_invalid_budget_option(sst2, tmp_path):
    path = write_jsonl(tmp_path / "ok.jsonl", variant_rows(sst2, 1))
    with pytest.raises(SubmittedSetError, match="--budget 0 is invalid"):
        evaluate_set(path, "sst2", budget=0, suite=SUITE)


def test_invalid_overwrite_option(sst2, tmp_path):
    path = write_jsonl(tmp_path / "ok.jsonl", variant_rows(sst2, 1))
    with pytest.raises(SubmittedSetError, match="overwrite 'sometimes' is invalid"):
        evaluate_set(path, "sst2", overwrite="sometimes", suite=SUITE)
