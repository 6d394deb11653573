"""The command-line tool ``tracker-links`` (also ``python -m tracker_links``).

Commands: ``get``, ``link``, ``unlink``, ``types``, ``bulk-link``, ``queue-links``,
``fake-server`` and ``demo``; ``tracker-links COMMAND --help`` describes each one.

Exit status: 0 all done; 1 some items failed; 2 bad usage, an input file that cannot be read
or has no usable header, a missing credential, or an authentication failure (401/403);
130 interrupted.

Credentials come from the environment variables :meth:`TrackerClient.from_env` reads
(``TRACKER_TOKEN`` or ``TRACKER_IAM_TOKEN``, ``TRACKER_ORG_ID`` or ``TRACKER_CLOUD_ORG_ID``,
``TRACKER_BASE_URL``). A token is never printed: everything the tool writes to stdout and
stderr goes through a filter that masks the tokens it knows of.

The progress bar and the tables are drawn by rich (the ``cli`` extra) when it is installed;
without it the output is plain text. The progress bar goes to stderr and only when stderr is a
terminal (and ``--quiet`` is not given).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import io
import itertools
import json
import logging
import os
import random
import re
import sys
import tempfile
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TextIO, cast

import anyio
import attrs

from ._client import TrackerClient
from ._exceptions import AuthError, ConflictError, InvalidInputError, TrackerError
from ._journal import journal_done
from ._models import (
    Direction,
    Link,
    LinkSpec,
    LinkType,
    Relationship,
    relationship_of,
    validate_key,
    validate_link_id,
)
from ._reports import IssueLinks, LinksReport, Outcome, OutcomeStatus

if TYPE_CHECKING:
    from .testing import FakeTracker

__all__ = ["main"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

_PROG: Final = "tracker-links"
_SHOWN: Final = 20  # failures listed at the end of a run; the rest are in a file
_FIELDS: Final = ("source", "relationship", "target")
_DEFAULT_CONCURRENCY: Final = 16
_DEMO_CONCURRENCY: Final = 64
_TOKEN_VARS: Final = ("TRACKER_TOKEN", "TRACKER_IAM_TOKEN")
_ORG_VARS: Final = ("TRACKER_ORG_ID", "TRACKER_CLOUD_ORG_ID")

logger: Final = logging.getLogger("tracker_links")


class _UsageError(Exception):
    """Bad usage or bad input: printed as ``tracker-links: error: …``, exit status 2."""


# --- output: secrets filter, tables, progress --------------------------------------------------


class _Redacting:
    """A text stream writing through to another, with every known secret replaced by ``***``.

    ``main`` installs it over ``sys.stdout`` and ``sys.stderr`` for the duration of a command,
    so nothing (argparse's messages, an exception's text, a log line) can show a token.
    """

    def __init__(self, inner: TextIO, secrets: Sequence[str]) -> None:
        self._inner = inner
        self._secrets = tuple(secrets)

    def write(self, text: str) -> int:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return self._inner.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        try:
            return self._inner.isatty()
        except (AttributeError, ValueError):
            return False

    def fileno(self) -> int:
        return self._inner.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._inner, "encoding", None) or "utf-8"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _secrets(argv: Sequence[str]) -> list[str]:
    """The tokens this run knows of: the environment's and any ``--token`` value."""
    found = [os.environ.get(name, "") for name in _TOKEN_VARS]
    for i, arg in enumerate(argv):
        if arg == "--token" and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith("--token="):
            found.append(arg.partition("=")[2])
    # Longest first, so a token containing another is masked whole. Very short values are not
    # tokens (and masking them would garble ordinary text).
    return sorted({s.strip() for s in found if len(s.strip()) >= 8}, key=len, reverse=True)


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _clip(text: str, width: int = 80) -> str:
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def _n(value: int) -> str:
    return f"{value:,}"


class _UI:
    """Where and how output goes: rich when installed, plain text otherwise."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.rich = _has_rich()

    @property
    def live(self) -> bool:
        """Whether to draw a progress bar: stderr is a terminal and ``--quiet`` was not given."""
        if self.quiet:
            return False
        try:
            return bool(sys.stderr.isatty())
        except (AttributeError, ValueError):
            return False

    @staticmethod
    def out(text: str = "") -> None:
        print(text, file=sys.stdout)

    @staticmethod
    def err(text: str) -> None:
        print(text, file=sys.stderr)

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        title: str | None = None,
        right: Sequence[int] = (),
        stream: TextIO | None = None,
        show_header: bool = True,
    ) -> None:
        """A table of strings; columns whose index is in ``right`` are right-aligned."""
        stream = stream if stream is not None else sys.stdout
        if self.rich:
            from rich import box
            from rich.console import Console
            from rich.table import Table
            from rich.text import Text

            table = Table(
                title=title,
                title_justify="left",
                title_style="bold",
                box=box.SIMPLE_HEAD if show_header else None,
                show_header=show_header,
                show_edge=False,
                header_style="bold",
            )
            for i, h in enumerate(headers):
                table.add_column(h, justify="right" if i in right else "left", overflow="fold")
            for row in rows:
                table.add_row(*(Text(cell) for cell in row))
            Console(file=stream, highlight=False, soft_wrap=False).print(table)
            return
        _plain_table(stream, headers, rows, title=title, right=right, show_header=show_header)


def _plain_table(
    stream: TextIO,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None,
    right: Sequence[int],
    show_header: bool,
) -> None:
    widths = [len(h) if show_header else 0 for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def fmt(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ]
        return "  " + "  ".join(parts).rstrip()

    if title:
        print(title, file=stream)
    if show_header:
        print(fmt(headers), file=stream)
        print("  " + "  ".join("-" * w for w in widths), file=stream)
    for row in rows:
        print(fmt(row), file=stream)


_STYLES: Final = {
    "created": "green",
    "exists": "cyan",
    "failed": "red",
    "skipped": "yellow",
    "links": "cyan",
}


class _Progress:
    """A live progress bar on stderr: done/total, rate, elapsed, ETA and named counters.

    Silent unless stderr is a terminal and ``--quiet`` was not given; rich draws it when
    installed, otherwise a plain line rewritten in place.
    """

    _EVERY: Final = 0.1  # seconds between redraws (rich also redraws on its own)

    def __init__(
        self, ui: _UI, description: str, total: int | None, counters: Sequence[str]
    ) -> None:
        self.description = description
        self.total = total
        self.done = 0
        self.counts: dict[str, int] = dict.fromkeys(counters, 0)
        self.started = time.monotonic()
        self._last = 0.0
        self._rich: Any = None
        self._task: Any = None
        self._plain = False
        if ui.live:
            if ui.rich:
                self._rich = _rich_progress()
            else:
                self._plain = True

    def __enter__(self) -> _Progress:
        self.started = time.monotonic()
        if self._rich is not None:
            self._rich.start()
            self._task = self._rich.add_task(
                self.description, total=self.total, counts=dict(self.counts)
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self._draw(force=True)
        if self._rich is not None:
            self._rich.stop()
        elif self._plain:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def advance(self, counter: str | None = None, n: int = 1, *, done: int = 1) -> None:
        """``done`` more items; ``n`` more of ``counter`` (if given)."""
        self.done += done
        if counter is not None:
            self.counts[counter] = self.counts.get(counter, 0) + n
        if self.total is not None and self.done > self.total:
            self.total = self.done  # the estimate was short (a CSV field spanning lines)
        if self._rich is not None or self._plain:
            self._draw()

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._EVERY:
            return
        self._last = now
        if self._rich is not None and self._task is not None:
            self._rich.update(
                self._task, completed=self.done, total=self.total, counts=dict(self.counts)
            )
        elif self._plain:
            elapsed = max(now - self.started, 1e-9)
            rate = self.done / elapsed
            total = "?" if self.total is None else _n(self.total)
            eta = ""
            if self.total is not None and rate > 0:
                eta = f" ETA {_clock(max(0.0, (self.total - self.done) / rate))}"
            counts = " ".join(f"{k} {_n(v)}" for k, v in self.counts.items() if v)
            line = (
                f"{self.description} {_n(self.done)}/{total} {rate:,.0f}/s "
                f"{_clock(elapsed)}{eta}  {counts}"
            )
            sys.stderr.write("\r" + line.ljust(79))
            sys.stderr.flush()


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _rich_progress() -> Any:
    """A rich ``Progress`` on stderr (rich imported lazily), on two lines that fit 80 columns.

    ``linking ━━━━━━━━━━━━━━━━━━━━━━━━ 9,803/10,000  243/s  ETA 0:00:01``
    ``  created 9,710  exists 93  failed 50  skipped 0``
    """
    from rich.console import Console, RenderableType
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Items per second."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            text = "?/s" if speed is None else f"{speed:,.0f}/s"
            return Text(text, style="progress.data.speed")

    class TwoLines(Progress):
        """The bar, then the named counters of the task on a line of their own."""

        def get_renderables(self) -> Iterable[RenderableType]:
            yield self.make_tasks_table(self.tasks)
            for task in self.tasks:
                counts: Mapping[str, int] = task.fields.get("counts", {})
                text = Text(" ")
                for name, value in counts.items():
                    text.append(f" {name} ", style="dim")
                    text.append(_n(value), style=_STYLES.get(name, "") if value else "dim")
                yield text

    return TwoLines(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        redirect_stdout=False,
        redirect_stderr=True,
        refresh_per_second=8,
    )


class _StderrHandler(logging.Handler):
    """Log lines to whatever ``sys.stderr`` is when they are emitted (above a progress bar)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _logging(verbose: int) -> Iterator[None]:
    """The library's log lines: none by default, warnings and info with -v, all with -vv.

    Only the ``tracker_links`` logger is touched, and restored afterwards.
    """
    handler: logging.Handler
    if verbose <= 0:
        handler = logging.NullHandler()  # keeps Python's last-resort handler quiet
    else:
        handler = _StderrHandler(logging.INFO if verbose == 1 else logging.DEBUG)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    old_level = logger.level
    if verbose > 0:
        logger.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


