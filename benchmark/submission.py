"""Bundle a suite's result records and the synthetic sets they scored into one folder, and verify bundles.

A bundle has the layout of a results directory, so the leaderboard reads it as one:

    <output>/<suite>/records/<key>.json            result records, byte-identical copies
    <output>/<suite>/sets/<task>/<method>/<id>/     each referenced set (records or tensors, manifest)
    <output>/submission.json                       index: records, sets, methods, counts
    <output>/CHECKSUMS.sha256                       sha256 of every other file, `sha256sum -c` format

`verify_records` checks a results directory or a bundle: every record's set hash against the set
content on disk, and in a bundle every file against CHECKSUMS.sha256.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmark import PROTOCOL_VERSION, __version__
from benchmark.harness.records import ResultRecord, file_sha256, write_json_atomic
from benchmark.synthetic import MANIFEST, SyntheticSet, SyntheticSetError

logger = logging.getLogger(__name__)

CHECKSUMS = "CHECKSUMS.sha256"
INDEX = "submission.json"
BUNDLE_FORMAT_VERSION = 1


class SubmissionError(ValueError):
    """Raised when a suite's results cannot be bundled."""


@dataclass(frozen=True)
class Problem:
    """A file that fails verification; `path` is the rejected record file, or the file itself."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


# ---------------------------------------------------------------- locating records and sets

def record_files(root: Path) -> list[Path]:
    """List every `records/*.json` below `root`, skipping the hidden staging files of the atomic writer."""
    return sorted(p for p in Path(root).rglob("records/*.json") if p.is_file() and not p.name.startswith("."))


def set_location(record_path: Path, record: dict[str, Any]) -> Path | None:
    """Folder of the set a record scored, in the store layout beside the record's `records` folder.

    Only this location is used, never the absolute path stored in the record, so a copied results
    directory or a bundle is checked against its own sets.
    """
    stored = (record.get("synthetic_set") or {}).get("path")
    if not stored:
        return None
    return record_path.parent.parent / "sets" / record["task"] / record["method"] / Path(stored).name


# ---------------------------------------------------------------- verification

def _read_checksums(root: Path) -> tuple[dict[str, str], list[Problem]]:
    listed: dict[str, str] = {}
    problems = []
    path = root / CHECKSUMS
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            problems.append(Problem(path, f"line {number} is not '<sha256>  <relative path>': {line!r:.80}"))
            continue
        listed[name] = digest
    return listed, problems


def _set_hash(set_dir: Path, cache: dict[Path, str | Problem]) -> str | Problem:
    """Content hash of the set at `set_dir` (cached), or a Problem naming why it cannot be read."""
    if set_dir not in cache:
        try:
            synthetic = SyntheticSet.load(set_dir, verify=True)
            cache[set_dir] = synthetic.content_hash()
        except (SyntheticSetError, OSError, ValueError, KeyError) as error:
            cache[set_dir] = Problem(set_dir, str(error))
    return cache[set_dir]


def find_problems(root: Path) -> list[Problem]:
    """Find every verification failure below `root` (a results directory or a submission bundle).

    A record is rejected when it is not a valid record, when the set it names is missing, or when
    the set's content hash differs from the record's `synthetic_set.hash`. When `root` contains
    CHECKSUMS.sha256, a file whose sha256 differs from its entry, a listed file that is missing and
    an unlisted file are rejected too. A changed set file rejects every record that scored the set.
    NOTE: in a results directory without CHECKSUMS.sha256 an edited score is not detectable,
    because only the set hashes are checked there.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory; pass a results directory or a submission folder")
    problems: list[Problem] = []
    set_hashes: dict[Path, str | Problem] = {}
    records_by_set: dict[Path, list[Path]] = {}

    for path in record_files(root):
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            ResultRecord.from_dict(payload)
        except (json.JSONDecodeError, TypeError, ValueError) as error:
            problems.append(Problem(path, f"not a valid result record: {error}"))
            continue
        expected = (payload.get("synthetic_set") or {}).get("hash")
        if not expected:
            continue  # failed before a set existed, or the full-data reference without a stored set
        set_dir = set_location(path, payload)
        if set_dir is None or not (set_dir / MANIFEST).exists():
            problems.append(Problem(path, f"the synthetic set it scored (hash {expected[:12]}) is missing; "
                                          f"expected it at {set_dir}"))
            continue
        records_by_set.setdefault(set_dir.resolve(), []).append(path)
        actual = _set_hash(set_dir, set_hashes)
        if isinstance(actual, Problem):
            problems.append(Problem(path, f"the synthetic set it scored fails to load: {actual.message}"))
        elif actual != expected:
            problems.append(Problem(path, f"synthetic set hash {expected[:12]} in the record does not match "
                                          f"the content of {set_dir} ({actual[:12]})"))

    if (root / CHECKSUMS).exists():
        problems += _checksum_problems(root, records_by_set)
    return problems


