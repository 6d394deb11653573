"""The bulk half of :class:`LinkService`: the calls that run an engine over many items.

Each is a thin, documented entry point that hands the client's narrow interface (``_ops``) to
an engine: ``_bulk_create``, ``_bulk_read``, ``_bulk_delete``, ``_undo``, ``_sync``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import Any

from . import _bulk_create, _bulk_delete, _bulk_read, _protocol, _sync, _undo
from ._bulk_create import SpecInput
from ._bulk_delete import DeleteInput
from ._models import Relationship
from ._ops import Ops
from ._plan import Plan
from ._reports import BulkReport, IssueLinks, LinksReport, Outcome
from ._streams import Stream

__all__ = ["BulkCalls"]


class BulkCalls:
    """The bulk methods of ``client.links`` (mixed into :class:`LinkService`)."""

    _ops: Ops

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
