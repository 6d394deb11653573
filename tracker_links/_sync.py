"""Sync, the I/O half: read the scope's links for a :class:`Plan`, and apply one.

:func:`plan` reads through the read engine (``queue_links`` for the search, then ``get_many``
for the issues named only in the desired links) and leaves every decision to
:func:`tracker_links._plan.make_plan`. :func:`apply` deletes, then creates with ``bulk_create``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ._bulk_create import SpecInput
from ._exceptions import AuthError, InvalidInputError
from ._models import LinkSpec
from ._plan import Plan, make_plan, managed_relationships
from ._reports import IssueLinks

if TYPE_CHECKING:
    from ._models import Relationship
    from ._streams import Stream


class Reader(Protocol):
    """What :func:`plan` reads through (a :class:`LinkService`), passed down, not imported."""

    def queue_links(
        self,
        queue: str | None = None,
        *,
        query: str | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> Stream[IssueLinks]: ...

    def get_many(self, keys: Iterable[str] | AsyncIterable[str]) -> Stream[IssueLinks]: ...


__all__ = ["plan"]


async def _desired_items(
    desired: Iterable[SpecInput | object] | AsyncIterable[SpecInput | object],
) -> list[object]:
    if isinstance(desired, AsyncIterable):
        return [item async for item in desired]
    if isinstance(desired, (str, bytes, Mapping)):
        raise InvalidInputError(
            f"desired must be an iterable of link specs, got {type(desired).__name__}"
        )
    return list(desired)


def _named_keys(items: Iterable[object]) -> dict[str, None]:
    """The issues the valid desired items name, in the order they are named."""
    keys: dict[str, None] = {}
    for item in items:
        try:
            spec = LinkSpec.coerce(item)  # type: ignore[arg-type]  # bad ones are skipped here
        except Exception:  # reported by make_plan with its reason
            continue
        keys[spec.source] = None
        keys[spec.target] = None
    return keys


async def plan(
    service: Reader,
    desired: Iterable[SpecInput | object] | AsyncIterable[SpecInput | object],
    *,
    queue: str | None = None,
    query: str | None = None,
    filter: Mapping[str, Any] | None = None,
    relationships: Iterable[Relationship | str] | str | None = None,
    prune: bool = False,
) -> Plan:
    managed_relationships(relationships)  # bad values fail before any request
    search = queue is not None or query is not None or filter is not None
    # Validates queue/query/filter before any request; runs only when iterated.
    issues = service.queue_links(queue, query=query, filter=filter) if search else None
    items = await _desired_items(desired)
    current: list[IssueLinks] = []
    scope: set[str] = set()

    async def read(stream: AsyncIterable[IssueLinks]) -> None:
        async with contextlib.aclosing(stream) as links:  # type: ignore[type-var]
            async for item in links:
                if isinstance(item.error, AuthError):
                    raise item.error  # a bad token: stop at once
                scope.add(item.key)
                current.append(item)

    if issues is not None:
        await read(issues)
    rest = [key for key in _named_keys(items) if key not in scope]
    if rest:
        await read(service.get_many(rest))
    return make_plan(items, scope, current, relationships=relationships, prune=prune)
