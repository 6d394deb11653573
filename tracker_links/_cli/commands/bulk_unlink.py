"""``tracker-links bulk-unlink FILE``: delete the links of a file (or show what would be sent).

The counterpart of ``bulk-link``, with its input formats, options, progress, summary and exit
statuses: the same modules run it (``_bulk_run`` with ``delete_many``; ``bulk-link``'s dry run
with the delete journal).
"""

from __future__ import annotations

import argparse

from ..._delete_journal import read_removed
from .._bulk_run import BulkResult, bulk_exit, bulk_link, print_bulk
from .._output import UI
from .._parser import add_command
from .._setup import make_client
from .._setup import run as run_async
from .bulk_link import _dry_run

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        commands,
        "bulk-unlink",
        "delete the links of a file",
        "Delete every link of FILE ('-' reads stdin), in the input formats of bulk-link: CSV\n"
        "with the header source,relationship,target, or JSON Lines with those keys. Each link\n"
        "is 'deleted', or 'absent' when there is no such link (not an error). Only the links\n"
        "named are deleted: a link of another relationship between the same two issues stays.\n"
        "Each costs a GET of the source's links (shared by the lines of one source that come\n"
        "close together) and a DELETE. The same link twice (in either spelling) is one item;\n"
        "a bad line fails on its own, with its line number, and the rest goes on (exit 1).",
        run=run,
    )
    p.add_argument("file", metavar="FILE", help="the input file, or - for stdin")
    p.add_argument(
        "--format", choices=("auto", "csv", "jsonl"), default="auto",
        help="the input format (default: auto, from the first line)",
    )  # fmt: skip
    p.add_argument(
        "--journal",
        metavar="PATH",
        help="append each outcome to PATH; a re-run with the same journal sends nothing for "
        "what is done (resume after a crash)",
    )
    p.add_argument(
        "--report", metavar="PATH", help="write one outcome per line (JSON Lines) to PATH"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and de-duplicate the input, send nothing; print to stdout what would "
        "be deleted (as CSV or JSON Lines, like the input), a blank line, then the summary",
    )


def run(args: argparse.Namespace, ui: UI) -> int:
    if args.dry_run:
        done = read_removed(args.journal)[0] if args.journal else set()
        return _dry_run(ui, args, done=done, found="absent")

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
                many=client.links.delete_many,
            )

    result: BulkResult = run_async(send)
    print_bulk(ui, result, title="bulk-unlink", done=("deleted", "absent"))
    return bulk_exit(result)
