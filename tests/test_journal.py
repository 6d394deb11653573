"""The write-ahead journal: intents before sends, read-back on resume, torn lines survived."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tracker_links import LinkSpec, OutcomeStatus, TransportError
from tracker_links._bulk_create import bulk_create
from tracker_links._journal import Journal, read_journal
from tracker_links._ops import Created, Ops, Unresolved
from tracker_links.testing import FakeTracker

from .test_bulk import client_for

pytestmark = pytest.mark.anyio


def chain(n: int) -> list[LinkSpec]:
    return [LinkSpec(f"TEST-{i}", f"TEST-{i + 1}", "depends on") for i in range(1, n + 1)]


def records(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def write_intents(path: Path, specs: list[LinkSpec], at: float, start: int = 0) -> None:
    journal = Journal(path)
    for i, spec in enumerate(specs, start):
        journal.intent(spec, i, None, at)
    journal.close()


async def test_intent_is_written_before_the_create_is_sent(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    seen: list[list[dict[str, Any]]] = []
    fake = FakeTracker(queues={"TEST": 10})
    async with client_for(fake) as client:
        real = client.links._ops

        async def create(spec: LinkSpec) -> Created:
            seen.append(records(path))  # what the journal held when the POST went out
            return await real.create(spec)

        ops = Ops(create, real.get, real.judge, real.search, 2, real.clock)
        report = await bulk_create(ops, chain(3), journal=path)
    assert [o.status for o in report.outcomes] == [OutcomeStatus.CREATED] * 3
    for spec, held in zip(chain(3), seen, strict=True):
        mine = [r for r in held if r["source"] == spec.source]
        assert [r.get("intent") for r in mine] == ["create"]  # the intent, and no outcome yet
    lines = records(path)
    created = [r for r in lines if r.get("status") == "created"]
    assert all(r["link_issue"] == r["source"] and isinstance(r["link_id"], int) for r in created)
    assert all("at" in r for r in lines if "intent" in r)
    assert read_journal(path).pending == {}


@pytest.mark.parametrize("duplicate_status", [None, 422])
async def test_resume_reads_back_what_was_in_flight_and_never_reposts_it(
    tmp_path: Path, duplicate_status: int | None
) -> None:
    path = tmp_path / "j.jsonl"
    fake = FakeTracker(queues={"TEST": 20}, duplicate_status=duplicate_status)
    specs = chain(8)
    # A run died with items 0-3 in flight: 0 and 1 had landed, 2 and 3 had not.
    write_intents(path, specs[:4], time.time())
    for spec in specs[:2]:
        fake.add_link(spec.source, spec.target, spec.relationship)
    async with client_for(fake, max_concurrency=4) as client:
        report = await client.links.bulk_create(specs, journal=path)
    assert fake.stats.duplicates_created == 0
    assert fake.stats.duplicates_refused == 0  # nothing was re-sent blind
    assert fake.stats.count("POST") == 6  # items 2-7
    assert fake.stats.by_route[("GET", "links.list")] == 4  # the read-backs of items 0-3
    statuses = [o.status for o in report.outcomes]
    assert statuses == [OutcomeStatus.CREATED] * 8
    assert [o.verified_by is not None for o in report.outcomes] == [True] * 2 + [False] * 6
    assert report.outcomes[0].verified_by.startswith("created_at")  # type: ignore[union-attr]
    assert report.outcomes[0].attempts == 0
    assert read_journal(path).pending == {}
    assert len(fake.links) == 8


async def test_an_in_flight_link_older_than_the_intent_is_reported_exists(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    fake = FakeTracker(queues={"TEST": 20}, duplicate_status=None)
    spec = chain(1)[0]
    fake.add_link(spec.source, spec.target, spec.relationship)  # there before the intent
    write_intents(path, [spec], time.time() + 3600)
    async with client_for(fake) as client:
        report = await client.links.bulk_create([spec], journal=path)
    (outcome,) = report.outcomes
    assert outcome.status is OutcomeStatus.EXISTS
    assert outcome.verified_by == "created_at"
    assert fake.stats.count("POST") == 0
    line = [r for r in records(path) if r.get("status")][-1]
    assert line["verified_by"] == "created_at"


async def test_a_torn_last_line_is_left_alone_and_the_next_record_is_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.jsonl"
    fake = FakeTracker(queues={"TEST": 20}, duplicate_status=None)
    specs = chain(6)
    async with client_for(fake) as client:
        await client.links.bulk_create(specs[:3], journal=path)
        # A crash in the middle of writing the next record.
        with path.open("a") as f:
            f.write('{"index": 3, "status": "crea')
        await client.links.bulk_create(specs, journal=path)
        text = path.read_text()
        assert '{"index": 3, "status": "crea\n' in text
        state = read_journal(path)
        assert state.done == {s.digest for s in specs}
        assert state.pending == {}
        fake.stats.reset()
        again = await client.links.bulk_create(specs, journal=path)
    assert fake.stats.total == 0
    assert {o.status for o in again.outcomes} == {OutcomeStatus.EXISTS}
    assert len(fake.links) == 6


def test_garbled_lines_are_skipped_and_never_swallow_a_neighbour(tmp_path: Path) -> None:
    a, b, c = chain(3)
    good = [
        {"index": 0, "status": "created", **a.as_dict()},
        {"index": 2, "status": "exists", **c.as_dict()},
    ]
    path = tmp_path / "j.jsonl"
    path.write_text(
        json.dumps(good[0])
        + "\n\x00\xff{not json\n"
        + '{"index": 1, "status": "created", "source": "TEST-2"}\n'  # a key missing
        + '["a list"]\n'
        + '{"intent": "create", "index": 1, "at": "yesterday", '
        + json.dumps(b.as_dict())[1:]
        + "\n"
        + json.dumps(good[1]),  # no final newline: a torn line that happens to be whole
        encoding="utf-8",
    )
    state = read_journal(path)
    assert state.done == {a.digest, c.digest}
    assert state.pending == {}
    assert state.torn
    Journal(path).close()
    assert path.read_text().endswith(json.dumps(good[1]) + "\n")
    assert read_journal(path).done == {a.digest, c.digest}


async def test_an_unresolved_create_keeps_its_intent_open_for_the_next_run(
    tmp_path: Path,
) -> None:
    """When the read-back after an unknown outcome fails too, the item is FAILED and its intent
    stays open: the next run reads it back and sends nothing blind."""
    path = tmp_path / "j.jsonl"
    spec = chain(1)[0]
    fake = FakeTracker(queues={"TEST": 20}, duplicate_status=None)
    async with client_for(fake) as client:
        real = client.links._ops

        async def create_unresolved(s: LinkSpec) -> Created:
            await real.create(s)  # it landed ...
            raise Unresolved(TransportError("... and the read-back failed"), 2)

        ops = Ops(create_unresolved, real.get, real.judge, real.search, 2, real.clock)
        first = await bulk_create(ops, [spec], journal=path)
        assert first.outcomes[0].status is OutcomeStatus.FAILED
        assert isinstance(first.outcomes[0].error, TransportError)
        assert first.outcomes[0].attempts == 2
        assert set(read_journal(path).pending) == {spec.digest}
        fake.stats.reset()
        second = await client.links.bulk_create([spec], journal=path)
    assert fake.stats.count("POST") == 0
    assert second.outcomes[0].status is OutcomeStatus.CREATED
    assert second.outcomes[0].verified_by is not None
    assert read_journal(path).pending == {}
    assert len(fake.links) == 1


async def test_a_failed_read_back_on_resume_keeps_the_intent_open(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    spec = chain(1)[0]
    write_intents(path, [spec], time.time())
    fake = FakeTracker(queues={"TEST": 20}, duplicate_status=None)
    async with client_for(fake) as client:
        real = client.links._ops

        async def get_fails(key: str) -> Any:
            raise TransportError("unreachable")

        ops = Ops(real.create, get_fails, real.judge, real.search, 2, real.clock)
        report = await bulk_create(ops, [spec], journal=path)
    assert report.outcomes[0].status is OutcomeStatus.FAILED
    assert fake.stats.count("POST") == 0
    assert set(read_journal(path).pending) == {spec.digest}


async def test_line_numbers_and_indexes_in_intents(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    fake = FakeTracker(queues={"TEST": 20})
    items = [{**s.as_dict(), "line": 10 + i} for i, s in enumerate(chain(3))]
    async with client_for(fake) as client:
        await client.links.bulk_create(items, journal=path)
    lines = records(path)
    intents = sorted((r["index"], r["line"]) for r in lines if "intent" in r)
    outcomes = sorted((r["index"], r["line"]) for r in lines if "status" in r)
    assert intents == outcomes == [(0, 10), (1, 11), (2, 12)]
