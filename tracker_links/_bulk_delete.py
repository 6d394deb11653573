"""The delete engine: many links removed at once, by what they join or by id; resumable.

Each item names one link: by its triple (a :class:`LinkSpec`, a ``(source, target,
relationship)`` tuple or a mapping, as for ``bulk_create``), or by id (:class:`LinkToDelete`
with ``link_id``: the link listed on ``spec.source`` under that id, deleted only while it still
joins ``spec.source`` and ``spec.target`` with ``spec.relationship``). Either costs a ``GET`` of
the source's links, shared by the items of one issue that come close together in the input
(:class:`Listings`), and one safe ``DELETE`` (:attr:`Ops.delete`) per link found. Nothing but
the links asked for is ever deleted.

Both engines are runs of :class:`_bulk_engine.BulkRun`: the input is read lazily by one worker
per slot of the client's concurrency, the first item goes alone (a bad token costs one
request), bad items fail before any request, repeats (the same link in either spelling) share
the first one's outcome, and a journal makes a re-run send nothing for what is done. An item
whose listing another worker is reading is set aside (a bounded number of them) and the worker
reads on; once the listing is read, the items set aside for it come before new input. So no
worker waits for another's ``GET`` while it could send, and no request waits for a slot a
worker holds idle (a worker per slot: the slot passes from one request to the next without a
hand-over through the event loop, which cost ~25% of the time per request with two workers
a slot).
"""

from __future__ import annotations

import collections
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

import attrs

from ._bulk_engine import BulkRun, Emit, line_of, report, streamed
from ._delete_journal import DeleteJournal, identity
from ._exceptions import InvalidInputError, TrackerError
from ._listings import Listing, Listings
from ._models import Link, LinkSpec, Relationship, validate_key, validate_link_id
from ._ops import Ops
from ._reports import BulkReport, Outcome, OutcomeStatus
from ._streams import Stream, length
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

# Listings kept for the items of one issue that come close together (per slot of concurrency).
_LISTINGS_PER_SLOT: Final = 4
_MIN_LISTINGS: Final = 256
# Items set aside while their listing is read (per slot of concurrency); past that, a worker
# waits for the listing.
_PARKED_PER_SLOT: Final = 32


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


