"""Batch-level failures: an unreachable service or a wrong organization stops the batch early;
one forbidden queue fails only its own items."""

from __future__ import annotations

import socket

import httpx
import pytest
import respx

from tracker_links import (
    AuthError,
    OutcomeStatus,
    RetryPolicy,
    TrackerClient,
    TransportError,
)
from tracker_links.testing import FakeTracker

from .helpers import BASE, FakeTime
from .test_bulk import client_for

pytestmark = pytest.mark.anyio

QUICK = RetryPolicy(attempts=6, backoff_base=0.01, backoff_cap=0.05)


def pairs(n: int, queue: str = "TEST") -> list[tuple[str, str, str]]:
    return [(f"{queue}-{i}", f"{queue}-{i + 1}", "relates") for i in range(1, n + 1)]


@pytest.fixture
def dead_url() -> str:
    """A loopback port nobody listens on: connections to it are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("concurrency", [1, 8, 32])
async def test_a_refused_connection_stops_the_batch_after_a_few_items(
    dead_url: str, ft: FakeTime, concurrency: int
) -> None:
    async with TrackerClient(
        "t",
        org_id="1",
        base_url=dead_url,
        retry=QUICK,
        max_concurrency=concurrency,
        sleep=ft.sleep,
        clock=ft.clock,
    ) as client:
        report = await client.links.bulk_create(pairs(320))
    failed, skipped = report.failed, report.skipped
    assert len(failed) + len(skipped) == 320
    # The first item alone, then about one round of the workers: never every item's retries.
    assert len(failed) <= 1 + concurrency + 2
    assert len(failed) >= min(3, concurrency)
    assert all(isinstance(o.error, TransportError) and o.error.connect_failed for o in failed)
    assert all("could not be reached" in (o.note or "") for o in skipped)
    assert ft.now < 1.0  # virtual seconds: a few items' retries, not 320 of them


async def test_connect_failures_after_the_service_was_reached_do_not_stop_the_batch(
    ft: FakeTime,
) -> None:
    posts = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal posts
        posts += 1
        if posts == 1:
            return httpx.Response(201, json=_link(2))
        raise httpx.ConnectError("refused", request=request)

    with respx.mock(base_url=BASE) as router:
        router.post(url__regex=r"/v2/issues/TEST-\d+/links").mock(side_effect=answer)
        async with TrackerClient(
            "t",
            org_id="1",
            retry=RetryPolicy(attempts=2, backoff_base=0.001, backoff_cap=0.001),
            max_concurrency=4,
            sleep=ft.sleep,
            clock=ft.clock,
            transport=httpx.MockTransport(router.async_handler),
        ) as client:
            report = await client.links.bulk_create(pairs(12))
    assert report.outcomes[0].status is OutcomeStatus.CREATED
    assert len(report.failed) == 11  # each tried: the service was up a moment ago
    assert not report.skipped


async def test_one_forbidden_queue_fails_its_items_and_the_batch_goes_on() -> None:
    fake = FakeTracker(queues={"TEST": 40, "SECRET": 40}, forbidden_queues={"SECRET"})
    specs = pairs(20) + pairs(10, "SECRET") + pairs(20)[10:]
    async with client_for(fake, max_concurrency=4) as client:
        report = await client.links.bulk_create(specs)
    assert not report.skipped
    assert len(report.failed) == 10
    assert all(isinstance(o.error, AuthError) for o in report.failed)
    assert all(o.error.status_code == 403 for o in report.failed if o.error is not None)
    assert len(report.created) == 20


async def test_the_first_items_all_403_stop_the_batch() -> None:
    fake = FakeTracker(queues={"SECRET": 400}, forbidden_queues={"SECRET"})
    async with client_for(fake, max_concurrency=2) as client:
        report = await client.links.bulk_create(pairs(300, "SECRET"))
    assert 5 <= len(report.failed) <= 5 + 2
    assert len(report.skipped) == 300 - len(report.failed)
    assert all("refused with 403" in (o.note or "") for o in report.skipped)
    assert fake.stats.count("POST", 403) == len(report.failed)


async def test_a_401_still_stops_at_once() -> None:
    fake = FakeTracker(queues={"TEST": 50}, token="right")
    async with client_for(fake, token="wrong", max_concurrency=8) as client:
        report = await client.links.bulk_create(pairs(30))
    assert fake.stats.total == 1
    assert len(report.skipped) == 29


def _link(target: int) -> dict[str, object]:
    return {
        "self": f"{BASE}/v2/issues/TEST-1/links/1",
        "id": 1,
        "type": {"self": f"{BASE}/v2/linktypes/relates", "id": "relates"},
        "direction": "outward",
        "object": {"self": f"{BASE}/v2/issues/TEST-{target}", "key": f"TEST-{target}"},
    }
