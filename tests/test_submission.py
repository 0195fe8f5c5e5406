"""Submission bundles from a real smoke run: layout, checksums, and rejection of tampered files."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.harness.runner import run_suite
from benchmark.harness.suite import load_suite
from benchmark.submission import (
    CHECKSUMS,
    INDEX,
    SubmissionError,
    bundle,
    find_problems,
    verify_records,
)

SUITE = "smoke"


@pytest.fixture(scope="module")
def results(tmp_path_factory, data_dir) -> Path:
    """Records and sets of the random baseline (two draws) on sst2, scored by TF-IDF."""
    root = tmp_path_factory.mktemp("results")
    suite = load_suite(SUITE).replace(methods=("random",), random_seeds=(0, 1), learners=("tfidf-logreg",))
    summary = run_suite(suite, str(root))
    assert summary.ok == 2, summary.failures
    return root


@pytest.fixture
def bundled(results, tmp_path) -> Path:
    output = tmp_path / "bundle"
    bundle(results, SUITE, output)
    return output


def record_paths(root: Path) -> list[Path]:
    return sorted((root / SUITE / "records").glob("*.json"))


def set_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / SUITE / "sets").rglob("manifest.json"))


def test_bundle_layout(bundled, results):
    assert [p.name for p in record_paths(bundled)] == [p.name for p in record_paths(results)]
    assert len(set_dirs(bundled)) == 2
    for copied in record_paths(bundled):
        assert copied.read_bytes() == (results / SUITE / "records" / copied.name).read_bytes()


def test_bundle_index(bundled):
    index = json.loads((bundled / INDEX).read_text())
    assert index["suite"] == SUITE
    assert index["methods"] == ["random"]
    assert index["status_counts"] == {"ok": 2}
    assert len(index["records"]) == 2
    for entry in index["records"]:
        assert (bundled / entry["file"]).exists()
        assert (bundled / entry["set"] / "manifest.json").exists()
        manifest = json.loads((bundled / entry["set"] / "manifest.json").read_text())
        assert manifest["hash"] == entry["set_hash"]


def test_bundle_checksums_cover_every_file(bundled):
    lines = (bundled / CHECKSUMS).read_text().splitlines()
    listed = {}
    for line in lines:
        digest, name = line.split("  ", 1)
        listed[name] = digest
    files = {p.relative_to(bundled).as_posix() for p in bundled.rglob("*") if p.is_file()} - {CHECKSUMS}
    assert set(listed) == files
    for name, digest in listed.items():
        assert hashlib.sha256((bundled / name).read_bytes()).hexdigest() == digest


def test_verify_clean_bundle_and_results(bundled, results):
    assert verify_records(bundled) == []
    assert verify_records(results) == []


def test_tampered_record_score_rejected(bundled):
    path = record_paths(bundled)[0]
    payload = json.loads(path.read_text())
    payload["scores"]["accuracy"] = 0.99
    path.write_text(json.dumps(payload, indent=2, sort_keys=True))
    problems = verify_records(bundled)
    assert len(problems) == 1
    assert problems[0].startswith(str(path))
    assert "does not match its entry in CHECKSUMS.sha256" in problems[0]


def test_tampered_set_rejects_its_records(bundled):
    target = set_dirs(bundled)[0]
    with open(target / "records.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"label": 1, "sentence": "an extra row"}) + "\n")
    problems = find_problems(bundled)
    rejected = {p.path for p in problems}
    scored = {p for p in record_paths(bundled) if Path(json.loads(p.read_text())["synthetic_set"]["path"]).name
              == target.name}
    assert rejected == scored
    messages = " ".join(p.message for p in problems)
    assert "content hash" in messages
    assert "checksum of" in messages


def test_record_hash_mismatch_rejected(results, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    path = record_paths(copy)[0]
    payload = json.loads(path.read_text())
    payload["synthetic_set"]["hash"] = "0" * 64
    path.write_text(json.dumps(payload))
    problems = verify_records(copy)
    assert len(problems) == 1
    assert problems[0].startswith(str(path))
    assert "synthetic set hash 000000000000 in the record does not match the content" in problems[0]


def test_set_changed_with_manifest_rejected(results, tmp_path):
    # Rewriting the manifest's hash hides the edit from SyntheticSet.load, but not from the record.
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    target = set_dirs(copy)[0]
    from benchmark.synthetic import SyntheticSet

    synthetic = SyntheticSet.load(target)
    synthetic.records[0]["sentence"] = "rewritten text"
    synthetic.save(target)
    problems = find_problems(copy)
    assert len(problems) == 1
    assert "does not match the content of" in problems[0].message


def test_missing_set_rejected(results, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    shutil.rmtree(set_dirs(copy)[0])
    problems = verify_records(copy)
    assert len(problems) == 1
    assert "is missing" in problems[0]


def test_invalid_record_rejected(results, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    (copy / SUITE / "records" / "broken.json").write_text("{not json")
    problems = verify_records(copy)
    assert len(problems) == 1
    assert "broken.json: not a valid result record" in problems[0]


def test_unlisted_file_rejected(bundled):
    (bundled / SUITE / "records" / "extra.json").write_text("{}")
    problems = verify_records(bundled)
    assert any("extra.json is not listed in CHECKSUMS.sha256" in p for p in problems)


def test_listed_missing_file_rejected(bundled):
    (bundled / INDEX).unlink()
    problems = verify_records(bundled)
    assert problems == [f"{bundled / INDEX}: submission.json is listed in CHECKSUMS.sha256 but missing"]


def test_malformed_checksum_line_rejected(bundled):
    with open(bundled / CHECKSUMS, "a", encoding="utf-8") as handle:
        handle.write("not-a-digest file\n")
    problems = verify_records(bundled)
    assert problems == [f"{bundled / CHECKSUMS}: line {len((bundled / CHECKSUMS).read_text().splitlines())} is "
                        f"not '<sha256>  <relative path>': 'not-a-digest file'"]


def test_verify_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        verify_records(tmp_path / "absent")


def test_bundle_requires_records(tmp_path):
    with pytest.raises(SubmissionError, match="no records under"):
        bundle(tmp_path, SUITE, tmp_path / "out")


def test_bundle_requires_empty_output(results, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "old.txt").write_text("x")
    with pytest.raises(SubmissionError, match="is not empty"):
        bundle(results, SUITE, output)


def test_bundle_refuses_tampered_results(results, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    shutil.rmtree(set_dirs(copy)[0])
    with pytest.raises(SubmissionError, match=r"1 record\(s\) fail verification"):
        bundle(copy, SUITE, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bundle_method_filter(results, tmp_path):
    with pytest.raises(SubmissionError, match=r"no records of method\(s\) \['herding'\]"):
        bundle(results, SUITE, tmp_path / "out", methods=["herding"])


def test_cli_submit_and_verify(results, tmp_path, capsys):
    output = tmp_path / "cli-bundle"
    assert main(["submit", "--results-dir", str(results), "--suite", SUITE, "--output", str(output)]) == 0
    assert "2 records, 2 sets" in capsys.readouterr().out
    assert main(["submit", "--verify", str(output)]) == 0
    record_paths(output)[0].write_text("{}")
    assert main(["submit", "--verify", str(output)]) == 1
    assert "REJECTED" in capsys.readouterr().out


def test_cli_submit_requires_suite(tmp_path):
    with pytest.raises(SystemExit, match="--suite and --output are required"):
        main(["submit", "--output", str(tmp_path / "out")])


def test_cli_submit_error_message(tmp_path):
    with pytest.raises(SystemExit, match="submit: no records under"):
        main(["submit", "--results-dir", str(tmp_path), "--suite", SUITE, "--output", str(tmp_path / "out")])
