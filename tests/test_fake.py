"""The fake Tracker, in process: routes, status codes, shapes, search modes and every knob."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from tracker_links._converter import structure_links
from tracker_links._models import Direction, Relationship, relationship_of
from tracker_links.testing import FakeIssue, FakeStats, FakeTracker, StoredLink

pytestmark = pytest.mark.anyio

HEADERS = {"Authorization": "OAuth t", "X-Org-ID": "1"}
LINK_FIELDS = {
    "self",
    "id",
    "type",
    "direction",
    "object",
    "createdBy",
    "updatedBy",
    "createdAt",
    "updatedAt",
}


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class SleepRecorder:
    """A sleep that records what it was asked to wait and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def client_for(fake: FakeTracker, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=fake.transport(),
        base_url="http://localhost",
        headers=headers or HEADERS,
    )


@pytest.fixture
def fake() -> FakeTracker:
    return FakeTracker(queues={"TEST": 10}, seed=0)


@pytest.fixture
async def http(fake: FakeTracker) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(fake) as client:
        yield client


async def create(
    http: httpx.AsyncClient, source: str, target: str, rel: str = "depends on"
) -> httpx.Response:
    return await http.post(
        f"/v2/issues/{source}/links", json={"relationship": rel, "issue": target}
    )


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"errors", "errorMessages", "statusCode"}
    assert body["statusCode"] == status
    assert body["errors"] == {}
    assert body["errorMessages"]
    assert all(isinstance(m, str) for m in body["errorMessages"])
    return body  # type: ignore[no-any-return]


# --- issues ------------------------------------------------------------------------------------


def test_queues_make_deterministic_distinct_issues() -> None:
    a = FakeTracker(queues={"TEST": 100, "OTHER": 3})
    b = FakeTracker(queues={"TEST": 100, "OTHER": 3})
    assert list(a.issues) == [f"TEST-{n}" for n in range(1, 101)] + [
        "OTHER-1",
        "OTHER-2",
        "OTHER-3",
    ]
    ids = [a.issues[k].id for k in a.issues]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)
    assert ids == [b.issues[k].id for k in b.issues]
    summaries = [a.issues[k].summary for k in a.issues]
    assert len(set(summaries)) == len(summaries)
    first = a.issues["TEST-1"]
    assert isinstance(first, FakeIssue)
    assert first.status == "open"
    assert first.assignee
    assert first.queue == "TEST"


def test_add_issue() -> None:
    fake = FakeTracker(queues={"TEST": 2})
    assert fake.add_issue(queue="TEST") == "TEST-3"
    assert fake.add_issue("TEST-10", summary="Ten", assignee="", status="closed") == "TEST-10"
    assert fake.add_issue("TEST-5") == "TEST-5"
    assert fake.add_issue(queue="TEST") == "TEST-11"
    assert fake.add_issue(queue="NEW") == "NEW-1"
    ten = fake.issues["TEST-10"]
    assert (ten.summary, ten.assignee, ten.status) == ("Ten", "", "closed")
    custom = fake.add_issue("NEW-7", issue_id="0123456789abcdef01234567")
    assert fake.issues[custom].id == "0123456789abcdef01234567"
    with pytest.raises(ValueError, match="already exists"):
        fake.add_issue("TEST-1")
    with pytest.raises(ValueError, match="invalid issue key"):
        fake.add_issue("test-1")
    with pytest.raises(ValueError, match="key or its queue"):
        fake.add_issue()
    with pytest.raises(ValueError, match="already used"):
        fake.add_issue("NEW-8", issue_id="0123456789abcdef01234567")


