"""LinkService: one method per links endpoint, plus the safe (never duplicating) create."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio

from . import _bulk_create, _bulk_read, _protocol
from ._bulk_create import SpecInput
from ._converter import structure_link, structure_link_types, structure_links
from ._exceptions import ConflictError, NotFoundError, TrackerError
from ._models import Link, LinkSpec, LinkType, Relationship
from ._ops import Created, Ops, Unresolved
from ._reports import BulkReport, IssueLinks, LinksReport, Outcome
from ._streams import Stream
from ._transport import Response, Transport, UncertainError, final_error

if TYPE_CHECKING:
    from ._plan import Plan

__all__ = ["LinkService"]

T = TypeVar("T")

logger: Final = logging.getLogger("tracker_links")

# How far the service's clock may run behind ours: a link whose createdAt is earlier than the
# first attempt by more than this was there before it.
_CLOCK_SKEW: Final = 2.0

# After the service refused a create as a duplicate, the link may not be listed yet (its
# search index lags a second or two): read again after these pauses before giving up.
_CONFIRM_DELAYS: Final = (0.25, 0.5, 1.0, 2.0, 4.0)


class LinkService:
    """The links API of one :class:`TrackerClient`: ``client.links``.

    Every method validates its arguments before sending anything, and shares the client's
    concurrency cap, rate limit and 429 cool-down with every other call on the client.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._wall: Callable[[], float] = time.time  # Unix time, to compare with createdAt
        self._myself: frozenset[str] | None = None
        self._myself_lock = anyio.Lock()
        # What the bulk engines may call: these few methods, not the service's insides.
        self._ops = Ops(
            create=self._create,
            get=self.get,
            judge=self._judge,
            search=self._search,
            concurrency=transport.limiter.total,
            clock=transport.clock,
        )

    # --- single calls ------------------------------------------------------------------------

    async def get(self, issue: str) -> list[Link]:
        """All links of ``issue`` (a key like ``"PROJ-1"`` or a 24-hex id).

        >>> links = await client.links.get("PROJ-1")          # doctest: +SKIP
        >>> [(l.relationship, l.target.key) for l in links]    # doctest: +SKIP
        [(<Relationship.DEPENDS_ON: 'depends on'>, 'PROJ-7')]
        """
        req = _protocol.get_links(issue)
        resp = await self._transport.send(req)
        return self._decode(req, resp, structure_links, "links")

    async def create(
        self,
        issue: str,
        target: str,
        relationship: Relationship | str,
        *,
        exist_ok: bool = False,
    ) -> Link:
        """Link ``issue`` to ``target``: ``issue`` *relationship* ``target``; return the link.

        Never creates a duplicate: when the fate of an attempt is unknown (5xx, timeout,
        dropped connection) it reads the issue's links and re-sends only if the link is absent.
        If the link already exists, raises :class:`ConflictError` with ``.link`` set to it, or
        returns it when ``exist_ok=True``.

        >>> await client.links.create("PROJ-12", "PROJ-7", "depends on")   # doctest: +SKIP
        """
        spec = LinkSpec(issue, target, relationship)
        try:
            done = await self._create(spec)
        except Unresolved as exc:
            raise exc.cause from None
        if not done.made and not exist_ok:
            raise ConflictError(
                f"the link already exists: {issue} {spec.relationship.value} {target}",
                link=done.link,
                status_code=done.refusal.status_code if done.refusal else None,
                messages=done.refusal.messages if done.refusal else (),
                method="POST",
                url=self._transport.base_url + _protocol.create_request(spec).path,
            )
        return done.link

    async def _create(self, spec: LinkSpec) -> Created:
        """The safe create: what it did, with the POSTs sent (for bulk reports).

        A duplicate refused by the service, or a link found after an unknown outcome that
        :meth:`_judge` says predates the attempt, is returned with ``made=False``. Raises
        :class:`Unresolved` when the fate stays unknown (the read-back itself failed).
        """
        issue, target = spec.source, spec.target
        req = _protocol.create_request(spec)
        transport = self._transport
        uncertain = False
        attempts = 0
        retry = transport.retry
        started = transport.clock()
        since = self._wall()
        while True:
            attempts += 1
            try:
                resp = await transport.send(req, retry_uncertain=False)
            except UncertainError as exc:
                # The POST may have been applied: look before sending it again.
                uncertain = True
                delay = retry.next_delay(
                    attempts, transport.clock() - started, None, transport.rand
                )
                if delay is not None:
                    logger.warning(
                        "create %s %s %s: outcome unknown (%s); checking before a retry",
                        issue,
                        spec.relationship.value,
                        target,
                        exc.cause,
                    )
                    await transport.sleep(delay)
                try:
                    existing = await self._find(spec)
                except TrackerError as find_error:
                    raise Unresolved(exc.cause if delay is None else find_error, attempts) from None
                if existing is not None:
                    made, how = await self._judge(existing, since)
                    return Created(existing, attempts, made, how)
                if delay is None:
                    raise exc.cause from None
                continue
            except ConflictError as exc:
                existing = await self._confirm(spec)
                if existing is None:
                    raise
                if uncertain:  # an earlier attempt of ours may be the one that landed
                    made, how = await self._judge(existing, since)
                    return Created(existing, attempts, made, how)
                return Created(existing, attempts, False, None, exc)
            return Created(self._decode(req, resp, structure_link, "link"), attempts)

    async def _judge(self, link: Link, since: float) -> tuple[bool, str]:
        """Whether ``link``, found after an attempt begun at Unix time ``since`` whose answer was
        lost, was made by that attempt; and what the decision rests on.

        It was not when its ``createdAt`` predates the attempt (allowing ``_CLOCK_SKEW`` for the
        service's clock) or when another user made it (``createdBy`` against ``/v2/myself``).
        """
        created_at = link.created_at
        if created_at is not None and created_at.timestamp() < since - _CLOCK_SKEW:
            return False, "created_at"
        checked = ["created_at"] if created_at is not None else []
        by = link.created_by
        if by is not None and by.id is not None:
            me = await self._me()
            if me:
                if str(by.id) not in me:
                    return False, "created_by"
                checked.append("created_by")
        return True, "+".join(checked) or "read_back"

    async def _me(self) -> frozenset[str]:
        """The ids of the token's own user (``GET /v2/myself``), fetched once per client.

        Empty when the service would not say: then ``createdBy`` is not checked.
        """
        if self._myself is None:
            async with self._myself_lock:
                if self._myself is None:
                    try:
                        req = _protocol.myself()
                        resp = await self._transport.send(req)
                        self._myself = self._decode(req, resp, _protocol.user_ids, "user")
                    except TrackerError as exc:
                        logger.warning(
                            "cannot tell the token's user (%s): createdBy unchecked", exc
                        )
                        self._myself = frozenset()
        return self._myself

    async def _find(self, spec: LinkSpec) -> Link | None:
        for link in await self.get(spec.source):
            if spec.matches(link):
                return link
        return None

    async def _confirm(self, spec: LinkSpec) -> Link | None:
        """Find a link the service says exists, allowing for its listing to lag."""
        found = await self._find(spec)
        for delay in _CONFIRM_DELAYS:
            if found is not None:
                break
            await self._transport.sleep(delay)
            found = await self._find(spec)
        return found

    async def delete(self, issue: str, link_id: int | str) -> None:
        """Delete link ``link_id`` (as listed by :meth:`get` on ``issue``) from both issues.

        Safe to retry: when an attempt's outcome is unknown (5xx, timeout, dropped connection)
        and the retry is answered 404 while ``issue`` exists, the first attempt removed the
        link: that is success. A 404 because ``issue`` does not exist raises
        :class:`NotFoundError`, and so does a link that was never there.
        """
        await self._delete(_protocol.delete_link(issue, link_id), issue)

    async def _delete(self, req: _protocol.Request, issue: str) -> int:
        """The safe delete; returns how many DELETEs were sent."""
        transport = self._transport
        retry = transport.retry
        started = transport.clock()
        uncertain = False
        attempts = 0
        while True:
            attempts += 1
            try:
                await transport.send(req, retry_uncertain=False)
                return attempts
            except UncertainError as exc:
                uncertain = True
                delay = retry.next_delay(
                    attempts, transport.clock() - started, None, transport.rand
                )
                if delay is None:
                    raise final_error(exc.cause, attempts) from None
                logger.warning("%s %s: outcome unknown (%s); retrying", req.method, req.path, exc)
                await transport.sleep(delay)
            except NotFoundError:
                if uncertain and await self._issue_exists(issue):
                    return attempts  # an earlier attempt, whose answer was lost, removed it
                raise

    async def _issue_exists(self, issue: str) -> bool:
        try:
            await self._transport.send(_protocol.get_links(issue))
        except NotFoundError:
            return False
        return True

    async def types(self) -> list[LinkType]:
        """The organization's link types (``GET /v2/linktypes``)."""
        req = _protocol.link_types()
        resp = await self._transport.send(req)
        return self._decode(req, resp, structure_link_types, "link types")

    async def _search(self, req: _protocol.Request) -> _protocol.SearchPage:
        """One search page (or scroll step): its keys and paging headers, checked."""
        resp = await self._transport.send(req)
        return self._decode(
            req,
            resp,
            lambda data: _protocol.search_page_of(data, resp.headers),
            "search page",
        )

    def _decode(
        self, req: _protocol.Request, resp: Response, fn: Callable[[Any], T], what: str
    ) -> T:
        """``fn`` of the answer's JSON; anything malformed is a :class:`TrackerError` naming the
        request, never a ``KeyError``/``TypeError``/``ValueError`` escaping."""
        try:
            return fn(_protocol.decode_json(resp.content))
        except Exception as exc:  # a malformed answer is a protocol error, not a crash
            raise TrackerError(
                f"malformed answer: could not read the {what}: {type(exc).__name__}: {exc}"[:500],
                status_code=resp.status,
                method=req.method,
                url=self._transport.base_url + req.path,
            ) from exc

    # --- bulk ------------------------------------------------------------------------------

    async def bulk_create(
        self,
        specs: Iterable[SpecInput] | AsyncIterable[SpecInput],
        *,
        on_progress: Callable[[int, int | None, Outcome], object] | None = None,
        journal: str | os.PathLike[str] | None = None,
    ) -> BulkReport:
        """Create many links; return a :class:`BulkReport` with one outcome per input item.

        See :meth:`create_many` for the semantics. A 401/403 stops the batch (the rest are
        ``SKIPPED``) and the report is still returned, not lost in an exception.
        """
        return await _bulk_create.bulk_create(
            self._ops, specs, on_progress=on_progress, journal=journal
        )

    def create_many(
        self,
        specs: Iterable[SpecInput] | AsyncIterable[SpecInput],
        *,
        journal: str | os.PathLike[str] | None = None,
    ) -> Stream[Outcome]:
        """Create many links, yielding each :class:`Outcome` as it completes.

        ``specs`` is any iterable or async iterable of :class:`LinkSpec`,
        ``(source, target, relationship)`` tuples or mappings with those keys, read lazily:
        memory stays bounded however long it is. To number items by the line they came from,
        give ``(spec, line)`` pairs (a :class:`LinkSpec` and an int) or a mapping with a
        ``"line"`` key: the line is copied to :attr:`Outcome.line` and the journal. The same
        link given twice (in either spelling) is created once; the repeat's outcome has
        ``repeat_of`` set. Use it as a context manager, so that leaving the loop
        early (``break``, an exception) stops the work at once::

            async with client.links.create_many(specs) as outcomes:
                async for outcome in outcomes:
                    if outcome.status is OutcomeStatus.FAILED:
                        break

        ``async for`` directly works too (then close it with ``contextlib.aclosing`` to leave
        early).
        """
        return _bulk_create.create_many(self._ops, specs, journal=journal)

    async def bulk_get(
        self,
        keys: Iterable[str] | AsyncIterable[str],
        *,
        on_progress: Callable[[int, int | None, IssueLinks], object] | None = None,
    ) -> LinksReport:
        """The links of many issues, fetched concurrently: a :class:`LinksReport`."""
        return await _bulk_read.bulk_get(self._ops, keys, on_progress=on_progress)

    def get_many(self, keys: Iterable[str] | AsyncIterable[str]) -> Stream[IssueLinks]:
        """Yield :class:`IssueLinks` for each key as its links arrive (completion order).

        Like :meth:`create_many`, usable as ``async with client.links.get_many(keys) as it:``.
        """
        return _bulk_read.get_many(self._ops, keys)

    def queue_links(
        self,
        queue: str | None = None,
        *,
        query: str | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> Stream[IssueLinks]:
        """Yield the links of every issue of a queue (or of a ``query``/``filter`` search).

        Issues are enumerated with ``POST /v2/issues/_search`` while their links are already
        being fetched; with more than 10,000 issues it switches to scroll mode. Like
        :meth:`create_many`, usable as ``async with client.links.queue_links("PROJ") as it:``.
        """
        body = _protocol.search_body(queue, query=query, filter=filter)
        return _bulk_read.queue_links(self._ops, body)

    # --- sync --------------------------------------------------------------------------------

    async def plan(
        self,
        desired: Iterable[SpecInput] | AsyncIterable[SpecInput],
        *,
        queue: str | None = None,
        query: str | None = None,
        filter: Mapping[str, Any] | None = None,
        relationships: Iterable[Relationship | str] | None = None,
        prune: bool = False,
    ) -> Plan:
        """A :class:`Plan`: what to create and delete so that a scope's links match ``desired``.

        The scope is the issues of ``queue`` / ``query`` / ``filter`` (the search of
        :meth:`queue_links`, optional) and every issue named in ``desired`` (the input forms of
        :meth:`bulk_create`); their links are read concurrently. Only the ``relationships``
        given are managed (default: all). With ``prune=True`` a managed link with both ends in
        the scope that is not desired is planned for deletion; a link leaving the scope never
        is. Sends no write: see :meth:`apply`.

        >>> plan = await client.links.plan(desired, queue="PROJ", prune=True)  # doctest: +SKIP
        """
        from ._sync import plan

        return await plan(
            self,
            desired,
            queue=queue,
            query=query,
            filter=filter,
            relationships=relationships,
            prune=prune,
        )
