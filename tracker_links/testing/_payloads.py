"""The fake's JSON payloads: replies, error bodies, link types, users, statuses, issue pieces.

Pure tables and rendering, no state. Speed matters (benchmarks push thousands of requests a
second through the fake): the JSON pieces of each issue are rendered once, a link is written
out from them with one f-string, and a reply body is encoded once.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any, Final, NamedTuple, Protocol

from .._models import Relationship

__all__ = ["API_URL", "Reply"]

API_URL: Final = "https://api.tracker.yandex.net"
"""The host the fake writes into ``self`` URLs, as the real service does."""

VERSIONS: Final = ("v2", "v3")

Headers = list[tuple[bytes, bytes]]

JSON_CT: Final = b"application/json; charset=UTF-8"
JSON_HEADERS: Final[Headers] = [(b"content-type", JSON_CT)]


class Reply(NamedTuple):
    """One answer of the core. ``dropped``: close the connection instead of answering."""

    status: int
    headers: Headers
    body: bytes
    dropped: bool = False


class Responder(Protocol):
    """What the transports serve: :meth:`FakeTracker.respond`."""

    async def respond(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        base_url: str = ...,
    ) -> Reply: ...


DROP: Final = Reply(0, [], b"", True)
NO_CONTENT: Final = Reply(204, [], b"")


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is (what the service sends)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def error(status: int, message: str, headers: Headers | None = None) -> Reply:
    """The service's error body: ``{"errors": {}, "errorMessages": [...], "statusCode": n}``."""
    body = dumps({"errors": {}, "errorMessages": [message], "statusCode": status}).encode()
    return Reply(status, JSON_HEADERS if headers is None else headers, body)


def json_reply(status: int, body: str | bytes, extra: Headers | None = None) -> Reply:
    """A JSON answer; ``extra`` headers after the content type."""
    data = body.encode() if isinstance(body, str) else body
    return Reply(status, JSON_HEADERS if not extra else JSON_HEADERS + extra, data)


def no_issue(ref: str) -> Reply:
    return error(404, f"Issue {ref} does not exist")


MSG_429: Final = (
    "You've exceeded the limit for requests to the host within a given time. "
    "Try your request again later."
)
MSG_MIXED: Final = "You can only use keys, a queue or a search query"


def too_many(message: str, retry_after: float | None) -> Reply:
    """A 429, with ``Retry-After`` unless ``retry_after`` is ``None``."""
    headers = JSON_HEADERS
    if retry_after is not None:
        ra = retry_after
        text = str(int(ra)) if float(ra).is_integer() else f"{ra:g}"
        headers = [*JSON_HEADERS, (b"retry-after", text.encode())]
    return error(429, message, headers)


# --- link types and relationships ---------------------------------------------------------------

# (inward label, outward label) per type id. `outward` names the relation of the requested
# issue to `object` when `direction` is "outward" (tracker-api.md 1.2). The clone type's id
# and labels are not documented; these are the fake's.
TYPE_LABELS: Final[dict[str, tuple[str, str]]] = {
    "relates": ("relates", "relates"),
    "depends": ("Blocker", "Depends on"),
    "subtask": ("Sub-issue", "Parent issue"),
    "duplicates": ("Duplicated by", "Duplicates"),
    "epic": ("Epic issue", "Epic"),
    "clone": ("Original", "Clone"),
}
TYPE_DICT: Final[dict[str, dict[str, dict[str, str]]]] = {
    v: {
        tid: {"self": f"{API_URL}/{v}/linktypes/{tid}", "id": tid, "inward": i, "outward": o}
        for tid, (i, o) in TYPE_LABELS.items()
    }
    for v in VERSIONS
}
TYPE_JSON: Final[dict[str, dict[str, str]]] = {
    v: {tid: dumps(d) for tid, d in types.items()} for v, types in TYPE_DICT.items()
}
LINKTYPES_BODY: Final[dict[str, bytes]] = {
    v: dumps(list(types.values())).encode() for v, types in TYPE_DICT.items()
}