def test_knob_validation() -> None:
    for kwargs, match in (
        ({"fail_rate": 1.5}, "fail_rate"),
        ({"drop_rate": -0.1}, "drop_rate"),
        ({"fail_rate": 0.6, "drop_rate": 0.6}, "must not exceed"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_burst": 0}, "rate_burst"),
        ({"max_inflight": 0}, "max_inflight"),
        ({"latency": -1}, "latency"),
        ({"duplicate_status": 200}, "duplicate_status"),
        ({"queues": {"lower": 1}}, "invalid queue"),
    ):
        with pytest.raises(ValueError, match=match):
            FakeTracker(**kwargs)


@pytest.mark.parametrize(
    ("knob", "bad"),
    [
        ("latency", -1.0),
        ("jitter", -0.5),
        ("list_lag", -1.0),
        ("fail_rate", 1.5),
        ("drop_rate", -0.1),
        ("drop_after_write", 2.0),
        ("malformed_search", 1.1),
        ("duplicate_status", 200),
        ("max_inflight", 0),
        ("retry_after", -1.0),
        ("rate_limit", 0.0),
        ("rate_burst", 0),
        ("redirect_status", 303),
    ],
)
def test_a_knob_set_between_requests_is_checked_as_at_construction(knob: str, bad: object) -> None:
    fake = FakeTracker(queues={"TEST": 1}, rate_limit=10.0)
    before = getattr(fake, knob)
    with pytest.raises(ValueError, match=knob):
        setattr(fake, knob, bad)
    assert getattr(fake, knob) == before  # the old setting stays


async def test_get_issue_by_key_and_id(fake: FakeTracker, http: httpx.AsyncClient) -> None:
    r = await http.get("/v2/issues/TEST-3")
    assert r.status_code == 200
    issue = r.json()
    assert issue["key"] == "TEST-3"
    assert issue["id"] == fake.issues["TEST-3"].id
    assert {"self", "id", "key", "summary", "queue", "status", "assignee"} <= set(issue)
    assert issue["queue"]["key"] == "TEST"
    assert {"self", "id", "key", "display"} <= set(issue["queue"])
    assert issue["status"]["key"] == "open"
    r2 = await http.get(f"/v2/issues/{issue['id']}/")
    assert r2.json() == issue
    r3 = await http.get("/v2/issues/TEST-3?fields=key,summary")
    assert r3.json() == {"key": "TEST-3", "summary": issue["summary"]}
    assert_error(await http.get("/v2/issues/TEST-99"), 404)


async def test_unassigned_issue_has_no_assignee(fake: FakeTracker, http: httpx.AsyncClient) -> None:
    key = fake.add_issue(queue="TEST", assignee="")
    assert "assignee" not in (await http.get(f"/v2/issues/{key}")).json()
    await create(http, "TEST-1", key)
    (seen,) = (await http.get("/v2/issues/TEST-1/links")).json()
    assert "assignee" not in seen
    assert seen["status"]["key"] == "open"


async def test_linktypes(http: httpx.AsyncClient) -> None:
    r = await http.get("/v2/linktypes/")
    assert r.status_code == 200
    types = {t["id"]: t for t in r.json()}
    assert set(types) == {"relates", "depends", "subtask", "duplicates", "epic", "clone"}
    assert (types["depends"]["inward"], types["depends"]["outward"]) == ("Blocker", "Depends on")
    assert (types["subtask"]["inward"], types["subtask"]["outward"]) == (
        "Sub-issue",
        "Parent issue",
    )
    assert types["relates"]["self"].endswith("/v2/linktypes/relates")
    assert (await http.get("/v2/linktypes/depends")).json() == types["depends"]
    assert_error(await http.get("/v2/linktypes/nope"), 404)


# --- links: create, both sides, delete ------------------------------------------------------


async def test_create_returns_the_documented_shape(
    fake: FakeTracker, http: httpx.AsyncClient
) -> None:
    r = await create(http, "TEST-1", "TEST-2", "depends on")
    assert r.status_code == 201
    link = r.json()
    assert set(link) == LINK_FIELDS  # no assignee/status on create, as documented
    assert isinstance(link["id"], int)
    assert link["self"].endswith(f"/v2/issues/TEST-1/links/{link['id']}")
    assert link["type"] == {
        "self": "https://api.tracker.yandex.net/v2/linktypes/depends",
        "id": "depends",
        "inward": "Blocker",
        "outward": "Depends on",
    }
    assert link["direction"] == "outward"
    assert link["object"] == {
        "self": "https://api.tracker.yandex.net/v2/issues/TEST-2",
        "id": fake.issues["TEST-2"].id,
        "key": "TEST-2",
        "display": fake.issues["TEST-2"].summary,
    }
    assert {"self", "id", "display"} <= set(link["createdBy"])
    assert link["createdAt"] == link["updatedAt"]
    assert len(link["createdAt"]) == len("2014-06-18T12:06:02.401+0000")
    stored = fake.links[link["id"]]
    assert stored == StoredLink(
        link["id"], "TEST-1", "TEST-2", Relationship.DEPENDS_ON, stored.created_at
    )
    assert fake.stats.creates == 1


@pytest.mark.parametrize("rel", list(Relationship), ids=lambda r: r.value)
async def test_both_sides_of_a_link(
    fake: FakeTracker, http: httpx.AsyncClient, rel: Relationship
) -> None:
    fake.clone_on_create = True  # plain create refuses clone/original by default
    created = (await create(http, "TEST-4", "TEST-7", rel.value)).json()
    from_source = (await http.get("/v2/issues/TEST-4/links")).json()
    from_target = (await http.get(f"/v2/issues/{fake.issues['TEST-7'].id}/links")).json()
    assert len(from_source) == len(from_target) == 1
    src, dst = from_source[0], from_target[0]
    assert src["id"] == dst["id"] == created["id"]
    assert src["type"] == dst["type"] == created["type"]
    assert created["direction"] == src["direction"]
    assert src["object"]["key"] == "TEST-7"
    assert dst["object"]["key"] == "TEST-4"
    assert dst["self"].endswith(f"/v2/issues/TEST-7/links/{created['id']}")
    for seen in (src, dst):
        assert set(seen) == LINK_FIELDS | {"assignee", "status"}
    assert src["assignee"]["display"] == fake.issues["TEST-7"].assignee
    # Read through the library's own model: each side names the right relationship.
    assert relationship_of(src["type"]["id"], Direction(src["direction"])) is rel
    assert relationship_of(dst["type"]["id"], Direction(dst["direction"])) is rel.inverse
    (link_a,) = structure_links(from_source)
    (link_b,) = structure_links(from_target)
    assert link_a.relationship is rel
    assert link_b.relationship is rel.inverse
    assert link_a.target.key == "TEST-7"
    assert link_b.target.key == "TEST-4"


def test_the_service_table_matches_the_library_table() -> None:
    from tracker_links.testing._payloads import SOURCE_SIDE as _SOURCE_SIDE
    from tracker_links.testing._payloads import TARGET_SIDE as _TARGET_SIDE

    for rel in Relationship:
        assert _SOURCE_SIDE[rel.value][0] == rel.type_id
        assert _TARGET_SIDE[rel.value][0] == rel.type_id
        if rel is not Relationship.RELATES:
            assert _SOURCE_SIDE[rel.value][1] == rel.direction.value
            assert _TARGET_SIDE[rel.value][1] == rel.inverse.direction.value


async def test_links_listed_in_creation_order(http: httpx.AsyncClient) -> None:
    for target in ("TEST-5", "TEST-3", "TEST-9"):
        assert (await create(http, "TEST-1", target, "relates")).status_code == 201
    listed = (await http.get("/v2/issues/TEST-1/links")).json()
    assert [x["object"]["key"] for x in listed] == ["TEST-5", "TEST-3", "TEST-9"]
    assert (await http.get("/v2/issues/TEST-2/links")).json() == []


async def test_create_by_id_and_with_query_and_trailing_slash(
    fake: FakeTracker, http: httpx.AsyncClient
) -> None:
    source_id, target_id = fake.issues["TEST-1"].id, fake.issues["TEST-2"].id
    r = await http.post(
        f"/v2/issues/{source_id}/links/?notify=false",
        json={"relationship": "is subtask for", "issue": target_id},
    )
    assert r.status_code == 201
    assert r.json()["object"]["key"] == "TEST-2"
    assert fake.has_link("TEST-2", "TEST-1", "is parent task for")


async def test_delete_removes_both_sides(fake: FakeTracker, http: httpx.AsyncClient) -> None:
    link_id = (await create(http, "TEST-1", "TEST-2")).json()["id"]
    other = (await create(http, "TEST-1", "TEST-3")).json()["id"]
    r = await http.delete(f"/v2/issues/TEST-2/links/{link_id}")
    assert r.status_code == 204
    assert r.content == b""
    assert [x["id"] for x in (await http.get("/v2/issues/TEST-1/links")).json()] == [other]
    assert (await http.get("/v2/issues/TEST-2/links")).json() == []
    assert link_id not in fake.links
    assert fake.stats.deletes == 1
    assert_error(await http.delete(f"/v2/issues/TEST-1/links/{link_id}"), 404)
    # A link exists only on its two issues; an unknown issue or id is a 404 too.
    assert_error(await http.delete(f"/v2/issues/TEST-5/links/{other}"), 404)
    assert_error(await http.delete("/v2/issues/TEST-99/links/1"), 404)
    assert_error(await http.delete("/v2/issues/TEST-1/links/abc"), 404)
    # After a delete the same link may be created again.
    assert (await create(http, "TEST-2", "TEST-1", "is dependent by")).status_code == 201


async def test_get_one_link(http: httpx.AsyncClient) -> None:
    link_id = (await create(http, "TEST-1", "TEST-2")).json()["id"]
    r = await http.get(f"/v2/issues/TEST-2/links/{link_id}")
    assert r.status_code == 200
    assert r.json()["direction"] == "inward"
    assert_error(await http.get(f"/v2/issues/TEST-3/links/{link_id}"), 404)
    # Digits that are not ASCII ("²".isdigit() is true, int("²") fails): no such link, no crash.
    for weird in ("%C2%B2", "%D9%A3"):
        assert_error(await http.get(f"/v2/issues/TEST-1/links/{weird}"), 404)
        assert_error(await http.delete(f"/v2/issues/TEST-1/links/{weird}"), 404)


# --- status codes ------------------------------------------------------------------------------


async def test_404_for_unknown_issues_and_routes(http: httpx.AsyncClient) -> None:
    body = assert_error(await create(http, "TEST-99", "TEST-1"), 404)
    assert "TEST-99" in body["errorMessages"][0]
    body = assert_error(await create(http, "TEST-1", "NOPE-1"), 404)
    assert "NOPE-1" in body["errorMessages"][0]
    assert_error(await http.get("/v2/issues/TEST-99/links"), 404)
    assert_error(await http.get("/v2/queues"), 404)
    assert_error(await http.get("/v1/issues/TEST-1"), 404)
    assert_error(await http.get("/"), 404)
    assert_error(await http.put("/v2/issues/TEST-1/links"), 405)
    assert_error(await http.get("/v2/issues/_search"), 405)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"", b"[]", b'"x"', b'{"issue": "TEST-2"}', b'{"relationship": "relates"}'],
)
async def test_400_for_unreadable_bodies(http: httpx.AsyncClient, body: bytes) -> None:
    r = await http.post("/v2/issues/TEST-1/links", content=body)
    assert_error(r, 400)


