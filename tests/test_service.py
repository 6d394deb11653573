"""LinkService over respx: get/create/delete/types, input validation, and the safe create.

The safe create is checked against a small stateful fake of the service's link list: a POST
can be applied and still answer 5xx or lose its answer, and the listing can lag behind. Every
test counts the POSTs with respx and the links the "server" holds at the end.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
import respx

from tracker_links import (
    ConflictError,
    Direction,
    InvalidInputError,
    Link,
    NotFoundError,
    Relationship,
    RetryPolicy,
    ServerError,
    TrackerClient,
    TransportError,
)
from tracker_links._converter import structure_link

from .helpers import BASE, FakeTime, error

pytestmark = pytest.mark.anyio

TOKEN = "y0_AgAAAAB-secret-oauth-token-4f9c1e"
PAYLOADS = Path(__file__).parent / "payloads"
SOURCE = "TEST-1"
LINKS = f"/v2/issues/{SOURCE}/links"

# How the service files each relationship, read from the source issue (tracker-api.md section 8).
# `relates` comes back "inward" even from the side that created it, as in the create example.
FILED_AS = {
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


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


class FakeLinks:
    """The links of issue TEST-1 as the service keeps them, behind respx routes.

    ``faults`` scripts the next POSTs: ``(applied, answer)`` where ``answer`` is a status or
    an exception to raise (the answer lost). Without a script a POST is applied and answered
    201, or answered ``conflict_status`` if the link exists. A link shows in ``GET`` only
    ``lag`` GETs after it was applied.
    """

    def __init__(self, router: respx.MockRouter) -> None:
        self.links: list[dict[str, Any]] = []
        self.faults: list[tuple[bool, int | Exception]] = []
        self.conflict_status = 422
        self.lag = 0
        self.gets_served = 0
        self._visible_from: dict[int, int] = {}
        self._next_id = 1048570
        self.get_route = router.get(LINKS).mock(side_effect=self.on_get)
        # The token's user, who makes the links (``createdBy``), created now (``createdAt``).
        self.myself_route = router.get("/v2/myself").mock(
            return_value=httpx.Response(200, json={"uid": 1120000000004859, "login": "ivan"})
        )
        self.post_route = router.post(LINKS).mock(side_effect=self.on_post)

    @property
    def stamp(self) -> str:
        return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"

    @property
    def posts(self) -> int:
        return self.post_route.call_count

    @property
    def gets(self) -> int:
        return self.get_route.call_count

    def add(self, target: str, relationship: str, *, lag: int | None = None) -> dict[str, Any]:
        type_id, direction = FILED_AS[relationship]
        link_id = self._next_id
        self._next_id += 1
        link = {
            "self": f"{BASE}{LINKS}/{link_id}",
            "id": link_id,
            "type": {"self": f"{BASE}/v2/linktypes/{type_id}", "id": type_id},
            "direction": direction,
            "object": {"self": f"{BASE}/v2/issues/{target}", "key": target, "display": "t"},
            "createdBy": {"id": "1120000000004859", "display": "Ivan Ivanov"},
            "createdAt": self.stamp,
            "updatedAt": self.stamp,
        }
        self.links.append(link)
        self._visible_from[link_id] = self.gets_served + (self.lag if lag is None else lag)
        return link

    def find(self, target: str, relationship: str) -> dict[str, Any] | None:
        type_id, direction = FILED_AS[relationship]
        for link in self.links:
            same_pair = link["object"]["key"] == target and link["type"]["id"] == type_id
            if same_pair and (type_id == "relates" or link["direction"] == direction):
                return link
        return None

    def on_get(self, request: httpx.Request) -> httpx.Response:
        served = self.gets_served
        self.gets_served += 1
        visible = [link for link in self.links if self._visible_from[link["id"]] <= served]
        return httpx.Response(200, json=visible)

    def on_post(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert set(body) == {"relationship", "issue"}
        target, relationship = body["issue"], body["relationship"]
        existing = self.find(target, relationship)
        if self.faults:
            applied, answer = self.faults.pop(0)
        else:
            applied, answer = existing is None, 201 if existing is None else self.conflict_status
        link = existing
        if applied and existing is None:
            link = self.add(target, relationship)
        if isinstance(answer, Exception):
            raise answer
        if answer == 201:
            assert link is not None
            return httpx.Response(201, json=link)
        return error(answer, f"answer {answer}")


@pytest.fixture
def server(mock: respx.MockRouter) -> FakeLinks:
    return FakeLinks(mock)


def make_client(ft: FakeTime, router: respx.MockRouter, **kwargs: Any) -> TrackerClient:
    return TrackerClient(
        TOKEN,
        org_id="7654321",
        sleep=ft.sleep,
        clock=ft.clock,
        transport=httpx.MockTransport(router.async_handler),
        **kwargs,
    )


def link_id_of(link: dict[str, Any]) -> int:
    return int(link["id"])


# --- plain calls ---------------------------------------------------------------------------


async def test_get_structures_the_seed_payload(mock: respx.MockRouter, ft: FakeTime) -> None:
    route = mock.get("/v2/issues/JUNE-2/links").respond(200, json=load("links_get.json"))
    async with make_client(ft, mock) as client:
        links = await client.links.get("JUNE-2")
    assert route.call_count == 1
    assert len(links) == 1
    assert isinstance(links[0], Link)
    assert links[0].target.key == "TREK-9844"
    assert links[0].relationship is Relationship.IS_PARENT_TASK_FOR


async def test_get_by_issue_id(mock: respx.MockRouter, ft: FakeTime) -> None:
    route = mock.get("/v2/issues/593cd211ef7e8a3312345678/links").respond(200, json=[])
    async with make_client(ft, mock) as client:
        assert await client.links.get("593cd211ef7e8a3312345678") == []
    assert route.call_count == 1


async def test_create_returns_the_201_body(mock: respx.MockRouter, ft: FakeTime) -> None:
    payload = load("link_create.json")
    post = mock.post(LINKS).respond(201, json=payload)
    get = mock.get(LINKS).respond(200, json=[])
    async with make_client(ft, mock) as client:
        link = await client.links.create(SOURCE, "TREK-2", Relationship.RELATES)
    assert link == structure_link(payload)
    assert link.relationship is Relationship.RELATES
    assert post.call_count == 1
    assert get.call_count == 0  # nothing uncertain: no check
    assert json.loads(post.calls.last.request.content) == {
        "relationship": "relates",
        "issue": "TREK-2",
    }


@pytest.mark.parametrize("relationship", [*Relationship, *(r.value for r in Relationship)])
async def test_create_each_relationship(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime, relationship: Relationship | str
) -> None:
    async with make_client(ft, mock) as client:
        link = await client.links.create(SOURCE, "TEST-2", relationship)
    assert link.relationship is Relationship.parse(relationship)
    body = json.loads(server.post_route.calls.last.request.content)
    assert body == {"relationship": Relationship.parse(relationship).value, "issue": "TEST-2"}


async def test_create_missing_issue_is_not_found(mock: respx.MockRouter, ft: FakeTime) -> None:
    post = mock.post(LINKS).mock(return_value=error(404, "Issue does not exist"))
    get = mock.get(LINKS).respond(200, json=[])
    async with make_client(ft, mock) as client:
        with pytest.raises(NotFoundError, match="Issue does not exist"):
            await client.links.create(SOURCE, "NOPE-1", "relates")
    assert post.call_count == 1
    assert get.call_count == 0


# --- bad input: nothing is sent ----------------------------------------------------------------

BAD_KEYS: list[Any] = ["", "test-1", "TEST-0", "TEST-1/../x", "TEST-1?x", "TEST 1", "A-1 ", None]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_bad_input_sends_nothing(mock: respx.MockRouter, ft: FakeTime, key: Any) -> None:
    catch_all = mock.route().respond(200, json=[])
    async with make_client(ft, mock) as client:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: client.links.get(key),
            lambda: client.links.create(key, "TEST-2", "relates"),
            lambda: client.links.create(SOURCE, key, "relates"),
            lambda: client.links.delete(key, 1),
        ]
        for call in calls:
            with pytest.raises(InvalidInputError) as info:
                await call()
            assert isinstance(info.value, ValueError)
            assert repr(key) in str(info.value)
    assert catch_all.call_count == 0
    assert not mock.calls


@pytest.mark.parametrize("link_id", ["12a", "-1", -1, "", "1/2", "1?x", 1.5, True, None])
async def test_bad_link_id_sends_nothing(
    mock: respx.MockRouter, ft: FakeTime, link_id: Any
) -> None:
    catch_all = mock.route().respond(204)
    async with make_client(ft, mock) as client:
        with pytest.raises(InvalidInputError, match="link id"):
            await client.links.delete(SOURCE, link_id)
    assert catch_all.call_count == 0


@pytest.mark.parametrize(
    ("target", "relationship", "needle"),
    [
        (SOURCE, "relates", SOURCE),  # self-link
        ("TEST-2", "blocks", "'blocks'"),
        ("TEST-2", "", "'depends on'"),
    ],
)
async def test_bad_create_sends_nothing(
    mock: respx.MockRouter, ft: FakeTime, target: str, relationship: str, needle: str
) -> None:
    catch_all = mock.route().respond(201)
    async with make_client(ft, mock) as client:
        with pytest.raises(InvalidInputError) as info:
            await client.links.create(SOURCE, target, relationship)
    assert needle in str(info.value)
    assert catch_all.call_count == 0


# --- safe create ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_applied_despite_5xx_is_found_not_resent(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime, status: int
) -> None:
    server.faults = [(True, status)]
    async with make_client(ft, mock) as client:
        link = await client.links.create(SOURCE, "TEST-2", "depends on")
    assert server.posts == 1
    assert len(server.links) == 1
    assert server.gets >= 1
    assert link == structure_link(server.links[0])
    assert link.relationship is Relationship.DEPENDS_ON


async def test_b_not_applied_5xx_is_resent_once(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime
) -> None:
    server.faults = [(False, 503)]
    async with make_client(ft, mock) as client:
        link = await client.links.create(SOURCE, "TEST-2", "depends on")
    assert server.posts == 2
    assert server.gets == 1  # looked before re-sending
    assert len(server.links) == 1
    assert link.id == link_id_of(server.links[0])


async def test_b_several_failures_still_one_link(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime
) -> None:
    server.faults = [(False, 503), (False, 500), (False, httpx.ReadTimeout("slow")), (False, 504)]
    async with make_client(ft, mock) as client:
        link = await client.links.create(SOURCE, "TEST-2", "is subtask for")
    assert server.posts == 5
    assert server.gets == 4
    assert len(server.links) == 1
    assert link.relationship is Relationship.IS_SUBTASK_FOR


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset by peer"),
        httpx.WriteTimeout("write timed out"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_c_applied_but_answer_lost_is_not_resent(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime, exc: Exception
) -> None:
    server.faults = [(True, exc)]
    async with make_client(ft, mock) as client:
        link = await client.links.create(SOURCE, "TEST-2", "duplicates")
    assert server.posts == 1
    assert len(server.links) == 1
    assert link.relationship is Relationship.DUPLICATES


async def test_c_answer_lost_and_not_applied_is_resent(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime
) -> None:
    server.faults = [(False, httpx.ReadTimeout("timed out"))]
    async with make_client(ft, mock) as client:
        await client.links.create(SOURCE, "TEST-2", "duplicates")
    assert server.posts == 2
    assert len(server.links) == 1


@pytest.mark.parametrize("conflict_status", [409, 422])
async def test_d_resend_refused_as_duplicate_is_confirmed_and_returned(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime, conflict_status: int
) -> None:
    # Applied, answered 503; the listing lags, so the check misses it and the POST is re-sent;
    # the service refuses the duplicate, and a second look finds the link.
    server.conflict_status = conflict_status
    server.lag = 1
    server.faults = [(True, 503)]
    async with make_client(ft, mock) as client:
        link = await client.links.create(SOURCE, "TEST-2", "depends on")
    assert server.posts == 2
    assert len(server.links) == 1
    assert link.id == link_id_of(server.links[0])
    assert link.relationship is Relationship.DEPENDS_ON


@pytest.mark.parametrize("conflict_status", [409, 422])
async def test_e_existing_link_is_a_conflict_with_the_link(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime, conflict_status: int
) -> None:
    server.conflict_status = conflict_status
    existing = server.add("TEST-2", "depends on")
    async with make_client(ft, mock) as client:
        with pytest.raises(ConflictError) as info:
            await client.links.create(SOURCE, "TEST-2", "depends on")
    exc = info.value
    assert exc.link == structure_link(existing)
    assert exc.status_code == conflict_status
    assert exc.method == "POST"
    assert exc.url == BASE + LINKS
    assert "TEST-2" in str(exc)
    assert server.posts == 1
    assert len(server.links) == 1


@pytest.mark.parametrize("conflict_status", [409, 422])
async def test_e_exist_ok_returns_the_existing_link(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime, conflict_status: int
) -> None:
    server.conflict_status = conflict_status
    existing = server.add("TEST-2", "is epic of")
    async with make_client(ft, mock) as client:
        link = await client.links.create(SOURCE, "TEST-2", "is epic of", exist_ok=True)
    assert link == structure_link(existing)
    assert server.posts == 1
    assert len(server.links) == 1


async def test_e_existing_relates_link_created_from_the_other_side(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime
) -> None:
    # "relates" is listed "inward" or "outward": either way it is the same link.
    existing = server.add("TEST-2", "relates")
    existing["direction"] = "outward"
    async with make_client(ft, mock) as client:
        link = await client.links.create(SOURCE, "TEST-2", "relates", exist_ok=True)
    assert link.id == existing["id"]
    assert link.direction is Direction.OUTWARD


async def test_e_conflict_while_the_listing_lags(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime
) -> None:
    existing = server.add("TEST-2", "depends on", lag=2)
    async with make_client(ft, mock) as client:
        with pytest.raises(ConflictError) as info:
            await client.links.create(SOURCE, "TEST-2", "depends on")
    assert info.value.link == structure_link(existing)
    assert server.gets == 3


@pytest.mark.parametrize("exist_ok", [False, True])
async def test_f_refusal_for_another_reason_gives_up_with_no_link(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime, exist_ok: bool
) -> None:
    # An epic link on an issue that is not an epic: 422, and no such link exists.
    server.faults = [(False, 422)]
    async with make_client(ft, mock) as client:
        with pytest.raises(ConflictError) as info:
            await client.links.create(SOURCE, "TEST-2", "has epic", exist_ok=exist_ok)
    exc = info.value
    assert exc.link is None
    assert exc.status_code == 422
    assert exc.messages == ("answer 422",)
    assert server.posts == 1
    assert server.links == []
    # It looked a few times (the listing may lag), waiting with the injected sleep, then gave
    # up in bounded time.
    assert 2 <= server.gets <= 10
    assert ft.sleeps
    assert sum(ft.waits) <= 30.0


async def test_retries_spent_and_link_absent_raises(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime
) -> None:
    server.faults = [(False, 503), (False, 503)]
    async with make_client(ft, mock, retry=RetryPolicy(attempts=2)) as client:
        with pytest.raises(ServerError) as info:
            await client.links.create(SOURCE, "TEST-2", "depends on")
    assert info.value.status_code == 503
    assert server.posts == 2
    assert server.links == []  # never success for a link that is not there


async def test_retries_spent_but_link_applied_is_returned(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime
) -> None:
    server.faults = [(True, 503)]
    async with make_client(ft, mock, retry=RetryPolicy(attempts=1)) as client:
        link = await client.links.create(SOURCE, "TEST-2", "depends on")
    assert server.posts == 1
    assert link.id == link_id_of(server.links[0])


async def test_answer_lost_every_time_raises_transport_error(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime
) -> None:
    server.faults = [(False, httpx.ReadTimeout("t"))] * 3
    async with make_client(ft, mock, retry=RetryPolicy(attempts=3)) as client:
        with pytest.raises(TransportError):
            await client.links.create(SOURCE, "TEST-2", "depends on")
    assert server.posts == 3
    assert server.links == []


async def test_a_failing_check_is_not_reported_as_success(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    post = mock.post(LINKS).mock(return_value=error(503))
    get = mock.get(LINKS).mock(return_value=error(500))
    async with make_client(ft, mock, retry=RetryPolicy(attempts=2)) as client:
        with pytest.raises(ServerError):
            await client.links.create(SOURCE, "TEST-2", "depends on")
    assert post.call_count == 1
    assert get.call_count == 2


async def test_another_link_between_the_same_issues_is_not_mistaken_for_it(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime
) -> None:
    server.add("TEST-2", "relates")
    server.add("TEST-2", "is dependent by")  # the opposite direction of the same type
    server.add("TEST-3", "depends on")  # the same relationship to another issue
    server.faults = [(False, 503)]
    async with make_client(ft, mock) as client:
        link = await client.links.create(SOURCE, "TEST-2", "depends on")
    assert server.posts == 2
    assert len(server.links) == 4
    assert link.relationship is Relationship.DEPENDS_ON
    assert link.target.key == "TEST-2"


async def test_concurrent_creates_with_faults_make_one_link_each(
    server: FakeLinks, mock: respx.MockRouter, ft: FakeTime
) -> None:
    targets = [f"T-{i}" for i in range(1, 13)]
    server.faults = [
        (True, 503),
        (False, 502),
        (True, httpx.ReadTimeout("t")),
        (False, httpx.RemoteProtocolError("dropped")),
    ] * 3
    results: dict[str, Link] = {}
    async with make_client(ft, mock, max_concurrency=4) as client:

        async def create(target: str) -> None:
            results[target] = await client.links.create(SOURCE, target, "relates")

        async with anyio.create_task_group() as tg:
            for target in targets:
                tg.start_soon(create, target)
    keys = sorted(link["object"]["key"] for link in server.links)
    assert keys == sorted(targets)
    assert {t: link.target.key for t, link in results.items()} == {t: t for t in targets}
