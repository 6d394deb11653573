"""``tracker-links bulk-unlink FILE``: delete the links of a file (or show what would go)."""

from __future__ import annotations

import argparse

from .._bulk_run import BulkResult, bulk_exit, bulk_link, print_bulk
from .._dry_run import dry_run
from .._output import UI
from .._parser import add_command
from .._setup import make_client
from .._setup import run as run_async
from .bulk_link import add_file_options

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
    if args.dry_run:
        return dry_run(ui, args, delete=True)

    async def send() -> BulkResult:
        async with make_client(args) as client:
            return await bulk_link(
                ui,
                client,
                args.file,
                fmt=args.format,
                journal=args.journal,
                report=args.report,
                description="unlinking",
                delete=True,
            )

    result: BulkResult = run_async(send)
    print_bulk(ui, result, title="bulk-unlink")
    return bulk_exit(result)
