"""``--dry-run`` of bulk-link and bulk-unlink: what a run would send, and nothing sent."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import Counter
from typing import Any, TextIO

from .._delete_journal import DeleteJournal
from .._exceptions import InvalidInputError
from ._bulk_run import SHOWN
from ._errors import EXIT_FAILED, EXIT_OK, UsageError
from ._input import FIELDS, done_in_journal, open_input, read_rows
from ._output import UI, clip, n

__all__ = ["dry_run", "undo_dry_run"]


def _done(path: str, *, delete: bool) -> set[bytes]:
    """What the journal at ``path`` records as done (links made; for deletes, links gone)."""
    if not delete:
        return done_in_journal(path)
    if not os.path.exists(path):
        return set()
    try:
        journal = DeleteJournal(path)
    except OSError as exc:
        raise UsageError(f"cannot read the journal {path}: {exc.strerror or exc}") from None
    journal.close()
    return journal.done


def dry_run(ui: UI, args: argparse.Namespace, *, delete: bool = False) -> int:
    """Validate and de-duplicate the input; print what would be sent; send nothing.

    The identity of a link (either spelling) is the library's (:attr:`LinkSpec.digest`), and
    what is done is read from the journal as the run would read it.
    """
    done = _done(args.journal, delete=delete) if args.journal else set()
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
                writer.writerow([*FIELDS, *data.history])
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
                            history = spec.history
                            writer.writerow(
                                [
                                    spec.source,
                                    spec.relationship.value,
                                    spec.target,
                                    *(history.get(f, "") for f in data.history),
                                ]
                            )
                        else:
                            print(json.dumps(spec.as_dict(), ensure_ascii=False), file=sys.stdout)
                if report is not None:
                    report.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if report is not None:
            report.close()
    rows_out = [
        ["would delete" if delete else "would send", n(counts["send"])],
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


def undo_dry_run(ui: UI, args: argparse.Namespace) -> int:
    """What ``undo JOURNAL`` would delete: one CSV row per link; nothing is sent."""
    from .._bulk_delete import LinkToDelete
    from .._delete_journal import identity
    from .._undo import read_undo

    done = _done(args.journal, delete=True) if args.journal else set()
    try:
        items = read_undo(args.file)
    except InvalidInputError as exc:
        raise UsageError(exc.message) from None
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([*FIELDS, "link_id", "journal_line"])
    counts: Counter[str] = Counter()
    shown: list[str] = []
    for item in items:
        if not isinstance(item, LinkToDelete):
            counts["bad"] += 1
            if len(shown) < SHOWN:
                shown.append(f"line {item.line}: {item.reason}")
            continue
        if identity(item.spec, item.link_id) in done:
            counts["journal"] += 1
            continue
        counts["send"] += 1
        spec = item.spec
        writer.writerow(
            [spec.source, spec.relationship.value, spec.target, item.link_id or "", item.line]
        )
    ui.out()
    rows = [
        ["would delete", f"{n(counts['send'])}  (the links the run created, by id when known)"],
        ["in the journal", f"{n(counts['journal'])}  (undone already)"],
        ["bad lines", n(counts["bad"])],
    ]
    ui.table(["", ""], rows, title="dry run: nothing was sent", show_header=False)
    if items.garbled:
        ui.out(f"{n(items.garbled)} journal lines are not records (torn writes): passed over")
    for text in shown:
        ui.out(f"  {text}")
    return EXIT_FAILED if counts["bad"] else EXIT_OK
