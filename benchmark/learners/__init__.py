"""Downstream learners. Every learner class registers here under its name."""

from __future__ import annotations

import importlib

from benchmark.learners.base import Learner, NotApplicableError, Recipe, TrainReport
from benchmark.registry import Registry

LEARNERS: Registry[type[Learner]] = Registry("learner")


def register(cls: type[Learner]) -> type[Learner]:
    """Class decorator: add a Learner subclass to the registry under its `name`."""
    LEARNERS.register(cls.name, cls)
    return cls


_BUILTIN_MODULES: list[str] = [
    "benchmark.learners.tfidf", "benchmark.learners.probe", "benchmark.learners.textcnn",
    "benchmark.learners.finetune",
    "benchmark.learners.sft",
    "benchmark.learners.paper",
]


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def get(name: str) -> type[Learner]:
    _load_builtins()
    return LEARNERS.get(name)


def names() -> list[str]:
    _load_builtins()
    return LEARNERS.names()


__all__ = ["LEARNERS", "Learner", "NotApplicableError", "Recipe", "TrainReport", "get", "names", "register"]
