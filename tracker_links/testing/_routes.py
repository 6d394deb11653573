"""Routing of the fake: method + path to the handler, under ``/v2/`` and ``/v3/`` alike.

A request on a moved issue's old key is answered with a redirect to the same path on its
new key (``redirect_status``, 301 by default), on the same origin, as Tracker is reported to.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

from ._links import LinkRoutes
from ._payloads import (
    JSON_HEADERS,
    LINKTYPES_BODY,
    TYPE_JSON,
    FakeUser,
    Reply,
    error,
    json_reply,
    no_issue,
)
from ._search import Search, fields_of
from ._store import Store

__all__ = ["REDIRECT_STATUSES", "Router"]

REDIRECT_STATUSES: Final = (301, 302, 307, 308)
_VERSIONS: Final = frozenset({"v2", "v3"})


def _not_allowed() -> Reply:
    return error(405, "Method not allowed")


class Router:
    """Sends an authorized request to its handler and counts it in ``stats.by_route``."""

    def __init__(
        self, store: Store, links: LinkRoutes, search: Search, *, redirect_status: int = 301
    ) -> None:
        self.store = store
        self.links = links
        self.search = search
        self.redirect_status = redirect_status

    @property
    def redirect_status(self) -> int:
        return self._redirect

    @redirect_status.setter
    def redirect_status(self, value: int) -> None:
        if value not in REDIRECT_STATUSES:
            raise ValueError(f"redirect_status must be one of {REDIRECT_STATUSES}, got {value!r}")
        self._redirect = value

    def route(
        self, method: str, path: str, query: str, body: bytes, base_url: str, user: FakeUser
    ) -> Reply:
        parts = path.rstrip("/").split("/") if len(path) > 1 else [""]
        n = len(parts)
        if n < 3 or parts[0] != "" or parts[1] not in _VERSIONS:
            return error(404, f"No such resource: {path}")
        version = parts[1]
        resource = parts[2]
        by_route = self.store.ctx.stats.by_route
        if resource == "issues" and n >= 4:
            ref = parts[3]
            if n == 4:
                if ref == "_search":
                    if method != "POST":
                        return _not_allowed()
                    by_route[(method, "search")] += 1
                    return self.search.search(path, query, body, base_url, version)
                if ref == "_count":
                    if method != "POST":
                        return _not_allowed()
                    by_route[(method, "count")] += 1
                    return self.search.count(body)
            aliases = self.store.aliases
            if aliases and ref in aliases:
                return self._redirect_to(aliases[ref].key, parts, query, base_url)
            if n == 4:
                if method != "GET":
                    return _not_allowed()
                by_route[(method, "issue.get")] += 1
                return self._get_issue(ref, query, version)
            if parts[4] == "links":
                links = self.links
                if n == 5:
                    if method == "GET":
                        by_route[(method, "links.list")] += 1
                        return links.list(ref, version)
                    if method == "POST":
                        by_route[(method, "links.create")] += 1
                        return links.create(ref, body, user, version)
                    return _not_allowed()
                if n == 6:
                    if parts[5] == "_import":
                        if method != "POST":
                            return _not_allowed()
                        by_route[(method, "links.import")] += 1
                        return links.import_link(ref, body, user, version)
                    if method == "DELETE":
                        by_route[(method, "links.delete")] += 1
                        return links.delete(ref, parts[5])
                    if method == "GET":
                        by_route[(method, "links.get")] += 1
                        return links.get(ref, parts[5], version)
                    return _not_allowed()
        elif resource == "linktypes" and n <= 4:
            if method != "GET":
                return _not_allowed()
            by_route[(method, "linktypes")] += 1
            if n == 3:
                return json_reply(200, LINKTYPES_BODY[version])
            type_json = TYPE_JSON[version].get(parts[3])
            if type_json is None:
                return error(404, f"Link type {parts[3]!r} does not exist")
            return json_reply(200, type_json)
        elif resource == "myself" and n == 3:
            if method != "GET":
                return _not_allowed()
            by_route[(method, "myself")] += 1
            return json_reply(200, user.myself_json())
        return error(404, f"No such resource: {path}")

    def _redirect_to(self, key: str, parts: list[str], query: str, base_url: str) -> Reply:
        self.store.ctx.stats.redirects += 1
        path = "/".join([*parts[:3], key, *parts[4:]])
        location = f"{base_url}{path}" + (f"?{query}" if query else "")
        headers = [*JSON_HEADERS, (b"location", location.encode())]
        return error(self._redirect, f"The issue has moved to {key}", headers)

    def _get_issue(self, ref: str, query: str, version: str) -> Reply:
        issue = self.store.issue(ref)
        if issue is None:
            return no_issue(ref)
        if not query:
            return json_reply(200, issue.json.full_json(version))
        return json_reply(200, issue.json.project(fields_of(dict(parse_qsl(query))), version))
