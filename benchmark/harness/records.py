"""Result records: one JSON file per (cell, learner, training seed, track), never edited in place.

A record with status "ok" carries scores; "failed" carries the error; "not_applicable" says why the
learner could not score the set. Every record carries the resolved config and provenance, so the
leaderboard is rebuilt from records alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

SCHEMA_VERSION = 1

Status = Literal["ok", "failed", "not_applicable"]


@dataclass
class ResultRecord:
    """One scored (or failed) training run of a learner on a synthetic set.

    `budget` is None for the full-data reference (method "full"). Costs are dicts with
    `wall_time_s` and `peak_memory_mb`; `train_cost` also has `tokens`.
    """

    suite: str
    task: str
    task_family: str
    main_score: str
    method: str
    method_category: str
    budget: int | None
    budget_unit: str
    distill_seed: int
    learner: str
    recipe_id: str
    train_seed: int
    track: str
    protocol_version: str
    status: Status
    scores: dict[str, float] = field(default_factory=dict)
    extra_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    synthetic_set: dict[str, Any] = field(default_factory=dict)
    distill_cost: dict[str, float] = field(default_factory=dict)
    train_cost: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    contamination: dict[str, Any] = field(default_factory=dict)
    error: dict[str, str] | None = None
    reason: str | None = None
    schema_version: int = SCHEMA_VERSION
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def key(self) -> str:
        return record_key(self.suite, self.task, self.method, self.budget, self.distill_seed,
                          self.learner, self.train_seed, self.track)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRecord:
        data = dict(data)
        data.pop("key", None)
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"result record has schema_version {version!r}; this suite reads "
                             f"version {SCHEMA_VERSION}")
        return cls(**data)


def record_key(suite: str, task: str, method: str, budget: int | None, distill_seed: int,
               learner: str, train_seed: int, track: str) -> str:
    """Stable, readable id of one record; also its file name."""
    budget_part = "full" if budget is None else f"b{budget}"
    return f"{task}__{method}__{budget_part}__d{distill_seed}__{learner}__t{train_seed}__{track}"


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary file beside `path`, flush it to disk, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=".tmp-", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(payload, stream, indent=2, sort_keys=True, default=str)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
