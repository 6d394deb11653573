"""A bulk run: input rows into ``create_many`` (or ``delete_many``), outcomes into counts, a
report and a summary."""

from __future__ import annotations

import json
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final, TextIO

import attrs

from .._client import TrackerClient
from .._exceptions import AuthError, InvalidInputError, TrackerError
from .._models import LinkSpec
from .._reports import Outcome, OutcomeStatus
from ._errors import (
    CREDENTIALS_HINT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
)
from ._input import LineCount, Row, count_items, open_input, read_rows
from ._output import UI, clip, n
from ._progress import Progress
from ._setup import aclose, interruptible, service_counts

__all__ = ["SHOWN", "BulkResult", "bulk_exit", "bulk_link", "check_writable", "print_bulk"]

SHOWN: Final = 20  # failures listed at the end of a run; the rest are in a file
CREATE_STATUSES: Final = ("created", "exists", "failed", "skipped")
DELETE_STATUSES: Final = ("deleted", "absent", "failed", "skipped")
PARTIAL: Final = {"partial": True, "reason": "interrupted"}
"""The last line of a ``--report`` file when the run was interrupted (Ctrl-C)."""


def spec_text(spec: object) -> str:
    """``PROJ-1 depends on PROJ-2``, or the raw item when it is not a spec."""
    if isinstance(spec, LinkSpec):
        return f"{spec.source} {spec.relationship.value} {spec.target}"
    return clip(repr(spec), 60)


@attrs.define
class BulkResult:
    """What a bulk run did, for the summary and the exit status."""

    counts: Counter[str]
    items: int
    bad_lines: int
    problems: int
    shown: list[tuple[int, str]]
    elapsed: float
    auth: TrackerError | None
    problems_path: str | None
    report_path: str | None
    journal: str | None
    lines: LineCount | None  # None: the input was a journal (undo)
    interrupted: bool = False
    statuses: tuple[str, ...] = CREATE_STATUSES
    moved: dict[str, str] = attrs.field(factory=dict)
    """The moved issues the input named: old key -> the key the links went to."""


