"""One registry helper for every pluggable kind: tasks, methods, learners, backbones."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a registry has no entry of the requested name."""

    def __str__(self) -> str:  # KeyError quotes its argument; show the message as written
        return str(self.args[0])


class DuplicateNameError(ValueError):
    """Raised when two entries are registered under one name."""


class Registry(Generic[T]):
    """Map names to objects of one kind, and record where each entry came from."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._sources: dict[str, str] = {}

    def register(self, name: str, obj: T | None = None, *, source: str = "builtin",
                 replace: bool = False) -> Callable[[T], T] | T:
        """Add `obj` under `name`; without `obj`, return a decorator that adds what it wraps."""
        def add(entry: T) -> T:
            if name in self._entries and not replace:
                raise DuplicateNameError(
                    f"{self.kind} {name!r} is already registered (from {self._sources[name]}); "
                    f"choose another name or pass replace=True")
            self._entries[name] = entry
            self._sources[name] = source
            return entry

        if obj is None:
            return add
        return add(obj)

    def get(self, name: str) -> T:
        """Return the entry called `name`, or raise with the known names and the closest match."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        return f"unknown {self.kind} {name!r}{hint} Known {self.kind}s: {', '.join(known)}"

    def source(self, name: str) -> str:
        self.get(name)
        return self._sources[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
