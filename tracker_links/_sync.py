"""Sync, the I/O half: read the scope's links for a :class:`Plan`, and apply one.

:func:`plan` reads through the read engine (``queue_links`` for the search, then ``get_many``
for the issues named only in the desired links) and leaves every decision to
:func:`tracker_links._plan.make_plan`. Like the bulk engines, it is given the narrow
:class:`~tracker_links._ops.Ops` interface of a client, not a :class:`LinkService`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any

from . import _bulk_read
from ._bulk_create import SpecInput
from ._exceptions import AuthError, InvalidInputError
from ._models import LinkSpec, Relationship
from ._ops import Ops
from ._plan import Plan, make_plan, managed_relationships
from ._reports import IssueLinks

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
    ops: Ops,
    desired: Iterable[SpecInput | object] | AsyncIterable[SpecInput | object],
    *,
    search: dict[str, Any] | None = None,
    relationships: Iterable[Relationship | str] | str | None = None,
    prune: bool = False,
) -> Plan:
    """Read the scope (the issues ``search`` finds, if given, and those ``desired`` names)."""
    managed_relationships(relationships)  # bad values fail before any request
    issues = _bulk_read.queue_links(ops, search) if search is not None else None
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
        await read(_bulk_read.get_many(ops, rest))
    return make_plan(items, scope, current, relationships=relationships, prune=prune)
