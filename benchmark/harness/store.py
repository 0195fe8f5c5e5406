"""The results store: record files under `<results dir>/<suite>/records/`, sets under `sets/`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from benchmark.harness.records import ResultRecord, write_json_atomic

logger = logging.getLogger(__name__)


class ResultStore:
    """Append-only store: each record is one file named by its key, written atomically."""

    def __init__(self, root: Path, suite: str) -> None:
        self.root = Path(root) / suite
        self.records_dir = self.root / "records"
        self.sets_dir = self.root / "sets"

    def record_path(self, key: str) -> Path:
        return self.records_dir / f"{key}.json"

    def set_dir(self, task: str, method: str, distill_hash: str) -> Path:
        return self.sets_dir / task / method / distill_hash

    def read(self, key: str) -> dict | None:
        """Read the JSON object of record `key`; None when there is none or it is unreadable."""
        path = self.record_path(key)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, OSError) as error:
            logger.warning("unreadable record %s (%s); it will be recomputed", path, error)
            return None

    def status(self, key: str) -> str | None:
        """Return the status of the stored record `key`; None when there is none or it is unreadable."""
        data = self.read(key)
        return data.get("status") if isinstance(data, dict) else None

    def load(self, key: str) -> ResultRecord | None:
        """Load the stored record `key`; None when there is none or it does not match the record schema."""
        data = self.read(key)
        if data is None:
            return None
        try:
            return ResultRecord.from_dict(data)
        except (TypeError, ValueError) as error:
            logger.warning("record %s is invalid (%s)", self.record_path(key), error)
            return None

    def write(self, record: ResultRecord) -> Path:
        path = self.record_path(record.key)
        write_json_atomic(path, record.to_dict())
        return path

    def records(self) -> list[ResultRecord]:
        return [ResultRecord.from_dict(json.loads(p.read_text(encoding="utf-8")))
                for p in sorted(self.records_dir.glob("*.json"))]