# --- the client ----------------------------------------------------------------------------------


def _client(args: argparse.Namespace, *, concurrency: int = _DEFAULT_CONCURRENCY) -> TrackerClient:
    """A client from the environment and the command line; a missing credential is exit 2."""
    env = os.environ
    overrides: dict[str, Any] = {
        "max_concurrency": args.concurrency or concurrency,
        "rate_limit": args.rate_limit,
        "timeout": args.timeout,
    }

    def exactly_one_set(names: Sequence[str], missing: str) -> None:
        given = [name for name in names if env.get(name)]
        if not given:
            raise _UsageError(missing)
        if len(given) > 1:
            raise _UsageError(f"both {' and '.join(given)} are set: keep only one of them")

    if args.token:
        overrides["token"] = args.token
    else:
        exactly_one_set(
            _TOKEN_VARS,
            "no credential: set TRACKER_TOKEN (an OAuth token) or TRACKER_IAM_TOKEN (an IAM "
            "token) in the environment",
        )
    if args.org_id and args.cloud_org_id:
        raise _UsageError("give --org-id or --cloud-org-id, not both")
    if args.org_id:
        overrides["org_id"] = args.org_id
    elif args.cloud_org_id:
        overrides["cloud_org_id"] = args.cloud_org_id
    else:
        exactly_one_set(
            _ORG_VARS,
            "no organization: set TRACKER_ORG_ID (Yandex 360) or TRACKER_CLOUD_ORG_ID "
            "(Yandex Cloud), or pass --org-id / --cloud-org-id",
        )
    if args.base_url:
        overrides["base_url"] = args.base_url
    try:
        return TrackerClient.from_env(**overrides)
    except InvalidInputError as exc:
        raise _UsageError(str(exc)) from None


def _run(fn: Callable[[], Any]) -> Any:
    """Run an async function on asyncio."""
    return anyio.run(fn, backend="asyncio")


async def _aclose(iterator: object) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


# --- reading bulk input: CSV or JSON Lines, with line numbers -----------------------------------


@attrs.frozen
class _Row:
    """One data line of the input: a valid spec, or the reason it is not one."""

    line: int
    spec: LinkSpec | None
    reason: str | None = None
    raw: str = ""


def _spec_row(
    line: int, source: str, relationship: str, target: str, raw: str | Callable[[], str]
) -> _Row:
    values = (source, relationship, target)
    missing = [name for name, value in zip(_FIELDS, values, strict=True) if not value]
    if missing:
        reason = f"missing {' and '.join(missing)}"
    else:
        try:
            return _Row(line, LinkSpec(source, target, relationship))
        except InvalidInputError as exc:
            reason = exc.message
    return _Row(line, None, reason, raw() if callable(raw) else raw)


