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
    "create_link",
    "create_request",
    "decode_answer",
    "decode_json",
    "delete_link",
    "error_for",
    "get_links",
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
]

T = TypeVar("T")

RETRYABLE_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


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


def get_links(issue: str) -> Request:
    """``GET /v2/issues/<issue>/links``."""
    return Request("GET", f"/v2/issues/{validate_key(issue)}/links")


def create_link(issue: str, target: str, relationship: Relationship | str) -> Request:
    """``POST /v2/issues/<issue>/links`` with ``{"relationship": …, "issue": target}``.

    Validates as :class:`LinkSpec` does: the same keys, relationships and self-link rule.
    """
    return create_request(LinkSpec(issue, target, relationship))


# The start of each create body, encoded once: the same bytes as json.dumps of the whole dict.
_CREATE_BODY: Final = {
    rel: ('{"relationship": ' + json.dumps(rel.value) + ', "issue": ').encode()
    for rel in Relationship
}


def create_request(spec: LinkSpec) -> Request:
    """The create request for an already validated :class:`LinkSpec` (no second check)."""
    body = _CREATE_BODY[spec.relationship] + json.dumps(spec.target).encode() + b"}"
    return Request("POST", f"/v2/issues/{spec.source}/links", body=body)


def delete_link(issue: str, link_id: int | str) -> Request:
    """``DELETE /v2/issues/<issue>/links/<link_id>``."""
    return Request("DELETE", f"/v2/issues/{validate_key(issue)}/links/{validate_link_id(link_id)}")


def link_types() -> Request:
    """``GET /v2/linktypes``."""
    return Request("GET", "/v2/linktypes")


def myself() -> Request:
    """``GET /v2/myself``: the token's own user."""
    return Request("GET", "/v2/myself")


_USER_ID_FIELDS: Final = ("uid", "login", "id", "trackerUid", "passportUid")


def user_ids(data: object) -> frozenset[str]:
    """Every id a user answered by ``/v2/myself`` may appear under in a ``createdBy`` ref."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object for the user, got {type(data).__name__}")
    return frozenset(str(data[k]) for k in _USER_ID_FIELDS if data.get(k) not in (None, ""))


def search_issues(body: Mapping[str, Any], params: Mapping[str, str | int]) -> Request:
    """``POST /v2/issues/_search`` with a ``filter``/``query``/``queue`` body."""
    return Request(
        "POST",
        "/v2/issues/_search",
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


def search_page(body: Mapping[str, Any], page: int) -> Request:
    """Page ``page`` (from 1) of a search, :data:`PER_PAGE` issues, keys only."""
    return search_issues(body, {"perPage": PER_PAGE, "page": page, "fields": "key"})


def search_scroll(
    body: Mapping[str, Any], scroll_id: str | None = None, token: str | None = None
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
    params["fields"] = "key"
    return search_issues(body, params)


def total_header(value: str | None) -> int | None:
    """An ``X-Total-Count``/``X-Total-Pages`` value as a number; ``None`` if absent or bad."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@attrs.frozen
class SearchPage:
    """One answer of ``_search``: the issue keys, and what its headers say about the rest."""

    keys: list[str]
    total: int | None = None  # X-Total-Count
    pages: int | None = None  # X-Total-Pages
    has_next: bool = False  # a Link: rel="next"
    scroll_id: str | None = None
    scroll_token: str | None = None


def search_page_of(data: Any, headers: Mapping[str, str]) -> SearchPage:
    """Read one search page (decoded JSON and headers); ``ValueError`` if it is malformed."""
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON array of issues, got {type(data).__name__}")
    keys: list[str] = []
    for issue in data:
        key = issue.get("key") if isinstance(issue, dict) else None
        if not isinstance(key, str):
            raise ValueError(f"an issue without a string key: {str(issue)[:100]}")
        keys.append(key)
    pages = total_header(headers.get("x-total-pages"))
    return SearchPage(
        keys,
        total=total_header(headers.get("x-total-count")),
        pages=pages if pages is not None and pages >= 0 else None,
        has_next="next" in parse_link_header(headers.get("link")),
        scroll_id=headers.get("x-scroll-id") or None,
        scroll_token=headers.get("x-scroll-token") or None,
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
