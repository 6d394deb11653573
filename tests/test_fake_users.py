"""The fake's users and history (myself, createdBy/createdAt), per-queue 403, malformed pages."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tracker_links.testing import FakeTracker

pytestmark = pytest.mark.anyio

STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000")
START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def headers(token: str = "t") -> dict[str, str]:
    return {"Authorization": f"OAuth {token}", "X-Org-ID": "1"}


def client(fake: FakeTracker, token: str = "t") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=fake.transport(), base_url="http://localhost", headers=headers(token)
    )


async def create(http: httpx.AsyncClient, src: str, dst: str, rel: str = "relates") -> Any:
    return await http.post(f"/v2/issues/{src}/links", json={"relationship": rel, "issue": dst})


# --- users -----------------------------------------------------------------------------------


async def test_myself_answers_the_default_user() -> None:
    fake = FakeTracker(queues={"TEST": 2})
    async with client(fake, "anything") as http:
        r = await http.get("/v2/myself")
    assert r.status_code == 200
    me = r.json()
    assert (me["uid"], me["login"], me["display"]) == (1120000000000000, "robot", "Robot")
    assert fake.stats.by_route[("GET", "myself")] == 1


async def test_a_numeric_login_is_a_user_id_only_in_ascii_digits() -> None:
    fake = FakeTracker(queues={"TEST": 2}, users={"tok-n": "4242", "tok-u": "\u0663\u0664"})
    async with client(fake, "tok-n") as n, client(fake, "tok-u") as u:
        me_n, r_u = (await n.get("/v2/myself")).json(), await u.get("/v2/myself")
    assert (me_n["uid"], me_n["login"]) == (4242, "user4242")
    assert r_u.status_code == 200  # Arabic-Indic digits: a login, not a crash on int()
    assert r_u.json()["login"] == "\u0663\u0664"


async def test_each_token_is_its_user_and_creates_as_that_user() -> None:
    fake = FakeTracker(queues={"TEST": 4}, users={"tok-a": "alice", "tok-b": "bob"})
    async with client(fake, "tok-a") as a, client(fake, "tok-b") as b, client(fake, "x") as x:
        me_a, me_b = (await a.get("/v2/myself")).json(), (await b.get("/v2/myself")).json()
        assert (me_a["login"], me_b["login"]) == ("alice", "bob")
        assert me_a["uid"] != me_b["uid"]
        assert (await x.get("/v2/myself")).status_code == 401  # not one of the users
        made = (await create(a, "TEST-1", "TEST-2")).json()
        assert made["createdBy"]["id"] == str(me_a["uid"])
        assert made["createdBy"]["display"] == "alice"
        await create(b, "TEST-3", "TEST-4")
        listed = (await a.get("/v2/issues/TEST-4/links")).json()
    assert listed[0]["createdBy"]["id"] == str(me_b["uid"])
    assert [link.created_by for link in fake.links.values()] == ["alice", "bob"]


async def test_users_with_token_and_the_client_helper() -> None:
    fake = FakeTracker(queues={"TEST": 2}, token="main", users={"other": "olga"})
    async with client(fake, "main") as main, client(fake, "other") as other:
        assert (await main.get("/v2/myself")).json()["login"] == "robot"
        assert (await other.get("/v2/myself")).json()["login"] == "olga"
    only_users = FakeTracker(queues={"TEST": 2}, users={"u-tok": "ursula"})
    async with only_users.client() as lib:  # the helper picks a token the fake accepts
        await lib.links.create("TEST-1", "TEST-2", "relates")
    assert only_users.links_of("TEST-1")[0].created_by == "ursula"
    with pytest.raises(ValueError, match="users"):
        FakeTracker(users={"": "x"})


async def test_created_at_follows_the_fakes_clock_from_started_at() -> None:
    clock = Clock()
    fake = FakeTracker(queues={"TEST": 3}, clock=clock, started_at=START)
    async with client(fake) as http:
        first = (await create(http, "TEST-1", "TEST-2")).json()
        clock.now += 3600.25  # an hour of virtual time
        second = (await create(http, "TEST-1", "TEST-3")).json()
    assert first["createdAt"] == first["updatedAt"] == "2026-03-01T12:00:00.000+0000"
    assert second["createdAt"] == "2026-03-01T13:00:00.250+0000"
    assert STAMP.fullmatch(second["createdAt"])
    assert fake.links_of("TEST-3")[0].created_at == START + timedelta(seconds=3600.25)
    text = FakeTracker(clock=clock, started_at="2026-03-01T12:00:00Z")
    assert text._ctx.started_at == START


async def test_started_at_must_be_aware_and_defaults_to_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        FakeTracker(started_at=datetime(2026, 1, 1))
    fake = FakeTracker(queues={"TEST": 2})
    before = datetime.now(timezone.utc)
    link = fake.add_link("TEST-1", "TEST-2", "relates")
    assert before - timedelta(seconds=5) <= link.created_at <= datetime.now(timezone.utc)


async def test_changing_the_clock_keeps_wall_time_going() -> None:
    clock = Clock(50.0)
    fake = FakeTracker(queues={"TEST": 3}, clock=clock, started_at=START)
    clock.now = 60.0
    fake.clock = Clock(0.0)  # another origin: wall time goes on from 12:00:10
    link = fake.add_link("TEST-1", "TEST-2", "relates")
    assert link.created_at == START + timedelta(seconds=10)


async def test_add_link_with_author_and_date_predating_a_run() -> None:
    fake = FakeTracker(queues={"TEST": 3}, users={"tok": "me"})
    old = datetime(2020, 5, 4, 3, 2, 1, 500000, tzinfo=timezone.utc)
    link = fake.add_link("TEST-1", "TEST-2", "depends on", created_by="someone", created_at=old)
    assert (link.created_by, link.created_at) == ("someone", old)
    async with client(fake, "tok") as http:
        seen = (await http.get("/v2/issues/TEST-1/links")).json()[0]
        me = (await http.get("/v2/myself")).json()
    assert seen["createdAt"] == "2020-05-04T03:02:01.500+0000"
    assert seen["createdBy"]["display"] == "someone"
    assert seen["createdBy"]["id"] != str(me["uid"])  # not this token's user
    with pytest.raises(ValueError, match="aware"):
        fake.add_link("TEST-1", "TEST-3", "relates", created_at=datetime(2020, 1, 1))


# --- 403 for one queue ---------------------------------------------------------------------


async def test_forbidden_queue_refuses_writes_touching_it_and_the_rest_goes_on() -> None:
    fake = FakeTracker(queues={"OPEN": 3, "SECRET": 2}, forbidden_queues={"SECRET"})
    secret_link = fake.add_link("SECRET-1", "OPEN-3", "relates")  # set-up bypasses the knob
    async with client(fake) as http:
        for src, dst in (("SECRET-1", "OPEN-1"), ("OPEN-1", "SECRET-2")):
            r = await create(http, src, dst)
            assert r.status_code == 403
            assert "permission" in r.json()["errorMessages"][0]
        assert (await create(http, "OPEN-1", "OPEN-2")).status_code == 201
        r = await http.delete(f"/v2/issues/OPEN-3/links/{secret_link.id}")
        assert r.status_code == 403
        assert (await http.get("/v2/issues/SECRET-1/links")).status_code == 200  # reads work
        fake.forbidden_queues = set()
        assert (await create(http, "SECRET-1", "OPEN-1")).status_code == 201
    assert fake.stats.forbidden == 3
    assert len(fake.links) == 3
    with pytest.raises(TypeError, match="set of queue keys"):
        FakeTracker(forbidden_queues="SECRET")  # type: ignore[arg-type]


# --- malformed search pages ----------------------------------------------------------------


async def test_malformed_search_pages() -> None:
    fake = FakeTracker(queues={"TEST": 30}, malformed_search=1.0, seed=3)
    bodies = set()
    async with client(fake) as http:
        for page in range(1, 9):
            r = await http.post(
                "/v2/issues/_search", params={"perPage": 5, "page": page}, json={"queue": "TEST"}
            )
            assert r.status_code == 200
            assert r.headers["X-Total-Count"] == "30"  # the headers are right, the body is not
            bodies.add(r.content)
            try:
                data = json.loads(r.content)
            except ValueError:
                continue
            assert not (
                isinstance(data, list) and all(isinstance(x, dict) and "key" in x for x in data)
            )
        r = await http.post(
            "/v2/issues/_search", params={"scrollType": "sorted"}, json={"filter": {}}
        )
        assert r.status_code == 200
    assert len(bodies) >= 3  # several kinds of breakage
    assert fake.stats.malformed_pages == 9
    fake.malformed_search = 0.0
    async with client(fake) as http:
        r = await http.post("/v2/issues/_search", json={"queue": "TEST"})
    assert [x["key"] for x in r.json()][:2] == ["TEST-1", "TEST-2"]
    with pytest.raises(ValueError, match="malformed_search"):
        FakeTracker(malformed_search=2)
