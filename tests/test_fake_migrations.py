"""The fake for migrations: the import endpoint, clone links, moved issues, API v3."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tracker_links import Relationship
from tracker_links.testing import FakeTracker

pytestmark = pytest.mark.anyio

HEADERS = {"Authorization": "OAuth t", "X-Org-ID": "1"}
IMPORT = "/v2/issues/{}/links/_import"


def client(fake: FakeTracker, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=fake.transport(), base_url="http://localhost", headers=HEADERS, **kwargs
    )


def history(**extra: Any) -> dict[str, Any]:
    return {
        "relationship": "depends on",
        "issue": "TEST-2",
        "createdAt": "2019-04-05T06:07:08.123+0300",
        "createdBy": "jdoe",
        **extra,
    }


# --- import --------------------------------------------------------------------------------


async def test_import_stores_and_returns_the_history() -> None:
    fake = FakeTracker(queues={"TEST": 3})
    async with client(fake) as http:
        r = await http.post(
            IMPORT.format("TEST-1"),
            json=history(updatedAt="2020-01-02T03:04:05.000+0000", updatedBy=1120000000000042),
        )
        assert r.status_code == 200  # not 201
        body = r.json()
        assert body["createdAt"] == "2019-04-05T03:07:08.123+0000"  # the same instant, in UTC
        assert body["createdBy"]["display"] == "jdoe"
        assert body["updatedAt"] == "2020-01-02T03:04:05.000+0000"
        assert body["updatedBy"]["id"] == "1120000000000042"
        (seen,) = (await http.get("/v2/issues/TEST-2/links")).json()
    assert (seen["id"], seen["createdAt"], seen["direction"]) == (
        body["id"],
        body["createdAt"],
        "inward",
    )
    (link,) = fake.links.values()
    assert link.created_at == datetime(2019, 4, 5, 6, 7, 8, 123000, timezone(timedelta(hours=3)))
    assert (link.created_by, link.updated_by) == ("jdoe", "1120000000000042")
    assert link.updated_at == datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert fake.has_link("TEST-2", "TEST-1", "is dependent by")
    assert (fake.stats.imports, fake.stats.creates) == (1, 1)
    assert fake.stats.by_route[("POST", "links.import")] == 1


async def test_import_without_update_shows_the_creation_as_update() -> None:
    fake = FakeTracker(queues={"TEST": 3})
    async with client(fake) as http:
        body = (await http.post(IMPORT.format("TEST-1"), json=history())).json()
    assert body["updatedAt"] == body["createdAt"]
    assert body["updatedBy"] == body["createdBy"]
    (link,) = fake.links.values()
    assert (link.updated_at, link.updated_by) == (None, None)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"createdAt": None}, "required"),
        ({"createdBy": None}, "required"),
        ({"updatedAt": "2020-01-02T03:04:05.000+0000"}, "together"),
        ({"updatedBy": "someone"}, "together"),
        ({"createdAt": "2019-04-05"}, "YYYY-MM-DD"),
        ({"createdAt": "2019-04-05T06:07:08+0300"}, "YYYY-MM-DD"),  # no milliseconds
        ({"createdAt": "2019-04-05T06:07:08.123Z"}, "YYYY-MM-DD"),
        ({"createdAt": "2019-04-05T06:07:08.123+03:00"}, "YYYY-MM-DD"),
        ({"createdAt": "2019-13-05T06:07:08.123+0300"}, "not a date"),
        ({"createdAt": 1554433628}, "YYYY-MM-DD"),
        ({"createdBy": "two words"}, "login"),
        ({"createdBy": True}, "login"),
        ({"createdBy": ""}, "login"),
    ],
)
async def test_import_400s(change: dict[str, Any], words: str) -> None:
    fake = FakeTracker(queues={"TEST": 3})
    body = {k: v for k, v in history(**change).items() if v is not None}
    async with client(fake) as http:
        r = await http.post(IMPORT.format("TEST-1"), json=body)
    assert r.status_code == 400, r.text
    assert words in r.json()["errorMessages"][0]
    assert len(fake.links) == 0


async def test_import_forbidden_404_422_and_405() -> None:
    fake = FakeTracker(queues={"TEST": 3}, import_forbidden=True)
    async with client(fake) as http:
        r = await http.post(IMPORT.format("TEST-1"), json=history())
        assert r.status_code == 403
        assert "administrator" in r.json()["errorMessages"][0]
        assert fake.stats.forbidden == 1
        fake.import_forbidden = False
        assert (await http.post(IMPORT.format("TEST-9"), json=history())).status_code == 404
        assert (await http.post(IMPORT.format("TEST-1"), json=history())).status_code == 200
        again = await http.post(
            IMPORT.format("TEST-2"), json=history(issue="TEST-1", relationship="is dependent by")
        )
        assert again.status_code == 422  # the same link, in the other spelling
        assert (await http.get(IMPORT.format("TEST-1"))).status_code == 405
    assert len(fake.links) == 1


# --- clone / original ----------------------------------------------------------------------


async def test_clone_and_original_by_import_each_the_inverse_of_the_other() -> None:
    fake = FakeTracker(queues={"TEST": 4})
    async with client(fake) as http:
        r = await http.post(IMPORT.format("TEST-1"), json=history(relationship="clone"))
        assert r.status_code == 200
        assert (r.json()["type"]["id"], r.json()["direction"]) == ("clone", "outward")
        (other,) = (await http.get("/v2/issues/TEST-2/links")).json()
        assert (other["type"]["id"], other["direction"]) == ("clone", "inward")
        r = await http.post(
            IMPORT.format("TEST-2"), json=history(relationship="original", issue="TEST-1")
        )
        assert r.status_code == 422  # the same link read from the other issue
        types = (await http.get("/v2/linktypes/clone")).json()
    assert (types["inward"], types["outward"]) == ("Original", "Clone")
    assert fake.has_link("TEST-1", "TEST-2", "clone")
    assert fake.has_link("TEST-2", "TEST-1", "original")
    assert not fake.has_link("TEST-1", "TEST-2", "original")
    fake.add_link("TEST-3", "TEST-4", "original")
    # The library knows clone/original (Relationship.ORIGINAL), so the fake stores its enum.
    assert fake.find_links("TEST-4", "TEST-3", "clone")[0].relationship is Relationship.ORIGINAL


async def test_plain_create_refuses_clone_unless_told() -> None:
    fake = FakeTracker(queues={"TEST": 3})
    async with client(fake) as http:
        for rel in ("clone", "original"):
            r = await http.post(
                "/v2/issues/TEST-1/links", json={"relationship": rel, "issue": "TEST-2"}
            )
            assert r.status_code == 422
            assert "_import" in r.json()["errorMessages"][0]
        fake.clone_on_create = True
        r = await http.post(
            "/v2/issues/TEST-1/links", json={"relationship": "clone", "issue": "TEST-2"}
        )
    assert r.status_code == 201
    assert fake.has_link("TEST-2", "TEST-1", "original")


# --- moved issues --------------------------------------------------------------------------


async def test_move_issue_redirects_the_old_key_and_keeps_the_links() -> None:
    fake = FakeTracker(queues={"TEST": 5, "NEW": 0})
    before = fake.add_link("TEST-1", "TEST-3", "depends on")
    issue_id = fake.issues["TEST-3"].id
    assert fake.move_issue("TEST-3", "NEW") == "NEW-1"
    assert "TEST-3" not in fake.issues
    moved = fake.issues["NEW-1"]
    assert (moved.id, moved.aliases, moved.queue, moved.number) == (issue_id, ("TEST-3",), "NEW", 1)
    (link,) = fake.links_of("TEST-1")
    assert (link.id, link.source, link.target) == (before.id, "TEST-1", "NEW-1")
    assert fake.links_of("TEST-3") == fake.links_of("NEW-1")  # a test may name the old key
    async with client(fake) as http:
        r = await http.get("/v2/issues/TEST-3/links", params={"a": "1"})
        assert r.status_code == 301
        assert r.headers["Location"] == "http://localhost/v2/issues/NEW-1/links?a=1"
        r = await http.post(
            "/v2/issues/TEST-3/links", json={"relationship": "relates", "issue": "TEST-2"}
        )
        assert r.status_code == 301
        assert r.headers["Location"] == "http://localhost/v2/issues/NEW-1/links"
        assert len(fake.links) == 1  # a redirected write wrote nothing
        r = await http.delete(f"/v3/issues/TEST-3/links/{before.id}")
        assert r.headers["Location"] == f"http://localhost/v3/issues/NEW-1/links/{before.id}"
        (seen,) = (await http.get("/v2/issues/TEST-1/links")).json()
        assert seen["object"]["key"] == "NEW-1"
        (back,) = (await http.get("/v2/issues/NEW-1/links")).json()
        assert back["object"]["key"] == "TEST-1"
        # a body may still name the old key
        r = await http.post(
            "/v2/issues/TEST-2/links", json={"relationship": "relates", "issue": "TEST-3"}
        )
        assert r.status_code == 201
        assert r.json()["object"]["key"] == "NEW-1"
    assert fake.stats.redirects == 3


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirect_status_and_a_client_that_follows(status: int) -> None:
    fake = FakeTracker(queues={"TEST": 3}, redirect_status=status)
    fake.move_issue("TEST-2", "OTHER-7")
    async with client(fake) as http:
        r = await http.get("/v2/issues/TEST-2")
        assert r.status_code == status
        assert r.headers["Location"] == "http://localhost/v2/issues/OTHER-7"
    async with client(fake, follow_redirects=True) as http:
        r = await http.get("/v2/issues/TEST-2")
    assert r.status_code == 200
    assert (r.json()["key"], r.json()["aliases"]) == ("OTHER-7", ["TEST-2"])


async def test_search_results_carry_aliases_and_find_old_keys() -> None:
    fake = FakeTracker(queues={"TEST": 5})
    fake.move_issue("TEST-5", "NEW")
    fake.move_issue("NEW-1", "LAST-3")  # moved twice: both old keys are aliases
    assert fake.add_issue(queue="TEST") == "TEST-6"  # a former key is never reused
    async with client(fake) as http:
        r = await http.post("/v2/issues/_search", json={"keys": ["TEST-5", "TEST-1"]})
        found = {x["key"]: x for x in r.json()}
        assert set(found) == {"TEST-1", "LAST-3"}
        assert found["LAST-3"]["aliases"] == ["TEST-5", "NEW-1"]
        assert "aliases" not in found["TEST-1"]
        r = await http.post(
            "/v2/issues/_search", params={"fields": "key,aliases"}, json={"queue": "LAST"}
        )
        assert r.json() == [{"key": "LAST-3", "aliases": ["TEST-5", "NEW-1"]}]
        r = await http.post("/v2/issues/_search", json={"queue": "TEST"})
        assert [x["key"] for x in r.json()] == ["TEST-1", "TEST-2", "TEST-3", "TEST-4", "TEST-6"]


def test_move_issue_refuses_what_cannot_be() -> None:
    fake = FakeTracker(queues={"TEST": 3})
    with pytest.raises(KeyError):
        fake.move_issue("TEST-9", "NEW")
    with pytest.raises(ValueError, match="already exists"):
        fake.move_issue("TEST-1", "TEST-2")
    with pytest.raises(ValueError, match="queue"):
        fake.move_issue("TEST-1", "lower")
    fake.move_issue("TEST-1", "NEW")
    with pytest.raises(ValueError, match="already exists"):
        fake.add_issue("TEST-1")  # the alias keeps its key


# --- API v3 --------------------------------------------------------------------------------


async def test_every_route_under_v3_with_v3_self_urls() -> None:
    fake = FakeTracker(queues={"TEST": 4})
    async with client(fake) as http:
        r = await http.post(
            "/v3/issues/TEST-1/links", json={"relationship": "depends on", "issue": "TEST-2"}
        )
        assert r.status_code == 201
        made = r.json()
        assert made["self"].endswith(f"/v3/issues/TEST-1/links/{made['id']}")
        assert made["type"]["self"].endswith("/v3/linktypes/depends")
        assert made["object"]["self"].endswith("/v3/issues/TEST-2")
        (listed,) = (await http.get("/v3/issues/TEST-2/links")).json()
        assert listed["self"].endswith(f"/v3/issues/TEST-2/links/{made['id']}")
        one = (await http.get(f"/v3/issues/TEST-1/links/{made['id']}")).json()
        assert one["id"] == made["id"]
        assert (await http.get("/v3/issues/TEST-1")).json()["self"].endswith("/v3/issues/TEST-1")
        types = (await http.get("/v3/linktypes")).json()
        assert all("/v3/linktypes/" in t["self"] for t in types)
        assert (await http.get("/v3/linktypes/relates")).status_code == 200
        assert (await http.get("/v3/myself")).json()["login"] == "robot"
        page = await http.post("/v3/issues/_search", json={"queue": "TEST"})
        assert "/v3/issues/_search" in page.headers["Link"]
        assert (await http.post("/v3/issues/_count", json={"queue": "TEST"})).json() == 4
        r = await http.post("/v3/issues/TEST-3/links/_import", json=history(issue="TEST-4"))
        assert r.json()["self"].startswith("https://api.tracker.yandex.net/v3/issues/TEST-3/")
        r = await http.delete(f"/v3/issues/TEST-2/links/{made['id']}")
        assert r.status_code == 204
        v2 = (await http.get("/v2/issues/TEST-3/links")).json()[0]
        assert "/v2/issues/TEST-3/links/" in v2["self"]  # each answer in the version asked
        assert (await http.get("/v4/issues/TEST-1")).status_code == 404
    assert len(fake.links) == 1


def test_redirect_over_loopback_stays_on_the_same_origin() -> None:
    fake = FakeTracker(queues={"TEST": 2}, redirect_status=307)
    fake.move_issue("TEST-2", "NEW")
    with fake.serve() as base_url:
        r = httpx.get(f"{base_url}/v3/issues/TEST-2/links", headers=HEADERS)
        followed = httpx.get(f"{base_url}/v3/issues/TEST-2", headers=HEADERS, follow_redirects=True)
    assert r.status_code == 307
    assert r.headers["Location"] == f"{base_url}/v3/issues/NEW-1/links"
    assert followed.json()["key"] == "NEW-1"