class _BulkSink:
    """Takes every outcome (and every bad line) as it comes: counts, report, failures, progress.

    Memory stays bounded: the report is written as it goes, only the first failures are kept,
    and the others go to the report (or to a temporary file when there is no report).
    """

    def __init__(self, progress: Progress, report: TextIO | None) -> None:
        self.progress = progress
        self.report = report
        self.counts: Counter[str] = Counter({s.value: 0 for s in OutcomeStatus})
        self.items = 0
        self.bad_lines = 0
        self.problems = 0
        self.shown: list[tuple[int, str]] = []
        self._kept: list[dict[str, Any]] = []
        self.overflow: TextIO | None = None
        self.overflow_path: str | None = None
        self.auth: TrackerError | None = None
        self._forbidden: TrackerError | None = None
        self.lines: array[int] = array("Q")  # line number of the spec passed at each index
        self.moved: dict[str, str] = {}  # moved issues seen: old key -> new key

    def bad_line(self, row: Row) -> None:
        """A data line that is not a link spec: an item that failed, without a request."""
        self.bad_lines += 1
        record: dict[str, Any] = {
            "line": row.line,
            "status": OutcomeStatus.FAILED.value,
            "input": row.raw,
            "error": "InvalidInputError",
            "reason": f"InvalidInputError: {row.reason}",
        }
        shown = f"line {row.line}: {clip(row.raw, 60)!r}: {row.reason}"
        self._add(OutcomeStatus.FAILED, record, row.line, shown)

    def outcome(self, outcome: Outcome) -> None:
        """An outcome of the library, whose index maps back to a line of the input."""
        record = outcome.to_json()  # "index" and "line", numbered as the journal numbers them
        line = outcome.line if outcome.line is not None else self.lines[outcome.index]
        record["line"] = line
        first = outcome.repeat_of
        if first is not None and first < len(self.lines):  # say it with lines, not items
            same = f"same link as line {self.lines[first]}"
            if "reason" in record:
                record["reason"] = f"{same}, which failed"
            else:
                record["note"] = same
        shown = None
        if not outcome.ok:
            reason = record.get("reason") or record.get("note") or outcome.status.value
            shown = f"line {line}: {spec_text(outcome.spec)}: {reason}"
        if self.auth is None:
            # A 401 stops the batch; a 403 stops it only when its first items were all refused
            # (a wrong organization): one forbidden queue fails its own items, the rest go on.
            error = outcome.error
            if isinstance(error, AuthError):
                if error.status_code == 403:
                    self._forbidden = self._forbidden or error
                else:
                    self.auth = error
            elif outcome.status is OutcomeStatus.SKIPPED and "after AuthError" in (
                outcome.note or ""
            ):
                self.auth = self._forbidden
        if outcome.moved:
            self._moved(outcome.moved)
        self._add(outcome.status, record, line, shown)

    def _moved(self, moved: dict[str, str]) -> None:
        """Count each moved key once (the progress bar's ``moved`` counter)."""
        fresh = [old for old in moved if old not in self.moved]
        self.moved.update(moved)
        if fresh:
            self.progress.advance("moved", len(fresh), done=0)

    def _add(
        self, status: OutcomeStatus, record: dict[str, Any], line: int, shown: str | None
    ) -> None:
        self.items += 1
        self.counts[status.value] += 1
        if self.report is not None:
            self.report.write(json.dumps(record, ensure_ascii=False) + "\n")
        if shown is not None:
            self.problems += 1
            if len(self.shown) < SHOWN:
                self.shown.append((line, shown))
                self._kept.append(record)
            elif self.report is None:
                self._overflow(record)
        self.progress.advance(status.value)

    def _overflow(self, record: dict[str, Any]) -> None:
        """No --report and more failures than shown: keep them all in a temporary file."""
        if self.overflow is None:
            fd, self.overflow_path = tempfile.mkstemp(
                prefix="tracker-links-failures-", suffix=".jsonl"
            )
            self.overflow = open(fd, "w", encoding="utf-8")  # noqa: SIM115
            for kept in self._kept:
                self.overflow.write(json.dumps(kept, ensure_ascii=False) + "\n")
        self.overflow.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self.overflow is not None:
            self.overflow.close()


async def _bulk_send(
    client: TrackerClient,
    rows: Iterator[Row],
    sink: _BulkSink,
    journal: str | None,
    *,
    delete: bool,
) -> None:
    """Feed the valid rows to ``create_many`` (``delete_many``), the bad ones to the sink."""

    def specs() -> Iterator[dict[str, Any]]:
        # Mappings with the line, so that the library's outcomes and journal carry it too.
        for row in rows:
            spec = row.spec
            if spec is None:
                sink.bad_line(row)
            else:
                sink.lines.append(row.line)
                yield {
                    "source": spec.source,
                    "target": spec.target,
                    "relationship": spec.relationship,
                    "line": row.line,
                    **spec.history,  # created_at, created_by, ...: imported with them
                }

    start = client.links.delete_many if delete else client.links.create_many
    outcomes = start(specs(), journal=journal)
    try:
        async for outcome in outcomes:
            sink.outcome(outcome)
    finally:
        await aclose(outcomes)


def check_writable(path: str, what: str) -> None:
    """Exit 2 now, before any request, when ``path`` cannot be written."""
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write the {what} {path}: {exc.strerror or exc}") from None


