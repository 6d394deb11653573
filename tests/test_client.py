"""TrackerClient over respx: configuration, headers, errors, retries, cool-down, secrets, logs.

Every async test runs on asyncio and on trio. Nothing really waits: the client gets a fake
``sleep`` that records the wait and moves a fake ``clock`` forward instead.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
import respx

from tracker_links import (
    AuthError,
    InvalidInputError,
    LinkType,
    NotFoundError,
    RateLimitError,
    Relationship,
    RetryPolicy,
    ServerError,
    TrackerClient,
    TrackerError,
    TransportError,
)

from .helpers import BASE, NOT_RETRIED, FakeTime, error

pytestmark = pytest.mark.anyio

TOKEN = "y0_AgAAAAB-secret-oauth-token-4f9c1e"
IAM = "t1.9euelZq-secret-iam-token-77aa01"
LINKS = "/v2/issues/TEST-1/links"
ERROR = {"errors": {}, "errorMessages": ["Something is wrong"], "statusCode": 0}


def make_client(ft: FakeTime, router: respx.MockRouter | None, **kwargs: Any) -> TrackerClient:
    """A client that does not wait; with ``router``, its own httpx client sends to respx.

    (Handing respx's handler in as the transport skips building an SSL context, 40 ms per
    client; the tests without ``router`` go through httpx's default transport, patched by
    ``respx.mock``.)
    """
    if router is not None and "http_client" not in kwargs and "transport" not in kwargs:
        kwargs["transport"] = httpx.MockTransport(router.async_handler)
    kwargs.setdefault("org_id", "7654321")
    if "iam_token" not in kwargs:
        kwargs.setdefault("token", TOKEN)
    return TrackerClient(sleep=ft.sleep, clock=ft.clock, **kwargs)


def link_json(link_id: int = 1048570, target: str = "TEST-2") -> dict[str, Any]:
    return {
        "self": f"{BASE}/v2/issues/TEST-1/links/{link_id}",
        "id": link_id,
        "type": {"self": f"{BASE}/v2/linktypes/depends", "id": "depends"},
        "direction": "outward",
        "object": {"self": f"{BASE}/v2/issues/{target}", "key": target, "display": "x"},
        "createdAt": "2014-06-18T12:06:02.401+0000",
    }


# --- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"org_id": "1"}, ["token", "iam_token", "neither"]),
        ({"token": "", "org_id": "1"}, ["token", "neither"]),
        ({"token": "a", "iam_token": "b", "org_id": "1"}, ["token", "iam_token"]),
        ({"token": "a"}, ["org_id", "cloud_org_id", "neither"]),
        ({"token": "a", "org_id": "1", "cloud_org_id": "2"}, ["org_id", "cloud_org_id"]),
        ({"token": "a", "org_id": "1", "base_url": "http://api.tracker.yandex.net"}, ["https"]),
        ({"token": "a", "org_id": "1", "base_url": "http://10.0.0.1:8080"}, ["https"]),
        ({"token": "a", "org_id": "1", "base_url": "http://localhost.evil.com"}, ["https"]),
        ({"token": "a", "org_id": "1", "base_url": "http://127.0.0.1.nip.io"}, ["https"]),
        ({"token": "a", "org_id": "1", "base_url": "ftp://api.tracker.yandex.net"}, ["https"]),
        ({"token": "a", "org_id": "1", "base_url": "api.tracker.yandex.net"}, ["https"]),
        ({"token": "a", "org_id": "1", "max_concurrency": 0}, ["max_concurrency"]),
        ({"token": "a", "org_id": "1", "max_concurrency": -3}, ["max_concurrency"]),
        ({"token": "a", "org_id": "1", "rate_limit": 0}, ["rate_limit"]),
    ],
)
def test_construction_errors(
    mock: respx.MockRouter, kwargs: dict[str, Any], words: list[str]
) -> None:
    catch_all = mock.route().respond(200)
    with pytest.raises(InvalidInputError) as info:
        TrackerClient(**kwargs)
    assert isinstance(info.value, ValueError)
    for word in words:
        assert word in str(info.value)
    assert not catch_all.called


def test_construction_error_never_shows_the_token() -> None:
    with pytest.raises(InvalidInputError) as info:
        TrackerClient(TOKEN, iam_token=IAM, org_id="1")
    assert TOKEN not in str(info.value)
    assert IAM not in str(info.value)
    with pytest.raises(InvalidInputError) as info:
        TrackerClient(TOKEN, org_id="1", base_url="http://example.com")
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1",
        "http://127.0.0.1:8080",
        "http://localhost",
        "http://localhost:8000/",
        "http://[::1]:8080",
        "https://api.tracker.yandex.net",
        "https://tracker.example.com/",
    ],
)
async def test_allowed_base_urls(ft: FakeTime, base_url: str) -> None:
    with respx.mock(base_url=base_url.rstrip("/")) as router:
        route = router.get(LINKS).respond(200, json=[])
        async with make_client(ft, None, base_url=base_url) as client:
            assert await client.links.get("TEST-1") == []
        assert route.call_count == 1
        assert route.calls.last.request.url == httpx.URL(base_url.rstrip("/") + LINKS)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "TRACKER_TOKEN",
        "TRACKER_IAM_TOKEN",
        "TRACKER_ORG_ID",
        "TRACKER_CLOUD_ORG_ID",
        "TRACKER_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def sent_headers(client: TrackerClient, router: respx.MockRouter) -> httpx.Headers:
    route = router.get(LINKS).respond(200, json=[])
    async with client:
        await client.links.get("TEST-1")
    return route.calls.last.request.headers


async def test_from_env(clean_env: pytest.MonkeyPatch, ft: FakeTime) -> None:
    clean_env.setenv("TRACKER_TOKEN", TOKEN)
    clean_env.setenv("TRACKER_ORG_ID", "42")
    clean_env.setenv("TRACKER_BASE_URL", "http://127.0.0.1:9999")
    with respx.mock(base_url="http://127.0.0.1:9999") as router:
        headers = await sent_headers(TrackerClient.from_env(sleep=ft.sleep, clock=ft.clock), router)
    assert headers["Authorization"] == f"OAuth {TOKEN}"
    assert headers["X-Org-ID"] == "42"
    assert "X-Cloud-Org-ID" not in headers


async def test_from_env_cloud_org_and_iam(clean_env: pytest.MonkeyPatch, ft: FakeTime) -> None:
    clean_env.setenv("TRACKER_IAM_TOKEN", IAM)
    clean_env.setenv("TRACKER_CLOUD_ORG_ID", "bpf-cloud")
    with respx.mock(base_url=BASE) as router:
        headers = await sent_headers(TrackerClient.from_env(), router)
    assert headers["Authorization"] == f"Bearer {IAM}"
    assert headers["X-Cloud-Org-ID"] == "bpf-cloud"
    assert "X-Org-ID" not in headers


async def test_from_env_overrides_replace_both_env_values(
    clean_env: pytest.MonkeyPatch, ft: FakeTime
) -> None:
    clean_env.setenv("TRACKER_TOKEN", "env-token")
    clean_env.setenv("TRACKER_ORG_ID", "42")
    clean_env.setenv("TRACKER_BASE_URL", "http://127.0.0.1:9999")
    # An IAM token given here replaces the environment's OAuth token (not "both given").
    client = TrackerClient.from_env(iam_token=IAM, cloud_org_id="c1", base_url=BASE)
    with respx.mock(base_url=BASE) as router:
        headers = await sent_headers(client, router)
    assert headers["Authorization"] == f"Bearer {IAM}"
    assert headers["X-Cloud-Org-ID"] == "c1"
    assert "X-Org-ID" not in headers


def test_from_env_without_credentials(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInputError, match="token"):
        TrackerClient.from_env()
    clean_env.setenv("TRACKER_TOKEN", TOKEN)
    with pytest.raises(InvalidInputError, match="org_id"):
        TrackerClient.from_env()
    clean_env.setenv("TRACKER_ORG_ID", "1")
    clean_env.setenv("TRACKER_CLOUD_ORG_ID", "2")
    with pytest.raises(InvalidInputError, match="org_id"):
        TrackerClient.from_env()
    with pytest.raises(InvalidInputError, match="https"):
        TrackerClient.from_env(org_id="1", base_url="http://example.com")


# --- headers and body ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "authorization", "org_header", "other_header"),
    [
        (
            {"token": TOKEN, "org_id": "123"},
            f"OAuth {TOKEN}",
            ("X-Org-ID", "123"),
            "X-Cloud-Org-ID",
        ),
        (
            {"iam_token": IAM, "cloud_org_id": "bpf1"},
            f"Bearer {IAM}",
            ("X-Cloud-Org-ID", "bpf1"),
            "X-Org-ID",
        ),
        (
            {"token": TOKEN, "cloud_org_id": "c"},
            f"OAuth {TOKEN}",
            ("X-Cloud-Org-ID", "c"),
            "X-Org-ID",
        ),
    ],
)
@pytest.mark.parametrize("own_http", [True, False])
async def test_headers(
    mock: respx.MockRouter,
    ft: FakeTime,
    kwargs: dict[str, Any],
    authorization: str,
    org_header: tuple[str, str],
    other_header: str,
    own_http: bool,
) -> None:
    get = mock.get(LINKS).respond(200, json=[])
    post = mock.post(LINKS).respond(201, json=link_json())
    http = (
        None if own_http else httpx.AsyncClient(transport=httpx.MockTransport(mock.async_handler))
    )
    async with TrackerClient(sleep=ft.sleep, clock=ft.clock, http_client=http, **kwargs) as c:
        await c.links.get("TEST-1")
        await c.links.create("TEST-1", "TEST-2", Relationship.DEPENDS_ON)
    if http is not None:
        await http.aclose()
    for route in (get, post):
        headers = route.calls.last.request.headers
        assert headers["Authorization"] == authorization
        assert headers[org_header[0]] == org_header[1]
        assert other_header not in headers
    request = post.calls.last.request
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"relationship": "depends on", "issue": "TEST-2"}


# --- status -> exception ---------------------------------------------------------------------


@pytest.mark.parametrize(("status", "cls"), NOT_RETRIED)
async def test_status_to_exception_without_retry(
    mock: respx.MockRouter, ft: FakeTime, status: int, cls: type[TrackerError]
) -> None:
    route = mock.get(LINKS).mock(return_value=error(status, f"the service says {status}"))
    async with make_client(ft, mock) as client:
        with pytest.raises(cls) as info:
            await client.links.get("TEST-1")
    exc = info.value
    assert type(exc) is cls
    assert exc.status_code == status
    assert exc.messages == (f"the service says {status}",)
    assert exc.method == "GET"
    assert exc.url == BASE + LINKS
    assert f"the service says {status}" in str(exc)
    assert route.call_count == 1  # not retried
    assert ft.sleeps == []


@pytest.mark.parametrize(
    ("status", "cls"), [(429, RateLimitError), (500, ServerError), (502, ServerError)]
)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_retryable_status_exhausted(
    mock: respx.MockRouter, ft: FakeTime, status: int, cls: type[TrackerError], method: str
) -> None:
    path = LINKS if method == "GET" else LINKS + "/77"
    route = mock.route(method=method, path=path).mock(return_value=error(status, "busy"))
    if method == "DELETE":  # the safe delete looks before each retry: the link is still there
        mock.get(LINKS).respond(200, json=[link_json(77)])
    async with make_client(ft, mock, retry=RetryPolicy(attempts=4)) as client:
        call = client.links.get("TEST-1") if method == "GET" else client.links.delete("TEST-1", 77)
        with pytest.raises(cls) as info:
            await call
    assert route.call_count == 4  # attempts counts the first try
    exc = info.value
    assert exc.status_code == status
    assert exc.messages == ("busy",)
    assert exc.method == method
    assert exc.url == BASE + path
    assert "4 attempts" in str(exc)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_on_get_is_retried_then_succeeds(
    mock: respx.MockRouter, ft: FakeTime, status: int
) -> None:
    route = mock.get(LINKS).mock(
        side_effect=[error(status), error(status), httpx.Response(200, json=[link_json()])]
    )
    async with make_client(ft, mock) as client:
        links = await client.links.get("TEST-1")
    assert [link.id for link in links] == [1048570]
    assert route.call_count == 3
    # Full-jitter backoff: retry n waits at most backoff_base * 2**(n-1).
    assert len(ft.waits) == 2
    assert 0.0 <= ft.waits[0] <= 0.25
    assert 0.0 <= ft.waits[1] <= 0.5


async def test_5xx_backoff_is_capped(mock: respx.MockRouter, ft: FakeTime) -> None:
    route = mock.get(LINKS).mock(return_value=error(503))
    policy = RetryPolicy(attempts=8, backoff_base=1.0, backoff_cap=2.0, deadline=1000.0)
    async with make_client(ft, mock, retry=policy) as client:
        with pytest.raises(ServerError):
            await client.links.get("TEST-1")
    assert route.call_count == 8
    assert len(ft.waits) == 7
    assert all(0.0 <= w <= 2.0 for w in ft.waits)


async def test_deadline_bounds_the_retrying(mock: respx.MockRouter, ft: FakeTime) -> None:
    route = mock.get(LINKS).mock(return_value=error(429, **{"Retry-After": "3"}))
    policy = RetryPolicy(attempts=50, deadline=5.0)
    async with make_client(ft, mock, retry=policy) as client:
        with pytest.raises(RateLimitError):
            await client.links.get("TEST-1")
    # t=0: 429, wait 3 -> t=3: 429, and 3 + 3 > 5: give up.
    assert route.call_count == 2
    assert ft.now <= 5.0


# --- 429 ---------------------------------------------------------------------------------------


async def test_429_with_retry_after_waits_then_succeeds(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    sent_at: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent_at.append(ft.now)
        if len(sent_at) == 1:
            return error(429, "Too many requests", **{"Retry-After": "2"})
        return httpx.Response(200, json=[])

    route = mock.get(LINKS).mock(side_effect=answer)
    async with make_client(ft, mock) as client:
        assert await client.links.get("TEST-1") == []
    assert route.call_count == 2
    assert sent_at[0] == 0.0
    assert sent_at[1] >= 2.0
    assert 2.0 in ft.waits


async def test_429_with_an_http_date_retry_after(mock: respx.MockRouter, ft: FakeTime) -> None:
    sent_at: list[float] = []
    when = email.utils.formatdate(time.time() + 30, usegmt=True)

    def answer(request: httpx.Request) -> httpx.Response:
        sent_at.append(ft.now)
        if len(sent_at) == 1:
            return error(429, **{"Retry-After": when})
        return httpx.Response(200, json=[])

    mock.get(LINKS).mock(side_effect=answer)
    async with make_client(ft, mock) as client:
        await client.links.get("TEST-1")
    assert len(sent_at) == 2
    assert 27.0 <= sent_at[1] <= 31.0


async def test_429_without_retry_after_is_retried(mock: respx.MockRouter, ft: FakeTime) -> None:
    route = mock.get(LINKS).mock(
        side_effect=[
            httpx.Response(429, text="<html><body>429 Too Many Requests</body></html>"),
            httpx.Response(200, json=[]),
        ]
    )
    async with make_client(ft, mock) as client:
        assert await client.links.get("TEST-1") == []
    assert route.call_count == 2
    # No Retry-After: the client's own guess of a cool-down (1 s until it proves too short).
    assert ft.waits == [pytest.approx(1.0)]


async def test_429_exhausted_raises_rate_limit_error(mock: respx.MockRouter, ft: FakeTime) -> None:
    route = mock.get(LINKS).mock(return_value=error(429, "slow down", **{"Retry-After": "1"}))
    async with make_client(ft, mock, retry=RetryPolicy(attempts=3)) as client:
        with pytest.raises(RateLimitError) as info:
            await client.links.get("TEST-1")
    assert route.call_count == 3
    assert info.value.retry_after == 1.0
    assert info.value.status_code == 429
    assert info.value.messages == ("slow down",)
    assert ft.now >= 2.0  # waited out both Retry-Afters


async def test_429_with_html_body_exhausted(mock: respx.MockRouter, ft: FakeTime) -> None:
    mock.get(LINKS).respond(429, text="<html>Too Many Requests</html>")
    async with make_client(ft, mock, retry=RetryPolicy(attempts=2)) as client:
        with pytest.raises(RateLimitError) as info:
            await client.links.get("TEST-1")
    assert info.value.retry_after is None
    assert info.value.status_code == 429


async def test_429_on_create_is_resent_without_a_check(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    # A 429 proves nothing was written: the create is simply sent again.
    post = mock.post(LINKS).mock(
        side_effect=[error(429, **{"Retry-After": "1"}), httpx.Response(201, json=link_json())]
    )
    get = mock.get(LINKS).respond(200, json=[])
    async with make_client(ft, mock) as client:
        link = await client.links.create("TEST-1", "TEST-2", "depends on")
    assert link.id == 1048570
    assert post.call_count == 2
    assert get.call_count == 0


# --- shared cool-down --------------------------------------------------------------------------


async def test_cooldown_holds_a_subsequent_request(mock: respx.MockRouter, ft: FakeTime) -> None:
    sent: list[tuple[str, float]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.path, ft.now))
        if request.url.path == LINKS:
            return error(429, **{"Retry-After": "5"})
        return httpx.Response(200, json=[])

    mock.get(path__startswith="/v2/issues/").mock(side_effect=answer)
    async with make_client(ft, mock, retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(RateLimitError):
            await client.links.get("TEST-1")
        assert ft.sleeps == []
        # Another issue, another call: it still waits for the cool-down.
        await client.links.get("OTHER-9")
    assert sent == [(LINKS, 0.0), ("/v2/issues/OTHER-9/links", 5.0)]
    assert ft.waits == [5.0]


async def test_cooldown_holds_concurrent_requests(mock: respx.MockRouter, ft: FakeTime) -> None:
    sent: list[tuple[str, float]] = []
    got_429 = anyio.Event()

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        sent.append((path, ft.now))
        if path == LINKS and not got_429.is_set():
            got_429.set()
            return error(429, **{"Retry-After": "3"})
        return httpx.Response(200, json=[])

    mock.get(path__startswith="/v2/issues/").mock(side_effect=answer)
    async with make_client(ft, mock, max_concurrency=8) as client:

        async def first() -> None:
            await client.links.get("TEST-1")

        async def others(key: str) -> None:
            await got_429.wait()
            await client.links.get(key)

        async with anyio.create_task_group() as tg:
            tg.start_soon(first, name="first")
            for key in ("B-1", "C-1", "D-1"):
                tg.start_soon(others, key, name=key)

    times = dict(sent[1:])
    assert sent[0] == (LINKS, 0.0)
    assert set(times) == {
        LINKS,
        "/v2/issues/B-1/links",
        "/v2/issues/C-1/links",
        "/v2/issues/D-1/links",
    }
    assert all(t >= 3.0 for t in times.values())
    # Each of the other calls waited itself (not only the one that got the 429).
    waited = {name for name, _ in ft.sleeps}
    assert {"B-1", "C-1", "D-1", "first"} <= waited


# --- transport errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection"),
    ],
)
async def test_transport_errors_are_retried_then_raise(
    mock: respx.MockRouter, ft: FakeTime, exc: Exception
) -> None:
    route = mock.get(LINKS).mock(side_effect=exc)
    async with make_client(ft, mock, retry=RetryPolicy(attempts=3)) as client:
        with pytest.raises(TransportError) as info:
            await client.links.get("TEST-1")
    assert route.call_count == 3
    assert info.value.status_code is None
    assert info.value.method == "GET"
    assert info.value.url == BASE + LINKS
    assert type(exc).__name__ in str(info.value)
    assert len(ft.waits) == 2


async def test_transport_error_then_success(mock: respx.MockRouter, ft: FakeTime) -> None:
    route = mock.get(LINKS).mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
            httpx.Response(200, json=[]),
        ]
    )
    async with make_client(ft, mock) as client:
        assert await client.links.get("TEST-1") == []
    assert route.call_count == 3


async def test_connect_error_on_create_is_resent(mock: respx.MockRouter, ft: FakeTime) -> None:
    # Not connected means not sent: re-sending the create is safe.
    post = mock.post(LINKS).mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json=link_json())]
    )
    async with make_client(ft, mock) as client:
        link = await client.links.create("TEST-1", "TEST-2", "depends on")
    assert link.id == 1048570
    assert post.call_count == 2


async def test_malformed_success_body_is_a_tracker_error(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    mock.get(LINKS).respond(200, text="<html>proxy login</html>")
    mock.get("/v2/issues/TEST-2/links").respond(200, json={"not": "a list"})
    async with make_client(ft, mock) as client:
        with pytest.raises(TrackerError, match="links"):
            await client.links.get("TEST-1")
        with pytest.raises(TrackerError, match="links"):
            await client.links.get("TEST-2")


# --- secrets -------------------------------------------------------------------------------------


def test_token_absent_from_repr_and_str() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    for client in (
        TrackerClient(TOKEN, org_id="1", transport=transport),
        TrackerClient(iam_token=IAM, cloud_org_id="c", transport=transport),
    ):
        for text in (repr(client), str(client), f"{client!r:>10}"):
            assert TOKEN not in text
            assert IAM not in text
            assert "secret" not in text


def assert_no_secret(exc: BaseException) -> None:
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    texts += [repr(v) for v in vars(exc).values()]
    for text in texts:
        assert TOKEN not in text
        assert IAM not in text


SECRET_CASES: list[tuple[Callable[[], Any], type[TrackerError]]] = [
    (lambda: error(401, "Unauthorized"), AuthError),
    (lambda: error(403, "Forbidden"), AuthError),
    (lambda: error(500), ServerError),
    (lambda: error(503), ServerError),
    (lambda: error(429), RateLimitError),
    (lambda: httpx.ConnectError("connection refused"), TransportError),
    (lambda: httpx.ReadTimeout("timed out"), TransportError),
]


@pytest.mark.parametrize(("make", "cls"), SECRET_CASES)
@pytest.mark.parametrize("credential", ["token", "iam_token"])
async def test_token_absent_from_exceptions_and_logs(
    mock: respx.MockRouter,
    ft: FakeTime,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[], Any],
    cls: type[TrackerError],
    credential: str,
) -> None:
    caplog.set_level(logging.DEBUG)

    def answer(request: httpx.Request) -> httpx.Response:
        result = make()
        if isinstance(result, Exception):
            raise result
        assert isinstance(result, httpx.Response)
        return result

    mock.get(LINKS).mock(side_effect=answer)
    mock.post(LINKS).mock(side_effect=answer)
    kwargs: dict[str, Any] = {credential: TOKEN if credential == "token" else IAM}
    async with make_client(ft, mock, retry=RetryPolicy(attempts=3), **kwargs) as client:
        with pytest.raises(cls) as info:
            await client.links.get("TEST-1")
        assert_no_secret(info.value)
        with pytest.raises(TrackerError) as info2:
            await client.links.create("TEST-1", "TEST-2", "relates")
        assert_no_secret(info2.value)
    assert caplog.records  # there was something to look at
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert IAM not in record.getMessage()
    assert TOKEN not in caplog.text
    assert IAM not in caplog.text


# --- logging -------------------------------------------------------------------------------------


async def test_one_debug_line_per_request_and_a_warning_per_retry(
    mock: respx.MockRouter, ft: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tracker_links")
    mock.get(LINKS).mock(side_effect=[error(503), error(502), httpx.Response(200, json=[])])
    async with make_client(ft, mock) as client:
        await client.links.get("TEST-1")
    ours = [r for r in caplog.records if r.name == "tracker_links"]
    debug = [r for r in ours if r.levelno == logging.DEBUG]
    warnings = [r for r in ours if r.levelno == logging.WARNING]
    assert len(debug) == 3
    assert len(warnings) == 2
    for record, status, attempt in zip(debug, (503, 502, 200), (1, 2, 3), strict=True):
        message = record.getMessage()
        assert "GET" in message
        assert LINKS in message
        assert str(status) in message
        assert f"attempt {attempt}" in message
    for record in warnings:
        assert LINKS in record.getMessage()


async def test_no_debug_lines_when_debug_is_off(
    mock: respx.MockRouter, ft: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tracker_links")
    mock.get(LINKS).respond(200, json=[])
    async with make_client(ft, mock) as client:
        await client.links.get("TEST-1")
    assert [r for r in caplog.records if r.name == "tracker_links"] == []


# --- types, delete, closing ----------------------------------------------------------------------


async def test_types(mock: respx.MockRouter, ft: FakeTime) -> None:
    route = mock.get("/v2/linktypes").respond(
        200,
        json=[
            {
                "self": f"{BASE}/v2/linktypes/relates",
                "id": "relates",
                "inward": "relates",
                "outward": "relates",
            },
            {
                "self": f"{BASE}/v2/linktypes/subtask",
                "id": "subtask",
                "inward": "Подзадача",
                "outward": "Родительская задача",
                "unknownField": 1,
            },
        ],
    )
    async with make_client(ft, mock) as client:
        types = await client.links.types()
    assert types == [
        LinkType("relates", "relates", "relates", f"{BASE}/v2/linktypes/relates"),
        LinkType("subtask", "Подзадача", "Родительская задача", f"{BASE}/v2/linktypes/subtask"),
    ]
    assert route.call_count == 1


@pytest.mark.parametrize("link_id", [1048570, "1048570"])
async def test_delete(mock: respx.MockRouter, ft: FakeTime, link_id: int | str) -> None:
    route = mock.delete(f"{LINKS}/1048570").respond(204)
    async with make_client(ft, mock) as client:
        await client.links.delete("TEST-1", link_id)
    assert route.call_count == 1
    assert route.calls.last.request.method == "DELETE"


async def test_delete_is_retried_after_a_5xx(mock: respx.MockRouter, ft: FakeTime) -> None:
    route = mock.delete(f"{LINKS}/5").mock(side_effect=[error(503), httpx.Response(204)])
    mock.get(LINKS).respond(200, json=[link_json(5)])  # still there after the 503: re-sent
    async with make_client(ft, mock) as client:
        await client.links.delete("TEST-1", 5)
    assert route.call_count == 2


async def test_delete_missing_link(mock: respx.MockRouter, ft: FakeTime) -> None:
    mock.delete(f"{LINKS}/5").mock(return_value=error(404, "Link not found"))
    async with make_client(ft, mock) as client:
        with pytest.raises(NotFoundError, match="Link not found"):
            await client.links.delete("TEST-1", 5)


async def test_aclose_leaves_a_passed_in_http_client_open(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    route = mock.get(LINKS).respond(200, json=[])
    http = httpx.AsyncClient()
    async with make_client(ft, mock, http_client=http) as client:
        await client.links.get("TEST-1")
    await client.aclose()
    assert not http.is_closed
    # Still usable by its owner, and by the library.
    response = await http.get(BASE + LINKS)
    assert response.status_code == 200
    await make_client(ft, mock, http_client=http).links.get("TEST-1")
    assert route.call_count == 3
    await http.aclose()


class RecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.closed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[])

    async def aclose(self) -> None:
        self.closed += 1


async def test_aclose_closes_its_own_http_client(ft: FakeTime) -> None:
    transport = RecordingTransport()
    client = make_client(ft, None, transport=transport)
    assert await client.links.get("TEST-1") == []
    await client.aclose()
    assert transport.closed == 1


async def test_async_with_returns_the_client_and_closes_it(ft: FakeTime) -> None:
    transport = RecordingTransport()
    client = make_client(ft, None, transport=transport)
    async with client as entered:
        assert entered is client
        assert await entered.links.get("TEST-1") == []
        assert transport.closed == 0
    assert transport.closed == 1


async def test_closing_on_an_exception(ft: FakeTime) -> None:
    transport = RecordingTransport()
    with pytest.raises(RuntimeError, match="boom"):
        async with make_client(ft, None, transport=transport):
            raise RuntimeError("boom")
    assert transport.closed == 1


# --- admission: concurrency cap and fixed rate ---------------------------------------------------


@pytest.mark.parametrize("cap", [1, 3])
async def test_max_concurrency_caps_requests_in_flight(
    mock: respx.MockRouter, ft: FakeTime, cap: int
) -> None:
    in_flight = peak = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        in_flight -= 1
        return httpx.Response(200, json=[])

    route = mock.get(path__startswith="/v2/issues/").mock(side_effect=answer)
    async with (
        make_client(ft, mock, max_concurrency=cap) as client,
        anyio.create_task_group() as tg,
    ):
        for i in range(1, 11):
            tg.start_soon(client.links.get, f"Q-{i}")
    assert route.call_count == 10
    assert peak == cap


async def test_fixed_rate_limit_spaces_requests(mock: respx.MockRouter, ft: FakeTime) -> None:
    sent: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(ft.now)
        return httpx.Response(200, json=[])

    mock.get(path__startswith="/v2/issues/").mock(side_effect=answer)
    async with make_client(ft, mock, rate_limit=10.0) as client:
        for i in range(1, 6):
            await client.links.get(f"Q-{i}")
    assert sent == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4], rel=2e-3)  # 0.1 % under the rate


async def test_a_cooldown_longer_than_the_deadline_fails_fast(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    route = mock.get(LINKS).mock(return_value=error(429, "slow down", **{"Retry-After": "3600"}))
    async with make_client(ft, mock, retry=RetryPolicy(deadline=60.0)) as client:
        with pytest.raises(RateLimitError) as first:
            await client.links.get("TEST-1")
        assert first.value.retry_after == 3600
        # A later call does not sit out the hour-long cool-down in silence: it fails at once.
        with pytest.raises(RateLimitError, match="cooling down") as second:
            await client.links.get("TEST-1")
    assert second.value.retry_after is not None
    assert second.value.retry_after > 3000
    assert route.call_count == 1
    assert sum(ft.waits) < 60


def test_max_concurrency_rejects_a_bool() -> None:
    with pytest.raises(InvalidInputError, match="max_concurrency"):
        TrackerClient(TOKEN, org_id="1", max_concurrency=True)


@pytest.mark.parametrize(
    "token", ["y0_AgAAA\u2026", "line\nbreak", "with space", "tab\there", "\x00"]
)
def test_a_token_that_cannot_be_a_header_is_refused_without_echo(token: str) -> None:
    with pytest.raises(InvalidInputError, match="printable ASCII") as caught:
        TrackerClient(token, org_id="1")
    assert token not in str(caught.value)


def test_an_org_id_may_be_a_number(ft: FakeTime) -> None:
    client = TrackerClient(TOKEN, org_id=7654321)
    assert "X-Org-ID" in repr(client)


async def test_paced_requests_sleep_once_each(mock: respx.MockRouter, ft: FakeTime) -> None:
    """Pacing books a slot per request: waiting requests do not all wake for every slot."""
    mock.get(path__startswith="/v2/issues/").mock(return_value=httpx.Response(200, json=[]))
    client = make_client(ft, mock, rate_limit=10.0, max_concurrency=20)
    async with client, anyio.create_task_group() as tg:
        for i in range(1, 41):
            tg.start_soon(client.links.get, f"TEST-{i}")
    assert len(ft.sleeps) <= 40
    assert ft.now == pytest.approx(3.9, abs=0.11)  # 40 requests at 10/s: the last at 3.9 s


async def test_respx_mock_sees_the_requests_of_a_default_client() -> None:
    """The library's own transport steps aside while respx has patched httpcore."""
    with respx.mock(base_url=BASE) as router:
        route = router.get(LINKS).respond(200, json=[])
        async with TrackerClient(TOKEN, org_id="1") as client:
            assert await client.links.get("TEST-1") == []
    assert route.call_count == 1
    assert route.calls.last.request.headers["Authorization"] == f"OAuth {TOKEN}"