def _csv_text(row: Sequence[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue()


def _csv_rows(lines: Iterator[str], name: str) -> Iterator[_Row]:
    """Check the header now (exit 2 without one); return the data rows, read lazily."""
    reader = csv.reader(lines)
    header: list[str] | None = None
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                header = row
                break
    except csv.Error as exc:
        raise _UsageError(f"{name}: no usable header: line {reader.line_num}: {exc}") from None
    if header is None:
        raise _UsageError(f"{name}: no usable header: the file holds only blank lines")
    names = [cell.strip().lower() for cell in header]
    missing = [f for f in _FIELDS if f not in names]
    if missing:
        raise _UsageError(
            f"{name}: no usable header: line {reader.line_num} is "
            f"{_clip(_csv_text(header), 60)!r}, with no column {', '.join(missing)}; "
            "the first line must name the columns: source,relationship,target"
        )
    columns = (names.index("source"), names.index("relationship"), names.index("target"))
    return _csv_data(reader, columns, len(names), reader.line_num)


def _csv_data(reader: Any, columns: tuple[int, int, int], width: int, last: int) -> Iterator[_Row]:
    while True:
        start = last + 1  # a quoted field may span lines: a row starts after the previous one
        try:
            row: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _Row(start, None, f"unreadable CSV: {exc}", "")
            if reader.line_num <= last:
                return
            last = reader.line_num
            continue
        last = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > width and any(cell.strip() for cell in row[width:]):
            reason = f"{len(row)} fields, but the header names {width}"
            yield _Row(start, None, reason, _csv_text(row))
            continue
        s, r, t = (row[i].strip() if i < len(row) else "" for i in columns)
        yield _spec_row(start, s, r, t, functools.partial(_csv_text, row))


def _jsonl_rows(lines: Iterable[str]) -> Iterator[_Row]:
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        try:
            data = json.loads(text)
        except ValueError as exc:
            yield _Row(number, None, f"not valid JSON: {exc}", text)
            continue
        if not isinstance(data, dict):
            reason = "expected a JSON object with source, relationship and target"
            yield _Row(number, None, reason, text)
            continue
        wrong = [f for f in _FIELDS if data.get(f) is not None and not isinstance(data[f], str)]
        if wrong:
            yield _Row(number, None, f"{', '.join(wrong)}: expected a string", text)
            continue
        s, r, t = ((data.get(f) or "").strip() for f in _FIELDS)
        yield _spec_row(number, s, r, t, text)


def _read_rows(stream: TextIO, fmt: str, name: str) -> tuple[str, Iterator[_Row]]:
    """The input's format (``csv``/``jsonl``) and its data rows; exit 2 for no usable header."""
    lines: Iterator[str] = iter(stream)
    head: list[str] = []
    try:
        for line in lines:
            head.append(line)
            if line.strip():
                break
        else:
            raise _UsageError(
                f"{name} is empty: expected a CSV header 'source,relationship,target' or JSON Lines"
            )
    except OSError as exc:
        raise _UsageError(f"cannot read {name}: {exc.strerror or exc}") from None
    if fmt == "auto":
        fmt = "jsonl" if head[-1].lstrip().startswith("{") else "csv"
    everything = itertools.chain(head, lines)
    if fmt == "jsonl":
        return fmt, _jsonl_rows(everything)
    return fmt, _csv_rows(everything, name)


@contextlib.contextmanager
def _open_input(path: str) -> Iterator[TextIO]:
    """The input as text (``-`` is stdin); an unreadable file is exit 2."""
    if path == "-":
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None or not hasattr(buffer, "readable"):
            yield sys.stdin
            return
        wrapper = io.TextIOWrapper(buffer, encoding="utf-8-sig", errors="replace", newline="")
        try:
            yield wrapper
        finally:
            wrapper.detach()  # leave sys.stdin open
        return
    try:
        f = open(path, encoding="utf-8-sig", errors="replace", newline="")  # noqa: SIM115
    except OSError as exc:
        raise _UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        yield f


def _count_items(path: str, fmt: str) -> int | None:
    """How many data lines a file holds (for the progress bar's total and ETA)."""
    if path == "-":
        return None
    try:
        with open(path, "rb") as f:
            n = sum(1 for line in f if line.strip())
    except OSError:
        return None
    return max(0, n - 1) if fmt == "csv" else n


def _journal_done(path: str) -> set[bytes]:
    """The links a journal records as done: what a run would not send."""
    try:
        return journal_done(path)
    except OSError as exc:
        raise _UsageError(f"cannot read the journal {path}: {exc.strerror or exc}") from None


# --- bulk-link -----------------------------------------------------------------------------------


def _spec_text(spec: object) -> str:
    if isinstance(spec, LinkSpec):
        return f"{spec.source} {spec.relationship.value} {spec.target}"
    return _clip(repr(spec), 60)


_ITEM_RE: Final = re.compile(r"input item (\d+)")


@attrs.define
class _BulkResult:
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


class _BulkSink:
    """Takes every outcome (and every bad line) as it comes: counts, report, failures, progress.

    Memory stays bounded: the report is written as it goes, only the first failures are kept,
    and the others go to the report (or to a temporary file when there is no report).
    """

    def __init__(self, progress: _Progress, report: TextIO | None) -> None:
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
        self.lines: array[int] = array("Q")  # line number of the spec passed at each index

    def bad_line(self, row: _Row) -> None:
        """A data line that is not a link spec: an item that failed, without a request."""
        self.bad_lines += 1
        record: dict[str, Any] = {
            "line": row.line,
            "status": OutcomeStatus.FAILED.value,
            "input": row.raw,
            "error": "InvalidInputError",
            "reason": f"InvalidInputError: {row.reason}",
        }
        shown = f"line {row.line}: {_clip(row.raw, 60)!r}: {row.reason}"
        self._add(OutcomeStatus.FAILED, record, row.line, shown)

    def outcome(self, outcome: Outcome) -> None:
        """An outcome of the library, whose index maps back to a line of the input."""
        line = self.lines[outcome.index]
        record: dict[str, Any] = {"line": line}
        for key, value in outcome.to_json().items():
            if key == "index":
                continue
            record[key] = self._lines_in(value) if key in ("reason", "note") else value
        shown = None
        if not outcome.ok:
            reason = record.get("reason") or record.get("note") or outcome.status.value
            shown = f"line {line}: {_spec_text(outcome.spec)}: {reason}"
        if isinstance(outcome.error, AuthError) and self.auth is None:
            self.auth = outcome.error
        self._add(outcome.status, record, line, shown)

    def _lines_in(self, text: object) -> object:
        """Speak of lines, not of input items: users know the lines of their file."""
        if not isinstance(text, str):
            return text

        def repl(m: re.Match[str]) -> str:
            i = int(m.group(1))
            return f"line {self.lines[i]}" if 0 <= i < len(self.lines) else m.group(0)

        return _ITEM_RE.sub(repl, text).replace("an earlier input item", "an earlier line")

    def _add(
        self, status: OutcomeStatus, record: dict[str, Any], line: int, shown: str | None
    ) -> None:
        self.items += 1
        self.counts[status.value] += 1
        if self.report is not None:
            self.report.write(json.dumps(record, ensure_ascii=False) + "\n")
        if shown is not None:
            self.problems += 1
            if len(self.shown) < _SHOWN:
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
    client: TrackerClient, rows: Iterator[_Row], sink: _BulkSink, journal: str | None
) -> None:
    """Feed the valid rows to ``create_many``, the bad ones straight to the sink."""

    def specs() -> Iterator[LinkSpec]:
        for row in rows:
            if row.spec is None:
                sink.bad_line(row)
            else:
                sink.lines.append(row.line)
                yield row.spec

    outcomes = client.links.create_many(specs(), journal=journal)
    try:
        async for outcome in outcomes:
            sink.outcome(outcome)
    finally:
        await _aclose(outcomes)


def _check_writable(path: str, what: str) -> None:
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise _UsageError(f"cannot write the {what} {path}: {exc.strerror or exc}") from None


async def _bulk_link(
    ui: _UI,
    client: TrackerClient,
    path: str,
    *,
    fmt: str = "auto",
    journal: str | None = None,
    report: str | None = None,
    description: str = "linking",
) -> _BulkResult:
    """Read ``path`` and create its links; return what happened (no printing but progress)."""
    if journal is not None:
        _check_writable(journal, "journal")
    report_file: TextIO | None = None
    if report is not None:
        try:
            # Opening a local file is quick: not worth a worker thread.
            report_file = open(report, "w", encoding="utf-8")  # noqa: SIM115, ASYNC230
        except OSError as exc:
            raise _UsageError(f"cannot write the report {report}: {exc.strerror or exc}") from None
    try:
        with _open_input(path) as stream:
            fmt, rows = _read_rows(stream, fmt, "stdin" if path == "-" else path)
            total = _count_items(path, fmt) if ui.live else None
            counters = [s.value for s in OutcomeStatus]
            with _Progress(ui, description, total, counters) as progress:
                sink = _BulkSink(progress, report_file)
                started = time.perf_counter()
                try:
                    await _bulk_send(client, rows, sink, journal)
                finally:
                    sink.close()
                elapsed = time.perf_counter() - started
    finally:
        if report_file is not None:
            report_file.close()
    return _BulkResult(
        counts=sink.counts,
        items=sink.items,
        bad_lines=sink.bad_lines,
        problems=sink.problems,
        shown=sorted(sink.shown),
        elapsed=elapsed,
        auth=sink.auth,
        problems_path=report if report is not None else sink.overflow_path,
        report_path=report,
        journal=journal,
    )


def _print_bulk(
    ui: _UI, result: _BulkResult, *, title: str = "bulk-link", list_failures: bool = True
) -> None:
    c = result.counts
    rate = result.items / result.elapsed if result.elapsed > 0 else 0.0
    failed = _n(c["failed"])
    if result.bad_lines:
        failed += f"  ({_n(result.bad_lines)} bad lines in the input)"
    rows = [
        ["created", _n(c["created"])],
        ["exists", _n(c["exists"])],
        ["failed", failed],
        ["skipped", _n(c["skipped"])],
        ["total", f"{_n(result.items)}  in {result.elapsed:.1f} s ({rate:,.0f} items/s)"],
    ]
    ui.table(["", ""], rows, title=title, show_header=False)
    if result.auth is not None:
        ui.out(f"authentication failed: {result.auth}")
        ui.out(
            "the batch stopped at the first 401/403; check TRACKER_TOKEN / TRACKER_IAM_TOKEN "
            "and TRACKER_ORG_ID / TRACKER_CLOUD_ORG_ID"
        )
    if result.problems and not list_failures:
        ui.out(f"failures: the same {_n(result.problems)} as above")
    elif result.problems:
        more = f"first {_SHOWN} of {_n(result.problems)}, " if result.problems > _SHOWN else ""
        ui.out(f"failures ({more}by line):")
        for _, text in result.shown:
            ui.out(f"  {text}")
        if result.problems_path is not None:
            what = "full report" if result.report_path else f"all {_n(result.problems)}"
            ui.out(f"{what}: {result.problems_path}")
    elif result.report_path is not None:
        ui.out(f"report: {result.report_path}")
    if result.journal is not None:
        ui.out(f"journal: {result.journal} (run again with it to resume: nothing is sent twice)")


def _bulk_exit(result: _BulkResult) -> int:
    if result.auth is not None:
        return EXIT_USAGE
    if result.counts["failed"] or result.counts["skipped"]:
        return EXIT_FAILED
    return EXIT_OK


def _dry_run(ui: _UI, args: argparse.Namespace) -> int:
    """Validate and de-duplicate the input; print what would be sent; send nothing."""
    done = _journal_done(args.journal) if args.journal else set()
    first: dict[bytes, int] = {}
    counts: Counter[str] = Counter()
    shown: list[str] = []
    bad = 0
    report: TextIO | None = None
    if args.report:
        try:
            report = open(args.report, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise _UsageError(f"cannot write the report {args.report}: {exc.strerror}") from None
    try:
        with _open_input(args.file) as stream:
            name = "stdin" if args.file == "-" else args.file
            fmt, rows = _read_rows(stream, args.format, name)
            writer = csv.writer(sys.stdout, lineterminator="\n") if fmt == "csv" else None
            if writer is not None:
                writer.writerow(_FIELDS)
            for row in rows:
                record: dict[str, Any] = {"line": row.line}
                if row.spec is None:
                    bad += 1
                    if len(shown) < _SHOWN:
                        shown.append(f"line {row.line}: {_clip(row.raw, 60)!r}: {row.reason}")
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
        ["would send", _n(counts["send"])],
        ["repeats", f"{_n(counts['repeat'])}  (the same link earlier in the input)"],
        ["in the journal", f"{_n(counts['journal'])}  (already done)"],
        ["bad lines", _n(bad)],
    ]
    ui.table(["", ""], rows_out, title="dry run: nothing was sent", stream=sys.stderr,
             show_header=False)  # fmt: skip
    if bad:
        more = f"first {_SHOWN} of {_n(bad)}, " if bad > _SHOWN else ""
        ui.err(f"bad lines ({more}by line):")
        for text in shown:
            ui.err(f"  {text}")
    return EXIT_FAILED if bad else EXIT_OK


def _cmd_bulk_link(args: argparse.Namespace, ui: _UI) -> int:
    if args.dry_run:
        return _dry_run(ui, args)

    async def run() -> _BulkResult:
        async with _client(args) as client:
            return await _bulk_link(
                ui, client, args.file, fmt=args.format, journal=args.journal, report=args.report
            )

    result: _BulkResult = _run(run)
    _print_bulk(ui, result)
    return _bulk_exit(result)


# --- single calls: get, link, unlink, types -------------------------------------------------------


def _relationship_text(link: Link) -> str:
    rel = link.relationship
    return rel.value if rel is not None else f"{link.type.id} ({link.direction.value})"


def _target_key(link: Link) -> str:
    return link.target.key or link.target.id or "?"


def _cmd_get(args: argparse.Namespace, ui: _UI) -> int:
    keys = list(dict.fromkeys(args.keys))
    for key in keys:
        try:
            validate_key(key)
        except InvalidInputError as exc:
            raise _UsageError(exc.message) from None

    async def run() -> LinksReport:
        async with _client(args) as client:
            return await client.links.bulk_get(keys)

    report: LinksReport = _run(run)
    if args.json:
        for key in keys:
            for link in report.links.get(key, []):
                row: dict[str, Any] = {
                    "source": key,
                    "relationship": link.relationship.value if link.relationship else None,
                    "target": _target_key(link),
                    "link_id": link.id,
                    "type": link.type.id,
                    "direction": link.direction.value,
                    "summary": link.target.display,
                    "status": link.status.key if link.status else None,
                }
                ui.out(json.dumps(row, ensure_ascii=False))
    else:
        rows: list[list[str]] = []
        for key in keys:
            links = report.links.get(key)
            if links is None:
                continue
            if not links:
                rows.append([key, "", "(no links)", "", ""])
            for link in links:
                rows.append(
                    [
                        key,
                        str(link.id),
                        _relationship_text(link),
                        _target_key(link),
                        link.target.display or "",
                    ]
                )
        if rows:
            ui.table(["issue", "link id", "relationship", "target", "summary"], rows)
    auth = None
    for key in keys:
        error = report.failed.get(key)
        if error is not None:
            ui.err(f"{key}: {error}")
            if isinstance(error, AuthError):
                auth = error
    if auth is not None:
        return EXIT_USAGE
    return EXIT_FAILED if report.failed else EXIT_OK


def _cmd_link(args: argparse.Namespace, ui: _UI) -> int:
    words: list[str] = args.words
    if len(words) < 3:
        raise _UsageError(
            "link needs SOURCE RELATIONSHIP TARGET, for example: "
            "tracker-links link PROJ-12 'depends on' PROJ-7"
        )
    source, target, relationship = words[0], words[-1], " ".join(words[1:-1])
    try:
        spec = LinkSpec(source, target, relationship)
    except InvalidInputError as exc:
        raise _UsageError(exc.message) from None

    async def run() -> tuple[Link, bool]:
        async with _client(args) as client:
            try:
                link = await client.links.create(spec.source, spec.target, spec.relationship)
            except ConflictError as exc:
                if exc.link is None:
                    raise
                return exc.link, False
            return link, True

    link, created = _run(run)
    what = "created" if created else "already exists:"
    ui.out(f"{what} link {link.id}: {_spec_text(spec)}")
    return EXIT_OK


def _cmd_unlink(args: argparse.Namespace, ui: _UI) -> int:
    try:
        key = validate_key(args.key)
        link_id = validate_link_id(args.link_id)
    except InvalidInputError as exc:
        raise _UsageError(exc.message) from None

    async def run() -> None:
        async with _client(args) as client:
            await client.links.delete(key, link_id)

    _run(run)
    ui.out(f"deleted link {link_id} (from {key} and the issue it linked to)")
    return EXIT_OK


def _cmd_types(args: argparse.Namespace, ui: _UI) -> int:
    async def run() -> list[LinkType]:
        async with _client(args) as client:
            return await client.links.types()

    types: list[LinkType] = _run(run)
    rows = []
    for t in types:
        out_rel = relationship_of(t.id, Direction.OUTWARD)
        in_rel = relationship_of(t.id, Direction.INWARD)
        rels = [r.value for r in dict.fromkeys((out_rel, in_rel)) if r is not None]
        if args.json:
            data = {"id": t.id, "outward": t.outward, "inward": t.inward, "relationships": rels}
            ui.out(json.dumps(data, ensure_ascii=False))
        rows.append([t.id, t.outward or "", t.inward or "", " / ".join(rels) or "(unknown)"])
    if not args.json:
        ui.table(["type id", "outward label", "inward label", "relationship (create)"], rows)
    return EXIT_OK


# --- queue-links: export, graph, cycles -----------------------------------------------------------


@attrs.frozen
class _LinkRow:
    """One link of an export, read the way the service files it (``A depends on B``)."""

    source: str
    relationship: str
    target: str
    link_id: int | str
    type: str
    direction: str | None = None  # only for a link type the library does not know

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "relationship": self.relationship,
            "target": self.target,
            "link_id": self.link_id,
            "type": self.type,
        }
        if self.direction is not None:
            out["direction"] = self.direction
        return out


