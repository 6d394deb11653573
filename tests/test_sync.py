"""Sync end to end: plan and apply against the fake Tracker over loopback (asyncio and trio)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tracker_links import (
    AuthError,
    InvalidInputError,
    LinkSpec,
    NotFoundError,
    OutcomeStatus,
    Plan,
    Relationship,
)
from tracker_links._plan import PlannedDelete
from tracker_links.testing import FakeTracker

from .test_e2e import connect

pytestmark = pytest.mark.anyio

Triple = tuple[str, str, str]


@pytest.fixture
def fake() -> FakeTracker:
    return FakeTracker(queues={"TEST": 60, "OUT": 5}, seed=14)


@pytest.fixture
def url(fake: FakeTracker) -> Iterator[str]:
    with fake.serve() as base_url:
        yield base_url


def writes(fake: FakeTracker) -> int:
    """Creates and deletes that reached the fake's routes."""
    routes = fake.stats.by_route
    return routes[("POST", "links.create")] + routes[("DELETE", "links.delete")]


def state(fake: FakeTracker) -> set[tuple[str, str, str, str]]:
    """The fake's links, each by its canonical identity (so duplicates would collapse)."""
    return {
        LinkSpec(link.source, link.target, link.relationship).canonical
        for link in fake.links.values()
    }


def canon(triples: list[Triple]) -> set[tuple[str, str, str, str]]:
    return {LinkSpec(*t).canonical for t in triples}


RELS = ["depends on", "relates", "is subtask for", "duplicates", "is epic of"]


def random_links(n: int, seed: int) -> list[Triple]:
    """``n`` distinct links among TEST-1..TEST-60 (one per pair of issues), no dependency cycle:
    dependency-like links always go from the higher key to the lower one."""
    rnd = random.Random(seed)
    pairs: set[frozenset[int]] = set()
    out: list[Triple] = []
    while len(out) < n:
        a, b = rnd.sample(range(1, 61), 2)
        if frozenset((a, b)) in pairs:
            continue
        pairs.add(frozenset((a, b)))
        hi, lo = max(a, b), min(a, b)
        rel = rnd.choice(RELS)
        if rel in ("is epic of", "is subtask for"):  # the epic, the parent waits: hi -> lo
            out.append((f"TEST-{lo}", f"TEST-{hi}", "has epic" if rel == "is epic of" else rel))
        else:
            out.append((f"TEST-{hi}", f"TEST-{lo}", rel))
    return out


def seed_links(fake: FakeTracker, triples: list[Triple]) -> None:
    for t in triples:
        fake.add_link(*t)


async def test_desired_equal_to_the_service_gives_an_empty_plan_and_no_write(
    fake: FakeTracker, url: str
) -> None:
    links = random_links(80, seed=1)
    seed_links(fake, links)
    # The desired file spells half of the links from their other end.
    desired: list[Triple | LinkSpec] = []
    for i, (s, t, r) in enumerate(links):
        spec = LinkSpec(s, t, r)
        desired.append(LinkSpec(t, s, spec.relationship.inverse) if i % 2 else (s, t, r))
    async with connect(url, max_concurrency=16) as client:
        for prune in (False, True, True):  # plan twice in a row sends no write
            plan = await client.links.plan(desired, queue="TEST", prune=prune)
            assert plan == Plan(unchanged=80)
    assert writes(fake) == 0
    # Every issue of the queue was read once per plan, plus the search.
    assert fake.stats.by_route[("GET", "links.list")] == 3 * 60


async def test_drift_is_planned_back_and_applied(fake: FakeTracker, url: str) -> None:
    desired = random_links(60, seed=2)
    seed_links(fake, desired)
    async with connect(url, max_concurrency=16) as client:
        # By hand: three links removed, two added.
        removed = desired[:3]
        for s, t, r in removed:
            (link,) = fake.find_links(s, t, r)
            await client.links.delete(s, link.id)
        added = [("TEST-1", "TEST-2", "relates"), ("TEST-3", "TEST-4", "depends on")]
        added = [t for t in added if LinkSpec(*t).canonical not in canon(desired)]
        added_ids = {fake.add_link(*t).id for t in added}
        fake.stats.reset()

        additive = await client.links.plan(desired, queue="TEST")
        assert set(additive.create) == {LinkSpec(*t) for t in removed}
        assert additive.delete == ()
        assert additive.unchanged == len(desired) - 3

        plan = await client.links.plan(desired, queue="TEST", prune=True)
        assert set(plan.create) == {LinkSpec(*t) for t in removed}
        assert {d.link_id for d in plan.delete} == added_ids
        assert writes(fake) == 0


