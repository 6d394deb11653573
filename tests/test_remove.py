"""Removing links: the safe delete, ``remove``, and the delete engine (``bulk_delete``,
``delete_many``) against the fake Tracker (in process) and respx."""

from __future__ import annotations

import json
import random
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import httpx
import pytest
import respx

from tracker_links import (
    AuthError,
    BulkReport,
    InvalidInputError,
    LinkSpec,
    NotFoundError,
    Outcome,
    OutcomeStatus,
    Relationship,
    TransportError,
)
from tracker_links._bulk_delete import LinkToDelete, bulk_delete
from tracker_links.testing import FakeTracker

from .helpers import FakeTime, error
from .test_bulk import client_for
from .test_client import LINKS, link_json, make_client

pytestmark = pytest.mark.anyio


def one_outcome_each(report: BulkReport, n: int) -> None:
    assert [o.index for o in report.outcomes] == list(range(n))


# --- the safe delete (finding 7) -----------------------------------------------------------------


async def test_a_retried_delete_that_had_landed_is_a_success(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    # The first DELETE's answer is lost (503 after it was applied... or not: the listing still
    # shows the link, a lagging read); the retry answers 404: the first one landed.
    delete = mock.delete(f"{LINKS}/5").mock(side_effect=[error(503), error(404, "no link")])
    get = mock.get(LINKS).mock(
        side_effect=[httpx.Response(200, json=[link_json(5)])] * 1 + [httpx.Response(200, json=[])]
    )
    async with make_client(ft, mock) as client:
        await client.links.delete("TEST-1", 5)
    assert delete.call_count == 2
    assert get.call_count == 2  # looked before the retry, and checked the issue after the 404


async def test_an_unknown_outcome_is_looked_at_before_a_retry(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    delete = mock.delete(f"{LINKS}/5").mock(
        side_effect=[httpx.RemoteProtocolError("dropped"), httpx.Response(204)]
    )
    mock.get(LINKS).respond(200, json=[link_json(7)])  # 5 is gone: the dropped one landed
    async with make_client(ft, mock) as client:
        await client.links.delete("TEST-1", 5)
    assert delete.call_count == 1


async def test_a_delete_on_a_missing_issue_is_not_found(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    mock.delete(f"{LINKS}/5").mock(side_effect=[error(503), error(404, "no issue")])
    mock.get(LINKS).mock(return_value=error(404, "Issue does not exist"))
    async with make_client(ft, mock) as client:
        with pytest.raises(NotFoundError, match="Issue does not exist"):
            await client.links.delete("TEST-1", 5)


async def test_a_first_404_is_still_not_found(mock: respx.MockRouter, ft: FakeTime) -> None:
    mock.delete(f"{LINKS}/5").mock(return_value=error(404, "Link not found"))
    get = mock.get(LINKS).respond(200, json=[])
    async with make_client(ft, mock) as client:
        with pytest.raises(NotFoundError, match="Link not found"):
            await client.links.delete("TEST-1", 5)
    assert get.call_count == 0


async def test_safe_delete_against_drops_after_the_write() -> None:
    fake = FakeTracker(queues={"TEST": 60}, seed=3, drop_rate=0.3, drop_after_write=1.0)
    ids = [fake.add_link(f"TEST-{i}", f"TEST-{i + 1}", "depends on").id for i in range(1, 41)]
    async with client_for(fake) as client:
        for i, link_id in zip(range(1, 41), ids, strict=True):
            await client.links.delete(f"TEST-{i}", link_id)
    assert len(fake.links) == 0
    assert fake.stats.dropped > 0


# --- remove ----------------------------------------------------------------------------------


@pytest.fixture
def fake() -> FakeTracker:
    return FakeTracker(queues={"TEST": 60}, seed=1)


async def test_remove_deletes_the_links_of_one_relationship_in_either_spelling(
    fake: FakeTracker,
) -> None:
    fake.add_link("TEST-2", "TEST-1", "is dependent by")  # TEST-1 depends on TEST-2
    fake.add_link("TEST-1", "TEST-2", "relates")
    fake.add_link("TEST-1", "TEST-3", "depends on")
    async with client_for(fake) as client:
        gone = await client.links.remove("TEST-1", "TEST-2", "depends on")
        assert [(link.relationship, link.target.key) for link in gone] == [
            (Relationship.DEPENDS_ON, "TEST-2")
        ]
        assert await client.links.remove("TEST-1", "TEST-2", "depends on") == []
    assert not fake.has_link("TEST-1", "TEST-2", "depends on")
    assert fake.has_link("TEST-1", "TEST-2", "relates")
    assert fake.has_link("TEST-1", "TEST-3", "depends on")


async def test_remove_without_a_relationship_deletes_every_link_between_the_two(
    fake: FakeTracker,
) -> None:
    fake.add_link("TEST-1", "TEST-2", "depends on")
    fake.add_link("TEST-2", "TEST-1", "relates")
    fake.add_link("TEST-1", "TEST-3", "relates")
    async with client_for(fake) as client:
        gone = await client.links.remove("TEST-2", "TEST-1")
    assert len(gone) == 2
    assert fake.find_links("TEST-1", "TEST-2") == []
    assert fake.has_link("TEST-1", "TEST-3", "relates")
    assert fake.stats.by_route[("GET", "links.list")] == 1
    assert fake.stats.by_route[("DELETE", "links.delete")] == 2


@pytest.mark.parametrize(
    "args",
    [
        ("TEST-1/..", "TEST-2", None),
        ("TEST-1", "nope", None),
        ("TEST-1", "TEST-1", None),
        ("TEST-1", "TEST-2", "blocks"),
    ],
)
async def test_remove_validates_before_any_request(fake: FakeTracker, args: Any) -> None:
    async with client_for(fake) as client:
        with pytest.raises(InvalidInputError):
            await client.links.remove(*args)
    assert fake.stats.total == 0


async def test_remove_on_a_missing_issue_is_not_found(fake: FakeTracker) -> None:
    async with client_for(fake) as client:
        with pytest.raises(NotFoundError):
            await client.links.remove("NOPE-1", "TEST-2")


# --- bulk_delete -----------------------------------------------------------------------------


def seeded(fake: FakeTracker, n: int, issues: int = 50, seed: int = 2) -> list[LinkSpec]:
    """``n`` distinct links stored in the fake, as specs."""
    rng = random.Random(seed)
    rels = ["depends on", "relates", "is subtask for", "is dependent by"]
    out: list[LinkSpec] = []
    seen: set[tuple[str, ...]] = set()
    while len(out) < n:
        a, b = rng.sample(range(1, issues + 1), 2)
        spec = LinkSpec(f"TEST-{a}", f"TEST-{b}", rng.choice(rels))
        # one link per pair, so that a link of another relationship never blocks a create
        pair = tuple(sorted((spec.source, spec.target)))
        if pair in seen:
            continue
        seen.add(pair)
        fake.add_link(spec.source, spec.target, spec.relationship.value)  # type: ignore[arg-type]
        out.append(spec)
    return out


async def test_bulk_delete_deletes_what_was_asked_and_nothing_else(fake: FakeTracker) -> None:
    specs = seeded(fake, 200)
    keep = specs[150:]
    other = fake.add_link("TEST-55", "TEST-56", "relates")
    asked: list[Any] = list(specs[:150])
    asked[10] = (asked[10].target, asked[10].source, asked[10].relationship.inverse.value)
    asked += [
        ("TEST-55", "TEST-56", "depends on"),  # another relationship than the stored one: absent
        asked[3],  # a repeat
        (asked[4].target, asked[4].source, asked[4].relationship.inverse),  # a repeat, reversed
        ("TEST-1", "TEST-1", "relates"),  # bad
        ("TEST-1", "x", "relates"),  # bad
        {"source": "TEST-1", "target": "TEST-2", "relationship": "blocks", "line": 9},  # bad
    ]
    fake.stats.reset()
    seen: list[int] = []
    async with client_for(fake) as client:
        report = await client.links.bulk_delete(
            asked, on_progress=lambda done, total, o: seen.append(done)
        )
    one_outcome_each(report, len(asked))
    assert seen == list(range(1, len(asked) + 1))
    assert len(report.deleted) == 150
    assert [o.index for o in report.absent] == [150, 151, 152]
    assert report.outcomes[151].repeat_of == 3
    assert report.outcomes[152].repeat_of == 4
    bad = report.failed
    assert [o.index for o in bad] == [153, 154, 155]
    assert all(isinstance(o.error, InvalidInputError) and o.attempts == 0 for o in bad)
    assert "unknown relationship 'blocks'" in (bad[2].reason or "")
    assert bad[2].line == 9
    assert not report.ok
    assert report.summary().endswith("150 deleted, 3 absent, 3 failed, 0 skipped")
    assert len(fake.links) == len(keep) + 1
    assert all(fake.has_link(s.source, s.target, s.relationship.value) for s in keep)  # type: ignore[arg-type]
    assert other.id in fake.links
    # One GET per source (the listings are shared), one DELETE per link.
    sources = {s.source for s in specs[:150]} | {specs[10].target, "TEST-55"}
    assert fake.stats.by_route[("DELETE", "links.delete")] == 150
    assert fake.stats.by_route[("GET", "links.list")] <= len(sources)


async def test_bulk_delete_with_a_bad_token_costs_one_request(fake: FakeTracker) -> None:
    specs = seeded(fake, 30)
    fake.token = "the-right-token"
    async with client_for(fake, token="a-wrong-token") as client:
        report = await client.links.bulk_delete(specs)
    one_outcome_each(report, 30)
    assert isinstance(report.outcomes[0].error, AuthError)
    assert [o.status for o in report.outcomes[1:]] == [OutcomeStatus.SKIPPED] * 29
    assert fake.stats.total == 1
    assert len(fake.links) == 30


async def test_bulk_delete_stops_when_its_first_items_are_all_forbidden(fake: FakeTracker) -> None:
    fake.add_issue("LOCK-1")
    fake.add_issue("LOCK-2")
    for i in range(3, 40):
        fake.add_issue(f"LOCK-{i}")
        fake.add_link("LOCK-1", f"LOCK-{i}", "relates")
    fake.forbidden_queues = {"LOCK"}
    async with client_for(fake, max_concurrency=1) as client:
        report = await client.links.bulk_delete(
            [("LOCK-1", f"LOCK-{i}", "relates") for i in range(3, 40)]
        )
    counts = report.counts()
    # The fifth 403 stops the batch; an item already read by the other worker still goes.
    assert counts["failed"] in (5, 6)
    assert counts["failed"] + counts["skipped"] == 37
    assert fake.stats.forbidden == counts["failed"]
    assert "the first 5 items were all refused with 403" in (report.skipped[0].note or "")


async def test_one_forbidden_queue_does_not_stop_the_batch(fake: FakeTracker) -> None:
    specs = seeded(fake, 20)
    fake.add_issue("LOCK-1")
    fake.add_link("LOCK-1", "TEST-1", "relates")
    fake.forbidden_queues = {"LOCK"}
    async with client_for(fake) as client:
        report = await client.links.bulk_delete(
            [*specs[:5], ("LOCK-1", "TEST-1", "relates"), *specs[5:]]
        )
    assert len(report.deleted) == 20
    assert isinstance(report.outcomes[5].error, AuthError)
    assert fake.has_link("LOCK-1", "TEST-1", "relates")


async def test_bulk_delete_resumes_from_its_journal(fake: FakeTracker, tmp_path: Path) -> None:
    specs = seeded(fake, 120)
    journal = tmp_path / "unlink.jsonl"
    async with client_for(fake, max_concurrency=4) as client:
        got: list[Outcome] = []
        async with client.links.delete_many(specs, journal=journal) as outcomes:
            async for outcome in outcomes:
                got.append(outcome)
                if len(got) == 50:
                    break
    done = {(o.spec.source, o.spec.target) for o in got}
    assert len(done) == 50
    assert len(fake.links) <= 70
    # A torn last line (a crash mid-write) costs only itself.
    with journal.open("a") as f:
        f.write('{"index": 3, "status": "del')
    fake.stats.reset()
    async with client_for(fake, max_concurrency=4) as client:
        report = await client.links.bulk_delete(specs, journal=journal)
    one_outcome_each(report, 120)
    notes = [o for o in report.outcomes if o.note == "already done in the journal; not sent"]
    assert {(o.spec.source, o.spec.target) for o in notes} >= done
    assert all(o.status is OutcomeStatus.ABSENT for o in notes)
    assert fake.stats.by_route[("DELETE", "links.delete")] == 120 - len(notes)
    assert len(fake.links) == 0
    lines = journal.read_text().splitlines()
    assert all(
        json.loads(line) for line in lines if not line.startswith('{"index": 3, "status": "del')
    )


async def test_by_id_deletes_that_very_link_only(fake: FakeTracker) -> None:
    first = fake.add_link("TEST-1", "TEST-2", "depends on")
    other = fake.add_link("TEST-3", "TEST-4", "relates")
    spec = LinkSpec("TEST-1", "TEST-2", "depends on")
    async with client_for(fake) as client:
        report = await client.links.bulk_delete(
            [
                LinkToDelete(spec, first.id),
                LinkToDelete(LinkSpec("TEST-3", "TEST-5", "relates"), other.id),  # joins others
                LinkToDelete(LinkSpec("TEST-3", "TEST-4", "depends on"), other.id),  # another rel
                LinkToDelete(LinkSpec("TEST-6", "TEST-7", "relates"), 999999),  # no such id
            ]
        )
    assert [o.status for o in report.outcomes] == [
        OutcomeStatus.DELETED,
        OutcomeStatus.ABSENT,
        OutcomeStatus.ABSENT,
        OutcomeStatus.ABSENT,
    ]
    assert "now relates TEST-4, not relates TEST-5: not deleted" in (report.outcomes[1].note or "")
    assert "no longer on TEST-6" in (report.outcomes[3].note or "")
    assert first.id not in fake.links
    assert other.id in fake.links


async def test_delete_many_yields_as_it_goes(fake: FakeTracker) -> None:
    specs = seeded(fake, 40)

    async def gen() -> Any:
        for spec in specs:
            yield (spec.source, spec.target, spec.relationship.value)

    async with client_for(fake) as client, aclosing(client.links.delete_many(gen())) as outcomes:
        statuses = [o.status async for o in outcomes]
    assert statuses == [OutcomeStatus.DELETED] * 40
    assert len(fake.links) == 0


async def test_bulk_delete_on_a_missing_issue_fails_with_not_found(fake: FakeTracker) -> None:
    fake.add_link("TEST-1", "TEST-2", "relates")
    items = [
        ("NOPE-1", "TEST-2", "relates"),
        ("NOPE-1", "TEST-3", "relates"),
        ("TEST-1", "TEST-2", "relates"),
    ]
    async with client_for(fake) as client:
        report = await client.links.bulk_delete(items)
    statuses = [o.status for o in report.outcomes]
    assert statuses == [OutcomeStatus.FAILED, OutcomeStatus.FAILED, OutcomeStatus.DELETED]
    assert all(isinstance(o.error, NotFoundError) for o in report.failed)
    # The issue's 404 is read once and shared by the items of that issue.
    assert fake.stats.count("GET", 404) == 1


async def _read_while(listed: Any, issue: str, release: Any) -> Any:
    """A GET of ``issue`` that ends only once ``release`` is set (or after 1,000 checkpoints,
    so that an engine that waits for it cannot hang the test)."""
    for _ in range(1000):
        if release.is_set():
            break
        await anyio.lowlevel.checkpoint()
    return await listed(issue)


def four_behind_one(fake: FakeTracker) -> list[LinkSpec]:
    """A link of TEST-1, four of TEST-2, one of TEST-3, stored in ``fake``, as specs."""
    specs = [LinkSpec("TEST-1", "TEST-9", "relates")]
    specs += [LinkSpec("TEST-2", f"TEST-{10 + i}", "relates") for i in range(4)]
    specs += [LinkSpec("TEST-3", "TEST-20", "relates")]
    for s in specs:
        fake.add_link(s.source, s.target, "relates")
    return specs


async def test_items_waiting_for_a_listing_being_read_are_set_aside(fake: FakeTracker) -> None:
    # With two workers: one reads TEST-2's links (slowly); the other must not wait for it with
    # TEST-2's other items, but set them aside and go on to TEST-3's, whose DELETE goes out
    # while TEST-2's GET is still in flight. TEST-2's items then follow, from the listing read.
    specs = four_behind_one(fake)
    events: list[str] = []
    other_deleted = anyio.Event()
    async with client_for(fake, max_concurrency=2) as client:
        real = client.links._ops

        async def get(issue: str) -> Any:
            events.append(f"GET {issue}")
            if issue == "TEST-2":
                links = await _read_while(real.get, issue, other_deleted)
            else:
                links = await real.get(issue)
            events.append(f"listed {issue}")
            return links

        async def delete(issue: str, link_id: int | str) -> tuple[bool, int]:
            events.append(f"DELETE {issue}")
            if issue == "TEST-3":
                other_deleted.set()
            return await real.delete(issue, link_id)

        ops = attrs.evolve(real, get=get, delete=delete, concurrency=2)
        fake.stats.reset()
        report = await bulk_delete(ops, specs)
    one_outcome_each(report, len(specs))
    assert len(report.deleted) == len(specs)
    assert events.index("DELETE TEST-3") < events.index("listed TEST-2")
    assert events.count("GET TEST-2") == 1  # the items set aside share the one read
    assert events.count("DELETE TEST-2") == 4
    assert not fake.links


async def test_items_set_aside_share_the_error_of_their_listing(fake: FakeTracker) -> None:
    specs = four_behind_one(fake)
    other_deleted = anyio.Event()
    gets: list[str] = []
    async with client_for(fake, max_concurrency=2) as client:
        real = client.links._ops

        async def get(issue: str) -> Any:
            gets.append(issue)
            if issue == "TEST-2":
                await _read_while(real.get, issue, other_deleted)
                raise TransportError("the read of TEST-2 failed")
            return await real.get(issue)

        async def delete(issue: str, link_id: int | str) -> tuple[bool, int]:
            if issue == "TEST-3":
                other_deleted.set()
            return await real.delete(issue, link_id)

        ops = attrs.evolve(real, get=get, delete=delete, concurrency=2)
        report = await bulk_delete(ops, specs)
    one_outcome_each(report, len(specs))
    statuses = [o.status for o in report.outcomes]
    assert statuses == [OutcomeStatus.DELETED] + [OutcomeStatus.FAILED] * 4 + [
        OutcomeStatus.DELETED
    ]
    assert all("TEST-2 failed" in str(o.error) for o in report.failed)
    assert gets.count("TEST-2") == 1  # read once, its error shared by the items set aside