async def test_400_for_non_string_fields(http: httpx.AsyncClient) -> None:
    r = await http.post("/v2/issues/TEST-1/links", json={"relationship": 1, "issue": "TEST-2"})
    assert_error(r, 400)
    r = await http.post("/v2/issues/TEST-1/links", json={"relationship": "relates", "issue": 2})
    assert_error(r, 400)


async def test_422_for_unknown_relationship_and_self_link(
    fake: FakeTracker, http: httpx.AsyncClient
) -> None:
    assert_error(await create(http, "TEST-1", "TEST-2", "blocks"), 422)
    assert_error(await create(http, "TEST-1", "TEST-2", "Depends On"), 422)
    assert_error(await create(http, "TEST-1", "TEST-1", "relates"), 422)
    assert_error(await create(http, "TEST-1", fake.issues["TEST-1"].id, "relates"), 422)
    assert len(fake.links) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Org-ID": "1"},
        {"Authorization": "", "X-Org-ID": "1"},
        {"Authorization": "OAuth", "X-Org-ID": "1"},
        {"Authorization": "OAuth   ", "X-Org-ID": "1"},
        {"Authorization": "Token abc", "X-Org-ID": "1"},
        {"Authorization": "abc", "X-Org-ID": "1"},
    ],
)
async def test_401_without_a_well_formed_authorization(
    fake: FakeTracker, headers: dict[str, str]
) -> None:
    async with client_for(fake, **headers) as http:
        assert_error(await http.get("/v2/issues/TEST-1/links"), 401)
        assert_error(await create(http, "TEST-1", "TEST-2"), 401)
    assert len(fake.links) == 0


