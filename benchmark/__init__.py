"""TDD-Bench: a standardized benchmark suite for text dataset distillation."""

__version__ = "0.1.0"

# Version of the evaluation protocol (splits, budget check, scoring rules). Results of different
# protocol versions are never shown in one leaderboard table.
PROTOCOL_VERSION = "1"