def _checksum_problems(root: Path, records_by_set: dict[Path, list[Path]]) -> list[Problem]:
    listed, problems = _read_checksums(root)
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {CHECKSUMS}

    def rejected(relative: str) -> list[Path]:
        # A set file rejects the records that scored its set; any other file is rejected itself.
        path = root / relative
        for set_dir, records in records_by_set.items():
            if path.resolve().is_relative_to(set_dir):
                return records
        return [path]

    for relative, digest in sorted(listed.items()):
        if relative not in present:
            problems += [Problem(p, f"{relative} is listed in {CHECKSUMS} but missing") for p in rejected(relative)]
        elif file_sha256(root / relative) != digest:
            problems += [Problem(p, f"checksum of {relative} does not match its entry in {CHECKSUMS}")
                         for p in rejected(relative)]
    for relative in sorted(present - set(listed)):
        problems += [Problem(p, f"{relative} is not listed in {CHECKSUMS}") for p in rejected(relative)]
    return problems


def verify_records(results_dir: Path) -> list[str]:
    """Verification failures below `results_dir`, each naming the rejected file; empty when all pass."""
    problems = find_problems(results_dir)
    for problem in problems:
        logger.warning("rejected %s", problem)
    return [str(problem) for problem in problems]


# ---------------------------------------------------------------- bundling

@dataclass
class BundleSummary:
    """Counts of the records, sets and checksummed files that `bundle` wrote, and the methods included."""

    output: Path
    records: int = 0
    sets: int = 0
    files: int = 0
    methods: list[str] = field(default_factory=list)


def bundle(results_dir: Path, suite: str, output: Path, methods: list[str] | None = None) -> BundleSummary:
    """Copy a suite's records (optionally of `methods` only) and their sets into `output`, with an index
    and CHECKSUMS.sha256. Raises SubmissionError when verification fails or `output` is not empty.
    """
    results_dir, output = Path(results_dir), Path(output)
    source = results_dir / suite
    paths = record_files(source)
    if not paths:
        raise SubmissionError(f"no records under {source / 'records'}; run `tddbench run --suite {suite} "
                              f"--results-dir {results_dir}` first, or check --suite and --results-dir")
    if output.exists() and any(output.iterdir()):
        raise SubmissionError(f"output folder {output} is not empty; choose a new folder so no old file "
                              f"ends up in the submission")
    problems = find_problems(source)
    if problems:
        shown = "\n  ".join(str(p) for p in problems[:20])
        raise SubmissionError(f"{len(problems)} record(s) fail verification, so nothing was bundled:\n  {shown}")

    entries, sets = [], {}
    for path in paths:
        payload = json.loads(path.read_text(encoding="utf-8"))
        if methods and payload["method"] not in methods:
            continue
        target = output / suite / "records" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        entry = {"file": target.relative_to(output).as_posix(), "key": payload.get("key"),
                 "task": payload["task"], "method": payload["method"], "status": payload["status"],
                 "set": None, "set_hash": (payload.get("synthetic_set") or {}).get("hash")}
        set_dir = set_location(path, payload)
        if entry["set_hash"] and set_dir is not None:
            copied = output / suite / "sets" / payload["task"] / payload["method"] / set_dir.name
            if copied not in sets:
                shutil.copytree(set_dir, copied)
                sets[copied] = {"path": copied.relative_to(output).as_posix(), "hash": entry["set_hash"],
                                "task": payload["task"], "method": payload["method"],
                                "files": sorted(p.name for p in copied.iterdir())}
            entry["set"] = sets[copied]["path"]
        entries.append(entry)
    if not entries:
        raise SubmissionError(f"no records of method(s) {methods} in {source / 'records'}; known methods: "
                              f"{sorted({json.loads(p.read_text())['method'] for p in paths})}")

    write_json_atomic(output / INDEX, submission_index(suite, entries, list(sets.values())))
    files = write_checksums(output)
    summary = BundleSummary(output, records=len(entries), sets=len(sets), files=files,
                            methods=sorted({e["method"] for e in entries}))
    logger.info("bundled %d records and %d sets of suite %s into %s", summary.records, summary.sets, suite, output)
    return summary


def submission_index(suite: str, entries: list[dict], sets: list[dict]) -> dict[str, Any]:
    return {"format_version": BUNDLE_FORMAT_VERSION, "suite": suite, "tddbench_version": __version__,
            "protocol_version": PROTOCOL_VERSION,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "methods": sorted({e["method"] for e in entries}),
            "status_counts": dict(sorted(Counter(e["status"] for e in entries).items())),
            "records": entries, "sets": sets}


def write_checksums(output: Path) -> int:
    """Write CHECKSUMS.sha256 for every file under `output` except itself; returns the number of files."""
    files = sorted(p for p in output.rglob("*") if p.is_file() and p.name != CHECKSUMS)
    lines = [f"{file_sha256(p)}  {p.relative_to(output).as_posix()}\n" for p in files]
    (output / CHECKSUMS).write_text("".join(lines), encoding="utf-8")
    return len(files)