# How the service files each relationship (its wire text), seen from the issue it was created
# on (tracker-api.md section 8). The fake keeps its own copy: it models the service, so a
# user's register_link_type() must not change what it serves. `relates` comes back "inward" to
# its creator, as in the documented create example, and "outward" to the other issue.
SOURCE_SIDE: Final[dict[str, tuple[str, str]]] = {
    "relates": ("relates", "inward"),
    "depends on": ("depends", "outward"),
    "is dependent by": ("depends", "inward"),
    "is parent task for": ("subtask", "outward"),
    "is subtask for": ("subtask", "inward"),
    "duplicates": ("duplicates", "outward"),
    "is duplicated by": ("duplicates", "inward"),
    "is epic of": ("epic", "outward"),
    "has epic": ("epic", "inward"),
    "clone": ("clone", "outward"),
    "original": ("clone", "inward"),
}
INVERSE: Final[dict[str, str]] = {
    "relates": "relates",
    "depends on": "is dependent by",
    "is dependent by": "depends on",
    "is parent task for": "is subtask for",
    "is subtask for": "is parent task for",
    "duplicates": "is duplicated by",
    "is duplicated by": "duplicates",
    "is epic of": "has epic",
    "has epic": "is epic of",
    "clone": "original",
    "original": "clone",
}
TARGET_SIDE: Final[dict[str, tuple[str, str]]] = {
    r: (("relates", "outward") if r == "relates" else SOURCE_SIDE[INVERSE[r]]) for r in SOURCE_SIDE
}
# The (type JSON per version, direction) each side of a link shows, per relationship text.
_TYPE_VIEWS: Final = {tid: {v: TYPE_JSON[v][tid] for v in VERSIONS} for tid in TYPE_LABELS}
SOURCE_VIEW: Final[dict[str, tuple[dict[str, str], str]]] = {
    r: (_TYPE_VIEWS[tid], d) for r, (tid, d) in SOURCE_SIDE.items()
}
TARGET_VIEW: Final[dict[str, tuple[dict[str, str], str]]] = {
    r: (_TYPE_VIEWS[tid], d) for r, (tid, d) in TARGET_SIDE.items()
}
CLONE_TEXTS: Final = frozenset({"clone", "original"})
"""Relationships documented for the import endpoint only."""

FakeRelationship = Relationship | str
"""A stored relationship: the library's :class:`Relationship`, or its wire text for the ones
the library does not know (``"clone"``, ``"original"``)."""

_LIBRARY: Final[dict[str, Relationship]] = {r.value: r for r in Relationship}
BY_TEXT: Final[dict[str, FakeRelationship]] = {t: _LIBRARY.get(t, t) for t in SOURCE_SIDE}


def rel_text(rel: FakeRelationship) -> str:
    """The wire text of a relationship."""
    return rel.value if isinstance(rel, Relationship) else rel


def parse_rel(value: FakeRelationship) -> FakeRelationship:
    """A relationship given by a test: the enum, its wire text, or its name in any case."""
    if isinstance(value, Relationship):
        return value
    found = BY_TEXT.get(value.strip().lower())
    if found is not None:
        return found
    return Relationship.parse(value)  # names such as "DEPENDS_ON", or a clear error


def inverse(rel: FakeRelationship) -> FakeRelationship:
    return BY_TEXT[INVERSE[rel_text(rel)]]


# --- users and statuses -----------------------------------------------------------------------

