"""Leaderboard aggregation, ties, baselines and outputs, checked against hand-computed values.

The fixture records under tests/fixtures/records were written by hand. Expected values below are
computed by hand from them, with Student's t quantiles from a printed table:
t(0.975, df=1) = 12.706205 and t(0.975, df=2) = 4.302653.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.harness.records import ResultRecord
from benchmark.leaderboard import (NoRecordsError, RecordFileError, aggregate_records,
                                   build_leaderboard, compute_leaderboard, load_records, summarize,
                                   tie_groups)
from benchmark.leaderboard.loading import LoadedRecord
from benchmark.leaderboard.ranking import fractional_ranks
from benchmark.leaderboard.stats import higher_is_better, intervals_overlap

FIXTURES = Path(__file__).parent / "fixtures" / "records"
T_DF1 = 12.706205
T_DF2 = 4.302653
TOLERANCE = 1e-5

A, RECIPE_A = "minilm-linear", "minilm-linear-v1"


@pytest.fixture(scope="module")
def board():
    return compute_leaderboard(load_records(FIXTURES))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Output folder of one build over the fixtures, which held a stale plot beforehand."""
    output = tmp_path_factory.mktemp("board")
    stale = output / "score_vs_budget__old-task.png"
    stale.write_bytes(b"old")
    summary = build_leaderboard(FIXTURES, output, verify=False)
    return output, summary, stale


@pytest.fixture()
def results_copy(tmp_path: Path) -> Path:
    target = tmp_path / "results"
    shutil.copytree(FIXTURES, target)
    return target


def find(board, task, budget, method, *, learner=A, recipe=RECIPE_A, track="standard", protocol="1"):
    matches = [aggregate for aggregate in board.aggregates
               if (aggregate.cell.task, aggregate.cell.budget, aggregate.method, aggregate.cell.learner,
                   aggregate.cell.recipe_id, aggregate.cell.track, aggregate.cell.protocol_version)
               == (task, budget, method, learner, recipe, track, protocol)]
    assert len(matches) == 1, f"expected one aggregate, found {len(matches)}"
    return matches[0]


def ranking(board, budget, *, learner=A, recipe=RECIPE_A, track="standard", protocol="1"):
    (match,) = [ranking for ranking in board.rankings
                if ranking.budget == budget and ranking.table_key.learner == learner
                and ranking.table_key.recipe_id == recipe and ranking.table_key.track == track
                and ranking.table_key.protocol_version == protocol]
    return {entry.method: entry for entry in match.entries}


def make_record(method="dm", value=0.5, *, task="sst2", budget=10, metric="accuracy", seed=0,
                status="ok", track="standard") -> ResultRecord:
    return ResultRecord(suite="unit", task=task, task_family="classification", main_score=metric,
                        method=method, method_category="selection", budget=budget,
                        budget_unit="per_class", distill_seed=seed, learner=A, recipe_id=RECIPE_A,
                        train_seed=0, track=track, protocol_version="1", status=status,
                        scores={metric: value} if status == "ok" else {})


def loaded(*records: ResultRecord) -> list[LoadedRecord]:
    return [LoadedRecord(record, Path(f"memory/{index}.json")) for index, record in enumerate(records)]


