"""Sans-I/O protocol: build requests and decode answers. No sockets, no clocks, no sleeping.

Every function here is pure, so the whole wire format is tested on recorded payloads alone.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import attrs

from ._exceptions import (
    AuthError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TrackerError,
)
from ._models import LinkSpec, Relationship, validate_key, validate_link_id

__all__ = [
    "Request",
    "check_version",
    "create_link",
    "create_request",
    "decode_answer",
    "decode_json",
    "delete_link",
    "error_for",
    "get_links",
    "import_request",
    "issue_key",
    "issue_key_of",
    "link_types",
    "myself",
    "parse_link_header",
    "parse_retry_after",
    "search_body",
    "search_issues",
    "SearchPage",
    "search_page",
    "search_page_of",
    "search_scroll",
    "total_header",
    "write_request",
]

T = TypeVar("T")

RETRYABLE_STATUSES: Final = frozenset({429, 500, 502, 503, 504})

API_VERSIONS: Final = ("v2", "v3")
"""The API versions the library speaks; every path below starts with one (``/v2/…``)."""


def check_version(value: object) -> str:
    """``value`` if it is an API version the library speaks; raise otherwise."""
    if isinstance(value, str) and value in API_VERSIONS:
        return value
    raise InvalidInputError(
        f"invalid api_version {value!r}; expected one of: "
        + ", ".join(repr(v) for v in API_VERSIONS)
    )


@attrs.frozen
class Request:
    """One request to send: method, path below the base URL, query and an encoded JSON body."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None

    @property
    def idempotent(self) -> bool:
        """Whether re-sending after an unknown fate is harmless (all but creating a link)."""
        return self.method != "POST" or self.path.endswith("/_search")


def get_links(issue: str, version: str = "v2") -> Request:
    """``GET /v2/issues/<issue>/links`` (``version``: ``"v2"`` or ``"v3"``, as every builder)."""
    return Request("GET", f"/{version}/issues/{validate_key(issue)}/links")


def create_link(
    issue: str, target: str, relationship: Relationship | str, version: str = "v2"
) -> Request:
    """``POST /v2/issues/<issue>/links`` with ``{"relationship": …, "issue": target}``.

    Validates as :class:`LinkSpec` does: the same keys, relationships and self-link rule.
    """
    return create_request(LinkSpec(issue, target, relationship), version)


# The start of each create body, encoded once: the same bytes as json.dumps of the whole dict.
_CREATE_BODY: Final = {
    rel: ('{"relationship": ' + json.dumps(rel.value) + ', "issue": ').encode()
    for rel in Relationship
}


def create_request(spec: LinkSpec, version: str = "v2") -> Request:
    """The create request for an already validated :class:`LinkSpec` (no second check)."""
    body = _CREATE_BODY[spec.relationship] + json.dumps(spec.target).encode() + b"}"
    return Request("POST", f"/{version}/issues/{spec.source}/links", body=body)


_WIRE_NAMES: Final = {
    "created_at": "createdAt",
    "created_by": "createdBy",
    "updated_at": "updatedAt",
    "updated_by": "updatedBy",
}


def import_request(spec: LinkSpec, version: str = "v2") -> Request:
    """``POST /v2/issues/<source>/links/_import``: the create body plus the spec's history
    (``createdAt``, ``createdBy``, and ``updatedAt``/``updatedBy`` when given)."""
    body: dict[str, str | int] = {"relationship": spec.relationship.value, "issue": spec.target}
    for name, value in spec.history.items():
        body[_WIRE_NAMES[name]] = value
    return Request(
        "POST", f"/{version}/issues/{spec.source}/links/_import", body=json.dumps(body).encode()
    )


def write_request(spec: LinkSpec, version: str = "v2") -> Request:
    """The request that makes ``spec``'s link: the import when it has a history, else create."""
    if spec.created_at is None:
        return create_request(spec, version)
    return import_request(spec, version)


def delete_link(issue: str, link_id: int | str, version: str = "v2") -> Request:
    """``DELETE /v2/issues/<issue>/links/<link_id>``."""
    return Request(
        "DELETE", f"/{version}/issues/{validate_key(issue)}/links/{validate_link_id(link_id)}"
    )


def link_types(version: str = "v2") -> Request:
    """``GET /v2/linktypes``."""
    return Request("GET", f"/{version}/linktypes")