def _export_row(key: str, link: Link) -> tuple[tuple[str, str, str], _LinkRow]:
    """The link in one spelling whichever issue it was read from, and its identity.

    ``B is dependent by A`` read from B becomes ``A depends on B``; ``relates`` puts the smaller
    key first. So the same link read from both of its issues is written once.
    """
    other = _target_key(link)
    rel = link.relationship
    if rel is None:
        row = _LinkRow(key, "", other, link.id, link.type.id, link.direction.value)
        return ("?" + link.type.id, str(link.id), ""), row
    source, target = key, other
    if rel.direction is Direction.INWARD:
        source, target, rel = other, key, rel.inverse
    if rel is Relationship.RELATES and _natural(target) < _natural(source):
        source, target = target, source
    return (rel.type_id, source, target), _LinkRow(source, rel.value, target, link.id, rel.type_id)


def _natural(key: str) -> tuple[str, int, str]:
    """Sort key for issue keys: PROJ-2 before PROJ-10."""
    queue, _, number = key.rpartition("-")
    if queue and number.isdigit():
        return (queue, int(number), "")
    return (key, 0, key)


_FORMATS: Final = ("jsonl", "csv", "dot", "mermaid")


def _mermaid_id(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", key)


class _LinkWriter:
    """Writes links as JSON Lines, CSV (re-importable by bulk-link), DOT or Mermaid."""

    def __init__(self, fmt: str, stream: TextIO) -> None:
        self.fmt = fmt
        self.stream = stream
        self._csv = None
        if fmt == "csv":
            self._csv = csv.writer(stream, lineterminator="\n")
            self._csv.writerow([*_FIELDS, "link_id", "type", "direction"])
        elif fmt == "dot":
            stream.write("digraph links {\n  rankdir=LR;\n  node [shape=box];\n")
        elif fmt == "mermaid":
            stream.write("graph LR\n")

    def write(self, row: _LinkRow) -> None:
        fmt, stream = self.fmt, self.stream
        label = row.relationship or f"{row.type} ({row.direction})"
        if fmt == "jsonl":
            stream.write(json.dumps(row.as_dict(), ensure_ascii=False) + "\n")
        elif self._csv is not None:
            self._csv.writerow(
                [row.source, row.relationship, row.target, row.link_id, row.type,
                 row.direction or ""]
            )  # fmt: skip
        elif fmt == "dot":
            extra = ", dir=none" if row.relationship == Relationship.RELATES.value else ""
            stream.write(
                f"  {json.dumps(row.source)} -> {json.dumps(row.target)} "
                f"[label={json.dumps(label)}{extra}];\n"
            )
        else:
            arrow = "---" if row.relationship == Relationship.RELATES.value else "-->"
            text = label.replace("|", "/").replace('"', "'")
            stream.write(
                f'  {_mermaid_id(row.source)}["{row.source}"] {arrow}|{text}| '
                f'{_mermaid_id(row.target)}["{row.target}"]\n'
            )

    def close(self) -> None:
        if self.fmt == "dot":
            self.stream.write("}\n")
        self.stream.flush()


class _QueueExport:
    """Takes the links of each issue as they arrive: de-duplicates, writes, counts, graphs."""

    def __init__(self, writer: _LinkWriter | None, progress: _Progress) -> None:
        self.writer = writer
        self.progress = progress
        self.seen: set[tuple[str, str, str]] = set()
        self.issues = 0
        self.by_relationship: Counter[str] = Counter()
        self.degree: Counter[str] = Counter()
        self.depends: dict[str, set[str]] = {}  # A -> {B}: A depends on B
        self.failed: list[tuple[str, TrackerError]] = []
        self.auth: TrackerError | None = None

    @property
    def links(self) -> int:
        return len(self.seen)

    def add(self, item: IssueLinks) -> None:
        self.issues += 1
        if item.error is not None:
            self.failed.append((item.key, item.error))
            if isinstance(item.error, AuthError) and self.auth is None:
                self.auth = item.error
            self.progress.advance("failed")
            return
        new = 0
        for link in item.links:
            key, row = _export_row(item.key, link)
            if key in self.seen:
                continue
            self.seen.add(key)
            new += 1
            self.by_relationship[row.relationship or f"{row.type} ({row.direction})"] += 1
            self.degree[row.source] += 1
            self.degree[row.target] += 1
            if row.relationship == Relationship.DEPENDS_ON.value:
                self.depends.setdefault(row.source, set()).add(row.target)
            if self.writer is not None:
                self.writer.write(row)
        self.progress.advance("links", new)


async def _export_queue(
    client: TrackerClient,
    queue: str | None,
    query: str | None,
    export: _QueueExport,
) -> None:
    try:
        items = client.links.queue_links(queue, query=query)
    except InvalidInputError as exc:
        raise _UsageError(exc.message) from None
    try:
        async for item in items:
            export.add(item)
            if export.auth is not None:
                break  # no hammering with a bad token
    finally:
        await _aclose(items)


def _find_cycles(graph: Mapping[str, set[str]]) -> list[tuple[list[str], int]]:
    """Dependency cycles: for each strongly connected group of issues, one shortest loop.

    Returns ``(path, size)`` pairs, ``path`` starting and ending at the group's first key and
    ``size`` the number of issues in the group. Iterative Tarjan, so deep chains are fine.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0

    def successors(node: str) -> Iterator[str]:
        return iter(sorted(graph.get(node, ()), key=_natural))

    for root in sorted(graph, key=_natural):
        if root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work: list[tuple[str, Iterator[str]]] = [(root, successors(root))]
        while work:
            node, it = work[-1]
            descended = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, successors(nxt)))
                    descended = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if descended:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)

    cycles: list[tuple[list[str], int]] = []
    for group in groups:
        members = set(group)
        start = min(group, key=_natural)
        prev: dict[str, str] = {}
        queue: deque[str] = deque([start])
        last: str | None = None
        while queue and last is None:
            node = queue.popleft()
            for nxt in sorted(graph.get(node, ()), key=_natural):
                if nxt == start:
                    last = node
                    break
                if nxt in members and nxt not in prev:
                    prev[nxt] = node
                    queue.append(nxt)
        if last is None:  # cannot happen in a strongly connected group
            continue
        path = [last]
        while path[-1] != start:
            path.append(prev[path[-1]])
        path.reverse()
        path.append(start)
        cycles.append((path, len(group)))
    cycles.sort(key=lambda c: _natural(c[0][0]))
    return cycles


def _cycle_lines(cycles: list[tuple[list[str], int]]) -> list[str]:
    if not cycles:
        return ["no dependency cycles ('depends on' loops)"]
    issues = sum(size for _, size in cycles)
    lines = [
        f"{len(cycles)} dependency cycle(s) ('depends on' loops) among {_n(issues)} issues "
        "(A -> B: A depends on B):"
    ]
    for i, (path, size) in enumerate(cycles, 1):
        note = "" if size == len(path) - 1 else f"  (one loop of a knot of {_n(size)} issues)"
        lines.append(f"  {i}. {' -> '.join(path)}{note}")
    return lines


def _cmd_queue_links(args: argparse.Namespace, ui: _UI) -> int:
    if bool(args.queue) == bool(args.query):
        raise _UsageError("give a QUEUE or --query '...', exactly one of them")
    fmt: str | None = args.format or (None if args.cycles else "jsonl")
    output: TextIO | None = None
    if args.output:
        try:
            output = open(args.output, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise _UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    data_stream: TextIO | None = None
    if fmt is not None:
        data_stream = output if output is not None else sys.stdout
    # The human report goes where the data does not.
    info: TextIO = sys.stderr if data_stream is sys.stdout else sys.stdout
    what = args.queue or args.query
    started = time.perf_counter()
    try:
        writer = _LinkWriter(fmt, data_stream) if fmt is not None and data_stream else None
        with _Progress(ui, "reading links", None, ["links", "failed"]) as progress:
            export = _QueueExport(writer, progress)

            async def run() -> None:
                async with _client(args) as client:
                    await _export_queue(client, args.queue, args.query, export)

            _run(run)
        if writer is not None:
            writer.close()
    finally:
        if output is not None:
            output.close()
    elapsed = time.perf_counter() - started
    rels = ", ".join(f"{k} {_n(v)}" for k, v in export.by_relationship.most_common())
    print(
        f"{what}: {_n(export.issues)} issues, {_n(export.links)} links"
        f"{f' ({rels})' if rels else ''} in {elapsed:.1f} s"
        + (f"; written to {args.output}" if args.output and fmt else ""),
        file=info,
    )
    if args.cycles:
        for line in _cycle_lines(_find_cycles(export.depends)):
            print(line, file=info)
    if export.failed:
        more = f"first {_SHOWN} of {_n(len(export.failed))}" if len(export.failed) > _SHOWN else ""
        print(
            f"{_n(len(export.failed))} issues could not be read{more and f' ({more})'}:", file=info
        )
        for key, error in export.failed[:_SHOWN]:
            print(f"  {key}: {error}", file=info)
    if export.auth is not None:
        print(f"authentication failed: {export.auth}", file=info)
        return EXIT_USAGE
    return EXIT_FAILED if export.failed else EXIT_OK


# --- the fake: fake-server and demo ---------------------------------------------------------------


def _fake_class() -> type[FakeTracker]:
    try:
        from .testing import FakeTracker
    except ImportError as exc:  # pragma: no cover - the fake ships with the package
        raise _UsageError(f"the fake Tracker is not available: {exc}") from None
    return FakeTracker


def _need_uvicorn() -> None:
    import importlib.util

    if importlib.util.find_spec("uvicorn") is None:
        raise _UsageError(
            "serving the fake Tracker needs uvicorn: pip install 'tracker-links[fake]'"
        )


def _queues(text: str) -> dict[str, int]:
    """``TEST=1000,DEMO=50`` -> ``{"TEST": 1000, "DEMO": 50}`` (argparse type)."""
    out: dict[str, int] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, count = part.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name) or not count.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f"{part!r}: expected QUEUE=COUNT, such as TEST=1000 (queue keys in upper case)"
            )
        out[name] = int(count)
    if not out:
        raise argparse.ArgumentTypeError("expected QUEUE=COUNT[,QUEUE=COUNT...]")
    return out


def _cmd_fake_server(args: argparse.Namespace, ui: _UI) -> int:
    fake_class = _fake_class()
    _need_uvicorn()
    try:
        fake = fake_class(
            queues=args.queues,
            latency=args.latency_ms / 1000.0,
            jitter=args.jitter_ms / 1000.0,
            rate_limit=args.fake_rate_limit,
            fail_rate=args.fail_rate,
            drop_rate=args.drop_rate,
            seed=args.seed,
        )
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        ui.err(f"warning: serving the fake on {args.host}: it accepts any token")

    def ready(url: str) -> None:
        queues = ", ".join(f"{q}-1..{q}-{n}" for q, n in args.queues.items())
        ui.out(f"fake Tracker on {url} (issues {queues}); it accepts any token.")
        ui.out("try, in another shell:")
        ui.out(f"  export TRACKER_BASE_URL={url} TRACKER_TOKEN=anything TRACKER_ORG_ID=1")
        ui.out(f"  {_PROG} types")
        ui.out("Ctrl-C stops it.")
        sys.stdout.flush()

    try:
        fake.serve_forever(args.host, args.port, on_ready=ready)
    except OSError as exc:
        raise _UsageError(
            f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None
    ui.out(f"stopped; the fake answered {_n(fake.stats.total)} requests")
    return EXIT_OK


# Relationships of the generated demo links, with weights (no epic links: they need epics).
_DEMO_MIX: Final = (
    (Relationship.RELATES, 30),
    (Relationship.DEPENDS_ON, 25),
    (Relationship.IS_DEPENDENT_BY, 10),
    (Relationship.IS_SUBTASK_FOR, 12),
    (Relationship.IS_PARENT_TASK_FOR, 8),
    (Relationship.DUPLICATES, 10),
    (Relationship.IS_DUPLICATED_BY, 5),
)


@attrs.frozen
class _DemoInput:
    lines: int
    distinct: int  # distinct links that can be created
    repeats: int  # the same link again, as written or the other way round
    bad: int  # lines that are not valid link specs (they fail without a request)


def _demo_input(path: str, *, pairs: int, issues: int, queue: str, seed: int) -> _DemoInput:
    """Write the demo's CSV: distinct links, a few repeats and a few bad lines, shuffled."""
    rng = random.Random(seed)
    n_bad = max(5, pairs // 200)
    n_repeat = max(4, pairs // 100)
    n_distinct = max(3, pairs - n_bad - n_repeat)

    def key(n: int) -> str:
        return f"{queue}-{n}"

    rels = [r for r, _ in _DEMO_MIX]
    weights = [w for _, w in _DEMO_MIX]
    # A deliberate dependency cycle, for queue-links --cycles to find.
    used: set[frozenset[int]] = {frozenset(p) for p in ((1, 2), (2, 3), (3, 1))}
    distinct: list[tuple[str, str, str]] = [
        (key(1), "depends on", key(2)),
        (key(2), "depends on", key(3)),
        (key(3), "depends on", key(1)),
    ]
    while len(distinct) < n_distinct:
        a, b = rng.randint(1, issues), rng.randint(1, issues)
        pair = frozenset((a, b))
        if a == b or pair in used:
            continue
        used.add(pair)
        distinct.append((key(a), rng.choices(rels, weights)[0].value, key(b)))
    repeats: list[tuple[str, str, str]] = []
    for i in range(n_repeat):
        s, r, t = rng.choice(distinct)
        repeats.append((s, r, t) if i % 2 else (t, Relationship(r).inverse.value, s))
    bad: list[tuple[str, str, str]] = []
    for i in range(n_bad):
        a, b = rng.randint(1, issues), rng.randint(1, issues)
        bad.append(
            [
                (key(a).lower(), "relates", key(b)),  # a malformed key
                (key(a), "blocks", key(b)),  # an unknown relationship
                (key(a), "depends on", key(a)),  # a self-link
                (key(a), "depends on", ""),  # a missing field
                (f"{queue}-0", "relates", key(b)),  # no issue number 0
            ][i % 5]
        )
    rows = distinct + repeats + bad
    rng.shuffle(rows)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(_FIELDS)
        writer.writerows(rows)
    return _DemoInput(len(rows), len(distinct), len(repeats), len(bad))


def _mermaid_snippet(
    cycles: list[tuple[list[str], int]], graph: Mapping[str, set[str]], limit: int = 12
) -> list[str]:
    """A few ``depends on`` edges around the first cycle, as Mermaid."""
    if not cycles:
        return []
    path = cycles[0][0]
    edges: list[tuple[str, str]] = list(itertools.pairwise(path))
    around = set(path)
    for node in path[:-1]:
        for nxt in sorted(graph.get(node, ()), key=_natural):
            if (node, nxt) not in edges:
                edges.append((node, nxt))
    for src in sorted(graph, key=_natural):
        for dst in graph[src]:
            if dst in around and (src, dst) not in edges:
                edges.append((src, dst))
    lines = ["graph LR"]
    for src, dst in edges[:limit]:
        lines.append(f'  {_mermaid_id(src)}["{src}"] -->|depends on| {_mermaid_id(dst)}["{dst}"]')
    return lines


def _fake_process(conn: Any, settings: dict[str, Any]) -> None:
    """The demo's fake Tracker, in a process of its own: it gets a core to itself.

    Sends its base URL on ``conn``, then answers ``"stats"`` with its counters until
    ``"stop"`` (or until the parent goes away).
    """
    from .testing import FakeTracker

    fake = FakeTracker(**settings)
    with fake.serve() as base_url:
        conn.send(base_url)
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError, KeyboardInterrupt):
                break
            if message != "stats":
                break
            conn.send({**fake.stats.as_dict(), "links": len(fake.links)})


class _FakeStats:
    """The counters of the fake in the other process, read when asked."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __call__(self) -> dict[str, Any]:
        self._conn.send("stats")
        data: dict[str, Any] = self._conn.recv()
        return data


def _count(stats: Mapping[str, Any], method: str, status: int | None = None) -> int:
    """Answered requests of ``method`` (and ``status``) in a ``FakeStats.as_dict()``."""
    total = 0
    for key, n in stats["requests"].items():
        m, _, st = key.partition(" ")
        if m == method and (status is None or st == str(status)):
            total += int(n)
    return total


@contextlib.contextmanager
def _serve_fake(settings: dict[str, Any]) -> Iterator[tuple[str, _FakeStats]]:
    """Start the fake in a child process; yield its base URL and a way to read its stats."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(
        target=_fake_process, args=(child, settings), name="fake-tracker", daemon=True
    )
    process.start()
    child.close()
    try:
        if not parent.poll(60):
            raise _UsageError("the fake Tracker did not start within 60 s")
        try:
            base_url: str = parent.recv()
        except EOFError:
            raise _UsageError("the fake Tracker could not start") from None
        yield base_url, _FakeStats(parent)
    finally:
        with contextlib.suppress(OSError, ValueError):
            parent.send("stop")
        parent.close()
        process.join(10)
        if process.is_alive():
            process.terminate()
            process.join(5)


def _cmd_demo(args: argparse.Namespace, ui: _UI) -> int:
    fake_class = _fake_class()
    _need_uvicorn()
    quick = args.quick
    pairs = args.pairs if args.pairs is not None else (300 if quick else 10_000)
    issues = args.issues if args.issues is not None else max(50, pairs // 2)
    if pairs < 20:
        raise _UsageError("demo: --pairs must be at least 20")
    if issues * (issues - 1) // 2 < 2 * pairs:
        raise _UsageError(f"demo: {issues} issues are too few for {pairs} distinct pairs")

    def pick(value: float | None, full: float | None, small: float | None) -> float | None:
        return value if value is not None else (small if quick else full)

    latency = pick(args.latency_ms, 20.0, 0.0) or 0.0
    jitter = pick(args.jitter_ms, 30.0, 0.0) or 0.0
    fake_rate = pick(args.fake_rate_limit, 300.0, None)
    settings: dict[str, Any] = {
        "latency": latency / 1000.0,
        "jitter": jitter / 1000.0,
        "rate_limit": fake_rate,
        "fail_rate": args.fail_rate,
        "drop_rate": args.drop_rate,
    }
    with contextlib.ExitStack() as stack:
        workdir = args.dir
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="tracker-links-demo-"))
        else:
            os.makedirs(workdir, exist_ok=True)
        t0 = time.perf_counter()
        try:
            fake_class(**settings)  # check the settings here, before starting a process
        except ValueError as exc:
            raise _UsageError(str(exc)) from None
        settings.update(queues={"DEMO": issues}, seed=args.seed)
        base_url, stats = stack.enter_context(_serve_fake(settings))
        demo = functools.partial(
            _demo, ui, args, settings, stats, base_url, workdir, pairs=pairs, issues=issues, t0=t0
        )
        code: int = _run(demo)
    return code