def write_record(directory: Path, record: ResultRecord, name: str | None = None) -> Path:
    path = directory / "records" / (name or f"{record.key}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record.to_dict()), encoding="utf-8")
    return path


# --- statistics -------------------------------------------------------------------------------

def test_summarize_three_values():
    summary = summarize([0.60, 0.62, 0.64])
    half_width = T_DF2 * 0.02 / math.sqrt(3)
    assert summary.n == 3
    assert summary.mean == pytest.approx(0.62, abs=TOLERANCE)
    assert summary.std == pytest.approx(0.02, abs=TOLERANCE)
    assert summary.ci_low == pytest.approx(0.62 - half_width, abs=TOLERANCE)
    assert summary.ci_high == pytest.approx(0.62 + half_width, abs=TOLERANCE)


def test_summarize_single_run_no_interval():
    summary = summarize([0.7])
    assert summary.mean == pytest.approx(0.7)
    assert summary.std is None
    assert summary.ci_low is None
    assert summary.bounds == (0.7, 0.7)


def test_summarize_empty():
    summary = summarize([])
    assert summary.n == 0
    assert summary.mean is None
    assert summary.bounds is None


def test_summarize_invalid_confidence():
    with pytest.raises(ValueError, match="confidence must be in"):
        summarize([1.0, 2.0], confidence=95)


def test_metric_direction():
    assert higher_is_better("accuracy")
    assert higher_is_better("f1")
    assert not higher_is_better("nll")


def test_intervals_overlap_touching():
    assert intervals_overlap((0.0, 1.0), (1.0, 2.0))
    assert not intervals_overlap((0.0, 1.0), (1.01, 2.0))


def test_tie_groups_compare_with_leader():
    # b overlaps the leader a; c overlaps b but not a, so c opens group 2 (no chaining).
    intervals = {"a": (0.90, 1.10), "b": (0.80, 0.95), "c": (0.70, 0.85), "d": (0.72, 0.74)}
    groups = tie_groups(["a", "b", "c", "d"], intervals.__getitem__)
    assert groups == [["a", "b"], ["c", "d"]]


def test_fractional_ranks_share_positions():
    assert fractional_ranks([["a", "b"], ["c"], ["d", "e", "f"]]) == [1.5, 3.0, 5.0]


# --- aggregation ------------------------------------------------------------------------------

def test_aggregate_distilled_method(board):
    dm = find(board, "sst2", 10, "dm")
    half_width = T_DF2 * 0.01 / math.sqrt(3)
    assert dm.summary.n == 3
    assert dm.summary.mean == pytest.approx(0.80, abs=TOLERANCE)
    assert dm.summary.std == pytest.approx(0.01, abs=TOLERANCE)
    assert dm.summary.ci_low == pytest.approx(0.80 - half_width, abs=TOLERANCE)
    assert dm.summary.ci_high == pytest.approx(0.80 + half_width, abs=TOLERANCE)
    assert dm.distill_seeds == (0, 1)
    assert dm.train_seeds == (0, 1)


def test_aggregate_cost_per_distill_seed(board):
    # Seed 0 (100 s, 900 MB) scored twice and seed 1 (140 s, 1000 MB) once: each seed counts once.
    dm = find(board, "sst2", 10, "dm")
    assert dm.distill_wall_time_s == pytest.approx(120.0)
    assert dm.distill_peak_memory_mb == pytest.approx(1000.0)


def test_aggregate_full_reference(board):
    full = find(board, "sst2", None, "full")
    half_width = T_DF1 * math.sqrt(2) * 0.01 / math.sqrt(2)
    assert full.summary.mean == pytest.approx(0.91, abs=TOLERANCE)
    assert full.summary.ci_low == pytest.approx(0.91 - half_width, abs=TOLERANCE)
    assert full.gap_closed is None


def test_gap_closed_higher_is_better(board):
    assert find(board, "sst2", 10, "dm").gap_closed == pytest.approx(0.18 / 0.29, abs=TOLERANCE)
    assert find(board, "sst2", 10, "herding").gap_closed == pytest.approx(0.16 / 0.29, abs=TOLERANCE)
    assert find(board, "sst2", 20, "dm").gap_closed == pytest.approx(0.14 / 0.20, abs=TOLERANCE)
    assert find(board, "sst2", 10, "dm").gain_over_random == pytest.approx(0.18, abs=TOLERANCE)
    assert find(board, "sst2", 10, "random").gap_closed == 0.0


def test_gap_closed_lower_is_better(board):
    dm = find(board, "alpaca", 10, "dm")
    textgen = find(board, "alpaca", 10, "textgen")
    # nll: random 2.6, full 1.1, so (1.6 - 2.6) / (1.1 - 2.6) = 2/3 and gain = 2.6 - 1.6.
    assert dm.gap_closed == pytest.approx(2 / 3, abs=TOLERANCE)
    assert dm.gain_over_random == pytest.approx(1.0, abs=TOLERANCE)
    assert textgen.gap_closed == pytest.approx(0.8, abs=TOLERANCE)
    assert math.copysign(1.0, find(board, "alpaca", 10, "random").gain_over_random) == 1.0


def test_failed_and_not_applicable_counted(board):
    dm = find(board, "sst2", 10, "dm")
    glove = find(board, "sst2", 10, "glove-dd")
    assert dm.n_failed == 1
    assert dm.reasons == ("failed: RuntimeError",)
    assert glove.summary.n == 0
    assert glove.n_not_applicable == 1
    assert board.status_counts == {"ok": 38, "failed": 1, "not_applicable": 1}


def test_contamination_flag_counted(board):
    assert find(board, "sst2", 10, "textgen").n_contaminated == 1
    assert find(board, "sst2", 10, "dm").n_contaminated == 0


def test_recipe_versions_kept_apart(board):
    v1 = find(board, "sst2", 10, "dm")
    v2 = find(board, "sst2", 10, "dm", recipe="minilm-linear-v2")
    protocol_2 = find(board, "sst2", 10, "dm", protocol="2")
    assert v1.summary.n == 3
    assert v2.summary.mean == pytest.approx(0.50)
    assert v2.gap_closed == pytest.approx(0.10 / 0.30, abs=TOLERANCE)
    assert protocol_2.gap_closed == pytest.approx(0.15 / 0.30, abs=TOLERANCE)
    for table in board.tables:
        assert {row.cell.table_key for row in table.rows} == {table.table_key}
    keys = {(table.table_key.recipe_id, table.table_key.protocol_version) for table in board.tables}
    assert {("minilm-linear-v1", "1"), ("minilm-linear-v2", "1"), ("minilm-linear-v1", "2")} <= keys


def test_missing_random_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="benchmark.leaderboard"):
        board = compute_leaderboard(load_records(FIXTURES))
    native = find(board, "sst2", 10, "dm", track="native")
    assert native.gap_closed is None
    assert native.gain_over_random is None
    messages = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    (native_warning,) = [message for message in messages if "track native" in message]
    assert "no ok 'random' runs" in native_warning
    assert "task sst2" in native_warning
    assert len(board.warnings) == 1


