"""The listings of the issues a bulk delete works on: one ``GET`` per issue, shared.

The items of one issue that come close together in the input (a journal, a file sorted by
source) share one read of that issue's links; the least recently used listings are dropped, so
memory stays bounded however long the input is. A listing is what the delete decides from: the
engine deletes only the links it shows, and forgets each one it deleted. ``on_ready`` is told
when a read ends (with the links or an error), so the engine can set aside the items that need
a listing still being read and go on with others instead of waiting.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable

import anyio

from ._exceptions import NotFoundError, TrackerError
from ._models import Link, LinkSpec

__all__ = ["Listing", "Listings"]


class Listing:
    """One issue's links as read once: by id, and by the other issue's key or id."""

    __slots__ = ("by_id", "by_other", "error", "ready")

    def __init__(self) -> None:
        self.ready = anyio.Event()  # set once read (the links or an error)
        self.by_id: dict[str, Link] = {}
        self.by_other: dict[str, list[Link]] = {}
        self.error: TrackerError | None = None

    def fill(self, links: list[Link]) -> None:
        for link in links:
            self.by_id[str(link.id)] = link
            ref = link.target
            for name in {ref.key, ref.id.lower() if ref.id else None}:
                if name:
                    self.by_other.setdefault(name, []).append(link)

    def result(self) -> Listing:
        """This listing once read; raises the error of its ``GET`` if it failed."""
        if self.error is not None:
            raise self.error
        return self

    def matches(self, spec: LinkSpec) -> list[Link]:
        name = spec.target if "-" in spec.target else spec.target.lower()
        return [
            link
            for link in self.by_other.get(name, ())
            if spec.matches(link) and str(link.id) in self.by_id
        ]


class Listings:
    """The listings of the issues read lately (least recently used ones dropped): one ``GET``
    per issue for the items of that issue that come close together in the input."""

    def __init__(
        self,
        get: Callable[[str], Awaitable[list[Link]]],
        size: int,
        on_ready: Callable[[Listing], None] | None = None,
    ) -> None:
        self.get = get
        self.size = size
        self.on_ready = on_ready
        self.cache: collections.OrderedDict[str, Listing] = collections.OrderedDict()

    def reading(self, issue: str) -> Listing | None:
        """The listing of ``issue`` if its ``GET`` is in flight now (else ``None``)."""
        listing = self.cache.get(issue)
        if listing is None or listing.ready.is_set():
            return None
        self.cache.move_to_end(issue)
        return listing

    async def of(self, issue: str) -> Listing:
        """The listing of ``issue``; raises the error of its ``GET`` if it failed."""
        listing = self.cache.get(issue)
        if listing is None:
            listing = self.cache[issue] = Listing()
            if len(self.cache) > self.size:
                self.cache.popitem(last=False)
            try:
                listing.fill(await self.get(issue))
            except BaseException as exc:
                # The items waiting for it share the error; later ones read again, unless the
                # issue does not exist.
                if isinstance(exc, TrackerError):
                    listing.error = exc
                else:  # cancelled: whoever waits must not read an empty listing
                    listing.error = TrackerError("the read of the issue's links was interrupted")
                if not isinstance(exc, NotFoundError) and self.cache.get(issue) is listing:
                    del self.cache[issue]
                if not isinstance(exc, TrackerError):
                    raise
            finally:
                listing.ready.set()
                if self.on_ready is not None:
                    self.on_ready(listing)
        else:
            self.cache.move_to_end(issue)
            if not listing.ready.is_set():
                await listing.ready.wait()
        return listing.result()
