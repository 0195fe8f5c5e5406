"""Task registry: every task is a YAML definition in `tasks/definitions/`, validated on load."""

from __future__ import annotations

from pathlib import Path

from benchmark.registry import Registry
from tasks.data import DataError, MissingDataError, Split, TaskData, data_dir_from_env, load_task_data
from tasks.spec import TaskSpec, TaskSpecError, load_task_file, parse_task

DEFINITIONS = Path(__file__).parent / "definitions"

TASKS: Registry[TaskSpec] = Registry("task")

for _path in sorted(DEFINITIONS.glob("*.yaml")):
    TASKS.register(_path.stem, load_task_file(_path), source=str(_path.relative_to(DEFINITIONS.parent.parent)))


def get(name: str) -> TaskSpec:
    """Return the task called `name`; an unknown name raises with the known names."""
    return TASKS.get(name)


def names() -> list[str]:
    return TASKS.names()


_loaded: dict[tuple[str, str], TaskData] = {}


def load(name: str, data_dir: Path | None = None) -> TaskData:
    """Load and validate a task's data once per process and data directory."""
    data_dir = data_dir if data_dir is not None else data_dir_from_env()
    key = (name, str(data_dir))
    if key not in _loaded:
        _loaded[key] = load_task_data(get(name), data_dir)
    return _loaded[key]


__all__ = ["TASKS", "DataError", "MissingDataError", "Split", "TaskData", "TaskSpec", "TaskSpecError",
           "get", "load", "names", "parse_task"]
