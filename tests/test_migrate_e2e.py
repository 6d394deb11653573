"""Migrations end to end: the library against the fake Tracker over a real loopback socket."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tracker_links import (
    ConflictError,
    LinkSpec,
    OutcomeStatus,
    Relationship,
    RetryPolicy,
    TrackerClient,
)
from tracker_links.testing import FakeTracker

pytestmark = pytest.mark.anyio

TOKEN = "e2e-migrate-secret-token"
QUICK = RetryPolicy(attempts=10, backoff_base=0.002, backoff_cap=0.02)
EPOCH = datetime(2015, 6, 1, 9, 0, tzinfo=timezone(timedelta(hours=3)))


@pytest.fixture
def fake() -> FakeTracker:
    return FakeTracker(queues={"TEST": 2100}, seed=15, started_at="2026-12-01T00:00:00+00:00")


@pytest.fixture
def url(fake: FakeTracker) -> Iterator[str]:
    with fake.serve() as base_url:
        yield base_url


def connect(url: str, **kwargs: Any) -> TrackerClient:
    kwargs.setdefault("retry", QUICK)
    return TrackerClient(TOKEN, org_id="42", base_url=url, **kwargs)


def history_specs(n: int) -> list[LinkSpec]:
    """``n`` distinct links, each with its own author and date (and every third an update)."""
    rels = [Relationship.DEPENDS_ON, Relationship.RELATES, Relationship.CLONE]
    out = []
    for i in range(n):
        created = EPOCH + timedelta(minutes=7 * i, milliseconds=i % 1000)
        extra: dict[str, Any] = {}
        if i % 3 == 0:
            extra = {"updated_at": created + timedelta(days=1), "updated_by": f"editor{i % 5}"}
        out.append(
            LinkSpec(
                f"TEST-{i + 1}",
                f"TEST-{2001 + i % 100}",
                rels[i % 3],
                created_at=created,
                created_by=f"author{i % 11}" if i % 4 else 1120000000000000 + i,
                **extra,
            )
        )
    return out


async def test_2000_links_imported_with_history_under_faults(fake: FakeTracker, url: str) -> None:
    fake.fail_rate, fake.drop_rate = 0.10, 0.05
    fake.duplicate_status = None  # a duplicate would be stored: the test would see it
    specs = history_specs(2000)
    assert len({s.digest for s in specs}) == 2000
    async with connect(url, max_concurrency=32) as client:
        report = await client.links.bulk_create(specs)
    assert report.counts()["created"] == 2000, report.summary()
    assert fake.stats.injected_failures > 0
    assert fake.stats.dropped > 0
    assert fake.stats.duplicates_created == 0
    assert fake.stats.by_route[("POST", "links.create")] == 0  # every one through the import
    for spec in specs:
        (stored,) = fake.find_links(spec.source, spec.target, spec.relationship)
        assert stored.created_at == spec.created_at
        assert stored.created_by == str(spec.created_by)
        assert stored.updated_at == spec.updated_at
        assert stored.updated_by == spec.updated_by
    assert len(fake.links) == 2000


async def test_import_single_calls_and_their_errors(fake: FakeTracker, url: str) -> None:
    async with connect(url) as client:
        link = await client.links.import_link(
            "TEST-1", "TEST-2", "original", created_at=EPOCH, created_by="ivanov"
        )
        assert link.relationship is Relationship.ORIGINAL
        assert link.created_at == EPOCH
        with pytest.raises(ConflictError) as caught:
            await client.links.import_link(
                "TEST-2", "TEST-1", "clone", created_at=EPOCH, created_by="ivanov"
            )
        assert caught.value.link is not None
        assert caught.value.link.id == link.id
        # Plain create refuses clone links here: the error says where to go.
        with pytest.raises(ConflictError, match="import_link"):
            await client.links.create("TEST-3", "TEST-4", "clone")
        fake.import_forbidden = True
        with pytest.raises(Exception, match="administrator") as forbidden:
            await client.links.import_link(
                "TEST-5", "TEST-6", "relates", created_at=EPOCH, created_by="ivanov"
            )
        assert forbidden.value.status_code == 403  # type: ignore[attr-defined]
    assert len(fake.links) == 1


class Recorder:
    """Every request path the library sends (an httpx event hook on the caller's client)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.paths.append(request.url.path)


@pytest.fixture
def small() -> FakeTracker:
    return FakeTracker(queues={"TEST": 30}, seed=16)


async def test_every_link_call_on_api_v3(small: FakeTracker, tmp_path: Any) -> None:
    fake = small
    seen = Recorder()
    with fake.serve() as url:
        await _all_calls_on_v3(url, seen, tmp_path)
    assert seen.paths
    assert all(path.startswith("/v3/") for path in seen.paths), [
        p for p in seen.paths if not p.startswith("/v3/")
    ]
    routes = {route for _, route in fake.stats.by_route}
    assert routes >= {"links.list", "links.create", "links.import", "links.delete"}
    assert routes >= {"linktypes", "search"}


async def _all_calls_on_v3(url: str, seen: Recorder, tmp_path: Any) -> None:
    async with (
        httpx.AsyncClient(event_hooks={"request": [seen]}) as http,
        connect(url, api_version="v3", http_client=http) as client,
    ):
        link = await client.links.create("TEST-1", "TEST-2", "depends on")
        assert link.url is not None
        assert "/v3/" in link.url
        (listed,) = await client.links.get("TEST-2")
        assert listed.relationship is Relationship.IS_DEPENDENT_BY
        assert {t.id for t in await client.links.types()} >= {"depends", "clone"}
        imported = await client.links.import_link(
            "TEST-3", "TEST-4", "relates", created_at=EPOCH, created_by="ivanov"
        )
        report = await client.links.bulk_create(
            [
                ("TEST-5", "TEST-6", "relates"),
                LinkSpec("TEST-7", "TEST-8", "clone", created_at=EPOCH, created_by="x"),
                ("TEST-1", "TEST-2", "depends on"),
            ],
            journal=tmp_path / "v3.jsonl",
        )
        assert [o.status for o in report.outcomes] == [
            OutcomeStatus.CREATED,
            OutcomeStatus.CREATED,
            OutcomeStatus.EXISTS,
        ]
        async with client.links.queue_links(query="Queue: TEST") as found:
            by_key = {item.key: item.links async for item in found}
        assert len(by_key) == 30
        assert {ln.id for ln in by_key["TEST-3"]} == {imported.id}
        await client.links.delete("TEST-1", link.id)
        assert await client.links.get("TEST-2") == []
        plan = await client.links.plan([("TEST-9", "TEST-10", "relates")], queue="TEST")
        assert len(plan.create) == 1
