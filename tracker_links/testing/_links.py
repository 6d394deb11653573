"""The link endpoints of the fake: create, import, list, get one, delete; and a link's JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Final

from ._context import Context
from ._knob import check_seconds, check_status_4xx
from ._payloads import (
    API_URL,
    BY_TEXT,
    CLONE_TEXTS,
    NO_CONTENT,
    FakeUser,
    Reply,
    error,
    json_reply,
    no_issue,
)
from ._store import IssueRow, LinkRec, Store, canon

__all__ = ["LinkRoutes", "render_link"]

# YYYY-MM-DDThh:mm:ss.sss±hhmm, the service's own format (tracker-api.md 1.5).
_STAMP_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}")
_LOGIN_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")


def render_link(rec: LinkRec, viewer: IssueRow, extras: bool, version: str = "v2") -> str:
    """A link as ``viewer``'s ``GET …/links`` shows it (``extras``: the object's assignee and
    status, which the list adds)."""
    if rec.source is viewer:
        views, direction = rec.src_view
        other = rec.target
    else:
        views, direction = rec.dst_view
        other = rec.source
    lid = rec.link.id
    ob = other.json
    return (
        f'{{"self":"{API_URL}/{version}/issues/{viewer.key}/links/{lid}","id":{lid},'
        f'"type":{views[version]},"direction":"{direction}","object":{ob.obj[version]},'
        f'"createdBy":{rec.by_json},"updatedBy":{rec.updated_json},'
        f'"createdAt":"{rec.stamp}","updatedAt":"{rec.updated_stamp}"'
        f"{ob.extra if extras else ''}}}"
    )


def _stamp(data: Mapping[str, Any], name: str) -> datetime | Reply | None:
    raw = data.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str) or not _STAMP_RE.fullmatch(raw):
        return error(400, f"Invalid {name} {raw!r}: expected YYYY-MM-DDThh:mm:ss.sss±hhmm")
    try:
        return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(timezone.utc)
    except ValueError:
        return error(400, f"Invalid {name} {raw!r}: not a date")


def _login(data: Mapping[str, Any], name: str) -> str | Reply | None:
    raw = data.get(name)
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        return str(raw)
    if not isinstance(raw, str) or not _LOGIN_RE.fullmatch(raw):
        return error(400, f"Invalid {name} {raw!r}: expected a login or a numeric user id")
    return raw


class LinkRoutes:
    """The handlers of ``…/issues/<key>/links[/<id>|/_import]``, and their knobs.

    ``duplicate_status``: the answer (409 or 422) to a link that exists in either spelling,
    ``None`` to store the duplicate; ``list_lag``: seconds before a new link shows in a list;
    ``forbidden_queues``: writes touching an issue of these queues answer 403;
    ``import_forbidden``: the import endpoint answers 403 (as for a non-administrator);
    ``clone_on_create``: plain create accepts ``clone``/``original`` (refused with 422 if not).
    """

    def __init__(
        self,
        store: Store,
        ctx: Context,
        *,
        duplicate_status: int | None = 422,
        list_lag: float = 0.0,
        forbidden_queues: Iterable[str] = frozenset(),
        import_forbidden: bool = False,
        clone_on_create: bool = False,
    ) -> None:
        check_seconds("list_lag", list_lag)
        check_status_4xx("duplicate_status", duplicate_status)
        self.store = store
        self.ctx = ctx
        self.duplicate_status = duplicate_status
        self.list_lag = list_lag
        self.forbidden_queues = forbidden_queues
        self.import_forbidden = import_forbidden
        self.clone_on_create = clone_on_create

    @property
    def forbidden_queues(self) -> frozenset[str]:
        return self._forbidden

    @forbidden_queues.setter
    def forbidden_queues(self, value: Iterable[str]) -> None:
        if isinstance(value, str):
            raise TypeError("forbidden_queues must be a set of queue keys, not one string")
        self._forbidden = frozenset(value)

    def _refused(self, *issues: IssueRow) -> Reply | None:
        if self._forbidden:
            for issue in issues:
                if issue.info.queue in self._forbidden:
                    return error(403, f"You do not have permission to edit issue {issue.key}")
        return None

    def _resolve(self, ref: str) -> IssueRow | None:
        """An issue named in a body: by key, id, or an old key of a moved issue."""
        return self.store.issue(ref) or self.store.aliases.get(ref)

    def create(
        self, ref: str, body: bytes, user: FakeUser, version: str, imported: bool = False
    ) -> Reply:
        store = self.store
        source = store.issue(ref)
        if source is None:
            return no_issue(ref)
        try:
            data = json.loads(body)
        except ValueError:
            return error(400, "The request body is not valid JSON")
        if not isinstance(data, dict):
            return error(400, "The request body must be a JSON object")
        rel_text = data.get("relationship")
        target_ref = data.get("issue")
        if not isinstance(rel_text, str) or not isinstance(target_ref, str):
            return error(400, "Both 'relationship' and 'issue' are required strings")
        history: tuple[str, datetime | None, datetime | None, str | None] | None = None
        if imported:
            found = self._history(data)
            if isinstance(found, Reply):
                return found
            history = found
        target = self._resolve(target_ref)
        if target is None:
            return no_issue(target_ref)
        rel = BY_TEXT.get(rel_text)
        if rel is None:
            return error(422, f"Unknown relationship {rel_text!r}")
        if rel_text in CLONE_TEXTS and not imported and not self.clone_on_create:
            return error(
                422,
                f"Relationship {rel_text!r} can only be set by importing the link "
                f"(POST /{version}/issues/<key>/links/_import)",
            )
        if target is source:
            return error(422, "An issue cannot be linked to itself")
        if self._forbidden:
            refused = self._refused(source, target)
            if refused is not None:
                self.ctx.stats.forbidden += 1
                return refused
        key = canon(source, target, rel_text)
        stats = self.ctx.stats
        if store.by_canon.get(key):
            if self.duplicate_status is not None:
                stats.duplicates_refused += 1
                return error(
                    self.duplicate_status,
                    f"Issues {source.key} and {target.key} are already linked",
                )
            stats.duplicates_created += 1
        if history is None:
            rec = store.store(source, target, rel, key, user.login)
            stats.creates += 1
            return json_reply(201, render_link(rec, source, False, version))
        by, at, updated_at, updated_by = history
        rec = store.store(source, target, rel, key, by, at, updated_at, updated_by)
        stats.creates += 1
        stats.imports += 1
        return json_reply(200, render_link(rec, source, False, version))

    def _history(
        self, data: Mapping[str, Any]
    ) -> tuple[str, datetime | None, datetime | None, str | None] | Reply:
        created_at = _stamp(data, "createdAt")
        created_by = _login(data, "createdBy")
        updated_at = _stamp(data, "updatedAt")
        updated_by = _login(data, "updatedBy")
        for value in (created_at, created_by, updated_at, updated_by):
            if isinstance(value, Reply):
                return value
        if created_at is None or created_by is None:
            return error(400, "Both 'createdAt' and 'createdBy' are required to import a link")
        if (updated_at is None) != (updated_by is None):
            return error(400, "'updatedAt' and 'updatedBy' go together: give both or neither")
        assert isinstance(created_by, str)
        assert isinstance(created_at, datetime)
        assert not isinstance(updated_at, Reply)
        assert not isinstance(updated_by, Reply)
        return created_by, created_at, updated_at, updated_by

    def import_link(self, ref: str, body: bytes, user: FakeUser, version: str) -> Reply:
        if self.import_forbidden:
            self.ctx.stats.forbidden += 1
            return error(
                403,
                "Only an administrator may import links: this user may not call "
                "POST …/links/_import",
            )
        return self.create(ref, body, user, version, imported=True)

    def list(self, ref: str, version: str) -> Reply:
        issue = self.store.issue(ref)
        if issue is None:
            return no_issue(ref)
        recs = self.store.recs
        if self.list_lag > 0:
            horizon = self.ctx.clock() - self.list_lag
            parts = [
                render_link(rec, issue, True, version)
                for rec in (recs[i] for i in issue.links)
                if rec.tick <= horizon
            ]
        else:
            parts = [render_link(recs[i], issue, True, version) for i in issue.links]
        return json_reply(200, "[" + ",".join(parts) + "]")

    def _link_on(self, ref: str, link_ref: str) -> tuple[IssueRow | None, LinkRec | None]:
        issue = self.store.issue(ref)
        if issue is None or not (link_ref.isascii() and link_ref.isdigit()):
            return issue, None
        link_id = int(link_ref)
        return issue, (self.store.recs[link_id] if link_id in issue.links else None)

    def get(self, ref: str, link_ref: str, version: str) -> Reply:
        issue, rec = self._link_on(ref, link_ref)
        if issue is None:
            return no_issue(ref)
        if rec is None:
            return error(404, f"Link {link_ref} of issue {issue.key} does not exist")
        return json_reply(200, render_link(rec, issue, True, version))

    def delete(self, ref: str, link_ref: str) -> Reply:
        issue, rec = self._link_on(ref, link_ref)
        if issue is None:
            return no_issue(ref)
        if rec is None:
            return error(404, f"Link {link_ref} of issue {issue.key} does not exist")
        refused = self._refused(rec.source, rec.target)
        if refused is not None:
            self.ctx.stats.forbidden += 1
            return refused
        self.store.unstore(rec)
        self.ctx.stats.deletes += 1
        return NO_CONTENT