async def test_unmanaged_and_scope_leaving_links_survive_prune(fake: FakeTracker, url: str) -> None:
    seed_links(
        fake,
        [
            ("TEST-1", "TEST-2", "depends on"),  # desired
            ("TEST-2", "TEST-3", "depends on"),  # not desired: pruned
            ("TEST-3", "TEST-4", "relates"),  # not desired: pruned
            ("TEST-4", "TEST-5", "duplicates"),  # unmanaged
            ("TEST-5", "TEST-6", "is subtask for"),  # unmanaged
            ("TEST-6", "OUT-1", "depends on"),  # leaves the scope
            ("OUT-2", "TEST-7", "relates"),  # leaves the scope
        ],
    )
    desired = [("TEST-1", "TEST-2", "depends on")]
    async with connect(url, max_concurrency=8) as client:
        plan = await client.links.plan(
            desired, queue="TEST", relationships=["depends on", "relates"], prune=True
        )
        assert {(d.spec.source, d.spec.target) for d in plan.delete} == {
            ("TEST-2", "TEST-3"),
            ("TEST-3", "TEST-4"),
        }
        assert plan.create == ()
        # Without a queue, the scope is the desired issues only: nothing else is deleted.
        assert (await client.links.plan(desired, prune=True)).empty


async def test_the_scope_includes_the_issues_named_in_desired(fake: FakeTracker, url: str) -> None:
    seed_links(fake, [("OUT-1", "OUT-2", "relates"), ("OUT-2", "OUT-3", "relates")])
    desired = [
        ("OUT-1", "TEST-1", "relates"),
        ("OUT-3", "OUT-2", "relates"),
        ("TEST-1", "NOPE-9", "relates"),
    ]
    async with connect(url, max_concurrency=8) as client:
        plan = await client.links.plan(desired, queue="TEST", prune=True)
    assert plan.create == (LinkSpec("OUT-1", "TEST-1", "relates"),)
    assert [(d.issue, d.spec.target) for d in plan.delete] == [("OUT-1", "OUT-2")]
    assert plan.unchanged == 1
    assert [i.index for i in plan.invalid] == [2]
    assert "NOPE-9 was not found" in plan.invalid[0].reason


async def test_a_change_is_planned(fake: FakeTracker, url: str) -> None:
    fake.add_link("TEST-1", "TEST-2", "relates")
    desired = [("TEST-2", "TEST-1", "is dependent by")]
    async with connect(url) as client:
        plan = await client.links.plan(desired, queue="TEST", prune=True)
        beside = await client.links.plan(desired, queue="TEST")
    ((old, new),) = plan.changes
    assert (old.spec.relationship, new.relationship) == (
        Relationship.RELATES,
        Relationship.IS_DEPENDENT_BY,
    )
    assert beside.create == (new,)
    assert beside.delete == ()


async def test_a_cycle_in_the_desired_dependencies_is_reported(fake: FakeTracker, url: str) -> None:
    fake.add_link("TEST-1", "TEST-2", "depends on")
    desired = [
        ("TEST-1", "TEST-2", "depends on"),
        ("TEST-2", "TEST-3", "depends on"),
        ("TEST-1", "TEST-3", "is subtask for"),  # TEST-3 waits for its subtask TEST-1
        ("TEST-4", "TEST-5", "relates"),
        ("TEST-5", "TEST-4", "duplicates"),
    ]
    async with connect(url) as client:
        plan = await client.links.plan(desired, queue="TEST")
    assert plan.cycles == (("TEST-1", "TEST-2", "TEST-3", "TEST-1"),)


async def test_bad_arguments_fail_before_any_request(fake: FakeTracker, url: str) -> None:
    async with connect(url) as client:
        with pytest.raises(InvalidInputError):
            await client.links.plan([], queue="not a queue")
        with pytest.raises(InvalidInputError):
            await client.links.plan([], queue="TEST", query="x")
        with pytest.raises(InvalidInputError):
            await client.links.plan([], queue="TEST", relationships=["blocks"])
        with pytest.raises(InvalidInputError):
            await client.links.plan("TEST-1 relates TEST-2")  # type: ignore[arg-type]
        # prune deletes: only a real True turns it on ("no" or "False" would be truthy).
        for bad in ("no", "False", 1, None):
            with pytest.raises(InvalidInputError, match="prune"):
                await client.links.plan([], queue="TEST", prune=bad)  # type: ignore[arg-type]
    assert fake.stats.total == 0


async def test_a_bad_token_stops_the_reads(fake: FakeTracker, url: str) -> None:
    fake.token = "another"
    desired = [(f"TEST-{i}", f"TEST-{i + 1}", "relates") for i in range(1, 50)]
    async with connect(url, max_concurrency=4) as client:
        with pytest.raises(AuthError):
            await client.links.plan(desired)
    # The reads in flight and in the stream's buffer finish; no more are started.
    assert fake.stats.count(status=401) <= 3 * 4 < len(desired)


