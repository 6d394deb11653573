"""Malformed answers anywhere are TrackerErrors naming the request; a retried DELETE that
landed is success."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from tracker_links import NotFoundError, RetryPolicy, TrackerClient, TrackerError

from .helpers import BASE, FakeTime, error

pytestmark = pytest.mark.anyio

EMPTY = httpx.Response(200, json=[])

BAD_BODIES = [
    b"<html>oops</html>",
    b"",
    b"null",
    b"{}",
    b'{"a": 1}',
    b"[1, 2]",
    b'[{"nokey": 1}]',
    b'[{"key": 7}]',
    b'[{"id": 1, "type": "x"}]',
    b"[" * 5000,
]


def client(ft: FakeTime, router: respx.MockRouter, **kwargs: Any) -> TrackerClient:
    return TrackerClient(
        "t",
        org_id="1",
        sleep=ft.sleep,
        clock=ft.clock,
        retry=RetryPolicy(attempts=3, backoff_base=0.001, backoff_cap=0.001),
        transport=httpx.MockTransport(router.async_handler),
        **kwargs,
    )


def assert_names_request(exc: BaseException, method: str, path: str) -> None:
    assert type(exc) is TrackerError, repr(exc)  # the library's, not KeyError & co
    assert exc.method == method
    assert exc.url == BASE + path
    assert str(exc).startswith(f"{method} {BASE}{path}: ")
    assert "malformed answer" in str(exc)


@pytest.mark.parametrize("body", BAD_BODIES)
async def test_malformed_links_list(mock: respx.MockRouter, ft: FakeTime, body: bytes) -> None:
    mock.get("/v2/issues/TEST-1/links").mock(return_value=httpx.Response(200, content=body))
    async with client(ft, mock) as c:
        with pytest.raises(TrackerError) as info:
            await c.links.get("TEST-1")
        assert_names_request(info.value, "GET", "/v2/issues/TEST-1/links")
        report = await c.links.bulk_get(["TEST-1"])
    assert_names_request(report.failed["TEST-1"], "GET", "/v2/issues/TEST-1/links")


@pytest.mark.parametrize("body", [*BAD_BODIES, b'{"id": 1}', b'{"id": 1, "type": {"id": 2}}'])
async def test_malformed_create_answer(mock: respx.MockRouter, ft: FakeTime, body: bytes) -> None:
    mock.post("/v2/issues/TEST-1/links").mock(return_value=httpx.Response(201, content=body))
    async with client(ft, mock) as c:
        with pytest.raises(TrackerError) as info:
            await c.links.create("TEST-1", "TEST-2", "relates")
        assert_names_request(info.value, "POST", "/v2/issues/TEST-1/links")
        report = await c.links.bulk_create([("TEST-1", "TEST-2", "relates")])
    assert_names_request(report.outcomes[0].error, "POST", "/v2/issues/TEST-1/links")  # type: ignore[arg-type]


@pytest.mark.parametrize("body", [b"nope", b"{}", b'[{"inward": 1}]', b"[3]"])
async def test_malformed_link_types(mock: respx.MockRouter, ft: FakeTime, body: bytes) -> None:
    mock.get("/v2/linktypes").mock(return_value=httpx.Response(200, content=body))
    async with client(ft, mock) as c:
        with pytest.raises(TrackerError) as info:
            await c.links.types()
    assert_names_request(info.value, "GET", "/v2/linktypes")


@pytest.mark.parametrize("body", BAD_BODIES)
async def test_malformed_search_page(mock: respx.MockRouter, ft: FakeTime, body: bytes) -> None:
    mock.post("/v2/issues/_search").mock(return_value=httpx.Response(200, content=body))
    async with client(ft, mock) as c:

        async def drain() -> None:
            async with c.links.queue_links("TEST") as items:
                async for _ in items:
                    pass

        with pytest.raises(TrackerError) as info:
            await drain()
    assert_names_request(info.value, "POST", "/v2/issues/_search")


async def test_a_malformed_later_page_after_good_ones(mock: respx.MockRouter, ft: FakeTime) -> None:
    pages = [
        httpx.Response(200, json=[{"key": "TEST-1"}], headers={"X-Total-Pages": "2"}),
        httpx.Response(200, content=b'[{"key": null}]', headers={"X-Total-Pages": "2"}),
    ]
    mock.post("/v2/issues/_search").mock(side_effect=pages)
    mock.get("/v2/issues/TEST-1/links").mock(return_value=httpx.Response(200, json=[]))
    got = []
    async with client(ft, mock) as c:

        async def drain() -> None:
            async with c.links.queue_links("TEST") as items:
                async for item in items:
                    got.append(item.key)

        with pytest.raises(TrackerError) as info:
            await drain()
    assert got == ["TEST-1"]  # what was listed is still fetched
    assert_names_request(info.value, "POST", "/v2/issues/_search")


@pytest.mark.parametrize(
    "headers", [{"X-Total-Pages": "many"}, {"X-Total-Pages": "-3"}, {"X-Total-Count": "1e3"}]
)
async def test_unreadable_paging_headers_fall_back_to_following_pages(
    mock: respx.MockRouter, ft: FakeTime, headers: dict[str, str]
) -> None:
    pages = [
        httpx.Response(200, json=[{"key": f"TEST-{i}"} for i in range(1, 101)], headers=headers),
        httpx.Response(200, json=[{"key": "TEST-101"}], headers=headers),
    ]
    route = mock.post("/v2/issues/_search").mock(side_effect=pages)
    mock.get(url__regex=r"/v2/issues/TEST-\d+/links").mock(
        return_value=httpx.Response(200, json=[])
    )
    async with client(ft, mock) as c, c.links.queue_links("TEST") as items:
        keys = {item.key async for item in items}
    assert len(keys) == 101
    assert route.call_count == 2


async def test_a_page_count_past_the_paging_limit_scrolls_instead(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if "page" in params:
            return httpx.Response(
                200, json=[{"key": "TEST-1"}], headers={"X-Total-Pages": "9999999"}
            )
        if "scrollId" in params:
            return httpx.Response(200, json=[])
        return httpx.Response(200, json=[{"key": "TEST-2"}], headers={"X-Scroll-Id": "s1"})

    route = mock.post("/v2/issues/_search").mock(side_effect=answer)
    mock.get(url__regex=r"/v2/issues/TEST-\d+/links").mock(
        return_value=httpx.Response(200, json=[])
    )
    async with client(ft, mock) as c, c.links.queue_links("TEST") as items:
        keys = {item.key async for item in items}
    assert keys == {"TEST-2"}
    assert route.call_count == 3  # one page, then two scroll steps: not 9,999,999 pages


async def test_a_malformed_myself_leaves_createdby_unchecked(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    link = {
        "id": 5,
        "type": {"id": "relates"},
        "direction": "outward",
        "object": {"key": "TEST-2"},
        "createdBy": {"id": "9"},
    }
    mock.post("/v2/issues/TEST-1/links").mock(return_value=error(503, "busy"))
    mock.get("/v2/issues/TEST-1/links").mock(return_value=httpx.Response(200, json=[link]))
    mock.get("/v2/myself").mock(return_value=httpx.Response(200, content=b"[]"))
    async with client(ft, mock) as c:
        report = await c.links.bulk_create([("TEST-1", "TEST-2", "relates")])
    assert report.outcomes[0].verified_by == "read_back"


# --- a DELETE retried after an unknown outcome ---------------------------------------------------

LINK = "/v2/issues/TEST-1/links/77"


@pytest.mark.parametrize("lost", [error(500, "boom"), httpx.ReadError("reset by peer")])
async def test_a_retried_delete_that_had_landed_is_success(
    mock: respx.MockRouter, ft: FakeTime, lost: Any
) -> None:
    listed = {"id": 77, "type": {"id": "relates"}, "direction": "outward", "object": {}}
    route = mock.delete(LINK).mock(side_effect=[lost, error(404, "no such link")])
    # The listing still shows the link after the lost answer (it lags), then no longer.
    issue = mock.get("/v2/issues/TEST-1/links").mock(
        side_effect=[httpx.Response(200, json=[listed]), httpx.Response(200, json=[])]
    )
    async with client(ft, mock) as c:
        await c.links.delete("TEST-1", 77)
    assert route.call_count == 2  # the retry was answered 404: the first attempt had landed
    assert issue.call_count == 2  # looked before the retry; checked the issue exists after


async def test_a_404_for_the_issue_after_a_lost_answer_stays_not_found(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    listed = {"id": 77, "type": {"id": "relates"}, "direction": "outward", "object": {}}
    mock.delete(LINK).mock(side_effect=[error(502, "boom"), error(404, "no such issue")])
    mock.get("/v2/issues/TEST-1/links").mock(
        side_effect=[httpx.Response(200, json=[listed]), error(404, "no such issue")]
    )
    async with client(ft, mock) as c:
        with pytest.raises(NotFoundError):
            await c.links.delete("TEST-1", 77)


async def test_a_first_404_is_not_found_without_a_check(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    mock.delete(LINK).mock(return_value=error(404, "no such link"))
    issue = mock.get("/v2/issues/TEST-1/links").mock(return_value=httpx.Response(200, json=[]))
    async with client(ft, mock) as c:
        with pytest.raises(NotFoundError):
            await c.links.delete("TEST-1", 77)
    assert issue.call_count == 0


async def test_a_delete_with_an_unknown_outcome_is_retried_then_succeeds(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    listed = {"id": 77, "type": {"id": "relates"}, "direction": "outward", "object": {}}
    route = mock.delete(LINK).mock(side_effect=[error(503, "busy"), httpx.Response(204)])
    mock.get("/v2/issues/TEST-1/links").mock(return_value=httpx.Response(200, json=[listed]))
    async with client(ft, mock) as c:
        await c.links.delete("TEST-1", 77)
    assert route.call_count == 2
