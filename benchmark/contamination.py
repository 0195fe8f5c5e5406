"""Contamination audit: how much of a text set's content also appears in a task's test split or pool.

Texts are compared after normalization (lower case, punctuation removed, whitespace collapsed).
Two measures per reference split: the share of synthetic examples equal to a reference example,
and the share that shares at least one word n-gram (n = 8 by default) with a reference example.
Against the test split the audit counts only test content that is absent from the train pool.
Copying pool rows, which every selection baseline does, is therefore never counted as test
contamination, even where a dataset's test split repeats pool text. A set is flagged when either test share
exceeds the threshold (0 by default: one contaminated example flags it).
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from benchmark.synthetic import SyntheticSet
from tasks.data import Record, TaskData, joined_text
from tasks.spec import TaskSpec

logger = logging.getLogger(__name__)

DEFAULT_NGRAM = 8
DEFAULT_THRESHOLD = 0.0

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")
_WHITESPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower-case `text`, replace ASCII punctuation by spaces and collapse whitespace."""
    return _WHITESPACE.sub(" ", _PUNCTUATION.sub(" ", text.lower())).strip()


def record_text(task: TaskSpec, record: Record) -> str:
    """Return the text the audit compares: the input fields, plus the target when it is a string."""
    text = joined_text(task, record)
    target = record.get(task.target_field) if task.target_field else None
    return f"{text}\n{target}" if isinstance(target, str) else text


