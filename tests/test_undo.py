"""Undo of a bulk create: exactly the links the run created are deleted, by id; resumable.

End to end against the fake over loopback (asyncio and trio), and in process for the smaller
cases.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest

from tracker_links import InvalidInputError, LinkSpec, Outcome, OutcomeStatus
from tracker_links.testing import FakeTracker

from .test_bulk import client_for
from .test_e2e import connect

pytestmark = pytest.mark.anyio

LONG_AGO = datetime.now(timezone.utc) - timedelta(days=3)


def pairs(n: int, issues: int, seed: int) -> list[LinkSpec]:
    """``n`` links between distinct pairs, several per source (as a real CSV has them)."""
    rng = random.Random(seed)
    rels = ["depends on", "relates", "is subtask for", "is dependent by", "duplicates"]
    out: list[LinkSpec] = []
    seen: set[tuple[str, str]] = set()
    while len(out) < n:
        a = rng.randrange(1, issues // 10 + 1)
        b = rng.randrange(1, issues + 1)
        pair = (f"TEST-{min(a, b)}", f"TEST-{max(a, b)}")
        if a == b or pair in seen:
            continue
        seen.add(pair)
        out.append(LinkSpec(f"TEST-{a}", f"TEST-{b}", rng.choice(rels)))
    return out


def stored(fake: FakeTracker) -> set[tuple[str, str, str, str]]:
    return {
        LinkSpec(link.source, link.target, link.relationship).canonical  # type: ignore[arg-type]
        for link in fake.links.values()
    }


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- end to end, with faults -------------------------------------------------------------------


@pytest.fixture
def fake() -> FakeTracker:
    return FakeTracker(queues={"TEST": 3000}, seed=11)


@pytest.fixture
def url(fake: FakeTracker) -> Iterator[str]:
    with fake.serve() as base_url:
        yield base_url


async def test_undo_2000_created_links_under_faults(
    fake: FakeTracker, url: str, tmp_path: Path
) -> None:
    specs = pairs(2200, 3000, seed=4)
    before = specs[2000:]  # links there before the run: the run finds them (EXISTS)
    for spec in before:
        fake.add_link(
            spec.source,
            spec.target,
            spec.relationship.value,  # type: ignore[arg-type]
            created_by="someone",
            created_at=LONG_AGO,
        )
    untouched = fake.add_link("TEST-2999", "TEST-3000", "relates", created_at=LONG_AGO)
    journal = tmp_path / "links.jsonl"
    fake.fail_rate, fake.drop_rate, fake.drop_after_write = 0.10, 0.05, 1.0
    async with connect(url, max_concurrency=32) as client:
        created = await client.links.bulk_create(specs, journal=journal)
    assert len(created.outcomes) == 2200
    assert not created.failed
    made = {o.spec.canonical for o in created.created}
    assert len(made) == 2000
    assert {o.spec.canonical for o in created.existing} == {s.canonical for s in before}
    # After the run, someone deletes one created link and creates it again: another id.
    again = specs[7]
    (old,) = fake.find_links(again.source, again.target, again.relationship.value)  # type: ignore[arg-type]
    fake._store.unstore(fake._store.recs[old.id])
    recreated = fake.add_link(again.source, again.target, again.relationship.value)  # type: ignore[arg-type]
    assert recreated.id != old.id

    fake.stats.reset()
    undo_journal = tmp_path / "undo.jsonl"
    seen: list[tuple[int, int | None]] = []
    async with connect(url, max_concurrency=32) as client:
        report = await client.links.undo(
            journal, journal=undo_journal, on_progress=lambda d, t, o: seen.append((d, t))
        )
    assert [o.index for o in report.outcomes] == list(range(2000))  # one outcome per item
    assert seen[-1] == (2000, 2000)
    assert report.ok
    assert len(report.deleted) == 1999
    (kept,) = report.absent
    assert kept.spec.canonical == again.canonical
    assert "no longer on" in (kept.note or "")
    # Every created link is gone; what was there before, and the re-created link, stay.
    assert stored(fake) == {s.canonical for s in before} | {
        again.canonical,
        ("relates", "TEST-2999", "TEST-3000", "~"),
    }
    assert recreated.id in fake.links
    assert untouched.id in fake.links
    assert fake.stats.dropped > 0
    assert fake.stats.injected_failures > 0
    # Each outcome's line is its line in the create journal, and it is a "created" one.
    create_lines = (journal.read_text()).splitlines()
    for o in report.outcomes[:50]:
        assert o.line is not None
        assert json.loads(create_lines[o.line - 1])["status"] == "created"


async def test_an_interrupted_undo_resumes_without_a_delete_for_what_was_done(
    fake: FakeTracker, url: str, tmp_path: Path
) -> None:
    specs = pairs(600, 3000, seed=8)
    journal = tmp_path / "links.jsonl"
    async with connect(url, max_concurrency=16) as client:
        await client.links.bulk_create(specs, journal=journal)
    undo_journal = tmp_path / "undo.jsonl"
    got: list[Outcome] = []
    async with connect(url, max_concurrency=16) as client:
        with anyio.CancelScope() as scope:

            def progress(done: int, total: int | None, outcome: Outcome) -> None:
                got.append(outcome)
                if done == 250:
                    scope.cancel()

            await client.links.undo(journal, journal=undo_journal, on_progress=progress)
    assert scope.cancelled_caught
    done = {o.spec.canonical for o in got}
    assert 250 <= len(done) < 600
    recorded = [r for r in lines(undo_journal) if r.get("status") == "deleted"]
    assert len(recorded) >= 250
    # The server may still hold the cancelled run's last requests (their connections closed,
    # their handlers not run yet). Refuse them while they drain, so that they change nothing
    # and the counts below are the re-run's alone.
    token, fake.token = fake.token, "not-the-clients-token"
    with anyio.fail_after(10):
        seen = -1
        while fake.inflight or fake.stats.total != seen:
            seen = fake.stats.total
            await anyio.sleep(0.05)
    fake.token = token
    fake.stats.reset()
    async with connect(url, max_concurrency=16) as client:
        report = await client.links.undo(journal, journal=undo_journal)
    assert len(report.outcomes) == 600
    skipped = [o for o in report.outcomes if o.note == "already done in the journal; not sent"]
    assert len(skipped) == len(recorded)
    # No DELETE for what the journal records (it is gone, so one would be answered 404); one
    # for each of the others still there. Those the cancelled run had in flight may have
    # landed without a journal line: the re-run finds them absent.
    landed = [o for o in report.absent if o not in skipped]
    assert len(landed) <= 16
    assert fake.stats.count("DELETE", 404) == 0
    assert fake.stats.count("DELETE") == len(report.deleted) == 600 - len(recorded) - len(landed)
    assert len(fake.links) == 0


async def test_bulk_delete_over_loopback_bad_items_and_a_bad_token(
    fake: FakeTracker, url: str
) -> None:
    fake.add_link("TEST-1", "TEST-2", "relates")
    items: list[Any] = [
        ("TEST-1", "TEST-1", "relates"),
        ("TEST-1/../x", "TEST-2", "relates"),
        ("TEST-3", "TEST-4", "blocks"),
        ("TEST-2", "TEST-1", "relates"),  # the stored link, from its other end
    ]
    async with connect(url) as client:
        report = await client.links.bulk_delete(items)
    statuses = [o.status for o in report.outcomes]
    assert statuses == [OutcomeStatus.FAILED] * 3 + [OutcomeStatus.DELETED]
    reasons = [o.reason or "" for o in report.failed]
    assert "two different issues" in reasons[0]
    assert "invalid source issue key" in reasons[1]
    assert "unknown relationship 'blocks'" in reasons[2]
    assert all(o.attempts == 0 for o in report.failed)
    assert fake.stats.total == 2  # the GET and the DELETE of the good item: nothing for the bad
    assert fake.links == {}

    for i in range(3, 60):
        fake.add_link(f"TEST-{i}", f"TEST-{i + 100}", "relates")
    fake.token = "only-this-one"
    fake.stats.reset()
    async with connect(url) as client:
        report = await client.links.bulk_delete(
            [(f"TEST-{i}", f"TEST-{i + 100}", "relates") for i in range(3, 60)]
        )
    assert fake.stats.total == 1  # one 401, the rest skipped
    assert report.counts()["skipped"] == 56
    assert len(fake.links) == 57


# --- in process -------------------------------------------------------------------------------


@pytest.fixture
def small() -> FakeTracker:
    return FakeTracker(queues={"TEST": 200}, seed=2)


async def test_undo_never_deletes_what_the_run_found(small: FakeTracker, tmp_path: Path) -> None:
    specs = pairs(60, 200, seed=1)
    for spec in specs[:10]:
        small.add_link(spec.source, spec.target, spec.relationship.value, created_at=LONG_AGO)  # type: ignore[arg-type]
    other = small.add_link(
        specs[20].source,
        specs[20].target,
        "relates" if specs[20].relationship.value != "relates" else "depends on",
    )  # type: ignore[arg-type]
    journal = tmp_path / "links.jsonl"
    async with client_for(small) as client:
        report = await client.links.bulk_create(specs, journal=journal)
        assert len(report.existing) == 10
        undone = await client.links.undo(journal)
    assert len(undone.deleted) == len(report.created)
    assert stored(small) == {s.canonical for s in specs[:10]} | {
        LinkSpec(other.source, other.target, other.relationship).canonical  # type: ignore[arg-type]
    }
    assert undone.summary().endswith(
        f"{len(report.created)} deleted, 0 absent, 0 failed, 0 skipped"
    )


async def test_a_journal_without_ids_falls_back_to_triples(
    small: FakeTracker, tmp_path: Path
) -> None:
    specs = pairs(30, 200, seed=3)
    journal = tmp_path / "links.jsonl"
    async with client_for(small) as client:
        await client.links.bulk_create(specs, journal=journal)
    old = tmp_path / "old.jsonl"
    with old.open("w") as f:
        for record in lines(journal):
            record.pop("link_id", None)
            record.pop("link_issue", None)
            if "intent" not in record:
                f.write(json.dumps(record) + "\n")
    small.stats.reset()
    async with client_for(small) as client:
        report = await client.links.undo(old)
    assert len(report.deleted) == 30
    assert len(small.links) == 0


async def test_a_link_created_on_the_target_side_is_deleted_through_it(
    small: FakeTracker, tmp_path: Path
) -> None:
    link = small.add_link("TEST-5", "TEST-6", "depends on")
    journal = tmp_path / "links.jsonl"
    record = {
        "index": 0,
        "status": "created",
        "source": "TEST-6",
        "relationship": "is dependent by",
        "target": "TEST-5",
        "link_id": link.id,
        "link_issue": "TEST-5",
        "attempts": 1,
    }
    journal.write_text(json.dumps(record) + "\n")
    async with client_for(small) as client:
        report = await client.links.undo(journal)
    assert [o.status for o in report.outcomes] == [OutcomeStatus.DELETED]
    assert report.outcomes[0].spec == LinkSpec("TEST-5", "TEST-6", "depends on")
    assert small.stats.by_route[("GET", "links.list")] == 1
    assert small.links == {}


async def test_an_open_intent_is_read_back_and_judged(small: FakeTracker, tmp_path: Path) -> None:
    """A create in flight when the run died (an intent with no outcome): deleted only if this
    token made it after the intent."""
    at = datetime.now(timezone.utc) - timedelta(minutes=5)
    ours = small.add_link("TEST-1", "TEST-2", "relates")  # made now, by the token's user
    theirs = small.add_link("TEST-3", "TEST-4", "relates", created_at=LONG_AGO)
    journal = tmp_path / "links.jsonl"
    with journal.open("w") as f:
        for a, b in (("TEST-1", "TEST-2"), ("TEST-3", "TEST-4"), ("TEST-7", "TEST-8")):
            intent = {"intent": "create", "index": 0, "source": a, "relationship": "relates"}
            intent |= {"target": b, "at": at.isoformat(timespec="milliseconds")}
            f.write(json.dumps(intent) + "\n")
        f.write('{"index": 9, "status": "crea')  # torn by the crash
    async with client_for(small) as client:
        report = await client.links.undo(journal)
    assert [o.status for o in report.outcomes] == [
        OutcomeStatus.DELETED,
        OutcomeStatus.ABSENT,
        OutcomeStatus.ABSENT,
    ]
    assert "there before the interrupted create" in (report.outcomes[1].note or "")
    assert ours.id not in small.links
    assert theirs.id in small.links


async def test_undo_checks_its_arguments_before_any_request(
    small: FakeTracker, tmp_path: Path
) -> None:
    journal = tmp_path / "links.jsonl"
    journal.write_text("")
    async with client_for(small) as client:
        with pytest.raises(InvalidInputError, match="cannot read the journal"):
            await client.links.undo(tmp_path / "missing.jsonl")
        with pytest.raises(InvalidInputError, match="another file"):
            await client.links.undo(journal, journal=journal)
        empty = await client.links.undo(journal)
    assert empty.outcomes == []
    assert small.stats.total == 0
