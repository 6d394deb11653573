"""Reading bulk input: CSV or JSON Lines rows, each with its line number."""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import itertools
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final, TextIO

import attrs

from .._exceptions import InvalidInputError
from .._journal import journal_done
from .._models import HISTORY_FIELDS, LinkSpec
from ._errors import UsageError
from ._output import clip, n

__all__ = [
    "FIELDS",
    "HISTORY",
    "QUOTED_LINES",
    "Input",
    "LineCount",
    "Row",
    "count_items",
    "csv_text",
    "done_in_journal",
    "open_input",
    "read_rows",
]

FIELDS: Final = ("source", "relationship", "target")
HISTORY: Final = HISTORY_FIELDS
"""Optional columns (CSV) or keys (JSON Lines): a row with ``created_at`` is imported with its
history (``created_at, created_by``, optionally ``updated_at, updated_by``)."""


@attrs.frozen
class Row:
    """One data line of the input: a valid spec, or the reason it is not one."""

    line: int
    spec: LinkSpec | None
    reason: str | None = None
    raw: str = ""


def _spec_row(
    line: int,
    source: str,
    relationship: str,
    target: str,
    raw: str | Callable[[], str],
    history: dict[str, Any] | None = None,
) -> Row:
    values = (source, relationship, target)
    missing = [name for name, value in zip(FIELDS, values, strict=True) if not value]
    if missing:
        reason = f"missing {' and '.join(missing)}"
    else:
        try:
            if history:
                return Row(line, LinkSpec(source, target, relationship, **history))
            return Row(line, LinkSpec(source, target, relationship))
        except InvalidInputError as exc:
            reason = exc.message
    return Row(line, None, reason, raw() if callable(raw) else raw)


