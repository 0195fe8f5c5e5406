"""Method adapters from installed packages, found through the `tddbench.methods` entry-point group.

A package declares `[project.entry-points."tddbench.methods"]` with `<method name> = "module:Class"`.
Each loaded class is registered with the source `entry-point:<distribution name>`. An entry point
that fails to import or does not name a Distiller is skipped with a WARNING, so one broken package
never stops the command line.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from benchmark.registry import DuplicateNameError, Registry
from methods.base import Distiller

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tddbench.methods"


@dataclass
class PluginScan:
    """Outcome of one scan of the entry-point group: registered method names and skipped entries."""

    loaded: dict[str, str] = field(default_factory=dict)  # method name -> source
    skipped: dict[str, str] = field(default_factory=dict)  # "name = value" -> reason


def distribution_name(entry_point: importlib.metadata.EntryPoint) -> str:
    """Name of the installed distribution that declares `entry_point`, or "unknown"."""
    dist = getattr(entry_point, "dist", None)
    return dist.metadata["Name"] if dist is not None and dist.metadata["Name"] else "unknown"


def load_entry_point(entry_point: importlib.metadata.EntryPoint) -> type[Distiller]:
    """Import the class an entry point names and check that it is a usable Distiller subclass."""
    try:
        obj = entry_point.load()
    except Exception as error:  # any import-time failure of third-party code must be contained
        raise ImportError(f"importing {entry_point.value!r} failed: {type(error).__name__}: {error}") from error
    if not (inspect.isclass(obj) and issubclass(obj, Distiller)):
        raise TypeError(f"{entry_point.value!r} is {obj!r}, not a subclass of methods.base.Distiller")
    if inspect.isabstract(obj):
        raise TypeError(f"{entry_point.value!r} is abstract; it must implement distill()")
    name = getattr(obj, "name", None)
    if name != entry_point.name:
        raise ValueError(f"the entry point is named {entry_point.name!r} but {entry_point.value} has "
                         f"name = {name!r}; use the class's `name` as the entry-point name")
    return obj


def register_entry_points(registry: Registry[type[Distiller]],
                          entry_points: Iterable[importlib.metadata.EntryPoint] | None = None) -> PluginScan:
    """Register the adapter of every entry point in `registry`; broken ones are logged and skipped.

    `entry_points` defaults to the installed entry points of the `tddbench.methods` group.
    """
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    scan = PluginScan()
    for entry_point in entry_points:
        dist = distribution_name(entry_point)
        label = f"{entry_point.name} = {entry_point.value}"
        try:
            cls = load_entry_point(entry_point)
            source = f"entry-point:{dist}"
            # A module that also applies methods.register on import has already added the class
            # (as "builtin"); the entry point then only corrects its source.
            already = cls.name in registry and registry.get(cls.name) is cls
            registry.register(cls.name, cls, source=source, replace=already)
        except (ImportError, TypeError, ValueError, DuplicateNameError) as error:
            reason = str(error)
            logger.warning("skipped method plugin %r from package %s (group %s): %s. Fix or uninstall "
                           "that package", label, dist, ENTRY_POINT_GROUP, reason)
            scan.skipped[label] = reason
            continue
        scan.loaded[cls.name] = source
        logger.debug("registered method %r from %s", cls.name, source)
    return scan
