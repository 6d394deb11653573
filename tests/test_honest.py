"""Honest outcomes: CREATED means this run made the link, even when the answer was lost."""

from __future__ import annotations

import httpx
import pytest
import respx

from tracker_links import ConflictError, OutcomeStatus

from .helpers import FakeTime
from .test_service import SOURCE, FakeLinks, make_client, server  # noqa: F401

pytestmark = pytest.mark.anyio

OLD = "2014-06-18T12:06:02.401+0000"


async def test_a_link_there_before_a_lost_answer_is_exists_not_created(
    server: FakeLinks,  # noqa: F811
    mock: respx.MockRouter,
    ft: FakeTime,
) -> None:
    server.add("TEST-2", "depends on")["createdAt"] = OLD  # made long ago
    async with make_client(ft, mock) as client:
        server.faults = [(False, 503)]
        report = await client.links.bulk_create([(SOURCE, "TEST-2", "depends on")])
        (outcome,) = report.outcomes
        assert outcome.status is OutcomeStatus.EXISTS
        assert outcome.verified_by == "created_at"
        assert outcome.to_json()["verified_by"] == "created_at"
        server.faults = [(False, 503)]
        with pytest.raises(ConflictError) as info:
            await client.links.create(SOURCE, "TEST-2", "depends on")
        assert info.value.link is not None
        server.faults = [(False, 503)]
        link = await client.links.create(SOURCE, "TEST-2", "depends on", exist_ok=True)
        assert link.id == info.value.link.id
    assert len(server.links) == 1
    assert server.posts == 3


async def test_a_link_made_by_another_user_is_exists(
    server: FakeLinks,  # noqa: F811
    mock: respx.MockRouter,
    ft: FakeTime,
) -> None:
    server.myself_route.return_value = httpx.Response(200, json={"uid": 42, "login": "robot"})
    server.faults = [(True, 500)]  # applied... by "Ivan", as far as createdBy says
    async with make_client(ft, mock) as client:
        report = await client.links.bulk_create([(SOURCE, "TEST-2", "relates")])
    (outcome,) = report.outcomes
    assert outcome.status is OutcomeStatus.EXISTS
    assert outcome.verified_by == "created_by"


async def test_a_lost_answer_that_landed_is_created_and_says_what_it_rests_on(
    server: FakeLinks,  # noqa: F811
    mock: respx.MockRouter,
    ft: FakeTime,
) -> None:
    specs = [(SOURCE, f"TEST-{i}", "relates") for i in range(2, 8)]
    server.faults = [(True, 500), (True, httpx.ReadError("reset")), (True, 502)]
    async with make_client(ft, mock, max_concurrency=4) as client:
        report = await client.links.bulk_create(specs)
    assert [o.status for o in report.outcomes] == [OutcomeStatus.CREATED] * 6
    checked = [o.verified_by for o in report.outcomes if o.verified_by is not None]
    assert checked == ["created_at+created_by"] * 3
    assert server.myself_route.call_count == 1  # fetched once per client, when first needed
    assert server.posts == 6
    assert len(server.links) == 6


async def test_no_myself_means_createdby_is_not_checked(
    server: FakeLinks,  # noqa: F811
    mock: respx.MockRouter,
    ft: FakeTime,
) -> None:
    server.myself_route.return_value = httpx.Response(404, json={"errorMessages": ["no"]})
    server.faults = [(True, 500)]
    async with make_client(ft, mock) as client:
        report = await client.links.bulk_create([(SOURCE, "TEST-2", "relates")])
        again = await client.links.bulk_create([(SOURCE, "TEST-3", "relates")])
    assert report.outcomes[0].status is OutcomeStatus.CREATED
    assert report.outcomes[0].verified_by == "created_at"
    assert again.outcomes[0].verified_by is None  # answered 201: nothing to check
    assert server.myself_route.call_count == 1


async def test_a_clean_201_needs_no_check_and_no_myself(
    server: FakeLinks,  # noqa: F811
    mock: respx.MockRouter,
    ft: FakeTime,
) -> None:
    async with make_client(ft, mock) as client:
        report = await client.links.bulk_create([(SOURCE, "TEST-2", "relates")])
    assert report.outcomes[0].status is OutcomeStatus.CREATED
    assert report.outcomes[0].verified_by is None
    assert server.myself_route.call_count == 0