def test_missing_full_warns(results_copy, caplog):
    (results_copy / "run_v1" / "records" / "sst2__full__full__d0__glove-cnn__t0__standard.json").unlink()
    with caplog.at_level(logging.WARNING, logger="benchmark.leaderboard"):
        board = compute_leaderboard(load_records(results_copy))
    textgen = find(board, "sst2", 10, "textgen", learner="glove-cnn", recipe="glove-cnn-v1")
    assert textgen.gap_closed is None
    assert textgen.gain_over_random == pytest.approx(0.11, abs=TOLERANCE)
    (full_warning,) = [record.getMessage() for record in caplog.records
                       if "no ok 'full' runs" in record.getMessage()]
    assert "learner glove-cnn" in full_warning


@pytest.mark.parametrize("full, dm, message", [
    (0.5, 0.6, "full-data mean (0.5) is not better than the random mean (0.5)"),
    (0.49, 0.48, "full-data mean (0.49) is not better than the random mean (0.5)"),
])
def test_full_not_above_random_leaves_gap_missing(caplog, full, dm, message):
    records = loaded(make_record("random", 0.5), make_record("dm", dm), make_record("full", full, budget=None))
    with caplog.at_level(logging.WARNING, logger="benchmark.leaderboard"):
        result = aggregate_records(records)
    method = [aggregate for aggregate in result.aggregates if aggregate.method == "dm"][0]
    assert method.gap_closed is None
    assert method.gain_over_random == pytest.approx(dm - 0.5, abs=TOLERANCE)
    messages = [record.getMessage() for record in caplog.records]
    assert any("gap closed is undefined" in m for m in messages)
    assert any(message in m for m in messages)


