"""Soak: hours of virtual time through the public client against the in-process fake.

Issue 11, finding 1: after one 429 that no other followed, the adaptive rate overflowed a float
after ~440 s and every request raised ``OverflowError``, so ``bulk_create`` raised an exception
group instead of returning its report. These runs drive hours of (virtual) traffic through
:class:`TrackerClient` and :class:`FakeTracker` with a one-off 429, a client capped below the
limit, a limit that changes mid-run and several clients sharing one bucket; each asserts the run
finishes, the report comes back complete, and the rate stays within sane bounds throughout.

They run on trio only: trio's ``MockClock(autojump_threshold=0)`` jumps virtual time forward
whenever every task sleeps, so hours pass in about a second of wall time. asyncio has no such
clock in the standard library or in anyio (a virtual-time loop would mean a custom event-loop
policy); the asyncio path of the same code (``Transport``, ``RateGate``) is covered by the
respx tests of ``test_client.py``, which run on both backends with an injected fake clock.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tracker_links import OutcomeStatus, RateLimitError, TrackerClient
from tracker_links._policy import AdaptiveRate
from tracker_links.testing import FakeTracker

trio = pytest.importorskip("trio")
trio_testing = pytest.importorskip("trio.testing")

HOUR = 3600.0


@pytest.fixture(autouse=True)
def _quiet_retries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="tracker_links")  # one warning per retried 429


def virtual(main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main`` on trio with a clock that jumps whenever every task sleeps.

    trio's scheduler reverses each batch at random, and the client's backoff jitter draws from
    the ``random`` module: both seeded, a run is the same every time, whatever ran before it
    in the same process (seed 0 once caught a regression that other seeds hid; the bounds
    hold for seeds 0-3)."""
    scheduler = getattr(getattr(trio, "_core", None), "_run", None)
    if scheduler is not None and hasattr(scheduler, "_r"):
        scheduler._r.seed(0)
    state = random.getstate()
    random.seed(0)
    try:
        return trio.run(main, clock=trio_testing.MockClock(autojump_threshold=0))
    finally:
        random.setstate(state)


def fake(n: int, **knobs: Any) -> FakeTracker:
    return FakeTracker({"TEST": n + 1}, clock=trio.current_time, sleep=trio.sleep, **knobs)


def client(tracker: FakeTracker, **kwargs: Any) -> TrackerClient:
    return tracker.client(clock=trio.current_time, sleep=trio.sleep, **kwargs)


def chain(start: int, n: int) -> list[tuple[str, str, str]]:
    return [(f"TEST-{i}", f"TEST-{i + 1}", "relates") for i in range(start, start + n)]


class RateWatch:
    """Samples every client's adaptive rate each virtual minute: all finite and in bounds."""

    def __init__(self, *clients: TrackerClient) -> None:
        self.rates = [c.rate_limiter.adaptive for c in clients]
        self.samples = 0
        self.highest = 0.0

    def check(self) -> None:
        now = trio.current_time()
        for adaptive in self.rates:
            assert isinstance(adaptive, AdaptiveRate)
            rate = adaptive.current(now)  # raised OverflowError before the fix
            if rate is None:
                continue
            assert math.isfinite(rate)
            assert adaptive.min_rate <= rate <= getattr(adaptive, "max_rate", math.inf)
            self.highest = max(self.highest, rate)
        self.samples += 1

    async def run(self) -> None:
        while True:
            await trio.sleep(60.0)
            self.check()


async def one_off_429(tracker: FakeTracker, at: float) -> None:
    """At virtual time ``at``, let one request through and refuse the next few (a one-off)."""
    await trio.sleep_until(at)
    tracker.rate_limit, tracker.rate_burst = 0.001, 1
    tracker._tokens, tracker._bucket_at = 1.0, None  # a fresh bucket of one
    await trio.sleep(12.0)  # requests arrive every 5 s: one passes, the next are refused
    tracker.rate_limit = None


def assert_complete(report: Any, n: int, *, refused: float = 0.0) -> None:
    """Every item has its outcome; at most a ``refused`` fraction failed on 429s."""
    assert len(report.outcomes) == n
    failed = [o for o in report.outcomes if o.status is not OutcomeStatus.CREATED]
    assert all(isinstance(o.error, RateLimitError) for o in failed)
    assert len(failed) <= refused * n, report.counts()


def test_one_off_429s_hours_apart() -> None:
    # 0.2 req/s for ~2.5 h: a one-off 429 after a minute, another after two hours.
    n = 1_800

    async def main() -> tuple[float, int]:
        tracker = fake(n, latency=5.0)
        async with client(tracker, max_concurrency=1) as c:
            watch = RateWatch(c)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch.run)
                nursery.start_soon(one_off_429, tracker, 60.0)
                nursery.start_soon(one_off_429, tracker, 2 * HOUR)
                report = await c.links.bulk_create(chain(1, n))
                nursery.cancel_scope.cancel()
            watch.check()
            assert_complete(report, n)
            assert watch.samples > 120
            return trio.current_time(), tracker.stats.rate_limited

    elapsed, refused = virtual(main)
    assert elapsed > 2 * HOUR
    assert 2 <= refused <= 20
    assert elapsed < 1.1 * n * 5.0 + 60.0  # the one-offs cost seconds, not a slow crawl


