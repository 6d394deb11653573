"""The fake's store: queues, issues (with the aliases of moved ones), links, and their ids.

Plain data and bookkeeping; no HTTP. The methods without a leading underscore that a test
calls directly (:meth:`Store.add_issue`, :meth:`Store.add_link`, ...) take the shared lock;
the request handlers call the others with the lock already held.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Callable, ItemsView, Iterator, Mapping, ValuesView
from datetime import datetime, timezone
from typing import Any, Final, TypeVar

import attrs

from .._converter import format_datetime
from ._context import Context
from ._payloads import (
    NAMES,
    ROBOT_LOGIN,
    SOURCE_SIDE,
    SOURCE_VIEW,
    TARGET_VIEW,
    USERS_BY_LOGIN,
    FakeRelationship,
    IssueJSON,
    inverse,
    parse_rel,
    rel_text,
    user_by_login,
)

__all__ = ["FakeIssue", "Store", "StoredLink"]

QUEUE_RE: Final = re.compile(r"[A-Z][A-Z0-9_]*")
ISSUE_KEY_RE: Final = re.compile(r"([A-Z][A-Z0-9_]*)-([1-9][0-9]*)")
_HEX24_RE: Final = re.compile(r"[0-9a-f]{24}")


@attrs.frozen
class StoredLink:
    """A link the fake holds: ``source`` *relationship* ``target``, as it was created.

    ``source`` and ``target`` are issue keys (even when the request named an issue by its id;
    the new keys after a move); ``relationship`` reads from ``source`` (``StoredLink(…, "A",
    "B", DEPENDS_ON)``: A depends on B), a :class:`~tracker_links.Relationship` or, for the
    ones the library does not know, the wire text (``"clone"``, ``"original"``).
    ``created_at`` is the fake's wall-clock time of creation in UTC (or the imported one),
    ``created_by`` the login of the user whose token created it (or the imported author);
    ``updated_at``/``updated_by`` are set only by an import that gave them.
    """

    id: int
    source: str
    target: str
    relationship: FakeRelationship
    created_at: datetime
    created_by: str = ROBOT_LOGIN
    updated_at: datetime | None = None
    updated_by: str | None = None


@attrs.frozen
class FakeIssue:
    """An issue of the fake: its key, 24-hex id, queue, summary, assignee name and status key.

    ``assignee`` is ``None`` for an unassigned issue (its JSON then has no ``assignee``).
    ``aliases`` are the issue's former keys (after :meth:`FakeTracker.move_issue`), oldest first.
    """

    key: str
    id: str
    queue: str
    number: int
    summary: str
    assignee: str | None
    status: str
    aliases: tuple[str, ...] = ()


class IssueRow:
    """One stored issue: its public info, rendered JSON and the ids of its links (in order)."""

    __slots__ = ("id", "info", "json", "key", "links", "order", "queue_id")

    def __init__(self, info: FakeIssue, queue_id: int) -> None:
        self.links: dict[int, None] = {}  # an ordered set of link ids
        self.queue_id = queue_id
        self.set_info(info)

    def set_info(self, info: FakeIssue) -> None:
        self.info = info
        self.key = info.key
        self.id = info.id
        self.order = (info.queue, info.number)
        self.json = IssueJSON(
            info.key,
            info.id,
            info.queue,
            self.queue_id,
            info.summary,
            info.assignee,
            info.status,
            info.aliases,
        )


class LinkRec:
    """One stored link and its rendering pieces for each side."""

    __slots__ = (
        "by_json",
        "canon",
        "dst_view",
        "link",
        "source",
        "src_view",
        "stamp",
        "target",
        "tick",
        "updated_json",
        "updated_stamp",
    )

    def __init__(
        self,
        link: StoredLink,
        source: IssueRow,
        target: IssueRow,
        canon: tuple[str, str, str],
        tick: float,
        text: str,
    ) -> None:
        self.link = link
        self.source = source
        self.target = target
        self.canon = canon
        self.tick = tick
        self.stamp = format_datetime(link.created_at)
        by = USERS_BY_LOGIN.get(link.created_by) or user_by_login(link.created_by)
        self.by_json = by.ref_json
        if link.updated_at is not None and link.updated_by is not None:
            self.updated_stamp = format_datetime(link.updated_at)
            self.updated_json = user_by_login(link.updated_by).ref_json
        else:
            self.updated_stamp = self.stamp
            self.updated_json = self.by_json
        self.src_view = SOURCE_VIEW[text]
        self.dst_view = TARGET_VIEW[text]


_K = TypeVar("_K")
_V = TypeVar("_V")


class View(Mapping[_K, _V]):
    """A live, read-only view of one of the fake's tables, each row shown as ``project(row)``.

    Iteration and :meth:`values` / :meth:`items` take a consistent snapshot under the fake's
    lock (safe while a server thread writes).
    """

    __slots__ = ("_lock", "_noun", "_project", "_rows")

    def __init__(
        self, rows: dict[_K, Any], lock: Any, project: Callable[[Any], _V], noun: str
    ) -> None:
        self._rows = rows
        self._lock = lock
        self._project = project
        self._noun = noun

    def __getitem__(self, key: _K) -> _V:
        return self._project(self._rows[key])

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[_K]:
        with self._lock:
            return iter(list(self._rows))

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def values(self) -> ValuesView[_V]:
        """A consistent snapshot of the rows."""
        with self._lock:
            return {k: self._project(r) for k, r in self._rows.items()}.values()

    def items(self) -> ItemsView[_K, _V]:
        """A consistent snapshot of ``(key, row)`` pairs."""
        with self._lock:
            return {k: self._project(r) for k, r in self._rows.items()}.items()

    def __repr__(self) -> str:
        return f"<{len(self)} {self._noun}>"


def canon(source: IssueRow, target: IssueRow, text: str) -> tuple[str, str, str]:
    """A link's identity, the same in either spelling (by issue ids: a move keeps it)."""
    tid, direction = SOURCE_SIDE[text]
    a, b = source.id, target.id
    if text == "relates":
        return (tid, min(a, b), max(a, b))
    return (tid, a, b) if direction == "outward" else (tid, b, a)


