"""LinkService: one method per links endpoint, plus the safe (never duplicating) create."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Final, TypeVar

import anyio
import attrs

from . import _bulk_create, _bulk_delete, _bulk_read, _protocol, _sync, _undo
from ._bulk_create import SpecInput
from ._bulk_delete import DeleteInput
from ._converter import structure, structure_link, structure_links
from ._exceptions import AuthError, ConflictError, InvalidInputError, NotFoundError, TrackerError
from ._finding import Finder
from ._history import clone_refused, import_forbidden, judge_import
from ._models import CLONE_RELATIONSHIPS, Link, LinkSpec, LinkType, Relationship
from ._moves import Aliases
from ._ops import Created, Ops, Unresolved
from ._plan import Plan
from ._reports import BulkReport, IssueLinks, LinksReport, Outcome
from ._service_clock import ServiceClock
from ._streams import Stream
from ._transport import Transport, UncertainError

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

    def __init__(self, transport: Transport, api_version: str = "v2") -> None:
        self._transport = transport
        self._version = api_version
        # Moved issues seen so far (old key -> new key), shared with the bulk engines.
        self._aliases = Aliases()
        self._finder = Finder(transport, api_version, self._aliases, self.get)
        self._find = self._finder.find
        self._wall: Callable[[], float] = time.time  # Unix time, to compare with createdAt
        self._service_clock = ServiceClock(_CLOCK_SKEW)
        self._myself: frozenset[str] | None = None
        self._myself_lock = anyio.Lock()
        # What the bulk engines may call: these few methods, not the service's insides.
        self._ops = Ops(
            create=self._create,
            get=self.get,
            judge=self._judge,
            search=transport.send,
            concurrency=transport.limiter.total,
            clock=transport.clock,
            version=api_version,
            aliases=self._aliases,
            delete=self._delete_if_there,
        )

    # --- single calls ------------------------------------------------------------------------

    async def get(self, issue: str) -> list[Link]:
        """All links of ``issue`` (a key like ``"PROJ-1"`` or a 24-hex id).

        >>> links = await client.links.get("PROJ-1")          # doctest: +SKIP
        >>> [(l.relationship, l.target.key) for l in links]    # doctest: +SKIP
        [(<Relationship.DEPENDS_ON: 'depends on'>, 'PROJ-7')]
        """
        req = _protocol.get_links(issue, self._version)
        resp = await self._transport.send(req)
        self._finder.learn(issue, req, resp)
        return _decode(resp.content, structure_links, "links")

    @property
    def aliases(self) -> Mapping[str, str]:
        """The moved issues this client has met: old key -> current key (read only).

        Learnt from the redirects the service answers an old key with, from the links it
        answers (their ``self`` and ``object``), from the ``aliases`` of search results and
        from a journal's records. A moved key and its current key are one issue to the safe
        create's read-back and to the de-duplication of bulk repeats.
        """
        return self._aliases

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
        return await self._make(LinkSpec(issue, target, relationship), exist_ok)

    async def import_link(
        self,
        issue: str,
        target: str,
        relationship: Relationship | str,
        *,
        created_at: datetime | str,
        created_by: str | int,
        updated_at: datetime | str | None = None,
        updated_by: str | int | None = None,
        exist_ok: bool = False,
    ) -> Link:
        """Link ``issue`` to ``target`` with the link's original author and dates; return it.

        For migrations (``POST /v2/issues/<issue>/links/_import``): ``created_at``/``updated_at``
        are aware datetimes or the service's text ``YYYY-MM-DDThh:mm:ss.sss±hhmm``;
        ``created_by``/``updated_by`` a login or a numeric user id; ``updated_at`` and
        ``updated_by`` go together. Bad values raise :class:`InvalidInputError` before any
        request. The relationships are those of :meth:`create`, plus ``clone`` and ``original``.

        Safe as :meth:`create` (the same machinery): after an unknown outcome it reads the
        issue's links before sending again, and an existing link (with or without a history)
        raises :class:`ConflictError` with ``.link``, or is returned with ``exist_ok=True``.
        The service lets only an administrator import (newer docs): a 403 is an
        :class:`AuthError` that says so.

        >>> await client.links.import_link(                              # doctest: +SKIP
        ...     "PROJ-12", "PROJ-7", "depends on",
        ...     created_at="2019-03-01T10:00:00.000+0300", created_by="ivanov")
        """
        if created_at is None or created_by is None:
            raise InvalidInputError("import_link needs created_at and created_by")
        spec = LinkSpec(
            issue,
            target,
            relationship,
            created_at=created_at,
            created_by=created_by,
            updated_at=updated_at,
            updated_by=updated_by,
        )
        return await self._make(spec, exist_ok)

    async def _make(self, spec: LinkSpec, exist_ok: bool) -> Link:
        """:meth:`create` and :meth:`import_link`: the safe create, and its conflict."""
        try:
            done = await self._create(spec)
        except Unresolved as exc:
            raise exc.cause from None
        if not done.made and not exist_ok:
            raise ConflictError(
                f"the link already exists: {spec.source} {spec.relationship.value} {spec.target}",
                link=done.link,
                status_code=done.status_code,
                messages=done.messages,
                method="POST",
                url=self._transport.base_url + _protocol.write_request(spec, self._version).path,
            )
        return done.link

    async def _create(self, spec: LinkSpec) -> _Done:
        """The safe create (the import, for a spec with a history): what it did, with the POSTs
        sent (for bulk reports).

        A duplicate refused by the service, or a link found after an unknown outcome that
        :meth:`_judge` says predates the attempt, is returned with ``made=False``. Raises
        :class:`Unresolved` when the fate stays unknown (the read-back itself failed).
        """
        issue, target = spec.source, spec.target
        req = _protocol.write_request(spec, self._version)
        transport = self._transport
        uncertain = False
        attempts = 0
        retry = transport.retry
        started = transport.clock()
        since = self._wall()
        while True:
            attempts += 1
            sent = self._wall()
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
                    made, how = await self._judged(spec, existing, since)
                    return _Done(existing, attempts, made, how)
                if delay is None:
                    raise exc.cause from None
                continue
            except ConflictError as exc:
                clone = spec.relationship in CLONE_RELATIONSHIPS and spec.created_at is None
                # A clone link refused by create is most likely the refusal, not a duplicate
                # whose listing lags: one look, not the lag's patience.
                existing = await (self._find(spec, True) if clone else self._confirm(spec))
                if existing is None:
                    if clone:
                        raise clone_refused(exc) from None
                    raise
                if uncertain:  # an earlier attempt of ours may be the one that landed
                    made, how = await self._judged(spec, existing, since)
                    return _Done(existing, attempts, made, how)
                return _Done(existing, attempts, False, None, exc.status_code, exc.messages)
            except InvalidInputError as exc:
                if spec.relationship in CLONE_RELATIONSHIPS and spec.created_at is None:
                    raise clone_refused(exc) from None
                raise
            except AuthError as exc:
                if exc.status_code == 403 and spec.created_at is not None:
                    raise import_forbidden(exc) from None
                raise
            link = _decode(resp.content, structure_link, "link")
            self._finder.learn_made(spec, link, resp)
            if spec.created_at is None and link.created_at is not None:
                self._service_clock.learn(sent, self._wall(), link.created_at.timestamp())
            return _Done(link, attempts)

    async def _judge(self, link: Link, since: float) -> tuple[bool, str]:
        """Whether ``link``, found after an attempt begun at Unix time ``since`` whose answer was
        lost, was made by that attempt; and what the decision rests on.

        It was not when its ``createdAt`` predates the attempt (on the service's clock as this
        client's answered creates place it: :class:`ServiceClock`) or when another user made it
        (``createdBy`` against ``/v2/myself``).
        """
        created_at = link.created_at
        if created_at is not None and self._service_clock.predates(created_at.timestamp(), since):
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

    async def _judged(self, spec: LinkSpec, link: Link, since: float) -> tuple[bool, str]:
        """:meth:`_judge`, or for an import (whose ``createdAt`` is history) its own rule."""
        if spec.created_at is not None:
            return judge_import(spec.created_at, link.created_at)
        return await self._judge(link, since)

    async def _me(self) -> frozenset[str]:
        """The ids of the token's own user (``GET /v2/myself``), fetched once per client.

        Empty when the service would not say: then ``createdBy`` is not checked.
        """
        if self._myself is None:
            async with self._myself_lock:
                if self._myself is None:
                    try:
                        resp = await self._transport.send(_protocol.myself(self._version))
                        self._myself = _decode(resp.content, _protocol.user_ids, "user")
                    except TrackerError as exc:
                        logger.warning(
                            "cannot tell the token's user (%s): createdBy unchecked", exc
                        )
                        self._myself = frozenset()
        return self._myself

    async def _confirm(self, spec: LinkSpec) -> Link | None:
        """Find a link the service says exists, allowing for its listing to lag."""
        found = await self._find(spec, True)
        for delay in _CONFIRM_DELAYS:
            if found is not None:
                break
            await self._transport.sleep(delay)
            found = await self._find(spec)
        return found

    async def delete(self, issue: str, link_id: int | str) -> None:
        """Delete link ``link_id`` (as listed by :meth:`get` on ``issue``) from both issues.

        Safe like :meth:`create`: when the fate of an attempt is unknown (5xx, timeout,
        dropped connection) it reads the issue's links before deciding; a link no longer
        listed was deleted by that attempt, and a 404 to a re-sent DELETE means the same
        (success, not an error). A 404 to the first attempt (no such link), or for the issue
        itself, raises :class:`NotFoundError`.
        """
        await self._delete(issue, link_id)

    async def _delete(
        self, issue: str, link_id: int | str, missing_ok: bool = False
    ) -> tuple[bool, int]:
        """The safe delete: whether this call deleted the link, and the DELETEs it sent.

        With ``missing_ok``, a 404 to the first attempt returns ``(False, 1)`` instead of
        raising (the link is not there; the caller has just listed the issue).
        """
        req = _protocol.delete_link(issue, link_id, self._version)
        wanted = str(link_id)
        transport = self._transport
        retry = transport.retry
        uncertain = False
        attempts = 0
        started = transport.clock()
        while True:
            attempts += 1
            try:
                await transport.send(req, retry_uncertain=False)
            except UncertainError as exc:
                # The DELETE may have been applied: look before sending it again.
                uncertain = True
                delay = retry.next_delay(
                    attempts, transport.clock() - started, None, transport.rand
                )
                if delay is not None:
                    logger.warning(
                        "delete link %s of %s: outcome unknown (%s); checking before a retry",
                        wanted,
                        issue,
                        exc.cause,
                    )
                    await transport.sleep(delay)
                if all(str(link.id) != wanted for link in await self.get(issue)):
                    return True, attempts  # the attempt landed
                if delay is None:
                    cause = exc.cause
                    if attempts > 1:
                        cause.message = f"{cause.message} (after {attempts} attempts)"
                    raise cause from None
                continue
            except NotFoundError:
                if uncertain:
                    # An earlier attempt landed, unless the issue itself is gone (then the
                    # read raises NotFoundError).
                    await self.get(issue)
                    return True, attempts
                if missing_ok:
                    return False, attempts
                raise
            return True, attempts

    async def _delete_if_there(self, issue: str, link_id: int | str) -> tuple[bool, int]:
        return await self._delete(issue, link_id, missing_ok=True)

    async def remove(
        self, issue: str, target: str, relationship: Relationship | str | None = None
    ) -> list[Link]:
        """Delete every link between ``issue`` and ``target``; return the links deleted.

        With ``relationship``, only the links meaning "``issue`` *relationship* ``target``" (in
        either spelling: ``remove("A-1", "A-2", "depends on")`` also deletes a link created as
        ``A-2 is dependent by A-1``); a link of another relationship between the two stays.
        ``[]`` when there was none (not an error). Costs one ``GET`` of ``issue``'s links and
        one safe ``DELETE`` (see :meth:`delete`) per link found. Arguments are validated
        before any request.

        >>> await client.links.remove("PROJ-12", "PROJ-7", "depends on")   # doctest: +SKIP
        [Link(id=4709605, ...)]
        """
        rel = _bulk_delete.check_remove(issue, target, relationship)
        deleted: list[Link] = []
        for link in _bulk_delete.between(await self.get(issue), target, rel):
            done, _ = await self._delete(issue, link.id, missing_ok=True)
            if done:
                deleted.append(link)
        return deleted

    async def types(self) -> list[LinkType]:
        """The organization's link types (``GET /v2/linktypes``)."""
        resp = await self._transport.send(_protocol.link_types(self._version))
        return _decode(resp.content, lambda data: structure(data, list[LinkType]), "link types")

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
        ``(source, target, relationship)`` tuples or mappings with those keys (and optionally
        ``"line"``, copied to :attr:`Outcome.line`), read lazily: memory stays bounded however
        long it is. The same link given twice (in either spelling) is created once; the repeat's
        outcome has ``repeat_of`` set. Use it as a context manager, so that leaving the loop
        early (``break``, an exception) stops the work at once::

            async with client.links.create_many(specs) as outcomes:
                async for outcome in outcomes:
                    if outcome.status is OutcomeStatus.FAILED:
                        break

        ``async for`` directly works too (then close it with ``contextlib.aclosing`` to leave
        early).
        """
        return _bulk_create.create_many(self._ops, specs, journal=journal)

    async def bulk_delete(
        self,
        specs: Iterable[DeleteInput] | AsyncIterable[DeleteInput],
        *,
        on_progress: Callable[[int, int | None, Outcome], object] | None = None,
        journal: str | os.PathLike[str] | None = None,
    ) -> BulkReport:
        """Delete many links; return a :class:`BulkReport` with one outcome per input item.

        The counterpart of :meth:`bulk_create`, with the same input (read lazily), the same
        concurrency, progress, journal and resume, and the same treatment of bad items
        (``FAILED`` before any request) and of a 401 (the rest ``SKIPPED``, the report
        returned). Each link is ``DELETED`` (this call removed it) or ``ABSENT`` (not on the
        service: nothing to do, not a failure). Each costs a ``GET`` of the source's links
        (one for the items of the same source that come close together in the input) and one
        safe ``DELETE`` (see :meth:`delete`) per match. Only the links asked for are deleted:
        a link of another relationship between the same two issues stays.

        >>> report = await client.links.bulk_delete(pairs, journal="unlink.jsonl")  # doctest: +SKIP
        >>> len(report.deleted), len(report.absent)                                 # doctest: +SKIP
        (9990, 10)
        """
        return await _bulk_delete.bulk_delete(
            self._ops, specs, on_progress=on_progress, journal=journal
        )

    def delete_many(
        self,
        specs: Iterable[DeleteInput] | AsyncIterable[DeleteInput],
        *,
        journal: str | os.PathLike[str] | None = None,
    ) -> Stream[Outcome]:
        """Delete many links, yielding each :class:`Outcome` as it completes.

        The counterpart of :meth:`create_many` (see :meth:`bulk_delete` for the semantics);
        usable as ``async with client.links.delete_many(specs) as outcomes:``.
        """
        return _bulk_delete.delete_many(self._ops, specs, journal=journal)

    async def undo(
        self,
        journal_path: str | os.PathLike[str],
        *,
        journal: str | os.PathLike[str] | None = None,
        on_progress: Callable[[int, int | None, Outcome], object] | None = None,
    ) -> BulkReport:
        """Undo a bulk create: delete exactly the links its journal says it **created**.

        ``journal_path`` is the journal of an earlier :meth:`bulk_create` / :meth:`create_many`
        / ``bulk-link --journal`` run. A link it found already there (``EXISTS``) is never
        deleted. Where the journal recorded the created link's id (and the issue it was
        created on), that very link is deleted, after the issue's listing shows the id still
        joining the same two issues: a link re-created later between the same pair has another
        id and stays. A journal written before ids were recorded falls back to delete-by-triple.
        A create left in flight (an open intent) is read back and deleted only if this token
        made it after the intent. ``journal`` is this undo's own journal (another file), so an
        interrupted undo re-run with it sends nothing for what was done. Outcomes as for
        :meth:`bulk_delete`; each one's ``line`` is its line in ``journal_path``.

        >>> report = await client.links.undo("links.jsonl", journal="undo.jsonl")  # doctest: +SKIP
        """
        return await _undo.undo(self._ops, journal_path, journal=journal, on_progress=on_progress)

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
        searched = queue is not None or query is not None or filter is not None
        search = _protocol.search_body(queue, query=query, filter=filter) if searched else None
        return await _sync.plan(
            self._ops, desired, search=search, relationships=relationships, prune=prune
        )

    async def apply(
        self,
        plan: Plan,
        *,
        journal: str | os.PathLike[str] | None = None,
        on_progress: Callable[[int, int | None, Outcome], object] | None = None,
    ) -> BulkReport:
        """Carry out a :class:`Plan`: its deletes, then its creates; a :class:`BulkReport`.

        Deletes are those of :meth:`bulk_delete` by id: each link is deleted while the issue the
        plan lists still shows it under that id between the same two issues (``DELETED``;
        ``ABSENT`` when it is gone). Creates are those of :meth:`bulk_create` (``CREATED``;
        ``EXISTS`` when the link is there already), so a stale plan is harmless. ``journal``
        records both phases: an interrupted apply re-run with it sends nothing that was done.
        A 401/403 stops the run (the rest is ``SKIPPED``) and the report is still returned.
        """
        return await _sync.apply(self._ops, plan, journal=journal, on_progress=on_progress)


@attrs.frozen
class _Done(Created):
    """A :class:`Created` with the refusal's status and messages (for ``create``'s error)."""

    status_code: int | None = None
    messages: tuple[str, ...] = ()


def _decode(content: bytes, fn: Callable[[Any], T], what: str) -> T:
    try:
        return fn(_protocol.decode_json(content))
    except Exception as exc:  # a malformed answer is a protocol error, not a crash
        raise TrackerError(f"could not read the {what} in the service's answer: {exc}") from exc
