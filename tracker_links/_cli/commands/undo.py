"""``tracker-links undo JOURNAL``: delete exactly the links a bulk-link run created."""

from __future__ import annotations

import argparse

from .._bulk_run import BulkResult, bulk_exit, print_bulk, undo_run
from .._dry_run import undo_dry_run
from .._output import UI
from .._parser import add_command
from .._setup import make_client
from .._setup import run as run_async
from ._options import add_report

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        commands,
        "undo",
        "undo a bulk-link run",
        "Delete exactly the links that the bulk-link run whose journal is JOURNAL created;\n"
        "never a link it found already there (exists). Where the journal recorded a link's\n"
        "id, that very link is deleted, after checking it still joins the same two issues (a\n"
        "link re-created later between the pair stays); older journals fall back to the\n"
        "link's triple. --journal is this undo's own journal (another file): an interrupted\n"
        "undo, run again with it, sends nothing for what was done.",
        run=run,
    )
    p.add_argument("file", metavar="JOURNAL", help="the journal of the bulk-link run to undo")
    p.add_argument(
        "--journal",
        metavar="UNDO_JOURNAL",
        help="append each outcome of this undo to UNDO_JOURNAL (resume after a crash)",
    )
    add_report(p)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="send nothing; print to stdout what would be deleted (CSV), a blank line, then "
        "the summary",
    )


def run(args: argparse.Namespace, ui: UI) -> int:
    if args.dry_run:
        return undo_dry_run(ui, args)

    async def send() -> BulkResult:
        async with make_client(args) as client:
            return await undo_run(ui, client, args.file, journal=args.journal, report=args.report)

    result: BulkResult = run_async(send)
    print_bulk(ui, result, title="undo")
    return bulk_exit(result)
