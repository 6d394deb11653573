"""The streaming calls as context managers, and what an Outcome says about repeats and lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from tracker_links import LinkSpec, OutcomeStatus
from tracker_links.testing import FakeTracker

from .helpers import FakeTime
from .test_bulk import client_for

pytestmark = pytest.mark.anyio


async def settle() -> None:
    """Let every runnable task run a while (no wall-clock wait): work left running would."""
    for _ in range(200):
        await anyio.lowlevel.checkpoint()


def chain(n: int) -> list[tuple[str, str, str]]:
    return [(f"TEST-{i}", f"TEST-{i + 1}", "depends on") for i in range(1, n + 1)]


async def test_create_many_as_a_context_manager_yields_every_outcome() -> None:
    fake = FakeTracker(queues={"TEST": 100})
    async with client_for(fake) as client, client.links.create_many(chain(50)) as outcomes:
        got = [o async for o in outcomes]
    assert sorted(o.index for o in got) == list(range(50))
    assert all(o.status is OutcomeStatus.CREATED for o in got)
    assert len(fake.links) == 50


async def test_leaving_async_with_early_stops_the_work_without_aclosing() -> None:
    fake = FakeTracker(queues={"TEST": 600})
    pulled = 0

    def specs() -> Any:
        nonlocal pulled
        for spec in chain(500):
            pulled += 1
            yield spec

    async with client_for(fake, max_concurrency=4) as client:
        seen = 0
        async with client.links.create_many(specs()) as outcomes:
            async for _ in outcomes:
                seen += 1
                if seen == 10:
                    break
        # Left at once: the workers were cancelled, nothing more is read or sent.
        sent = fake.stats.count("POST")
        read = pulled
        await settle()
        assert fake.stats.count("POST") == sent
        assert pulled == read < 500
        # The client is still usable.
        assert await client.links.get("TEST-1") is not None


async def test_an_exception_inside_async_with_stops_the_work_and_propagates() -> None:
    fake = FakeTracker(queues={"TEST": 600})
    async with client_for(fake, max_concurrency=4) as client:

        async def use() -> None:
            async with client.links.create_many(chain(500)) as outcomes:
                async for _ in outcomes:
                    raise LookupError("caller's own error")

        with pytest.raises(LookupError):
            await use()
        sent = fake.stats.count("POST")
        await settle()
        assert fake.stats.count("POST") == sent < 500


async def test_get_many_and_queue_links_as_context_managers_and_leaving_early() -> None:
    fake = FakeTracker(queues={"TEST": 300})
    fake.add_link("TEST-1", "TEST-2", "depends on")
    keys = [f"TEST-{i}" for i in range(1, 301)]
    async with client_for(fake, max_concurrency=4) as client:
        async with client.links.get_many(keys[:20]) as items:
            assert sorted([i.key async for i in items]) == sorted(keys[:20])
        async with client.links.queue_links("TEST") as items:
            assert len({i.key async for i in items}) == 300
        for call in (lambda: client.links.get_many(keys), lambda: client.links.queue_links("TEST")):
            async with call() as items:
                async for _ in items:
                    break
            gets = fake.stats.count("GET")
            await settle()
            assert fake.stats.count("GET") == gets
        # ``async for`` directly keeps working.
        assert len([i async for i in client.links.get_many(keys[:5])]) == 5


async def test_repeats_name_the_item_they_repeat() -> None:
    fake = FakeTracker(queues={"TEST": 10})
    specs: list[Any] = [
        ("TEST-1", "TEST-2", "depends on"),
        ("TEST-3", "TEST-4", "relates"),
        ("TEST-2", "TEST-1", "is dependent by"),  # item 0 the other way round
        ("TEST-4", "TEST-3", "relates"),  # item 1 the other way round
        ("TEST-1", "NOPE-1", "relates"),  # fails: no such issue
        ("TEST-1", "NOPE-1", "relates"),  # repeats a failure
    ]
    async with client_for(fake) as client:
        report = await client.links.bulk_create(specs)
    assert [o.repeat_of for o in report.outcomes] == [None, None, 0, 1, None, 4]
    assert [o.status for o in report.outcomes][2:] == [
        OutcomeStatus.EXISTS,
        OutcomeStatus.EXISTS,
        OutcomeStatus.FAILED,
        OutcomeStatus.FAILED,
    ]
    assert report.outcomes[5].to_json()["repeat_of"] == 4
    assert "repeat_of" not in report.outcomes[0].to_json()


async def test_line_numbers_given_with_the_items_reach_outcomes_and_journal(
    tmp_path: Path,
) -> None:
    fake = FakeTracker(queues={"TEST": 10})
    journal = tmp_path / "j.jsonl"
    items: list[Any] = [
        {"source": "TEST-1", "target": "TEST-2", "relationship": "relates", "line": 2},
        {"source": "TEST-3", "target": "bad", "relationship": "relates", "line": 5},
        {"source": "TEST-2", "target": "TEST-1", "relationship": "relates", "line": 7},
        LinkSpec("TEST-5", "TEST-6", "relates"),
        (LinkSpec("TEST-7", "TEST-8", "relates"), 11),
        (LinkSpec("TEST-8", "TEST-7", "relates"), 12),
        ("TEST-9", 13),  # not a (spec, line) pair: a bad item
    ]
    async with client_for(fake) as client:
        report = await client.links.bulk_create(items, journal=journal)
    assert [(o.index, o.line) for o in report.outcomes] == [
        (0, 2),
        (1, 5),
        (2, 7),
        (3, None),
        (4, 11),
        (5, 12),
        (6, None),
    ]
    assert report.outcomes[2].repeat_of == 0
    assert report.outcomes[5].repeat_of == 4
    assert report.outcomes[6].status is OutcomeStatus.FAILED
    records = [json.loads(r) for r in journal.read_text().splitlines()]
    lines = {r["index"]: r.get("line") for r in records if "status" in r}
    assert lines == {0: 2, 1: 5, 2: 7, 3: None, 4: 11, 5: 12, 6: None}


def test_digest_is_the_identity_in_either_spelling() -> None:
    a = LinkSpec("TEST-1", "TEST-2", "depends on")
    assert a.digest == LinkSpec("TEST-2", "TEST-1", "is dependent by").digest
    assert a.digest != LinkSpec("TEST-2", "TEST-1", "depends on").digest
    assert LinkSpec("A-1", "A-2", "relates").digest == LinkSpec("A-2", "A-1", "relates").digest
    assert len(a.digest) == 12


async def test_report_elapsed_uses_the_clients_clock() -> None:
    ft = FakeTime()
    fake = FakeTracker(queues={"TEST": 30}, latency=1.0, clock=ft.clock, sleep=ft.sleep)
    async with fake.client(
        max_concurrency=2, clock=ft.clock, sleep=ft.sleep, rate_limit=1000
    ) as client:
        report = await client.links.bulk_create(chain(10))
        links = await client.links.bulk_get([f"TEST-{i}" for i in range(1, 5)])
    # 10 creates of 1 s (virtual), the first alone then two at a time: about 6 s; the wall
    # clock saw milliseconds.
    assert 5.0 <= report.elapsed <= 7.0
    assert 2.0 <= links.elapsed <= 3.0
