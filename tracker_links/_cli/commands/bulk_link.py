"""``tracker-links bulk-link FILE``: create the links of a file (or show what would be sent)."""

from __future__ import annotations

import argparse

from .._bulk_run import BulkResult, bulk_exit, bulk_link, print_bulk
from .._dry_run import dry_run
from .._output import UI
from .._parser import add_command
from .._setup import make_client
from .._setup import run as run_async
from ._options import add_format, add_report

__all__ = ["add_file_options", "register", "run", "run_file"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        commands,
        "bulk-link",
        "create the links of a file",
        "Create every link of FILE ('-' reads stdin): CSV with the header\n"
        "source,relationship,target, or JSON Lines with those keys. The same link twice (in\n"
        "either spelling) is created once. A bad line fails on its own, with its line number\n"
        "(the header is line 1), and the rest goes on (exit 1). A file that cannot be read or\n"
        "has no usable header is exit 2. Every line is accounted for in the summary (items,\n"
        "bad lines, blank/header). A quoted field may run across up to 10 lines; a quote\n"
        "still open after that (a stray '\"') makes its line a bad line, and the lines after\n"
        "it are read on their own.\n\n"
        "Migrations: the optional columns (or keys) created_at, created_by, updated_at,\n"
        "updated_by give a link its history: a row with created_at (YYYY-MM-DDThh:mm:ss.sss\n"
        "+hhmm) and created_by (a login or a numeric user id) is imported with them (the\n"
        "import endpoint; an administrator's token). Keys of moved issues are followed to\n"
        "their new keys, and the summary lists them.",
        run=run,
    )
    add_file_options(p, "sent")


def add_file_options(p: argparse.ArgumentParser, sent: str) -> None:
    """FILE, --format, --journal, --report and --dry-run (bulk-link, bulk-unlink)."""
    p.add_argument("file", metavar="FILE", help="the input file, or - for stdin")
    add_format(p, "input format")
    p.add_argument(
        "--journal",
        metavar="PATH",
        help="append each outcome to PATH; a re-run with the same journal sends nothing for "
        "what is done (resume after a crash)",
    )
    add_report(p)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help=f"validate and de-duplicate the input, send nothing; print to stdout what would "
        f"be {sent} (as CSV or JSON Lines, like the input), a blank line, then the summary",
    )


def run(args: argparse.Namespace, ui: UI) -> int:
    return run_file(args, ui)


def run_file(args: argparse.Namespace, ui: UI, *, delete: bool = False) -> int:
    """bulk-link (``delete``: bulk-unlink) of ``args.file``, or its dry run; the exit status."""
    if args.dry_run:
        return dry_run(ui, args, delete=delete)

    async def send() -> BulkResult:
        async with make_client(args) as client:
            return await bulk_link(
                ui,
                client,
                args.file,
                fmt=args.format,
                journal=args.journal,
                report=args.report,
                description="unlinking" if delete else "linking",
                delete=delete,
            )

    result: BulkResult = run_async(send)
    print_bulk(ui, result, title="bulk-unlink" if delete else "bulk-link")
    return bulk_exit(result)
