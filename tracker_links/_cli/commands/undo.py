"""``tracker-links undo JOURNAL``: delete exactly the links a bulk-link run created.

The run goes through the delete engine (``_undo.undo_many``) and the modules of ``bulk-link``
(its sink, progress, summary, Ctrl-C handling and exit statuses).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, TextIO

from ... import _undo
from ..._bulk_delete import BadItem, LinkToDelete, delete_many
from ..._client import TrackerClient
from ..._delete_journal import identity, read_removed
from ..._exceptions import InvalidInputError
from .._bulk_run import (
    DELETE_STATUSES,
    PARTIAL,
    SHOWN,
    BulkResult,
    _BulkSink,
    bulk_exit,
    check_writable,
    print_bulk,
    spec_text,
)
from .._errors import EXIT_FAILED, EXIT_OK, UsageError
from .._input import LineCount
from .._output import UI, n
from .._parser import add_command, usage
from .._progress import Progress
from .._setup import aclose, interruptible, make_client, service_counts
from .._setup import run as run_async

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        commands,
        "undo",
        "delete the links a bulk-link run created",
        "Undo a bulk-link (or bulk_create) run from its journal: delete exactly the links it\n"
        "created, never those it found already there ('exists'). Where the journal recorded\n"
        "the link's id, that very link is deleted, once the issue's links show the id still\n"
        "joining the same two issues: a link re-created later between the same pair stays.\n"
        "A journal written before ids were recorded falls back to the triple (whatever link\n"
        "of that relationship joins the pair now). Each link is 'deleted', or 'absent' when\n"
        "it is gone already. Lines are those of JOURNAL.",
        run=run,
        usage=usage("undo", "JOURNAL [--dry-run] [--journal UNDO_JOURNAL] [--report FILE]"),
    )
    p.add_argument("undone", metavar="JOURNAL", help="the journal of the run to undo")
    p.add_argument(
        "--journal",
        metavar="UNDO_JOURNAL",
        help="this undo's own journal (another file): a re-run with it sends nothing for what "
        "is done (resume after a crash or Ctrl-C)",
    )
    p.add_argument(
        "--report", metavar="FILE", help="write one outcome per line (JSON Lines) to FILE"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be deleted (one line each), send nothing",
    )


def _items(args: argparse.Namespace) -> _undo.UndoItems:
    try:
        return _undo.check_journals(args.undone, args.journal)
    except InvalidInputError as exc:
        raise UsageError(exc.message) from None


def run(args: argparse.Namespace, ui: UI) -> int:
    items = _items(args)
    if args.dry_run:
        return _dry_run(ui, args, items)

    async def send() -> BulkResult:
        async with make_client(args) as client:
            return await _run(ui, client, args, items)

    result: BulkResult = run_async(send)
    print_bulk(ui, result, title="undo")
    return bulk_exit(result)


async def _run(
    ui: UI, client: TrackerClient, args: argparse.Namespace, items: _undo.UndoItems
) -> BulkResult:
    journal: str | None = args.journal
    if journal is not None:
        check_writable(journal, "journal")
    if args.report:
        check_writable(args.report, "report")
    # Opening a local file is quick: not worth a worker thread.
    report_file = open(args.report, "w", encoding="utf-8") if args.report else None  # noqa: SIM115, ASYNC230
    total = items.count() if ui.live else None
    try:
        service = service_counts(client)
        with Progress(ui, "undoing", total, DELETE_STATUSES, service=service) as progress:
            sink = _BulkSink(progress, report_file)

            def lines() -> Iterator[LinkToDelete | BadItem]:
                for item in items:
                    sink.lines.append(item.line or 0)
                    yield item

            started = time.perf_counter()
            try:
                async with interruptible() as interrupt:
                    outcomes = delete_many(client.links._ops, lines(), journal=journal)
                    try:
                        async for outcome in outcomes:
                            sink.outcome(outcome)
                    finally:
                        await aclose(outcomes)
            finally:
                sink.close()
            elapsed = time.perf_counter() - started
        if report_file is not None and interrupt.interrupted:
            report_file.write(json.dumps(PARTIAL) + "\n")
    finally:
        if report_file is not None:
            report_file.close()
    garbled = f"; {n(items.garbled)} garbled lines passed over" if items.garbled else ""
    return BulkResult(
        counts=sink.counts,
        items=sink.items,
        bad_lines=0,
        problems=sink.problems,
        shown=sorted(sink.shown),
        elapsed=elapsed,
        auth=sink.auth,
        problems_path=args.report if args.report else sink.overflow_path,
        report_path=args.report,
        journal=journal,
        lines=LineCount(),
        interrupted=interrupt.interrupted,
        statuses=DELETE_STATUSES,
        input_note=f"undone: {args.undone}, {n(sink.items)} links its run created{garbled}",
    )


def _how(item: LinkToDelete) -> str:
    if item.link_id is not None:
        return f"link {item.link_id} on {item.spec.source}"
    if item.since is not None:
        return "read back (the create was in flight)"
    return "by triple (no link id in the journal)"


def _dry_run(ui: UI, args: argparse.Namespace, items: _undo.UndoItems) -> int:
    """List what would be deleted, one line each; send nothing."""
    done = read_removed(args.journal)[0] if args.journal else set()
    seen: set[bytes] = set()
    counts: Counter[str] = Counter()
    bad: list[str] = []
    report: TextIO | None = None
    if args.report:
        check_writable(args.report, "report")
        report = open(args.report, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for item in items:
            record: dict[str, Any] = {"line": item.line}
            if isinstance(item, BadItem):
                counts["bad"] += 1
                if len(bad) < SHOWN:
                    bad.append(f"line {item.line}: {item.reason}")
                record.update(status="failed", reason=item.reason)
            else:
                record.update(item.spec.as_dict())
                if item.link_id is not None:
                    record["link_id"] = item.link_id
                key = identity(item.spec, item.link_id)
                if key in done:
                    counts["journal"] += 1
                    record.update(status="absent", note="already done in the journal")
                elif key in seen:
                    counts["repeat"] += 1
                    record.update(status="absent", note="a repeat")
                else:
                    seen.add(key)
                    counts["delete"] += 1
                    record["status"] = "delete"
                    ui.out(f"line {item.line}: {spec_text(item.spec)}: {_how(item)}")
            if report is not None:
                report.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if report is not None:
            report.close()
    ui.out()
    rows = [
        ["would delete", n(counts["delete"])],
        ["in the undo journal", f"{n(counts['journal'])}  (already done)"],
        ["repeats", n(counts["repeat"])],
        ["unreadable", n(counts["bad"])],
    ]
    ui.table(["", ""], rows, title="dry run: nothing was sent", show_header=False)
    ui.out(f"undone: {args.undone}, {n(sum(counts.values()))} links its run created")
    for text in bad:
        ui.out(f"  {text}")
    return EXIT_FAILED if counts["bad"] else EXIT_OK