async def _demo(
    ui: _UI,
    args: argparse.Namespace,
    settings: Mapping[str, Any],
    fake_stats: _FakeStats,
    base_url: str,
    workdir: str,
    *,
    pairs: int,
    issues: int,
    t0: float,
) -> int:
    out = ui.out
    csv_path = os.path.join(workdir, "pairs.csv")
    journal = os.path.join(workdir, "journal.jsonl")
    report = os.path.join(workdir, "report.jsonl")
    report2 = os.path.join(workdir, "report-2.jsonl")
    export_path = os.path.join(workdir, "links.csv")
    for stale in (journal, report, report2):
        with contextlib.suppress(FileNotFoundError):
            os.remove(stale)
    made = _demo_input(csv_path, pairs=pairs, issues=issues, queue="DEMO", seed=args.seed)
    lat_lo = settings["latency"] * 1000
    lat_hi = lat_lo + settings["jitter"] * 1000
    latency = f"latency {lat_lo:.0f}-{lat_hi:.0f} ms" if lat_hi else "no latency"
    limit = f"{settings['rate_limit']:g} req/s" if settings["rate_limit"] else "none"
    out(f"{_PROG} demo: the fake Tracker on {base_url}")
    out(
        f"  queue DEMO with {_n(issues)} issues; {latency}; "
        f"rate limit {limit}; injected faults: {settings['fail_rate']:.0%} 5xx, "
        f"{settings['drop_rate']:.0%} dropped connections"
    )
    out(
        f"  input {csv_path}: {_n(made.lines)} lines: {_n(made.distinct)} distinct links, "
        f"{_n(made.repeats)} repeats (half of them written the other way round), "
        f"{_n(made.bad)} bad lines"
    )
    concurrency = args.concurrency or _DEMO_CONCURRENCY
    # The admin knows the organization's limit: pace a little under it (each 429 costs the
    # whole client a one-second pause). --adaptive lets the client find the limit itself.
    rate: float | None = args.rate_limit
    if rate is None and not args.adaptive and settings["rate_limit"]:
        rate = round(0.9 * settings["rate_limit"])
    client_rate = f"{rate:g} req/s" if rate else "adaptive"
    client = TrackerClient(
        token="demo-token-not-a-secret",
        org_id="1",
        base_url=base_url,
        max_concurrency=concurrency,
        rate_limit=rate,
    )
    checks: list[tuple[str, bool]] = []
    async with client:
        # 1. the bulk run
        out("")
        out(
            f"[1/3] bulk-link pairs.csv --journal journal.jsonl --report report.jsonl "
            f"(concurrency {concurrency}, rate {client_rate})"
        )
        first = await _bulk_link(
            ui, client, csv_path, journal=journal, report=report, description="linking"
        )
        _print_bulk(ui, first, title="first run")
        stats = fake_stats()
        out(
            f"  the fake saw {_n(stats['total'])} requests: {_n(_count(stats, 'POST', 201))} "
            f"answered 201 Created, {_n(stats['injected_failures'])} injected 5xx, "
            f"{_n(stats['dropped'])} connections dropped (half of them after the write: the "
            f"client reads before it sends again), {_n(stats['rate_limited'])} answered 429, "
            f"{_n(stats['duplicates_created'])} duplicates stored"
        )
        stored = int(stats["links"])
        checks.append(
            (
                f"the fake holds {_n(stored)} links: one per distinct valid pair "
                f"({_n(made.distinct)})",
                stored == made.distinct and stats["duplicates_created"] == 0,
            )
        )
        checks.append(
            (
                f"{_n(made.bad)} failures: the bad lines, caught before sending",
                first.counts["failed"] == made.bad,
            )
        )

        # 2. the same again: nothing is re-sent
        out("")
        out("[2/3] the same command again, with the same journal")
        posts, total = _count(stats, "POST"), stats["total"]
        second = await _bulk_link(
            ui, client, csv_path, journal=journal, report=report2, description="resuming"
        )
        _print_bulk(ui, second, title="second run", list_failures=False)
        stats = fake_stats()
        sent = stats["total"] - total
        out(
            f"  requests sent: {_n(sent)} (POST count {_n(posts)} -> "
            f"{_n(_count(stats, 'POST'))}): every valid line is EXISTS from the journal; "
            "the bad lines fail again, locally"
        )
        checks.append(("the second run sent nothing", sent == 0 and second.counts["created"] == 0))

        # 3. the links of the queue, and a dependency picture
        out("")
        out("[3/3] queue-links DEMO --format csv --cycles")
        with open(export_path, "w", encoding="utf-8", newline="") as f:  # noqa: ASYNC230
            writer = _LinkWriter("csv", f)
            t3 = time.perf_counter()
            with _Progress(ui, "reading links", issues, ["links", "failed"]) as progress:
                export = _QueueExport(writer, progress)
                await _export_queue(client, "DEMO", None, export)
            writer.close()
        e3 = time.perf_counter() - t3
    out(
        f"  {_n(export.issues)} issues read in {e3:.1f} s ({export.issues / max(e3, 1e-9):,.0f}"
        f" issues/s): {_n(export.links)} links, written to {export_path}"
    )
    checks.append((f"queue-links found every stored link ({_n(stored)})", export.links == stored))
    rows = [[k, _n(v)] for k, v in export.by_relationship.most_common()]
    ui.table(["relationship", "links"], rows, right=[1], title="links by relationship")
    hubs = ", ".join(f"{k} ({v})" for k, v in export.degree.most_common(5))
    out(f"  most linked issues: {hubs}")
    cycles = _find_cycles(export.depends)
    for line in _cycle_lines(cycles):
        out(f"  {line}")
    snippet = _mermaid_snippet(cycles, export.depends)
    if snippet:
        out("  around the first cycle, as Mermaid:")
        out("```mermaid")
        for line in snippet:
            out(line)
        out("```")

    elapsed = time.perf_counter() - t0
    out("")
    for text, ok in checks:
        out(f"  [{'ok' if ok else 'FAILED'}] {text}")
    rate1 = first.items / first.elapsed if first.elapsed else 0.0
    out(
        f"demo finished in {elapsed:.1f} s: bulk-link {_n(first.items)} items in "
        f"{first.elapsed:.1f} s ({rate1:,.0f} items/s); resume in {second.elapsed:.2f} s; "
        f"queue-links {_n(export.issues)} issues in {e3:.1f} s"
    )
    if args.dir is None:
        out(f"(the files were in {workdir}, removed now; --dir PATH keeps them)")
    return EXIT_OK if all(ok for _, ok in checks) else EXIT_FAILED


