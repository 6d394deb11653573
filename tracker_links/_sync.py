"""Sync, the I/O half: read the scope's links for a :class:`Plan`, and apply one.

:func:`plan` reads through the read engine (``queue_links`` for the search, then ``get_many``
for the issues named only in the desired links) and leaves every decision to
:func:`tracker_links._plan.make_plan`. :func:`apply` deletes, then creates with the create
engine. Like the bulk engines, both are given the narrow :class:`~tracker_links._ops.Ops`
interface of a client, not a :class:`LinkService`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from typing import IO, Any

import anyio
import attrs

from . import _bulk_create, _bulk_read
from ._bulk_create import SpecInput
from ._exceptions import AuthError, InvalidInputError, NotFoundError, TrackerError
from ._models import LinkSpec, Relationship
from ._ops import Ops
from ._plan import Plan, PlannedDelete, make_plan, managed_relationships
from ._reports import BulkReport, IssueLinks, Outcome, OutcomeStatus

__all__ = ["apply", "plan"]

Progress = Callable[[int, int | None, Outcome], object]
DeleteOne = Callable[[str, "int | str"], Awaitable[None]]


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


# --- apply -------------------------------------------------------------------------------------


async def apply(
    ops: Ops,
    delete: DeleteOne,
    plan: Plan,
    *,
    journal: str | os.PathLike[str] | None = None,
    on_progress: Progress | None = None,
) -> BulkReport:
    """Delete what ``plan`` deletes, then create what it creates; one outcome per item.

    Deletes come first (so a change frees its pair before the new link is created) and are
    numbered first: ``index`` 0 .. len(plan.delete) - 1, then the creates.
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

    stopped = await _delete_all(ops, delete, plan.delete, collect, journal)
    first = len(plan.delete)
    if stopped is not None:
        note = f"not attempted: the run stopped after {type(stopped).__name__}"
        for i, spec in enumerate(plan.create, first):
            collect(Outcome(spec, OutcomeStatus.SKIPPED, index=i, note=note))
    elif plan.create:

        def shifted(_done: int, _total: int | None, outcome: Outcome) -> None:
            collect(attrs.evolve(outcome, index=outcome.index + first))

        await _bulk_create.bulk_create(ops, plan.create, on_progress=shifted, journal=journal)
    outcomes.sort(key=lambda o: o.index)
    return BulkReport(outcomes, elapsed=ops.clock() - started)


# The delete phase, until the removal issue's bulk_delete engine lands. The same safe semantics:
# a DELETE is idempotent (the transport retries it); a 404 means the link is gone already
# (ABSENT) unless the issue itself is gone (FAILED); an outcome still unknown after the retries
# is settled by looking at the issue's links.


async def _delete_all(
    ops: Ops,
    delete: DeleteOne,
    deletes: Iterable[PlannedDelete],
    collect: Callable[[Outcome], None],
    journal: str | os.PathLike[str] | None,
) -> AuthError | None:
    done = _journal_deleted(journal) if journal is not None else set()
    jr = _open_journal(journal) if journal is not None else None
    stopped: list[AuthError] = []
    todo = iter(enumerate(deletes))

    def emit(outcome: Outcome) -> None:
        if jr is not None:
            jr.write(json.dumps(outcome.to_json(), ensure_ascii=False) + "\n")
            jr.flush()
        collect(outcome)

    async def worker(alone: bool = False) -> None:
        for index, item in todo:
            if stopped:
                note = f"not attempted: the run stopped after {type(stopped[0]).__name__}"
                emit(Outcome(item.spec, OutcomeStatus.SKIPPED, index=index, note=note))
                continue
            if item.spec.canonical in done:
                note = "already done in the journal; not sent"
                collect(Outcome(item.spec, OutcomeStatus.ABSENT, index=index, note=note))
                continue
            outcome = await _delete_one(ops, delete, item, index)
            if isinstance(outcome.error, AuthError) and not stopped:
                stopped.append(outcome.error)
            emit(outcome)
            if alone:
                return

    try:
        await worker(alone=True)  # the first goes alone: a bad token then costs one 401
        async with anyio.create_task_group() as tg:
            for _ in range(ops.concurrency):
                tg.start_soon(worker)
    finally:
        if jr is not None:
            jr.close()
    return stopped[0] if stopped else None


async def _delete_one(ops: Ops, delete: DeleteOne, item: PlannedDelete, index: int) -> Outcome:
    spec = item.spec
    try:
        await delete(item.issue, item.link_id)
    except AuthError as exc:
        return Outcome(spec, OutcomeStatus.FAILED, error=exc, attempts=1, index=index)
    except NotFoundError as exc:
        # The link is gone (perhaps through a retry of this very DELETE), or the issue is.
        return await _settle(ops, item, index, exc, gone=OutcomeStatus.ABSENT)
    except TrackerError as exc:  # the retries are spent and the outcome is unknown: look
        return await _settle(ops, item, index, exc, gone=OutcomeStatus.DELETED)
    return Outcome(spec, OutcomeStatus.DELETED, attempts=1, index=index)


async def _settle(
    ops: Ops, item: PlannedDelete, index: int, error: TrackerError, *, gone: OutcomeStatus
) -> Outcome:
    spec = item.spec
    try:
        links = await ops.get(item.issue)
    except TrackerError as exc:  # the issue itself is gone, or still unreadable
        return Outcome(spec, OutcomeStatus.FAILED, error=exc, attempts=1, index=index)
    if any(str(link.id) == str(item.link_id) for link in links):
        return Outcome(spec, OutcomeStatus.FAILED, error=error, attempts=1, index=index)
    note = "the link was gone already" if gone is OutcomeStatus.ABSENT else None
    return Outcome(spec, gone, attempts=1, index=index, note=note)


def _open_journal(path: str | os.PathLike[str]) -> IO[str]:
    return open(path, "a", encoding="utf-8")  # closed by the caller


def _journal_deleted(path: str | os.PathLike[str]) -> set[tuple[str, str, str, str]]:
    """The links a journal records as deleted (or found absent), by identity."""
    done: set[tuple[str, str, str, str]] = set()
    try:
        f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except FileNotFoundError:
        return done
    with f:
        for line in f:
            try:
                data = json.loads(line)
                if data.get("status") not in ("deleted", "absent"):
                    continue
                done.add(LinkSpec(data["source"], data["target"], data["relationship"]).canonical)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
    return done
