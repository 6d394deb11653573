"""A fixed ``rate_limit`` under a cap on requests in flight, over minutes of virtual time.

Issue 16, item 3: with ``rate_limit=R`` and a service that accepts at most ``cap`` requests in
flight (``cap / latency = R``), the client learned the cap from the first second's 429s, then
its concurrency window grew above the cap again every ``grow_every`` seconds (10 s, then 40 s,
160 s): each probe drew a burst of 429s (one latency's worth of sends, ~15 at 200/s) and put
as many workers to sleep for their ``Retry-After``, although more in flight could not go
faster than the fixed rate. Now the window grows only while it keeps the client under its
rate (``rate x latency`` does not fit in it), so a cap that carries the rate is not probed
again; a cap that binds (the latency rose) is still probed, and found when it rose.

Scaled so that minutes of traffic take about a second: R = 10/s with 1 s latency and a cap
of 10 has the same shape as 200/s, 50 ms and 10 (the benchmark's "10 in flight" row). trio
only: see ``test_soak.py`` for why asyncio has no virtual clock here.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from benchmarks._shapes import InFlight
from tracker_links.testing import FakeTracker

trio = pytest.importorskip("trio")
trio_testing = pytest.importorskip("trio.testing")

RATE = 10.0
LATENCY = 1.0
CAP = 10


@pytest.fixture(autouse=True)
def _quiet_retries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="tracker_links")  # one warning per retried 429


class Recorded:
    """``shape``'s admission, with the time of every refusal and of every acceptance."""

    def __init__(self, shape: InFlight) -> None:
        self.shape = shape
        self.refused: list[float] = []
        self.accepted: list[float] = []

    def admit(self, now: float, inflight: int) -> bool:
        ok = self.shape.admit(now, inflight)
        (self.accepted if ok else self.refused).append(now)
        return ok


def run(n: int, shape: Recorded, *, change: Any = None, seed: int = 0) -> float:
    """``n`` creates at ``rate_limit=RATE`` through one client; returns the virtual wall time.

    ``change(fake)`` runs at 60 s of virtual time (to move the latency and the cap)."""
    scheduler = getattr(getattr(trio, "_core", None), "_run", None)
    if scheduler is not None and hasattr(scheduler, "_r"):
        scheduler._r.seed(seed)
    state = random.getstate()
    random.seed(seed)

    async def main() -> float:
        fake = FakeTracker(
            {"TEST": n + 1},
            limit=shape,
            latency=LATENCY,
            jitter=LATENCY * 0.01,
            seed=seed,
            retry_after=1.0,
            clock=trio.current_time,
            sleep=trio.sleep,
        )
        specs = [(f"TEST-{i}", f"TEST-{i + 1}", "relates") for i in range(1, n + 1)]

        async def later() -> None:
            await trio.sleep(60.0)
            change(fake)

        async with trio.open_nursery() as nursery:
            if change is not None:
                nursery.start_soon(later)
            client = fake.client(
                max_concurrency=16, rate_limit=RATE, clock=trio.current_time, sleep=trio.sleep
            )
            async with client:
                report = await client.links.bulk_create(specs)
            assert all(o.status.value == "created" for o in report.outcomes)
        return float(trio.current_time())

    try:
        result: float = trio.run(main, clock=trio_testing.MockClock(autojump_threshold=0))
    finally:
        random.setstate(state)
    return result


def test_fixed_rate_draws_no_429_after_the_start_under_a_cap() -> None:
    # 225 s at 10/s: past the old window's re-probes, 10 s, 50 s and 210 s after the cut.
    n = 2_250
    shape = Recorded(InFlight(CAP, LATENCY))
    wall = run(n, shape)
    ideal = n / RATE
    # The start: the first requests in flight pass the cap after ~2 latencies (the first
    # second of the benchmark at 50 ms); those sent before the window's cut came back are
    # refused too (measured 2.0-3.0 s), then one cool-down of 1 s.
    late = [t for t in shape.refused if t > 5.0]
    assert shape.refused, "the cap was never met: the test does not test it"
    assert not late, f"{len(late)} x 429 after the start, at {late[:5]}..."
    # The start's cool-down plus the jitter's ~0.5% (the mean latency is 1.005 s).
    assert wall <= 1.03 * ideal, (wall, ideal)


def test_fixed_rate_finds_a_cap_that_rose_when_the_cap_binds() -> None:
    # At 60 s the latency rises to 1.5 s and the cap to 15: the fixed rate now needs 15 in
    # flight, so the learned window of 10 holds the client at 6.7/s; it grows (probing) and
    # finds the new cap.
    n = 2_000
    shape = Recorded(InFlight(CAP, LATENCY))

    def change(fake: FakeTracker) -> None:
        fake.latency = 1.5
        shape.shape.cap = 15

    wall = run(n, shape, change=change)
    last = [t for t in shape.accepted if t > wall - 40.0]
    assert len(last) / 40.0 >= 0.95 * RATE, len(last) / 40.0  # back at the rate: found
    assert wall <= 1.25 * n / RATE, wall


def test_fixed_rate_sends_no_burst_a_sliding_window_refuses() -> None:
    # The pacing let a burst of 5 go at the start: R + 4 requests in the first 1-s interval,
    # 4 answered 429 one second later by a sliding window of R (sent at 1.03-1.05 s).
    from benchmarks._shapes import SlidingWindow, simulate

    result = simulate(lambda: SlidingWindow(200.0), n=2_000, rate_limit=200.0)
    assert result.failed == 0
    assert result.refused == 0, result.row()
    assert result.ratio <= 1.02, result.row()  # measured 1.010 (the last answer, 0.1%: spacing)