# --- apply -------------------------------------------------------------------------------------


def fake_state_without_duplicates(fake: FakeTracker) -> set[tuple[str, str, str, str]]:
    ids = [
        LinkSpec(link.source, link.target, link.relationship).canonical
        for link in fake.links.values()
    ]
    assert len(ids) == len(set(ids)), "a link is stored twice"
    return set(ids)


def drifted(seed: int) -> tuple[list[Triple], list[Triple]]:
    """(what is on the service, what is desired): half of the links shared."""
    links = random_links(120, seed)
    return links[:80], links[40:]


async def test_apply_converges_and_a_second_plan_is_empty(fake: FakeTracker, url: str) -> None:
    current, desired = drifted(seed=3)
    seed_links(fake, [*current, ("TEST-1", "OUT-1", "relates")])
    async with connect(url, max_concurrency=16) as client:
        plan = await client.links.plan(desired, queue="TEST", prune=True)
        assert (len(plan.create), len(plan.delete), plan.unchanged) == (40, 40, 40)
        progress: list[tuple[int, int | None]] = []
        report = await client.links.apply(
            plan, on_progress=lambda done, total, _: progress.append((done, total))
        )
        assert report.ok
        assert [o.status for o in report.outcomes] == [OutcomeStatus.DELETED] * 40 + [
            OutcomeStatus.CREATED
        ] * 40
        assert [o.index for o in report.outcomes] == list(range(80))
        assert progress[-1] == (80, 80)
        assert len(progress) == 80
        fake.stats.reset()
        assert (await client.links.plan(desired, queue="TEST", prune=True)) == Plan(unchanged=80)
    assert writes(fake) == 0
    assert fake_state_without_duplicates(fake) == canon([*desired, ("TEST-1", "OUT-1", "relates")])


async def test_apply_under_faults_ends_in_the_desired_state(fake: FakeTracker, url: str) -> None:
    current, desired = drifted(seed=4)
    seed_links(fake, current)
    fake.fail_rate, fake.drop_rate = 0.10, 0.05
    fake.duplicate_status = None  # a duplicate create would be stored, not refused
    async with connect(url, max_concurrency=16) as client:
        plan = await client.links.plan(desired, queue="TEST", prune=True)
        assert plan.unread == ()
        report = await client.links.apply(plan)
        assert report.ok, [o.reason for o in report.outcomes if not o.ok]
        after = await client.links.plan(desired, queue="TEST", prune=True)
    assert fake.stats.injected_failures > 0
    assert fake.stats.dropped > 0
    assert after.unread == ()
    assert after.empty
    assert fake.stats.duplicates_created == 0
    assert fake_state_without_duplicates(fake) == canon(desired)


async def test_a_change_deletes_before_it_creates(fake: FakeTracker, url: str) -> None:
    fake.add_link("TEST-1", "TEST-2", "relates")
    desired = [("TEST-2", "TEST-1", "depends on")]
    async with connect(url) as client:
        plan = await client.links.plan(desired, queue="TEST", prune=True)
        report = await client.links.apply(plan)
    assert [o.status for o in report.outcomes] == [OutcomeStatus.DELETED, OutcomeStatus.CREATED]
    assert fake_state_without_duplicates(fake) == canon(desired)


async def test_a_plan_read_back_from_json_applies_the_same(tmp_path: Path) -> None:
    current, desired = drifted(seed=5)
    results = []
    for via_json in (False, True):
        fake = FakeTracker(queues={"TEST": 60, "OUT": 5}, seed=14)
        seed_links(fake, current)
        with fake.serve() as url:
            async with connect(url, max_concurrency=8) as client:
                plan = await client.links.plan(desired, queue="TEST", prune=True)
                if via_json:
                    plan.write_json(tmp_path / "plan.json")
                    plan = Plan.read_json(tmp_path / "plan.json")
                report = await client.links.apply(plan)
        results.append(
            (
                [(o.status, o.spec) for o in report.outcomes],
                fake_state_without_duplicates(fake),
                fake.stats.count("POST", 201),
                fake.stats.count("DELETE"),
            )
        )
    assert results[0] == results[1]
    assert results[1][1] == canon(desired)


