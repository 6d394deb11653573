"""The sans-I/O protocol: requests built, errors mapped, headers parsed. No I/O at all."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable
from typing import Any

import pytest

from tracker_links import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    RateLimitError,
    Relationship,
    ServerError,
    TrackerError,
)
from tracker_links import _protocol as p

from .helpers import NOT_RETRIED

URL = "https://api.tracker.yandex.net/v2/issues/TEST-1/links"


def error_body(*messages: str, errors: dict[str, str] | None = None, status: int = 400) -> bytes:
    return json.dumps(
        {"errors": errors or {}, "errorMessages": list(messages), "statusCode": status}
    ).encode()


# --- requests ------------------------------------------------------------------------------


def test_get_links_request() -> None:
    req = p.get_links("TEST-1")
    assert (req.method, req.path, req.params, req.body) == (
        "GET",
        "/v2/issues/TEST-1/links",
        (),
        None,
    )
    assert req.idempotent
    assert p.get_links("4ff3e8dae4b0e2ac27f6eb43").path == (
        "/v2/issues/4ff3e8dae4b0e2ac27f6eb43/links"
    )


@pytest.mark.parametrize("rel", [Relationship.DEPENDS_ON, "depends on", "DEPENDS_ON"])
def test_create_link_request(rel: Relationship | str) -> None:
    req = p.create_link("TEST-1", "TREK-2", rel)
    assert req.method == "POST"
    assert req.path == "/v2/issues/TEST-1/links"
    assert req.params == ()
    assert req.body is not None
    assert json.loads(req.body) == {"relationship": "depends on", "issue": "TREK-2"}
    assert not req.idempotent  # a create must never be re-sent blindly


def test_create_link_body_for_every_relationship() -> None:
    for rel in Relationship:
        req = p.create_link("A-1", "4ff3e8dae4b0e2ac27f6eb43", rel)
        assert req.body is not None
        assert json.loads(req.body) == {
            "relationship": rel.value,
            "issue": "4ff3e8dae4b0e2ac27f6eb43",
        }


@pytest.mark.parametrize("link_id", [1048570, "1048570"])
def test_delete_link_request(link_id: int | str) -> None:
    req = p.delete_link("TEST-1", link_id)
    assert (req.method, req.path, req.body) == ("DELETE", "/v2/issues/TEST-1/links/1048570", None)
    assert req.idempotent


def test_link_types_request() -> None:
    req = p.link_types()
    assert (req.method, req.path, req.body) == ("GET", "/v2/linktypes", None)


BAD_KEYS: list[Any] = ["", "test-1", "TEST-0", "TEST-1/../x", "TEST-1?x", "TEST 1", None, 5]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_no_request_is_built_for_a_bad_key(key: Any) -> None:
    builds: list[Callable[[], p.Request]] = [
        lambda: p.get_links(key),
        lambda: p.create_link(key, "A-2", "relates"),
        lambda: p.create_link("A-2", key, "relates"),
        lambda: p.delete_link(key, 1),
    ]
    for build in builds:
        with pytest.raises(InvalidInputError) as info:
            build()
        assert repr(key) in str(info.value)


def test_no_request_is_built_for_a_self_link_or_unknown_relationship() -> None:
    with pytest.raises(InvalidInputError, match="TEST-1"):
        p.create_link("TEST-1", "TEST-1", "relates")
    with pytest.raises(InvalidInputError, match="'blocks'"):
        p.create_link("TEST-1", "TEST-2", "blocks")


@pytest.mark.parametrize(
    "link_id", ["", "12a", "-1", -1, "1.0", 1.5, True, " 1", "1/2", "1?x", None, "١٢"]
)
def test_no_request_is_built_for_a_bad_link_id(link_id: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        p.delete_link("TEST-1", link_id)
    assert isinstance(info.value, ValueError)
    assert repr(link_id) in str(info.value)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        *NOT_RETRIED,
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (599, ServerError),
    ],
)
def test_error_for_maps_each_status(status: int, cls: type[TrackerError]) -> None:
    body = error_body("Issue TEST-1 is locked", status=status)
    err = p.error_for(status, body, method="POST", url=URL)
    assert type(err) is cls
    assert err.status_code == status
    assert err.messages == ("Issue TEST-1 is locked",)
    assert err.method == "POST"
    assert err.url == URL
    assert "Issue TEST-1 is locked" in str(err)
    assert str(status) in str(err)
    assert URL in str(err)


@pytest.mark.parametrize("status", [412, 423, 428, 418])
def test_error_for_other_statuses_is_a_tracker_error(status: int) -> None:
    err = p.error_for(status, error_body("nope"), method="GET", url=URL)
    assert isinstance(err, TrackerError)
    assert not isinstance(err, (ServerError, ConflictError, InvalidInputError))
    assert err.status_code == status
    assert err.messages == ("nope",)


def test_error_for_400_is_also_a_value_error() -> None:
    err = p.error_for(400, error_body("bad relationship"), method="POST", url=URL)
    assert isinstance(err, ValueError)


def test_error_messages_include_field_errors() -> None:
    body = error_body("Validation failed", errors={"issue": "Issue not found"}, status=422)
    err = p.error_for(422, body, method="POST", url=URL)
    assert err.messages == ("Validation failed", "issue: Issue not found")
    assert "Validation failed" in str(err)
    assert "issue: Issue not found" in str(err)


def test_error_for_empty_error_messages_uses_a_default_text() -> None:
    err = p.error_for(404, error_body(status=404), method="GET", url=URL)
    assert isinstance(err, NotFoundError)
    assert err.messages == ()
    assert str(err).strip() != ""
    assert "404" in str(err)


@pytest.mark.parametrize(
    "content",
    [
        b"<html><body><h1>429 Too Many Requests</h1></body></html>",
        b"",
        b"Too Many Requests",
        b"\xff\xfe\x00garbage",
        b"[1, 2]",
        b'"just a string"',
        b"null",
        b"{not json",
    ],
)
def test_error_for_non_json_bodies(content: bytes) -> None:
    err = p.error_for(429, content, method="GET", url=URL, retry_after=3.0)
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 3.0
    assert err.status_code == 429
    assert all(isinstance(m, str) for m in err.messages)
    assert str(err)


def test_error_for_html_body_keeps_a_short_text() -> None:
    html = b"<html>" + b"x" * 10_000 + b"</html>"
    err = p.error_for(503, html, method="GET", url=URL)
    assert isinstance(err, ServerError)
    assert len(str(err)) < 1000


def test_rate_limit_error_without_retry_after() -> None:
    err = p.error_for(429, error_body("slow down"), method="GET", url=URL)
    assert isinstance(err, RateLimitError)
    assert err.retry_after is None


# --- Retry-After ---------------------------------------------------------------------------

NOW = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("5", 5.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:29:00 GMT", 60.0),
        (email.utils.formatdate(NOW + 7, usegmt=True), 7.0),
    ],
)
def test_parse_retry_after(value: str, expected: float) -> None:
    assert p.parse_retry_after(value, NOW) == pytest.approx(expected)


def test_parse_retry_after_date_uses_the_injected_now() -> None:
    value = "Wed, 21 Oct 2015 07:28:30 GMT"
    assert p.parse_retry_after(value, NOW) == pytest.approx(30.0)
    assert p.parse_retry_after(value, NOW + 20) == pytest.approx(10.0)


@pytest.mark.parametrize(
    "value", [None, "", "soon", "5s", "0x10", "Wed, 99 Foo 2015", "inf", "nan", "-inf", "1e400"]
)
def test_parse_retry_after_garbage_is_none(value: str | None) -> None:
    assert p.parse_retry_after(value, NOW) is None


@pytest.mark.parametrize("value", ["-5", "-0.5", "Wed, 21 Oct 2015 07:27:00 GMT"])
def test_parse_retry_after_is_never_negative(value: str) -> None:
    result = p.parse_retry_after(value, NOW)
    assert result is not None
    assert result == 0.0


# --- Link header ---------------------------------------------------------------------------


def test_parse_link_header() -> None:
    value = (
        '<https://api.tracker.yandex.net/v2/issues?page=2&perPage=50>; rel="next", '
        '<https://api.tracker.yandex.net/v2/issues?page=1&perPage=50>; rel="first"'
    )
    assert p.parse_link_header(value) == {
        "next": "https://api.tracker.yandex.net/v2/issues?page=2&perPage=50",
        "first": "https://api.tracker.yandex.net/v2/issues?page=1&perPage=50",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {}),
        ("", {}),
        ("garbage", {}),
        ("<https://x/a>; rel=next", {"next": "https://x/a"}),
        ('<https://x/a?b=1,2>;rel="next"', {"next": "https://x/a?b=1,2"}),
        (
            '<https://x/s?id=1>; rel="seek", <https://x/n>; rel="next"',
            {"seek": "https://x/s?id=1", "next": "https://x/n"},
        ),
    ],
)
def test_parse_link_header_variants(value: str | None, expected: dict[str, str]) -> None:
    assert p.parse_link_header(value) == expected
