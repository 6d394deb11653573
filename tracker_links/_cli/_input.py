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

from .._bulk import journal_done
from .._exceptions import InvalidInputError
from .._models import LinkSpec
from ._errors import UsageError
from ._output import clip

__all__ = ["FIELDS", "Row", "count_items", "csv_text", "done_in_journal", "open_input", "read_rows"]

FIELDS: Final = ("source", "relationship", "target")


@attrs.frozen
class Row:
    """One data line of the input: a valid spec, or the reason it is not one."""

    line: int
    spec: LinkSpec | None
    reason: str | None = None
    raw: str = ""


def _spec_row(
    line: int, source: str, relationship: str, target: str, raw: str | Callable[[], str]
) -> Row:
    values = (source, relationship, target)
    missing = [name for name, value in zip(FIELDS, values, strict=True) if not value]
    if missing:
        reason = f"missing {' and '.join(missing)}"
    else:
        try:
            return Row(line, LinkSpec(source, target, relationship))
        except InvalidInputError as exc:
            reason = exc.message
    return Row(line, None, reason, raw() if callable(raw) else raw)


def csv_text(row: Sequence[str]) -> str:
    """A CSV row as one line of text."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue()


def _csv_rows(lines: Iterator[str], name: str) -> Iterator[Row]:
    """Check the header now (exit 2 without one); return the data rows, read lazily."""
    reader = csv.reader(lines)
    header: list[str] | None = None
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                header = row
                break
    except csv.Error as exc:
        raise UsageError(f"{name}: no usable header: line {reader.line_num}: {exc}") from None
    if header is None:
        raise UsageError(f"{name}: no usable header: the file holds only blank lines")
    names = [cell.strip().lower() for cell in header]
    missing = [f for f in FIELDS if f not in names]
    if missing:
        raise UsageError(
            f"{name}: no usable header: line {reader.line_num} is "
            f"{clip(csv_text(header), 60)!r}, with no column {', '.join(missing)}; "
            "the first line must name the columns: source,relationship,target"
        )
    columns = (names.index("source"), names.index("relationship"), names.index("target"))
    return _csv_data(reader, columns, len(names), reader.line_num)


def _csv_data(reader: Any, columns: tuple[int, int, int], width: int, last: int) -> Iterator[Row]:
    while True:
        start = last + 1  # a quoted field may span lines: a row starts after the previous one
        try:
            row: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Row(start, None, f"unreadable CSV: {exc}", "")
            if reader.line_num <= last:
                return
            last = reader.line_num
            continue
        last = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > width and any(cell.strip() for cell in row[width:]):
            reason = f"{len(row)} fields, but the header names {width}"
            yield Row(start, None, reason, csv_text(row))
            continue
        s, r, t = (row[i].strip() if i < len(row) else "" for i in columns)
        yield _spec_row(start, s, r, t, functools.partial(csv_text, row))


def _jsonl_rows(lines: Iterable[str]) -> Iterator[Row]:
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        try:
            data = json.loads(text)
        except ValueError as exc:
            yield Row(number, None, f"not valid JSON: {exc}", text)
            continue
        if not isinstance(data, dict):
            reason = "expected a JSON object with source, relationship and target"
            yield Row(number, None, reason, text)
            continue
        wrong = [f for f in FIELDS if data.get(f) is not None and not isinstance(data[f], str)]
        if wrong:
            yield Row(number, None, f"{', '.join(wrong)}: expected a string", text)
            continue
        s, r, t = ((data.get(f) or "").strip() for f in FIELDS)
        yield _spec_row(number, s, r, t, text)


def read_rows(stream: TextIO, fmt: str, name: str) -> tuple[str, Iterator[Row]]:
    """The input's format (``csv``/``jsonl``) and its data rows; exit 2 for no usable header."""
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
    if fmt == "jsonl":
        return fmt, _jsonl_rows(everything)
    return fmt, _csv_rows(everything, name)


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
    """How many data lines a file holds (for the progress bar's total and ETA)."""
    if path == "-":
        return None
    try:
        with open(path, "rb") as f:
            count = sum(1 for line in f if line.strip())
    except OSError:
        return None
    return max(0, count - 1) if fmt == "csv" else count


def done_in_journal(path: str) -> set[bytes]:
    """The links a journal records as done: what a run would not send."""
    try:
        return journal_done(path)
    except OSError as exc:
        raise UsageError(f"cannot read the journal {path}: {exc.strerror or exc}") from None