def issue_key(issue: str, version: str = "v2") -> Request:
    """``GET /v2/issues/<issue>?fields=key,aliases``: the issue's current key (it may have
    moved: its old key stays an alias)."""
    return Request(
        "GET", f"/{version}/issues/{validate_key(issue)}", params=(("fields", "key,aliases"),)
    )


def issue_key_of(data: object) -> str:
    """The ``key`` of an issue's JSON."""
    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        raise ValueError("expected a JSON object with the issue's key")
    return str(data["key"])


def myself(version: str = "v2") -> Request:
    """``GET /v2/myself``: the token's own user."""
    return Request("GET", f"/{version}/myself")


_USER_ID_FIELDS: Final = ("uid", "login", "id", "trackerUid", "passportUid")


def user_ids(data: object) -> frozenset[str]:
    """Every id a user answered by ``/v2/myself`` may appear under in a ``createdBy`` ref."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object for the user, got {type(data).__name__}")
    return frozenset(str(data[k]) for k in _USER_ID_FIELDS if data.get(k) not in (None, ""))


def search_issues(
    body: Mapping[str, Any], params: Mapping[str, str | int], version: str = "v2"
) -> Request:
    """``POST /v2/issues/_search`` with a ``filter``/``query``/``queue`` body."""
    return Request(
        "POST",
        f"/{version}/issues/_search",
        params=tuple((k, str(v)) for k, v in params.items()),
        body=json.dumps(body).encode(),
    )


# --- search paging ----------------------------------------------------------------------------

# Page size (the service's documented maximum in page mode is 100), scroll size, and the point
# past which the service asks clients to scroll instead of paging.
PER_PAGE: Final = 100
PER_SCROLL: Final = 1000
SCROLL_ABOVE = 10_000
_SCROLL_TTL_MS: Final = 60_000

_QUEUE_RE: Final = re.compile(r"[A-Z][A-Z0-9_]*")
SEARCH_FIELDS: Final = "key,aliases"
"""The fields a search asks of each issue: its key, and its former keys if it was moved."""


def search_body(
    queue: str | None = None,
    *,
    query: str | None = None,
    filter: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``_search`` body for exactly one of a queue key, a query, or a filter; validated."""
    given = [name for name, v in (("queue", queue), ("query", query), ("filter", filter)) if v]
    if len(given) != 1:
        raise InvalidInputError(
            "give exactly one of queue, query= or filter= to enumerate issues; got "
            + (", ".join(given) or "none")
        )
    if queue is not None:
        if not isinstance(queue, str) or not _QUEUE_RE.fullmatch(queue):
            raise InvalidInputError(f"invalid queue {queue!r}; expected a queue key like 'PROJ'")
        return {"filter": {"queue": queue}}
    if query is not None:
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a string, got {query!r}")
        return {"query": query}
    if not isinstance(filter, Mapping):
        raise InvalidInputError(f"filter must be a mapping, got {filter!r}")
    return {"filter": dict(filter)}


def search_page(body: Mapping[str, Any], page: int, version: str = "v2") -> Request:
    """Page ``page`` (from 1) of a search, :data:`PER_PAGE` issues: their keys and aliases."""
    params: dict[str, str | int] = {"perPage": PER_PAGE, "page": page, "fields": SEARCH_FIELDS}
    return search_issues(body, params, version)


def search_scroll(
    body: Mapping[str, Any],
    scroll_id: str | None = None,
    token: str | None = None,
    version: str = "v2",
) -> Request:
    """The first scroll request of a search (no ``scroll_id``), or the next one."""
    params: dict[str, str | int]
    if scroll_id is None:
        params = {"scrollType": "unsorted", "perScroll": PER_SCROLL}
    else:
        params = {"scrollId": scroll_id}
        if token:
            params["scrollToken"] = token
    params["scrollTTLMillis"] = _SCROLL_TTL_MS
    params["fields"] = SEARCH_FIELDS
    return search_issues(body, params, version)