def test_non_finite_score_counts_failed(caplog):
    records = loaded(make_record("random", 0.5), make_record("dm", float("nan")),
                     make_record("dm", 0.7, seed=1))
    with caplog.at_level(logging.WARNING, logger="benchmark.leaderboard"):
        result = aggregate_records(records)
    dm = [aggregate for aggregate in result.aggregates if aggregate.method == "dm"][0]
    assert dm.summary.n == 1
    assert dm.n_failed == 1
    assert any("counted as failed" in record.getMessage() for record in caplog.records)


def test_missing_main_score_raises():
    record = make_record("dm", 0.5)
    record.scores = {"f1": 0.5}
    with pytest.raises(RecordFileError, match="lack the main score 'accuracy'"):
        aggregate_records(loaded(record))


def test_mixed_main_scores_raise():
    records = loaded(make_record("dm", 0.5), make_record("dm", 0.4, metric="f1", seed=1))
    with pytest.raises(ValueError, match="different main scores"):
        aggregate_records(records)


# --- ranking ----------------------------------------------------------------------------------

def test_cell_tie_groups(board):
    places = {method: board.cell_ranks.get((find(board, "sst2", 10, method).cell, method))
              for method in ("dm", "herding", "kcenters", "textgen", "random", "glove-dd")}
    # dm [0.7752, 0.8248] and herding [0.7552, 0.8048] overlap; kcenters [0.7202, 0.7698] overlaps
    # herding but not the leader dm, so it opens group 2.
    assert (places["dm"].group, places["dm"].rank) == (1, 1.5)
    assert (places["herding"].group, places["herding"].rank) == (1, 1.5)
    assert (places["kcenters"].group, places["kcenters"].rank) == (2, 3.0)
    assert (places["textgen"].group, places["textgen"].rank) == (3, 4.0)
    assert (places["random"].group, places["random"].rank) == (4, 5.0)
    assert places["glove-dd"] is None


def test_cell_ranks_lower_is_better(board):
    def place(method):
        return board.cell_ranks[(find(board, "alpaca", 10, method).cell, method)]
    # textgen 1.4 (single run) lies inside dm's interval [1.3516, 1.8484]; random is far above.
    assert (place("textgen").group, place("textgen").rank) == (1, 1.5)
    assert (place("dm").group, place("dm").rank) == (1, 1.5)
    assert (place("random").group, place("random").rank) == (2, 3.0)
    (table,) = [table for table in board.tables if table.task == "alpaca" and table.budget == 10]
    assert [row.method for row in table.rows] == ["textgen", "dm", "random"]


def test_ranking_across_tasks(board):
    entries = ranking(board, "10")
    assert [entries[method].group for method in ("dm", "herding", "textgen", "kcenters", "random")] \
        == [1, 1, 1, 2, 2]
    assert entries["dm"].mean_rank == pytest.approx(1.5)
    assert entries["textgen"].mean_rank == pytest.approx(2.75)
    assert entries["random"].mean_rank == pytest.approx(4.0)
    assert entries["dm"].mean_gap_closed == pytest.approx((0.18 / 0.29 + 2 / 3) / 2, abs=TOLERANCE)
    # ranks 4 and 1.5: std 2.5 / sqrt(2), half width t(df=1) * std / sqrt(2) = 12.706205 * 1.25
    assert entries["textgen"].rank_summary.ci_high == pytest.approx(2.75 + T_DF1 * 1.25, abs=1e-4)
    assert entries["dm"].n_failed == 1


def test_ranking_order_breaks_rank_ties_by_gap(board):
    ordered = [entry.method for entry in
               sorted(ranking(board, "10").values(), key=lambda entry: (entry.group, entry.mean_rank))]
    assert ordered[:2] == ["dm", "herding"]


def test_ranking_all_budgets_only_with_several(board):
    assert ranking(board, "all")["random"].mean_rank == pytest.approx((5 + 3 + 1.5) / 3)
    assert not [entry for entry in board.rankings
                if entry.budget == "all" and entry.table_key.learner == "glove-cnn"]


# --- cross-architecture -----------------------------------------------------------------------