def test_a_client_capped_below_the_limit_for_hours() -> None:
    # The reproduction of issue 11, slowed down 200x: max_concurrency=4, a bucket of 2 at
    # 0.5/s, latency 10 s (0.4 req/s, under the limit). The burst at the start draws 429s; no
    # other 429 ends the climb that follows.
    n = 3_000

    async def main() -> tuple[float, int, float]:
        tracker = fake(n, latency=10.0, rate_limit=0.5, rate_burst=2)
        async with client(tracker, max_concurrency=4) as c:
            watch = RateWatch(c)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch.run)
                report = await c.links.bulk_create(chain(1, n))
                nursery.cancel_scope.cancel()
            watch.check()
            assert_complete(report, n)
            return trio.current_time(), tracker.stats.rate_limited, watch.highest

    elapsed, refused, highest = virtual(main)
    assert elapsed > 2 * HOUR
    assert elapsed < 1.15 * n / 0.4
    assert refused < 0.01 * n
    assert highest > 0


def test_a_limit_that_changes_mid_run() -> None:
    # 1/s for half an hour, 0.25/s for half an hour, then 1/s again.
    n = 4_000
    created_by_the_rise = 0

    async def schedule(tracker: FakeTracker) -> None:
        nonlocal created_by_the_rise
        await trio.sleep_until(0.5 * HOUR)
        tracker.rate_limit = 0.25
        await trio.sleep_until(1.0 * HOUR)
        tracker.rate_limit = 1.0
        created_by_the_rise = tracker.stats.creates

    async def main() -> tuple[float, int, float]:
        tracker = fake(n, latency=1.0, rate_limit=1.0, rate_burst=2)
        async with client(tracker, max_concurrency=8) as c:
            watch = RateWatch(c)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch.run)
                nursery.start_soon(schedule, tracker)
                report = await c.links.bulk_create(chain(1, n))
                nursery.cancel_scope.cancel()
            watch.check()
            assert_complete(report, n, refused=0.02)
            # After the rise, what got through (the paced rate, or a window learned under
            # 0.25/s: 1 in flight at 1 s latency carries 1/s alone, and the paced rate then
            # climbs unchecked until a 429, as after any climb to ``max_rate``).
            rate = (n - created_by_the_rise) / (trio.current_time() - HOUR)
            return trio.current_time(), tracker.stats.rate_limited, rate

    elapsed, refused, rate = virtual(main)
    ideal = HOUR + (n - 0.5 * HOUR * 1.0 - 0.5 * HOUR * 0.25)  # at 1/s after the first hour
    assert elapsed > HOUR
    assert elapsed < 1.3 * ideal
    # Measured: ~1,030 429s of ~5,000 answers. At ~1 req/s a bucket of 2 inflates what is
    # measured, and the adaptive rate meets a 429 every ~10 s (a known weakness at such low
    # rates, not at hundreds a second); bounded, and every item still gets through.
    assert refused < 0.35 * n
    assert 0.8 < rate < 1.05  # settled near the last limit (1/s), not at a bound


def test_several_clients_share_one_bucket_for_hours() -> None:
    k, each = 3, 1_500

    async def main() -> tuple[list[float], int]:
        tracker = fake(k * each, latency=1.0, rate_limit=1.0, rate_burst=2)
        clients = [client(tracker, max_concurrency=4) for _ in range(k)]
        finished: list[float] = []
        watch = RateWatch(*clients)

        async def one(c: TrackerClient, start: int) -> None:
            async with c:
                report = await c.links.bulk_create(chain(start, each))
            assert_complete(report, each, refused=0.2)
            finished.append(trio.current_time())

        async with trio.open_nursery() as outer:
            outer.start_soon(watch.run)
            async with trio.open_nursery() as nursery:
                for i, c in enumerate(clients):
                    nursery.start_soon(one, c, 1 + i * each)
            outer.cancel_scope.cancel()
        watch.check()
        return finished, tracker.stats.rate_limited

    finished, refused = virtual(main)
    ideal = k * each / 1.0
    assert len(finished) == k
    assert max(finished) > HOUR
    assert max(finished) < 3.0 * ideal
    # Measured: ~2,860 429s for 4,500 items (the same low-rate weakness, three times); 2,433
    # with the plateau held before each probe (2,434-2,825 seeding both the scheduler and the
    # jitter with 0-5; up to 4,175 when a probe refused after a short hold cut the rate by 3%
    # only, not by ``beta``).
    assert refused < 0.8 * k * each
