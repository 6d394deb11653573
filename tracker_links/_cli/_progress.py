"""The live progress bar on stderr: done/total, rate, elapsed, ETA and named counters."""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from ._output import UI, n

__all__ = ["Progress", "ServiceCounts", "clock_text"]

ServiceCounts = Callable[[], tuple[int, int, int]]
"""Requests sent, retries and 429 answers so far (read from the client's transport)."""

_PACE_WINDOW: Final = 5.0  # seconds of requests the pace is measured over

_STYLES: Final = {
    "created": "green",
    "exists": "cyan",
    "failed": "red",
    "skipped": "yellow",
    "links": "cyan",
}


class Progress:
    """A live progress bar on stderr: done/total, rate, elapsed, ETA and named counters.

    With ``service`` (the client's counters), it also shows what the service is doing: the
    current pace in requests/s, the retries and the 429 answers. Silent unless stderr is a
    terminal and ``--quiet`` was not given; rich draws it when installed, otherwise a plain
    line rewritten in place.
    """

    _EVERY: Final = 0.1  # seconds between redraws (rich also redraws on its own)

    def __init__(
        self,
        ui: UI,
        description: str,
        total: int | None,
        counters: Sequence[str],
        *,
        service: ServiceCounts | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.description = description
        self.total = total
        self.done = 0
        self.counts: dict[str, int] = dict.fromkeys(counters, 0)
        self.service = service
        self.clock = clock
        self.started = clock()
        self._samples: deque[tuple[float, int]] = deque()
        self._last = 0.0
        self._rich: Any = None
        self._task: Any = None
        self._plain = False
        if ui.live:
            if ui.rich:
                self._rich = _rich_progress()
            else:
                self._plain = True

    def __enter__(self) -> Progress:
        self.started = self.clock()
        if self._rich is not None:
            self._rich.start()
            self._task = self._rich.add_task(
                self.description, total=self.total, counts=dict(self.counts), service=""
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self._draw(force=True)
        if self._rich is not None:
            self._rich.stop()
        elif self._plain:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def advance(self, counter: str | None = None, count: int = 1, *, done: int = 1) -> None:
        """``done`` more items; ``count`` more of ``counter`` (if given)."""
        self.done += done
        if counter is not None:
            self.counts[counter] = self.counts.get(counter, 0) + count
        if self.total is not None and self.done > self.total:
            self.total = self.done  # the estimate was short (the file grew)
        if self._rich is not None or self._plain:
            self._draw()

    def service_text(self, now: float) -> str:
        """``87 req/s  retries 3  429s 2``: what the service is doing (empty without a client).

        The pace is the requests sent over the last few seconds, not the average of the run,
        so a run being throttled shows it at once.
        """
        if self.service is None:
            return ""
        requests, retries, limited = self.service()
        samples = self._samples
        samples.append((now, requests))
        while len(samples) > 2 and now - samples[1][0] >= _PACE_WINDOW:
            samples.popleft()
        then, before = samples[0]
        pace = (requests - before) / (now - then) if now > then else 0.0
        return f"{pace:,.0f} req/s  retries {n(retries)}  429s {n(limited)}"

    def line(self, now: float) -> str:
        """The plain progress line."""
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        total = "?" if self.total is None else n(self.total)
        eta = ""
        if self.total is not None and rate > 0:
            eta = f" ETA {clock_text(max(0.0, (self.total - self.done) / rate))}"
        counts = " ".join(f"{k} {n(v)}" for k, v in self.counts.items() if v)
        service = self.service_text(now)
        return (
            f"{self.description} {n(self.done)}/{total} {rate:,.0f}/s "
            f"{clock_text(elapsed)}{eta}  {counts}{'  | ' + service if service else ''}"
        )

    def _draw(self, *, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last < self._EVERY:
            return
        self._last = now
        if self._rich is not None and self._task is not None:
            self._rich.update(
                self._task,
                completed=self.done,
                total=self.total,
                counts=dict(self.counts),
                service=self.service_text(now),
            )
        elif self._plain:
            sys.stderr.write("\r" + self.line(now).ljust(79))
            sys.stderr.flush()


def clock_text(seconds: float) -> str:
    """``H:MM:SS``."""
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _rich_progress() -> Any:
    """A rich ``Progress`` on stderr (rich imported lazily), on two lines that fit 80 columns.

    ``linking ━━━━━━━━━━━━━━━━━━━━━━━━ 9,803/10,000  243/s  ETA 0:00:01``
    ``  created 9,710  exists 93  failed 50  skipped 0  | 243 req/s  retries 3  429s 0``
    """
    from rich.console import Console, RenderableType
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Items per second."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            text = "?/s" if speed is None else f"{speed:,.0f}/s"
            return Text(text, style="progress.data.speed")

    class TwoLines(RichProgress):
        """The bar, then the named counters of the task on a line of their own."""

        def get_renderables(self) -> Iterable[RenderableType]:
            yield self.make_tasks_table(self.tasks)
            for task in self.tasks:
                counts: Mapping[str, int] = task.fields.get("counts", {})
                text = Text(" ")
                for name, value in counts.items():
                    text.append(f" {name} ", style="dim")
                    text.append(n(value), style=_STYLES.get(name, "") if value else "dim")
                service = task.fields.get("service")
                if service:
                    text.append(f"  | {service}", style="dim")
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
