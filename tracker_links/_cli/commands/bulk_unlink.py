"""``tracker-links bulk-unlink FILE``: delete the links of a file (or show what would go)."""

from __future__ import annotations

import argparse

from .._output import UI
from .._parser import add_command
from .bulk_link import add_file_options, run_file

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        commands,
        "bulk-unlink",
        "delete the links of a file",
        "Delete every link of FILE ('-' reads stdin), read as bulk-link reads it: CSV with\n"
        "the header source,relationship,target, or JSON Lines with those keys. Each link is\n"
        "deleted (this run removed it) or absent (it was not there: not a failure). Only\n"
        "the links asked for go: a link of another relationship between the same issues\n"
        "stays. A bad line fails on its own, with its line number, and the rest goes on\n"
        "(exit 1). --journal makes a re-run send nothing for what is done.",
        run=run,
    )
    add_file_options(p, "deleted")


def run(args: argparse.Namespace, ui: UI) -> int:
    return run_file(args, ui, delete=True)
