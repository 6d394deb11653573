"""Output of the command line: the secrets filter, tables, and the library's log lines.

Tables are drawn by rich (the ``cli`` extra) when it is installed, as plain text otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final, TextIO

__all__ = ["UI", "Redacting", "clip", "has_rich", "logging_to_stderr", "n"]

logger: Final = logging.getLogger("tracker_links")


class Redacting:
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


def has_rich() -> bool:
    """Whether rich (the ``cli`` extra) can be imported."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def clip(text: str, width: int = 80) -> str:
    """``text`` on one line, cut to ``width`` characters with ``...``."""
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def n(value: int) -> str:
    """A count with thousands separators: ``20,000``."""
    return f"{value:,}"


class UI:
    """Where and how output goes: rich when installed, plain text otherwise."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.rich = has_rich()

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


class _StderrHandler(logging.Handler):
    """Log lines to whatever ``sys.stderr`` is when they are emitted (above a progress bar)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def logging_to_stderr(verbose: int) -> Iterator[None]:
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