def csv_text(row: Sequence[str]) -> str:
    """A CSV row as one line of text."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue()


@attrs.define
class LineCount:
    """Where every physical line of the input went; the fields add up to ``read``.

    ``items`` are the data lines that are link specs (sent, or found done); ``bad`` the data
    lines that are not (each reported with its number and reason); ``blank`` empty lines;
    ``header`` the CSV header; ``continued`` the further lines of records whose quoted field
    runs across lines (counted with the item that opened it).
    """

    read: int = 0
    items: int = 0
    bad: int = 0
    blank: int = 0
    header: int = 0
    continued: int = 0

    @property
    def accounted(self) -> int:
        return self.items + self.bad + self.blank + self.header + self.continued

    def text(self) -> str:
        """``20,001 lines read: 19,999 items, 1 bad line, 1 blank/header``."""
        bad = "bad line" if self.bad == 1 else "bad lines"
        item = "item" if self.items == 1 else "items"
        out = (
            f"{n(self.read)} lines read: {n(self.items)} {item}, {n(self.bad)} {bad}, "
            f"{n(self.blank + self.header)} blank/header"
        )
        if self.continued:
            out += f", {n(self.continued)} continuing a quoted field"
        return out


@attrs.frozen
class Input:
    """The rows of an input file, read lazily, and the count of its lines so far.

    ``history``: the optional history columns a CSV header names (:data:`HISTORY` order).
    """

    fmt: str
    rows: Iterator[Row]
    count: LineCount
    history: tuple[str, ...] = ()


class _Lines:
    """The physical lines of the input, numbered from 1, with lines that can be put back."""

    def __init__(self, lines: Iterator[str], count: LineCount) -> None:
        self._lines = lines
        self._back: list[tuple[int, str]] = []  # a stack: the next line to read is last
        self._number = 0
        self._count = count

    def next(self) -> tuple[int, str] | None:
        if self._back:
            return self._back.pop()
        line = next(self._lines, None)
        if line is None:
            return None
        self._number += 1
        self._count.read += 1
        return self._number, line

    def put_back(self, lines: Sequence[tuple[int, str]]) -> None:
        self._back.extend(reversed(lines))


class _Record:
    """What ``csv.reader`` reads one record from: its first line, then at most a few more.

    A record only takes more lines when a quoted field runs on; when that field has not closed
    within :data:`QUOTED_LINES` lines in all, or the input ends inside it, ``starved`` is set.
    """

    def __init__(self, lines: _Lines) -> None:
        self._lines = lines
        self._first: str | None = None
        self.more: list[tuple[int, str]] = []
        self.starved = False

    def start(self, line: str) -> None:
        self._first = line
        self.more = []
        self.starved = False

    def __iter__(self) -> _Record:
        return self

    def __next__(self) -> str:
        if self._first is not None:
            line, self._first = self._first, None
            return line
        got = None if len(self.more) >= QUOTED_LINES - 1 else self._lines.next()
        if got is None:
            self.starved = True
            raise StopIteration
        self.more.append(got)
        return got[1]


QUOTED_LINES: Final = 10
"""A quoted CSV field may run across at most this many lines (the line that opens it included);
one that runs on further (a stray quote) makes its first line a bad line, and the lines after it
are read on their own."""


class _CsvReader:
    """CSV records, each with the number of the line it starts on (see :data:`QUOTED_LINES`)."""

    def __init__(self, lines: Iterator[str], count: LineCount) -> None:
        self.count = count
        self._lines = _Lines(lines, count)
        self._record = _Record(self._lines)
        self._reader = csv.reader(self._record)

    def next(self) -> tuple[int, list[str] | None, str] | None:
        """The next record: its line, its cells (``None`` if unreadable) and its text or error."""
        got = self._lines.next()
        if got is None:
            return None
        number, line = got
        record = self._record
        record.start(line)
        error = ""
        try:
            row: list[str] | None = next(self._reader)
        except StopIteration:
            row = None
        except csv.Error as exc:
            row, error = None, f"unreadable CSV: {exc}"
        if record.starved:
            row = None
            error = (
                f"unreadable CSV: a quoted field opened on this line does not close within "
                f"{QUOTED_LINES} lines (a stray '\"'?); the lines after it are read on their own"
            )
        if row is None:
            self._lines.put_back(record.more)
            return number, None, error or "unreadable CSV"
        self.count.continued += len(record.more)
        return number, row, line


def _blank(row: Sequence[str]) -> bool:
    return not any(cell.strip() for cell in row)


def _csv_rows(
    lines: Iterator[str], name: str, count: LineCount
) -> tuple[Iterator[Row], tuple[str, ...]]:
    """Check the header now (exit 2 without one); return the data rows, read lazily."""
    reader = _CsvReader(lines, count)
    header: list[str] | None = None
    while header is None:
        got = reader.next()
        if got is None:
            raise UsageError(f"{name}: no usable header: the file holds only blank lines")
        number, row, text = got
        if row is None:
            raise UsageError(f"{name}: no usable header: line {number}: {text}")
        if _blank(row):
            count.blank += 1
        else:
            header = row
    count.header += 1
    names = [cell.strip().lower() for cell in header]
    missing = [f for f in FIELDS if f not in names]
    if missing:
        raise UsageError(
            f"{name}: no usable header: line {number} is "
            f"{clip(csv_text(header), 60)!r}, with no column {', '.join(missing)}; "
            "the first line must name the columns: source,relationship,target"
        )
    columns = (names.index("source"), names.index("relationship"), names.index("target"))
    history = tuple((f, names.index(f)) for f in HISTORY if f in names)
    return _csv_data(reader, columns, len(names), history), tuple(f for f, _ in history)


def _csv_data(
    reader: _CsvReader,
    columns: tuple[int, int, int],
    width: int,
    history_columns: tuple[tuple[str, int], ...] = (),
) -> Iterator[Row]:
    count = reader.count
    while (got := reader.next()) is not None:
        number, row, text = got
        if row is None:
            count.bad += 1
            yield Row(number, None, text, "")
            continue
        if _blank(row):
            count.blank += 1
            continue
        if len(row) > width and not _blank(row[width:]):
            count.bad += 1
            yield Row(
                number, None, f"{len(row)} fields, but the header names {width}", csv_text(row)
            )
            continue
        s, r, t = (row[i].strip() if i < len(row) else "" for i in columns)
        history: dict[str, Any] | None = None
        if history_columns:  # empty cells: no such value
            history = {f: row[i].strip() for f, i in history_columns if i < len(row)}
            history = {f: v for f, v in history.items() if v}
        out = _spec_row(number, s, r, t, functools.partial(csv_text, row), history)
        if out.spec is None:
            count.bad += 1
        else:
            count.items += 1
        yield out


def _jsonl_rows(lines: Iterable[str], count: LineCount) -> Iterator[Row]:
    for number, line in enumerate(lines, 1):
        count.read += 1
        text = line.strip()
        if not text:
            count.blank += 1
            continue
        out = _jsonl_row(number, text)
        if out.spec is None:
            count.bad += 1
        else:
            count.items += 1
        yield out


def _jsonl_row(number: int, text: str) -> Row:
    try:
        data = json.loads(text)
    except ValueError as exc:
        return Row(number, None, f"not valid JSON: {exc}", text)
    if not isinstance(data, dict):
        reason = "expected a JSON object with source, relationship and target"
        return Row(number, None, reason, text)
    wrong = [f for f in FIELDS if data.get(f) is not None and not isinstance(data[f], str)]
    if wrong:
        return Row(number, None, f"{', '.join(wrong)}: expected a string", text)
    s, r, t = ((data.get(f) or "").strip() for f in FIELDS)
    history = {f: data[f] for f in HISTORY if data.get(f) not in (None, "")}
    return _spec_row(number, s, r, t, text, history)


def read_rows(stream: TextIO, fmt: str, name: str) -> Input:
    """The input's format (``csv``/``jsonl``), its data rows and the count of its lines.

    Every physical line is accounted for in the count (see :class:`LineCount`); a file that
    is empty or has no usable header is exit 2.
    """
    lines: Iterator[str] = iter(stream)
    head: list[str] = []
    try:
        for line in lines:
            head.append(line)
            if line.strip():
                break
        else:
            raise UsageError(
                f"{name} is empty: expected a CSV header 'source,relationship,target' or JSON Lines"
            )
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None
    if fmt == "auto":
        fmt = "jsonl" if head[-1].lstrip().startswith("{") else "csv"
    everything = itertools.chain(head, lines)
    count = LineCount()
    if fmt == "jsonl":
        return Input(fmt, _jsonl_rows(everything, count), count)
    rows, history = _csv_rows(everything, name, count)
    return Input(fmt, rows, count, history)


@contextlib.contextmanager
def open_input(path: str) -> Iterator[TextIO]:
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
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        yield f


def count_items(path: str, fmt: str) -> int | None:
    """How many items (valid or bad lines) the file holds, read as the run will read it.

    The progress bar's total: the same reader, so the bar ends where the counters do (a
    quoted field across lines, blank lines and the header are not items).
    """
    if path == "-":
        return None
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
            return sum(1 for _ in read_rows(f, fmt, path).rows)
    except (OSError, UsageError):
        return None


def done_in_journal(path: str) -> set[bytes]:
    """The links a journal records as done: what a run would not send."""
    try:
        return journal_done(path)
    except OSError as exc:
        raise UsageError(f"cannot read the journal {path}: {exc.strerror or exc}") from None