def total_header(value: str | None) -> int | None:
    """An ``X-Total-Count``/``X-Total-Pages`` value as a number; ``None`` if absent or bad."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@attrs.frozen
class SearchPage:
    """One answer of ``_search``: the issue keys, and what its headers say about the rest.

    ``moved`` lists ``(key, former keys)`` for the issues whose ``aliases`` show a move.
    """

    keys: list[str]
    total: int | None = None  # X-Total-Count
    pages: int | None = None  # X-Total-Pages
    has_next: bool = False  # a Link: rel="next"
    scroll_id: str | None = None
    scroll_token: str | None = None
    moved: tuple[tuple[str, tuple[str, ...]], ...] = ()


def search_page_of(data: Any, headers: Mapping[str, str]) -> SearchPage:
    """Read one search page (decoded JSON and headers); ``ValueError`` if it is malformed."""
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON array of issues, got {type(data).__name__}")
    keys: list[str] = []
    moved: list[tuple[str, tuple[str, ...]]] = []
    for issue in data:
        key = issue.get("key") if isinstance(issue, dict) else None
        if not isinstance(key, str):
            raise ValueError(f"an issue without a string key: {str(issue)[:100]}")
        keys.append(key)
        aliases = issue.get("aliases")  # its former keys, when it was moved
        if aliases and isinstance(aliases, list):
            former = tuple(str(a) for a in aliases if a)
            if former:
                moved.append((key, former))
    pages = total_header(headers.get("x-total-pages"))
    return SearchPage(
        keys,
        total=total_header(headers.get("x-total-count")),
        pages=pages if pages is not None and pages >= 0 else None,
        has_next="next" in parse_link_header(headers.get("link")),
        scroll_id=headers.get("x-scroll-id") or None,
        scroll_token=headers.get("x-scroll-token") or None,
        moved=tuple(moved),
    )


def decode_json(content: bytes) -> Any:
    """The JSON of an answer; ``ValueError`` if it is not JSON."""
    return json.loads(content)


def decode_answer(
    req: Request,
    status: int,
    content: bytes,
    fn: Callable[[Any], T],
    what: str,
    base_url: str,
) -> T:
    """``fn`` of an answer's JSON; anything malformed is a :class:`TrackerError` naming the
    request (method, URL) and the status, never a ``KeyError``/``TypeError``/``ValueError``."""
    try:
        return fn(json.loads(content))
    except Exception as exc:  # a malformed answer is a protocol error, not a crash
        raise TrackerError(
            f"malformed answer: could not read the {what}: {type(exc).__name__}: {exc}"[:500],
            status_code=status,
            method=req.method,
            url=base_url + req.path,
        ) from exc


def _messages(content: bytes) -> list[str]:
    """``errorMessages`` plus ``errors`` of an error body; parsed defensively (429s may be HTML)."""
    try:
        data = json.loads(content) if content else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        text = content[:200].decode("utf-8", "replace").strip()
        return [text] if text else []
    out = [str(m) for m in data.get("errorMessages") or () if m]
    errors = data.get("errors")
    if isinstance(errors, dict):
        out.extend(f"{field}: {msg}" for field, msg in errors.items())
    return out


_ERROR_CLASSES: Final[dict[int, type[TrackerError]]] = {
    400: InvalidInputError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    422: ConflictError,
    429: RateLimitError,
}

_DEFAULT_TEXT: Final[dict[int, str]] = {
    400: "the service refused the request as invalid",
    401: "not authorized: the token is missing, malformed or expired",
    403: "forbidden: the token lacks the rights, or the organization header is wrong",
    404: "not found",
    409: "conflict",
    422: "the service refused the request (unprocessable)",
    429: "rate limited by the service",
}


def error_for(
    status: int,
    content: bytes,
    *,
    method: str,
    url: str,
    retry_after: float | None = None,
) -> TrackerError:
    """The exception for an error answer; 5xx -> :class:`ServerError`, others -> base class."""
    messages = _messages(content)
    cls = _ERROR_CLASSES.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else TrackerError
    text = "; ".join(messages) or _DEFAULT_TEXT.get(status, "unexpected answer")
    kwargs: dict[str, Any] = {
        "status_code": status,
        "messages": messages,
        "method": method,
        "url": url,
    }
    if cls is RateLimitError:
        return RateLimitError(text, retry_after=retry_after, **kwargs)
    return cls(text, **kwargs)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    ``now`` is the current Unix time (used only for the date form). Returns ``None`` when the
    header is absent or unreadable; never a negative number.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # "inf"/"nan" would freeze the shared cool-down (and so the whole client) for good.
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


_LINK_PART: Final = re.compile(r'<([^>]*)>\s*;\s*rel="?([^";]+)"?')


def parse_link_header(value: str | None) -> dict[str, str]:
    """``Link: <u1>; rel="next", <u2>; rel="first"`` -> ``{"next": "u1", "first": "u2"}``."""
    if not value:
        return {}
    return {rel: url for url, rel in _LINK_PART.findall(value)}