# --- the command line ----------------------------------------------------------------------------


def _number(
    kind: Callable[[str], float], noun: str, ok: Callable[[float], bool], expected: str
) -> Callable[[str], Any]:
    """An argparse ``type=``: parse with ``kind``, then check the range with ``ok``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
        return value

    return parse


_INF: Final = float("inf")
_positive_int = _number(int, "a whole number", lambda v: v >= 1, "1 or more")
_port = _number(int, "a port number", lambda v: 0 <= v <= 65535, "0..65535")
_positive_float = _number(float, "a number", lambda v: 0 < v < _INF, "a number > 0")
_non_negative = _number(float, "a number", lambda v: 0 <= v < _INF, "a number >= 0")
_fraction = _number(float, "a number", lambda v: 0 <= v <= 1, "a fraction between 0 and 1")


_EPILOG: Final = """\
credentials (environment):
  TRACKER_TOKEN or TRACKER_IAM_TOKEN        an OAuth token, or an IAM token
  TRACKER_ORG_ID or TRACKER_CLOUD_ORG_ID    a Yandex 360 or a Yandex Cloud organization
  TRACKER_BASE_URL                          default https://api.tracker.yandex.net

exit status:
  0  all done
  1  some items failed (each is listed with its reason)
  2  bad usage, an unreadable input file, a missing credential, or a 401/403
