"""The delete engine: many links removed at once, by what they join or by id; resumable.

Each item names one link: by its triple (a :class:`LinkSpec`, a ``(source, target,
relationship)`` tuple or a mapping, as for ``bulk_create``), or by id (:class:`LinkToDelete`
with ``link_id``: the link listed on ``spec.source`` under that id, deleted only while it still
joins ``spec.source`` and ``spec.target`` with ``spec.relationship``). Either costs a ``GET`` of
the source's links, shared by the items of one issue that come close together in the input
(:class:`Listings`), and one safe ``DELETE`` (:attr:`Ops.delete`) per link found. Nothing but
the links asked for is ever deleted.

The shape is that of ``_bulk_create``: the input is read lazily by one worker per slot of the
client's concurrency, the first item goes alone (a bad token costs one request), bad items
fail before any request, repeats (the same link in either spelling) share the first one's
outcome, and a journal makes a re-run send nothing for what is done.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

import anyio
import attrs
from anyio.abc import ObjectSendStream

from ._bulk_create import FORBIDDEN_LIMIT, UNREACHED_LIMIT
from ._delete_journal import DeleteJournal, identity
from ._exceptions import AuthError, InvalidInputError, TrackerError, TransportError
from ._listings import Listing, Listings
from ._models import Link, LinkSpec, Relationship, validate_key, validate_link_id
from ._ops import Ops
from ._reports import BulkReport, Outcome, OutcomeStatus
from ._streams import Stream, length, reading, stream
from ._transport import Slots

__all__ = [
    "BadItem",
    "DeleteInput",
    "LinkToDelete",
    "between",
    "bulk_delete",
    "check_remove",
    "delete_many",
]

logger: Final = logging.getLogger("tracker_links")

# Listings kept for the items of one issue that come close together (per slot of concurrency).
_LISTINGS_PER_SLOT: Final = 4
_MIN_LISTINGS: Final = 256


def _link_id(value: int | str | None) -> str | None:
    return None if value is None else validate_link_id(value)


@attrs.frozen
class LinkToDelete:
    """One link to delete: by id when ``link_id`` is given, else by its triple ``spec``.

    By id, ``link_id`` is the link's id as listed on ``spec.source``; it is deleted only if
    that listing still shows it joining ``spec.source`` to ``spec.target`` as
    ``spec.relationship`` (else the outcome is ``ABSENT``, saying why). With ``since`` (Unix
    time), the link found by triple is deleted only if :attr:`Ops.judge` says an attempt
    begun then made it (a create whose outcome a journal never recorded). ``line`` is copied
    to :attr:`Outcome.line`. What ``undo`` and a sync plan's deletes feed the engine.
    """

    spec: LinkSpec
    link_id: str | None = attrs.field(default=None, converter=_link_id)
    line: int | None = None
    since: float | None = None


@attrs.frozen
class BadItem:
    """An input item that is known bad before any request: it fails with ``reason``."""

    raw: object
    reason: str
    line: int | None = None


DeleteInput = (
    LinkSpec | LinkToDelete | BadItem | tuple[str, str, Relationship | str] | Mapping[str, Any]
)


def check_remove(
    issue: object, target: object, relationship: Relationship | str | None
) -> Relationship | None:
    """Validate the arguments of ``remove``; return the relationship (``None``: any)."""
    validate_key(issue, "issue key")
    validate_key(target, "target issue key")
    if issue == target:
        raise InvalidInputError(f"a link needs two different issues; got {issue!r} twice")
    return None if relationship is None else Relationship.parse(relationship)


def between(links: Iterable[Link], target: str, relationship: Relationship | None) -> list[Link]:
    """The links of a listing that point to ``target`` (as ``relationship``, when given)."""
    return [
        link
        for link in links
        if link.points_to(target) and (relationship is None or link.relationship is relationship)
    ]


# One item that needs requests: its identity, what to delete, index and line.
_Job = tuple[bytes, LinkToDelete, int, int | None]


class _DeleteRun:
    """One bulk delete: reads the input, fans out, and hands each outcome to ``emit``."""

    def __init__(
        self,
        ops: Ops,
        emit: Callable[[Outcome], Awaitable[None]],
        journal: DeleteJournal | None,
    ) -> None:
        self.delete_one = ops.delete
        self.emit_outcome = emit
        self.journal = journal
        self.concurrency = ops.concurrency
        self.listings = Listings(ops.get, max(_MIN_LISTINGS, _LISTINGS_PER_SLOT * ops.concurrency))
        # Finished items: identity -> index of the item that was sent (``~index`` if it
        # failed); those in flight, with the repeats waiting for them.
        self.finished: dict[bytes, int] = {}
        self.waiting: dict[bytes, list[tuple[int, LinkToDelete, int | None]]] = {}
        self.judge = ops.judge
        self.stopped: TrackerError | None = None
        self.why_stopped = ""
        # As in the create engine: a 401 stops the batch, and so do first items that were all
        # unreachable, or all refused with 403 (a wrong organization).
        self.unreached_limit = min(UNREACHED_LIMIT, self.concurrency)
        self.unreached = 0
        self.forbidden = 0
        self.reached = False
        self.allowed = False
        self.index = -1
        self.exhausted = False
        self.input_error: Exception | None = None

    async def emit(self, outcome: Outcome, by_id: str | None = None) -> None:
        if self.journal is not None:
            self.journal.write(outcome, by_id)
        await self.emit_outcome(outcome)

    async def run(self, items: Iterable[DeleteInput] | AsyncIterable[DeleteInput]) -> None:
        async with reading(items) as source:
            job = await self._next_job(source)
            if job is not None:
                await self._delete(job)  # alone: a bad token costs one request
                read_lock = Slots(1)
                async with anyio.create_task_group() as tg:
                    for _ in range(self.concurrency):
                        tg.start_soon(self._worker, source, read_lock)
        if self.input_error is not None:
            raise self.input_error

    async def _worker(self, source: AsyncIterator[DeleteInput], read_lock: Slots) -> None:
        while True:
            async with read_lock:
                job = await self._next_job(source)
            if job is None:
                return
            await self._delete(job)

    def _read(self, item: object) -> LinkToDelete | BadItem:
        if type(item) is LinkSpec:
            return LinkToDelete(item)
        if isinstance(item, (LinkToDelete, BadItem)):
            return item
        line = _line_of(item) if isinstance(item, Mapping) else None
        try:
            return LinkToDelete(LinkSpec.coerce(item), line=line)  # type: ignore[arg-type]
        except InvalidInputError as exc:
            return BadItem(item, exc.message, line)
        except Exception as exc:  # a spec whose fields are not even strings
            return BadItem(item, f"cannot read a link spec from {item!r}: {exc}", line)

    async def _next_job(self, source: AsyncIterator[DeleteInput]) -> _Job | None:
        """Read input until an item needs a request; settle the others (bad, repeats, done)."""
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
            index = self.index
            read = self._read(item)
            if isinstance(read, BadItem):
                error = InvalidInputError(read.reason)
                await self.emit(
                    Outcome(
                        read.raw, OutcomeStatus.FAILED, error=error, index=index, line=read.line
                    )
                )
                continue
            line = read.line
            if self.stopped is not None:
                await self.emit(self._skipped(read, index, line), read.link_id)
                continue
            key = identity(read.spec, read.link_id)
            if await self._repeat(key, read, index, line):
                continue
            self.waiting[key] = []
            return key, read, index, line
        return None

    async def _repeat(self, key: bytes, item: LinkToDelete, index: int, line: int | None) -> bool:
        """Handle an item whose link is done, in flight, or in the journal."""
        spec = item.spec
        if self.journal is not None and key in self.journal.done:
            note = "already done in the journal; not sent"
            await self.emit_outcome(
                Outcome(spec, OutcomeStatus.ABSENT, index=index, note=note, line=line)
            )
            return True
        first = self.finished.get(key)
        if first is not None:
            await self.emit(self._copy_of(spec, index, line, first), item.link_id)
            return True
        waiters = self.waiting.get(key)
        if waiters is not None:
            waiters.append((index, item, line))
            return True
        return False

    def _copy_of(self, spec: LinkSpec, index: int, line: int | None, first: int) -> Outcome:
        if first >= 0:
            note = f"same link as input item {first}"
            return Outcome(
                spec, OutcomeStatus.ABSENT, index=index, note=note, repeat_of=first, line=line
            )
        err = TrackerError(f"same link as input item {~first}, which failed")
        return Outcome(
            spec, OutcomeStatus.FAILED, error=err, index=index, repeat_of=~first, line=line
        )

    def _skipped(self, item: LinkToDelete, index: int, line: int | None) -> Outcome:
        note = f"not attempted: the batch stopped after {type(self.stopped).__name__}"
        if self.why_stopped:
            note += f" ({self.why_stopped})"
        return Outcome(item.spec, OutcomeStatus.SKIPPED, index=index, note=note, line=line)

    async def _delete(self, job: _Job) -> None:
        key, item, index, line = job
        if self.stopped is not None:
            outcome = self._skipped(item, index, line)
        else:
            outcome = await self._attempt(item, index, line)
        waiters = self.waiting.pop(key, [])
        self.finished[key] = index if outcome.ok else ~index
        await self.emit(outcome, item.link_id)
        for i, other, ln in waiters:
            if outcome.status is OutcomeStatus.SKIPPED:
                await self.emit(self._skipped(other, i, ln), other.link_id)
            else:
                await self.emit(
                    self._copy_of(other.spec, i, ln, index if outcome.ok else ~index),
                    other.link_id,
                )

    async def _attempt(self, item: LinkToDelete, index: int, line: int | None) -> Outcome:
        spec = item.spec
        attempts = 0
        deleted: list[Link] = []
        try:
            listing = await self.listings.of(spec.source)
            attempts = 1
            found, why = await self._found(item, listing)
            if not found:
                self._observe(None)
                return Outcome(
                    spec, OutcomeStatus.ABSENT, attempts=1, index=index, line=line, note=why
                )
            for link in found:
                done, sent = await self.delete_one(spec.source, link.id)
                attempts += sent
                listing.by_id.pop(str(link.id), None)
                if done:
                    deleted.append(link)
        except TrackerError as exc:
            self._observe(exc)
            note = f"{len(deleted)} of its links deleted before the error" if deleted else None
            return Outcome(
                spec,
                OutcomeStatus.FAILED,
                error=exc,
                attempts=attempts,
                index=index,
                line=line,
                note=note,
            )
        self._observe(None)
        if not deleted:
            why = "deleted by someone else meanwhile (404)"
            return Outcome(
                spec, OutcomeStatus.ABSENT, attempts=attempts, index=index, line=line, note=why
            )
        note = f"{len(deleted)} links deleted (duplicates)" if len(deleted) > 1 else None
        return Outcome(
            spec,
            OutcomeStatus.DELETED,
            link=deleted[0],
            attempts=attempts,
            index=index,
            line=line,
            note=note,
        )

    async def _found(self, item: LinkToDelete, listing: Listing) -> tuple[list[Link], str]:
        """The links of ``listing`` to delete for ``item``, or why there are none."""
        spec = item.spec
        if item.link_id is not None:
            link = listing.by_id.get(item.link_id)
            if link is None:
                return [], f"link {item.link_id} is no longer on {spec.source}"
            if not spec.matches(link):
                return [], (
                    f"link {item.link_id} of {spec.source} is now "
                    f"{_relation(link)} {link.target.key or link.target.id}, not "
                    f"{spec.relationship.value} {spec.target}: not deleted"
                )
            return [link], ""
        found = listing.matches(spec)
        if not found:
            return [], "no such link on the service"
        if item.since is None:
            return found, ""
        made = []
        for link in found:
            by_us, how = await self.judge(link, item.since)
            if by_us:
                made.append(link)
        if not made:
            return [], f"there before the interrupted create ({how}): not deleted"
        return made, ""

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
        logger.error("bulk delete stopped: %s%s", exc, f" ({why})" if why else "")


def _relation(link: Link) -> str:
    rel = link.relationship
    return rel.value if rel is not None else f"a link of type {link.type.id!r} to"


def _line_of(item: Mapping[str, object]) -> int | None:
    line = item.get("line")
    return line if isinstance(line, int) and not isinstance(line, bool) else None


async def bulk_delete(
    ops: Ops,
    items: Iterable[DeleteInput] | AsyncIterable[DeleteInput],
    *,
    on_progress: Callable[[int, int | None, Outcome], object] | None = None,
    journal: str | os.PathLike[str] | None = None,
    total: int | None = None,
) -> BulkReport:
    total = length(items) if total is None else total
    outcomes: list[Outcome] = []
    clock = ops.clock
    started = clock()

    async def collect(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_progress is not None:
            on_progress(len(outcomes), total, outcome)

    jr = DeleteJournal(journal) if journal is not None else None
    try:
        await _DeleteRun(ops, collect, jr).run(items)
    finally:
        if jr is not None:
            jr.close()
    outcomes.sort(key=lambda o: o.index)
    return BulkReport(outcomes, elapsed=clock() - started)


def delete_many(
    ops: Ops,
    items: Iterable[DeleteInput] | AsyncIterable[DeleteInput],
    *,
    journal: str | os.PathLike[str] | None = None,
) -> Stream[Outcome]:
    async def produce(send: ObjectSendStream[Outcome]) -> None:
        jr = DeleteJournal(journal) if journal is not None else None
        try:
            await _DeleteRun(ops, send.send, jr).run(items)
        finally:
            if jr is not None:
                jr.close()

    return stream(produce, ops.concurrency)