def _open_report(report: str | None) -> TextIO | None:
    """The report file, open for writing; exit 2 now when it cannot be."""
    if report is None:
        return None
    try:
        # Opening a local file is quick: not worth a worker thread.
        return open(report, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the report {report}: {exc.strerror or exc}") from None


def _result(
    sink: _BulkSink,
    elapsed: float,
    report: str | None,
    journal: str | None,
    *,
    lines: LineCount | None,
    interrupted: bool,
    statuses: tuple[str, ...],
    bad_lines: int = 0,
    moved: dict[str, str] | None = None,
) -> BulkResult:
    """What a bulk run did, from what its sink saw."""
    return BulkResult(
        counts=sink.counts,
        items=sink.items,
        bad_lines=bad_lines,
        problems=sink.problems,
        shown=sorted(sink.shown),
        elapsed=elapsed,
        auth=sink.auth,
        problems_path=report if report is not None else sink.overflow_path,
        report_path=report,
        journal=journal,
        lines=lines,
        interrupted=interrupted,
        statuses=statuses,
        moved={} if moved is None else moved,
    )


async def _into_sink(
    ui: UI,
    client: TrackerClient,
    description: str,
    total: int | None,
    statuses: tuple[str, ...],
    report_file: TextIO | None,
    send: Callable[[_BulkSink], Awaitable[None]],
) -> tuple[_BulkSink, float, bool]:
    """Run ``send`` into a sink under a progress bar, Ctrl-C ending it (the report then says
    it is partial): the sink, the seconds it took, and whether it was interrupted."""
    with Progress(ui, description, total, statuses, service=service_counts(client)) as progress:
        sink = _BulkSink(progress, report_file)
        started = time.perf_counter()
        try:
            async with interruptible() as interrupt:
                await send(sink)
        finally:
            sink.close()
        elapsed = time.perf_counter() - started
    if report_file is not None and interrupt.interrupted:
        report_file.write(json.dumps(PARTIAL) + "\n")
    return sink, elapsed, interrupt.interrupted


async def bulk_link(
    ui: UI,
    client: TrackerClient,
    path: str,
    *,
    fmt: str = "auto",
    journal: str | None = None,
    report: str | None = None,
    description: str = "linking",
    delete: bool = False,
) -> BulkResult:
    """Read ``path`` and create (``delete``: delete) its links; return what happened.

    Nothing is printed but the progress bar.
    """
    if journal is not None:
        check_writable(journal, "journal")
    report_file = _open_report(report)
    try:
        with open_input(path) as stream:
            data = read_rows(stream, fmt, "stdin" if path == "-" else path)
            total = count_items(path, data.fmt) if ui.live else None
            counters = DELETE_STATUSES if delete else CREATE_STATUSES

            async def send(sink: _BulkSink) -> None:
                await _bulk_send(client, data.rows, sink, journal, delete=delete)

            sink, elapsed, interrupted = await _into_sink(
                ui, client, description, total, counters, report_file, send
            )
    finally:
        if report_file is not None:
            report_file.close()
    return _result(
        sink,
        elapsed,
        report,
        journal,
        lines=data.count,
        interrupted=interrupted,
        statuses=counters,
        bad_lines=sink.bad_lines,
        moved=sink.moved,
    )


async def undo_run(
    ui: UI, client: TrackerClient, path: str, *, journal: str | None, report: str | None
) -> BulkResult:
    """Undo the bulk-link run whose journal is ``path`` (``client.links.undo``)."""
    if journal is not None:
        check_writable(journal, "journal")
    total = None
    if ui.live:
        from .._undo import read_undo

        try:
            total = read_undo(path).count()
        except InvalidInputError as exc:
            raise UsageError(exc.message) from None
    report_file = _open_report(report)

    async def send(sink: _BulkSink) -> None:
        await client.links.undo(
            path, journal=journal, on_progress=lambda _d, _t, o: sink.outcome(o)
        )

    try:
        sink, elapsed, interrupted = await _into_sink(
            ui, client, "undoing", total, DELETE_STATUSES, report_file, send
        )
    except InvalidInputError as exc:
        raise UsageError(exc.message) from None
    finally:
        if report_file is not None:
            report_file.close()
    return _result(
        sink,
        elapsed,
        report,
        journal,
        lines=None,
        interrupted=interrupted,
        statuses=DELETE_STATUSES,
    )


def print_bulk(
    ui: UI, result: BulkResult, *, title: str = "bulk-link", list_failures: bool = True
) -> None:
    """The summary of a run on stdout: counts, the first failures, where the rest are."""
    if result.items == 0 and not result.interrupted:
        if result.lines is None:
            ui.out(f"{title}: nothing to do: the journal records no link created")
        else:
            lines = result.lines.text()
            ui.out(f"{title}: nothing to do: the input holds no data lines ({lines})")
        return
    c = result.counts
    rate = result.items / result.elapsed if result.elapsed > 0 else 0.0
    failed = n(c["failed"])
    if result.bad_lines:
        lines = "bad line" if result.bad_lines == 1 else "bad lines"
        failed += f"  ({n(result.bad_lines)} {lines} in the input)"
    rows = [[s, failed if s == "failed" else n(c[s])] for s in result.statuses]
    rows += [
        ["total", f"{n(result.items)}  in {result.elapsed:.1f} s ({rate:,.0f} items/s)"],
    ]
    if result.moved:
        rows.append(["moved keys", f"{n(len(result.moved))}  (followed to their new keys)"])
    ui.table(["", ""], rows, title=title, show_header=False)
    if result.lines is not None:
        ui.out(f"input: {result.lines.text()}")
    if result.moved:
        _print_moved(ui, result.moved)
    if result.auth is not None:
        ui.out(f"authentication failed: {result.auth}")
        why = "a 401" if result.auth.status_code == 401 else "a 403 for each of its first items"
        ui.out(f"the batch stopped on {why}; {CREDENTIALS_HINT}")
    if result.problems and not list_failures:
        ui.out(f"failures: the same {n(result.problems)} as above")
    elif result.problems:
        more = f"first {SHOWN} of {n(result.problems)}, " if result.problems > SHOWN else ""
        ui.out(f"failures ({more}by line):")
        for _, text in result.shown:
            ui.out(f"  {text}")
        if result.problems_path is not None:
            what = "full report" if result.report_path else f"all {n(result.problems)}"
            ui.out(f"{what}: {result.problems_path}")
    elif result.report_path is not None:
        ui.out(f"report: {result.report_path}")
    if result.interrupted:
        _print_interrupted(ui, result)
    elif result.journal is not None:
        ui.out(f"journal: {result.journal} (run again with it to resume: nothing is sent twice)")


def _print_interrupted(ui: UI, result: BulkResult) -> None:
    ui.out(
        f"interrupted (Ctrl-C) after {n(result.items)} items: the counts above are what was "
        "done; the items in flight and the rest of the input were not finished"
    )
    if result.report_path is not None:
        ui.out(f"the report is partial: its last line is {json.dumps(PARTIAL)}")
    if result.journal is not None:
        ui.out(
            f"to resume, run the same command again with --journal {result.journal}: "
            "what is done is not sent again"
        )
    else:
        ui.out(
            "to finish, run the same command again (the links made are found and reported "
            "exists); with --journal PATH a re-run sends nothing for what is done"
        )


def _print_moved(ui: UI, moved: dict[str, str]) -> None:
    """The moved keys of the input, old -> new (the first few; all are in the report)."""
    shown = sorted(moved.items())[:SHOWN]
    more = f"first {SHOWN} of {n(len(moved))}, " if len(moved) > SHOWN else ""
    ui.out(f"moved issues ({more}old key -> new key; the links are on the new keys):")
    for old, new in shown:
        ui.out(f"  {old} -> {new}")


def bulk_exit(result: BulkResult) -> int:
    """1 when something failed or was skipped; 2 after a 401/403; 130 after Ctrl-C."""
    if result.interrupted:
        return EXIT_INTERRUPTED
    if result.auth is not None:
        return EXIT_USAGE
    if result.counts["failed"] or result.counts["skipped"]:
        return EXIT_FAILED
    return EXIT_OK