"""


def _add_speed(parser: argparse.ArgumentParser, default: Callable[[object], object]) -> None:
    speed = parser.add_argument_group("speed")
    speed.add_argument(
        "--concurrency",
        metavar="N",
        type=_positive_int,
        default=default(None),
        help=f"requests in flight at most (default {_DEFAULT_CONCURRENCY}; "
        f"demo {_DEMO_CONCURRENCY})",
    )
    speed.add_argument(
        "--rate-limit",
        metavar="R",
        type=_positive_float,
        default=default(None),
        help="requests per second at most (default: adaptive, finds the limit from 429s)",
    )


def _add_options(
    parser: argparse.ArgumentParser, *, sub: bool, connect: bool = True, speed: bool = True
) -> None:
    """The options every command shares; on a subcommand they do not reset the main ones."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if sub else value

    if connect:
        group = parser.add_argument_group("connection")
        group.add_argument(
            "--base-url",
            metavar="URL",
            default=default(None),
            help="the API's URL (default: TRACKER_BASE_URL, or https://api.tracker.yandex.net)",
        )
        group.add_argument(
            "--token",
            metavar="TOKEN",
            default=default(None),
            help="an OAuth token; visible to other users in the process list: prefer the "
            "TRACKER_TOKEN environment variable",
        )
        group.add_argument(
            "--org-id", metavar="ID", default=default(None), help="instead of TRACKER_ORG_ID"
        )
        group.add_argument(
            "--cloud-org-id",
            metavar="ID",
            default=default(None),
            help="instead of TRACKER_CLOUD_ORG_ID",
        )
        group.add_argument(
            "--timeout",
            metavar="S",
            type=_positive_float,
            default=default(30.0),
            help="seconds per request (default 30)",
        )
    if speed:
        _add_speed(parser, default)
    out = parser.add_argument_group("output")
    out.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default(False),
        help="no progress bar (there is none anyway when stderr is not a terminal)",
    )
    out.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="log retries and rate changes (-vv: every request)",
    )


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Yandex Tracker issue links from the shell: create, list and delete them one\n"
        "at a time, link tens of thousands of pairs from a file, export a whole queue's links.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_options(parser, sub=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str,
        help: str,
        description: str,
        *,
        connect: bool = True,
        speed: bool = True,
        usage: str | None = None,
    ) -> argparse.ArgumentParser:
        p = commands.add_parser(
            name,
            help=help,
            description=description,
            usage=usage,
            epilog=_EPILOG if connect else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False,
        )
        _add_options(p, sub=True, connect=connect, speed=speed)
        return p

    p = command("get", "the links of issues", "Print the links of each issue.")
    p.add_argument("keys", nargs="+", metavar="KEY", help="an issue key such as PROJ-12")
    p.add_argument("--json", action="store_true", help="JSON Lines: one link per line")
    p.set_defaults(func=_cmd_get)

    p = command(
        "link",
        "create one link",
        "Create one link: SOURCE RELATIONSHIP TARGET, such as PROJ-12 'depends on' PROJ-7.\n"
        "RELATIONSHIP is one of: " + ", ".join(r.value for r in Relationship) + ".\n"
        "A link that exists already is not an error (exit 0).",
        usage=f"{_PROG} link [options] SOURCE RELATIONSHIP TARGET",
    )
    p.add_argument("words", nargs="+", metavar="SOURCE RELATIONSHIP TARGET", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_link)

    p = command("unlink", "delete one link", "Delete link LINK_ID (as `get` lists it) of KEY.")
    p.add_argument("key", metavar="KEY")
    p.add_argument("link_id", metavar="LINK_ID")
    p.set_defaults(func=_cmd_unlink)

    p = command("types", "the link types", "List the organization's link types.")
    p.add_argument("--json", action="store_true", help="JSON Lines")
    p.set_defaults(func=_cmd_types)

    p = command(
        "bulk-link",
        "create the links of a file",
        "Create every link of FILE ('-' reads stdin): CSV with the header\n"
        "source,relationship,target, or JSON Lines with those keys. The same link twice (in\n"
        "either spelling) is created once. A bad line fails on its own, with its line number\n"
        "(the header is line 1), and the rest goes on (exit 1). A file that cannot be read or\n"
        "has no usable header is exit 2.",
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
        help="validate and de-duplicate the input, print what would be sent, send nothing",
    )
    p.set_defaults(func=_cmd_bulk_link)

    p = command(
        "queue-links",
        "every link of a queue",
        "Export every link of a queue (or of the issues a query finds), each link once.\n"
        "The CSV output can be fed back to bulk-link.",
        usage=f"{_PROG} queue-links [options] (QUEUE | --query QUERY)",
    )
    p.add_argument("queue", metavar="QUEUE", nargs="?", help="a queue key such as PROJ")
    p.add_argument("--query", metavar="QUERY", help="a query instead, such as 'Queue: PROJ'")
    p.add_argument(
        "--format",
        choices=_FORMATS,
        help="jsonl (default), csv, dot (Graphviz) or mermaid; "
        "with --cycles and no --format, only the cycles are printed",
    )
    p.add_argument("-o", "--output", metavar="PATH", help="write the links to PATH, not stdout")
    p.add_argument(
        "--cycles", action="store_true", help="report dependency cycles ('depends on' loops)"
    )
    p.set_defaults(func=_cmd_queue_links)

    p = command(
        "fake-server",
        "serve the embedded fake Tracker",
        "Serve the embedded fake Tracker over HTTP, for trying things out (needs the 'fake'\n"
        "extra). It accepts any token.",
        connect=False,
        speed=False,
    )
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    p.add_argument("--port", type=_port, default=8000, help="default 8000 (0: any free port)")
    p.add_argument(
        "--queues",
        type=_queues,
        default={"TEST": 1000},
        metavar="Q=N,...",
        help="queues and their issue counts (default TEST=1000)",
    )
    p.add_argument("--latency-ms", type=_non_negative, default=0.0, help="latency per request")
    p.add_argument("--jitter-ms", type=_non_negative, default=0.0, help="random extra latency")
    p.add_argument(
        "--rate-limit",
        dest="fake_rate_limit",
        type=_positive_float,
        metavar="R",
        help="answer 429 beyond R requests/s",
    )
    p.add_argument("--fail-rate", type=_fraction, default=0.0, help="share of injected 5xx")
    p.add_argument("--drop-rate", type=_fraction, default=0.0, help="share of dropped connections")
    p.add_argument("--seed", type=int, default=None, help="seed of the injected faults")
    p.set_defaults(func=_cmd_fake_server)

    p = command(
        "demo",
        "the whole product against the fake, end to end",
        "Start the fake Tracker over loopback with realistic conditions (20-50 ms latency,\n"
        "300 req/s, a few injected faults), bulk-link 10,000 pairs with a journal, run again\n"
        "to show nothing is re-sent, then read the queue's links and draw a small picture.",
        connect=False,
    )
    p.add_argument("--pairs", type=_positive_int, help="input lines (default 10000; quick 300)")
    p.add_argument("--issues", type=_positive_int, help="issues in the queue (default pairs / 2)")
    p.add_argument("--quick", action="store_true", help="small and with no latency: for tests")
    p.add_argument("--latency-ms", type=_non_negative, help="the fake's latency (default 20)")
    p.add_argument("--jitter-ms", type=_non_negative, help="random extra latency (default 30)")
    p.add_argument(
        "--fake-rate-limit", type=_positive_float, metavar="R", help="the fake's limit (300)"
    )
    p.add_argument(
        "--adaptive",
        action="store_true",
        help="let the client find the rate limit itself (default: 90%% of the fake's limit)",
    )
    p.add_argument("--fail-rate", type=_fraction, default=0.02, help="injected 5xx (0.02)")
    p.add_argument("--drop-rate", type=_fraction, default=0.01, help="dropped connections (0.01)")
    p.add_argument("--seed", type=int, default=7, help="seed of the data and the faults")
    p.add_argument("--dir", metavar="PATH", help="keep the input, journal and report in PATH")
    p.set_defaults(func=_cmd_demo)
    return parser


