"""The sync plan: what to create and delete so that a scope's links match a desired list. Pure.

:func:`make_plan` takes what :func:`tracker_links._sync.plan` read (the current links of every
issue of the scope, as :class:`IssueLinks`) and the desired links, and decides; no I/O here.
A link is identified by :attr:`LinkSpec.canonical` (the same link read from either of its
issues, or written in either spelling, is one link) and, once read, by its id.
"""

from __future__ import annotations

import gc
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from itertools import chain
from typing import Any, Final

import attrs

from ._bulk_create import SpecInput
from ._exceptions import InvalidInputError, NotFoundError
from ._graph import find_cycles, natural_key
from ._models import (
    HISTORY_FIELDS,
    Direction,
    LinkSpec,
    Relationship,
    link_identity,
    relationship_of,
    validate_link_id,
)
from ._reports import IssueLinks

__all__ = ["Invalid", "Plan", "PlannedDelete", "Unread", "make_plan", "managed_relationships"]

_FORMAT: Final = "tracker-links plan"
_VERSION: Final = 1

# "X waits for Y" relationships, read from X, are the edges of the dependency graph (a parent
# task waits for its subtasks, an epic for its issues); their inverses are the same links read
# from Y. `relates` and `duplicates` never form a cycle.
_DEPENDS_ON: Final = Relationship.DEPENDS_ON
_PARENT: Final = Relationship.IS_PARENT_TASK_FOR
_EPIC: Final = Relationship.IS_EPIC_OF
_DEPENDENT: Final = Relationship.IS_DEPENDENT_BY
_SUBTASK: Final = Relationship.IS_SUBTASK_FOR
_HAS_EPIC: Final = Relationship.HAS_EPIC


@attrs.frozen
class PlannedDelete:
    """An existing link the plan deletes: ``spec`` as read from the issue it is listed on.

    ``issue`` (``spec.source``) is that issue and ``link_id`` the link's id there: the
    ``DELETE /v2/issues/<issue>/links/<link_id>`` that removes it.
    """

    spec: LinkSpec
    link_id: int | str

    @property
    def issue(self) -> str:
        """The issue the link is listed on (and deleted through)."""
        return self.spec.source


@attrs.frozen
class Invalid:
    """A desired item that failed validation: its 0-based ``index``, its ``repr``, the reason."""

    index: int
    item: str
    reason: str


@attrs.frozen
class Unread:
    """An issue of the scope whose links could not be read, and why."""

    issue: str
    reason: str


