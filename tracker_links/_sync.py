"""Sync, the I/O half: read the scope's links for a :class:`Plan`, and apply one.

:func:`plan` reads through the read engine (``queue_links`` for the search, then ``get_many``
for the issues named only in the desired links) and leaves every decision to
:func:`tracker_links._plan.make_plan`. :func:`apply` deletes, then creates with the create
engine. Like the bulk engines, both are given the narrow :class:`~tracker_links._ops.Ops`
interface of a client, not a :class:`LinkService`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import Any

import attrs

from . import _bulk_create, _bulk_delete, _bulk_read
from ._bulk_create import SpecInput
from ._bulk_delete import LinkToDelete
from ._exceptions import AuthError, InvalidInputError
from ._models import LinkSpec, Relationship
from ._ops import Ops
from ._plan import Plan, make_plan, managed_relationships
from ._reports import BulkReport, IssueLinks, Outcome, OutcomeStatus

__all__ = ["apply", "plan"]

Progress = Callable[[int, int | None, Outcome], object]


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


def _named_keys(items: list[object]) -> dict[str, None]:
    """The issues the valid desired items name, in the order they are named.

    Each valid item is replaced by its :class:`LinkSpec` in ``items``, so that the plan does not
    validate it again; a bad one stays as it is, for the plan to report with its reason.
    """
    keys: dict[str, None] = {}
    for i, item in enumerate(items):
        try:
            spec = LinkSpec.coerce(item)  # type: ignore[arg-type]  # bad ones are skipped here
        except Exception:  # reported by make_plan with its reason
            continue
        items[i] = spec
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
    if not isinstance(prune, bool):  # "no" is truthy: a delete must be asked for with True
        raise InvalidInputError(f"prune must be True or False, got {prune!r}")
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
    # A key the search found under its new name (its former keys in the answer's aliases)
    # is not read again; a moved key read here teaches ops.aliases through its redirect.
    moves = ops.aliases
    rest = [key for key in _named_keys(items) if moves.resolve(key) not in scope]
    if rest:
        await read(_bulk_read.get_many(ops, rest))
    return make_plan(items, scope, current, relationships=relationships, prune=prune, moves=moves)


# --- apply -------------------------------------------------------------------------------------


async def apply(
    ops: Ops,
    plan: Plan,
    *,
    journal: str | os.PathLike[str] | None = None,
    on_progress: Progress | None = None,
) -> BulkReport:
    """Delete what ``plan`` deletes, then create what it creates; one outcome per item.

    Deletes come first (so a change frees its pair before the new link is created) and are
    numbered first: ``index`` 0 .. len(plan.delete) - 1, then the creates. The deletes are the
    delete engine's by id (each link deleted only while its issue still lists it under that
    id, joining the same two issues: ``DELETED``, else ``ABSENT``), the creates the create
    engine's; both write to ``journal``, which each reads back for its own kind of line.
    """
    if not isinstance(plan, Plan):
        raise InvalidInputError(f"apply() takes a Plan, got {type(plan).__name__}")
    started = ops.clock()
    total = len(plan.delete) + len(plan.create)
    outcomes: list[Outcome] = []

    def collect(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_progress is not None:
            on_progress(len(outcomes), total, outcome)

    # The delete engine shares one GET among the items of an issue that come close together:
    # the plan's deletes go issue by issue.
    order = sorted(range(len(plan.delete)), key=lambda i: plan.delete[i].issue)
    items = [LinkToDelete(plan.delete[i].spec, plan.delete[i].link_id) for i in order]

    def renumber(_done: int, _total: int | None, outcome: Outcome) -> None:
        collect(attrs.evolve(outcome, index=order[outcome.index]))

    deleted = await _bulk_delete.bulk_delete(ops, items, on_progress=renumber, journal=journal)
    first = len(plan.delete)
    stopped = next((o for o in deleted.outcomes if o.status is OutcomeStatus.SKIPPED), None)
    if stopped is not None:
        for i, spec in enumerate(plan.create, first):
            collect(Outcome(spec, OutcomeStatus.SKIPPED, index=i, note=stopped.note))
    elif plan.create:

        def shifted(_done: int, _total: int | None, outcome: Outcome) -> None:
            collect(attrs.evolve(outcome, index=outcome.index + first))

        await _bulk_create.bulk_create(ops, plan.create, on_progress=shifted, journal=journal)
    outcomes.sort(key=lambda o: o.index)
    return BulkReport(outcomes, elapsed=ops.clock() - started)
