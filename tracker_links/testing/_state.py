"""The fake Tracker's core: issues, links, knobs and routing; synchronous, no I/O at all.

:class:`TrackerState` answers one request at a time, given as plain values (method, path, query
string, headers, body bytes), with a :class:`Reply` (status, headers, body bytes, or "drop the
connection"). The in-process httpx transport and the ASGI app both drive it; only they sleep.

Speed matters (benchmarks push thousands of requests a second through it): the JSON pieces of
each issue are rendered once, a link is written out from them with one f-string, and a reply
body is encoded once. Nothing here copies stored data deeply.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import json
import math
import random
import re
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, ItemsView, Iterator, Mapping, ValuesView
from datetime import datetime, timezone
from typing import Any, Final, NamedTuple, TypeVar
from urllib.parse import parse_qsl, urlencode

import attrs

from .._converter import format_datetime
from .._models import Relationship

__all__ = ["API_URL", "FakeIssue", "FakeStats", "Reply", "StoredLink", "TrackerState"]

API_URL: Final = "https://api.tracker.yandex.net"
"""The host the fake writes into ``self`` URLs, as the real service does."""

Clock = Callable[[], float]
Headers = list[tuple[bytes, bytes]]

_JSON: Final = b"application/json; charset=UTF-8"
_JSON_HEADERS: Final[Headers] = [(b"content-type", _JSON)]


class Reply(NamedTuple):
    """One answer of the core. ``dropped``: close the connection instead of answering."""

    status: int
    headers: Headers
    body: bytes
    dropped: bool = False


_DROP: Final = Reply(0, [], b"", True)
_NO_CONTENT: Final = Reply(204, [], b"")


@attrs.frozen
class StoredLink:
    """A link the fake holds: ``source`` *relationship* ``target``, as it was created.

    ``source`` and ``target`` are issue keys (even when the request named an issue by its id);
    ``relationship`` reads from ``source`` (``StoredLink(…, "A", "B", DEPENDS_ON)``: A depends
    on B). ``created_at`` is the wall-clock time of creation, in UTC.
    """

    id: int
    source: str
    target: str
    relationship: Relationship
    created_at: datetime


@attrs.frozen
class FakeIssue:
    """An issue of the fake: its key, 24-hex id, queue, summary, assignee name and status key.

    ``assignee`` is ``None`` for an unassigned issue (its JSON then has no ``assignee``).
    """

    key: str
    id: str
    queue: str
    number: int
    summary: str
    assignee: str | None
    status: str


class FakeStats:
    """What the fake saw, for assertions and benchmark reports.

    ``requests`` counts answered requests by ``(method, status)``; a dropped request is counted
    in ``dropped`` only. ``by_route`` counts the requests that reached a route (past the auth,
    rate-limit and fault checks) by ``(method, route)``, routes being ``"links.create"``,
    ``"links.list"``, ``"links.get"``, ``"links.delete"``, ``"issue.get"``, ``"search"``,
    ``"count"``, ``"linktypes"``. The other counters:

    - ``rate_limited``: 429 answers sent (rate limit and ``max_inflight``);
    - ``peak_inflight``: most requests in flight at once;
    - ``duplicates_refused``: creates refused as an existing link (``duplicate_status``);
    - ``duplicates_created``: links stored although an identical one existed
      (``duplicate_status=None``): each is a duplicate a client caused;
    - ``dropped``: connections closed without an answer (``drop_rate``);
    - ``injected_failures``: injected 5xx answers (``fail_rate``);
    - ``creates`` / ``deletes``: links actually stored / removed through the API.

    >>> stats.count("POST", 201), stats.count(status=429), stats.total   # doctest: +SKIP
    (100, 3, 112)
    """

    __slots__ = (
        "by_route",
        "creates",
        "deletes",
        "dropped",
        "duplicates_created",
        "duplicates_refused",
        "injected_failures",
        "peak_inflight",
        "rate_limited",
        "requests",
    )

    def __init__(self) -> None:
        self._zero()

    def _zero(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.by_route: Counter[tuple[str, str]] = Counter()
        self.rate_limited = 0
        self.peak_inflight = 0
        self.duplicates_refused = 0
        self.duplicates_created = 0
        self.dropped = 0
        self.injected_failures = 0
        self.creates = 0
        self.deletes = 0

    def count(self, method: str | None = None, status: int | None = None) -> int:
        """Answered requests with this method and/or status (``None`` matches any)."""
        if method is not None and status is not None:
            return self.requests[(method.upper(), status)]
        m = method.upper() if method is not None else None
        return sum(
            n
            for (meth, st), n in self.requests.items()
            if (m is None or meth == m) and (status is None or st == status)
        )

    @property
    def total(self) -> int:
        """Every request received: the answered ones plus the dropped ones."""
        return sum(self.requests.values()) + self.dropped

    def reset(self) -> None:
        """Zero every counter (the stored links and issues are kept)."""
        self._zero()

    def as_dict(self) -> dict[str, Any]:
        """The counters as plain JSON-ready data (``requests`` keyed ``"POST 201"``)."""
        return {
            "total": self.total,
            "requests": {f"{m} {s}": n for (m, s), n in sorted(self.requests.items())},
            "by_route": {f"{m} {r}": n for (m, r), n in sorted(self.by_route.items())},
            "rate_limited": self.rate_limited,
            "peak_inflight": self.peak_inflight,
            "duplicates_refused": self.duplicates_refused,
            "duplicates_created": self.duplicates_created,
            "dropped": self.dropped,
            "injected_failures": self.injected_failures,
            "creates": self.creates,
            "deletes": self.deletes,
        }

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items() if k != "by_route")
        return f"FakeStats({fields})"


# --- static JSON pieces ------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# (inward label, outward label) per type id. `outward` names the relation of the requested
# issue to `object` when `direction` is "outward" (tracker-api.md 1.2).
_TYPE_LABELS: Final[dict[str, tuple[str, str]]] = {
    "relates": ("relates", "relates"),
    "depends": ("Blocker", "Depends on"),
    "subtask": ("Sub-issue", "Parent issue"),
    "duplicates": ("Duplicated by", "Duplicates"),
    "epic": ("Epic issue", "Epic"),
}
_TYPE_DICT: Final[dict[str, dict[str, str]]] = {
    tid: {"self": f"{API_URL}/v2/linktypes/{tid}", "id": tid, "inward": i, "outward": o}
    for tid, (i, o) in _TYPE_LABELS.items()
}
_TYPE_JSON: Final[dict[str, str]] = {tid: _dumps(d) for tid, d in _TYPE_DICT.items()}
_LINKTYPES_BODY: Final = _dumps(list(_TYPE_DICT.values())).encode()

# How the service files each relationship, seen from the issue it was created on (tracker-api.md
# section 8). The fake keeps its own copy: it models the service, so a user's
# register_link_type() must not change what it serves. `relates` comes back "inward" to its
# creator, as in the documented create example, and "outward" to the other issue.
_SOURCE_SIDE: Final[dict[Relationship, tuple[str, str]]] = {
    Relationship.RELATES: ("relates", "inward"),
    Relationship.DEPENDS_ON: ("depends", "outward"),
    Relationship.IS_DEPENDENT_BY: ("depends", "inward"),
    Relationship.IS_PARENT_TASK_FOR: ("subtask", "outward"),
    Relationship.IS_SUBTASK_FOR: ("subtask", "inward"),
    Relationship.DUPLICATES: ("duplicates", "outward"),
    Relationship.IS_DUPLICATED_BY: ("duplicates", "inward"),
    Relationship.IS_EPIC_OF: ("epic", "outward"),
    Relationship.HAS_EPIC: ("epic", "inward"),
}
_TARGET_SIDE: Final[dict[Relationship, tuple[str, str]]] = {
    r: (("relates", "outward") if r is Relationship.RELATES else _SOURCE_SIDE[r.inverse])
    for r in Relationship
}
_BY_VALUE: Final[dict[str, Relationship]] = {r.value: r for r in Relationship}

_ROBOT: Final = _dumps(
    {"self": f"{API_URL}/v2/users/1120000000000000", "id": "1120000000000000", "display": "Robot"}
)
_USERS: Final = (
    "Ivan Ivanov",
    "Anna Smirnova",
    "Pavel Kuznetsov",
    "Olga Popova",
    "Dmitry Sokolov",
    "Elena Lebedeva",
    "Sergey Kozlov",
    "Maria Novikova",
)
_STATUSES: Final[dict[str, tuple[str, str]]] = {
    "open": ("1", "Open"),
    "inProgress": ("3", "In Progress"),
    "needInfo": ("2", "Need info"),
    "resolved": ("4", "Resolved"),
    "closed": ("5", "Closed"),
}
_ISSUE_STAMP: Final = "2024-01-15T09:00:00.000+0000"

_QUEUE_RE: Final = re.compile(r"[A-Z][A-Z0-9_]*")
_ISSUE_KEY_RE: Final = re.compile(r"([A-Z][A-Z0-9_]*)-([1-9][0-9]*)")
_HEX24_RE: Final = re.compile(r"[0-9a-f]{24}")
_QUERY_RE: Final = re.compile(r'\s*queue\s*:\s*"?([A-Za-z][A-Za-z0-9_]*)"?(?=[\s,]|$)', re.I)

_MSG_429: Final = (
    "You've exceeded the limit for requests to the host within a given time. "
    "Try your request again later."
)
_MSG_MIXED: Final = "You can only use keys, a queue or a search query"


_ROBOT_DICT: Final[dict[str, str]] = json.loads(_ROBOT)
_user_cache: dict[str, tuple[dict[str, str], str]] = {}
_status_cache: dict[str, tuple[dict[str, str], str]] = {}


def _user(name: str) -> tuple[dict[str, str], str]:
    """A user reference, as a dict and as JSON (shared, never mutated)."""
    found = _user_cache.get(name)
    if found is None:
        uid = str(1120000000000000 + zlib.crc32(name.encode()) % 1_000_000_000)
        ref = {"self": f"{API_URL}/v2/users/{uid}", "id": uid, "display": name}
        found = _user_cache[name] = (ref, _dumps(ref))
    return found


def _status(key: str) -> tuple[dict[str, str], str]:
    """A status reference, as a dict and as JSON (shared, never mutated)."""
    found = _status_cache.get(key)
    if found is None:
        sid, display = _STATUSES.get(key, (str(10 + zlib.crc32(key.encode()) % 90), key))
        ref = {"self": f"{API_URL}/v2/statuses/{sid}", "id": sid, "key": key, "display": display}
        found = _status_cache[key] = (ref, _dumps(ref))
    return found


def _error(status: int, message: str, headers: Headers | None = None) -> Reply:
    body = _dumps({"errors": {}, "errorMessages": [message], "statusCode": status}).encode()
    return Reply(status, _JSON_HEADERS if headers is None else headers, body)


def _json(status: int, body: str | bytes, extra: Headers | None = None) -> Reply:
    data = body.encode() if isinstance(body, str) else body
    return Reply(status, _JSON_HEADERS if not extra else _JSON_HEADERS + extra, data)


class _Issue:
    __slots__ = ("_full", "_full_json", "extra_json", "info", "key", "links", "obj_json", "order")

    def __init__(self, info: FakeIssue, queue_id: int) -> None:
        self.info = info
        self.key = info.key
        self.order = (info.queue, info.number)
        self.links: dict[int, None] = {}  # an ordered set of link ids
        # Keys and ids are validated ASCII; only the summary needs escaping.
        self.obj_json = (
            f'{{"self":"{API_URL}/v2/issues/{info.key}","id":"{info.id}",'
            f'"key":"{info.key}","display":{_dumps(info.summary)}}}'
        )
        status, status_json = _status(info.status)
        extra = ""
        if info.assignee:
            extra += ',"assignee":' + _user(info.assignee)[1]
        self.extra_json = extra + ',"status":' + status_json
        full: dict[str, Any] = {
            "self": f"{API_URL}/v2/issues/{info.key}",
            "id": info.id,
            "key": info.key,
            "version": 1,
            "summary": info.summary,
            "queue": {
                "self": f"{API_URL}/v2/queues/{info.queue}",
                "id": str(queue_id),
                "key": info.queue,
                "display": info.queue,
            },
            "status": status,
            "createdBy": _ROBOT_DICT,
            "createdAt": _ISSUE_STAMP,
            "updatedAt": _ISSUE_STAMP,
        }
        if info.assignee:
            full["assignee"] = _user(info.assignee)[0]
        self._full = full
        self._full_json: str | None = None

    def full_json(self) -> str:
        if self._full_json is None:
            self._full_json = _dumps(self._full)
        return self._full_json

    def project(self, fields: tuple[str, ...] | None) -> str:
        if fields is None:
            return self.full_json()
        if fields == ("key",):
            return '{"key":"' + self.key + '"}'
        full = self._full
        return _dumps({"key": self.key, **{f: full[f] for f in fields if f in full}})


class _Rec:
    __slots__ = ("canon", "dst_view", "link", "source", "src_view", "stamp", "target", "tick")

    def __init__(
        self,
        link: StoredLink,
        source: _Issue,
        target: _Issue,
        canon: tuple[str, str, str],
        tick: float,
    ) -> None:
        self.link = link
        self.source = source
        self.target = target
        self.canon = canon
        self.tick = tick
        self.stamp = format_datetime(link.created_at)
        tid, d = _SOURCE_SIDE[link.relationship]
        self.src_view = (_TYPE_JSON[tid], d)
        tid, d = _TARGET_SIDE[link.relationship]
        self.dst_view = (_TYPE_JSON[tid], d)


class _Scroll:
    __slots__ = ("expires", "fields", "issues", "per", "tokens", "ttl")

    def __init__(
        self, issues: list[_Issue], per: int, ttl: float, fields: tuple[str, ...] | None
    ) -> None:
        self.issues = issues
        self.per = per
        self.ttl = ttl
        self.fields = fields
        self.expires = 0.0
        self.tokens: dict[str, int] = {}


_K = TypeVar("_K")
_V = TypeVar("_V")


class _View(Mapping[_K, _V]):
    """A live, read-only view of one of the fake's tables, each row shown as ``project(row)``.

    Iteration and :meth:`values` / :meth:`items` take a consistent snapshot under the fake's
    lock (safe while a server thread writes).
    """

    __slots__ = ("_lock", "_noun", "_project", "_rows")

    def __init__(
        self, rows: dict[_K, Any], lock: threading.Lock, project: Callable[[Any], _V], noun: str
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


def _int_param(params: Mapping[str, str], name: str, default: int) -> int | Reply:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        return _error(400, f"Invalid value of parameter {name}: must be an integer")


class TrackerState:
    """The fake's state and its request handling, with no I/O: see :class:`FakeTracker`.

    Every knob is a public attribute and may be changed between requests.
    """

    def __init__(
        self,
        queues: Mapping[str, int] | None = None,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        rate_limit: float | None = None,
        rate_burst: int = 20,
        retry_after: float | None = 1,
        max_inflight: int | None = None,
        fail_rate: float = 0.0,
        drop_rate: float = 0.0,
        drop_after_write: float = 0.5,
        list_lag: float = 0.0,
        duplicate_status: int | None = 422,
        token: str | None = None,
        seed: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        for name, value in (("latency", latency), ("jitter", jitter), ("list_lag", list_lag)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")
        for name, value in (
            ("fail_rate", fail_rate),
            ("drop_rate", drop_rate),
            ("drop_after_write", drop_after_write),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        if fail_rate + drop_rate > 1.0:
            raise ValueError("fail_rate + drop_rate must not exceed 1")
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError(f"rate_limit must be > 0 requests/s or None, got {rate_limit!r}")
        if rate_burst < 1:
            raise ValueError(f"rate_burst must be >= 1, got {rate_burst!r}")
        if max_inflight is not None and max_inflight < 1:
            raise ValueError(f"max_inflight must be >= 1 or None, got {max_inflight!r}")
        if duplicate_status is not None and not 400 <= duplicate_status <= 499:
            raise ValueError(
                f"duplicate_status must be a 4xx (409, 422) or None, got {duplicate_status!r}"
            )

        self.latency = latency
        self.jitter = jitter
        self.rate_limit = rate_limit
        self.rate_burst = rate_burst
        self.retry_after = retry_after
        self.max_inflight = max_inflight
        self.fail_rate = fail_rate
        self.drop_rate = drop_rate
        self.drop_after_write = drop_after_write
        self.list_lag = list_lag
        self.duplicate_status = duplicate_status
        self.token = token
        self.seed = seed
        self.clock = clock
        self.random = random.Random(seed)
        """The one source of randomness of every knob (seeded by ``seed``)."""
        self.stats = FakeStats()
        """Counters of what the fake saw: :class:`FakeStats`."""
        self.inflight = 0
        """Requests in flight right now (read only)."""

        self._lock = threading.Lock()
        self._by_key: dict[str, _Issue] = {}
        self._by_id: dict[str, _Issue] = {}
        self._queues: dict[str, list[_Issue]] = {}
        self._queue_ids: dict[str, int] = {}
        self._recs: dict[int, _Rec] = {}
        self._by_canon: dict[tuple[str, str, str], list[int]] = {}
        self._next_link_id = 1048570
        self._tokens = float(rate_burst)
        self._bucket_at: float | None = None
        self._scrolls: dict[str, _Scroll] = {}
        self._scroll_seq = 0
        self.links: Mapping[int, StoredLink] = _View(
            self._recs, self._lock, lambda rec: rec.link, "links"
        )
        """The stored links, a live read-only mapping: link id -> :class:`StoredLink`."""
        self.issues: Mapping[str, FakeIssue] = _View(
            self._by_key, self._lock, lambda issue: issue.info, "issues"
        )
        """The issues, a live read-only mapping: key -> :class:`FakeIssue`."""

        for queue, count in (queues or {}).items():
            if count < 0:
                raise ValueError(f"queue {queue!r}: the issue count must be >= 0, got {count!r}")
            self._queue(queue)
            for _ in range(count):
                self.add_issue(queue=queue)

    # --- issues --------------------------------------------------------------------------------

    def _queue(self, queue: str) -> list[_Issue]:
        issues = self._queues.get(queue)
        if issues is None:
            if not _QUEUE_RE.fullmatch(queue):
                raise ValueError(f"invalid queue key {queue!r}; expected upper case like 'TEST'")
            issues = self._queues[queue] = []
            self._queue_ids[queue] = len(self._queue_ids) + 1
        return issues

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
        """Add an issue and return its key.

        Give ``key`` (``"TEST-7"``), or only ``queue`` for the next free number in it. The
        defaults are deterministic: ``summary`` ``"<QUEUE> issue <n>"``, an ``assignee`` from a
        fixed list of names (``assignee=""`` leaves it unassigned), ``status`` ``"open"``, and
        an ``issue_id`` of 24 hex digits derived from the key.

        >>> fake.add_issue(queue="TEST")          # doctest: +SKIP
        'TEST-101'
        """
        with self._lock:
            if key is None:
                if queue is None:
                    raise ValueError("give the issue key or its queue")
                issues = self._queue(queue)
                number = issues[-1].info.number + 1 if issues else 1
                key = f"{queue}-{number}"
            else:
                m = _ISSUE_KEY_RE.fullmatch(key)
                if m is None:
                    raise ValueError(f"invalid issue key {key!r}; expected one like 'TEST-1'")
                if queue is not None and queue != m.group(1):
                    raise ValueError(f"issue key {key!r} is not in queue {queue!r}")
                queue, number = m.group(1), int(m.group(2))
                issues = self._queue(queue)
            if key in self._by_key:
                raise ValueError(f"issue {key} already exists")
            if issue_id is None:
                issue_id = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
            elif not _HEX24_RE.fullmatch(issue_id):
                raise ValueError(f"invalid issue id {issue_id!r}; expected 24 lower-case hex")
            if issue_id in self._by_id:
                raise ValueError(f"issue id {issue_id} is already used")
            info = FakeIssue(
                key=key,
                id=issue_id,
                queue=queue,
                number=number,
                summary=summary if summary is not None else f"{queue} issue {number}",
                assignee=_USERS[(number - 1) % len(_USERS)] if assignee is None else assignee,
                status=status,
            )
            issue = _Issue(info, self._queue_ids[queue])
            self._by_key[key] = issue
            self._by_id[issue_id] = issue
            if not issues or issues[-1].info.number < number:
                issues.append(issue)
            else:
                bisect.insort(issues, issue, key=lambda i: i.info.number)
            return key

    def _issue(self, ref: str) -> _Issue | None:
        return self._by_key.get(ref) or self._by_id.get(ref)

    def _known(self, ref: str) -> _Issue:
        issue = self._issue(ref)
        if issue is None:
            raise KeyError(f"no issue {ref!r} in the fake")
        return issue

    # --- links ---------------------------------------------------------------------------------

    @staticmethod
    def _canon(source: str, target: str, rel: Relationship) -> tuple[str, str, str]:
        tid, direction = _SOURCE_SIDE[rel]
        if rel is Relationship.RELATES:
            return (tid, min(source, target), max(source, target))
        return (tid, source, target) if direction == "outward" else (tid, target, source)

    def _store(self, source: _Issue, target: _Issue, rel: Relationship) -> _Rec:
        link_id = self._next_link_id
        self._next_link_id += 1
        link = StoredLink(
            id=link_id,
            source=source.key,
            target=target.key,
            relationship=rel,
            created_at=datetime.now(timezone.utc),
        )
        canon = self._canon(source.key, target.key, rel)
        rec = _Rec(link, source, target, canon, self.clock())
        self._recs[link_id] = rec
        self._by_canon.setdefault(canon, []).append(link_id)
        source.links[link_id] = None
        target.links[link_id] = None
        return rec

    def _unstore(self, rec: _Rec) -> None:
        link_id = rec.link.id
        del self._recs[link_id]
        ids = self._by_canon[rec.canon]
        ids.remove(link_id)
        if not ids:
            del self._by_canon[rec.canon]
        rec.source.links.pop(link_id, None)
        rec.target.links.pop(link_id, None)

    def add_link(self, source: str, target: str, relationship: Relationship | str) -> StoredLink:
        """Store a link directly (test set-up: no HTTP, no knobs, no stats) and return it.

        Raises ``KeyError`` for an unknown issue and ``ValueError`` for a self-link or, unless
        ``duplicate_status`` is ``None``, for a link that already exists in either spelling.
        """
        rel = Relationship.parse(relationship)
        with self._lock:
            src, dst = self._known(source), self._known(target)
            if src is dst:
                raise ValueError(f"a link needs two different issues; got {src.key} twice")
            if self.duplicate_status is not None and self._by_canon.get(
                self._canon(src.key, dst.key, rel)
            ):
                raise ValueError(f"{src.key} {rel.value} {dst.key}: the link already exists")
            return self._store(src, dst, rel).link

    def links_of(self, issue: str) -> list[StoredLink]:
        """The links of an issue (key or id), oldest first, whatever ``list_lag`` says."""
        with self._lock:
            found = self._known(issue)
            return [self._recs[i].link for i in found.links]

    def find_links(
        self, a: str, b: str, relationship: Relationship | str | None = None
    ) -> list[StoredLink]:
        """The links between issues ``a`` and ``b``, oldest first.

        With ``relationship``, only the links meaning "``a`` *relationship* ``b``", however they
        were written: ``find_links("A", "B", "depends on")`` also finds a link created as
        ``B is dependent by A``. More than one is found only when duplicates were stored
        (``duplicate_status=None``).
        """
        rel = None if relationship is None else Relationship.parse(relationship)
        with self._lock:
            ia, ib = self._known(a), self._known(b)
            out = []
            for link_id in ia.links:
                rec = self._recs[link_id]
                if rec.source is ia and rec.target is ib:
                    wanted = rel
                elif rec.source is ib and rec.target is ia:
                    wanted = None if rel is None else rel.inverse
                else:
                    continue
                if wanted is None or rec.link.relationship is wanted:
                    out.append(rec.link)
            return out

    def has_link(self, a: str, b: str, relationship: Relationship | str) -> bool:
        """Whether "``a`` *relationship* ``b``" is stored, in either spelling."""
        return bool(self.find_links(a, b, relationship))

    # --- the request pipeline -------------------------------------------------------------------

    def admit(self) -> tuple[Reply | None, float]:
        """A request arrives: count it in flight, apply ``max_inflight`` and ``rate_limit``.

        Returns the 429 to send (or ``None``) and the delay to sleep before answering. Every
        call must be paired with :meth:`release` once the answer is out.
        """
        with self._lock:
            self.inflight += 1
            stats = self.stats
            if self.inflight > stats.peak_inflight:
                stats.peak_inflight = self.inflight
            delay = self.latency
            if self.jitter:
                delay += self.random.uniform(0.0, self.jitter)
            if self.max_inflight is not None and self.inflight > self.max_inflight:
                return self._too_many("Too many concurrent requests"), delay
            rate = self.rate_limit
            if rate is not None:
                now = self.clock()
                burst = float(self.rate_burst)
                if self._bucket_at is None:
                    tokens = burst
                else:
                    tokens = min(burst, self._tokens + (now - self._bucket_at) * rate)
                self._bucket_at = now
                if tokens >= 1.0:
                    self._tokens = tokens - 1.0
                else:
                    self._tokens = tokens
                    return self._too_many(_MSG_429), delay
            return None, delay

    def _too_many(self, message: str) -> Reply:
        self.stats.rate_limited += 1
        headers = _JSON_HEADERS
        if self.retry_after is not None:
            ra = self.retry_after
            text = str(int(ra)) if float(ra).is_integer() else f"{ra:g}"
            headers = [*_JSON_HEADERS, (b"retry-after", text.encode())]
        return _error(429, message, headers)

    def release(self) -> None:
        """The answer to an admitted request is out (or abandoned)."""
        with self._lock:
            self.inflight -= 1

    def finish(self, method: str, reply: Reply) -> Reply:
        """Count an answer that did not go through :meth:`answer` (an early 429)."""
        with self._lock:
            self.stats.requests[(method, reply.status)] += 1
        return reply

    def answer(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        base_url: str = "http://localhost",
    ) -> Reply:
        """Answer an admitted request: faults, auth, then the route. Counts it in :attr:`stats`.

        ``headers`` must answer ``get()`` for lower-case names (``httpx.Headers`` does, for any
        case). ``base_url`` (``http://host:port``) is used for the ``Link`` headers a client
        follows; ``self`` URLs always name the real service's host.
        """
        with self._lock:
            stats = self.stats
            rng = self.random
            if self.fail_rate and rng.random() < self.fail_rate:
                status = rng.choice((500, 502, 503))
                stats.injected_failures += 1
                stats.requests[(method, status)] += 1
                return _error(status, "Injected failure of the fake Tracker")
            drop_after = False
            if self.drop_rate and rng.random() < self.drop_rate:
                if rng.random() >= self.drop_after_write:
                    stats.dropped += 1
                    return _DROP
                drop_after = True
            reply = self._check_auth(headers)
            if reply is None:
                reply = self._route(method, path, query, body, base_url)
            if drop_after:
                stats.dropped += 1
                return _DROP
            stats.requests[(method, reply.status)] += 1
            return reply

    def handle(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        base_url: str = "http://localhost",
    ) -> Reply:
        """The whole pipeline at once, without sleeping ``latency`` (a synchronous driver)."""
        early, _ = self.admit()
        try:
            if early is not None:
                return self.finish(method, early)
            return self.answer(method, path, query, headers, body, base_url)
        finally:
            self.release()

    def _check_auth(self, headers: Mapping[str, str]) -> Reply | None:
        auth = headers.get("authorization")
        if not auth:
            return _error(401, "Authorization required: send 'Authorization: OAuth <token>'")
        scheme, _, credential = auth.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() not in ("oauth", "bearer") or not credential:
            return _error(
                401, "Malformed Authorization header: expected 'OAuth <token>' or 'Bearer <token>'"
            )
        if self.token is not None and not hmac.compare_digest(
            credential.encode(), self.token.encode()
        ):
            return _error(401, "The token is not valid")
        org = headers.get("x-org-id")
        cloud = headers.get("x-cloud-org-id")
        if (org is None) == (cloud is None):
            return _error(
                403,
                "Send exactly one organization header: X-Org-ID or X-Cloud-Org-ID"
                + ("" if org is None else " (both were sent)"),
            )
        if not (org or cloud or "").strip():
            return _error(403, "The organization header is empty")
        return None

    # --- routes --------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: str, body: bytes, base_url: str) -> Reply:
        parts = path.rstrip("/").split("/") if len(path) > 1 else [""]
        n = len(parts)
        if n < 3 or parts[0] != "" or parts[1] not in ("v2", "v3"):
            return _error(404, f"No such resource: {path}")
        resource = parts[2]
        by_route = self.stats.by_route
        if resource == "issues" and n >= 4:
            ref = parts[3]
            if n == 4:
                if ref == "_search":
                    if method != "POST":
                        return _error(405, "Method not allowed")
                    by_route[(method, "search")] += 1
                    return self._search(path, query, body, base_url)
                if ref == "_count":
                    if method != "POST":
                        return _error(405, "Method not allowed")
                    by_route[(method, "count")] += 1
                    return self._count(body)
                if method != "GET":
                    return _error(405, "Method not allowed")
                by_route[(method, "issue.get")] += 1
                return self._get_issue(ref, query)
            if parts[4] == "links":
                if n == 5:
                    if method == "GET":
                        by_route[(method, "links.list")] += 1
                        return self._list_links(ref)
                    if method == "POST":
                        by_route[(method, "links.create")] += 1
                        return self._create_link(ref, body)
                    return _error(405, "Method not allowed")
                if n == 6:
                    if method == "DELETE":
                        by_route[(method, "links.delete")] += 1
                        return self._delete_link(ref, parts[5])
                    if method == "GET":
                        by_route[(method, "links.get")] += 1
                        return self._get_link(ref, parts[5])
                    return _error(405, "Method not allowed")
        elif resource == "linktypes" and n <= 4:
            if method != "GET":
                return _error(405, "Method not allowed")
            by_route[(method, "linktypes")] += 1
            if n == 3:
                return _json(200, _LINKTYPES_BODY)
            type_json = _TYPE_JSON.get(parts[3])
            if type_json is None:
                return _error(404, f"Link type {parts[3]!r} does not exist")
            return _json(200, type_json)
        return _error(404, f"No such resource: {path}")

    def _no_issue(self, ref: str) -> Reply:
        return _error(404, f"Issue {ref} does not exist")

    def _render(self, rec: _Rec, viewer: _Issue, extras: bool) -> str:
        if rec.source is viewer:
            type_json, direction = rec.src_view
            other = rec.target
        else:
            type_json, direction = rec.dst_view
            other = rec.source
        lid = rec.link.id
        stamp = rec.stamp
        return (
            f'{{"self":"{API_URL}/v2/issues/{viewer.key}/links/{lid}","id":{lid},'
            f'"type":{type_json},"direction":"{direction}","object":{other.obj_json},'
            f'"createdBy":{_ROBOT},"updatedBy":{_ROBOT},'
            f'"createdAt":"{stamp}","updatedAt":"{stamp}"'
            f"{other.extra_json if extras else ''}}}"
        )

    def _create_link(self, ref: str, body: bytes) -> Reply:
        source = self._issue(ref)
        if source is None:
            return self._no_issue(ref)
        try:
            data = json.loads(body)
        except ValueError:
            return _error(400, "The request body is not valid JSON")
        if not isinstance(data, dict):
            return _error(400, "The request body must be a JSON object")
        rel_text = data.get("relationship")
        target_ref = data.get("issue")
        if not isinstance(rel_text, str) or not isinstance(target_ref, str):
            return _error(400, "Both 'relationship' and 'issue' are required strings")
        target = self._issue(target_ref)
        if target is None:
            return self._no_issue(target_ref)
        rel = _BY_VALUE.get(rel_text)
        if rel is None:
            return _error(422, f"Unknown relationship {rel_text!r}")
        if target is source:
            return _error(422, "An issue cannot be linked to itself")
        canon = self._canon(source.key, target.key, rel)
        if self._by_canon.get(canon):
            if self.duplicate_status is not None:
                self.stats.duplicates_refused += 1
                return _error(
                    self.duplicate_status,
                    f"Issues {source.key} and {target.key} are already linked",
                )
            self.stats.duplicates_created += 1
        rec = self._store(source, target, rel)
        self.stats.creates += 1
        return _json(201, self._render(rec, source, False))

    def _list_links(self, ref: str) -> Reply:
        issue = self._issue(ref)
        if issue is None:
            return self._no_issue(ref)
        recs = self._recs
        render = self._render
        if self.list_lag > 0:
            horizon = self.clock() - self.list_lag
            parts = [
                render(rec, issue, True)
                for rec in (recs[i] for i in issue.links)
                if rec.tick <= horizon
            ]
        else:
            parts = [render(recs[i], issue, True) for i in issue.links]
        return _json(200, "[" + ",".join(parts) + "]")

    def _link_on(self, ref: str, link_ref: str) -> tuple[_Issue | None, _Rec | None]:
        issue = self._issue(ref)
        if issue is None or not link_ref.isdigit():
            return issue, None
        link_id = int(link_ref)
        return issue, (self._recs[link_id] if link_id in issue.links else None)

    def _get_link(self, ref: str, link_ref: str) -> Reply:
        issue, rec = self._link_on(ref, link_ref)
        if issue is None:
            return self._no_issue(ref)
        if rec is None:
            return _error(404, f"Link {link_ref} of issue {issue.key} does not exist")
        return _json(200, self._render(rec, issue, True))

    def _delete_link(self, ref: str, link_ref: str) -> Reply:
        issue, rec = self._link_on(ref, link_ref)
        if issue is None:
            return self._no_issue(ref)
        if rec is None:
            return _error(404, f"Link {link_ref} of issue {issue.key} does not exist")
        self._unstore(rec)
        self.stats.deletes += 1
        return _NO_CONTENT

    def _get_issue(self, ref: str, query: str) -> Reply:
        issue = self._issue(ref)
        if issue is None:
            return self._no_issue(ref)
        if not query:
            return _json(200, issue.full_json())
        return _json(200, issue.project(self._fields(dict(parse_qsl(query)))))

    @staticmethod
    def _fields(params: Mapping[str, str]) -> tuple[str, ...] | None:
        raw = params.get("fields")
        if not raw:
            return None
        return tuple(f for f in (p.strip() for p in raw.split(",")) if f)

    # --- search --------------------------------------------------------------------------------

    def _select(self, body: bytes) -> tuple[str, list[_Issue]] | Reply:
        """The issues a search body names, in key order, and which selector named them."""
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return _error(400, "The request body is not valid JSON")
        if not isinstance(data, dict):
            return _error(400, "The request body must be a JSON object")
        given = [k for k in ("keys", "queue", "filter", "query") if data.get(k) is not None]
        if len(given) > 1:
            return _error(400, _MSG_MIXED)
        if not given:
            return _error(400, "Give one of keys, queue, filter or query")
        kind = given[0]
        value = data[kind]
        queues: list[str] | None = None
        if kind == "keys":
            keys = [value] if isinstance(value, str) else value
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                return _error(400, "'keys' must be a string or a list of strings")
            seen: dict[str, _Issue] = {}
            for k in keys:
                issue = self._issue(k)
                if issue is not None:
                    seen[issue.key] = issue
            return kind, sorted(seen.values(), key=lambda i: i.order)
        if kind == "queue":
            if not isinstance(value, str):
                return _error(400, "'queue' must be a string")
            queues = [value]
        elif kind == "filter":
            if not isinstance(value, dict):
                return _error(400, "'filter' must be an object")
            q = value.get("queue")
            if q is None:
                everything = [i for name in sorted(self._queues) for i in self._queues[name]]
                return kind, everything
            queues = [q] if isinstance(q, str) else q
            if not isinstance(queues, list) or not all(isinstance(x, str) for x in queues):
                return _error(400, "'filter.queue' must be a string or a list of strings")
        else:
            if not isinstance(value, str):
                return _error(400, "'query' must be a string")
            m = _QUERY_RE.match(value)
            if m is None:
                return _error(400, f"The fake understands only 'Queue: <KEY> …' queries: {value!r}")
            queues = [m.group(1).upper()]
        names = sorted(set(queues))
        if len(names) == 1:
            return kind, list(self._queues.get(names[0], ()))
        return kind, [i for name in names for i in self._queues.get(name, ())]

    def _count(self, body: bytes) -> Reply:
        selected = self._select(body)
        if isinstance(selected, Reply):
            return selected
        return _json(200, str(len(selected[1])))

    def _search(self, path: str, query: str, body: bytes, base_url: str) -> Reply:
        params = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        if "scrollId" in params:
            return self._scroll_next(params)
        selected = self._select(body)
        if isinstance(selected, Reply):
            return selected
        kind, issues = selected
        fields = self._fields(params)
        if "scrollType" in params:
            if kind in ("keys", "queue"):
                return _error(400, "Scroll is not supported")
            if params["scrollType"] not in ("sorted", "unsorted"):
                return _error(400, "scrollType must be 'sorted' or 'unsorted'")
            return self._scroll_start(params, issues, fields)
        per = _int_param(params, "perPage", 50)
        if isinstance(per, Reply):
            return per
        page = _int_param(params, "page", 1)
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
        return _json(200, "[" + ",".join(i.project(fields) for i in chunk) + "]", headers)

    def _scroll_start(
        self, params: Mapping[str, str], issues: list[_Issue], fields: tuple[str, ...] | None
    ) -> Reply:
        per = _int_param(params, "perScroll", 100)
        if isinstance(per, Reply):
            return per
        ttl = _int_param(params, "scrollTTLMillis", 5000)
        if isinstance(ttl, Reply):
            return ttl
        now = self.clock()
        for sid in [s for s, sc in self._scrolls.items() if sc.expires < now]:
            del self._scrolls[sid]
        self._scroll_seq += 1
        sid = hashlib.blake2b(f"scroll:{self._scroll_seq}".encode(), digest_size=12).hexdigest()
        scroll = _Scroll(issues, min(max(per, 1), 1000), min(max(ttl, 1), 60_000) / 1000.0, fields)
        self._scrolls[sid] = scroll
        return self._scroll_page(sid, scroll, None, 0, now)

    def _scroll_next(self, params: Mapping[str, str]) -> Reply:
        sid = params["scrollId"]
        scroll = self._scrolls.get(sid)
        now = self.clock()
        if scroll is None or scroll.expires < now:
            self._scrolls.pop(sid, None)
            return _error(403, "Expired signature")
        token = params.get("scrollToken", "")
        offset = scroll.tokens.get(token)
        if offset is None:
            return _error(403, "Expired signature")
        ttl = _int_param(params, "scrollTTLMillis", 0)
        if isinstance(ttl, Reply):
            return ttl
        if ttl > 0:
            scroll.ttl = min(ttl, 60_000) / 1000.0
        return self._scroll_page(sid, scroll, token, offset, now)

    def _scroll_page(
        self, sid: str, scroll: _Scroll, token: str | None, offset: int, now: float
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
        fields = scroll.fields
        return _json(200, "[" + ",".join(i.project(fields) for i in chunk) + "]", headers)