async def test_any_token_accepted_unless_one_is_set() -> None:
    open_fake = FakeTracker(queues={"TEST": 2})
    for auth in ("OAuth anything", "Bearer t1.iam", "oauth lower"):
        async with client_for(open_fake, Authorization=auth, **{"X-Cloud-Org-ID": "x"}) as http:
            assert (await http.get("/v2/issues/TEST-1")).status_code == 200
    strict = FakeTracker(queues={"TEST": 2}, token="s3cret-token")
    async with client_for(strict, Authorization="OAuth wrong-token", **{"X-Org-ID": "1"}) as h:
        r = await h.get("/v2/issues/TEST-1")
        assert_error(r, 401)
        assert b"wrong-token" not in r.content
        assert b"s3cret" not in r.content
    async with client_for(strict, Authorization="Bearer s3cret-token", **{"X-Org-ID": "1"}) as h:
        assert (await h.get("/v2/issues/TEST-1")).status_code == 200


@pytest.mark.parametrize(
    "org",
    [{}, {"X-Org-ID": "1", "X-Cloud-Org-ID": "2"}, {"X-Org-ID": ""}],
    ids=["neither", "both", "empty"],
)
async def test_403_without_exactly_one_org_header(fake: FakeTracker, org: dict[str, str]) -> None:
    async with client_for(fake, Authorization="OAuth t", **org) as http:
        assert_error(await http.get("/v2/issues/TEST-1/links"), 403)


# --- duplicates --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [409, 422])
async def test_duplicate_refused_in_either_spelling(status: int) -> None:
    fake = FakeTracker(queues={"TEST": 5}, duplicate_status=status)
    async with client_for(fake) as http:
        assert (await create(http, "TEST-1", "TEST-2", "depends on")).status_code == 201
        assert_error(await create(http, "TEST-1", "TEST-2", "depends on"), status)
        assert_error(await create(http, "TEST-2", "TEST-1", "is dependent by"), status)
        assert (await create(http, "TEST-1", "TEST-3", "relates")).status_code == 201
        assert_error(await create(http, "TEST-3", "TEST-1", "relates"), status)
        # Another relationship on the same pair, or the reverse dependency, is another link.
        assert (await create(http, "TEST-1", "TEST-2", "relates")).status_code == 201
        assert (await create(http, "TEST-2", "TEST-1", "depends on")).status_code == 201
    assert fake.stats.duplicates_refused == 3
    assert fake.stats.duplicates_created == 0
    assert fake.stats.count("POST", status) == 3
    assert len(fake.links) == 4


async def test_duplicate_status_none_stores_and_counts_duplicates() -> None:
    fake = FakeTracker(queues={"TEST": 5}, duplicate_status=None)
    async with client_for(fake) as http:
        first = (await create(http, "TEST-1", "TEST-2", "depends on")).json()["id"]
        second = await create(http, "TEST-2", "TEST-1", "is dependent by")
        assert second.status_code == 201
        listed = (await http.get("/v2/issues/TEST-1/links")).json()
    assert [x["id"] for x in listed] == [first, second.json()["id"]]
    assert fake.stats.duplicates_created == 1
    assert fake.stats.duplicates_refused == 0
    assert len(fake.find_links("TEST-1", "TEST-2", "depends on")) == 2
    fake.add_link("TEST-1", "TEST-2", "depends on")  # allowed too when duplicates are
    assert len(fake.find_links("TEST-2", "TEST-1", "is dependent by")) == 3


