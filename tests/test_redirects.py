"""Redirects (moved issues): followed on the same origin for every method, never elsewhere."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import respx

from tracker_links import TrackerClient, TrackerError
from tracker_links._protocol import Request
from tracker_links._redirects import MAX_REDIRECTS
from tracker_links.testing import FakeTracker

from .helpers import BASE, FakeTime
from .test_http11 import Scripted, scripted

pytestmark = pytest.mark.anyio

LINK = json.loads((Path(__file__).parent / "payloads" / "link_create.json").read_text())
OLD = "/v2/issues/PROJ-1/links"
NEW = "/v2/issues/NEW-5/links"
TOKEN = "s3cret-t0ken"


def client(ft: FakeTime, base_url: str = BASE) -> TrackerClient:
    return TrackerClient(TOKEN, org_id="1", base_url=base_url, sleep=ft.sleep, clock=ft.clock)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_get_is_followed_on_the_same_origin(
    mock: respx.MockRouter, ft: FakeTime, status: int
) -> None:
    old = mock.get(OLD).respond(status, headers={"Location": NEW})
    new = mock.get(NEW).respond(200, json=[LINK])
    async with client(ft) as tracker:
        (link,) = await tracker.links.get("PROJ-1")
        assert link.id == LINK["id"]
        resp = await tracker._transport.send(Request("GET", OLD))
    assert (old.call_count, new.call_count) == (2, 2)
    assert resp.path == NEW
    assert resp.url == BASE + NEW
    assert resp.redirected_from == (BASE + OLD,)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_post_is_sent_again_as_a_post_with_its_body(
    mock: respx.MockRouter, ft: FakeTime, status: int
) -> None:
    old = mock.post(OLD).respond(status, headers={"Location": BASE + NEW})  # absolute
    new = mock.post(NEW).respond(201, json=LINK)
    get = mock.get(url__regex=".*").respond(200, json=[])
    async with client(ft) as tracker:
        link = await tracker.links.create("PROJ-1", "TREK-2", "relates")
    assert link.id == LINK["id"]
    assert old.call_count == 1  # never sent twice to the old URL
    assert new.call_count == 1
    assert not get.called  # never turned into a GET
    sent_old, sent_new = old.calls.last.request, new.calls.last.request
    assert sent_new.method == "POST"
    assert sent_new.content == sent_old.content
    assert json.loads(sent_new.content) == {"relationship": "relates", "issue": "TREK-2"}
    assert sent_new.headers["authorization"] == f"OAuth {TOKEN}"


async def test_delete_is_sent_again_as_a_delete(mock: respx.MockRouter, ft: FakeTime) -> None:
    old = mock.delete(OLD + "/42").respond(308, headers={"Location": NEW + "/42"})
    new = mock.delete(NEW + "/42").respond(204)
    async with client(ft) as tracker:
        await tracker.links.delete("PROJ-1", 42)
    assert (old.call_count, new.call_count) == (1, 1)


async def test_a_chain_of_moves_is_followed_up_to_the_limit(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    paths = [f"/v2/issues/HOP-{n}/links" for n in range(1, MAX_REDIRECTS + 3)]
    for here, there in itertools.pairwise(paths):
        mock.get(here).respond(301, headers={"Location": there})
    mock.get(paths[MAX_REDIRECTS]).respond(200, json=[])
    async with client(ft) as tracker:
        resp = await tracker._transport.send(Request("GET", paths[0]))
        assert resp.path == paths[MAX_REDIRECTS]
        assert len(resp.redirected_from) == MAX_REDIRECTS
        mock.get(paths[MAX_REDIRECTS]).respond(301, headers={"Location": paths[0]})  # a loop
        with pytest.raises(TrackerError, match=f"more than {MAX_REDIRECTS}") as info:
            await tracker.links.get("HOP-1")
    assert info.value.status_code == 301


@pytest.mark.parametrize(
    ("location", "other"),
    [
        ("https://evil.example/v2/issues/NEW-5/links", "https://evil.example"),
        ("http://api.tracker.yandex.net/v2/issues/NEW-5/links", "http://api.tracker.yandex.net"),
        ("https://api.tracker.yandex.net:8443/v2/x", "https://api.tracker.yandex.net:8443"),
        ("//evil.example/v2/issues/NEW-5/links", "https://evil.example"),  # scheme-relative
    ],
)
async def test_a_redirect_to_another_origin_is_not_followed(
    ft: FakeTime, location: str, other: str
) -> None:
    with respx.mock(assert_all_called=False) as router:
        router.post(BASE + OLD).respond(307, headers={"Location": location})
        elsewhere = router.route(url__startswith=other)
        elsewhere.respond(201, json=LINK)
        async with client(ft) as tracker:
            with pytest.raises(TrackerError, match="another host or scheme") as info:
                await tracker.links.create("PROJ-1", "TREK-2", "relates")
    assert not elsewhere.called  # no request, and so no credentials, went there
    assert location.removeprefix("//") in str(info.value)  # the error names the target
    assert TOKEN not in str(info.value)
    assert info.value.status_code == 307
    assert info.value.method == "POST"


@pytest.mark.parametrize(
    ("headers", "match"),
    [({}, "without a Location"), ({"Location": "/elsewhere/x"}, "outside the API")],
)
async def test_other_redirects_fail_clearly(
    mock: respx.MockRouter, ft: FakeTime, headers: dict[str, str], match: str
) -> None:
    mock.get(OLD).respond(302, headers=headers)
    async with client(ft, BASE + "/api") as tracker:
        mock.get("/api" + OLD).respond(302, headers=headers)
        with pytest.raises(TrackerError, match=match):
            await tracker.links.get("PROJ-1")


# -- over loopback, through the library's own transport ---------------------------------------


def moved(location: str, status: int = 308) -> bytes:
    return b"HTTP/1.1 %d Moved\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % (
        status,
        location.encode(),
    )


CREATED = b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (
    len(json.dumps(LINK)),
    json.dumps(LINK).encode(),
)


async def test_post_is_followed_over_loopback(ft: FakeTime) -> None:
    async with scripted([moved(NEW, 307)], [CREATED]) as srv:
        async with client(ft, srv.url) as tracker:
            link = await tracker.links.create("PROJ-1", "TREK-2", "relates")
        assert link.id == LINK["id"]
    first, second = srv.requests
    assert first.startswith(b"POST " + OLD.encode() + b" HTTP/1.1\r\n")
    assert second.startswith(b"POST " + NEW.encode() + b" HTTP/1.1\r\n")
    assert first.partition(b"\r\n\r\n")[2] == second.partition(b"\r\n\r\n")[2]
    assert srv.accepted == 1  # the same keep-alive connection


async def test_no_request_reaches_another_host_over_loopback(ft: FakeTime) -> None:
    async with scripted() as other:
        # The same machine under another name: another origin all the same.
        location = other.url.replace("127.0.0.1", "localhost") + NEW
        async with scripted([moved(location)]) as srv:
            async with client(ft, srv.url) as tracker:
                with pytest.raises(TrackerError, match="localhost"):
                    await tracker.links.create("PROJ-1", "TREK-2", "relates")
            assert len(srv.requests) == 1
        assert isinstance(other, Scripted)
        assert other.accepted == 0
        assert other.requests == []


# -- against the fake Tracker, which redirects a moved issue's old key -------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_moved_issues_against_the_fake_over_loopback(status: int) -> None:
    fake = FakeTracker(queues={"TEST": 5, "NEW": 1}, seed=1, redirect_status=status)
    new = fake.move_issue("TEST-1", "NEW")
    with fake.serve() as base_url:
        async with TrackerClient(TOKEN, org_id="1", base_url=base_url) as tracker:
            link = await tracker.links.create("TEST-1", "TEST-2", "depends on")  # the old key
            assert [seen.id for seen in await tracker.links.get("TEST-1")] == [link.id]
            resp = await tracker._transport.send(Request("GET", "/v2/issues/TEST-1/links"))
            assert resp.path == f"/v2/issues/{new}/links"
            assert resp.redirected_from == (base_url + "/v2/issues/TEST-1/links",)
            await tracker.links.delete("TEST-1", link.id)
    # Each call once to the old key (redirected), once to the new: the create too, as a POST.
    assert fake.stats.count("POST", status) == 1
    assert fake.stats.count("POST", 201) == 1
    assert fake.stats.count("GET", status) == 2
    assert fake.stats.count("DELETE", status) == 1
    assert fake.stats.redirects == 4
    assert fake.stats.creates == 1
    assert not fake.links


async def test_moved_issues_against_the_fake_in_process(ft: FakeTime) -> None:
    fake = FakeTracker(queues={"TEST": 5, "NEW": 1}, seed=1, redirect_status=307)
    new = fake.move_issue("TEST-2", "NEW")
    async with TrackerClient(
        TOKEN, org_id="1", base_url="http://localhost", transport=fake.transport()
    ) as tracker:
        await tracker.links.create("TEST-2", "TEST-3", "relates")
        (link,) = await tracker.links.get("TEST-3")
        assert link.target.key == new


@pytest.mark.parametrize("status", [300, 303, 304, 305, 306])
async def test_a_3xx_that_is_not_followed_is_an_error_not_a_success(
    mock: respx.MockRouter, ft: FakeTime, status: int
) -> None:
    # Read as a success, a 303 to a DELETE would report a link deleted that is still there.
    delete = mock.delete(OLD + "/42").respond(status, headers={"Location": NEW + "/42"})
    new = mock.delete(NEW + "/42").respond(204)
    mock.get(OLD).respond(status)
    async with client(ft) as tracker:
        with pytest.raises(TrackerError, match=f"\\({status}\\) to '{NEW}/42', not followed"):
            await tracker.links.delete("PROJ-1", 42)
        with pytest.raises(TrackerError, match="not followed") as info:
            await tracker.links.get("PROJ-1")
    assert delete.call_count == 1
    assert not new.called
    assert info.value.status_code == status
    assert info.value.method == "GET"
