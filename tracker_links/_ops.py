"""What the bulk engines are given: a few calls of one client, and nothing else.

The engines (``_bulk_create``, ``_bulk_read``) see a client through this narrow interface,
built by :class:`LinkService` from its own methods, instead of the service and its private
parts: they can be driven (and tested) by anything that fills it in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

import attrs

from ._exceptions import TrackerError
from ._models import Link, LinkSpec
from ._moves import Aliases
from ._protocol import Request, SearchPage

__all__ = ["Created", "Ops", "Unresolved"]


class Created(NamedTuple):
    """What a safe create did: the link, the POSTs sent, and whether this call made it.

    ``made`` is False when the link was there before (a refused duplicate, or a link found after
    an unknown outcome that predates the attempt or was made by another user). ``verified_by``
    says what the decision rests on when no answer to the POST was seen (``None`` when the
    service answered 201 or refused a duplicate). ``refusal`` is the service's refusal of a
    duplicate, if that is how the link was found. (A tuple: one is made per create.)
    """

    link: Link
    attempts: int
    made: bool = True
    verified_by: str | None = None
    refusal: TrackerError | None = None


class Unresolved(TrackerError):
    """A create whose fate stays unknown: it may have landed and could not be read back.

    ``cause`` is the error the caller sees. A journal keeps such an item's intent open, so the
    next run reads it back before it sends anything.
    """

    def __init__(self, cause: TrackerError, attempts: int) -> None:
        super().__init__(
            cause.message,
            status_code=cause.status_code,
            messages=cause.messages,
            method=cause.method,
            url=cause.url,
        )
        self.cause = cause
        self.attempts = attempts


async def _no_delete(issue: str, link_id: int | str) -> tuple[bool, int]:
    raise TrackerError("these Ops were built without a delete")


@attrs.frozen
class Ops:
    """The calls a bulk engine makes.

    ``create`` makes one link safely (never a duplicate) and says what it did; it raises the
    library's errors, or :class:`Unresolved` when the outcome stays unknown. ``get`` lists one
    issue's links. ``judge(link, since)`` decides whether ``link``, found after an attempt
    begun at Unix time ``since`` whose answer was lost, was made by that attempt: ``(made,
    verified_by)``. ``search`` sends one search page request and returns its keys and paging
    headers (:class:`SearchPage`; a malformed answer raises a ``TrackerError``).
    ``concurrency`` is how many requests the client lets run at once: the engines start that
    many workers. ``clock`` is the client's clock (monotonic seconds), for ``elapsed``.
    ``delete`` deletes one link (issue, link id) safely and returns whether this call deleted
    it (``False``: a 404, it was not there) with the number of DELETEs sent. ``version`` is
    the client's API version (``"v2"``/``"v3"``), for the requests an engine builds itself
    (search pages). ``aliases`` is the client's map of moved issue keys (old -> new), filled
    as moves are seen: engines use it to tell an item's moved keys and to treat an old key and
    its new key as one issue.
    """

    create: Callable[[LinkSpec], Awaitable[Created]]
    get: Callable[[str], Awaitable[list[Link]]]
    judge: Callable[[Link, float], Awaitable[tuple[bool, str]]]
    search: Callable[[Request], Awaitable[SearchPage]]
    concurrency: int
    clock: Callable[[], float]
    delete: Callable[[str, int | str], Awaitable[tuple[bool, int]]] = _no_delete
    version: str = "v2"
    aliases: Aliases = attrs.field(factory=Aliases)
