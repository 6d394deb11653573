"""Search of the fake: ``POST …/issues/_search`` (pages and scroll) and ``…/issues/_count``."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qsl, urlencode

from ._context import Context
from ._knob import check_share
from ._payloads import MSG_MIXED, Headers, Reply, error, json_reply
from ._store import IssueRow, Store

__all__ = ["Search", "fields_of", "int_param"]

_QUERY_RE: Final = re.compile(r'\s*queue\s*:\s*"?([A-Za-z][A-Za-z0-9_]*)"?(?=[\s,]|$)', re.I)

# What a malformed page looks like (malformed_search): each is a way a proxy or a bug may
# break a page, and each must reach a caller as a TrackerError, never a KeyError.
MALFORMED_BODIES: Final = (
    b'[{"key":"TEST-1"},{"ke',  # cut short
    b'{"unexpected":"an object, not a list"}',
    b'[1,"two",null]',  # items that are not issues
    b'[{"id":"no key here"}]',
    b"<html>502 Bad Gateway</html>",
)


def int_param(params: Mapping[str, str], name: str, default: int) -> int | Reply:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        return error(400, f"Invalid value of parameter {name}: must be an integer")


def fields_of(params: Mapping[str, str]) -> tuple[str, ...] | None:
    raw = params.get("fields")
    if not raw:
        return None
    return tuple(f for f in (p.strip() for p in raw.split(",")) if f)


class _Scroll:
    __slots__ = ("expires", "fields", "issues", "per", "tokens", "ttl")

    def __init__(
        self, issues: list[IssueRow], per: int, ttl: float, fields: tuple[str, ...] | None
    ) -> None:
        self.issues = issues
        self.per = per
        self.ttl = ttl
        self.fields = fields
        self.expires = 0.0
        self.tokens: dict[str, int] = {}


class Search:
    """Selects issues by keys, queue, filter or query; serves pages and scrolls over them.

    ``malformed_search``: the share (0 to 1) of search pages answered with a malformed body
    (200, the right headers, a body that is not a page of issues), drawn from the fake's random.
    """

    def __init__(self, store: Store, ctx: Context, *, malformed_search: float = 0.0) -> None:
        check_share("malformed_search", malformed_search)
        self.store = store
        self.ctx = ctx
        self.malformed_search = malformed_search
        self._scrolls: dict[str, _Scroll] = {}
        self._scroll_seq = 0

    def _select(self, body: bytes) -> tuple[str, list[IssueRow]] | Reply:
        """The issues a search body names, in key order, and which selector named them."""
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return error(400, "The request body is not valid JSON")
        if not isinstance(data, dict):
            return error(400, "The request body must be a JSON object")
        given = [k for k in ("keys", "queue", "filter", "query") if data.get(k) is not None]
        if len(given) > 1:
            return error(400, MSG_MIXED)
        if not given:
            return error(400, "Give one of keys, queue, filter or query")
        kind = given[0]
        value = data[kind]
        store = self.store
        queues: list[str] | None = None
        if kind == "keys":
            keys = [value] if isinstance(value, str) else value
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                return error(400, "'keys' must be a string or a list of strings")
            seen: dict[str, IssueRow] = {}
            for k in keys:
                issue = store.issue(k) or store.aliases.get(k)
                if issue is not None:
                    seen[issue.key] = issue
            return kind, sorted(seen.values(), key=lambda i: i.order)
        if kind == "queue":
            if not isinstance(value, str):
                return error(400, "'queue' must be a string")
            queues = [value]
        elif kind == "filter":
            if not isinstance(value, dict):
                return error(400, "'filter' must be an object")
            q = value.get("queue")
            if q is None:
                everything = [i for name in sorted(store.queues) for i in store.queues[name]]
                return kind, everything
            queues = [q] if isinstance(q, str) else q
            if not isinstance(queues, list) or not all(isinstance(x, str) for x in queues):
                return error(400, "'filter.queue' must be a string or a list of strings")
        else:
            if not isinstance(value, str):
                return error(400, "'query' must be a string")
            m = _QUERY_RE.match(value)
            if m is None:
                return error(400, f"The fake understands only 'Queue: <KEY> …' queries: {value!r}")
            queues = [m.group(1).upper()]
        names = sorted(set(queues))
        if len(names) == 1:
            return kind, list(store.queues.get(names[0], ()))
        return kind, [i for name in names for i in store.queues.get(name, ())]

    def count(self, body: bytes) -> Reply:
        selected = self._select(body)
        if isinstance(selected, Reply):
            return selected
        return json_reply(200, str(len(selected[1])))

    def _page(self, chunk: list[IssueRow], fields: tuple[str, ...] | None, version: str) -> str:
        rate = self.malformed_search
        if rate and self.ctx.random.random() < rate:
            self.ctx.stats.malformed_pages += 1
            return MALFORMED_BODIES[self.ctx.random.randrange(len(MALFORMED_BODIES))].decode()
        if fields == ("key",):  # what the library asks for: the fast path
            return "[" + ",".join(['{"key":"' + i.key + '"}' for i in chunk]) + "]"
        return "[" + ",".join([i.json.project(fields, version) for i in chunk]) + "]"

    def search(self, path: str, query: str, body: bytes, base_url: str, version: str) -> Reply:
        params = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        if "scrollId" in params:
            return self._scroll_next(params, version)
        selected = self._select(body)
        if isinstance(selected, Reply):
            return selected
        kind, issues = selected
        fields = fields_of(params)
        if "scrollType" in params:
            if kind in ("keys", "queue"):
                return error(400, "Scroll is not supported")
            if params["scrollType"] not in ("sorted", "unsorted"):
                return error(400, "scrollType must be 'sorted' or 'unsorted'")
            return self._scroll_start(params, issues, fields, version)
        per = int_param(params, "perPage", 50)
        if isinstance(per, Reply):
            return per
        page = int_param(params, "page", 1)
        if isinstance(page, Reply):
            return page
        per = min(max(per, 1), 10_000)
        page = max(page, 1)
        total = len(issues)
        pages = math.ceil(total / per)
        chunk = issues[(page - 1) * per : page * per]
        rest = {k: v for k, v in params.items() if k not in ("page", "perPage")}
        url = f"{base_url}{path}?"

        def at(n: int) -> str:
            return url + urlencode({**rest, "page": n, "perPage": per})

        link = f'<{at(1)}>; rel="first"'
        if page < pages:
            link += f', <{at(page + 1)}>; rel="next"'
        headers: Headers = [
            (b"x-total-count", str(total).encode()),
            (b"x-total-pages", str(pages).encode()),
            (b"link", link.encode()),
        ]
        return json_reply(200, self._page(chunk, fields, version), headers)

    def _scroll_start(
        self,
        params: Mapping[str, str],
        issues: list[IssueRow],
        fields: tuple[str, ...] | None,
        version: str,
    ) -> Reply:
        per = int_param(params, "perScroll", 100)
        if isinstance(per, Reply):
            return per
        ttl = int_param(params, "scrollTTLMillis", 5000)
        if isinstance(ttl, Reply):
            return ttl
        now = self.ctx.clock()
        for sid in [s for s, sc in self._scrolls.items() if sc.expires < now]:
            del self._scrolls[sid]
        self._scroll_seq += 1
        sid = hashlib.blake2b(f"scroll:{self._scroll_seq}".encode(), digest_size=12).hexdigest()
        scroll = _Scroll(issues, min(max(per, 1), 1000), min(max(ttl, 1), 60_000) / 1000.0, fields)
        self._scrolls[sid] = scroll
        return self._scroll_page(sid, scroll, None, 0, now, version)

    def _scroll_next(self, params: Mapping[str, str], version: str) -> Reply:
        sid = params["scrollId"]
        scroll = self._scrolls.get(sid)
        now = self.ctx.clock()
        if scroll is None or scroll.expires < now:
            self._scrolls.pop(sid, None)
            return error(403, "Expired signature")
        token = params.get("scrollToken", "")
        offset = scroll.tokens.get(token)
        if offset is None:
            return error(403, "Expired signature")
        ttl = int_param(params, "scrollTTLMillis", 0)
        if isinstance(ttl, Reply):
            return ttl
        if ttl > 0:
            scroll.ttl = min(ttl, 60_000) / 1000.0
        return self._scroll_page(sid, scroll, token, offset, now, version)

    def _scroll_page(
        self, sid: str, scroll: _Scroll, token: str | None, offset: int, now: float, version: str
    ) -> Reply:
        scroll.expires = now + scroll.ttl
        end = offset + scroll.per
        chunk = scroll.issues[offset:end]
        total = len(scroll.issues)
        headers: Headers = [(b"x-total-count", str(total).encode())]
        # Keep the token just used valid, so a retried follow-up gets the same page again.
        scroll.tokens = {} if token is None else {token: offset}
        if end < total:
            new = hashlib.blake2b(f"{sid}:{end}:{now}".encode(), digest_size=16).hexdigest()
            scroll.tokens[new] = end
            headers.append((b"x-scroll-id", sid.encode()))
            headers.append((b"x-scroll-token", new.encode()))
        return json_reply(200, self._page(chunk, scroll.fields, version), headers)
