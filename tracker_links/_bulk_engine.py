"""What the create and the delete engines share: the worker loop, the batch stop, the reports.

A :class:`BulkRun` reads its input lazily, sends the first item alone (a bad token then costs
one request), then runs a fixed number of workers, each reading its next item when it is free.
An engine says how one input item becomes a job (``_take``: ``None`` when it settled the item
itself, say a bad one or a repeat) and how a job is done (``_settle``). The batch stops on a
401, or when its first items show that none can succeed; the items after that are skipped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Final, Generic, Protocol, TypeVar

from anyio import create_task_group
from anyio.abc import ObjectSendStream

from ._exceptions import AuthError, TrackerError, TransportError
from ._models import LinkSpec
from ._ops import Ops
from ._reports import BulkReport, Outcome, OutcomeStatus
from ._streams import Stream, reading, stream
from ._transport import Slots

__all__ = [
    "FORBIDDEN_LIMIT",
    "UNREACHED_LIMIT",
    "BulkRun",
    "Emit",
    "line_of",
    "report",
    "streamed",
]

logger: Final = logging.getLogger("tracker_links")

# How many first items must all be unreachable, or all answered 403, to stop the batch.
UNREACHED_LIMIT: Final = 3
FORBIDDEN_LIMIT: Final = 5

Emit = Callable[[Outcome], Awaitable[None]]
In = TypeVar("In")
Job = TypeVar("Job")


class _Journal(Protocol):
    def close(self) -> None: ...


J = TypeVar("J", bound=_Journal)


class BulkRun(Generic[In, Job]):
    """One bulk run: reads the input, fans out, and hands each outcome to ``emit_outcome``."""

    what = "run"  # named in the log line when the batch stops
    found_status = OutcomeStatus.EXISTS  # the status of a repeat of an item that succeeded

    def __init__(self, ops: Ops, emit: Emit, workers: int) -> None:
        self.emit_outcome = emit
        self.concurrency = ops.concurrency
        self.workers = workers
        # Finished items: key -> the index of the item that was sent, ``~index`` when it
        # failed (one dict of 12-byte digests, ~110 bytes an entry).
        self.finished: dict[bytes, int] = {}
        self.stopped: TrackerError | None = None
        self.why_stopped = ""
        # The first items decide whether the batch can go on at all: every one of the first
        # ``unreached_limit`` unreachable (the service is down or the URL wrong), or the first
        # ``FORBIDDEN_LIMIT`` answered all 403 (a wrong organization) stop it, as a 401 does.
        self.unreached_limit = min(UNREACHED_LIMIT, self.concurrency)
        self.unreached = 0
        self.forbidden = 0
        self.reached = False  # some attempt got through to the service
        self.allowed = False  # some answer was not a 403
        self.index = -1  # of the last input item read
        self.exhausted = False
        self.input_error: Exception | None = None  # the input itself raised this

    async def _take(self, item: object, index: int) -> Job | None:
        """The job for input item ``index``; ``None`` when it is settled without a request."""
        raise NotImplementedError

    async def _settle(self, job: Job) -> None:
        """Do the job and emit its outcome (and those of the repeats that waited for it)."""
        raise NotImplementedError

    async def run(self, items: Iterable[In] | AsyncIterable[In]) -> None:
        async with reading(items) as source:
            # The first job goes alone: a bad token then costs one 401, not dozens.
            job = await self._next_job(source)
            if job is not None:
                await self._settle(job)
                # Then the workers, each reading its next item when it is free (a task per
                # item cost ~10% of the CPU per request).
                read_lock = Slots(1)  # one reader at a time: an async source may suspend
                async with create_task_group() as tg:
                    for _ in range(self.workers):
                        tg.start_soon(self._worker, source, read_lock)
        if self.input_error is not None:
            raise self.input_error

    async def _worker(self, source: AsyncIterator[In], read_lock: Slots) -> None:
        while True:
            async with read_lock:
                job = await self._next_job(source)
            if job is None:
                return
            await self._settle(job)

    async def _next_job(self, source: AsyncIterator[In]) -> Job | None:
        """Read input until an item needs a request; ``None`` at the end of the input."""
        while not self.exhausted:
            try:
                item = await source.__anext__()
            except StopAsyncIteration:
                self.exhausted = True
                break
            except Exception as exc:  # the input failed: finish what is in flight, then raise
                self.exhausted = True
                self.input_error = exc
                break
            self.index += 1
            job = await self._take(item, self.index)
            if job is not None:
                return job
        return None

    def _copy_of(self, spec: LinkSpec, index: int, line: int | None, first: int) -> Outcome:
        """The outcome of a repeat of item ``first`` (``~first``: that item failed)."""
        if first >= 0:
            note = f"same link as input item {first}"
            return Outcome(
                spec, self.found_status, index=index, note=note, repeat_of=first, line=line
            )
        err = TrackerError(f"same link as input item {~first}, which failed")
        return Outcome(
            spec, OutcomeStatus.FAILED, error=err, index=index, repeat_of=~first, line=line
        )

    def _skipped(self, spec: LinkSpec, index: int, line: int | None) -> Outcome:
        note = f"not attempted: the batch stopped after {type(self.stopped).__name__}"
        if self.why_stopped:
            note += f" ({self.why_stopped})"
        return Outcome(spec, OutcomeStatus.SKIPPED, index=index, note=note, line=line)

    def _observe(self, exc: TrackerError | None) -> None:
        """Stop the batch on a 401, or when its first items show that none can succeed."""
        if self.stopped is not None:
            return
        status = exc.status_code if exc is not None else 200
        if isinstance(exc, AuthError) and status != 403:
            self._stop(exc, "")
            return
        if isinstance(exc, TransportError) and exc.connect_failed:
            if not self.reached:
                self.unreached += 1
                if self.unreached >= self.unreached_limit:
                    n = self.unreached
                    self._stop(exc, f"the service could not be reached for the first {n} items")
            return
        self.reached = True
        if status == 403 and exc is not None:
            if not self.allowed:
                self.forbidden += 1
                if self.forbidden >= FORBIDDEN_LIMIT:
                    self._stop(exc, f"the first {self.forbidden} items were all refused with 403")
        elif status is not None:
            self.allowed = True

    def _stop(self, exc: TrackerError, why: str) -> None:
        self.stopped = exc
        self.why_stopped = why
        logger.error("bulk %s stopped: %s%s", self.what, exc, f" ({why})" if why else "")


def line_of(item: Mapping[str, object]) -> int | None:
    """The ``line`` a mapping item says it was read from, when it is a whole number."""
    line = item.get("line")
    return line if isinstance(line, int) and not isinstance(line, bool) else None


async def _execute(
    start: Callable[[Emit, J | None], Awaitable[None]],
    open_journal: Callable[[str | os.PathLike[str]], J],
    journal: str | os.PathLike[str] | None,
    emit: Emit,
) -> None:
    jr = open_journal(journal) if journal is not None else None
    try:
        await start(emit, jr)
    finally:
        if jr is not None:
            jr.close()


async def report(
    ops: Ops,
    start: Callable[[Emit, J | None], Awaitable[None]],
    open_journal: Callable[[str | os.PathLike[str]], J],
    journal: str | os.PathLike[str] | None,
    total: int | None,
    on_progress: Callable[[int, int | None, Outcome], object] | None,
) -> BulkReport:
    """Run ``start`` (with the journal, when one is named) and collect its outcomes in order."""
    outcomes: list[Outcome] = []
    clock = ops.clock
    started = clock()

    async def collect(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_progress is not None:
            on_progress(len(outcomes), total, outcome)

    await _execute(start, open_journal, journal, collect)
    outcomes.sort(key=lambda o: o.index)
    return BulkReport(outcomes, elapsed=clock() - started)


def streamed(
    ops: Ops,
    start: Callable[[Emit, J | None], Awaitable[None]],
    open_journal: Callable[[str | os.PathLike[str]], J],
    journal: str | os.PathLike[str] | None,
) -> Stream[Outcome]:
    """Run ``start`` (with the journal, when one is named), its outcomes as they come."""

    async def produce(send: ObjectSendStream[Outcome]) -> None:
        await _execute(start, open_journal, journal, send.send)

    return stream(produce, ops.concurrency)
