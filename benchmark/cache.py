"""Where the suite keeps derived files: features, dequantized weights, distilled sets."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "TDDBENCH_CACHE_DIR"


def cache_dir() -> Path:
    """The cache root: $TDDBENCH_CACHE_DIR, else ~/.cache/tddbench."""
    value = os.environ.get(CACHE_DIR_ENV)
    path = Path(value) if value else Path.home() / ".cache" / "tddbench"
    path.mkdir(parents=True, exist_ok=True)
    return path