async def test_against_the_fake_what_was_there_or_made_by_others_is_never_created() -> None:
    from datetime import datetime, timedelta, timezone

    from tracker_links.testing import FakeTracker

    from .test_bulk import client_for

    fake = FakeTracker(queues={"TEST": 200}, users={"tok-me": "me", "tok-alice": "alice"}, seed=4)
    specs = [(f"TEST-{i}", f"TEST-{i + 100}", "depends on") for i in range(1, 61)]
    old = datetime.now(timezone.utc) - timedelta(days=3)
    for source, target, rel in specs[:20]:  # there before the run, made by someone else
        fake.add_link(source, target, rel, created_by="alice")
    for source, target, rel in specs[20:30]:  # there before the run, made by us, long ago
        fake.add_link(source, target, rel, created_by="me", created_at=old)
    fake.drop_rate, fake.drop_after_write = 0.5, 1.0  # half the answers lost after the write
    async with client_for(fake, token="tok-me") as client:
        report = await client.links.bulk_create(specs)
    statuses = [o.status for o in report.outcomes]
    assert statuses == [OutcomeStatus.EXISTS] * 30 + [OutcomeStatus.CREATED] * 30
    how = {o.verified_by for o in report.outcomes}
    assert {"created_by", "created_at", "created_at+created_by"} <= how
    assert fake.stats.by_route[("GET", "myself")] == 1
    assert fake.stats.duplicates_created == 0


# --- the service's clock, learned from answered creates -----------------------------------------


def test_service_clock_bounds_the_offset_from_answered_creates() -> None:
    from tracker_links._service_clock import ServiceClock

    clock = ServiceClock(fallback=2.0)
    # Before any create was answered, only links 2 s older than the attempt surely predate it.
    assert clock.predates(100.0, 101.9) is False
    assert clock.predates(100.0, 102.1) is True
    # The service's clock runs 5 s ahead: stamped within each request's round trip.
    clock.learn(sent=10.0, received=10.2, created_at=15.1)
    clock.learn(sent=20.0, received=20.1, created_at=25.05)
    assert 4.9 < clock.lo <= 4.95
    assert 5.05 <= clock.hi < 5.1
    assert clock.predates(1000.0 + 4.9, since=1000.0) is True  # 50 ms and more before
    assert clock.predates(1000.0 + 4.96, since=1000.0) is False  # within the window: ours
    # A clock step makes the bounds disagree: they start over from the newest create.
    clock.learn(sent=30.0, received=30.1, created_at=30.05)
    assert -0.06 < clock.lo <= -0.05
    assert 0.05 <= clock.hi < 0.06


async def test_a_link_made_by_us_just_before_a_lost_answer_is_exists(
    server: FakeLinks,  # noqa: F811
    mock: respx.MockRouter,
    ft: FakeTime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The same token made the link 50 ms before the attempt whose answer was lost: within the
    # 2 s allowed for an unknown skew, but the answered creates before it place the service's
    # clock within a millisecond, so the link is known to predate the attempt.
    from datetime import datetime, timezone

    wall = [1_700_000_000.0]

    def stamp(_: object) -> str:
        at = datetime.fromtimestamp(wall[0], timezone.utc)
        return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"

    monkeypatch.setattr(FakeLinks, "stamp", property(stamp))
    async with make_client(ft, mock) as client:
        client.links._wall = lambda: wall[0]
        report = await client.links.bulk_create([(SOURCE, f"TEST-{i}", "relates") for i in (3, 4)])
        assert [o.status for o in report.outcomes] == [OutcomeStatus.CREATED] * 2
        server.add("TEST-2", "depends on")  # by the token's own user, now
        wall[0] += 0.05
        server.faults = [(False, 503)]
        report = await client.links.bulk_create([(SOURCE, "TEST-2", "depends on")])
        (outcome,) = report.outcomes
        assert (outcome.status, outcome.verified_by) == (OutcomeStatus.EXISTS, "created_at")
        # One that the lost answer did make is still reported created.
        server.faults = [(True, 500)]
        report = await client.links.bulk_create([(SOURCE, "TEST-5", "relates")])
        (outcome,) = report.outcomes
        assert outcome.status is OutcomeStatus.CREATED
        assert outcome.verified_by == "created_at+created_by"