class Store:
    """Queues, issues and links of one fake."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.by_key: dict[str, IssueRow] = {}
        self.by_id: dict[str, IssueRow] = {}
        self.aliases: dict[str, IssueRow] = {}
        self.queues: dict[str, list[IssueRow]] = {}
        self.queue_ids: dict[str, int] = {}
        self.recs: dict[int, LinkRec] = {}
        self.by_canon: dict[tuple[str, str, str], list[int]] = {}
        self.next_link_id = 1048570
        self.links: Mapping[int, StoredLink] = View(
            self.recs, ctx.lock, lambda rec: rec.link, "links"
        )
        self.issues: Mapping[str, FakeIssue] = View(
            self.by_key, ctx.lock, lambda row: row.info, "issues"
        )

    # --- issues ------------------------------------------------------------------------------

    def queue(self, queue: str) -> list[IssueRow]:
        issues = self.queues.get(queue)
        if issues is None:
            if not QUEUE_RE.fullmatch(queue):
                raise ValueError(f"invalid queue key {queue!r}; expected upper case like 'TEST'")
            issues = self.queues[queue] = []
            self.queue_ids[queue] = len(self.queue_ids) + 1
        return issues

    def _place(self, key: str | None, queue: str | None) -> tuple[str, str, int]:
        """The key, queue and number of a new (or moved) issue."""
        if key is None:
            if queue is None:
                raise ValueError("give the issue key or its queue")
            issues = self.queue(queue)
            number = issues[-1].info.number + 1 if issues else 1
            key = f"{queue}-{number}"
            while key in self.aliases:  # a moved issue's old key is never reused
                number += 1
                key = f"{queue}-{number}"
        else:
            m = ISSUE_KEY_RE.fullmatch(key)
            if m is None:
                raise ValueError(f"invalid issue key {key!r}; expected one like 'TEST-1'")
            if queue is not None and queue != m.group(1):
                raise ValueError(f"issue key {key!r} is not in queue {queue!r}")
            queue, number = m.group(1), int(m.group(2))
            self.queue(queue)
        if key in self.by_key or key in self.aliases:
            raise ValueError(f"issue {key} already exists")
        return key, queue, number

    def _insert(self, row: IssueRow) -> None:
        issues = self.queues[row.info.queue]
        number = row.info.number
        if not issues or issues[-1].info.number < number:
            issues.append(row)
        else:
            bisect.insort(issues, row, key=lambda i: i.info.number)

    def add_issue(
        self,
        key: str | None = None,
        *,
        queue: str | None = None,
        summary: str | None = None,
        assignee: str | None = None,
        status: str = "open",
        issue_id: str | None = None,
    ) -> str:
        """See :meth:`FakeTracker.add_issue`."""
        with self.ctx.lock:
            key, queue, number = self._place(key, queue)
            if issue_id is None:
                issue_id = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
            elif not _HEX24_RE.fullmatch(issue_id):
                raise ValueError(f"invalid issue id {issue_id!r}; expected 24 lower-case hex")
            if issue_id in self.by_id:
                raise ValueError(f"issue id {issue_id} is already used")
            info = FakeIssue(
                key=key,
                id=issue_id,
                queue=queue,
                number=number,
                summary=summary if summary is not None else f"{queue} issue {number}",
                assignee=NAMES[(number - 1) % len(NAMES)] if assignee is None else assignee,
                status=status,
            )
            row = IssueRow(info, self.queue_ids[queue])
            self.by_key[key] = row
            self.by_id[issue_id] = row
            self._insert(row)
            return key

    def move_issue(self, old_key: str, new_queue_or_key: str) -> str:
        """See :meth:`FakeTracker.move_issue`."""
        with self.ctx.lock:
            row = self.by_key.get(old_key)
            if row is None:
                raise KeyError(f"no issue {old_key!r} in the fake")
            if ISSUE_KEY_RE.fullmatch(new_queue_or_key):
                key, queue, number = self._place(new_queue_or_key, None)
            else:
                key, queue, number = self._place(None, new_queue_or_key)
            info = row.info
            self.queues[info.queue].remove(row)
            del self.by_key[old_key]
            self.aliases[old_key] = row
            row.queue_id = self.queue_ids[queue]
            row.set_info(
                attrs.evolve(
                    info, key=key, queue=queue, number=number, aliases=(*info.aliases, old_key)
                )
            )
            self.by_key[key] = row
            self._insert(row)
            for link_id in row.links:
                rec = self.recs[link_id]
                rec.link = attrs.evolve(rec.link, source=rec.source.key, target=rec.target.key)
            return key

    def issue(self, ref: str) -> IssueRow | None:
        """The issue a request names by its key or id (not by an old key)."""
        return self.by_key.get(ref) or self.by_id.get(ref)

    def known(self, ref: str) -> IssueRow:
        """The issue a test names by key, id or old key, or ``KeyError``."""
        row = self.by_key.get(ref) or self.by_id.get(ref) or self.aliases.get(ref)
        if row is None:
            raise KeyError(f"no issue {ref!r} in the fake")
        return row

    # --- links -------------------------------------------------------------------------------

    def store(
        self,
        source: IssueRow,
        target: IssueRow,
        rel: FakeRelationship,
        key: tuple[str, str, str],
        created_by: str = ROBOT_LOGIN,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
        updated_by: str | None = None,
    ) -> LinkRec:
        link_id = self.next_link_id
        self.next_link_id += 1
        tick = self.ctx.clock()
        link = StoredLink(
            id=link_id,
            source=source.key,
            target=target.key,
            relationship=rel,
            created_at=self.ctx.wall_at(tick) if created_at is None else created_at,
            created_by=created_by,
            updated_at=updated_at,
            updated_by=updated_by,
        )
        rec = LinkRec(link, source, target, key, tick, rel_text(rel))
        self.recs[link_id] = rec
        self.by_canon.setdefault(key, []).append(link_id)
        source.links[link_id] = None
        target.links[link_id] = None
        return rec

    def unstore(self, rec: LinkRec) -> None:
        link_id = rec.link.id
        del self.recs[link_id]
        ids = self.by_canon[rec.canon]
        ids.remove(link_id)
        if not ids:
            del self.by_canon[rec.canon]
        rec.source.links.pop(link_id, None)
        rec.target.links.pop(link_id, None)

    def add_link(
        self,
        source: str,
        target: str,
        relationship: FakeRelationship,
        *,
        refuse_duplicates: bool,
        created_by: str | None = None,
        created_at: datetime | None = None,
    ) -> StoredLink:
        """See :meth:`FakeTracker.add_link`."""
        rel = parse_rel(relationship)
        if created_at is not None and created_at.tzinfo is None:
            raise ValueError("created_at must be an aware datetime (with a time zone)")
        with self.ctx.lock:
            src, dst = self.known(source), self.known(target)
            if src is dst:
                raise ValueError(f"a link needs two different issues; got {src.key} twice")
            key = canon(src, dst, rel_text(rel))
            if refuse_duplicates and self.by_canon.get(key):
                raise ValueError(f"{src.key} {rel_text(rel)} {dst.key}: the link already exists")
            by = ROBOT_LOGIN if created_by is None else created_by
            at = None if created_at is None else created_at.astimezone(timezone.utc)
            return self.store(src, dst, rel, key, by, at).link

    def links_of(self, issue: str) -> list[StoredLink]:
        with self.ctx.lock:
            found = self.known(issue)
            return [self.recs[i].link for i in found.links]

    def find_links(
        self, a: str, b: str, relationship: FakeRelationship | None = None
    ) -> list[StoredLink]:
        rel = None if relationship is None else parse_rel(relationship)
        with self.ctx.lock:
            ia, ib = self.known(a), self.known(b)
            out = []
            for link_id in ia.links:
                rec = self.recs[link_id]
                if rec.source is ia and rec.target is ib:
                    wanted = rel
                elif rec.source is ib and rec.target is ia:
                    wanted = None if rel is None else inverse(rel)
                else:
                    continue
                if wanted is None or rec.link.relationship == wanted:
                    out.append(rec.link)
            return out

    def duplicates(self) -> int:
        """Links stored although the same link (either spelling) was already stored.

        The caller holds the lock (:meth:`FakeTracker.snapshot` reads it with the counters)."""
        return sum(len(ids) - 1 for ids in self.by_canon.values())