def _leaf(exc: BaseException) -> BaseException:
    """The interesting exception inside (nested) exception groups from task groups."""
    while True:
        inner = getattr(exc, "exceptions", None)
        if not isinstance(inner, tuple) or not inner:
            return exc
        exc = next((e for e in inner if isinstance(e, (TrackerError, _UsageError))), inner[0])


def _dispatch(argv: list[str]) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    ui = _UI(quiet=args.quiet)
    if getattr(args, "token", None):
        ui.err(
            "warning: a token given with --token is visible to other users in the process "
            "list; prefer the TRACKER_TOKEN environment variable"
        )
    with _logging(args.verbose):
        try:
            code: int = args.func(args, ui)
            return code
        except KeyboardInterrupt:
            journal = getattr(args, "journal", None)
            hint = f"; run the same command with --journal {journal} to resume" if journal else ""
            ui.err(f"{_PROG}: interrupted{hint}")
            return EXIT_INTERRUPTED
        except Exception as exc:
            error = _leaf(exc)
            if isinstance(error, _UsageError):
                ui.err(f"{_PROG}: error: {error}")
                return EXIT_USAGE
            if isinstance(error, AuthError):
                ui.err(f"{_PROG}: authentication failed: {error}")
                ui.err(
                    "check TRACKER_TOKEN / TRACKER_IAM_TOKEN and TRACKER_ORG_ID / "
                    "TRACKER_CLOUD_ORG_ID"
                )
                return EXIT_USAGE
            if isinstance(error, InvalidInputError):
                ui.err(f"{_PROG}: error: {error}")
                return EXIT_USAGE
            if isinstance(error, TrackerError):
                ui.err(f"{_PROG}: {error}")
                return EXIT_FAILED
            if isinstance(error, BrokenPipeError):
                raise error from None
            raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    The console script ``tracker-links`` calls ``sys.exit(main())``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    secrets = _secrets(args)
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = cast(TextIO, _Redacting(stdout, secrets))
    sys.stderr = cast(TextIO, _Redacting(stderr, secrets))
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, and keep Python's own flush at
        # exit from complaining about the closed pipe.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stdout.fileno())
        return EXIT_FAILED
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = stdout, stderr
