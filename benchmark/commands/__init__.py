"""Subcommands of the `tddbench` command line."""
