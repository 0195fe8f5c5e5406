"""Method adapters. Every distiller registers here under its name."""

from __future__ import annotations

from benchmark.registry import Registry
from methods.base import Budget, DistillContext, Distiller, Pool

METHODS: Registry[type[Distiller]] = Registry("method")


def register(cls: type[Distiller], source: str = "builtin") -> type[Distiller]:
    """Class decorator: add a Distiller subclass to the registry under its `name`."""
    METHODS.register(cls.name, cls, source=source)
    return cls


def get(name: str) -> type[Distiller]:
    _load_builtins()
    return METHODS.get(name)


def names() -> list[str]:
    _load_builtins()
    return METHODS.names()


_BUILTIN_MODULES: list[str] = [
    "methods.random", "methods.herding", "methods.kcenters", "methods.kmeans", "methods.full",
    "methods.dd_bptt", "methods.gradient_matching", "methods.distribution_matching", "methods.trajectory_matching", "methods.attention_labels",
    "methods.dilm", "methods.vocab_projection", "methods.gradmm", "methods.lm_synthesis",
]


def _load_builtins() -> None:
    import importlib

    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    _load_plugins()


_plugins_scanned = False


def _load_plugins() -> None:
    """Register the adapters of installed packages (entry-point group `tddbench.methods`), once per process."""
    global _plugins_scanned
    if _plugins_scanned:
        return
    _plugins_scanned = True
    from benchmark.plugins import register_entry_points

    register_entry_points(METHODS)


__all__ = ["METHODS", "Budget", "DistillContext", "Distiller", "Pool", "get", "names", "register"]
