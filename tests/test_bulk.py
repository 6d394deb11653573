"""The bulk engine against the fake Tracker: nothing lost, nothing duplicated, one outcome each."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import pytest

from tracker_links import (
    AuthError,
    InvalidInputError,
    LinkSpec,
    NotFoundError,
    OutcomeStatus,
    Relationship,
    RetryPolicy,
    TrackerClient,
    _protocol,
)
from tracker_links.testing import FakeTracker

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryPolicy(attempts=8, backoff_base=0.001, backoff_cap=0.01)


async def no_sleep(seconds: float) -> None:
    await anyio.lowlevel.checkpoint()


def client_for(fake: FakeTracker, **kwargs: Any) -> TrackerClient:
    kwargs.setdefault("sleep", no_sleep)
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("max_concurrency", 8)
    return fake.client(**kwargs)


RELS = [r.value for r in Relationship if r.type_id in ("relates", "depends", "subtask")]


def messy_specs(n: int, issues: int, seed: int = 7) -> list[Any]:
    """``n`` items: distinct valid pairs, ~5% repeats (half of them the other way round),
    ~2% bad items (malformed key, self-link, unknown relationship)."""
    rng = random.Random(seed)
    out: list[Any] = []
    used: set[tuple[str, ...]] = set()
    while len(out) < n:
        roll = rng.random()
        if roll < 0.02:
            out.append(
                rng.choice(
                    [
                        ("TEST-1/../x", "TEST-2", "relates"),
                        ("TEST-3", "TEST-3", "relates"),
                        ("TEST-4", "TEST-5", "blocks"),
                        ("", "TEST-5", "relates"),
                    ]
                )
            )
        elif roll < 0.07 and out:
            prior = rng.choice([s for s in out if isinstance(s, LinkSpec)] or [None])
            if prior is None:
                continue
            if rng.random() < 0.5:
                out.append((prior.source, prior.target, prior.relationship.value))
            else:
                out.append((prior.target, prior.source, prior.relationship.inverse.value))
        else:
            a, b = rng.sample(range(1, issues + 1), 2)
            spec = LinkSpec(f"TEST-{a}", f"TEST-{b}", rng.choice(RELS))
            if spec.canonical in used:
                continue
            used.add(spec.canonical)
            out.append(spec)
    return out


def valid_links(specs: list[Any]) -> set[tuple[str, ...]]:
    links = set()
    for item in specs:
        with contextlib.suppress(InvalidInputError):
            links.add(LinkSpec.coerce(item).canonical)
    return links


def assert_exactly_once(fake: FakeTracker, specs: list[Any]) -> None:
    """The fake holds exactly one link for each valid distinct pair, and nothing else."""
    stored = [
        LinkSpec(link.source, link.target, link.relationship).canonical
        for link in fake.links.values()
    ]
    assert len(stored) == len(set(stored)), "a link was created twice"
    assert set(stored) == valid_links(specs)


@pytest.mark.parametrize("duplicate_status", [422, 409, None])
async def test_faults_lose_nothing_and_duplicate_nothing(duplicate_status: int | None) -> None:
    fake = FakeTracker(
        queues={"TEST": 300},
        fail_rate=0.10,
        drop_rate=0.05,
        drop_after_write=0.5,
        duplicate_status=duplicate_status,
        seed=3,
    )
    specs = messy_specs(600, 300)
    progress: list[tuple[int, int | None]] = []
    async with client_for(fake) as client:
        report = await client.links.bulk_create(
            specs, on_progress=lambda done, total, o: progress.append((done, total))
        )
    assert [o.index for o in report.outcomes] == list(range(len(specs)))
    assert progress == [(i + 1, len(specs)) for i in range(len(specs))]
    bad = [o for o in report.failed if isinstance(o.error, InvalidInputError)]
    assert len(bad) == len(specs) - sum(1 for s in specs if _valid(s))
    assert all(o.attempts == 0 for o in bad)
    assert report.failed == bad, [o.reason for o in report.failed if o not in bad]
    assert not report.skipped
    assert report.ok is False
    assert len(report.created) + len(report.existing) == sum(1 for s in specs if _valid(s))
    assert len(report.created) == len(valid_links(specs))
    assert_exactly_once(fake, specs)
    assert fake.stats.injected_failures > 0
    assert fake.stats.dropped > 0
    assert fake.stats.duplicates_created == 0


def _valid(item: Any) -> bool:
    try:
        LinkSpec.coerce(item)
    except InvalidInputError:
        return False
    return True


async def test_repeats_in_either_spelling_send_one_request() -> None:
    fake = FakeTracker(queues={"TEST": 5})
    specs = [
        ("TEST-1", "TEST-2", "depends on"),
        ("TEST-2", "TEST-1", "is dependent by"),
        ("TEST-1", "TEST-2", Relationship.DEPENDS_ON),
        ("TEST-3", "TEST-4", "relates"),
        ("TEST-4", "TEST-3", "relates"),
    ]
    async with client_for(fake) as client:
        report = await client.links.bulk_create(specs)
    assert [o.status for o in report.outcomes] == [
        OutcomeStatus.CREATED,
        OutcomeStatus.EXISTS,
        OutcomeStatus.EXISTS,
        OutcomeStatus.CREATED,
        OutcomeStatus.EXISTS,
    ]
    assert fake.stats.count("POST") == 2
    assert report.ok
    assert "same link as" in (report.outcomes[1].note or "")


async def test_links_already_on_the_service_are_exists_confirmed_by_get() -> None:
    fake = FakeTracker(queues={"TEST": 5}, duplicate_status=409)
    fake.add_link("TEST-2", "TEST-1", "is dependent by")
    async with client_for(fake) as client:
        report = await client.links.bulk_create([("TEST-1", "TEST-2", "depends on")])
    (outcome,) = report.outcomes
    assert outcome.status is OutcomeStatus.EXISTS
    assert outcome.link is not None
    assert outcome.link.target.key == "TEST-2"
    assert fake.stats.count("GET") >= 1
    assert len(fake.links) == 1


async def test_journal_rerun_sends_no_create(tmp_path: Path) -> None:
    fake = FakeTracker(queues={"TEST": 100}, fail_rate=0.05, seed=1)
    specs = messy_specs(200, 100)
    journal = tmp_path / "links.jsonl"
    async with client_for(fake) as client:
        first = await client.links.bulk_create(specs, journal=str(journal))
        assert first.created
        fake.stats.reset()
        second = await client.links.bulk_create(specs, journal=str(journal))
    assert fake.stats.count("POST") == 0
    assert fake.stats.total == 0
    assert len(second.outcomes) == len(specs)
    assert {o.status for o in second.outcomes} <= {OutcomeStatus.EXISTS, OutcomeStatus.FAILED}
    assert len(second.failed) == len(first.failed)
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert all(("status" in line) != ("intent" in line) for line in lines)
    # One intent before each create sent, and an outcome for every item of each run.
    assert sum("intent" in line for line in lines) == sum(o.attempts > 0 for o in first.outcomes)
    assert sum("status" in line for line in lines) == 2 * len(specs) - len(second.existing)
    assert_exactly_once(fake, specs)


async def test_cancelled_run_leaves_a_consistent_journal_and_resumes(tmp_path: Path) -> None:
    fake = FakeTracker(queues={"TEST": 100}, latency=0.001, duplicate_status=None, seed=2)
    specs = messy_specs(300, 100, seed=11)
    journal = tmp_path / "links.jsonl"
    async with client_for(fake, max_concurrency=16) as client:
        with anyio.CancelScope() as scope:

            def stop_early(done: int, total: int | None, outcome: object) -> None:
                if done == 60:
                    scope.cancel()

            await client.links.bulk_create(specs, journal=str(journal), on_progress=stop_early)
        assert scope.cancelled_caught
        lines = [json.loads(line) for line in journal.read_text().splitlines()]
        lines = [line for line in lines if "status" in line]
        assert 60 <= len(lines) < len(specs)
        for line in lines:  # every journalled success is really on the service
            if line["status"] == "created":
                assert fake.has_link(line["source"], line["target"], line["relationship"])
        report = await client.links.bulk_create(specs, journal=str(journal))
    assert len(report.outcomes) == len(specs)
    assert not report.skipped
    assert_exactly_once(fake, specs)


async def test_bad_token_one_401_and_the_rest_skipped() -> None:
    fake = FakeTracker(queues={"TEST": 50}, token="right")
    specs = [LinkSpec(f"TEST-{i}", f"TEST-{i + 1}", "relates") for i in range(1, 40)]
    specs.insert(5, ("TEST-1", "TEST-1", "relates"))  # type: ignore[arg-type]
    async with client_for(fake, token="wrong", max_concurrency=16) as client:
        report = await client.links.bulk_create(specs)
    assert fake.stats.count(status=401) == 1
    assert fake.stats.total == 1
    assert isinstance(report.outcomes[0].error, AuthError)
    assert len(report.skipped) == len(specs) - 2
    assert isinstance(report.outcomes[5].error, InvalidInputError)
    assert not report.ok
    assert "wrong" not in json.dumps([o.to_json() for o in report.outcomes])


async def test_404_fails_one_item_and_the_batch_goes_on() -> None:
    fake = FakeTracker(queues={"TEST": 5})
    async with client_for(fake) as client:
        report = await client.links.bulk_create(
            [("TEST-1", "NOPE-1", "relates"), ("TEST-1", "TEST-2", "relates")]
        )
    assert isinstance(report.outcomes[0].error, NotFoundError)
    assert report.outcomes[1].status is OutcomeStatus.CREATED
    assert "NotFoundError" in (report.outcomes[0].reason or "")
    assert report.summary().startswith("2 items in")


async def test_create_many_reads_lazily_and_bounds_what_is_in_flight() -> None:
    fake = FakeTracker(queues={"TEST": 2000})
    pulled = 0

    def specs() -> Iterator[LinkSpec]:
        nonlocal pulled
        for i in range(1, 1500):
            pulled += 1
            yield LinkSpec(f"TEST-{i}", f"TEST-{i + 1}", "depends on")

    async with client_for(fake, max_concurrency=4) as client:
        seen = 0
        async for outcome in client.links.create_many(specs()):
            seen += 1
            assert outcome.ok
            # Never more than one item per worker (the concurrency) + the stream buffer ahead.
            assert pulled - seen <= 4 + 4 + 2
    assert seen == 1499 == len(fake.links)


async def test_create_many_accepts_async_iterables_and_early_exit_is_clean() -> None:
    fake = FakeTracker(queues={"TEST": 100})

    async def specs() -> AsyncIterator[tuple[str, str, str]]:
        for i in range(1, 90):
            yield (f"TEST-{i}", f"TEST-{i + 1}", "relates")

    async with client_for(fake) as client:
        got = []
        async with aclosing(client.links.create_many(specs())) as outcomes:
            async for outcome in outcomes:
                got.append(outcome)
                if len(got) == 10:
                    break
        assert len(got) == 10
        # The client is still usable after the early exit.
        assert await client.links.get("TEST-1") is not None


async def test_bulk_get_and_get_many_report_failures_without_dropping_them() -> None:
    fake = FakeTracker(queues={"TEST": 10})
    fake.add_link("TEST-1", "TEST-2", "depends on")
    async with client_for(fake) as client:
        report = await client.links.bulk_get(["TEST-1", "TEST-2", "TEST-3", "NOPE-9", "bad key"])
        assert [link.target.key for link in report.links["TEST-1"]] == ["TEST-2"]
        assert report.links["TEST-2"][0].relationship is Relationship.IS_DEPENDENT_BY
        assert report.links["TEST-3"] == []
        assert isinstance(report.failed["NOPE-9"], NotFoundError)
        assert isinstance(report.failed["bad key"], InvalidInputError)
        assert not report.ok
        items = [item async for item in client.links.get_many(["TEST-1", "TEST-1", "TEST-2"])]
    assert sorted(i.key for i in items) == ["TEST-1", "TEST-2"]
    assert fake.stats.count("GET") == 4 + 2  # no request for the malformed key


@pytest.mark.parametrize("scroll", [False, True])
async def test_queue_links_sees_every_issue_once(
    scroll: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if scroll:
        monkeypatch.setattr(_protocol, "SCROLL_ABOVE", 100)
    fake = FakeTracker(queues={"TEST": 250, "OTHER": 5})
    for i in range(1, 250, 7):
        fake.add_link(f"TEST-{i}", f"TEST-{i + 1}", "depends on")
    async with client_for(fake) as client:
        items = [item async for item in client.links.queue_links("TEST")]
        by_query = [item async for item in client.links.queue_links(query="Queue: TEST")]
    keys = [item.key for item in items]
    assert sorted(keys) == sorted(f"TEST-{i}" for i in range(1, 251))
    assert len({i.key for i in by_query}) == 250
    links = {item.key: item.links for item in items}
    assert [link.target.key for link in links["TEST-1"]] == ["TEST-2"]
    assert all(item.error is None for item in items)
    search_requests = fake.stats.count("POST")
    assert search_requests == (2 * 2 if scroll else 2 * 3)


async def test_queue_links_bad_input_raises_before_any_request() -> None:
    fake = FakeTracker(queues={"TEST": 3})
    async with client_for(fake) as client:
        with pytest.raises(InvalidInputError, match="exactly one"):
            client.links.queue_links()
        with pytest.raises(InvalidInputError, match="queue"):
            client.links.queue_links("test/../x")
        with pytest.raises(InvalidInputError, match="exactly one"):
            client.links.queue_links("TEST", query="Queue: TEST")
    assert fake.stats.total == 0


def chain(n: int) -> list[tuple[str, str, str]]:
    return [(f"TEST-{i}", f"TEST-{i + 1}", "relates") for i in range(1, n + 1)]


async def collect(items: AsyncIterator[Any], into: list[Any]) -> None:
    async for item in items:
        into.append(item)


async def test_failing_input_finishes_what_is_in_flight_then_raises_its_own_error(
    tmp_path: Path,
) -> None:
    fake = FakeTracker(queues={"TEST": 100})

    def specs() -> Iterator[tuple[str, str, str]]:
        yield from chain(39)
        raise ValueError("the source broke")

    journal = tmp_path / "links.jsonl"
    async with client_for(fake) as client:
        # The input's own exception, not an exception group around it.
        with pytest.raises(ValueError, match="the source broke"):
            await client.links.bulk_create(specs(), journal=journal)
    assert len(fake.links) == 39  # nothing read before the failure is dropped
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert sorted(line["index"] for line in lines if "status" in line) == list(range(39))
    assert sorted(line["index"] for line in lines if "intent" in line) == list(range(39))


async def test_failing_async_input_of_create_many_and_get_many() -> None:
    fake = FakeTracker(queues={"TEST": 100})

    async def specs() -> AsyncIterator[tuple[str, str, str]]:
        for spec in chain(20):
            yield spec
        raise ValueError("the source broke")

    def keys() -> Iterator[str]:
        yield from ("TEST-1", "TEST-2")
        raise KeyError("no more keys")

    async with client_for(fake) as client:
        outcomes: list[Any] = []
        with pytest.raises(ValueError, match="the source broke"):
            await collect(client.links.create_many(specs()), outcomes)
        assert sorted(o.index for o in outcomes) == list(range(20))
        got: list[Any] = []
        with pytest.raises(KeyError, match="no more keys"):
            await collect(client.links.get_many(keys()), got)
        assert sorted(item.key for item in got) == ["TEST-1", "TEST-2"]


async def test_queue_links_search_failure_is_raised_as_it_is() -> None:
    fake = FakeTracker(queues={"TEST": 10}, token="the-right-one")
    async with client_for(fake, token="a-wrong-one") as client:
        with pytest.raises(AuthError):
            await collect(client.links.queue_links("TEST"), [])
    assert fake.stats.count("GET") == 0


async def test_report_writes_json_lines(tmp_path: Path) -> None:
    fake = FakeTracker(queues={"TEST": 5})
    async with client_for(fake) as client:
        report = await client.links.bulk_create(
            [("TEST-1", "TEST-2", "relates"), ("TEST-9", "x", "relates")]
        )
    path = tmp_path / "report.jsonl"
    report.write_jsonl(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0]["status"] == "created"
    assert rows[0]["link_id"]
    assert rows[1]["status"] == "failed"
    assert "invalid target issue key" in rows[1]["reason"]
    assert report.counts() == {
        "created": 1, "exists": 0, "failed": 1, "skipped": 0, "deleted": 0, "absent": 0
    }  # fmt: skip