@attrs.frozen
class Plan:
    """What a sync would do: see :meth:`LinkService.plan`; apply it with :meth:`LinkService.apply`.

    - ``create``: the links to create, in the order of the desired input;
    - ``delete``: the existing links to delete (:class:`PlannedDelete`: ``.issue``, ``.link_id``,
      ``.spec``);
    - ``unchanged``: how many desired links are already there;
    - ``invalid``: desired items that failed validation, each with its index and reason;
    - ``cycles``: the dependency cycles (``depends on``, subtask and epic links) the links would
      form after the plan, each a path of issue keys whose first and last keys are the same;
    - ``unread``: issues of the scope whose links could not be read (a plan with some is
      incomplete: nothing is deleted on their behalf, and their creates go as safe creates).

    A change (a desired link present with another relationship) is a delete plus a create
    between the same two issues: :attr:`changes` pairs them.

    >>> plan = await client.links.plan(desired, queue="PROJ", prune=True)   # doctest: +SKIP
    >>> print(plan.summary())                                               # doctest: +SKIP
    3 to create, 1 to delete (1 change), 40 unchanged, 0 invalid, 0 cycles
    """

    create: tuple[LinkSpec, ...] = ()
    delete: tuple[PlannedDelete, ...] = ()
    unchanged: int = 0
    invalid: tuple[Invalid, ...] = ()
    cycles: tuple[tuple[str, ...], ...] = ()
    unread: tuple[Unread, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the plan has nothing to create or delete."""
        return not self.create and not self.delete

    @property
    def changes(self) -> list[tuple[PlannedDelete, LinkSpec]]:
        """The (delete, create) pairs between the same two issues: relationship changes."""
        creates: dict[frozenset[str], LinkSpec] = {}
        for spec in self.create:
            creates.setdefault(frozenset((spec.source, spec.target)), spec)
        out = []
        for d in self.delete:
            new = creates.get(frozenset((d.spec.source, d.spec.target)))
            if new is not None:
                out.append((d, new))
        return out

    def summary(self) -> str:
        """One line: ``3 to create, 1 to delete (1 change), 40 unchanged, 0 invalid, 0 cycles``."""
        changes = len(self.changes)
        text = (
            f"{len(self.create)} to create, {len(self.delete)} to delete"
            + (f" ({changes} change{'s' if changes != 1 else ''})" if changes else "")
            + f", {self.unchanged} unchanged, {len(self.invalid)} invalid, "
            f"{len(self.cycles)} cycle{'s' if len(self.cycles) != 1 else ''}"
        )
        if self.unread:
            text += f", {len(self.unread)} issues unread"
        return text

    def to_json(self) -> dict[str, Any]:
        """The plan as one JSON object (what :meth:`write_json` writes)."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "create": [spec.as_dict() for spec in self.create],
            "delete": [
                {"issue": d.issue, "link_id": d.link_id, **_rest(d.spec)} for d in self.delete
            ],
            "unchanged": self.unchanged,
            "invalid": [attrs.asdict(i) for i in self.invalid],
            "cycles": [list(c) for c in self.cycles],
            "unread": [attrs.asdict(u) for u in self.unread],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        """The plan :meth:`to_json` wrote; :class:`InvalidInputError` for anything else."""
        try:
            if data.get("format") != _FORMAT or data.get("version") != _VERSION:
                raise InvalidInputError(
                    f"not a version-{_VERSION} tracker-links plan "
                    f"(format {data.get('format')!r}, version {data.get('version')!r})"
                )
            create = tuple(
                LinkSpec(
                    c["source"],
                    c["target"],
                    c["relationship"],
                    **{name: c[name] for name in HISTORY_FIELDS if name in c},
                )
                for c in data["create"]
            )
            delete = tuple(
                PlannedDelete(
                    LinkSpec(d["issue"], d["target"], d["relationship"]),
                    _link_id(d["link_id"]),
                )
                for d in data["delete"]
            )
            unchanged = data["unchanged"]
            if isinstance(unchanged, bool) or not isinstance(unchanged, int) or unchanged < 0:
                raise InvalidInputError(f"unchanged must be a count, got {unchanged!r}")
            invalid = tuple(
                Invalid(int(i["index"]), str(i["item"]), str(i["reason"])) for i in data["invalid"]
            )
            cycles = tuple(tuple(str(k) for k in c) for c in data["cycles"])
            unread = tuple(Unread(str(u["issue"]), str(u["reason"])) for u in data["unread"])
        except InvalidInputError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError(f"malformed plan: {type(exc).__name__}: {exc}") from None
        return cls(create, delete, unchanged, invalid, cycles, unread)

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Write the plan to ``path`` as JSON; :meth:`read_json` reads it back equal."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, ensure_ascii=False, indent=1)
            f.write("\n")

    @classmethod
    def read_json(cls, path: str | os.PathLike[str]) -> Plan:
        """The plan :meth:`write_json` wrote to ``path``.

        Raises :class:`InvalidInputError` for a file that is not JSON or not a plan.
        """
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except ValueError as exc:
                raise InvalidInputError(f"{os.fspath(path)} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidInputError(f"{os.fspath(path)} is not a tracker-links plan")
        return cls.from_json(data)


def _rest(spec: LinkSpec) -> dict[str, str]:
    return {"relationship": spec.relationship.value, "target": spec.target}


def _link_id(value: object) -> int | str:
    validate_link_id(value)
    if not isinstance(value, (int, str)):  # pragma: no cover  # validate_link_id raised
        raise InvalidInputError(f"invalid link id {value!r}")
    return value


def managed_relationships(
    relationships: Iterable[Relationship | str] | str | None,
) -> frozenset[Relationship] | None:
    """The relationships a sync manages, each with its inverse; ``None`` means all of them.

    Accepts ``"depends on, relates"`` as well as a list; raises :class:`InvalidInputError`.
    """
    if relationships is None:
        return None
    if isinstance(relationships, str):
        relationships = [r for r in relationships.split(",") if r.strip()]
    out: set[Relationship] = set()
    for value in relationships:
        rel = Relationship.parse(value)
        out.update((rel, rel.inverse))
    if not out:
        raise InvalidInputError("relationships= names no relationship; use None for all")
    return frozenset(out)


def make_plan(
    desired: Iterable[SpecInput | object],
    scope: Iterable[str],
    current: Iterable[IssueLinks],
    *,
    relationships: Iterable[Relationship | str] | str | None = None,
    prune: bool = False,
    moves: Mapping[str, str] | None = None,
) -> Plan:
    """Decide what to create and delete so that the scope's links match ``desired``.

    ``scope`` is the set of issue keys whose links were read, ``current`` their links (one
    :class:`IssueLinks` per issue; an item with ``error`` is an issue that could not be read).
    A link is deleted only with ``prune=True``, when both of its ends are in the scope, its
    relationship is managed and it is not desired. Links of unknown types are never touched.
    ``moves`` (old key -> current key, as :class:`~tracker_links._moves.Aliases`) makes a moved
    issue's old key and its current key one issue: a desired file written before a move still
    matches the links, which the service lists under the current keys.
    """
    # The diff allocates hundreds of thousands of small objects and no reference cycle: the
    # cyclic garbage collector, run meanwhile over everything the caller holds (the links read),
    # cost ~40% of its time in measurements. It is paused for the call, and restored.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _make_plan(desired, scope, current, relationships, prune, moves or {})
    finally:
        if paused:
            gc.enable()


def _make_plan(
    desired: Iterable[SpecInput | object],
    scope: Iterable[str],
    current: Iterable[IssueLinks],
    relationships: Iterable[Relationship | str] | str | None,
    prune: bool,
    moves: Mapping[str, str],
) -> Plan:
    managed = managed_relationships(relationships)

    # A plain dict (an Aliases resolves chains in Python code per lookup), tested once: the
    # loops below run once per link.
    table = {old: moves[old] for old in moves}
    moved = bool(table)

    def current_key(key: str) -> str:
        return table.get(key, key)

    scope_keys = {current_key(k) for k in scope} if moved else set(scope)

    # The desired links, validated, first spelling kept for each canonical identity.
    wanted: dict[tuple[str, str, str, str], LinkSpec] = {}
    invalid: list[Invalid] = []
    valid: list[tuple[int, LinkSpec]] = []
    for index, item in enumerate(desired):
        try:
            spec = LinkSpec.coerce(item)  # type: ignore[arg-type]  # checked right here
        except InvalidInputError as exc:
            invalid.append(Invalid(index, repr(item), exc.message))
            continue
        except Exception as exc:  # a spec whose fields are not even strings
            invalid.append(Invalid(index, repr(item), f"cannot read a link spec: {exc}"))
            continue
        if managed is not None and spec.relationship not in managed:
            reason = f"relationship {spec.relationship.value!r} is not managed by this sync"
            invalid.append(Invalid(index, repr(item), reason))
            continue
        valid.append((index, spec))

    # The current links by id (a link read from both issues is one), each as (the issue read,
    # the other issue, the relationship of the first to the second). The view read from the
    # outward key (for `relates`, the first in natural order: PROJ-9 before PROJ-10) is kept,
    # so the plan does not depend on the order of the reads. Keys the service listed need no
    # validation: no spec is built here.
    views: dict[int | str, tuple[str, str, Relationship]] = {}
    unread: list[Unread] = []
    missing: dict[str, str] = {}
    inward = Direction.INWARD
    relates = Relationship.RELATES
    types: dict[str, tuple[Relationship | None, Relationship | None]] = {}
    for item in current:
        if item.error is not None:
            if isinstance(item.error, NotFoundError):
                missing[item.key] = f"issue {item.key} was not found: {item.error.message}"
            else:
                unread.append(Unread(item.key, f"{type(item.error).__name__}: {item.error}"))
            continue
        key = current_key(item.key) if moved else item.key
        for link in item.links:
            # Link.relationship, looked up once per link type (hashing enums runs Python code).
            type_id = link.type.id
            pair = types.get(type_id)
            if pair is None:
                pair = types[type_id] = (
                    relationship_of(type_id, Direction.OUTWARD),
                    relationship_of(type_id, inward),
                )
            rel = pair[1] if link.direction is inward else pair[0]
            if rel is None:
                continue  # a link type the library does not know: never touched
            seen = views.get(link.id)
            if seen is not None and (
                rel.direction is inward
                or (rel is relates and natural_key(key) > natural_key(seen[0]))
            ):
                continue
            ref = link.target
            other = ref.key or ref.id
            if moved and other is not None:
                other = current_key(other)
            if other is not None and other != key:
                views[link.id] = (key, other, rel)

    for index, spec in valid:
        if missing:
            absent = missing.get(spec.source) or missing.get(spec.target)
            if absent is not None:
                invalid.append(Invalid(index, repr(spec.as_dict()), absent))
                continue
        if moved and (spec.source in table or spec.target in table):
            canon = link_identity(
                current_key(spec.source), current_key(spec.target), spec.relationship
            )
        else:
            canon = spec.canonical
        wanted.setdefault(canon, spec)
    invalid.sort(key=lambda i: i.index)

    existing: dict[tuple[str, str, str, str], list[int | str]] = {}
    for link_id, (key, other, rel) in views.items():
        existing.setdefault(link_identity(key, other, rel), []).append(link_id)

    create = [spec for canon, spec in wanted.items() if canon not in existing]
    unchanged = len(wanted) - len(create)
    delete: list[PlannedDelete] = []
    if prune:
        for canon, ids in existing.items():
            keep = 1 if canon in wanted else 0  # extra copies of a desired link go too
            if len(ids) > 1:
                ids.sort(key=lambda i: (len(str(i)), str(i)))  # the oldest (lowest id) stays
            for link_id in ids[keep:]:
                key, other, rel = views[link_id]
                if managed is not None and rel not in managed:
                    continue
                if key not in scope_keys or other not in scope_keys:
                    continue  # the link leaves the scope
                try:
                    spec = LinkSpec(key, other, rel)
                except InvalidInputError:
                    continue  # an end the library cannot address: leave the link alone
                delete.append(PlannedDelete(spec, link_id))
    delete.sort(key=lambda d: (d.spec.canonical, str(d.link_id)))

    gone = {d.link_id for d in delete}
    graph: dict[str, set[str]] = {}
    for link_id, (key, other, rel) in views.items():
        if link_id not in gone:
            _add_edge(graph, key, other, rel)
    for spec in create:
        source, target = spec.source, spec.target
        if moved:
            source, target = current_key(source), current_key(target)
        _add_edge(graph, source, target, spec.relationship)
    cycles = tuple(tuple(path) for path, _ in find_cycles(_cyclic_core(graph)))
    return Plan(
        tuple(create),
        tuple(delete),
        unchanged,
        tuple(invalid),
        cycles,
        tuple(sorted(unread, key=lambda u: u.issue)),
    )


def _add_edge(graph: dict[str, set[str]], source: str, target: str, rel: Relationship) -> None:
    # Identity tests: hashing an enum member runs Python code, and this runs once per link.
    if rel is _DEPENDS_ON or rel is _PARENT or rel is _EPIC:
        graph.setdefault(source, set()).add(target)
    elif rel is _DEPENDENT or rel is _SUBTASK or rel is _HAS_EPIC:
        graph.setdefault(target, set()).add(source)


def _cyclic_core(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """``graph`` without the issues no cycle reaches (Kahn's peeling from the issues nothing
    points to): a dependency graph is mostly acyclic, so the cycle finder gets little or none."""
    indegree = Counter(chain.from_iterable(graph.values()))
    free = [node for node in graph if node not in indegree]
    while free:
        for nxt in graph.get(free.pop(), ()):
            indegree[nxt] -= 1
            if not indegree[nxt]:
                free.append(nxt)
    return {
        node: {nxt for nxt in succ if indegree[nxt]}
        for node, succ in graph.items()
        if indegree.get(node)
    }