async def test_a_stale_plan_is_harmless(fake: FakeTracker, url: str) -> None:
    seed_links(fake, [("TEST-1", "TEST-2", "relates"), ("TEST-3", "TEST-4", "relates")])
    desired = [("TEST-5", "TEST-6", "depends on"), ("TEST-7", "TEST-8", "depends on")]
    async with connect(url) as client:
        plan = await client.links.plan(desired, queue="TEST", prune=True)
        # Someone does part of it by hand before the plan is applied.
        (gone,) = fake.find_links("TEST-1", "TEST-2")
        await client.links.delete("TEST-1", gone.id)
        await client.links.create("TEST-6", "TEST-5", "is dependent by")
        report = await client.links.apply(plan)
    assert report.ok
    statuses = {o.spec: o.status for o in report.outcomes}
    assert statuses == {
        LinkSpec("TEST-1", "TEST-2", "relates"): OutcomeStatus.ABSENT,
        LinkSpec("TEST-3", "TEST-4", "relates"): OutcomeStatus.DELETED,
        LinkSpec("TEST-5", "TEST-6", "depends on"): OutcomeStatus.EXISTS,
        LinkSpec("TEST-7", "TEST-8", "depends on"): OutcomeStatus.CREATED,
    }
    assert fake_state_without_duplicates(fake) == canon(desired)


async def test_a_delete_on_a_missing_issue_fails_with_its_reason(
    fake: FakeTracker, url: str
) -> None:
    plan = Plan(delete=(PlannedDelete(LinkSpec("NOPE-1", "TEST-1", "relates"), 1048570),))
    async with connect(url) as client:
        report = await client.links.apply(plan)
    (outcome,) = report.outcomes
    assert outcome.status is OutcomeStatus.FAILED
    assert isinstance(outcome.error, NotFoundError)


async def test_an_applied_journal_resumes_without_a_write(
    fake: FakeTracker, url: str, tmp_path: Path
) -> None:
    current, desired = drifted(seed=6)
    seed_links(fake, current)
    journal = str(tmp_path / "apply.jsonl")
    async with connect(url, max_concurrency=8) as client:
        plan = await client.links.plan(desired, queue="TEST", prune=True)
        first = await client.links.apply(plan, journal=journal)
        assert first.ok
        fake.stats.reset()
        again = await client.links.apply(plan, journal=journal)
    assert writes(fake) == 0
    assert fake.stats.total == 0
    assert {o.status for o in again.outcomes} == {OutcomeStatus.ABSENT, OutcomeStatus.EXISTS}
    assert len(again.outcomes) == len(first.outcomes)


async def test_a_bad_token_in_apply_costs_one_request(fake: FakeTracker, url: str) -> None:
    current, desired = drifted(seed=7)
    seed_links(fake, current)
    async with connect(url, max_concurrency=8) as client:
        plan = await client.links.plan(desired, queue="TEST", prune=True)
    fake.token = "another"
    fake.stats.reset()
    async with connect(url, max_concurrency=8) as client:
        report = await client.links.apply(plan)
    assert fake.stats.count(status=401) == 1
    assert len(report.failed) == 1
    assert len(report.skipped) == len(report.outcomes) - 1


async def test_the_scope_by_query_or_filter_and_an_async_desired(
    fake: FakeTracker, url: str
) -> None:
    seed_links(fake, [("TEST-1", "TEST-2", "relates"), ("TEST-3", "TEST-4", "relates")])

    async def desired() -> AsyncIterator[Triple]:
        yield ("TEST-1", "TEST-2", "relates")
        yield ("TEST-5", "TEST-6", "depends on")

    async with connect(url, max_concurrency=8) as client:
        for scope in ({"query": "Queue: TEST"}, {"filter": {"queue": "TEST"}}):
            plan = await client.links.plan(desired(), prune=True, **scope)
            assert plan.create == (LinkSpec("TEST-5", "TEST-6", "depends on"),)
            assert [(d.issue, d.spec.target) for d in plan.delete] == [("TEST-3", "TEST-4")]
            assert plan.unchanged == 1


@pytest.mark.parametrize("to", ["TEST", "OUT"])
async def test_a_desired_file_written_before_a_move_plans_nothing(
    fake: FakeTracker, url: str, to: str
) -> None:
    desired = [("TEST-1", "TEST-2", "depends on"), ("TEST-4", "TEST-3", "relates")]
    seed_links(fake, desired)
    fake.move_issue("TEST-2", to)
    fake.move_issue("TEST-3", to)
    missing = ("TEST-5", "TEST-2", "relates")  # under the old key, not there yet
    async with connect(url, max_concurrency=8) as client:
        plan = await client.links.plan([*desired, missing], queue="TEST", prune=True)
        assert plan == Plan(create=(LinkSpec(*missing),), unchanged=2)
        report = await client.links.apply(plan)
        assert [o.status for o in report.outcomes] == [OutcomeStatus.CREATED]
        fake.stats.reset()
        for _ in range(2):
            plan = await client.links.plan([*desired, missing], queue="TEST", prune=True)
            assert plan == Plan(unchanged=3)
    assert writes(fake) == 0
    assert len(fake.links) == 3
