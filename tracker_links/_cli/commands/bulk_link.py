"""``tracker-links bulk-link FILE``: create the links of a file (or show what would be sent)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from typing import Any, TextIO

from .._bulk_run import SHOWN, BulkResult, bulk_exit, bulk_link, print_bulk
from .._errors import EXIT_FAILED, EXIT_OK, UsageError
from .._input import FIELDS, done_in_journal, open_input, read_rows
from .._output import UI, clip, n
from .._parser import add_command
from .._setup import make_client
from .._setup import run as run_async

__all__ = ["register", "run"]


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
        "be sent (as CSV or JSON Lines, like the input), a blank line, then the summary",
    )


def run(args: argparse.Namespace, ui: UI) -> int:
    if args.dry_run:
        return _dry_run(ui, args)

    async def send() -> BulkResult:
        async with make_client(args) as client:
            return await bulk_link(
                ui, client, args.file, fmt=args.format, journal=args.journal, report=args.report
            )

    result: BulkResult = run_async(send)
    print_bulk(ui, result)
    return bulk_exit(result)


def _dry_run(ui: UI, args: argparse.Namespace) -> int:
    """Validate and de-duplicate the input; print what would be sent; send nothing."""
    done = done_in_journal(args.journal) if args.journal else set()
    first: dict[bytes, int] = {}
    counts: Counter[str] = Counter()
    shown: list[str] = []
    bad = 0
    report: TextIO | None = None
    if args.report:
        try:
            report = open(args.report, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot write the report {args.report}: {exc.strerror}") from None
    try:
        with open_input(args.file) as stream:
            name = "stdin" if args.file == "-" else args.file
            data = read_rows(stream, args.format, name)
            writer = csv.writer(sys.stdout, lineterminator="\n") if data.fmt == "csv" else None
            if writer is not None:
                writer.writerow(FIELDS)
            for row in data.rows:
                record: dict[str, Any] = {"line": row.line}
                if row.spec is None:
                    bad += 1
                    if len(shown) < SHOWN:
                        shown.append(f"line {row.line}: {clip(row.raw, 60)!r}: {row.reason}")
                    record.update(status="failed", input=row.raw, reason=row.reason)
                else:
                    spec = row.spec
                    record.update(spec.as_dict())
                    key = spec.digest
                    if key in done:
                        counts["journal"] += 1
                        record.update(status="exists", note="already done in the journal")
                    elif key in first:
                        counts["repeat"] += 1
                        record.update(status="exists", note=f"same link as line {first[key]}")
                    else:
                        first[key] = row.line
                        counts["send"] += 1
                        record["status"] = "send"
                        if writer is not None:
                            writer.writerow([spec.source, spec.relationship.value, spec.target])
                        else:
                            print(json.dumps(spec.as_dict(), ensure_ascii=False), file=sys.stdout)
                if report is not None:
                    report.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if report is not None:
            report.close()
    rows_out = [
        ["would send", n(counts["send"])],
        ["repeats", f"{n(counts['repeat'])}  (the same link earlier in the input)"],
        ["in the journal", f"{n(counts['journal'])}  (already done)"],
        ["bad lines", n(bad)],
    ]
    # The list, then the summary, all on stdout (--report PATH holds the plan as JSON Lines).
    ui.out()
    if not (bad or counts):
        ui.out(f"dry run: nothing to do: the input holds no data lines ({data.count.text()})")
        return EXIT_OK
    ui.table(["", ""], rows_out, title="dry run: nothing was sent", show_header=False)
    ui.out(f"input: {data.count.text()}")
    if bad:
        more = f"first {SHOWN} of {n(bad)}, " if bad > SHOWN else ""
        ui.out(f"bad lines ({more}by line):")
        for text in shown:
            ui.out(f"  {text}")
    return EXIT_FAILED if bad else EXIT_OK