def test_cross_architecture_pooled(board):
    (pooled,) = [matrix for matrix in board.cross_arch
                 if matrix.task is None and matrix.protocol_version == "1" and matrix.track == "standard"]
    smol_a = pooled.cells[("SmolLM2-135M", "minilm-linear (minilm-linear-v1)")]
    smol_b = pooled.cells[("SmolLM2-135M", "glove-cnn (glove-cnn-v1)")]
    assert smol_a.gap_closed == pytest.approx((0.08 / 0.29 + 0.8) / 2, abs=TOLERANCE)
    assert smol_a.n_aggregates == 2
    assert smol_b.gap_closed == pytest.approx(0.11 / 0.30, abs=TOLERANCE)
    assert "none" in pooled.rows
    assert not any("dm" in row for matrix in board.cross_arch for row in matrix.rows)


def test_cross_architecture_per_task(board):
    (matrix,) = [matrix for matrix in board.cross_arch
                 if matrix.task == "sst2" and matrix.budget == 10 and matrix.protocol_version == "1"]
    cell = matrix.cells[("SmolLM2-135M · textgen", "glove-cnn (glove-cnn-v1)")]
    assert cell.mean_score == pytest.approx(0.66)


# --- loading ----------------------------------------------------------------------------------

def test_load_counts_files():
    result = load_records(FIXTURES)
    assert result.files_read == 40
    assert result.duplicates_dropped == 0


def test_load_keeps_newest_duplicate(results_copy, caplog):
    source = results_copy / "run_recipe_v2" / "records" / "sst2__dm__b10__d0__minilm-linear__t0__standard.json"
    record = ResultRecord.from_dict(json.loads(source.read_text()))
    record.scores = {"accuracy": 0.55}
    record.created_at = "2025-02-01T00:00:00+00:00"
    write_record(results_copy / "rerun", record)
    with caplog.at_level(logging.WARNING, logger="benchmark.leaderboard"):
        result = load_records(results_copy)
    board = compute_leaderboard(result)
    assert result.duplicates_dropped == 1
    assert find(board, "sst2", 10, "dm", recipe="minilm-linear-v2").summary.mean == pytest.approx(0.55)
    assert any("duplicate record" in record.getMessage() for record in caplog.records)


def test_load_skips_staging_files(results_copy):
    (results_copy / "run_v1" / "records" / ".tmp-123.json").write_text("{partial")
    assert load_records(results_copy).files_read == 40


def test_load_missing_directory(tmp_path):
    with pytest.raises(NoRecordsError, match="does not exist"):
        load_records(tmp_path / "nowhere")


def test_load_empty_directory(tmp_path):
    with pytest.raises(NoRecordsError, match="no record files"):
        load_records(tmp_path)


def test_load_invalid_json(tmp_path):
    path = tmp_path / "records" / "broken.json"
    path.parent.mkdir()
    path.write_text('{"task": ')
    with pytest.raises(RecordFileError, match="broken.json:1: invalid JSON"):
        load_records(tmp_path)


def test_load_not_an_object(tmp_path):
    path = tmp_path / "records" / "list.json"
    path.parent.mkdir()
    path.write_text("[1, 2]")
    with pytest.raises(RecordFileError, match="expected a JSON object"):
        load_records(tmp_path)


def test_load_wrong_schema(tmp_path):
    payload = make_record().to_dict()
    payload["schema_version"] = 99
    path = tmp_path / "records" / "old.json"
    path.parent.mkdir()
    path.write_text(json.dumps(payload))
    with pytest.raises(RecordFileError, match="not a valid result record"):
        load_records(tmp_path)


# --- outputs ----------------------------------------------------------------------------------

def test_build_writes_outputs(built):
    output, summary, stale = built

    assert not stale.exists()
    for name in ("LEADERBOARD.md", "index.html", "leaderboard.json", "leaderboard_long.csv",
                 "leaderboard_wide.csv"):
        assert (output / name).is_file(), name
    plots = sorted(output.glob("*.png"))
    assert {path.name.split("__")[0] for path in plots} == {"score_vs_budget", "score_vs_cost",
                                                            "gap_heatmap"}
    assert all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in plots)
    assert summary.n_aggregates == 23
    assert len(summary.warnings) == 1