# Multiplier of the polynomial rolling hash over word hashes (an odd 64-bit constant; arithmetic
# wraps modulo 2**64).
_ROLLING_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def ngram_hashes(normalized: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every word n-gram of each text, and the index of the text each one belongs to.

    A text with fewer than n words has no n-grams. NOTE: Python salts string hashes per process, so
    hashes are comparable only within one process; nothing here is stored on disk.
    """
    words = [text.split() for text in normalized]
    lengths = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    total = int(lengths.sum())
    if total < n:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    flat = np.fromiter((hash(word) for text_words in words for word in text_words), dtype=np.int64,
                       count=total).view(np.uint64)

    windows = total - n + 1
    hashes = np.zeros(windows, dtype=np.uint64)
    for offset in range(n):
        hashes = hashes * _ROLLING_MULTIPLIER + flat[offset:offset + windows]

    # Keep only windows that start and end inside one text.
    owner = np.repeat(np.arange(len(words)), lengths)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    position = np.arange(total) - starts[owner]
    valid = position[:windows] <= lengths[owner[:windows]] - n
    return hashes[valid], owner[:windows][valid]


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values; sorting is faster here than np.unique's hash-based path in numpy 2.x."""
    ordered = np.sort(values)
    if len(ordered) == 0:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def contains(sorted_unique: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Boolean mask of which `values` occur in the sorted, duplicate-free array `sorted_unique`."""
    if len(sorted_unique) == 0:
        return np.zeros(len(values), dtype=bool)
    positions = np.minimum(np.searchsorted(sorted_unique, values), len(sorted_unique) - 1)
    return sorted_unique[positions] == values


@dataclass(frozen=True)
class ReferenceIndex:
    """Normalized texts and sorted unique n-gram hashes of one reference split."""

    texts: frozenset[str]
    ngrams: np.ndarray

    @classmethod
    def build(cls, normalized: Sequence[str], n: int) -> ReferenceIndex:
        return cls(frozenset(normalized), sorted_unique(ngram_hashes(normalized, n)[0]))


@dataclass(frozen=True)
class TaskIndex:
    """Reference indexes of one task: the train pool, and the test content that the pool lacks."""

    pool: ReferenceIndex
    test_only: ReferenceIndex
    test_rows: int
    test_rows_in_pool: int


# Keyed by the id of the TaskData object, which is immutable and returned once per task by
# tasks.load. Each entry keeps a reference to that object, so the id cannot be reused meanwhile.
_INDEX_CACHE: dict[tuple[int, int], tuple[TaskData, TaskIndex]] = {}
_INDEX_CACHE_SIZE = 4


def task_index(data: TaskData, n: int = DEFAULT_NGRAM) -> TaskIndex:
    """Indexes of `data`, built once per TaskData object and n (the four most recent are kept)."""
    key = (id(data), n)
    if key not in _INDEX_CACHE:
        if len(_INDEX_CACHE) >= _INDEX_CACHE_SIZE:
            _INDEX_CACHE.pop(next(iter(_INDEX_CACHE)))
        _INDEX_CACHE[key] = (data, build_task_index(data, n))
    return _INDEX_CACHE[key][1]


def build_task_index(data: TaskData, n: int) -> TaskIndex:
    task = data.task
    pool = ReferenceIndex.build([normalize(record_text(task, r)) for r in data.pool.records], n)
    test_texts = [normalize(record_text(task, r)) for r in data.test.records]
    test = ReferenceIndex.build(test_texts, n)
    only_texts = test.texts - pool.texts
    only_ngrams = np.setdiff1d(test.ngrams, pool.ngrams, assume_unique=True)
    logger.debug("contamination index of %s: %d pool texts, %d test texts (%d also in the pool), "
                 "%d test %d-grams absent from the pool", task.name, len(pool.texts), len(test.texts),
                 len(test.texts) - len(only_texts), len(only_ngrams), n)
    return TaskIndex(pool=pool, test_only=ReferenceIndex(frozenset(only_texts), only_ngrams),
                     test_rows=len(test_texts), test_rows_in_pool=sum(t in pool.texts for t in test_texts))


@dataclass(frozen=True)
class Overlap:
    """How many synthetic examples match a reference exactly, or share an n-gram with it, and their shares."""

    exact: int
    exact_share: float
    ngram: int
    ngram_share: float


def overlap(normalized: Sequence[str], reference: ReferenceIndex, n: int) -> Overlap:
    exact = sum(text in reference.texts for text in normalized)
    hashes, owner = ngram_hashes(normalized, n)
    ngram = len(np.unique(owner[contains(reference.ngrams, hashes)]))
    total = max(len(normalized), 1)
    return Overlap(exact, exact / total, ngram, ngram / total)


def audit(synthetic: SyntheticSet, data: TaskData, n: int = DEFAULT_NGRAM,
          threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Contamination of a text set against `data`'s test split and train pool, as a JSON-ready dict.

    Keys: applicable, ngram, threshold, examples, test (overlap with test content absent from the
    pool), pool (memorization of pool rows), flagged and reason. Embedding sets are not applicable.
    """
    if n < 1:
        raise ValueError(f"contamination n-gram length {n} is invalid; use a positive number of words, e.g. 8")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"contamination threshold {threshold} is invalid; use a share in [0, 1), e.g. 0")
    if synthetic.task != data.task.name:
        raise ValueError(f"the set belongs to task {synthetic.task!r} but the data is of task "
                         f"{data.task.name!r}; audit a set against its own task")
    base = {"ngram": n, "threshold": threshold, "examples": len(synthetic)}
    if synthetic.form != "text":
        return {**base, "applicable": False, "flagged": False,
                "reason": f"an embedding set (backbone {synthetic.backbone}) has no text to compare"}

    index = task_index(data, n)
    normalized = [normalize(record_text(data.task, r)) for r in synthetic.records]
    test = overlap(normalized, index.test_only, n)
    pool = overlap(normalized, index.pool, n)
    flagged = test.exact_share > threshold or test.ngram_share > threshold
    reason = (f"{test.exact} examples equal a test example and {test.ngram} share a {n}-gram with one "
              f"(test content absent from the pool only); threshold {threshold:g}")
    if flagged:
        logger.warning("set of %s for task %s is flagged as contaminated: %s", synthetic.method, data.task.name,
                       reason)
    return {**base, "applicable": True, "test": asdict(test), "pool": asdict(pool),
            "test_rows": index.test_rows, "test_rows_in_pool": index.test_rows_in_pool,
            "flagged": flagged, "reason": reason}
