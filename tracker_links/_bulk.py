"""The bulk engine: many creates or reads at once, bounded, structured, resumable.

Every task has a parent (an anyio task group); the input is read lazily and at most a small
multiple of the client's concurrency is in flight, so a generator of a million specs runs in
bounded memory. Creates go through :meth:`LinkService._create`, which never duplicates a link.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from typing import IO, TYPE_CHECKING, Any, Final, TypeVar

import anyio
import attrs
from anyio.abc import ObjectSendStream

from . import _protocol
from ._exceptions import AuthError, InvalidInputError, TrackerError
from ._models import Link, LinkSpec, Relationship, validate_key
from ._transport import Slots

if TYPE_CHECKING:
    from ._service import LinkService

__all__ = [
    "BulkReport",
    "IssueLinks",
    "LinksReport",
    "Outcome",
    "OutcomeStatus",
]

logger: Final = logging.getLogger("tracker_links")

SpecInput = LinkSpec | tuple[str, str, Relationship | str]
T = TypeVar("T")

# Page size for _search (the service's documented maximum in page mode is 100) and the point
# past which the service asks clients to scroll instead of paging.
_PER_PAGE: Final = 100
_PER_SCROLL: Final = 1000
_SCROLL_ABOVE: Final = 10_000
_PAGES_AHEAD: Final = 4

Emit = Callable[[T], Awaitable[None]]


class OutcomeStatus(enum.Enum):
    """What happened to one item of a bulk create."""

    CREATED = "created"
    """The link was created by this run."""
    EXISTS = "exists"
    """The link was already there (on the service, in the journal, or earlier in the input)."""
    FAILED = "failed"
    """The item could not be done; ``Outcome.error`` says why."""
    SKIPPED = "skipped"
    """Not attempted: the batch stopped (a 401/403) before reaching it."""


@attrs.frozen
class Outcome:
    """The result for one input item of :meth:`LinkService.bulk_create` / ``create_many``.

    ``spec`` is the :class:`LinkSpec`, or the raw input item when it could not be read as one
    (then ``error`` is an :class:`InvalidInputError`). ``link`` is the created or existing link
    when the service returned it. ``attempts`` counts the POSTs sent for this item (0 when none
    was needed). ``index`` is the item's position in the input (0-based).
    """

    spec: Any
    status: OutcomeStatus
    link: Link | None = None
    error: TrackerError | None = None
    attempts: int = 0
    index: int = 0
    note: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the link is on the service now (``CREATED`` or ``EXISTS``)."""
        return self.status in (OutcomeStatus.CREATED, OutcomeStatus.EXISTS)

    @property
    def reason(self) -> str | None:
        """Why the item failed or was skipped, as one line (``None`` when it is ok)."""
        if self.error is not None:
            return f"{type(self.error).__name__}: {self.error}"
        return self.note if not self.ok else None

    def to_json(self) -> dict[str, Any]:
        """One JSON object: the line a journal or a report file holds for this item."""
        spec = self.spec
        out: dict[str, Any] = {"index": self.index, "status": self.status.value}
        if isinstance(spec, LinkSpec):
            out.update(spec.as_dict())
        else:
            out["input"] = repr(spec)
        if self.link is not None:
            out["link_id"] = self.link.id
        out["attempts"] = self.attempts
        if self.error is not None:
            out["error"] = type(self.error).__name__
            out["status_code"] = self.error.status_code
        reason = self.reason
        if reason is not None:
            out["reason"] = reason
        elif self.note is not None:
            out["note"] = self.note
        return out


