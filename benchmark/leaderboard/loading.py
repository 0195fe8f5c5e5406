"""Find and read result records: every `records/*.json` file below a results directory."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.harness.records import ResultRecord

logger = logging.getLogger(__name__)

RECORD_GLOB = "records/*.json"


class RecordFileError(ValueError):
    """Raised when a record file cannot be read as a ResultRecord."""


class NoRecordsError(FileNotFoundError):
    """Raised when a results directory is missing or contains no record files."""


@dataclass(frozen=True)
class LoadedRecord:
    """One result record and the file it was read from."""

    record: ResultRecord
    path: Path


@dataclass
class LoadResult:
    """Records read from a results directory, after dropping superseded duplicates."""

    results_dir: Path
    records: list[LoadedRecord]
    files_read: int
    duplicates_dropped: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def status_counts(self) -> dict[str, int]:
        counts = Counter(loaded.record.status for loaded in self.records)
        return {status: counts.get(status, 0) for status in ("ok", "failed", "not_applicable")}


def find_record_files(results_dir: Path) -> list[Path]:
    """Return every `records/*.json` file at any depth below `results_dir`, sorted by path.

    Hidden files, such as the staging files of the atomic record writer, are skipped.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise NoRecordsError(f"results directory {str(results_dir)!r} does not exist or is not a "
                             f"directory; pass --results-dir with the folder the runs wrote to")
    return sorted(path for path in results_dir.rglob(RECORD_GLOB)
                  if path.is_file() and not path.name.startswith("."))


def read_record(path: Path) -> ResultRecord:
    """Parse one record file; the error names the file and what is wrong with it."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RecordFileError(f"{path}:{error.lineno}: invalid JSON ({error.msg}); repair or delete "
                              f"the file and rebuild") from error
    if not isinstance(payload, dict):
        raise RecordFileError(f"{path}: expected a JSON object, got {type(payload).__name__}; "
                              f"record files hold one ResultRecord.to_dict() object")
    try:
        return ResultRecord.from_dict(payload)
    except (TypeError, ValueError) as error:
        raise RecordFileError(f"{path}: not a valid result record ({error}); repair or delete the "
                              f"file and rebuild") from error


def load_records(results_dir: Path) -> LoadResult:
    """Read every record below `results_dir`; raise NoRecordsError when there is none.

    A rerun of the same cell writes a second file with the same record key, recipe and protocol.
    The newest one (by `created_at`) is kept, and each ignored duplicate is reported as a warning.
    """
    results_dir = Path(results_dir)
    paths = find_record_files(results_dir)
    if not paths:
        raise NoRecordsError(f"no record files matching **/{RECORD_GLOB} under {str(results_dir)!r}; "
                             f"run the benchmark first or pass --results-dir with the right folder")

    newest: dict[tuple[str, str, str], LoadedRecord] = {}
    warnings: list[str] = []
    for path in paths:
        loaded = LoadedRecord(read_record(path), path)
        identity = (loaded.record.key, loaded.record.recipe_id, loaded.record.protocol_version)
        current = newest.get(identity)
        if current is None:
            newest[identity] = loaded
            continue
        # ISO-8601 UTC timestamps in one format sort as strings; ties keep the later path.
        if loaded.record.created_at >= current.record.created_at:
            newest[identity], dropped = loaded, current
        else:
            dropped = loaded
        message = (f"duplicate record {identity[0]} (recipe {identity[1]}, protocol {identity[2]}): "
                   f"kept {newest[identity].path}, ignored older {dropped.path}")
        logger.warning(message)
        warnings.append(message)

    records = sorted(newest.values(), key=lambda loaded: str(loaded.path))
    logger.info("read %d record files from %s (%d duplicates ignored)", len(paths), results_dir,
                len(paths) - len(records))
    return LoadResult(results_dir=results_dir, records=records, files_read=len(paths),
                      duplicates_dropped=len(paths) - len(records), warnings=warnings)
