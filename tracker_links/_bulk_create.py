"""The create engine: many links at once, bounded, structured, resumable, never duplicated.

Every task has a parent (an anyio task group); the input is read lazily and at most a small
multiple of the client's concurrency is in flight, so a generator of a million specs runs in
bounded memory. Each create goes through :attr:`Ops.create`, which never duplicates a link.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from typing import Any, Final

import anyio
import attrs
from anyio.abc import ObjectSendStream

from ._exceptions import AuthError, InvalidInputError, TrackerError, TransportError
from ._history import judge_import
from ._journal import Journal
from ._models import LinkSpec, Relationship
from ._ops import Ops, Unresolved
from ._reports import BulkReport, Outcome, OutcomeStatus
from ._streams import Stream, length, reading, stream
from ._transport import Slots

__all__ = ["SpecInput", "bulk_create", "create_many"]

logger: Final = logging.getLogger("tracker_links")

# How many first items must all be unreachable, or all answered 403, to stop the batch.
UNREACHED_LIMIT: Final = 3
FORBIDDEN_LIMIT: Final = 5

SpecInput = (
    LinkSpec | tuple[str, str, Relationship | str] | tuple[LinkSpec, int] | Mapping[str, Any]
)


# One item that needs a request: its digest, spec, index and line (when the caller gave one).
_Job = tuple[bytes, LinkSpec, int, int | None]


class _CreateRun:
    """One bulk create: reads the input, fans out, and hands each outcome to ``emit``."""

    def __init__(
        self,
        ops: Ops,
        emit: Callable[[Outcome], Awaitable[None]],
        journal: Journal | None,
    ) -> None:
        self.create_one = ops.create
        self.get_links = ops.get
        self.judge = ops.judge
        self.wall: Callable[[], float] = time.time
        self.read_back = 0  # items an earlier run left in flight, read back before a resend
        self.unresolved: dict[bytes, float] = {}  # failed with an unknown fate -> intent time
        self.emit_outcome = emit
        self.journal = journal
        # Moved issues (old key -> new key): the client's map, taught the journal's moves.
        self.aliases = ops.aliases
        if journal is not None:
            for old, new in journal.aliases.items():
                self.aliases.learn(old, new)
        self.concurrency = ops.concurrency
        # Finished links: digest -> the index of the item that was sent, ``~index`` when it
        # failed (one dict of 12-byte digests, ~110 bytes an entry), and those in flight with
        # the repeats waiting for them.
        self.finished: dict[bytes, int] = {}
        self.waiting: dict[bytes, list[tuple[int, LinkSpec, int | None]]] = {}
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

    def _with_moves(self, outcome: Outcome) -> Outcome:
        """The outcome with the moves of its keys, when any is known."""
        spec = outcome.spec
        if self.aliases and outcome.moved is None and isinstance(spec, LinkSpec):
            moved = self.aliases.moved(spec)
            if moved:
                return attrs.evolve(outcome, moved=moved)
        return outcome

    async def emit(self, outcome: Outcome) -> None:
        outcome = self._with_moves(outcome)
        if self.journal is not None:
            self.journal.write(outcome)
        await self.emit_outcome(outcome)

    async def run(self, specs: Iterable[SpecInput] | AsyncIterable[SpecInput]) -> None:
        async with reading(specs) as items:
            # The first create goes alone: a bad token then costs one 401, not dozens.
            job = await self._next_job(items)
            if job is not None:
                await self._create(job)
                # Then one worker per slot of the client's concurrency, each reading its next
                # item when it is free (a task per item cost ~10% of the CPU per request).
                read_lock = Slots(1)  # one reader at a time: an async source may suspend
                async with anyio.create_task_group() as tg:
                    for _ in range(self.concurrency):
                        tg.start_soon(self._worker, items, read_lock)
        if self.input_error is not None:
            raise self.input_error

    async def _worker(self, items: AsyncIterator[SpecInput], read_lock: Slots) -> None:
        while True:
            async with read_lock:
                job = await self._next_job(items)
            if job is None:
                return
            await self._create(job)

    async def _next_job(self, items: AsyncIterator[SpecInput]) -> _Job | None:
        """Read input until an item needs a request; settle the others (bad, repeats) on the way.

        Returns the item's digest, spec, index and line, or None at the end of the input.
        """
        while not self.exhausted:
            try:
                item = await items.__anext__()
            except StopAsyncIteration:
                self.exhausted = True
                break
            except Exception as exc:  # the input failed: finish what is in flight, then raise
                self.exhausted = True
                self.input_error = exc
                break
            self.index += 1
            index = self.index
            line: int | None = None
            if type(item) is LinkSpec:
                spec = item
            elif (
                type(item) is tuple
                and len(item) == 2
                and type(item[0]) is LinkSpec
                and type(item[1]) is int
            ):
                spec, line = item  # a LinkSpec with the number of the line it was read from
            else:
                if isinstance(item, Mapping):
                    line = _line_of(item)
                try:
                    spec = LinkSpec.coerce(item)  # type: ignore[arg-type]  # any pair: refused
                except InvalidInputError as exc:
                    await self.emit(_failed(item, exc, index, line))
                    continue
                except Exception as exc:  # a spec whose fields are not even strings
                    err = InvalidInputError(f"cannot read a link spec from {item!r}: {exc}")
                    await self.emit(_failed(item, err, index, line))
                    continue
            if self.stopped is not None:
                await self.emit(self._skipped(spec, index, line))
                continue
            # A moved key and its new key are one issue (as far as the moves seen tell).
            key = self.aliases.identity(spec) if self.aliases else spec.digest
            if await self._repeat(key, spec, index, line):
                continue
            self.waiting[key] = []
            return key, spec, index, line
        return None

    async def _repeat(self, key: bytes, spec: LinkSpec, index: int, line: int | None) -> bool:
        """Handle an input item whose link is done, in flight, or in the journal."""
        if self.journal is not None and key in self.journal.done:
            note = "already done in the journal; not sent"
            await self.emit_outcome(
                self._with_moves(
                    Outcome(spec, OutcomeStatus.EXISTS, index=index, note=note, line=line)
                )
            )
            return True
        first = self.finished.get(key)
        if first is not None:
            ok = first >= 0
            await self.emit(self._copy_of(spec, index, line, first if ok else ~first, ok))
            return True
        waiters = self.waiting.get(key)
        if waiters is not None:
            waiters.append((index, spec, line))
            return True
        return False

    def _copy_of(
        self, spec: LinkSpec, index: int, line: int | None, first: int, ok: bool
    ) -> Outcome:
        if ok:
            note = f"same link as input item {first}"
            return Outcome(
                spec, OutcomeStatus.EXISTS, index=index, note=note, repeat_of=first, line=line
            )
        err = TrackerError(f"same link as input item {first}, which failed")
        return Outcome(
            spec, OutcomeStatus.FAILED, error=err, index=index, repeat_of=first, line=line
        )

    def _skipped(self, spec: LinkSpec, index: int, line: int | None) -> Outcome:
        note = f"not attempted: the batch stopped after {type(self.stopped).__name__}"
        if self.why_stopped:
            note += f" ({self.why_stopped})"
        return Outcome(spec, OutcomeStatus.SKIPPED, index=index, note=note, line=line)

    async def _create(self, job: _Job) -> None:
        key, spec, index, line = job
        if self.stopped is not None:
            outcome = self._skipped(spec, index, line)
        else:
            outcome = await self._attempt(spec, index, line)
        waiters = self.waiting.pop(key, [])
        self.finished[key] = index if outcome.ok else ~index
        if self.aliases:
            # Its keys may have turned out moved: a later repeat under the new keys is one too.
            self.finished.setdefault(self.aliases.identity(spec), self.finished[key])
        await self.emit(outcome)
        if self.journal is not None and spec.digest in self.unresolved:
            # Its fate stays unknown: the intent, written again after the outcome, stays open
            # for the next run to read back before it sends anything.
            self.journal.intent(spec, index, line, self.unresolved.pop(spec.digest))
        for i, s, ln in waiters:
            if outcome.status is OutcomeStatus.SKIPPED:
                await self.emit(self._skipped(s, i, ln))
            else:
                await self.emit(self._copy_of(s, i, ln, index, outcome.ok))

    async def _attempt(self, spec: LinkSpec, index: int, line: int | None) -> Outcome:
        journal = self.journal
        at = 0.0
        if journal is not None:
            sent_at = journal.pending.pop(spec.digest, None)
            if sent_at is not None:
                # In flight when an earlier run died: look before anything is sent again.
                found = await self._read_back(spec, index, line, sent_at)
                if found is not None:
                    return found
            at = self.wall()
            journal.intent(spec, index, line, at)
        try:
            done = await self.create_one(spec)
        except Unresolved as exc:
            if journal is not None:
                self.unresolved[spec.digest] = at
            return self._failed_attempt(spec, index, line, exc.cause, exc.attempts)
        except TrackerError as exc:
            return self._failed_attempt(spec, index, line, exc, 1)
        if not self.allowed:
            self._observe(None)
        status = OutcomeStatus.CREATED if done.made else OutcomeStatus.EXISTS
        return Outcome(
            spec,
            status,
            link=done.link,
            attempts=done.attempts,
            index=index,
            line=line,
            verified_by=done.verified_by,
        )

    def _failed_attempt(
        self, spec: LinkSpec, index: int, line: int | None, exc: TrackerError, attempts: int
    ) -> Outcome:
        self._observe(exc)
        return Outcome(
            spec, OutcomeStatus.FAILED, error=exc, attempts=attempts, index=index, line=line
        )

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
                    n = self.forbidden
                    self._stop(exc, f"the first {n} items were all refused with 403")
        elif status is not None:
            self.allowed = True

    def _stop(self, exc: TrackerError, why: str) -> None:
        self.stopped = exc
        self.why_stopped = why
        logger.error("bulk create stopped: %s%s", exc, f" ({why})" if why else "")

    async def _read_back(
        self, spec: LinkSpec, index: int, line: int | None, at: float
    ) -> Outcome | None:
        """The outcome of a create an earlier run sent at ``at`` and never saw settled, read
        from the service; ``None`` when the link is not there (then it is sent)."""
        self.read_back += 1
        try:
            links = await self.get_links(spec.source)
            found = next((ln for ln in links if self.aliases.matches(spec, ln)), None)
            if found is None:
                return None
            if spec.created_at is None:
                made, how = await self.judge(found, at)
            else:  # an import's createdAt is its history, not the time it was sent
                made, how = judge_import(spec.created_at, found.created_at)
        except TrackerError as exc:
            self.unresolved[spec.digest] = at  # still unknown: still open
            return self._failed_attempt(spec, index, line, exc, 0)
        status = OutcomeStatus.CREATED if made else OutcomeStatus.EXISTS
        return Outcome(spec, status, link=found, index=index, line=line, verified_by=how)


def _line_of(item: Mapping[str, object]) -> int | None:
    line = item.get("line")
    return line if isinstance(line, int) and not isinstance(line, bool) else None


def _failed(item: object, error: TrackerError, index: int, line: int | None) -> Outcome:
    return Outcome(item, OutcomeStatus.FAILED, error=error, index=index, line=line)


async def bulk_create(
    ops: Ops,
    specs: Iterable[SpecInput] | AsyncIterable[SpecInput],
    *,
    on_progress: Callable[[int, int | None, Outcome], object] | None = None,
    journal: str | os.PathLike[str] | None = None,
) -> BulkReport:
    total = length(specs)
    outcomes: list[Outcome] = []
    clock = ops.clock
    started = clock()

    async def collect(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_progress is not None:
            on_progress(len(outcomes), total, outcome)

    jr = Journal(journal) if journal is not None else None
    try:
        await _CreateRun(ops, collect, jr).run(specs)
    finally:
        if jr is not None:
            jr.close()
    outcomes.sort(key=lambda o: o.index)
    return BulkReport(outcomes, elapsed=clock() - started)


def create_many(
    ops: Ops,
    specs: Iterable[SpecInput] | AsyncIterable[SpecInput],
    *,
    journal: str | os.PathLike[str] | None = None,
) -> Stream[Outcome]:
    async def produce(send: ObjectSendStream[Outcome]) -> None:
        jr = Journal(journal) if journal is not None else None
        try:
            await _CreateRun(ops, send.send, jr).run(specs)
        finally:
            if jr is not None:
                jr.close()

    return stream(produce, ops.concurrency)