@attrs.define
class BulkReport:
    """Every outcome of a bulk create, in input order, with counts and a summary.

    ``created``, ``existing``, ``failed`` and ``skipped`` are the outcomes of each status (lists:
    ``len(report.failed)`` counts them); ``ok`` is True when nothing failed or was skipped;
    ``elapsed`` is the wall time in seconds.
    """

    outcomes: list[Outcome]
    elapsed: float = 0.0

    def _of(self, status: OutcomeStatus) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is status]

    @property
    def created(self) -> list[Outcome]:
        """Outcomes whose link this run created."""
        return self._of(OutcomeStatus.CREATED)

    @property
    def existing(self) -> list[Outcome]:
        """Outcomes whose link was already there."""
        return self._of(OutcomeStatus.EXISTS)

    @property
    def failed(self) -> list[Outcome]:
        """Outcomes that failed, each with its ``error``."""
        return self._of(OutcomeStatus.FAILED)

    @property
    def skipped(self) -> list[Outcome]:
        """Outcomes not attempted because the batch stopped."""
        return self._of(OutcomeStatus.SKIPPED)

    @property
    def ok(self) -> bool:
        """True when every item is ``CREATED`` or ``EXISTS``."""
        return all(o.ok for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        """``{"created": n, "exists": n, "failed": n, "skipped": n}``."""
        counts = dict.fromkeys((s.value for s in OutcomeStatus), 0)
        for o in self.outcomes:
            counts[o.status.value] += 1
        return counts

    def summary(self) -> str:
        """One line, such as ``10000 items in 51.2s (195/s): 9800 created, 150 exists, …``."""
        c = self.counts()
        n = len(self.outcomes)
        rate = f" ({n / self.elapsed:.0f}/s)" if self.elapsed > 0 else ""
        return (
            f"{n} items in {self.elapsed:.1f}s{rate}: {c['created']} created, "
            f"{c['exists']} exists, {c['failed']} failed, {c['skipped']} skipped"
        )

    def write_jsonl(self, path: str | os.PathLike[str]) -> None:
        """Write one JSON object per outcome (see :meth:`Outcome.to_json`) to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            for o in self.outcomes:
                f.write(json.dumps(o.to_json(), ensure_ascii=False) + "\n")


@attrs.frozen
class IssueLinks:
    """The links of one issue; ``error`` is set (and ``links`` empty) when reading failed."""

    key: str
    links: list[Link]
    error: TrackerError | None = None


@attrs.define
class LinksReport:
    """The result of :meth:`LinkService.bulk_get`: links by key, and the keys that failed."""

    links: dict[str, list[Link]] = attrs.field(factory=dict)
    failed: dict[str, TrackerError] = attrs.field(factory=dict)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every key was read."""
        return not self.failed


# --- journal ---------------------------------------------------------------------------------


def digest(spec: LinkSpec) -> bytes:
    """A compact, collision-safe (96-bit) identity of a link, whichever way it is written."""
    return hashlib.blake2b("\x1f".join(spec.canonical).encode(), digest_size=12).digest()


def journal_done(path: str | os.PathLike[str]) -> set[bytes]:
    r"""The digests of the links a journal records as done (created or exists).

    A missing file is an empty journal; a torn last line (a crash mid-write) and the lines of
    failed items are passed over. Other ``OSError``\ s propagate.
    """
    done: set[bytes] = set()
    try:
        f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except FileNotFoundError:
        return done
    with f:
        for line in f:
            try:
                data = json.loads(line)
                if data.get("status") not in ("created", "exists"):
                    continue
                spec = LinkSpec(data["source"], data["target"], data["relationship"])
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            done.add(digest(spec))
    return done


class _Journal:
    """An append-only JSON Lines file of outcomes: what a re-run must not send again."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.done = journal_done(path)
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, outcome: Outcome) -> None:
        # One write per line, flushed: a crash loses at most the line being written.
        self._file.write(json.dumps(outcome.to_json(), ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


# --- the create engine -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _reading(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Iterate sync or async input; an async generator left unfinished is closed on exit."""
    if isinstance(items, AsyncIterable):
        iterator = aiter(items)
        try:
            yield iterator
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()
    else:

        async def from_sync() -> AsyncIterator[T]:
            for item in items:
                yield item

        yield from_sync()


class _CreateRun:
    """One bulk create: reads the input, fans out, and hands each outcome to ``emit``."""

    def __init__(
        self,
        service: LinkService,
        emit: Callable[[Outcome], Awaitable[None]],
        journal: _Journal | None,
    ) -> None:
        self.service = service
        self.emit_outcome = emit
        self.journal = journal
        self.concurrency = service._transport.limiter.total
        # Finished links, as sets of 12-byte digests (~85 bytes each: 200,000 specs cost ~17 MB
        # where a dict of (index, ok) tuples cost 37), and those in flight with their copies.
        self.succeeded: set[bytes] = set()
        self.failed: set[bytes] = set()
        self.waiting: dict[bytes, list[tuple[int, LinkSpec]]] = {}
        self.stopped: AuthError | None = None
        self.index = -1  # of the last input item read
        self.exhausted = False
        self.input_error: Exception | None = None  # the input itself raised this

    async def emit(self, outcome: Outcome) -> None:
        if self.journal is not None:
            self.journal.write(outcome)
        await self.emit_outcome(outcome)

    async def run(self, specs: Iterable[SpecInput] | AsyncIterable[SpecInput]) -> None:
        async with _reading(specs) as items:
            # The first create goes alone: a bad token then costs one 401, not dozens.
            job = await self._next_job(items)
            if job is not None:
                await self._create(*job)
                # Then one worker per slot of the client's concurrency, each reading its next
                # item when it is free (a task per item cost ~10% of the CPU per request).
                reading = Slots(1)  # one reader at a time: an async source may suspend
                async with anyio.create_task_group() as tg:
                    for _ in range(self.concurrency):
                        tg.start_soon(self._worker, items, reading)
        if self.input_error is not None:
            raise self.input_error

    async def _worker(self, items: AsyncIterator[SpecInput], reading: Slots) -> None:
        while True:
            async with reading:
                job = await self._next_job(items)
            if job is None:
                return
            await self._create(*job)

    async def _next_job(
        self, items: AsyncIterator[SpecInput]
    ) -> tuple[bytes, LinkSpec, int] | None:
        """Read input until an item needs a request; settle the others (bad, repeats) on the way.

        Returns the item's digest, spec and index, or None at the end of the input.
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
            try:
                spec = LinkSpec.coerce(item)
            except InvalidInputError as exc:
                await self.emit(Outcome(item, OutcomeStatus.FAILED, error=exc, index=index))
                continue
            except Exception as exc:  # a spec whose fields are not even strings
                err = InvalidInputError(f"cannot read a link spec from {item!r}: {exc}")
                await self.emit(Outcome(item, OutcomeStatus.FAILED, error=err, index=index))
                continue
            if self.stopped is not None:
                await self.emit(self._skipped(spec, index))
                continue
            key = digest(spec)
            if await self._repeat(key, spec, index):
                continue
            self.waiting[key] = []
            return key, spec, index
        return None

    async def _repeat(self, key: bytes, spec: LinkSpec, index: int) -> bool:
        """Handle an input item whose link is done, in flight, or in the journal."""
        if self.journal is not None and key in self.journal.done:
            note = "already done in the journal; not sent"
            await self.emit_outcome(Outcome(spec, OutcomeStatus.EXISTS, index=index, note=note))
            return True
        if key in self.succeeded or key in self.failed:
            await self.emit(self._copy_of(spec, index, None, key in self.succeeded))
            return True
        waiters = self.waiting.get(key)
        if waiters is not None:
            waiters.append((index, spec))
            return True
        return False

    def _copy_of(self, spec: LinkSpec, index: int, first: int | None, ok: bool) -> Outcome:
        item = "an earlier input item" if first is None else f"input item {first}"
        if ok:
            return Outcome(spec, OutcomeStatus.EXISTS, index=index, note=f"same link as {item}")
        err = TrackerError(f"same link as {item}, which failed")
        return Outcome(spec, OutcomeStatus.FAILED, error=err, index=index)

    def _skipped(self, spec: LinkSpec, index: int) -> Outcome:
        note = f"not attempted: the batch stopped after {type(self.stopped).__name__}"
        return Outcome(spec, OutcomeStatus.SKIPPED, index=index, note=note)

    async def _create(self, key: bytes, spec: LinkSpec, index: int) -> None:
        if self.stopped is not None:
            outcome = self._skipped(spec, index)
        else:
            outcome = await self._attempt(spec, index)
        waiters = self.waiting.pop(key, [])
        (self.succeeded if outcome.ok else self.failed).add(key)
        await self.emit(outcome)
        for i, s in waiters:
            if outcome.status is OutcomeStatus.SKIPPED:
                await self.emit(self._skipped(s, i))
            else:
                await self.emit(self._copy_of(s, i, index, outcome.ok))

    async def _attempt(self, spec: LinkSpec, index: int) -> Outcome:
        try:
            link, attempts = await self.service._create(spec, exist_ok=False)
        except AuthError as exc:
            if self.stopped is None:
                self.stopped = exc
                logger.error("bulk create stopped: %s", exc)
            return Outcome(spec, OutcomeStatus.FAILED, error=exc, attempts=1, index=index)
        except TrackerError as exc:
            existing: Link | None = getattr(exc, "link", None)
            if existing is not None:
                return Outcome(spec, OutcomeStatus.EXISTS, link=existing, attempts=1, index=index)
            return Outcome(spec, OutcomeStatus.FAILED, error=exc, attempts=1, index=index)
        status = OutcomeStatus.CREATED
        return Outcome(spec, status, link=link, attempts=attempts, index=index)


def _length(items: object) -> int | None:
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None


async def bulk_create(
    service: LinkService,
    specs: Iterable[SpecInput] | AsyncIterable[SpecInput],
    *,
    on_progress: Callable[[int, int | None, Outcome], object] | None = None,
    journal: str | os.PathLike[str] | None = None,
) -> BulkReport:
    total = _length(specs)
    outcomes: list[Outcome] = []
    started = time.perf_counter()

    async def collect(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_progress is not None:
            on_progress(len(outcomes), total, outcome)

    jr = _Journal(journal) if journal is not None else None
    try:
        await _CreateRun(service, collect, jr).run(specs)
    finally:
        if jr is not None:
            jr.close()
    outcomes.sort(key=lambda o: o.index)
    return BulkReport(outcomes, elapsed=time.perf_counter() - started)


async def _stream(
    produce: Callable[[ObjectSendStream[T]], Awaitable[None]], buffer: int
) -> AsyncIterator[T]:
    """Run ``produce`` in a task group and yield what it sends, as it sends it.

    Leaving early is clean when the iterator is closed where it was used (wrap it in
    ``contextlib.aclosing`` before ``break``), as with any async generator holding a task group.
    """
    send, receive = anyio.create_memory_object_stream[T](buffer)
    failed: list[Exception] = []
    async with anyio.create_task_group() as tg:

        async def producer() -> None:
            async with send:
                try:
                    await produce(send)
                except Exception as exc:  # raised below as it is, not in an exception group
                    failed.append(exc)

        tg.start_soon(producer)
        async with receive:
            async for item in receive:
                try:
                    yield item
                except GeneratorExit:
                    # Closed early (``aclosing`` + ``break``): stop the work, end cleanly.
                    tg.cancel_scope.cancel()
                    return
    if failed:
        raise failed[0]


def create_many(
    service: LinkService,
    specs: Iterable[SpecInput] | AsyncIterable[SpecInput],
    *,
    journal: str | os.PathLike[str] | None = None,
) -> AsyncIterator[Outcome]:
    concurrency = service._transport.limiter.total

    async def produce(send: ObjectSendStream[Outcome]) -> None:
        jr = _Journal(journal) if journal is not None else None
        try:
            await _CreateRun(service, send.send, jr).run(specs)
        finally:
            if jr is not None:
                jr.close()

    return _stream(produce, concurrency)


# --- the read engine -------------------------------------------------------------------------


async def _fetch_each(
    service: LinkService,
    keys: Iterable[str] | AsyncIterable[str],
    emit: Callable[[IssueLinks], Awaitable[None]],
) -> None:
    """GET the links of every key (each once): one worker per slot of the concurrency."""
    seen: set[str] = set()
    exhausted = False
    input_error: Exception | None = None

    async def next_key(items: AsyncIterator[str]) -> str | None:
        nonlocal exhausted, input_error
        while not exhausted:
            try:
                key = await items.__anext__()
            except StopAsyncIteration:
                exhausted = True
                break
            except Exception as exc:  # the input failed: finish what is in flight, then raise
                exhausted = True
                input_error = exc
                break
            if key in seen:
                continue
            seen.add(key)
            try:
                validate_key(key)
            except InvalidInputError as exc:
                await emit(IssueLinks(key, [], exc))
                continue
            return key
        return None

    async def worker(items: AsyncIterator[str], reading: Slots) -> None:
        while True:
            async with reading:
                key = await next_key(items)
            if key is None:
                return
            try:
                links = await service.get(key)
            except TrackerError as exc:
                await emit(IssueLinks(key, [], exc))
            else:
                await emit(IssueLinks(key, links))

    async with _reading(keys) as items, anyio.create_task_group() as tg:
        reading = Slots(1)  # one reader at a time: an async source may suspend mid-item
        for _ in range(service._transport.limiter.total):
            tg.start_soon(worker, items, reading)
    if input_error is not None:
        raise input_error


def get_many(
    service: LinkService, keys: Iterable[str] | AsyncIterable[str]
) -> AsyncIterator[IssueLinks]:
    concurrency = service._transport.limiter.total

    async def produce(send: ObjectSendStream[IssueLinks]) -> None:
        await _fetch_each(service, keys, send.send)

    return _stream(produce, concurrency)


async def bulk_get(
    service: LinkService,
    keys: Iterable[str] | AsyncIterable[str],
    *,
    on_progress: Callable[[int, int | None, IssueLinks], object] | None = None,
) -> LinksReport:
    report = LinksReport()
    total = _length(keys)
    done = 0
    started = time.perf_counter()

    async def collect(item: IssueLinks) -> None:
        nonlocal done
        done += 1
        if item.error is not None:
            report.failed[item.key] = item.error
        else:
            report.links[item.key] = item.links
        if on_progress is not None:
            on_progress(done, total, item)

    await _fetch_each(service, keys, collect)
    report.elapsed = time.perf_counter() - started
    return report


_QUEUE_RE: Final = re.compile(r"[A-Z][A-Z0-9_]*")


def search_body(
    queue: str | None = None,
    *,
    query: str | None = None,
    filter: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``_search`` body for exactly one of a queue key, a query, or a filter; validated."""
    given = [name for name, v in (("queue", queue), ("query", query), ("filter", filter)) if v]
    if len(given) != 1:
        raise InvalidInputError(
            "give exactly one of queue, query= or filter= to enumerate issues; got "
            + (", ".join(given) or "none")
        )
    if queue is not None:
        if not isinstance(queue, str) or not _QUEUE_RE.fullmatch(queue):
            raise InvalidInputError(f"invalid queue {queue!r}; expected a queue key like 'PROJ'")
        return {"filter": {"queue": queue}}
    if query is not None:
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a string, got {query!r}")
        return {"query": query}
    if not isinstance(filter, Mapping):
        raise InvalidInputError(f"filter must be a mapping, got {filter!r}")
    return {"filter": dict(filter)}


async def search_keys(service: LinkService, body: dict[str, Any], send: Emit[str]) -> None:
    """Send the key of every issue a search finds: pages below 10,000 issues, scroll above.

    In page mode, once the first page tells how many pages there are, the rest are fetched a
    few at a time (``_PAGES_AHEAD``), so enumerating never leaves the link requests waiting.
    """
    transport = service._transport

    def page_request(page: int) -> _protocol.Request:
        params: dict[str, str | int] = {"perPage": _PER_PAGE, "page": page, "fields": "key"}
        return _protocol.search_issues(body, params)

    async def send_keys(content: bytes) -> int:
        issues = _protocol.decode_json(content)
        for issue in issues:
            await send(str(issue["key"]))
        return len(issues)

    resp = await transport.send(page_request(1))
    total = _int_header(resp.headers.get("x-total-count"))
    if total is not None and total > _SCROLL_ABOVE:
        async for key in _scroll_keys(service, body):
            await send(key)
        return
    pages = _int_header(resp.headers.get("x-total-pages"))
    got = await send_keys(resp.content)
    if pages is not None:
        window = Slots(_PAGES_AHEAD)

        async def fetch(page: int) -> None:
            try:
                await send_keys((await transport.send(page_request(page))).content)
            finally:
                window.release()

        async with anyio.create_task_group() as tg:
            for page in range(2, pages + 1):
                await window.acquire()
                tg.start_soon(fetch, page)
        return
    # No page count: follow the pages one by one while they say there is more.
    page = 1
    while got and (
        "next" in _protocol.parse_link_header(resp.headers.get("link")) or got >= _PER_PAGE
    ):
        page += 1
        resp = await transport.send(page_request(page))
        got = await send_keys(resp.content)


async def _scroll_keys(service: LinkService, body: dict[str, Any]) -> AsyncIterator[str]:
    transport = service._transport
    params: dict[str, str | int] = {
        "scrollType": "unsorted",
        "perScroll": _PER_SCROLL,
        "scrollTTLMillis": 60_000,
        "fields": "key",
    }
    while True:
        resp = await transport.send(_protocol.search_issues(body, params))
        issues = _protocol.decode_json(resp.content)
        for issue in issues:
            yield str(issue["key"])
        scroll_id = resp.headers.get("x-scroll-id")
        token = resp.headers.get("x-scroll-token")
        if not scroll_id or not issues:
            return
        params = {"scrollId": scroll_id, "scrollTTLMillis": 60_000, "fields": "key"}
        if token:
            params["scrollToken"] = token


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def queue_links(service: LinkService, body: dict[str, Any]) -> AsyncIterator[IssueLinks]:
    concurrency = service._transport.limiter.total

    async def produce(send: ObjectSendStream[IssueLinks]) -> None:
        # The pager runs ahead of the fetches (up to a few pages of keys), so waiting for the
        # next page of the search never leaves the link requests idle.
        keys_in, keys_out = anyio.create_memory_object_stream[str](3 * _PER_PAGE)
        failed: list[Exception] = []
        async with anyio.create_task_group() as tg:

            async def pager() -> None:
                async with keys_in:
                    try:
                        await search_keys(service, body, keys_in.send)
                    except Exception as exc:  # the keys listed so far are fetched, then this
                        failed.append(exc)

            tg.start_soon(pager)
            async with keys_out:
                await _fetch_each(service, keys_out, send.send)
        if failed:
            raise failed[0]

    return _stream(produce, concurrency)