def test_build_json_and_csv(built):
    output = built[0]
    payload = json.loads((output / "leaderboard.json").read_text())
    with open(output / "leaderboard_long.csv", newline="") as stream:
        long_rows = list(csv.DictReader(stream))
    with open(output / "leaderboard_wide.csv", newline="") as stream:
        wide_rows = list(csv.DictReader(stream))

    assert payload["record_counts"] == {"files_read": 40, "ok": 38, "failed": 1, "not_applicable": 1}
    assert len(payload["aggregates"]) == len(long_rows) == 23
    (dm_row,) = [row for row in long_rows
                 if (row["task"], row["method"], row["budget"], row["track"], row["recipe_id"],
                     row["protocol_version"]) == ("sst2", "dm", "10", "standard", RECIPE_A, "1")]
    assert float(dm_row["gap_closed"]) == pytest.approx(0.18 / 0.29, abs=TOLERANCE)
    assert dm_row["group"] == "1"
    assert list(wide_rows[0])[-3:] == ["10", "20", "full"]
    (random_wide,) = [row for row in wide_rows if row["method"] == "random" and row["task"] == "sst2"
                      and row["recipe_id"] == RECIPE_A and row["protocol_version"] == "1"]
    assert float(random_wide["20"]) == pytest.approx(0.71)


def test_markdown_sections(built):
    text = (built[0] / "LEADERBOARD.md").read_text()
    assert "### learner minilm-linear, recipe minilm-linear-v2, track standard, protocol 1" in text
    assert "### learner minilm-linear, recipe minilm-linear-v1, track standard, protocol 2" in text
    assert "#### alpaca, budget 10 (total): nll ↓" in text
    (textgen_line,) = [line for line in text.splitlines()
                       if line.startswith("| 3 | textgen | text-level")]
    assert "⚠ contaminated" in textgen_line
    assert "not applicable: embedding set for glove-6b-50d" in text
    assert "## Warnings" in text


def test_cli_prints_summary(tmp_path, capsys):
    code = main(["leaderboard", "--results-dir", str(FIXTURES), "--output", str(tmp_path / "out"), "--no-verify"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "Read 40 record files" in printed
    assert "1 warning(s)" in printed


def test_cli_missing_results(tmp_path, capsys):
    code = main(["leaderboard", "--results-dir", str(tmp_path / "none"), "--output", str(tmp_path)])
    assert code == 1
    assert "does not exist" in capsys.readouterr().err


def test_native_gap_uses_random_inputs_companion():
    records = [make_record("random", 0.5, track="native"), make_record("dd-bptt", 0.7, track="native"),
               make_record("dd-bptt+random-inputs", 0.6, track="native"),
               make_record("gradient-matching", 0.65, track="native"),
               make_record("full", 0.9, budget=None, track="native")]
    result = aggregate_records(loaded(*records))
    by_method = {a.method: a for a in result.aggregates if a.cell.budget == 10}
    assert by_method["dd-bptt"].reference_method == "dd-bptt+random-inputs"
    assert by_method["dd-bptt"].gap_closed == pytest.approx((0.7 - 0.6) / (0.9 - 0.6))
    assert by_method["gradient-matching"].reference_method == "random"
    assert by_method["gradient-matching"].gap_closed == pytest.approx((0.65 - 0.5) / (0.9 - 0.5))


def test_standard_gap_ignores_companion():
    records = [make_record("random", 0.5), make_record("dd-bptt", 0.7),
               make_record("dd-bptt+random-inputs", 0.6), make_record("full", 0.9, budget=None)]
    by_method = {a.method: a for a in aggregate_records(loaded(*records)).aggregates if a.cell.budget == 10}
    assert by_method["dd-bptt"].reference_method == "random"
    assert by_method["dd-bptt"].gap_closed == pytest.approx(0.5)
