"""Shared test settings: real data from the mirror beside the repository, a per-session cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"

os.environ.setdefault("TDDBENCH_DATA_DIR", str(DEFAULT_DATA_DIR))
os.environ.setdefault("TDDBENCH_CACHE_DIR", str(REPO / ".cache" / "tddbench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA_DIR = Path(os.environ["TDDBENCH_DATA_DIR"])


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "MANIFEST.json").exists():
        pytest.fail(f"dataset mirror not found at {DATA_DIR}; set TDDBENCH_DATA_DIR")
    return DATA_DIR