ROBOT_UID: Final = "1120000000000000"
ROBOT_LOGIN: Final = "robot"
ROBOT_DISPLAY: Final = "Robot"
NAMES: Final = (
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
ISSUE_STAMP: Final = "2024-01-15T09:00:00.000+0000"

_user_cache: dict[str, tuple[dict[str, str], str]] = {}
USERS_BY_LOGIN: dict[str, FakeUser] = {}
_status_cache: dict[str, tuple[dict[str, str], str]] = {}


def _uid(text: str) -> str:
    return str(1120000000000000 + zlib.crc32(text.encode()) % 1_000_000_000)


def user_ref(name: str) -> tuple[dict[str, str], str]:
    """A user reference by display name (assignees), as a dict and as JSON (shared)."""
    found = _user_cache.get(name)
    if found is None:
        uid = _uid(name)
        ref = {"self": f"{API_URL}/v2/users/{uid}", "id": uid, "display": name}
        found = _user_cache[name] = (ref, dumps(ref))
    return found


class FakeUser(NamedTuple):
    """A user of the fake: numeric ``uid`` (as text), ``login``, ``display``; ``ref_json`` is
    the user reference links carry in ``createdBy``/``updatedBy``."""

    uid: str
    login: str
    display: str
    ref_json: str

    def myself_json(self) -> str:
        """The body of ``GET /v2/myself``."""
        return dumps(
            {
                "self": f"{API_URL}/v2/users/{self.uid}",
                "uid": int(self.uid),
                "login": self.login,
                "trackerUid": int(self.uid),
                "passportUid": int(self.uid),
                "display": self.display,
                "email": f"{self.login}@example.com",
                "external": False,
            }
        )


def user_by_login(login: str) -> FakeUser:
    """The fake's user for a login (``"robot"``: the default user) or a numeric user id."""
    found = USERS_BY_LOGIN.get(login)
    if found is None:
        if login in (ROBOT_LOGIN, ROBOT_UID):
            uid, name, display = ROBOT_UID, ROBOT_LOGIN, ROBOT_DISPLAY
        elif login.isascii() and login.isdigit():
            uid, name, display = login, f"user{login}", f"user{login}"
        else:
            uid, name, display = _uid("login:" + login), login, login
        ref = dumps({"self": f"{API_URL}/v2/users/{uid}", "id": uid, "display": display})
        found = USERS_BY_LOGIN[login] = FakeUser(uid, name, display, ref)
    return found


ROBOT: Final = user_by_login(ROBOT_LOGIN)
_ROBOT_REF: Final[dict[str, str]] = json.loads(ROBOT.ref_json)


def status_ref(key: str) -> tuple[dict[str, str], str]:
    """A status reference, as a dict and as JSON (shared, never mutated)."""
    found = _status_cache.get(key)
    if found is None:
        sid, display = _STATUSES.get(key, (str(10 + zlib.crc32(key.encode()) % 90), key))
        ref = {"self": f"{API_URL}/v2/statuses/{sid}", "id": sid, "key": key, "display": display}
        found = _status_cache[key] = (ref, dumps(ref))
    return found


# --- issues ---------------------------------------------------------------------------------


class IssueJSON:
    """The JSON pieces of one issue, rendered once: the link ``object`` per API version, the
    extra fields of a listed link's object, and the full issue."""

    __slots__ = ("_full", "_full_json", "extra", "key", "obj")

    def __init__(
        self,
        key: str,
        issue_id: str,
        queue: str,
        queue_id: int,
        summary: str,
        assignee: str | None,
        status: str,
        aliases: tuple[str, ...] = (),
    ) -> None:
        self.key = key
        # Keys and ids are validated ASCII; only the summary needs escaping.
        display = dumps(summary)
        self.obj = {
            v: f'{{"self":"{API_URL}/{v}/issues/{key}","id":"{issue_id}",'
            f'"key":"{key}","display":{display}}}'
            for v in VERSIONS
        }
        status_d, status_json = status_ref(status)
        extra = ""
        if assignee:
            extra += ',"assignee":' + user_ref(assignee)[1]
        self.extra = extra + ',"status":' + status_json
        full: dict[str, Any] = {
            "self": f"{API_URL}/v2/issues/{key}",
            "id": issue_id,
            "key": key,
            "version": 1,
            "summary": summary,
            "queue": {
                "self": f"{API_URL}/v2/queues/{queue}",
                "id": str(queue_id),
                "key": queue,
                "display": queue,
            },
            "status": status_d,
            "createdBy": _ROBOT_REF,
            "createdAt": ISSUE_STAMP,
            "updatedAt": ISSUE_STAMP,
        }
        if assignee:
            full["assignee"] = user_ref(assignee)[0]
        if aliases:
            full["aliases"] = list(aliases)
        self._full = full
        self._full_json: dict[str, str] = {}

    def full_json(self, version: str = "v2") -> str:
        found = self._full_json.get(version)
        if found is None:
            full = self._full
            if version != "v2":
                full = {**full, "self": f"{API_URL}/{version}/issues/{self.key}"}
            found = self._full_json[version] = dumps(full)
        return found

    def project(self, fields: tuple[str, ...] | None, version: str = "v2") -> str:
        if fields is None:
            return self.full_json(version)
        if fields == ("key",):
            return '{"key":"' + self.key + '"}'
        full = self._full
        return dumps({"key": self.key, **{f: full[f] for f in fields if f in full}})