def test_add_link_and_lookups() -> None:
    fake = FakeTracker(queues={"TEST": 5})
    link = fake.add_link("TEST-1", "TEST-2", "is parent task for")
    assert link.relationship is Relationship.IS_PARENT_TASK_FOR
    assert fake.links_of("TEST-2") == [link] == fake.links_of(fake.issues["TEST-1"].id)
    assert fake.find_links("TEST-2", "TEST-1") == [link]
    assert fake.find_links("TEST-2", "TEST-1", Relationship.IS_SUBTASK_FOR) == [link]
    assert fake.find_links("TEST-2", "TEST-1", "is parent task for") == []
    assert fake.has_link("TEST-1", "TEST-2", "is_parent_task_for")
    assert not fake.has_link("TEST-1", "TEST-3", "relates")
    assert list(fake.links) == [link.id]
    assert dict(fake.links) == {link.id: link}
    assert list(fake.links.values()) == [link]
    assert list(fake.links.items()) == [(link.id, link)]
    with pytest.raises(ValueError, match="already exists"):
        fake.add_link("TEST-2", "TEST-1", "is subtask for")
    with pytest.raises(ValueError, match="two different"):
        fake.add_link("TEST-1", "TEST-1", "relates")
    with pytest.raises(KeyError):
        fake.add_link("TEST-1", "TEST-77", "relates")
    with pytest.raises(KeyError):
        fake.links_of("NOPE-1")


# --- search: page mode -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"filter": {"queue": "TEST"}},
        {"filter": {"queue": "TEST", "status": "open"}, "order": "+key"},
        {"query": "Queue: TEST"},
        {"query": 'queue: test "Have Links To Queue": TEST Sort By: Key ASC'},
        {"queue": "TEST"},
    ],
)
async def test_search_pages_see_every_issue_once(body: dict[str, Any]) -> None:
    fake = FakeTracker(queues={"TEST": 23, "OTHER": 4})
    seen: list[str] = []
    async with client_for(fake) as http:
        url: str | None = "/v2/issues/_search?perPage=5"
        pages = 0
        while url is not None:
            r = await http.post(url, json=body)
            assert r.status_code == 200
            assert r.headers["X-Total-Count"] == "23"
            assert r.headers["X-Total-Pages"] == "5"
            assert 'rel="first"' in r.headers["Link"]
            seen += [issue["key"] for issue in r.json()]
            url = r.links.get("next", {}).get("url")
            pages += 1
    assert pages == 5
    assert seen == [f"TEST-{n}" for n in range(1, 24)]


async def test_search_page_defaults_and_explicit_pages(http: httpx.AsyncClient) -> None:
    r = await http.post("/v2/issues/_search", json={"queue": "TEST"})
    assert len(r.json()) == 10
    assert r.headers["X-Total-Pages"] == "1"
    assert "next" not in r.links
    r = await http.post("/v2/issues/_search?page=3&perPage=4", json={"queue": "TEST"})
    assert [i["key"] for i in r.json()] == ["TEST-9", "TEST-10"]
    r = await http.post("/v2/issues/_search?page=9&perPage=4", json={"queue": "TEST"})
    assert r.json() == []
    assert r.headers["X-Total-Count"] == "10"
    assert_error(await http.post("/v2/issues/_search?perPage=x", json={"queue": "TEST"}), 400)


async def test_search_order_is_numeric_and_keys_selector(fake: FakeTracker) -> None:
    fake.add_issue("TEST-100")
    fake.add_issue("TEST-20")
    async with client_for(fake) as http:
        r = await http.post("/v2/issues/_search?perPage=100", json={"filter": {"queue": "TEST"}})
        keys = [i["key"] for i in r.json()]
        assert keys == [f"TEST-{n}" for n in range(1, 11)] + ["TEST-20", "TEST-100"]
        r = await http.post(
            "/v2/issues/_search", json={"keys": ["TEST-10", "TEST-2", "NOPE-1", "TEST-2"]}
        )
        assert [i["key"] for i in r.json()] == ["TEST-2", "TEST-10"]
        r = await http.post("/v2/issues/_search", json={"keys": "TEST-3"})
        assert [i["key"] for i in r.json()] == ["TEST-3"]
        r = await http.post("/v2/issues/_count", json={"query": "Queue: TEST"})
        assert r.json() == 12


async def test_search_fields(http: httpx.AsyncClient) -> None:
    r = await http.post("/v2/issues/_search?fields=key&perPage=3", json={"queue": "TEST"})
    assert r.json() == [{"key": "TEST-1"}, {"key": "TEST-2"}, {"key": "TEST-3"}]
    assert "fields=key" in r.links["next"]["url"]
    r = await http.post("/v2/issues/_search?fields=summary,nope", json={"keys": ["TEST-1"]})
    assert r.json() == [{"key": "TEST-1", "summary": "TEST issue 1"}]


