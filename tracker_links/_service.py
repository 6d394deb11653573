"""LinkService: one method per links endpoint, plus the safe (never duplicating) create and
delete. The bulk methods come from ``_bulk_calls``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, TypeVar

from . import _bulk_delete, _protocol
from ._bulk_calls import BulkCalls
from ._converter import structure_link, structure_link_types, structure_links
from ._exceptions import AuthError, ConflictError, InvalidInputError, TrackerError
from ._finding import Finder
from ._history import clone_refused, import_forbidden, judge_import
from ._models import CLONE_RELATIONSHIPS, Link, LinkSpec, LinkType, Relationship
from ._moves import Aliases
from ._ops import Created, Ops, Unresolved
from ._provenance import Provenance
from ._safe_delete import safe_delete
from ._transport import Response, Transport, UncertainError

__all__ = ["LinkService"]

T = TypeVar("T")

logger: Final = logging.getLogger("tracker_links")

# After the service refused a create as a duplicate, the link may not be listed yet (its
# search index lags a second or two): read again after these pauses before giving up.
_CONFIRM_DELAYS: Final = (0.25, 0.5, 1.0, 2.0, 4.0)


class LinkService(BulkCalls):
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
        self._provenance = Provenance(transport, api_version)
        # What the bulk engines may call: these few methods, not the service's insides.
        self._ops = Ops(
            create=self._create,
            get=self.get,
            judge=self._provenance.judge,
            search=self._search,
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
        return self._decode(req, resp, structure_links, "links")

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
                status_code=done.refusal.status_code if done.refusal else None,
                messages=done.refusal.messages if done.refusal else (),
                method="POST",
                url=self._transport.base_url + _protocol.write_request(spec, self._version).path,
            )
        return done.link

    async def _create(self, spec: LinkSpec) -> Created:
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
                    return Created(existing, attempts, made, how)
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
                    return Created(existing, attempts, made, how)
                return Created(existing, attempts, False, None, exc)
            except InvalidInputError as exc:
                if spec.relationship in CLONE_RELATIONSHIPS and spec.created_at is None:
                    raise clone_refused(exc) from None
                raise
            except AuthError as exc:
                if exc.status_code == 403 and spec.created_at is not None:
                    raise import_forbidden(exc) from None
                raise
            link = self._decode(req, resp, structure_link, "link")
            self._finder.learn_made(spec, link, resp)
            if spec.created_at is None and link.created_at is not None:
                self._provenance.learn(sent, self._wall(), link.created_at.timestamp())
            return Created(link, attempts)

    async def _judged(self, spec: LinkSpec, link: Link, since: float) -> tuple[bool, str]:
        """:meth:`_judge`, or for an import (whose ``createdAt`` is history) its own rule."""
        if spec.created_at is not None:
            return judge_import(spec.created_at, link.created_at)
        return await self._provenance.judge(link, since)

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
        """The safe delete (:func:`_safe_delete.safe_delete`): deleted by this call, DELETEs."""
        req = _protocol.delete_link(issue, link_id, self._version)
        return await safe_delete(self._transport, self.get, req, issue, link_id, missing_ok)

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
        req = _protocol.link_types(self._version)
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
        return _protocol.decode_answer(
            req, resp.status, resp.content, fn, what, self._transport.base_url
        )
