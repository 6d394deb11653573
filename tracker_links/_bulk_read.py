"""The read engine: the links of many issues at once, and of every issue a search finds.

The keys are read lazily and fetched by one worker per slot of the client's concurrency; for
``queue_links`` the search pager runs ahead of the fetches, so they never wait for a page.
The search requests and their paging rules are built in ``_protocol``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Final

import anyio
import attrs
from anyio.abc import ObjectSendStream

from . import _protocol
from ._exceptions import InvalidInputError, TrackerError
from ._models import validate_key
from ._ops import Ops
from ._reports import IssueLinks, LinksReport
from ._streams import Stream, length, reading, stream
from ._transport import Slots

__all__ = ["bulk_get", "get_many", "queue_links", "search_keys"]

# In page mode, once the first page tells how many pages there are, this many are fetched at
# a time.
_PAGES_AHEAD: Final = 4

Emit = Callable[[str], Awaitable[None]]


async def _fetch_each(
    ops: Ops,
    keys: Iterable[str] | AsyncIterable[str],
    emit: Callable[[IssueLinks], Awaitable[None]],
) -> None:
    """GET the links of every key (each once): one worker per slot of the concurrency."""
    seen: set[str] = set()
    exhausted = False
    input_error: Exception | None = None
    get = ops.get

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

    async def worker(items: AsyncIterator[str], read_lock: Slots) -> None:
        while True:
            async with read_lock:
                key = await next_key(items)
            if key is None:
                return
            try:
                links = await get(key)
            except TrackerError as exc:
                await emit(IssueLinks(key, [], exc))
            else:
                await emit(IssueLinks(key, links))

    async with reading(keys) as items, anyio.create_task_group() as tg:
        read_lock = Slots(1)  # one reader at a time: an async source may suspend mid-item
        for _ in range(ops.concurrency):
            tg.start_soon(worker, items, read_lock)
    if input_error is not None:
        raise input_error


def get_many(ops: Ops, keys: Iterable[str] | AsyncIterable[str]) -> Stream[IssueLinks]:
    async def produce(send: ObjectSendStream[IssueLinks]) -> None:
        await _fetch_each(ops, keys, send.send)

    return stream(produce, ops.concurrency)


async def bulk_get(
    ops: Ops,
    keys: Iterable[str] | AsyncIterable[str],
    *,
    on_progress: Callable[[int, int | None, IssueLinks], object] | None = None,
) -> LinksReport:
    report = LinksReport()
    total = length(keys)
    done = 0
    clock = ops.clock
    started = clock()

    async def collect(item: IssueLinks) -> None:
        nonlocal done
        done += 1
        if item.error is not None:
            report.failed[item.key] = item.error
        else:
            report.links[item.key] = item.links
        if on_progress is not None:
            on_progress(done, total, item)

    await _fetch_each(ops, keys, collect)
    report.elapsed = clock() - started
    return report


def _keys_of(
    ops: Ops,
    page: _protocol.SearchPage,
    on_aliases: Callable[[str, tuple[str, ...]], object] | None,
) -> list[str]:
    """The keys of a search answer; the former keys of moved issues go to ``ops.aliases``
    (and to ``on_aliases``)."""
    for key, aliases in page.moved:
        for old in aliases:
            ops.aliases.learn(old, key)
        if on_aliases is not None:
            on_aliases(key, aliases)
    return page.keys


async def search_keys(
    ops: Ops,
    body: dict[str, Any],
    send: Emit,
    on_aliases: Callable[[str, tuple[str, ...]], object] | None = None,
) -> None:
    """Send the key of every issue a search finds: pages below 10,000 issues, scroll above.

    In page mode, once the first page tells how many pages there are, the rest are fetched a
    few at a time (``_PAGES_AHEAD``), so enumerating never leaves the link requests waiting.
    ``on_aliases(key, aliases)`` is told the former keys of each moved issue found.
    """
    search = ops.search
    version = ops.version

    async def send_keys(page: _protocol.SearchPage) -> int:
        keys = _keys_of(ops, page, on_aliases)
        for key in keys:
            await send(key)
        return len(keys)

    first = await search(_protocol.search_page(body, 1, version))
    total, pages = first.total, first.pages
    many = _protocol.SCROLL_ABOVE
    if (total is not None and total > many) or (
        pages is not None and pages * _protocol.PER_PAGE > many
    ):
        await _scroll_keys(ops, body, send, on_aliases)
        return
    got = await send_keys(first)
    if pages is not None:
        window = Slots(_PAGES_AHEAD)
        failed: list[Exception] = []

        async def fetch(page: int) -> None:
            try:
                await send_keys(await search(_protocol.search_page(body, page, version)))
            except Exception as exc:  # raised below as it is, not in an exception group
                failed.append(exc)
                tg.cancel_scope.cancel()
            finally:
                window.release()

        async with anyio.create_task_group() as tg:
            for page in range(2, pages + 1):
                await window.acquire()
                tg.start_soon(fetch, page)
        if failed:
            raise failed[0]
        return
    # No page count: follow the pages one by one while they say there is more.
    page, answer = 1, first
    while got and (answer.has_next or got >= _protocol.PER_PAGE):
        page += 1
        answer = await search(_protocol.search_page(body, page, version))
        got = await send_keys(answer)


async def _scroll_keys(
    ops: Ops,
    body: dict[str, Any],
    send: Emit,
    on_aliases: Callable[[str, tuple[str, ...]], object] | None,
) -> None:
    version = ops.version
    req = _protocol.search_scroll(body, version=version)
    while True:
        answer = await ops.search(req)
        keys = _keys_of(ops, answer, on_aliases)
        for key in keys:
            await send(key)
        if not answer.scroll_id or not keys:
            return
        req = _protocol.search_scroll(body, answer.scroll_id, answer.scroll_token, version)


def queue_links(ops: Ops, body: dict[str, Any]) -> Stream[IssueLinks]:
    async def produce(send: ObjectSendStream[IssueLinks]) -> None:
        # The pager runs ahead of the fetches (up to a few pages of keys), so waiting for the
        # next page of the search never leaves the link requests idle.
        keys_in, keys_out = anyio.create_memory_object_stream[str](3 * _protocol.PER_PAGE)
        failed: list[Exception] = []
        # The former keys of the moved issues found, until their links are sent.
        former: dict[str, tuple[str, ...]] = {}

        async def emit(item: IssueLinks) -> None:
            aliases = former.pop(item.key, None) if former else None
            await send.send(attrs.evolve(item, aliases=aliases) if aliases else item)

        async with anyio.create_task_group() as tg:

            async def pager() -> None:
                async with keys_in:
                    try:
                        await search_keys(ops, body, keys_in.send, former.__setitem__)
                    except Exception as exc:  # the keys listed so far are fetched, then this
                        failed.append(exc)

            tg.start_soon(pager)
            async with keys_out:
                await _fetch_each(ops, keys_out, emit)
        if failed:
            raise failed[0]

    return stream(produce, ops.concurrency)
