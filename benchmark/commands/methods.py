"""`tddbench methods`: list the registered method adapters with category, form, tracks and families."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("methods", help="list method adapters with category, form, tracks, "
                                                   "families and where each is registered from")
    parser.set_defaults(func=run)


def method_rows() -> list[tuple[str, ...]]:
    """One row of column strings per registered method, sorted by name."""
    import methods  # imports torch, so only when the command runs

    rows = []
    for name in methods.names():
        info = methods.get(name).describe()
        rows.append((name, info["category"], info["form"], ",".join(info["tracks"]),
                     ",".join(info["families"]), methods.METHODS.source(name)))
    return rows


def run(args: argparse.Namespace) -> int:
    columns = ("method", "category", "form", "tracks", "families", "source")
    rows = method_rows()
    widths = [max([len(column), *(len(row[i]) for row in rows)]) for i, column in enumerate(columns)]
    header = "  ".join(column.ljust(width) for column, width in zip(columns, widths)).rstrip()
    print(header)
    print("-" * len(header))
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())
    return 0