class _DeleteRun(BulkRun[DeleteInput, _Job]):
    """One bulk delete: reads the input, fans out, and hands each outcome to ``emit``."""

    what = "delete"
    found_status = OutcomeStatus.ABSENT

    def __init__(self, ops: Ops, emit: Emit, journal: DeleteJournal | None) -> None:
        super().__init__(ops, emit, ops.concurrency)
        self.delete_one = ops.delete
        self.journal = journal
        size = max(_MIN_LISTINGS, _LISTINGS_PER_SLOT * ops.concurrency)
        self.listings = Listings(ops.get, size, self._listed)
        # Jobs set aside until the listing they need is read, by listing; then ready ones.
        self.parked: dict[Listing, list[_Job]] = {}
        self.n_parked = 0
        self.park_limit = _PARKED_PER_SLOT * ops.concurrency
        self.ready: collections.deque[tuple[_Job, Listing]] = collections.deque()
        # The items in flight, with the repeats waiting for them.
        self.waiting: dict[bytes, list[tuple[int, LinkToDelete, int | None]]] = {}
        self.judge = ops.judge

    def _listed(self, listing: Listing) -> None:
        """A listing was read: the jobs set aside for it are ready."""
        jobs = self.parked.pop(listing, None)
        if jobs:
            self.n_parked -= len(jobs)
            self.ready.extend((job, listing) for job in jobs)

    async def _worker(self, source: AsyncIterator[DeleteInput], read_lock: Slots) -> None:
        ready = self.ready
        while True:
            if ready:
                first, listing = ready.popleft()
                await self._settle(first, listing)
                continue
            async with read_lock:
                job = await self._next_job(source)
            if job is None:  # the input is read
                if ready:
                    continue
                if not self.parked:
                    return
                # Wait for a listing another worker reads, then help with its items.
                await next(iter(self.parked)).ready.wait()
                continue
            if self.n_parked < self.park_limit:
                reading = self.listings.reading(job[1].spec.source)
                if reading is not None:
                    self.parked.setdefault(reading, []).append(job)
                    self.n_parked += 1
                    continue
            await self._settle(job)

    async def emit(self, outcome: Outcome, by_id: str | None = None) -> None:
        if self.journal is not None:
            self.journal.write(outcome, by_id)
        await self.emit_outcome(outcome)

    def _read(self, item: object) -> LinkToDelete | BadItem:
        if type(item) is LinkSpec:
            return LinkToDelete(item)
        if isinstance(item, (LinkToDelete, BadItem)):
            return item
        line = line_of(item) if isinstance(item, Mapping) else None
        try:
            return LinkToDelete(LinkSpec.coerce(item), line=line)  # type: ignore[arg-type]
        except InvalidInputError as exc:
            return BadItem(item, exc.message, line)
        except Exception as exc:  # a spec whose fields are not even strings
            return BadItem(item, f"cannot read a link spec from {item!r}: {exc}", line)

    async def _take(self, item: object, index: int) -> _Job | None:
        """The job for one input item; bad items, repeats and what is done are settled here."""
        read = self._read(item)
        if isinstance(read, BadItem):
            error = InvalidInputError(read.reason)
            await self.emit(
                Outcome(read.raw, OutcomeStatus.FAILED, error=error, index=index, line=read.line)
            )
            return None
        line = read.line
        spec = read.spec
        if self.stopped is not None:
            await self.emit(self._skipped(spec, index, line), read.link_id)
            return None
        key = identity(spec, read.link_id)
        # A link done, in flight, or in the journal is not deleted again.
        if self.journal is not None and key in self.journal.done:
            note = "already done in the journal; not sent"
            await self.emit_outcome(
                Outcome(spec, OutcomeStatus.ABSENT, index=index, note=note, line=line)
            )
            return None
        first = self.finished.get(key)
        if first is not None:
            await self.emit(self._copy_of(spec, index, line, first), read.link_id)
            return None
        waiters = self.waiting.get(key)
        if waiters is not None:
            waiters.append((index, read, line))
            return None
        self.waiting[key] = []
        return key, read, index, line

    async def _settle(self, job: _Job, listing: Listing | None = None) -> None:
        key, item, index, line = job
        if self.stopped is not None:
            outcome = self._skipped(item.spec, index, line)
        else:
            outcome = await self._attempt(item, index, line, listing)
        waiters = self.waiting.pop(key, [])
        self.finished[key] = first = index if outcome.ok else ~index
        await self.emit(outcome, item.link_id)
        for i, other, ln in waiters:
            if outcome.status is OutcomeStatus.SKIPPED:
                await self.emit(self._skipped(other.spec, i, ln), other.link_id)
            else:
                await self.emit(self._copy_of(other.spec, i, ln, first), other.link_id)

    async def _attempt(
        self, item: LinkToDelete, index: int, line: int | None, read: Listing | None
    ) -> Outcome:
        """Delete what ``item`` names; ``read`` is its listing when it was set aside for it."""
        spec = item.spec
        attempts = 0
        deleted: list[Link] = []
        try:
            listing = read.result() if read is not None else await self.listings.of(spec.source)
            found, why = await self._found(item, listing)
            if not found:
                self._observe(None)
                return Outcome(spec, OutcomeStatus.ABSENT, index=index, line=line, note=why)
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


def _relation(link: Link) -> str:
    rel = link.relationship
    return rel.value if rel is not None else f"a link of type {link.type.id!r} to"


async def bulk_delete(
    ops: Ops,
    items: Iterable[DeleteInput] | AsyncIterable[DeleteInput],
    *,
    on_progress: Callable[[int, int | None, Outcome], object] | None = None,
    journal: str | os.PathLike[str] | None = None,
    total: int | None = None,
) -> BulkReport:
    total = length(items) if total is None else total
    return await report(ops, _starter(ops, items), DeleteJournal, journal, total, on_progress)


def delete_many(
    ops: Ops,
    items: Iterable[DeleteInput] | AsyncIterable[DeleteInput],
    *,
    journal: str | os.PathLike[str] | None = None,
) -> Stream[Outcome]:
    return streamed(ops, _starter(ops, items), DeleteJournal, journal)


def _starter(
    ops: Ops, items: Iterable[DeleteInput] | AsyncIterable[DeleteInput]
) -> Callable[[Emit, DeleteJournal | None], Awaitable[None]]:
    return lambda emit, journal: _DeleteRun(ops, emit, journal).run(items)