@pytest.mark.parametrize(
    "body",
    [
        {"queue": "TEST", "filter": {"queue": "TEST"}},
        {"keys": ["TEST-1"], "query": "Queue: TEST"},
        {},
        {"query": "Assignee: me()"},
        {"filter": "TEST"},
        {"keys": [1]},
    ],
)
async def test_search_400(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert_error(await http.post("/v2/issues/_search", json=body), 400)


# --- search: scroll mode -----------------------------------------------------------------------


async def scroll_all(
    http: httpx.AsyncClient, body: dict[str, Any], first_query: str
) -> tuple[list[str], list[httpx.Response]]:
    responses = [await http.post(f"/v2/issues/_search?{first_query}", json=body)]
    while "X-Scroll-Id" in responses[-1].headers:
        last = responses[-1]
        params = {
            "scrollId": last.headers["X-Scroll-Id"],
            "scrollToken": last.headers["X-Scroll-Token"],
        }
        responses.append(await http.post("/v2/issues/_search", params=params, json=body))
        assert len(responses) < 100
    keys = [issue["key"] for r in responses for issue in r.json()]
    return keys, responses


@pytest.mark.parametrize("scroll_type", ["sorted", "unsorted"])
async def test_scroll_sees_every_issue_once(scroll_type: str) -> None:
    fake = FakeTracker(queues={"TEST": 23, "OTHER": 2})
    async with client_for(fake) as http:
        keys, responses = await scroll_all(
            http,
            {"filter": {"queue": "TEST"}},
            f"scrollType={scroll_type}&perScroll=7&scrollTTLMillis=10000",
        )
    assert sorted(keys, key=lambda k: int(k.split("-")[1])) == [f"TEST-{n}" for n in range(1, 24)]
    assert len(set(keys)) == 23
    assert [len(r.json()) for r in responses] == [7, 7, 7, 2]
    assert all(r.status_code == 200 and r.headers["X-Total-Count"] == "23" for r in responses)
    assert "X-Scroll-Token" not in responses[-1].headers
    assert len({r.headers["X-Scroll-Id"] for r in responses[:-1]}) == 1


async def test_scroll_defaults_query_body_and_fields(fake: FakeTracker) -> None:
    for n in range(11, 251):
        fake.add_issue(f"TEST-{n}")
    async with client_for(fake) as http:
        keys, responses = await scroll_all(
            http, {"query": "Queue: TEST"}, "scrollType=unsorted&fields=key"
        )
    assert [len(r.json()) for r in responses] == [100, 100, 50]
    assert keys == [f"TEST-{n}" for n in range(1, 251)]
    assert responses[0].json()[0] == {"key": "TEST-1"}


async def test_scroll_limits(fake: FakeTracker) -> None:
    for n in range(11, 1201):
        fake.add_issue(f"TEST-{n}")
    async with client_for(fake) as http:
        r = await http.post(
            "/v2/issues/_search?scrollType=sorted&perScroll=5000", json={"query": "Queue: TEST"}
        )
    assert len(r.json()) == 1000


async def test_scroll_last_page_in_one(http: httpx.AsyncClient) -> None:
    r = await http.post("/v2/issues/_search?scrollType=sorted", json={"filter": {"queue": "TEST"}})
    assert len(r.json()) == 10
    assert r.headers["X-Total-Count"] == "10"
    assert "X-Scroll-Id" not in r.headers
    assert "X-Scroll-Token" not in r.headers


@pytest.mark.parametrize("body", [{"keys": ["TEST-1"]}, {"queue": "TEST"}])
async def test_scroll_not_supported_with_keys_or_queue(
    http: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    r = await http.post("/v2/issues/_search?scrollType=sorted", json=body)
    assert assert_error(r, 400)["errorMessages"] == ["Scroll is not supported"]


async def test_scroll_expired_or_unknown_is_403() -> None:
    clock = FakeClock()
    fake = FakeTracker(queues={"TEST": 30}, clock=clock)
    body = {"filter": {"queue": "TEST"}}
    async with client_for(fake) as http:
        first = await http.post(
            "/v2/issues/_search?scrollType=sorted&perScroll=10&scrollTTLMillis=2000", json=body
        )
        sid, token = first.headers["X-Scroll-Id"], first.headers["X-Scroll-Token"]
        r = await http.post(
            "/v2/issues/_search", params={"scrollId": "f" * 24, "scrollToken": token}, json=body
        )
        assert assert_error(r, 403)["errorMessages"] == ["Expired signature"]
        r = await http.post(
            "/v2/issues/_search", params={"scrollId": sid, "scrollToken": "bad"}, json=body
        )
        assert_error(r, 403)
        clock.now += 1.5  # within the TTL, which each page renews
        second = await http.post(
            "/v2/issues/_search", params={"scrollId": sid, "scrollToken": token}, json=body
        )
        assert next(i["key"] for i in second.json()) == "TEST-11"
        # A retried follow-up (the answer was lost) gets the same page again.
        again = await http.post(
            "/v2/issues/_search", params={"scrollId": sid, "scrollToken": token}, json=body
        )
        assert again.json() == second.json()
        clock.now += 2.5
        r = await http.post(
            "/v2/issues/_search",
            params={"scrollId": sid, "scrollToken": again.headers["X-Scroll-Token"]},
            json=body,
        )
        assert assert_error(r, 403)["errorMessages"] == ["Expired signature"]


# --- knobs -------------------------------------------------------------------------------------


async def test_latency_and_jitter_are_slept_with_the_injected_sleep() -> None:
    sleep = SleepRecorder()
    fake = FakeTracker(queues={"TEST": 3}, latency=0.05, jitter=0.02, seed=3, sleep=sleep)
    async with client_for(fake) as http:
        for _ in range(20):
            await http.get("/v2/issues/TEST-1/links")
        await create(http, "TEST-1", "TEST-2")
        async with client_for(fake, Authorization="bad") as bad:
            assert (await bad.get("/v2/issues/TEST-1")).status_code == 401
    assert len(sleep.calls) == 22  # every request, writes, reads and refusals alike
    assert all(0.05 <= d <= 0.07 for d in sleep.calls)
    assert len(set(sleep.calls)) > 10

    again = SleepRecorder()
    fake2 = FakeTracker(queues={"TEST": 3}, latency=0.05, jitter=0.02, seed=3, sleep=again)
    async with client_for(fake2) as http:
        for _ in range(22):
            await http.get("/v2/issues/TEST-1")
    assert again.calls == sleep.calls


async def test_no_sleep_without_latency(fake: FakeTracker, http: httpx.AsyncClient) -> None:
    sleep = SleepRecorder()
    fake.sleep = sleep
    await http.get("/v2/issues/TEST-1")
    fake.latency = 0.25
    await http.get("/v2/issues/TEST-1")
    assert sleep.calls == [0.25]


async def test_rate_limit_token_bucket() -> None:
    clock = FakeClock()
    fake = FakeTracker(queues={"TEST": 3}, rate_limit=10, rate_burst=3, retry_after=2, clock=clock)
    async with client_for(fake) as http:
        statuses = [(await http.get("/v2/issues/TEST-1")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        r = await create(http, "TEST-1", "TEST-2")
        body = assert_error(r, 429)
        assert r.headers["Retry-After"] == "2"
        assert "limit" in body["errorMessages"][0]
        assert len(fake.links) == 0  # a refused write writes nothing
        clock.now += 0.1  # one token back
        assert (await create(http, "TEST-1", "TEST-2")).status_code == 201
        assert (await http.get("/v2/issues/TEST-1")).status_code == 429
        clock.now += 10  # refills to the burst, no more
        statuses = [(await http.get("/v2/issues/TEST-1")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
    assert fake.stats.rate_limited == 4
    assert fake.stats.count(status=429) == 4
    assert fake.stats.count("GET", 429) == 3


@pytest.mark.parametrize(("retry_after", "header"), [(None, None), (0.5, "0.5"), (1, "1")])
async def test_retry_after_header(retry_after: float | None, header: str | None) -> None:
    fake = FakeTracker(
        queues={"TEST": 1}, rate_limit=1, rate_burst=1, retry_after=retry_after, clock=FakeClock()
    )
    async with client_for(fake) as http:
        await http.get("/v2/issues/TEST-1")
        r = await http.get("/v2/issues/TEST-1")
    assert r.status_code == 429
    assert r.headers.get("Retry-After") == header


async def test_max_inflight() -> None:
    arrived = 0
    all_in = anyio.Event()
    release = anyio.Event()

    async def gate(seconds: float) -> None:
        nonlocal arrived
        arrived += 1
        if arrived == 3:
            all_in.set()
        await release.wait()

    fake = FakeTracker(queues={"TEST": 3}, latency=0.01, max_inflight=2, sleep=gate)
    statuses: list[int] = []
    async with client_for(fake) as http:

        async def get() -> None:
            statuses.append((await http.get("/v2/issues/TEST-1/links")).status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(get)
            await all_in.wait()
            assert fake.inflight == 3
            release.set()
        assert fake.inflight == 0
        assert (await http.get("/v2/issues/TEST-1/links")).status_code == 200
    assert sorted(statuses) == [200, 200, 429]
    assert fake.stats.peak_inflight == 3
    assert fake.stats.rate_limited == 1


async def test_fail_rate_injects_5xx_without_writing() -> None:
    fake = FakeTracker(queues={"TEST": 5}, fail_rate=1.0, seed=1)
    async with client_for(fake) as http:
        statuses = set()
        for _ in range(30):
            r = await create(http, "TEST-1", "TEST-2")
            assert_error(r, r.status_code)
            statuses.add(r.status_code)
        assert statuses == {500, 502, 503}
        assert (await http.get("/v2/issues/TEST-1/links")).status_code in statuses
    assert len(fake.links) == 0
    assert fake.stats.creates == 0
    assert fake.stats.injected_failures == 31
    fake.fail_rate = 0.0
    async with client_for(fake) as http:
        assert (await create(http, "TEST-1", "TEST-2")).status_code == 201


async def test_drop_before_write() -> None:
    fake = FakeTracker(queues={"TEST": 5}, drop_rate=1.0, drop_after_write=0.0)
    async with client_for(fake) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await create(http, "TEST-1", "TEST-2")
        with pytest.raises(httpx.TransportError):
            await http.get("/v2/issues/TEST-1/links")
    assert len(fake.links) == 0
    assert fake.stats.dropped == 2
    assert fake.stats.total == 2
    assert fake.stats.count() == 0


async def test_drop_after_write_then_naive_retry() -> None:
    fake = FakeTracker(queues={"TEST": 5}, drop_rate=1.0, drop_after_write=1.0)
    async with client_for(fake) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await create(http, "TEST-1", "TEST-2")
        assert fake.has_link("TEST-1", "TEST-2", "depends on")  # the write happened
        fake.drop_rate = 0.0
        assert_error(await create(http, "TEST-1", "TEST-2"), 422)  # the naive retry
    assert fake.stats.creates == 1
    assert fake.stats.dropped == 1
    assert fake.stats.duplicates_refused == 1

    lax = FakeTracker(
        queues={"TEST": 5}, drop_rate=1.0, drop_after_write=1.0, duplicate_status=None
    )
    async with client_for(lax) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await create(http, "TEST-1", "TEST-2")
        lax.drop_rate = 0.0
        assert (await create(http, "TEST-1", "TEST-2")).status_code == 201
    assert len(lax.links) == 2
    assert lax.stats.duplicates_created == 1


async def test_drop_share_after_write_is_seeded() -> None:
    fake = FakeTracker(queues={"TEST": 60}, drop_rate=1.0, drop_after_write=0.5, seed=5)
    async with client_for(fake) as http:
        for n in range(2, 42):
            with pytest.raises(httpx.RemoteProtocolError):
                await create(http, "TEST-1", f"TEST-{n}")
    assert fake.stats.dropped == 40
    assert 8 <= len(fake.links) <= 32  # about half took effect before the connection died


async def test_list_lag_hides_new_links_for_a_while() -> None:
    clock = FakeClock()
    fake = FakeTracker(queues={"TEST": 5}, list_lag=2.0, clock=clock)
    async with client_for(fake) as http:
        assert (await create(http, "TEST-1", "TEST-2")).status_code == 201
        assert (await http.get("/v2/issues/TEST-1/links")).json() == []
        assert (await http.get("/v2/issues/TEST-2/links")).json() == []
        assert_error(await create(http, "TEST-1", "TEST-2"), 422)  # the write is not lagging
        clock.now += 1.0
        assert (await create(http, "TEST-1", "TEST-3")).status_code == 201
        clock.now += 1.0
        listed = (await http.get("/v2/issues/TEST-1/links")).json()
        assert [x["object"]["key"] for x in listed] == ["TEST-2"]
        clock.now += 1.0
        listed = (await http.get("/v2/issues/TEST-1/links")).json()
        assert [x["object"]["key"] for x in listed] == ["TEST-2", "TEST-3"]
    assert len(fake.links_of("TEST-1")) == 2  # the helpers see everything at once


async def test_seed_makes_runs_reproducible() -> None:
    async def run(seed: int) -> tuple[list[object], list[float]]:
        sleep = SleepRecorder()
        fake = FakeTracker(
            queues={"TEST": 80},
            seed=seed,
            fail_rate=0.2,
            drop_rate=0.2,
            jitter=0.01,
            duplicate_status=None,
            sleep=sleep,
        )
        outcomes: list[object] = []
        async with client_for(fake) as http:
            for n in range(2, 62):
                try:
                    outcomes.append((await create(http, "TEST-1", f"TEST-{n}")).status_code)
                except httpx.RemoteProtocolError:
                    outcomes.append("drop")
        outcomes.append(sorted(fake.links))
        return outcomes, sleep.calls

    first, second, other = await run(7), await run(7), await run(8)
    assert first == second
    assert first != other
    kinds = set(first[0][:-1])
    assert {"drop", 201} <= kinds
    assert kinds & {500, 502, 503}


# --- stats -------------------------------------------------------------------------------------


async def test_stats(fake: FakeTracker, http: httpx.AsyncClient) -> None:
    await create(http, "TEST-1", "TEST-2")
    await create(http, "TEST-1", "TEST-2")
    await http.get("/v2/issues/TEST-1/links")
    await http.get("/v2/issues/TEST-99/links")
    await http.post("/v2/issues/_search", json={"queue": "TEST"})
    stats = fake.stats
    assert isinstance(stats, FakeStats)
    assert stats.count("POST", 201) == 1
    assert stats.count("post", 422) == 1
    assert stats.count("GET") == 2
    assert stats.count(status=404) == 1
    assert stats.count() == stats.total == 5
    assert stats.by_route[("POST", "links.create")] == 2
    assert stats.by_route[("GET", "links.list")] == 2
    assert stats.by_route[("POST", "search")] == 1
    assert stats.creates == 1
    assert stats.duplicates_refused == 1
    assert stats.peak_inflight == 1
    data = stats.as_dict()
    assert data["requests"]["POST 201"] == 1
    assert data["total"] == 5
    json.dumps(data)
    assert "POST 201" in repr(stats)
    stats.reset()
    assert stats.total == 0
    assert stats.creates == 0
    assert not stats.by_route
    assert len(fake.links) == 1  # reset keeps the data


def test_sync_handle_and_repr() -> None:
    fake = FakeTracker(queues={"TEST": 2}, token="tok-123")
    reply = fake.handle(
        "POST",
        "/v2/issues/TEST-1/links",
        "",
        {"authorization": "OAuth tok-123", "x-org-id": "1"},
        b'{"relationship": "relates", "issue": "TEST-2"}',
    )
    assert reply.status == 201
    assert not reply.dropped
    assert json.loads(reply.body)["direction"] == "inward"  # as in the documented example
    assert "tok-123" not in repr(fake)
    assert "links=1" in repr(fake)


# --- the library's client ----------------------------------------------------------------------


async def test_client_is_wired_to_the_fake() -> None:
    fake = FakeTracker(queues={"TEST": 5}, seed=0)
    async with fake.client() as client:
        link = await client.links.create("TEST-1", "TEST-2", "depends on")
        seen = await client.links.get("TEST-2")
    assert [x.id for x in seen] == [link.id]
    assert seen[0].relationship is Relationship.IS_DEPENDENT_BY
    assert fake.stats.count("POST", 201) == 1
