"""The create engine: many links at once, bounded, structured, resumable, never duplicated.

Every task has a parent (an anyio task group); the input is read lazily and at most a small
multiple of the client's concurrency is in flight, so a generator of a million specs runs in
bounded memory. Each create goes through :attr:`Ops.create`, which never duplicates a link.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from typing import Any

import attrs

from ._bulk_engine import BulkRun, Emit, line_of, report, streamed
from ._exceptions import InvalidInputError, TrackerError
from ._history import judge_import
from ._journal import Journal
from ._models import LinkSpec, Relationship
from ._ops import Ops, Unresolved
from ._reports import BulkReport, Outcome, OutcomeStatus
from ._streams import Stream, length

__all__ = ["SpecInput", "bulk_create", "create_many"]

SpecInput = (
    LinkSpec | tuple[str, str, Relationship | str] | tuple[LinkSpec, int] | Mapping[str, Any]
)


# One item that needs a request: its digest, spec, index and line (when the caller gave one).
_Job = tuple[bytes, LinkSpec, int, int | None]


class _CreateRun(BulkRun["SpecInput", _Job]):
    """One bulk create: reads the input, fans out, and hands each outcome to ``emit``."""

    what = "create"

    def __init__(self, ops: Ops, emit: Emit, journal: Journal | None) -> None:
        # One worker per slot of the client's concurrency.
        super().__init__(ops, emit, ops.concurrency)
        self.create_one = ops.create
        self.get_links = ops.get
        self.judge = ops.judge
        self.wall: Callable[[], float] = time.time
        self.read_back = 0  # items an earlier run left in flight, read back before a resend
        self.unresolved: dict[bytes, float] = {}  # failed with an unknown fate -> intent time
        self.journal = journal
        # Moved issues (old key -> new key): the client's map, taught the journal's moves.
        self.aliases = ops.aliases
        if journal is not None:
            for old, new in journal.aliases.items():
                self.aliases.learn(old, new)
        # The links in flight, with the repeats waiting for them.
        self.waiting: dict[bytes, list[tuple[int, LinkSpec, int | None]]] = {}

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

    async def _take(self, item: object, index: int) -> _Job | None:
        """The job for one input item; bad items and repeats are settled here."""
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
                line = line_of(item)
            try:
                spec = LinkSpec.coerce(item)  # type: ignore[arg-type]  # any pair: refused
            except InvalidInputError as exc:
                await self.emit(_failed(item, exc, index, line))
                return None
            except Exception as exc:  # a spec whose fields are not even strings
                err = InvalidInputError(f"cannot read a link spec from {item!r}: {exc}")
                await self.emit(_failed(item, err, index, line))
                return None
        if self.stopped is not None:
            await self.emit(self._skipped(spec, index, line))
            return None
        # A moved key and its new key are one issue (as far as the moves seen tell).
        key = self.aliases.identity(spec) if self.aliases else spec.digest
        # A link done, in flight, or in the journal is not sent again.
        if self.journal is not None and key in self.journal.done:
            note = "already done in the journal; not sent"
            await self.emit_outcome(
                self._with_moves(
                    Outcome(spec, OutcomeStatus.EXISTS, index=index, note=note, line=line)
                )
            )
            return None
        first = self.finished.get(key)
        if first is not None:
            await self.emit(self._copy_of(spec, index, line, first))
            return None
        waiters = self.waiting.get(key)
        if waiters is not None:
            waiters.append((index, spec, line))
            return None
        self.waiting[key] = []
        return key, spec, index, line

    async def _settle(self, job: _Job) -> None:
        key, spec, index, line = job
        if self.stopped is not None:
            outcome = self._skipped(spec, index, line)
        else:
            outcome = await self._attempt(spec, index, line)
        waiters = self.waiting.pop(key, [])
        self.finished[key] = first = index if outcome.ok else ~index
        if self.aliases:
            # Its keys may have turned out moved: a later repeat under the new keys is one too.
            self.finished.setdefault(self.aliases.identity(spec), first)
        await self.emit(outcome)
        if self.journal is not None and spec.digest in self.unresolved:
            # Its fate stays unknown: the intent, written again after the outcome, stays open
            # for the next run to read back before it sends anything.
            self.journal.intent(spec, index, line, self.unresolved.pop(spec.digest))
        for i, s, ln in waiters:
            if outcome.status is OutcomeStatus.SKIPPED:
                await self.emit(self._skipped(s, i, ln))
            else:
                await self.emit(self._copy_of(s, i, ln, first))

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


def _failed(item: object, error: TrackerError, index: int, line: int | None) -> Outcome:
    return Outcome(item, OutcomeStatus.FAILED, error=error, index=index, line=line)


async def bulk_create(
    ops: Ops,
    specs: Iterable[SpecInput] | AsyncIterable[SpecInput],
    *,
    on_progress: Callable[[int, int | None, Outcome], object] | None = None,
    journal: str | os.PathLike[str] | None = None,
) -> BulkReport:
    return await report(ops, _starter(ops, specs), Journal, journal, length(specs), on_progress)


def create_many(
    ops: Ops,
    specs: Iterable[SpecInput] | AsyncIterable[SpecInput],
    *,
    journal: str | os.PathLike[str] | None = None,
) -> Stream[Outcome]:
    return streamed(ops, _starter(ops, specs), Journal, journal)


def _starter(
    ops: Ops, specs: Iterable[SpecInput] | AsyncIterable[SpecInput]
) -> Callable[[Emit, Journal | None], Awaitable[None]]:
    return lambda emit, journal: _CreateRun(ops, emit, journal).run(specs)
